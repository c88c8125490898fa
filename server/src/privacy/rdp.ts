import erfcx from '@stdlib/math-base-special-erfcx';

/*
 * Rényi differential privacy of the Poisson-subsampled Gaussian mechanism, pure math.
 *
 * A round that includes each device independently with probability q and adds Gaussian noise of
 * standard deviation z·C to a sum of updates clipped to L2 norm C is, per round, (α, ε_α)-RDP with
 * ε_α = log(A_α) / (α − 1) (Mironov, Talwar and Zhang 2019, "Rényi Differential Privacy of the
 * Sampled Gaussian Mechanism", sections 3.2 and 3.3), under add-or-remove-one-device adjacency.
 * RDP composes by addition over rounds; `epsilonFromRdp` converts to (ε, δ)-DP with the bound of
 * Balle et al. 2020 ("Hypothesis testing interpretations and Rényi differential privacy",
 * Theorem 21), the one TF Privacy, Opacus and dp_accounting use, so their published numbers are
 * this module's test values.
 */

/** Orders α tried when none are given: dense where the optimum usually is, sparse above. */
export const DEFAULT_ORDERS: readonly number[] = [
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10), // 1.1 .. 10.9
  ...Array.from({ length: 53 }, (_, i) => 11 + i), // 11 .. 63
  128,
  256,
  512,
  1024,
];

/** log(exp(a) + exp(b)) without overflow. */
function logAdd(a: number, b: number): number {
  const high = Math.max(a, b);
  if (high === -Infinity) return -Infinity;
  return high + Math.log1p(Math.exp(Math.min(a, b) - high));
}

/** log(exp(a) − exp(b)) for a ≥ b. */
function logSub(a: number, b: number): number {
  if (b === -Infinity) return a;
  if (a === b) return -Infinity;
  if (a < b) throw new RangeError('logSub of a negative difference');
  return a + Math.log(-Math.expm1(b - a));
}

/** log(erfc(x)), accurate far into the tails (erfc underflows past x ≈ 27; erfcx does not). */
function logErfc(x: number): number {
  if (x >= 0) return Math.log(erfcx(x)) - x * x;
  // erfc(x) = 2 − erfc(−x), and erfc(−x) < 1 here
  return Math.log(2 - erfcx(-x) * Math.exp(-x * x));
}

/** log A_α for an integer order: the binomial expansion (Mironov et al. 2019, section 3.2). */
function logAInteger(q: number, sigma: number, alpha: number): number {
  let logA = -Infinity;
  let logBinomial = 0; // log C(α, 0)
  for (let k = 0; k <= alpha; k++) {
    if (k > 0) logBinomial += Math.log((alpha - k + 1) / k);
    const term = logBinomial + k * Math.log(q) + (alpha - k) * Math.log1p(-q) + (k * k - k) / (2 * sigma * sigma);
    logA = logAdd(logA, term);
  }
  return logA;
}

/**
 * log A_α for a fractional order: the two convergent series split at z0 (Mironov et al. 2019,
 * section 3.3), summed until their terms fall below e^-30 of the total.
 */
function logAFractional(q: number, sigma: number, alpha: number): number {
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  let binomial = 1; // C(α, i), generalized to real α: its sign alternates once i > α
  for (let i = 0; ; i++) {
    if (i > 0) binomial *= (alpha - i + 1) / i;
    const logBinomial = Math.log(Math.abs(binomial));
    const j = alpha - i;
    const logT0 = logBinomial + i * Math.log(q) + j * Math.log1p(-q);
    const logT1 = logBinomial + j * Math.log(q) + i * Math.log1p(-q);
    const logE0 = Math.log(0.5) + logErfc((i - z0) / (Math.SQRT2 * sigma));
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / (Math.SQRT2 * sigma));
    const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0;
    const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
    if (binomial > 0) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Math.max(logS0, logS1) < -30) return logAdd(logA0, logA1);
  }
}

/**
 * The RDP ε_α of one round of the Poisson-subsampled Gaussian mechanism with sampling rate q and
 * noise multiplier z (noise std / clip norm), at each order.
 */
