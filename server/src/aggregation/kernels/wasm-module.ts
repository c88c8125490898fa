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

export function vectorKernelModule(): VectorKernelModule {
  loaded ??= load();
  return loaded;
}

function load(): VectorKernelModule {
  if (process.env.FLOCK_VECTOR_KERNEL === 'js') return { module: null, reason: 'FLOCK_VECTOR_KERNEL=js' };
  if (!webAssembly) return { module: null, reason: 'no WebAssembly in this runtime' };
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(new URL('./vector-kernels.wasm', import.meta.url));
  } catch (error) {
    return { module: null, reason: `vector-kernels.wasm not readable (run pnpm build): ${(error as Error).message}` };
  }
  // validate() is false when the engine lacks an instruction the module uses (here: SIMD).
  if (!webAssembly.validate(bytes)) return { module: null, reason: 'WebAssembly SIMD unavailable' };
  return { module: new webAssembly.Module(bytes), reason: null };
}
