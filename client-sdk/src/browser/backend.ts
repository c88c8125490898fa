/**
 * Picks a TensorFlow.js backend in the browser: WebGL on a real GPU, else WebAssembly, else plain
 * JS. WebGL running on a software rasterizer (SwiftShader, llvmpipe: headless or blocklisted GPUs)
 * is slower than wasm for the small dense models of on-device training, so it is skipped.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { DEFAULT_BROWSER_BACKENDS } from '../core/defaults.js';

export type BrowserBackendName = 'webgl' | 'wasm' | 'cpu';

export interface BrowserBackendOptions {
  /** Try in this order (default ['webgl', 'wasm', 'cpu']). */
  order?: BrowserBackendName[];
  /**
   * Where the wasm binaries are served: a path prefix ('/wasm/') or a map of file names to URLs
   * (bundlers: import the `.wasm` files with `?url`). Default: next to the script.
   */
  wasmPaths?: string | Partial<Record<'tfjs-backend-wasm.wasm' | 'tfjs-backend-wasm-simd.wasm' | 'tfjs-backend-wasm-threaded-simd.wasm', string>>;
  /**
   * Allow the multi-threaded wasm build (needs cross-origin isolation). Default false: under
   * COOP/COEP tfjs picks it and it fails to start in common bundles.
   */
  wasmThreads?: boolean;
  /** Use WebGL even on a software renderer (default false). */
  allowSoftwareWebgl?: boolean;
}

function softwareRenderer(): boolean {
  try {
    const canvas = document.createElement('canvas');
    const gl = canvas.getContext('webgl2') ?? canvas.getContext('webgl');
    if (!gl) return true;
    const info = gl.getExtension('WEBGL_debug_renderer_info');
    const renderer = String(info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER));
    return /swiftshader|llvmpipe|software|basic render/i.test(renderer);
  } catch {
    return true;
  }
}

/** Initializes the first usable backend and returns its name. Call before creating tensors. */
export async function initBrowserBackend(options: BrowserBackendOptions = {}): Promise<BrowserBackendName> {
  const order = options.order ?? DEFAULT_BROWSER_BACKENDS;
  if (!options.wasmThreads) tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  if (options.wasmPaths !== undefined) setWasmPaths(options.wasmPaths);
  for (const name of order) {
    if (name === 'webgl' && !options.allowSoftwareWebgl && softwareRenderer()) continue;
    try {
      if ((await tf.setBackend(name)) && (await tf.ready(), tf.getBackend() === name)) return name;
    } catch {
      // Try the next one.
    }
  }
  throw new Error('no TensorFlow.js backend could be initialised');
}
