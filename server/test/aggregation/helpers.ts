import type { AggregationResult, ClientUpdate, Strategy } from '../../src/aggregation/strategy.js';

/** Deterministic uniform values in [-0.5, 0.5) (LCG; good enough for test data). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
}

export function randomVector(random: () => number, size: number, scale = 1, offset = 0): Float32Array {
  return Float32Array.from({ length: size }, () => offset + random() * scale);
}

/** Runs one round of `strategy` over `updates` from `global` (and optional previous state). */
export function runRound(strategy: Strategy, global: Float32Array, updates: readonly ClientUpdate[], serverState: Uint8Array | null = null): AggregationResult {
  const aggregator = strategy.begin({ globalWeights: global, serverState });
  for (const update of updates) aggregator.add(update);
  return aggregator.finish();
}

export function vec(...values: number[]): Float32Array {
  return Float32Array.from(values);
}

export function update(numExamples: number, ...values: number[]): ClientUpdate {
  return { delta: Float32Array.from(values), numExamples };
}
