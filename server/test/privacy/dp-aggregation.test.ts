import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DifferentiallyPrivate, sumNoiseMultiplier, type DpAggregationSettings } from '../../src/aggregation/differentially-private.js';
import { PartialAggregate } from '../../src/aggregation/partial-aggregate.js';
import { createStrategy } from '../../src/aggregation/strategies.js';
import type { ClientUpdate } from '../../src/aggregation/strategy.js';
import { mulberry32 } from '../../src/datasets/seeded-random.js';
import type { UniformSource } from '@flock/client-sdk/secagg';

/** Seeded uniforms in (0, 1), 32 bits each: reproducible noise for the statistical tests. */
const seededUniform =
  (seed: number): (() => UniformSource) =>
  () => {
    const next = mulberry32(seed);
    return () => (Math.floor(next() * 2 ** 32) + 0.5) / 2 ** 32;
  };

function dp(settings: DpAggregationSettings, seed = 1, inner = 'fedavg'): DifferentiallyPrivate {
  return new DifferentiallyPrivate(createStrategy(inner), settings, seededUniform(seed));
}

const norm = (values: ArrayLike<number>): number => Math.sqrt(Array.from(values).reduce((sum, v) => sum + v * v, 0));

const updateArbitrary = (length: number) =>
  fc.record({
    delta: fc.float32Array({ minLength: length, maxLength: length, noNaN: true, noDefaultInfinity: true, min: -100, max: 100 }),
    numExamples: fc.integer({ min: 1, max: 1000 }),
  });

describe('DP-FedAvg aggregation (the DifferentiallyPrivate wrapper)', () => {
  it('without noise, commits exactly the sum of the updates clipped to C over the expected count, whatever their example counts', () => {
    fc.assert(
      fc.property(fc.array(updateArbitrary(8), { minLength: 1, maxLength: 6 }), fc.double({ min: 0.01, max: 50, noNaN: true }), (updates, clipNorm) => {
        const expectedUpdates = updates.length + 2; // q·N need not be the count that arrived
        const global = new Float32Array(8).fill(1);
        const aggregator = dp({ clipNorm, noiseMultiplier: 0, expectedUpdates }).begin({ globalWeights: global, serverState: null });
        const sum = new Float64Array(8);
        for (const update of updates) {
          aggregator.add(update);
          const n = norm(update.delta);
          const factor = n > clipNorm ? clipNorm / n : 1;
          update.delta.forEach((value, i) => (sum[i]! += value * factor));
        }
        const { weights } = aggregator.finish();
        weights.forEach((w, i) => expect(w).toBeCloseTo(Math.fround(1 + sum[i]! / expectedUpdates), 4));
      }),
      { seed: 7, numRuns: 200 },
    );
  });

  it('bounds what any one update can do: its share of the aggregate is at most C / expected updates', () => {
    fc.assert(
      fc.property(updateArbitrary(16), fc.double({ min: 0.01, max: 10, noNaN: true }), (update, clipNorm) => {
        const global = new Float32Array(16);
        const aggregator = dp({ clipNorm, noiseMultiplier: 0, expectedUpdates: 4 }).begin({ globalWeights: global, serverState: null });
        aggregator.add({ ...update, scale: 0.5 }); // an intake's own scale composes with the clip
        expect(norm(aggregator.finish().weights)).toBeLessThanOrEqual((clipNorm / 4) * (1 + 1e-6));
        expect(aggregator.clipped).toBe(norm(update.delta) * 0.5 > clipNorm ? 1 : 0);
      }),
      { seed: 11, numRuns: 200 },
    );
  });

  it('adds Gaussian noise of mean 0 and standard deviation z·C / expected updates to every coordinate (seeded statistical test)', () => {
    const n = 100_000;
    const settings = { clipNorm: 2, noiseMultiplier: 1.5, expectedUpdates: 4 };
    const sigma = (settings.noiseMultiplier * settings.clipNorm) / settings.expectedUpdates; // 0.75
    for (const seed of [1, 2, 3, 4, 5]) {
      const aggregator = dp(settings, seed).begin({ globalWeights: new Float32Array(n), serverState: null });
      aggregator.add({ delta: new Float32Array(n), numExamples: 1 });
      const noise = aggregator.finish().weights;
      let sum = 0;
      let squares = 0;
      let withinOneSigma = 0;
      for (const x of noise) {
        sum += x;
        squares += x * x;
        if (Math.abs(x) <= sigma) withinOneSigma++;
      }
      const mean = sum / n;
      const variance = squares / n - mean * mean;
      // Five standard errors: the mean's is σ/√n, the variance's σ²·√(2/n), a proportion's √(p(1-p)/n).
      expect(Math.abs(mean), `seed ${seed} mean`).toBeLessThan((5 * sigma) / Math.sqrt(n));
      expect(Math.abs(variance / (sigma * sigma) - 1), `seed ${seed} variance`).toBeLessThan(5 * Math.sqrt(2 / n));
      const p = 0.682689492; // P(|X| <= σ) for a Gaussian
      expect(Math.abs(withinOneSigma / n - p), `seed ${seed} shape`).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n));
    }
  });

  it.each(['fedavg', 'fedavgm', 'fedadam'])('%s: split over two processes gives what one process gives, noise included', (inner) => {
    const updates: ClientUpdate[] = [
      { delta: new Float32Array([0.5, -1, 2, 0, 3]), numExamples: 10 },
      { delta: new Float32Array([10, 10, -10, 10, 10]), numExamples: 300 }, // clipped
      { delta: new Float32Array([-0.25, 0.125, 0, 1, -1]), numExamples: 60 },
    ];
    const settings = { clipNorm: 1, noiseMultiplier: 0.8, expectedUpdates: 3.5 };
    const context = { globalWeights: new Float32Array([1, 2, 3, 4, 5]), serverState: null };
    const single = dp(settings, 9, inner).begin(context);
    updates.forEach((update) => single.add(update));
    const expected = single.finish();

    const split = dp(settings, 9, inner).split()!;
    const parts = [new PartialAggregate(5), new PartialAggregate(5)];
    updates.forEach((update, k) => {
      const prepared = split.prepare(update);
      expect(prepared.numExamples).toBe(1); // one device, one vote
      parts[k % 2]!.add(prepared.delta, prepared.numExamples, 0, prepared.scale);
    });
    const combined = PartialAggregate.combine(parts, 5);
    const result = split.finish(context, combined.mean(), combined.count);
    result.weights.forEach((w, i) => expect(w).toBeCloseTo(expected.weights[i]!, 5));
  });

  it('puts C in the plan the SDK clips to, and refuses strategies that are not a weighted mean', () => {
    expect(dp({ clipNorm: 0.7, noiseMultiplier: 1, expectedUpdates: 1 }, 1, 'fedprox').configurePlan({ epochs: 1, batchSize: 10, learningRate: 0.1 })).toEqual({
      epochs: 1,
      batchSize: 10,
      learningRate: 0.1,
      proximalMu: 1,
      clipNorm: 0.7,
    });
    expect(() => dp({ clipNorm: 1, noiseMultiplier: 1, expectedUpdates: 1 }, 1, 'median')).toThrow(/needs a weighted-mean strategy/);
    expect(() => dp({ clipNorm: 1, noiseMultiplier: 1, expectedUpdates: 0 })).toThrow(/expectedUpdates must be positive/);
  });
});

