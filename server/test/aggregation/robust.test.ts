import { describe, expect, it } from 'vitest';
import { AggregationCapacityError, CoordinateMedian, Krum, TrimmedMean } from '../../src/aggregation/robust.js';
import { createStrategy } from '../../src/aggregation/strategies.js';
import type { ClientUpdate } from '../../src/aggregation/strategy.js';
import { randomVector, runRound, seededRandom, update, vec } from './helpers.js';

/** An arbitrary (Byzantine) update: huge values of random sign, some coordinates moderately off. */
function outlier(random: () => number, size: number): ClientUpdate {
  return {
    delta: Float32Array.from({ length: size }, () => (random() < -0.3 ? 5 : random() < 0 ? -1e30 : 1e30)),
    numExamples: 1e9, // and it claims a huge weight: robust aggregators ignore weights
  };
}

function honestRange(honest: readonly ClientUpdate[], i: number): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const u of honest) {
    lo = Math.min(lo, u.delta[i]!);
    hi = Math.max(hi, u.delta[i]!);
  }
  return [lo, hi];
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor((random() + 0.5) * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

describe('median', () => {
  it('matches hand-computed coordinate-wise medians (odd and even n), unweighted', () => {
    // coordinate 0: {1, 2, 100} -> 2; coordinate 1: {10, -5, 0} -> 0. Weights are ignored.
    const odd = runRound(createStrategy('median'), vec(0, 0), [update(1, 1, 10), update(1000, 2, -5), update(1, 100, 0)]);
    expect([...odd.weights]).toEqual([2, 0]);
    expect(odd.updateNorm).toBe(2);
    // + [3, 1]: coordinate 0: {1, 2, 3, 100} -> 2.5; coordinate 1: {-5, 0, 1, 10} -> 0.5
    const even = runRound(createStrategy('median'), vec(10, 10), [update(1, 1, 10), update(1, 2, -5), update(1, 100, 0), update(1, 3, 1)]);
    expect([...even.weights]).toEqual([12.5, 10.5]);
    expect(even.serverState).toBeNull();
  });

  it('stays within the honest range with up to ceil(n/2) - 1 arbitrary updates (property, 30 seeds)', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const random = seededRandom(seed);
      const size = 1 + Math.floor((random() + 0.5) * 300); // crosses the 256-coordinate block size
      const n = 1 + Math.floor((random() + 0.5) * 15);
      const byzantine = Math.ceil(n / 2) - 1;
      const honest = Array.from({ length: n - byzantine }, () => ({ delta: randomVector(random, size), numExamples: 1 }));
      const all = shuffled([...honest, ...Array.from({ length: byzantine }, () => outlier(random, size))], random);
      const { weights } = runRound(createStrategy('median'), new Float32Array(size), all);
      for (let i = 0; i < size; i++) {
        const [lo, hi] = honestRange(honest, i);
        if (!(weights[i]! >= lo && weights[i]! <= hi)) expect.fail(`seed ${seed}: coordinate ${i} = ${weights[i]} outside [${lo}, ${hi}]`);
      }
    }
  });
});

describe('trimmed-mean', () => {
  it('matches a hand-computed trimmed mean', () => {
    // n = 5, β = 0.2 -> k = floor(1) = 1 per side
    // coordinate 0: {1, 2, 3, 4, 100} -> drop 1 and 100 -> (2 + 3 + 4) / 3 = 3
    // coordinate 1: {-50, 0, 0, 3, 6} -> drop -50 and 6 -> (0 + 0 + 3) / 3 = 1
    const r = runRound(createStrategy('trimmed-mean', { trimFraction: 0.2 }), vec(1, 1), [
      update(1, 100, 0),
      update(1, 2, 6),
      update(1, 1, -50),
      update(1, 4, 3),
      update(1, 3, 0),
    ]);
    expect([...r.weights]).toEqual([4, 2]);
    expect(r.updateNorm).toBeCloseTo(Math.hypot(3, 1), 12);
  });

  it('stays within the honest range with up to floor(β·n) arbitrary updates (property, 30 seeds)', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const random = seededRandom(1000 + seed);
      const size = 1 + Math.floor((random() + 0.5) * 300);
      const beta = 0.1 + (random() + 0.5) * 0.35; // (0.1, 0.45)
      let n = 3 + Math.floor((random() + 0.5) * 20);
      while (Math.floor(beta * n + 1e-9) < 1) n++;
      const k = Math.floor(beta * n + 1e-9);
      const honest = Array.from({ length: n - k }, () => ({ delta: randomVector(random, size), numExamples: 1 + seed }));
      const all = shuffled([...honest, ...Array.from({ length: k }, () => outlier(random, size))], random);
      const { weights } = runRound(createStrategy('trimmed-mean', { trimFraction: beta }), new Float32Array(size), all);
      for (let i = 0; i < size; i++) {
        const [lo, hi] = honestRange(honest, i);
        // The mean is computed in float64 and rounded to float32 once: allow that rounding.
        const slack = Math.max(Math.abs(lo), Math.abs(hi)) * 2 ** -23;
        if (!(weights[i]! >= lo - slack && weights[i]! <= hi + slack)) expect.fail(`seed ${seed}: coordinate ${i} = ${weights[i]} outside [${lo}, ${hi}]`);
      }
    }
  });

  it('refuses a round too small to trim anything, naming the numbers', () => {
    const aggregator = createStrategy('trimmed-mean', { trimFraction: 0.1 }).begin({ globalWeights: vec(0), serverState: null });
    for (let i = 0; i < 9; i++) aggregator.add(update(1, i));
    expect(() => aggregator.finish()).toThrow(/trimFraction 0.1 trims floor\(0.1 × 9\) = 0 updates per side; it needs at least 10 updates \(got n = 9\)/);
  });
});

