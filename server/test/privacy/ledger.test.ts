import { describe, expect, it } from 'vitest';
import type { DifferentialPrivacy } from '../../src/contract/index.js';
import { accountAfterRound, accountCarried, budgetRefusal, epsilonAt } from '../../src/privacy/ledger.js';
import { epsilonOfRounds } from '../../src/privacy/rdp.js';
import { poissonSample } from '../../src/rounds/selection.js';

const DELTA = 1e-5;
const round = (noiseMultiplier: number, samplingRate: number): DifferentialPrivacy => ({ noiseMultiplier, clipNorm: 1, samplingRate, noise: 'central' });

describe('the privacy ledger', () => {
  it('composes DP rounds in RDP: the account after several rounds is the accountant of all of them', () => {
    const first = accountAfterRound(null, true, round(1.1, 0.01), DELTA);
    const second = accountAfterRound(first, first.protected, round(1.1, 0.01), DELTA);
    const third = accountAfterRound(second, second.protected, round(2, 0.05), DELTA);
    const expected = epsilonOfRounds(
      [
        { samplingRate: 0.01, noiseMultiplier: 1.1, rounds: 2 },
        { samplingRate: 0.05, noiseMultiplier: 2, rounds: 1 },
      ],
      DELTA,
    ).epsilon;
    expect(third).toMatchObject({ protected: true, dpRounds: 3, delta: DELTA });
    expect(third.epsilon).toBeCloseTo(expected, 12);
    expect(epsilonAt(third, 1e-6)).toBeGreaterThan(third.epsilon); // a smaller δ costs more ε
  });

  it('a round without DP leaves the ledger as it was but unprotects its version and every version trained from it', () => {
    const dp = accountAfterRound(null, true, round(1, 0.1), DELTA);
    const plain = accountAfterRound(dp, dp.protected, null, DELTA);
    expect(plain).toMatchObject({ protected: false, dpRounds: 1, epsilon: dp.epsilon });
    expect(accountAfterRound(plain, plain.protected, round(1, 0.1), DELTA)).toMatchObject({ protected: false, dpRounds: 2 });
  });

  it('rollbacks and registrations carry the ledger on, with the lineage of what they copy', () => {
    const dp = accountAfterRound(null, false, round(1, 0.1), DELTA);
    expect(accountCarried(dp, true, DELTA)).toMatchObject({ protected: true, dpRounds: 1, epsilon: dp.epsilon });
    expect(accountCarried(null, true, DELTA)).toMatchObject({ protected: true, dpRounds: 0, epsilon: 0 });
  });

  it('refuses rounds that would exceed the budget, and rounds without DP under a budget; allows anything without one', () => {
    const budget = { epsilon: 3.5, delta: DELTA };
    const one = accountAfterRound(null, true, round(2, 1), DELTA); // ε 2.17
    const two = accountAfterRound(one, true, round(2, 1), DELTA); // ε 3.19
    expect(budgetRefusal(one, round(2, 1), budget)).toBeNull();
    expect(budgetRefusal(two, round(2, 1), budget)).toMatch(/would bring it to 4\.0113, above the budget of 3\.5/);
    expect(budgetRefusal(two, null, budget)).toMatch(/every round must be differentially private/);
    expect(budgetRefusal(two, null, null)).toBeNull();
  });
});

describe('Poisson sampling', () => {
  it('takes each candidate independently with the rate: the count is Binomial(N, q)', () => {
    const candidates = Array.from({ length: 100_000 }, (_, i) => i);
    for (const rate of [0.01, 0.3]) {
      const taken = poissonSample(candidates, rate).length;
      const mean = rate * candidates.length;
      expect(Math.abs(taken - mean)).toBeLessThan(5 * Math.sqrt(mean * (1 - rate)));
    }
    expect(poissonSample(candidates, 1)).toHaveLength(candidates.length);
    expect(() => poissonSample(candidates, 0)).toThrow(/sampling rate/);
  });
});
