import { describe, expect, it } from 'vitest';
import { EVALUATION_REPORT_LIMITS } from '@flock/client-sdk/protocol';
import { COUNTED_EXAMPLES_CAP, quartiles, summarizeReports, WEIGHT_CAP_FACTOR } from '../../src/rounds/evaluation-summary.js';
import type { EvaluationNumbers } from '../../src/storage/storage.js';
import { FETCHES_KEPT, OfferedVersions } from '../../src/rounds/offered-versions.js';

/** `expect.closeTo` to 12 digits, typed (the matcher itself is `any`). */
const closeTo = (value: number): number => expect.closeTo(value, 12) as number;

const honest = (globalAccuracy: number, numExamples = 100, personalAccuracy: number | null = null): EvaluationNumbers => ({
  numExamples,
  globalLoss: 1 - globalAccuracy,
  globalAccuracy,
  personalLoss: personalAccuracy === null ? null : 1 - personalAccuracy,
  personalAccuracy,
  adopted: true,
});

describe('summarizeReports', () => {
  it('has nothing to say without reports', () => {
    expect(summarizeReports([])).toBeNull();
  });

  it('takes quartiles across devices by linear interpolation between ranks (R type 7), whatever the order', () => {
    expect(quartiles([4, 1, 3, 2])).toEqual({ q1: 1.75, median: 2.5, q3: 3.25, p10: 1.3 });
    expect(quartiles([7])).toEqual({ q1: 7, median: 7, q3: 7, p10: 7 });
    expect(quartiles([5, 1, 9, 3, 7])).toEqual({ q1: 3, median: 5, q3: 7, p10: 1.8 });
  });

  it("caps each device's weight at twice the median counted examples, and counts at most the per-report cap", () => {
    const reports = [honest(0.8, 100), honest(0.9, 100), honest(0.7, 100), honest(0.0, EVALUATION_REPORT_LIMITS.maxExamples)];
    const summary = summarizeReports(reports)!;
    expect(summary.weightCap).toBe(WEIGHT_CAP_FACTOR * 100);
    expect(summary.numExamples).toBe(300 + COUNTED_EXAMPLES_CAP);
    // The big report weighs 200, not a million: (80 + 90 + 70 + 0) / 500.
    expect(summary.globalAccuracy).toBeCloseTo((100 * 0.8 + 100 * 0.9 + 100 * 0.7 + 200 * 0) / 500, 12);
    expect(summary.spread!.globalAccuracy).toEqual({ q1: closeTo(0.525), median: closeTo(0.75), q3: closeTo(0.825), p10: closeTo(0.21) });
  });

  it('keeps the median where the honest majority puts it when a third of the devices lie', () => {
    const reports = [...Array.from({ length: 20 }, (_, i) => honest(0.85 + i * 0.005, 50 + i)), ...Array.from({ length: 10 }, () => honest(0, 1_000_000))];
    const { spread, globalAccuracy } = summarizeReports(reports)!;
    expect(spread!.globalAccuracy.median).toBeGreaterThan(0.85);
    // Weights capped at twice the median: ten liars hold at most 10 * 2m of the total, not 99.99% of it.
    expect(globalAccuracy).toBeGreaterThan(0.4);
  });

  it('summarizes personal models over the reports that had one, with the share where personal beat global', () => {
    const summary = summarizeReports([honest(0.8, 10, 0.9), honest(0.8, 30, 0.7), honest(0.6, 20, 0.65), honest(0.9, 40)])!;
    expect(summary).toMatchObject({ reports: 4, numExamples: 100, personalNumExamples: 60, adopted: 4 });
    expect(summary.spread).toMatchObject({ personalReports: 3, personalBetterShare: 2 / 3, personalAccuracy: { median: 0.7 } });
    expect(summary.personalAccuracy).toBeCloseTo((10 * 0.9 + 30 * 0.7 + 20 * 0.65) / 60, 12);
  });

  it('has no personal numbers when no report had a personal model', () => {
    const summary = summarizeReports([honest(0.8), honest(0.6)])!;
    expect(summary).toMatchObject({ personalAccuracy: null, personalLoss: null, personalNumExamples: 0 });
    expect(summary.spread).toMatchObject({ personalAccuracy: null, personalLoss: null, personalReports: 0, personalBetterShare: null });
  });
});

describe('OfferedVersions', () => {
  it("offers the welcome's version, round versions published later, and fetched versions; nothing else", () => {
    const offers = new OfferedVersions(5);
    expect(offers.offers({ version: 5, roundId: null })).toBe(true);
    expect(offers.offers({ version: 6, roundId: 'r6' })).toBe(true);
    expect(offers.offers({ version: 7, roundId: null })).toBe(false); // a rollback: never broadcast
    expect(offers.offers({ version: 4, roundId: 'r4' })).toBe(false);
    offers.recordFetch(4);
    expect(offers.offers({ version: 4, roundId: 'r4' })).toBe(true);
  });

  it(`remembers the last ${FETCHES_KEPT} fetched versions only`, () => {
    const offers = new OfferedVersions(100);
    for (let v = 1; v <= FETCHES_KEPT + 1; v++) offers.recordFetch(v);
    expect(offers.offers({ version: 1, roundId: 'r' })).toBe(false);
    expect(offers.offers({ version: 2, roundId: 'r' })).toBe(true);
    expect(offers.offers({ version: FETCHES_KEPT + 1, roundId: 'r' })).toBe(true);
  });
});
