import { readFileSync } from 'node:fs';
import { webAssembly, type WasmModule } from './wasm-api.js';

/**
 * The compiled vector kernels (vector-kernels.wat, built to .wasm by scripts/build-kernels.mjs),
 * loaded synchronously once per process. Null, with the reason, when the file is missing or the
 * runtime lacks WebAssembly SIMD: callers then use the JS kernels (js-kernels.ts).
 */
export type VectorKernelModule = { module: WasmModule; reason: null } | { module: null; reason: string };

/** The kernels' exports (pointers are byte offsets into the instance's memory). */
export interface VectorKernelExports {
  sumOfSquares(src: number, n: number): number;
  addScaled(acc: number, src: number, n: number, scale: number): void;
  addInt8(acc: number, src: number, n: number, scale: number, weight: number): void;
}

let loaded: VectorKernelModule | null = null;
let loadedShared: VectorKernelModule | null = null;

/** The kernels over a memory of their own (every accumulator's, unless it has a receive area). */
export function vectorKernelModule(): VectorKernelModule {
  loaded ??= load('vector-kernels.wasm');
  return loaded;
}

/**
 * The same kernels importing a shared memory (vector-kernels-shared.wasm): for an accumulator whose
 * memory the upload listener's thread writes uploads into (Float64Accumulator.receiveArea). Loaded
 * on first use; null where the runtime has no shared wasm memories (threads).
 */
export function sharedVectorKernelModule(): VectorKernelModule {
  loadedShared ??= vectorKernelModule().module ? load('vector-kernels-shared.wasm') : vectorKernelModule();
  return loadedShared;
}

function load(file: string): VectorKernelModule {
  if (process.env.FLOCK_VECTOR_KERNEL === 'js') return { module: null, reason: 'FLOCK_VECTOR_KERNEL=js' };
  if (!webAssembly) return { module: null, reason: 'no WebAssembly in this runtime' };
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(new URL(`./${file}`, import.meta.url));
  } catch (error) {
    return { module: null, reason: `${file} not readable (run pnpm build): ${(error as Error).message}` };
  }
  // validate() is false when the engine lacks an instruction or type the module uses (SIMD; shared memory).
  if (!webAssembly.validate(bytes)) return { module: null, reason: `WebAssembly SIMD${file.includes('shared') ? ' or shared memory' : ''} unavailable` };
  return { module: new webAssembly.Module(bytes), reason: null };
}
