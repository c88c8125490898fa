/**
 * Pure numeric kernels over flat weight vectors. Models are handled as one Float32Array (the
 * concatenation of all tensors in weightSpecs order), which is also their binary wire format.
 */

/** target[i] += scale * source[i] on plain arrays (JS). The streaming fold uses kernels/float64-accumulator.ts (wasm SIMD). */
export { jsAddScaled as addScaledInto } from './kernels/js-kernels.js';

/** Norms are protocol math, one implementation shared with the SDK. */
export { l2Norm, sumOfSquares } from '@flock/client-sdk/protocol';

/** Index of the first NaN or infinite value, or -1. */
export function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]!)) return i;
  }
  return -1;
}

/** base + scale * direction, as a new float32 vector. */
export function applyUpdate(base: Float32Array, direction: Float64Array | Float32Array, scale: number): Float32Array {
  if (base.length !== direction.length) throw new RangeError(`length mismatch: ${base.length} vs ${direction.length}`);
  const next = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) next[i] = base[i]! + scale * direction[i]!;
  return next;
}

/** Squared L2 distance between two vectors, accumulated in float64. */
export function squaredDistance(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new RangeError(`length mismatch: ${a.length} vs ${b.length}`);
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    sum += d * d;
  }
  return sum;
}

/** L2 norm of after - before, accumulated in float64: the size of the change actually applied. */
export function normOfDifference(after: Float32Array, before: Float32Array): number {
  return Math.sqrt(squaredDistance(after, before));
}
