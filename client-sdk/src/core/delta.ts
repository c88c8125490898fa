/**
 * Weight deltas: what a client uploads after a round (trained minus received weights), never the
 * weights themselves and never examples.
 */
import { l2Norm } from '../protocol/vector-math.js';
import { encodeWeights, type EncodedWeights } from '../protocol/weights.js';

/** trained[i] - base[i], element-wise, into new arrays. */
export function computeDelta(trained: readonly Float32Array[], base: readonly Float32Array[]): Float32Array[] {
  if (trained.length !== base.length) throw new Error(`computeDelta: ${trained.length} trained tensors but ${base.length} base tensors`);
  return trained.map((values, i) => {
    const reference = base[i]!;
    if (values.length !== reference.length) {
      throw new Error(`computeDelta: tensor ${i} has ${values.length} values, the base has ${reference.length}`);
    }
    const delta = new Float32Array(values.length);
    for (let j = 0; j < values.length; j++) delta[j] = values[j]! - reference[j]!;
    return delta;
  });
}

/** base[i] + delta[i], element-wise, into new arrays (what the coordinator does with a mean delta). */
export function applyDelta(base: readonly Float32Array[], delta: readonly Float32Array[]): Float32Array[] {
  if (base.length !== delta.length) throw new Error(`applyDelta: ${base.length} base tensors but ${delta.length} delta tensors`);
  return base.map((values, i) => {
    const change = delta[i]!;
    if (values.length !== change.length) throw new Error(`applyDelta: tensor ${i} has ${values.length} values, the delta has ${change.length}`);
    const result = new Float32Array(values.length);
    for (let j = 0; j < values.length; j++) result[j] = values[j]! + change[j]!;
    return result;
  });
}

/** True when every value is finite (the coordinator rejects NaN/Infinity with `non_finite`). */
export function allFinite(tensors: readonly Float32Array[]): boolean {
  for (const tensor of tensors) {
    for (let j = 0; j < tensor.length; j++) if (!Number.isFinite(tensor[j]!)) return false;
  }
  return true;
}

/** L2 norm over all tensors (for diagnostics and norm bounds): the protocol's, shared with the coordinator. */
export { l2Norm };

/**
 * The delta scaled down to L2 norm `clipNorm` over all tensors, when it is longer (DP rounds' plan
 * `clipNorm`); the same arrays otherwise. Scaled by clipNorm / norm in float32 and, should rounding
 * leave the norm a hair above the bound, by one more ulp-sized step, so the result never exceeds it.
 */
export function clipDelta(delta: readonly Float32Array[], clipNorm: number): Float32Array[] {
  const norm = l2Norm(delta);
  // Non-finite deltas are refused before upload (allFinite), not clipped.
  if (norm <= clipNorm || !Number.isFinite(norm)) return [...delta];
  let factor = clipNorm / norm;
  for (;;) {
    const scaled = delta.map((tensor) => tensor.map((value) => value * factor));
    if (l2Norm(scaled) <= clipNorm) return scaled;
    factor *= 1 - 1e-6;
  }
}

/** Computes and encodes the delta for upload; shapes in the weight specs' order. */
export function encodeDelta(
  trained: readonly Float32Array[],
  base: readonly Float32Array[],
  shapes: readonly (readonly number[])[],
): { encoded: EncodedWeights; delta: Float32Array[] } {
  const delta = computeDelta(trained, base);
  return { encoded: encodeWeights(delta, shapes), delta };
}

/** Bytes of weight data in an encoding, compressed or not (what `uploaded` reports). */
export function encodedBytes(encoded: Pick<EncodedWeights, 'data'>): number {
  return encoded.data.byteLength;
}
