/**
 * How far one distribution of predictions moved from another, pure. Counts are turned into
 * proportions with a small floor (empty bins would make PSI infinite), as PSI is usually computed.
 */

/** Floor of a bin's proportion, so that a class one version never predicts does not give an infinite PSI. */
const EPSILON = 1e-4;

function proportions(counts: readonly number[], length: number): number[] {
  const total = counts.reduce((a, b) => a + b, 0);
  const out = Array.from({ length }, (_, i) => Math.max((counts[i] ?? 0) / (total || 1), EPSILON));
  const sum = out.reduce((a, b) => a + b, 0);
  return out.map((p) => p / sum);
}

/**
 * Population stability index of `actual` against `expected`: sum (a - e) ln(a / e). Rules of thumb:
 * below 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 a large one.
 */
export function populationStabilityIndex(expected: readonly number[], actual: readonly number[]): number {
  const length = Math.max(expected.length, actual.length);
  const e = proportions(expected, length);
  const a = proportions(actual, length);
  let psi = 0;
  for (let i = 0; i < length; i++) psi += (a[i]! - e[i]!) * Math.log(a[i]! / e[i]!);
  return psi;
}

/** Jensen-Shannon divergence in bits (0: same distribution, 1: disjoint). */
export function jensenShannonDivergence(p: readonly number[], q: readonly number[]): number {
  const length = Math.max(p.length, q.length);
  const totalP = p.reduce((a, b) => a + b, 0) || 1;
  const totalQ = q.reduce((a, b) => a + b, 0) || 1;
  let divergence = 0;
  for (let i = 0; i < length; i++) {
    const pi = (p[i] ?? 0) / totalP;
    const qi = (q[i] ?? 0) / totalQ;
    const mi = (pi + qi) / 2;
    if (pi > 0) divergence += 0.5 * pi * Math.log2(pi / mi);
    if (qi > 0) divergence += 0.5 * qi * Math.log2(qi / mi);
  }
  return Math.min(1, Math.max(0, divergence));
}
