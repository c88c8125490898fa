import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../src/datasets/seeded-random.js';
import { checkCommit, commitRefusalMessage } from '../../src/rounds/commit-check.js';
import { scaledDelta } from '../../src/aggregation/strategy.js';
import { UploadRejection, boundInfluence } from '../../src/rounds/upload-intake.js';
import { decide, nextEstimate, nextExampleCap, roundBound, roundExampleCap, type UpdateBoundConfig } from '../../src/rounds/update-bound.js';

const config: UpdateBoundConfig = { mode: 'clip', ceiling: 100, initial: 1, quantile: 0.5, learningRate: 0.2 };

/** Norms of a round of `n` updates: log-normal around `median`. */
function roundOfNorms(random: () => number, n: number, median: number): number[] {
  return Array.from({ length: n }, () => median * Math.exp(0.5 * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())));
}

const l2 = (values: Float32Array): number => Math.sqrt(values.reduce((sum, v) => sum + v * v, 0));

describe('adaptive update bound (Andrew et al. 2021)', () => {
  it('starts at the initial value, then at the exact quantile of the first round', () => {
    expect(roundBound(config, null)).toBe(1);
    expect(nextEstimate(config, null, [5, 1, 3, 2])).toBe(2);
    expect(nextEstimate({ ...config, quantile: 0.75 }, null, [5, 1, 3, 2])).toBe(3);
  });

  it('tracks the target quantile of synthetic norms, from far above and far below, within a few dozen rounds', () => {
    for (const [start, quantile] of [
      [50, 0.5],
      [0.01, 0.5],
      [50, 0.9],
    ] as const) {
      const random = mulberry32(7);
      const cfg = { ...config, quantile };
      let estimate: number | null = start;
      for (let round = 0; round < 120; round++) estimate = nextEstimate(cfg, estimate, roundOfNorms(random, 50, 2));
      // The fraction of fresh norms at or below the estimate is close to the target.
      const fresh = roundOfNorms(random, 20_000, 2);
      const below = fresh.filter((norm) => norm <= estimate!).length / fresh.length;
      expect(Math.abs(below - quantile)).toBeLessThan(0.1);
    }
  });

  it('moves geometrically: exp(-η(b̄ - γ)) per round', () => {
    expect(nextEstimate(config, 4, [1, 2, 3, 5])).toBeCloseTo(4 * Math.exp(-0.2 * (0.75 - 0.5)), 12);
    expect(nextEstimate(config, 4, [])).toBe(4);
  });

  it('never exceeds the ceiling, whatever the norms', () => {
    expect(nextEstimate(config, null, [1e30, 1e30])).toBe(100);
    let estimate: number | null = 90;
    for (let round = 0; round < 50; round++) estimate = nextEstimate(config, estimate, [1e6, 1e6, 1e6]);
    expect(estimate).toBe(100);
    expect(roundBound(config, 1e9)).toBe(100);
  });

  it('is off in mode off: no bound, the estimate stays', () => {
    const off = { ...config, mode: 'off' as const };
    expect(roundBound(off, 3)).toBeNull();
    expect(decide(off, null, 1e30)).toEqual({ action: 'keep' });
    expect(nextEstimate(off, 3, [1e9])).toBe(3);
  });

  it('clips (default) or refuses an update above the bound; keeps one at or below it', () => {
    expect(decide(config, 2, 2)).toEqual({ action: 'keep' });
    expect(decide(config, 2, 8)).toEqual({ action: 'clip', scale: 0.25 });
    expect(decide({ ...config, mode: 'refuse' }, 2, 8)).toEqual({ action: 'refuse' });
  });
});

describe('bounding one update at intake', () => {
  const limits = { maxExamples: 1000, bound: 2, config };

  it('scales the delta down to the bound (a factor, the upload untouched) and clamps the example count', () => {
    const delta = Float32Array.from([30, 40]); // norm 50
    const bounded = boundInfluence(delta, 50, 1_000_000, limits);
    expect(bounded).toMatchObject({ numExamples: 1000, clamped: true, clipped: true, scale: 2 / 50 });
    expect(bounded.delta).toBe(delta);
    expect(Array.from(delta)).toEqual([30, 40]);
    expect(l2(scaledDelta(bounded))).toBeCloseTo(2, 5);
    expect(Array.from(scaledDelta(bounded))).toEqual([Math.fround(1.2), Math.fround(1.6)]);
  });

  it('leaves an update within both limits as it is', () => {
    const delta = Float32Array.from([0.3, 0.4]);
    expect(boundInfluence(delta, 0.5, 600, limits)).toEqual({ delta, norm: 0.5, numExamples: 600, scale: 1, clamped: false, clipped: false });
  });

  it("in a DP round, always clips to the round's C (whatever the bound's mode) and leaves the adaptive bound out", () => {
    const dp = { ...limits, config: { ...config, mode: 'off' as const }, dpClipNorm: 0.25 };
    expect(boundInfluence(Float32Array.from([0.3, 0.4]), 0.5, 600, dp)).toMatchObject({ scale: 0.5, clipped: true, norm: 0.5 });
    expect(boundInfluence(Float32Array.from([0.06, 0.08]), 0.1, 600, dp)).toMatchObject({ scale: 1, clipped: false });
  });

  it('refuses with norm_exceeded in refuse mode', () => {
    const refuse = { ...limits, config: { ...config, mode: 'refuse' as const } };
    expect(() => boundInfluence(Float32Array.from([30, 40]), 50, 10, refuse)).toThrow(UploadRejection);
    try {
      boundInfluence(Float32Array.from([30, 40]), 50, 10, refuse);
    } catch (error) {
      expect((error as UploadRejection).reason).toBe('norm_exceeded');
    }
  });
});

describe('adaptive example cap', () => {
  it('is the configured maximum until a round committed, then its median count, never above the maximum', () => {
    expect(roundExampleCap(1000, null)).toBe(1000);
    const cap = nextExampleCap(1000, null, [250, 300, 350, 1_000_000]);
    expect(cap).toBe(300);
    expect(roundExampleCap(1000, cap)).toBe(300);
    expect(nextExampleCap(1000, 300, [5000, 5000])).toBe(1000);
    expect(nextExampleCap(1000, 300, [])).toBe(300);
  });
});

describe('commit check', () => {
  const base = Float32Array.from([1, 2, 3]);

  it('passes finite weights within the change limit', () => {
    expect(checkCommit(base, Float32Array.from([1.5, 2, 3]), 1)).toBeNull();
  });

  it('refuses non-finite weights, naming the first', () => {
    const refusal = checkCommit(base, Float32Array.from([1, Infinity, NaN]), 1e9);
    expect(refusal).toMatchObject({ reason: 'non_finite_weights' });
    expect(refusal!.message).toContain('weight 1');
    expect(commitRefusalMessage(refusal!)).toMatch(/^commit refused \(non_finite_weights\): .*stays as it was$/);
  });

  it('refuses a change whose L2 norm is above the limit, even between finite float32 extremes', () => {
    expect(checkCommit(base, Float32Array.from([4, 6, 3]), 4.9)).toMatchObject({ reason: 'update_too_large' });
    expect(checkCommit(Float32Array.from([-3.4e38]), Float32Array.from([3.4e38]), Number.MAX_VALUE)).toBeNull();
    expect(checkCommit(Float32Array.from([-3.4e38]), Float32Array.from([3.4e38]), 1e38)).toMatchObject({ reason: 'update_too_large' });
  });
});
