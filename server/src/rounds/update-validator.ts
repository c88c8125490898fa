import {
  asFloat32,
  sameShapes,
  totalValues,
  updateUploadSchema,
  type RejectionReason,
  type WeightSpec,
} from '@flock/client-sdk/protocol';
import { sumOfSquares } from '../aggregation/vector-math.js';

export class UploadRejection extends Error {
  constructor(
    readonly reason: RejectionReason,
    message: string,
  ) {
    super(message);
  }
}

export interface ParsedUpload {
  roundId: string;
  modelVersion: number;
  numExamples: number;
  trainLoss: number;
  shapes: number[][];
  data: ArrayBuffer | Uint8Array;
  byteLength: number;
}

function byteLengthOf(payload: unknown): number {
  const data = (payload as { delta?: { data?: unknown } } | null)?.delta?.data;
  return data instanceof ArrayBuffer || ArrayBuffer.isView(data) ? data.byteLength : 0;
}

/** Structural checks that need no round state: size first (cheap), then the schema. */
export function parseUpload(payload: unknown, maxUploadBytes: number): ParsedUpload {
  const byteLength = byteLengthOf(payload);
  if (byteLength > maxUploadBytes) {
    throw new UploadRejection('payload_too_large', `upload has ${byteLength} bytes of weights; the limit is ${maxUploadBytes}`);
  }
  const parsed = updateUploadSchema.safeParse(payload);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UploadRejection('malformed', `invalid upload: ${issue ? `${issue.path.join('.') || 'payload'}: ${issue.message}` : 'schema mismatch'}`);
  }
  const { delta, ...rest } = parsed.data;
  return { ...rest, shapes: delta.shapes, data: delta.data, byteLength };
}

/**
 * Checks the delta against the model the round trains (shapes, finiteness, optional norm bound)
 * and returns it as a flat Float32Array.
 */
export function validateDelta(upload: ParsedUpload, weightSpecs: readonly WeightSpec[], maxUpdateNorm: number | null): { delta: Float32Array; norm: number } {
  const expected = weightSpecs.map((spec) => spec.shape);
  if (!sameShapes(upload.shapes, expected)) {
    throw new UploadRejection(
      'shape_mismatch',
      `delta has ${upload.shapes.length} tensors [${upload.shapes.map((s) => s.join('x')).join(', ')}]; the model has ${expected.length} [${expected.map((s) => s.join('x')).join(', ')}]`,
    );
  }
  let delta: Float32Array;
  try {
    delta = asFloat32(upload.data);
  } catch (error) {
    throw new UploadRejection('shape_mismatch', (error as Error).message);
  }
  const values = totalValues(expected);
  if (delta.length !== values) {
    throw new UploadRejection('shape_mismatch', `delta has ${delta.length} values; the shapes need ${values}`);
  }
  if (!Number.isFinite(upload.trainLoss)) throw new UploadRejection('non_finite', 'trainLoss is not a finite number');
  // One pass: the sum of squares is non-finite exactly when some value is NaN or infinite.
  const squares = sumOfSquares(delta);
  if (!Number.isFinite(squares)) throw new UploadRejection('non_finite', 'delta contains NaN or infinite values');
  const norm = Math.sqrt(squares);
  if (maxUpdateNorm !== null && norm > maxUpdateNorm) {
    throw new UploadRejection('norm_exceeded', `delta L2 norm ${norm.toPrecision(4)} exceeds the round's bound ${maxUpdateNorm}`);
  }
  return { delta, norm };
}