export function rdpOfSampledGaussian(q: number, noiseMultiplier: number, orders: readonly number[] = DEFAULT_ORDERS): number[] {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`sampling rate must be in [0, 1], got ${q}`);
  if (!(noiseMultiplier >= 0)) throw new RangeError(`noise multiplier must be non-negative, got ${noiseMultiplier}`);
  return orders.map((alpha) => {
    if (!(alpha > 1)) throw new RangeError(`RDP orders must be above 1, got ${alpha}`);
    if (q === 0) return 0;
    if (noiseMultiplier === 0 || alpha === Infinity) return Infinity;
    const sigma = noiseMultiplier;
    if (q === 1) return alpha / (2 * sigma * sigma);
    const logA = Number.isInteger(alpha) ? logAInteger(q, sigma, alpha) : logAFractional(q, sigma, alpha);
    return logA / (alpha - 1);
  });
}

export interface EpsilonAtDelta {
  epsilon: number;
  /** The order the bound was tightest at. */
  order: number;
}

/** The (ε, δ)-DP guarantee implied by RDP values at their orders: the best over the orders. */
export function epsilonFromRdp(orders: readonly number[], rdp: readonly number[], delta: number): EpsilonAtDelta {
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  if (orders.length !== rdp.length) throw new RangeError(`${orders.length} orders but ${rdp.length} RDP values`);
  let best: EpsilonAtDelta = { epsilon: Infinity, order: Number.NaN };
  orders.forEach((alpha, i) => {
    const r = rdp[i]!;
    if (r < 0) throw new RangeError(`RDP values must be non-negative, got ${r}`);
    // δ > 1 − e^{−r}: the trivial bound already gives ε = 0 at this order.
    const epsilon = delta * delta + Math.expm1(-r) > 0 ? 0 : r + Math.log1p(-1 / alpha) - Math.log(delta * alpha) / (alpha - 1);
    if (epsilon < best.epsilon) best = { epsilon: Math.max(0, epsilon), order: alpha };
  });
  return best;
}

/** One homogeneous stretch of rounds: T rounds at the same sampling rate and noise multiplier. */
export interface GaussianRounds {
  samplingRate: number;
  noiseMultiplier: number;
  rounds: number;
}

/** ε at δ after composing stretches of rounds (RDP adds up over rounds). */
export function epsilonOfRounds(stretches: readonly GaussianRounds[], delta: number, orders: readonly number[] = DEFAULT_ORDERS): EpsilonAtDelta {
  const total = orders.map(() => 0);
  for (const { samplingRate, noiseMultiplier, rounds } of stretches) {
    if (!(Number.isInteger(rounds) && rounds >= 0)) throw new RangeError(`rounds must be a non-negative integer, got ${rounds}`);
    if (rounds === 0) continue;
    rdpOfSampledGaussian(samplingRate, noiseMultiplier, orders).forEach((r, i) => (total[i]! += rounds * r));
  }
  return epsilonFromRdp(orders, total, delta);
}

/**
 * The smallest noise multiplier (to within `tolerance`, relative) whose T rounds at sampling rate
 * q stay within ε at δ: bisection, since ε falls as the noise grows.
 */
export function noiseForEpsilon(
  target: { epsilon: number; delta: number; samplingRate: number; rounds: number },
  { tolerance = 1e-6, orders = DEFAULT_ORDERS }: { tolerance?: number; orders?: readonly number[] } = {},
): number {
  const { epsilon, delta, samplingRate, rounds } = target;
  if (!(epsilon > 0)) throw new RangeError(`epsilon must be positive, got ${epsilon}`);
  const epsilonAt = (noiseMultiplier: number) => epsilonOfRounds([{ samplingRate, noiseMultiplier, rounds }], delta, orders).epsilon;
  let high = 1;
  while (epsilonAt(high) > epsilon) {
    high *= 2;
    if (high > 1e6) throw new RangeError(`no noise multiplier up to 1e6 reaches epsilon ${epsilon}`);
  }
  let low = 0;
  while (high - low > tolerance * high) {
    const middle = (low + high) / 2;
    if (epsilonAt(middle) > epsilon) low = middle;
    else high = middle;
  }
  return high;
}
