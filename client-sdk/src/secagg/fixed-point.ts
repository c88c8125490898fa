/**
 * Fixed-point encoding of a device's secure-aggregation input into Z_{2^32} (Uint32Array: every
 * store wraps modulo 2^32, which is exactly the group the masks live in).
 *
 * The input is the example-weighted, clipped update plus its weight and weighted loss:
 *   [ w · clip(delta) (d values) | w | w · min(loss, LOSS_BOUND) ]
 * with w = min(numExamples, maxWeight). Each part has a bound B on the absolute value of one
 * device's entry (maxWeight · clipNorm, maxWeight, maxWeight · LOSS_BOUND) and a scale chosen so
 * that the sum over `maxSummands` devices can never leave the signed range (-2^31, 2^31):
 *   scale = (2^31 - 1 - maxSummands) / (maxSummands · B)
 * Rounding to nearest adds at most 1/2 per entry, so the decoded sum of n <= maxSummands entries is
 * off by at most n / (2 · scale): the precision SECURITY.md states. The weight is an integer and is
 * sent exactly (scale 1), which needs maxSummands · maxWeight < 2^31.
 *
 * Distributed DP (noiseStd > 0): each device adds N(0, noiseStd²) to every coordinate of its
 * weighted, clipped delta before rounding, and the delta's bound becomes maxWeight · clipNorm +
 * NOISE_BOUND_SIGMAS · noiseStd. The noise of n devices sums to N(0, n · noiseStd²), and the range
 * leaves it n · NOISE_BOUND_SIGMAS · noiseStd: a wrap would need a deviation of 6·√n (at least 8.5)
 * of its standard deviations, probability below 1e-16 per coordinate for n >= 2.
 */
import { addGaussian, cryptoUniform, type UniformSource } from './gaussian.js';

export const MODULUS_BITS = 32;
/** Losses above this count as this in the weighted mean loss of a secure round. */
export const LOSS_BOUND = 100;
const SIGNED_LIMIT = 2 ** 31 - 1;

/** What fixes the encoding: the same on every device of a round (the coordinator sends it). */
export interface FixedPointParams {
  /** L2 bound each device clips its delta to. */
  clipNorm: number;
  /** The most examples one update counts for (the plan's maxExamplesPerUpdate). */
  maxWeight: number;
  /** The most devices whose inputs are summed (the round's masking participants). */
  maxSummands: number;
  /** Distributed DP: the standard deviation of the noise each device adds per coordinate (absent or 0: none). */
  noiseStd?: number;
}

/** One device's noise per coordinate that the delta's fixed-point range leaves room for, in standard deviations. */
export const NOISE_BOUND_SIGMAS = 6;

export interface FixedPointScales {
  delta: number;
  loss: number;
}

/** Throws when no encoding can hold the sum of maxSummands inputs. */
export function fixedPointScales({ clipNorm, maxWeight, maxSummands, noiseStd = 0 }: FixedPointParams): FixedPointScales {
  if (!(clipNorm > 0) || !Number.isFinite(clipNorm)) throw new RangeError(`clipNorm ${clipNorm} must be a positive number`);
  if (!(noiseStd >= 0) || !Number.isFinite(noiseStd)) throw new RangeError(`noiseStd ${noiseStd} must be a non-negative number`);
  if (!Number.isInteger(maxWeight) || maxWeight < 1) throw new RangeError(`maxWeight ${maxWeight} must be a positive integer`);
  if (!Number.isInteger(maxSummands) || maxSummands < 1) throw new RangeError(`maxSummands ${maxSummands} must be a positive integer`);
  if (maxSummands * maxWeight >= SIGNED_LIMIT) {
    throw new RangeError(`${maxSummands} devices x ${maxWeight} examples overflow the 32-bit weight sum: lower maxExamplesPerUpdate or the round size`);
  }
  const headroom = SIGNED_LIMIT - maxSummands;
  const deltaBound = maxWeight * clipNorm + NOISE_BOUND_SIGMAS * noiseStd;
  return { delta: headroom / (maxSummands * deltaBound), loss: headroom / (maxSummands * maxWeight * LOSS_BOUND) };
}