describe('krum and multi-krum', () => {
  // u0 = [0, 0], u1 = [2, 0], u2 = [0, 1], u3 = [10, 10], u4 = [1, 1]; n = 5, f = 1 -> n - f - 2 = 2 neighbours
  // squared distances: d01 = 4, d02 = 1, d03 = 200, d04 = 2, d12 = 5, d13 = 164, d14 = 2, d23 = 181, d24 = 1, d34 = 162
  // scores (sum of the 2 smallest): u0 = 1 + 2 = 3, u1 = 2 + 4 = 6, u2 = 1 + 1 = 2, u3 = 162 + 164 = 326, u4 = 1 + 2 = 3
  const points = () => [update(1, 0, 0), update(1, 2, 0), update(1, 0, 1), update(1, 10, 10), update(1, 1, 1)];

  it('scores by the n - f - 2 nearest neighbours (hand-computed)', () => {
    const krum = new Krum(2, { byzantineClients: 1, select: null });
    points().forEach((u) => krum.add(u));
    expect([...krum.scores()]).toEqual([3, 6, 2, 326, 3]);
  });

  it('krum picks the lowest score: u2', () => {
    const r = runRound(createStrategy('krum', { byzantineClients: 1 }), vec(5, 5), points());
    expect([...r.weights]).toEqual([5, 6]);
    expect(r.updateNorm).toBe(1);
  });

  it('multi-krum averages the m best plainly (ties by arrival): m = 3 -> u2, u0, u4; default m = n - f = 4 adds u1', () => {
    const three = runRound(createStrategy('multi-krum', { byzantineClients: 1, multiKrumSelect: 3 }), vec(0, 0), points());
    expect(three.weights[0]).toBeCloseTo(1 / 3, 7); // (0 + 0 + 1) / 3
    expect(three.weights[1]).toBeCloseTo(2 / 3, 7); // (1 + 0 + 1) / 3
    const dflt = runRound(createStrategy('multi-krum', { byzantineClients: 1 }), vec(0, 0), points());
    expect([...dflt.weights]).toEqual([0.75, 0.5]); // ([0,1] + [0,0] + [1,1] + [2,0]) / 4
    expect(dflt.warnings).toEqual([]);
  });

  it('multi-krum caps m at n - f, with a warning', () => {
    const r = runRound(createStrategy('multi-krum', { byzantineClients: 1, multiKrumSelect: 5 }), vec(0, 0), points());
    expect([...r.weights]).toEqual([0.75, 0.5]);
    expect(r.warnings![0]).toMatch(/multiKrumSelect = 5 exceeds n - f = 4; averaged the 4 best-scored updates/);
  });

  it('refuses n <= 2f + 2 at finish, naming n and f', () => {
    for (const [name, f, n] of [
      ['krum', 1, 4],
      ['multi-krum', 2, 6],
      ['krum', 0, 2],
    ] as const) {
      const aggregator = createStrategy(name, { byzantineClients: f }).begin({ globalWeights: vec(0), serverState: null });
      for (let i = 0; i < n; i++) aggregator.add(update(1, i));
      expect(() => aggregator.finish()).toThrow(
        new RegExp(`${name} needs n > 2f \\+ 2 updates to tolerate f = ${f} Byzantine ones \\(at least ${2 * f + 3}\\); got n = ${n}`),
      );
    }
    // n = 2f + 3 is enough. Points 0..4 on a line, 2 neighbours: scores [1+4, 1+1, 1+1, 1+1, 1+4]
    // -> a tie between 1, 2 and 3, broken by arrival: 1.
    const ok = createStrategy('krum', { byzantineClients: 1 }).begin({ globalWeights: vec(0), serverState: null });
    for (let i = 0; i < 5; i++) ok.add(update(1, i));
    expect(ok.finish().weights[0]).toBe(1);
  });

  it('picks an honest update when f Byzantine ones are far away, colluding or not (property, 30 seeds)', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const random = seededRandom(5000 + seed);
      const size = 1 + Math.floor((random() + 0.5) * 60);
      const f = Math.floor((random() + 0.5) * 4);
      const n = 2 * f + 3 + Math.floor((random() + 0.5) * 5);
      const center = randomVector(random, size, 2);
      const honest = Array.from({ length: n - f }, () => ({ delta: randomVector(random, size, 0.1).map((v, i) => v + center[i]!), numExamples: 10 }));
      const collude = random() < 0;
      const far = outlier(random, size);
      const byzantine = Array.from({ length: f }, () => (collude ? { delta: far.delta.slice(), numExamples: 1e9 } : outlier(random, size)));
      const all = shuffled([...honest, ...byzantine], random);
      const { weights } = runRound(createStrategy('krum', { byzantineClients: f }), new Float32Array(size), all);
      if (!honest.some((u) => u.delta.every((v, i) => v === weights[i]))) expect.fail(`seed ${seed}: krum did not return an honest update`);
      // Multi-krum with m = n - f: exactly the honest updates, averaged plainly.
      const multi = runRound(createStrategy('multi-krum', { byzantineClients: f }), new Float32Array(size), all).weights;
      for (let i = 0; i < size; i++) {
        const mean = honest.reduce((sum, u) => sum + u.delta[i]!, 0) / honest.length;
        expect(multi[i]).toBeCloseTo(mean, 5);
      }
    }
  });
});

