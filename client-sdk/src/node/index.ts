export { initNodeBackend, type NodeBackendName } from './backend.js';
