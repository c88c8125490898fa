/**
 * Robust summaries of devices' local tests of one model version (pure: no I/O). Each device's
 * report counts once: medians and quartiles across devices, and means in which no device's weight
 * exceeds a cap relative to the others, so that one device claiming many examples cannot drag them.
 */
import type { LocalEvaluationSummary, Quartiles } from '../contract/index.js';
import type { EvaluationNumbers } from '../storage/storage.js';

/** The most examples one report counts for (the protocol's schema allows more; docs/SECURITY.md). */
export const COUNTED_EXAMPLES_CAP = 10_000;
/** A device's weight in the means is its counted examples, capped at this multiple of their median. */
export const WEIGHT_CAP_FACTOR = 2;

function countedExamples(numExamples: number): number {
  return Math.min(numExamples, COUNTED_EXAMPLES_CAP);
}

/** The p-quantile of sorted values, interpolating linearly between the closest ranks (R's type 7). */
function quantileOfSorted(sorted: Float64Array, p: number): number {
  const position = (sorted.length - 1) * p;
  const below = Math.floor(position);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below]! + (sorted[above]! - sorted[below]!) * (position - below);
}

/** Quartiles (and the 10th percentile) of at least one value. */
export function quartiles(values: ArrayLike<number>): Quartiles {
  const sorted = Float64Array.from(values).sort();
  return { q1: quantileOfSorted(sorted, 0.25), median: quantileOfSorted(sorted, 0.5), q3: quantileOfSorted(sorted, 0.75), p10: quantileOfSorted(sorted, 0.1) };
}

/** sum(values[i] * weights[i]) / sum(weights). */
function weightedMean(values: Float64Array, weights: Float64Array): number {
  let sum = 0;
  let total = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i]! * weights[i]!;
    total += weights[i]!;
  }
  return sum / total;
}

/** The reports' numbers as columns; the personal ones only for reports with a personal model (both numbers present). */
interface Columns {
  counted: Float64Array;
  globalAccuracy: Float64Array;
  globalLoss: Float64Array;
  personalCounted: Float64Array;
  personalAccuracy: Float64Array;
  personalLoss: Float64Array;
  /** Reports in which the personal model was more accurate than the global one. */
  personalBetter: number;
  adopted: number;
}

function columnsOf(reports: readonly EvaluationNumbers[]): Columns {
  const n = reports.length;
  const columns = { counted: new Float64Array(n), globalAccuracy: new Float64Array(n), globalLoss: new Float64Array(n), personalBetter: 0, adopted: 0 };
  const personal = { counted: new Float64Array(n), accuracy: new Float64Array(n), loss: new Float64Array(n) };
  let p = 0;
  for (let i = 0; i < n; i++) {
    const r = reports[i]!;
    columns.counted[i] = countedExamples(r.numExamples);
    columns.globalAccuracy[i] = r.globalAccuracy;
    columns.globalLoss[i] = r.globalLoss;
    if (r.adopted) columns.adopted++;
    if (r.personalAccuracy === null || r.personalLoss === null) continue;
    personal.counted[p] = columns.counted[i]!;
    personal.accuracy[p] = r.personalAccuracy;
    personal.loss[p] = r.personalLoss;
    if (r.personalAccuracy > r.globalAccuracy) columns.personalBetter++;
    p++;
  }
  return {
    ...columns,
    personalCounted: personal.counted.subarray(0, p),
    personalAccuracy: personal.accuracy.subarray(0, p),
    personalLoss: personal.loss.subarray(0, p),
  };
}

function sum(values: Float64Array): number {
  let total = 0;
  for (let i = 0; i < values.length; i++) total += values[i]!;
  return total;
}

/** The summary of a version's reports (one per device); null without reports. O(n log n), loops over typed arrays. */
export function summarizeReports(reports: readonly EvaluationNumbers[]): LocalEvaluationSummary | null {
  if (reports.length === 0) return null;
  const c = columnsOf(reports);
  const weightCap = WEIGHT_CAP_FACTOR * quartiles(c.counted).median;
  const capped = (examples: Float64Array) => examples.map((e) => Math.min(e, weightCap));
  const personalReports = c.personalAccuracy.length;
  const personal = personalReports > 0;
  const weights = capped(c.counted);
  const personalWeights = capped(c.personalCounted);
  return {
    reports: reports.length,
    numExamples: sum(c.counted),
    globalAccuracy: weightedMean(c.globalAccuracy, weights),
    globalLoss: weightedMean(c.globalLoss, weights),
    personalAccuracy: personal ? weightedMean(c.personalAccuracy, personalWeights) : null,
    personalLoss: personal ? weightedMean(c.personalLoss, personalWeights) : null,
    personalNumExamples: sum(c.personalCounted),
    adopted: c.adopted,
    weightCap,
    spread: {
      globalAccuracy: quartiles(c.globalAccuracy),
      globalLoss: quartiles(c.globalLoss),
      personalAccuracy: personal ? quartiles(c.personalAccuracy) : null,
      personalLoss: personal ? quartiles(c.personalLoss) : null,
      personalReports,
      personalBetterShare: personal ? c.personalBetter / personalReports : null,
    },
  };
}
