import { describe, expect, it } from 'vitest';
import { medianInPlace, selectInPlace, trimmedMeanInPlace } from '../../src/aggregation/order-statistics.js';
import { seededRandom } from './helpers.js';

function sorted(values: ArrayLike<number>): number[] {
  return Array.from(values).sort((a, b) => a - b);
}

/** Inputs that stress the pivot choice: sorted, reversed, constant, few distinct values, organ pipe. */
function patterns(n: number, random: () => number): Float32Array[] {
  return [
    Float32Array.from({ length: n }, () => random()),
    Float32Array.from({ length: n }, (_, i) => i),
    Float32Array.from({ length: n }, (_, i) => n - i),
    new Float32Array(n).fill(3),
    Float32Array.from({ length: n }, () => Math.floor((random() + 0.5) * 3)),
    Float32Array.from({ length: n }, (_, i) => Math.min(i, n - 1 - i)),
    Float32Array.from({ length: n }, (_, i) => (i % 2 ? 1e30 : -1e30)),
  ];
}

describe('order statistics', () => {
  it('selectInPlace puts the value of rank k at k, smaller before and larger after (all patterns, n = 1..120)', () => {
    const random = seededRandom(11);
    for (let n = 1; n <= 120; n++) {
      for (const values of patterns(n, random)) {
        const expected = sorted(values);
        for (const k of new Set([0, n >> 1, n - 1, Math.floor((random() + 0.5) * n)])) {
          const work = values.slice();
          selectInPlace(work, 0, n, k);
          let partitioned = work[k] === expected[k];
          for (let i = 0; i < k; i++) partitioned &&= work[i]! <= work[k]!;
          for (let i = k + 1; i < n; i++) partitioned &&= work[i]! >= work[k]!;
          const permutation = sorted(work).every((value, i) => value === expected[i]);
          if (!partitioned || !permutation) expect.fail(`select failed: n=${n} k=${k} input=${[...values].join(',')}`);
        }
      }
    }
  });

  it('selectInPlace works on a sub-range and leaves the rest alone', () => {
    const values = Float32Array.from([9, 9, 5, 1, 4, 2, 3, 9, 9]);
    selectInPlace(values, 2, 7, 4); // range [5,1,4,2,3]: rank 2 is 3
    expect(values[4]).toBe(3);
    expect([values[0], values[1], values[7], values[8]]).toEqual([9, 9, 9, 9]);
    expect(() => selectInPlace(values, 2, 7, 7)).toThrow(/outside/);
  });

  it('median: hand-computed odd and even cases, and the sort-based definition', () => {
    // [5, 1, 3] -> sorted [1, 3, 5] -> 3; [4, 1, 3, 2] -> sorted [1, 2, 3, 4] -> (2 + 3) / 2 = 2.5
    expect(medianInPlace(Float32Array.from([5, 1, 3]), 0, 3)).toBe(3);
    expect(medianInPlace(Float32Array.from([4, 1, 3, 2]), 0, 4)).toBe(2.5);
    expect(medianInPlace(Float32Array.from([7]), 0, 1)).toBe(7);
    const random = seededRandom(3);
    for (let n = 1; n <= 60; n++) {
      for (const values of patterns(n, random)) {
        const s = sorted(values);
        const expected = n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
        expect(medianInPlace(values.slice(), 0, n)).toBe(expected);
      }
    }
  });

  it('trimmed mean: hand-computed case, and the sort-based definition', () => {
    // [100, 2, 1, 4, 3], trim 1 per side -> drop 1 and 100 -> (2 + 3 + 4) / 3 = 3
    expect(trimmedMeanInPlace(Float32Array.from([100, 2, 1, 4, 3]), 0, 5, 1)).toBe(3);
    // trim 0 is the plain mean
    expect(trimmedMeanInPlace(Float32Array.from([1, 2, 6]), 0, 3, 0)).toBe(3);
    expect(() => trimmedMeanInPlace(new Float32Array(4), 0, 4, 2)).toThrow(/cannot trim/);
    const random = seededRandom(5);
    for (let n = 1; n <= 60; n++) {
      for (const values of patterns(n, random)) {
        for (let trim = 0; 2 * trim < n; trim += Math.max(1, n >> 3)) {
          const s = sorted(values).slice(trim, n - trim);
          const expected = s.reduce((a, b) => a + b, 0) / s.length;
          const actual = trimmedMeanInPlace(values.slice(), 0, n, trim);
          expect(Math.abs(actual - expected)).toBeLessThanOrEqual(Math.abs(expected) * 1e-12 + 1e-12);
        }
      }
    }
  });
});
