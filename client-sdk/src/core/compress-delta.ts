/**
 * The device's side of compressed uploads: encodes a round's delta as its plan says (int8 with
 * stochastic rounding, or top-k with error feedback) and keeps top-k's residual.
 *
 * Error feedback (Seide et al. 2014; Stich et al. 2018): what top-k left out of an upload is kept
 * on the device and added to its next delta, so every coordinate's change reaches the coordinator
 * eventually. The residual is persisted (the store's `residual` slot) so a restart does not drop it.
 * It is reset when it can no longer describe the model: another set of shapes, or a base version
 * more than RESIDUAL_MAX_AGE versions older than the round's (the model moved on too far for the
 * old leftovers to point anywhere useful).
 */
import { deltaEncodingFor, encodeInt8, encodeTopk, DEFAULT_TOPK_FRACTION, type Compression } from '../protocol/compression.js';
import type { EncodedDelta } from '../protocol/round-messages.js';
import { BYTES_PER_VALUE, encodeWeights, sameShapes, totalValues, type WeightSpec } from '../protocol/weights.js';
import { concatWeights, splitStoredWeights, type StoredModel } from './model.js';

/** The oldest residual (in versions behind the round's base) still added to a new delta. */
export const RESIDUAL_MAX_AGE = 50;

/** An encoded delta, and the residual to keep when the coordinator accepts it (top-k only). */
export interface CompressedDelta {
  encoded: EncodedDelta;
  /** top-k: input + old residual - what was sent (dequantized); null for other encodings (keep the old one). */
  residual: Float32Array[] | null;
}

/**
 * Encodes `delta` for a round with this compression. `residual` (top-k only) is added first; pass
 * the one `usableResidual` returned. `random` draws the stochastic rounding (int8, and top-k's int8 values).
 */
export function compressDelta(
  delta: readonly Float32Array[],
  shapes: readonly (readonly number[])[],
  compression: Compression | undefined,
  residual: readonly Float32Array[] | null,
  random: () => number = Math.random,
): CompressedDelta {
  const encoding = deltaEncodingFor(compression);
  const plainShapes = shapes.map((shape) => [...shape]);
  if (encoding === 'float32') return { encoded: encodeWeights(delta, shapes), residual: null };
  if (encoding === 'int8') return { encoded: { shapes: plainShapes, data: encodeInt8(delta, random), encoding }, residual: null };
  const corrected = residual ? delta.map((values, t) => addInto(new Float32Array(values), residual[t]!)) : delta.map((values) => new Float32Array(values));
  const selection = encodeTopk(corrected, compression?.topkFraction ?? DEFAULT_TOPK_FRACTION, random);
  // What was left out: corrected - sent, in place (corrected is this function's own copy).
  corrected.forEach((values, t) => {
    const sent = selection.sent[t]!;
    for (let i = 0; i < values.length; i++) values[i] = values[i]! - sent[i]!;
  });
  return { encoded: { shapes: plainShapes, data: selection.data, encoding }, residual: corrected };
}

function addInto(target: Float32Array, values: Float32Array): Float32Array {
  for (let i = 0; i < target.length; i++) target[i] = target[i]! + values[i]!;
  return target;
}

/** The stored residual's tensors when they still fit a round on `baseVersion` with these specs, else null (reset). */
export function usableResidual(stored: StoredModel | null, specs: readonly WeightSpec[], baseVersion: number): Float32Array[] | null {
  if (!stored || stored.version === null) return null;
  const age = baseVersion - stored.version;
  if (age < 0 || age > RESIDUAL_MAX_AGE) return null;
  const shapes = (list: readonly WeightSpec[]): number[][] => list.map((spec) => spec.shape);
  if (!sameShapes(shapes(stored.weightSpecs), shapes(specs))) return null;
  if (stored.weights.byteLength !== BYTES_PER_VALUE * totalValues(shapes(specs))) return null; // damaged: start over
  return splitStoredWeights(stored);
}

/** The residual as the store keeps it: weight-shaped float32 values, versioned by the base it was computed against. */
export function storedResidual(residual: readonly Float32Array[], specs: readonly WeightSpec[], baseVersion: number, now = Date.now()): StoredModel {
  return {
    version: baseVersion,
    topology: null,
    weightSpecs: specs.map((spec) => ({ name: spec.name, shape: [...spec.shape], dtype: spec.dtype })),
    weights: concatWeights(residual),
    fineTunedEpochs: 0,
    savedAt: now,
  };
}
