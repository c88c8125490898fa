/**
 * mulberry32: a small, fast, seeded PRNG returning floats in [0, 1). Part of the protocol because
 * both sides must derive the same values from a public seed (the secure round's neighbour graph);
 * the coordinator's partitions, initial models and benchmarks use it too. Never for secrets.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
