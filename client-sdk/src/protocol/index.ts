/** The Flock wire protocol: imported by both the coordinator and the client SDK. */
export * from './messages.js';
export * from './reasons.js';
export * from './round-status.js';
export * from './weights.js';
