/**
 * The operator REST API contract: one zod schema (and its inferred type) per request and response,
 * shared by the controllers, the `flock` CLI's client, the simulator and the test fakes. It imports
 * only zod and the wire protocol, so clients can depend on it without the coordinator's internals.
 */
export * from './errors.js';
export * from './models.js';
export * from './operators.js';
export * from './privacy.js';
export * from './rounds.js';
export * from './strategies.js';
export * from './serving.js';
export * from './precompute.js';
export * from './on-demand.js';
export * from './serverless.js';
