import { initNodeBackend } from '../src/node/backend.js';

// The SDK's Node default: wasm here (the native addon cannot be built offline).
await initNodeBackend('wasm');
