/** The Flock wire protocol: imported by both the coordinator and the client SDK. */
export * from './compression.js';
export * from './device-key.js';
export * from './events.js';
export * from './handshake.js';
export * from './model-messages.js';
export * from './pace.js';
export * from './personalization.js';
export * from './reasons.js';
export * from './round-messages.js';
export * from './round-status.js';
export * from './secagg-messages.js';
export * from './seeded-random.js';
export * from './upload-endpoint.js';
export * from './vector-math.js';
export * from './weights.js';
