/**
 * Secure aggregation (Bonawitz et al. 2017; SecAgg+, Bell et al. 2020): the protocol's math and
 * its two sides, neutral to the platform (WebCrypto in browsers and Node). The coordinator imports
 * `SecAggServerSession` from here, the SDK's round job `SecAggDeviceSession`; the messages are in
 * the wire protocol (protocol/secagg-messages.ts).
 */
export * from './device-session.js';
export * from './distributed-noise.js';
export * from './fixed-point.js';
export * from './gaussian.js';
export * from './neighbours.js';
export * from './primitives.js';
export * from './server-session.js';
export * from './shamir.js';