/** Values in one encoded input: the delta, then the weight and the weighted loss. */
export function encodedLength(deltaLength: number): number {
  return deltaLength + 2;
}

/** The worst-case error of one decoded delta coordinate of a sum of `summands` inputs. */
export function sumPrecision(params: FixedPointParams, summands: number): number {
  return summands / (2 * fixedPointScales(params).delta);
}

function toRing(value: number): number {
  return Math.round(value) >>> 0; // two's complement in Z_2^32
}

function fromRing(value: number): number {
  return value | 0; // back to a signed 32-bit integer
}

/**
 * A device's input: its delta clipped to clipNorm (L2, as a whole), multiplied by its weight, plus
 * its share of the round's noise when the round has one (after clipping: the noise is never
 * clipped), and the weight and weighted loss, in Z_2^32. Returns the clip factor applied (1 when
 * not clipped). `uniform` draws the noise (the CSPRNG; tests pass a seeded one).
 */
export function encodeInput(
  delta: Float32Array,
  numExamples: number,
  trainLoss: number,
  params: FixedPointParams,
  uniform: () => UniformSource = cryptoUniform,
): { encoded: Uint32Array; clipScale: number; weight: number } {
  const scales = fixedPointScales(params);
  const weight = Math.min(Math.max(1, Math.floor(numExamples)), params.maxWeight);
  let squares = 0;
  for (const value of delta) squares += value * value;
  const norm = Math.sqrt(squares);
  if (!Number.isFinite(norm)) throw new RangeError('the delta contains NaN or infinite values');
  const clipScale = norm > params.clipNorm ? params.clipNorm / norm : 1;
  const encoded = new Uint32Array(encodedLength(delta.length));
  const noiseStd = params.noiseStd ?? 0;
  if (noiseStd > 0) {
    const noisy = Float64Array.from(delta, (value) => value * weight * clipScale);
    addGaussian(noisy, noiseStd, uniform());
    for (let i = 0; i < noisy.length; i++) encoded[i] = toRing(noisy[i]! * scales.delta);
  } else {
    const factor = weight * clipScale * scales.delta;
    for (let i = 0; i < delta.length; i++) encoded[i] = toRing(delta[i]! * factor);
  }
  const loss = Number.isFinite(trainLoss) ? Math.min(Math.max(trainLoss, 0), LOSS_BOUND) : LOSS_BOUND;
  encoded[delta.length] = weight;
  encoded[delta.length + 1] = toRing(weight * loss * scales.loss);
  return { encoded, clipScale, weight };
}

/** The decoded sum of several inputs: Σ w·delta, Σ w, Σ w·loss. */
export interface DecodedSum {
  weightedDeltaSum: Float64Array;
  totalWeight: number;
  weightedLossSum: number;
}

export function decodeSum(sum: Uint32Array, params: FixedPointParams): DecodedSum {
  const scales = fixedPointScales(params);
  const length = sum.length - 2;
  if (length < 0) throw new RangeError('an encoded sum has at least 2 values');
  const weightedDeltaSum = new Float64Array(length);
  for (let i = 0; i < length; i++) weightedDeltaSum[i] = fromRing(sum[i]!) / scales.delta;
  return { weightedDeltaSum, totalWeight: sum[length]!, weightedLossSum: fromRing(sum[length + 1]!) / scales.loss };
}

/** target += source (mod 2^32), in place. */
export function addInto(target: Uint32Array, source: Uint32Array): void {
  if (target.length !== source.length) throw new RangeError(`adding ${source.length} values to ${target.length}`);
  for (let i = 0; i < target.length; i++) target[i] = target[i]! + source[i]!;
}

/** target -= source (mod 2^32), in place. */
export function subtractFrom(target: Uint32Array, source: Uint32Array): void {
  if (target.length !== source.length) throw new RangeError(`subtracting ${source.length} values from ${target.length}`);
  for (let i = 0; i < target.length; i++) target[i] = target[i]! - source[i]!;
}
