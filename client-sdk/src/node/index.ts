/** Node adapter: backend selection and filesystem persistence. The platform-neutral API is in the package root. */
export { initNodeBackend, type NodeBackendName } from './backend.js';
export { FileModelStore } from './file-store.js';
