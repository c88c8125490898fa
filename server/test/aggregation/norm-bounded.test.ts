import { describe, expect, it } from 'vitest';
import { FedAvg } from '../../src/aggregation/fedavg.js';
import { clipToNorm, NormBounded } from '../../src/aggregation/norm-bounded.js';
import { createStrategy, STRATEGY_NAMES } from '../../src/aggregation/strategies.js';
import { l2Norm } from '../../src/aggregation/vector-math.js';
import { randomVector, runRound, seededRandom, update, vec } from './helpers.js';

function bits(values: Float32Array): number[] {
  return [...new Uint32Array(values.buffer, values.byteOffset, values.length)];
}

describe('clipToNorm', () => {
  it('scales [3, 4] to norm 1: [0.6, 0.8]', () => {
    const clipped = clipToNorm(vec(3, 4), 1);
    expect(clipped[0]).toBeCloseTo(0.6, 7);
    expect(clipped[1]).toBeCloseTo(0.8, 7);
  });

  it('clips to exactly S (up to float32 rounding) and leaves small updates bit-identical, uncopied (property, 200 vectors)', () => {
    const random = seededRandom(21);
    for (let t = 0; t < 200; t++) {
      const size = 1 + Math.floor((random() + 0.5) * 500);
      const delta = randomVector(random, size, 10 ** Math.floor((random() + 0.5) * 6 - 3));
      const before = bits(delta);
      const norm = l2Norm(delta);
      const big = norm * (0.05 + (random() + 0.5) * 0.9); // S < ‖delta‖: clips
      const clipped = clipToNorm(delta, big);
      expect(clipped).not.toBe(delta);
      expect(Math.abs(l2Norm(clipped) - big)).toBeLessThanOrEqual(big * 1e-6);
      const small = norm * (1 + (random() + 0.5)); // S >= ‖delta‖: untouched
      expect(clipToNorm(delta, small)).toBe(delta);
      expect(clipToNorm(delta, norm)).toBe(delta);
      expect(bits(delta)).toEqual(before); // never mutated
    }
  });
});

describe('NormBounded', () => {
  it('clips each update before the inner strategy averages (hand-computed)', () => {
    // S = 1: [3, 4] -> [0.6, 0.8]; [0.3, 0.4] (norm 0.5) passes unchanged; mean = [0.45, 0.6]
    const strategy = new NormBounded(new FedAvg(), 1);
    const aggregator = strategy.begin({ globalWeights: vec(1, 1), serverState: null });
    const big = update(1, 3, 4);
    aggregator.add(big);
    aggregator.add(update(1, 0.3, 0.4));
    expect(aggregator.clipped).toBe(1);
    const { weights } = aggregator.finish();
    expect(weights[0]).toBeCloseTo(1.45, 6);
    expect(weights[1]).toBeCloseTo(1.6, 6);
    expect([...big.delta]).toEqual([3, 4]);
  });

  it('is selected by clipNorm on any strategy, keeping its name, plan and state', () => {
    for (const name of STRATEGY_NAMES) {
      const wrapped = createStrategy(name, { clipNorm: 2 });
      expect(wrapped).toBeInstanceOf(NormBounded);
      expect(wrapped.name).toBe(name);
      const plan = { epochs: 1, batchSize: 10, learningRate: 0.1 };
      expect(wrapped.configurePlan(plan)).toEqual(createStrategy(name).configurePlan(plan));
    }
    // Updates already within S: identical results, bit for bit, including fedadam's state bytes.
    const random = seededRandom(4);
    const global = randomVector(random, 50);
    const updates = Array.from({ length: 7 }, () => ({ delta: randomVector(random, 50, 0.01), numExamples: 5 }));
    for (const name of ['fedadam', 'median', 'multi-krum'] as const) {
      const plain = runRound(createStrategy(name), global, updates);
      const bounded = runRound(createStrategy(name, { clipNorm: 100 }), global, updates);
      expect(bits(bounded.weights)).toEqual(bits(plain.weights));
      expect(bounded.serverState).toEqual(plain.serverState);
    }
  });

  it('bounds the influence of one huge update on fedavg', () => {
    // Without clipping the attacker moves the model by 1e6·9/10; with S = 1 by at most 9/10 · 1.
    const updates = [...Array.from({ length: 9 }, () => update(1, 0.1)), update(9, 1e6)];
    const { weights } = runRound(createStrategy('fedavg', { clipNorm: 1 }), vec(0), updates);
    expect(weights[0]).toBeCloseTo((9 * 0.1 + 9 * 1) / 18, 6);
  });

  it('refuses a non-positive clip norm', () => {
    expect(() => new NormBounded(new FedAvg(), 0)).toThrow(/clipNorm/);
    expect(() => new NormBounded(new FedAvg(), Infinity)).toThrow(/clipNorm/);
  });
});
