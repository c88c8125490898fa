/**
 * Robust summaries of devices' local tests of one model version (pure: no I/O). Each device's
 * report counts once: medians and quartiles across devices, and means in which no device's weight
 * exceeds a cap relative to the others, so that one device claiming many examples cannot drag them.
 */
import type { LocalEvaluationSummary, Quartiles } from '../contract/index.js';

/** The most examples one report counts for (the protocol's schema allows more; docs/SECURITY.md). */
export const COUNTED_EXAMPLES_CAP = 10_000;
/** A device's weight in the means is its counted examples, capped at this multiple of their median. */
export const WEIGHT_CAP_FACTOR = 2;

/** The numbers of one stored report that a summary uses. */
export interface ReportNumbers {
  numExamples: number;
  globalLoss: number;
  globalAccuracy: number;
  personalLoss: number | null;
  personalAccuracy: number | null;
  adopted: boolean;
}

export function countedExamples(numExamples: number): number {
  return Math.min(numExamples, COUNTED_EXAMPLES_CAP);
}

/** The p-quantile of sorted values, interpolating linearly between the closest ranks (R's type 7). */
function quantileOfSorted(sorted: Float64Array, p: number): number {
  const position = (sorted.length - 1) * p;
  const below = Math.floor(position);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below]! + (sorted[above]! - sorted[below]!) * (position - below);
}

/** Quartiles of at least one value. */
export function quartiles(values: ArrayLike<number>): Quartiles {
  const sorted = Float64Array.from(values).sort();
  return { q1: quantileOfSorted(sorted, 0.25), median: quantileOfSorted(sorted, 0.5), q3: quantileOfSorted(sorted, 0.75) };
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

/** The summary of a version's reports (one per device); null without reports. O(n log n), plain loops over typed arrays. */
export function summarizeReports(reports: readonly ReportNumbers[]): LocalEvaluationSummary | null {
  const n = reports.length;
  if (n === 0) return null;
  const counted = new Float64Array(n);
  const globalAccuracy = new Float64Array(n);
  const globalLoss = new Float64Array(n);
  // Reports with a personal model (both of its numbers present), packed at the front.
  const personalAccuracy = new Float64Array(n);
  const personalLoss = new Float64Array(n);
  const personalCounted = new Float64Array(n);
  let personal = 0;
  let personalBetter = 0;
  let adopted = 0;
  let numExamples = 0;
  for (let i = 0; i < n; i++) {
    const r = reports[i]!;
    counted[i] = countedExamples(r.numExamples);
    numExamples += counted[i]!;
    globalAccuracy[i] = r.globalAccuracy;
    globalLoss[i] = r.globalLoss;
    if (r.adopted) adopted++;
    if (r.personalAccuracy !== null && r.personalLoss !== null) {
      personalAccuracy[personal] = r.personalAccuracy;
      personalLoss[personal] = r.personalLoss;
      personalCounted[personal] = counted[i]!;
      if (r.personalAccuracy > r.globalAccuracy) personalBetter++;
      personal++;
    }
  }
  const weightCap = WEIGHT_CAP_FACTOR * quartiles(counted).median;
  const cap = (examples: Float64Array) => examples.map((e) => Math.min(e, weightCap));
  const weights = cap(counted);
  const personalWeights = cap(personalCounted.subarray(0, personal));
  const personalAccuracies = personalAccuracy.subarray(0, personal);
  const personalLosses = personalLoss.subarray(0, personal);
  const hasPersonal = personal > 0;
  let personalNumExamples = 0;
  for (let i = 0; i < personal; i++) personalNumExamples += personalCounted[i]!;

  return {
    reports: n,
    numExamples,
    globalAccuracy: weightedMean(globalAccuracy, weights),
    globalLoss: weightedMean(globalLoss, weights),
    personalAccuracy: hasPersonal ? weightedMean(personalAccuracies, personalWeights) : null,
    personalLoss: hasPersonal ? weightedMean(personalLosses, personalWeights) : null,
    personalNumExamples,
    adopted,
    weightCap,
    spread: {
      globalAccuracy: quartiles(globalAccuracy),
      globalLoss: quartiles(globalLoss),
      personalAccuracy: hasPersonal ? quartiles(personalAccuracies) : null,
      personalLoss: hasPersonal ? quartiles(personalLosses) : null,
      personalReports: personal,
      personalBetterShare: hasPersonal ? personalBetter / personal : null,
    },
  };
}
