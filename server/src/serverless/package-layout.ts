/** What a serverless package holds besides `index.js`, by name: shared by the packager and the handler (no imports, so the packager loads no tfjs). */

/** The manifest at the package's root (contract: serverlessManifestSchema). */
export const MANIFEST_FILE = 'flock-serverless.json';

/** The model's directory: model.json and weights.bin. */
export const MODEL_DIR = 'model';

/** The binaries tfjs-backend-wasm chooses from (plain, SIMD, threaded SIMD), at the package's root. */
export const WASM_FILES = ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm'] as const;