describe('buffered strategies', () => {
  const buffered = ['median', 'trimmed-mean', 'krum', 'multi-krum'] as const;

  it('refuse updates beyond maxBufferedUpdates with a clear error', () => {
    for (const name of buffered) {
      const aggregator = createStrategy(name, { maxBufferedUpdates: 5 }).begin({
        globalWeights: new Float32Array(1000),
        serverState: null,
      });
      for (let i = 0; i < 5; i++) aggregator.add({ delta: new Float32Array(1000), numExamples: 1 });
      expect(() => aggregator.add({ delta: new Float32Array(1000), numExamples: 1 })).toThrow(AggregationCapacityError);
      expect(() => aggregator.add({ delta: new Float32Array(1000), numExamples: 1 })).toThrow(
        new RegExp(`${name} keeps every update in memory and holds at most maxBufferedUpdates = 5 \\(19.5 KiB for this model\\); update 6 refused`),
      );
      expect(aggregator.count).toBe(5);
    }
    // The default bound is 1000.
    const median = new CoordinateMedian(1);
    for (let i = 0; i < 1000; i++) median.add({ delta: vec(i), numExamples: 1 });
    expect(() => median.add({ delta: vec(0), numExamples: 1 })).toThrow(/maxBufferedUpdates = 1000/);
  });

  it('keep references but never mutate the updates (views over one shared buffer, like network frames)', () => {
    const random = seededRandom(77);
    for (const name of buffered) {
      const frame = randomVector(random, 5 + 7 * 300);
      const updates = Array.from({ length: 7 }, (_, k) => ({ delta: frame.subarray(5 + k * 300, 5 + (k + 1) * 300), numExamples: 3 }));
      const copies = updates.map((u) => u.delta.slice());
      runRound(createStrategy(name), new Float32Array(300), updates);
      updates.forEach((u, k) => expect([...u.delta]).toEqual([...copies[k]!]));
    }
  });

  it('validate each update: length, weight, finiteness; and refuse empty rounds', () => {
    for (const name of buffered) {
      const aggregator = createStrategy(name).begin({ globalWeights: new Float32Array(3), serverState: null });
      expect(() => aggregator.add({ delta: new Float32Array(2), numExamples: 1 })).toThrow(/length mismatch/);
      expect(() => aggregator.add({ delta: new Float32Array(3), numExamples: 0 })).toThrow(/positive/);
      expect(() => aggregator.add({ delta: vec(0, NaN, 0), numExamples: 1 })).toThrow(/non-finite value at index 1/);
      expect(() => aggregator.finish()).toThrow(/no updates/);
    }
    expect(() => new TrimmedMean(3, 0.5)).toThrow(/trimFraction/);
  });
});
