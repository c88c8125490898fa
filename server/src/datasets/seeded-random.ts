// The one seeded PRNG (mulberry32) is the protocol's: the secure round's neighbour graph needs both sides to share it.
export { mulberry32 } from '@flock/client-sdk/protocol';
