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

function weightedMean(values: ArrayLike<number>, weights: ArrayLike<number>): number {
  let sum = 0;
  let total = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i]! * weights[i]!;
    total += weights[i]!;
  }
  return sum / total;
}

/** The summary of a version's reports (one per device); null without reports. O(n log n). */
export function summarizeReports(reports: readonly ReportNumbers[]): LocalEvaluationSummary | null {
  const n = reports.length;
  if (n === 0) return null;
  const counted = Float64Array.from(reports, (r) => countedExamples(r.numExamples));
  const weightCap = WEIGHT_CAP_FACTOR * quartiles(counted).median;
  const weights = counted.map((examples) => Math.min(examples, weightCap));

  const globalAccuracy = Float64Array.from(reports, (r) => r.globalAccuracy);
  const globalLoss = Float64Array.from(reports, (r) => r.globalLoss);
  // Reports with a personal model: both of its numbers present.
  const personal = reports.flatMap((r, i) => (r.personalAccuracy !== null && r.personalLoss !== null ? [i] : []));
  const personalAccuracy = Float64Array.from(personal, (i) => reports[i]!.personalAccuracy!);
  const personalLoss = Float64Array.from(personal, (i) => reports[i]!.personalLoss!);
  const personalWeights = Float64Array.from(personal, (i) => weights[i]!);
  const personalBetter = personal.filter((i) => reports[i]!.personalAccuracy! > reports[i]!.globalAccuracy).length;
  const hasPersonal = personal.length > 0;

  return {
    reports: n,
    numExamples: counted.reduce((sum, examples) => sum + examples, 0),
    globalAccuracy: weightedMean(globalAccuracy, weights),
    globalLoss: weightedMean(globalLoss, weights),
    personalAccuracy: hasPersonal ? weightedMean(personalAccuracy, personalWeights) : null,
    personalLoss: hasPersonal ? weightedMean(personalLoss, personalWeights) : null,
    personalNumExamples: personal.reduce((sum, i) => sum + counted[i]!, 0),
    adopted: reports.filter((r) => r.adopted).length,
    weightCap,
    spread: {
      globalAccuracy: quartiles(globalAccuracy),
      globalLoss: quartiles(globalLoss),
      personalAccuracy: hasPersonal ? quartiles(personalAccuracy) : null,
      personalLoss: hasPersonal ? quartiles(personalLoss) : null,
      personalReports: personal.length,
      personalBetterShare: hasPersonal ? personalBetter / personal.length : null,
    },
  };
}
