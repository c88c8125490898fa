/**
 * The TensorFlow.js backend of a serverless instance: WebAssembly with the .wasm files packaged next
 * to the handler, else plain JS (cpu). Call before any tensor is created.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { WASM_FILES } from './package-layout.js';

export type ServerlessBackend = 'wasm' | 'cpu';

/** wasm when its binaries are in `wasmDir` and it starts; cpu otherwise. */
export async function initServerlessBackend(wasmDir: string): Promise<ServerlessBackend> {
  if (WASM_FILES.every((file) => existsSync(join(wasmDir, file)))) {
    try {
      setWasmPaths(Object.fromEntries(WASM_FILES.map((file) => [file, join(wasmDir, file)])));
      if ((await tf.setBackend('wasm')) && (await tf.ready(), tf.getBackend() === 'wasm')) return 'wasm';
    } catch {
      // fall back below
    }
  }
  await tf.setBackend('cpu');
  await tf.ready();
  return 'cpu';
}