describe('adaptive clipping (Andrew et al. 2021)', () => {
  it('splits the noise multiplier so that the sum and the count together are as private as z alone', () => {
    const z = 1.2;
    const zSum = sumNoiseMultiplier(z, 5);
    expect(zSum ** -2 + (2 * 5) ** -2).toBeCloseTo(z ** -2, 12);
    expect(zSum).toBeGreaterThan(z);
    expect(() => sumNoiseMultiplier(z, 0.5)).toThrow(/must exceed z \/ 2/);
  });

  it('moves C down when most updates are within it and up when most are clipped', () => {
    const adaptive = { targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 1e-9 };
    const nextClip = (norm: number) => {
      const aggregator = dp({ clipNorm: 2, noiseMultiplier: 0, expectedUpdates: 4, adaptive }).begin({ globalWeights: new Float32Array(2), serverState: null });
      for (let k = 0; k < 4; k++) aggregator.add({ delta: Float32Array.from([norm, 0]), numExamples: 1 });
      return aggregator.finish().nextClipNorm!;
    };
    expect(nextClip(0.5)).toBeCloseTo(2 * Math.exp(-0.2 * (1 - 0.5)), 9); // all within C
    expect(nextClip(5)).toBeCloseTo(2 * Math.exp(-0.2 * (0 - 0.5)), 9); // all clipped
    expect(dp({ clipNorm: 2, noiseMultiplier: 1, expectedUpdates: 4, adaptive: { ...adaptive, countNoiseStd: 1 } }).split()).toBeNull();
  });
});
