import { describe, expect, it } from 'vitest';
import { FedAvg, WeightedMeanAccumulator } from '../../src/aggregation/fedavg.js';
import { getStrategy } from '../../src/aggregation/strategies.js';
import { addScaledInto, applyUpdate, firstNonFinite, l2Norm } from '../../src/aggregation/vector-math.js';
import { seededRandom } from './helpers.js';

describe('vector math', () => {
  it('adds scaled vectors, norms and finds non-finite values', () => {
    const target = new Float64Array([1, 2, 3]);
    addScaledInto(target, new Float32Array([1, -1, 0.5]), 2);
    expect([...target]).toEqual([3, 0, 4]);
    expect(l2Norm(new Float32Array([3, 4]))).toBe(5);
    expect(firstNonFinite(new Float32Array([0, 1, NaN]))).toBe(2);
    expect(firstNonFinite(new Float32Array([0, Infinity]))).toBe(1);
    expect(firstNonFinite(new Float32Array([0, 1]))).toBe(-1);
    expect([...applyUpdate(new Float32Array([1, 1]), new Float64Array([0.5, -2]), 2)]).toEqual([2, -3]);
    expect(() => addScaledInto(new Float64Array(2), new Float32Array(3), 1)).toThrow(/length mismatch/);
  });
});

describe('FedAvg', () => {
  it('matches a hand-computed weighted mean', () => {
    const strategy = new FedAvg();
    const aggregator = strategy.begin({ globalWeights: new Float32Array([10, 20]), serverState: null });
    aggregator.add({ delta: new Float32Array([1, 0]), numExamples: 1 });
    aggregator.add({ delta: new Float32Array([4, 3]), numExamples: 2 });
    // mean delta = (1*[1,0] + 2*[4,3]) / 3 = [3, 2]
    const result = aggregator.finish();
    expect(aggregator.count).toBe(2);
    expect([...result.weights]).toEqual([13, 22]);
    expect(result.updateNorm).toBeCloseTo(Math.sqrt(13), 12);
    expect(result.serverState).toBeNull();
  });

  it('equals the weighted mean for random updates (property, 20 seeds)', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const random = seededRandom(seed);
      const size = 1 + Math.floor((random() + 0.5) * 50);
      const clients = 1 + Math.floor((random() + 0.5) * 12);
      const global = Float32Array.from({ length: size }, () => random() * 10);
      const updates = Array.from({ length: clients }, () => ({
        delta: Float32Array.from({ length: size }, () => random()),
        numExamples: 1 + Math.floor((random() + 0.5) * 600),
      }));
      const aggregator = new FedAvg().begin({ globalWeights: global, serverState: null });
      updates.forEach((update) => aggregator.add(update));
      const { weights } = aggregator.finish();
      const total = updates.reduce((sum, u) => sum + u.numExamples, 0);
      for (let i = 0; i < size; i++) {
        const expected = global[i]! + updates.reduce((sum, u) => sum + u.numExamples * u.delta[i]!, 0) / total;
        expect(weights[i]).toBeCloseTo(expected, 5);
      }
    }
  });

  it('is invariant to the order of updates and does not keep them', () => {
    const random = seededRandom(7);
    const updates = Array.from({ length: 5 }, (_, k) => ({
      delta: Float32Array.from({ length: 8 }, () => random()),
      numExamples: 10 * (k + 1),
    }));
    const forward = new WeightedMeanAccumulator(8);
    const backward = new WeightedMeanAccumulator(8);
    updates.forEach((u) => forward.add(u));
    [...updates].reverse().forEach((u) => backward.add(u));
    const a = forward.mean();
    const b = backward.mean();
    for (let i = 0; i < 8; i++) expect(a[i]).toBeCloseTo(b[i]!, 12);
    // Mutating a delta after add must not change the aggregate: the accumulator folded it already.
    const before = forward.mean();
    updates[0]!.delta.fill(1e6);
    expect([...forward.mean()]).toEqual([...before]);
  });

  it('refuses empty rounds and non-positive weights', () => {
    const accumulator = new WeightedMeanAccumulator(2);
    expect(() => accumulator.mean()).toThrow(/no updates/);
    expect(() => accumulator.add({ delta: new Float32Array(2), numExamples: 0 })).toThrow(/positive/);
  });

  it('is found by name, and unknown names list the known ones', () => {
    expect(getStrategy('fedavg').name).toBe('fedavg');
    expect(() => getStrategy('nope')).toThrow(/known: fedavg/);
  });
});
