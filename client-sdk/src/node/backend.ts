import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_NODE_BACKENDS } from '../core/defaults.js';

export type NodeBackendName = 'tensorflow' | 'wasm' | 'cpu';

const require = createRequire(import.meta.url);

/**
 * Picks the fastest TensorFlow.js backend available in Node: the native one when the optional
 * `@tensorflow/tfjs-node` is installed and its addon loads, else WebAssembly, else plain JS.
 * Call it before creating any tensor (importing the wasm backend makes it the preferred one).
 */
export async function initNodeBackend(preferred?: NodeBackendName): Promise<NodeBackendName> {
  const order: readonly NodeBackendName[] = preferred ? [preferred, ...DEFAULT_NODE_BACKENDS] : DEFAULT_NODE_BACKENDS;
  for (const name of order) {
    if (await tryBackend(name)) return name;
  }
  throw new Error('no TensorFlow.js backend could be initialised');
}

async function tryBackend(name: NodeBackendName): Promise<boolean> {
  try {
    if (name === 'tensorflow') {
      // Throws a plain Error when the native addon was not built (offline installs): fall back.
      require('@tensorflow/tfjs-node');
    } else if (name === 'wasm') {
      await import('@tensorflow/tfjs-backend-wasm');
    }
    if (tf.getBackend() === name) return true;
    return (await tf.setBackend(name)) && (await tf.ready(), tf.getBackend() === name);
  } catch {
    return false;
  }
}
