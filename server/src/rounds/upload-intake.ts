import { z } from 'zod';
import {
  asFloat32,
  type CompressedDeltaView,
  DeltaDecodeError,
  deltaEncodingFor,
  type Compression,
  type DeltaEncoding,
  isRoundFinished,
  parseCompressedDelta,
  personalTensorMask,
  shapeSize,
  sameShapes,
  sharedTensors,
  totalValues,
  updateUploadSchema,
  type RejectionReason,
  type RoundStatus,
  type WeightSpec,
  widenSharedDelta,
} from '@flock/client-sdk/protocol';
import { jsSumOfSquares } from '../aggregation/kernels/js-kernels.js';
import type { RoundRoster } from './round-roster.js';
import { decide, type UpdateBoundConfig } from './update-bound.js';

/*
 * Upload intake: the ordered checks every device upload goes through, each refusal with a stable
 * reason code. No I/O and no state machine here: the service looks the round up and tells the
 * machine what was decided.
 *   parseUpload     1. size (payload_too_large), 2. schema (malformed)
 *   admitUpload     3. round open (round_not_open / round_closed), 4. one upload per client
 *                   (duplicate_upload), 5. participant (not_selected)
 *   validateUpdate  6. base version (version_mismatch), 7. tensor count and shapes (shape_mismatch;
 *                   the shared tensors only in a personal-layers round, widened with zeros),
 *                   7b. the plan's encoding (compression_mismatch; a compressed delta is parsed
 *                   here, checked against the shapes: malformed, or compression_mismatch when it
 *                   carries more top-k values than the plan allows),
 *                   8. finite values (non_finite), 9. the round's fixed L2 bound (norm_exceeded),
 *                   both on the values the upload stands for
 *   boundInfluence  10. what the update counts for: numExamples clamped to the plan's cap, the delta
 *                   clipped to the adaptive L2 bound (a scale, no copy; or refused: norm_exceeded),
 *                   or in a DP round always clipped to the round's C
 * The norm (with finiteness) is one pass of the round aggregator's kernel where it has one (the wasm
 * SIMD kernel copies the upload in once and folds it from that copy). A compressed (int8 / top-k)
 * upload is never decoded into a dense vector here: checkUpdate returns a CompressedDeltaView that
 * measured it from its bytes (bit-identical to the kernel on the dense decode) and that the
 * weighted-mean folds read from its bytes too; other strategies decode it on demand (strategy.ts).
 */

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
  /** How `data` is laid out (compression.ts). */
  encoding: DeltaEncoding;
  byteLength: number;
}

/** Just the weight bytes of an upload, read before the whole schema so that an oversized upload is refused as such. */
const uploadBytesSchema = z.object({ delta: z.object({ data: updateUploadSchema.shape.delta.shape.data }) });

function byteLengthOf(payload: unknown): number {
  const read = uploadBytesSchema.safeParse(payload);
  return read.success ? read.data.delta.data.byteLength : 0;
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
  return { ...rest, shapes: delta.shapes, data: delta.data, encoding: delta.encoding ?? 'float32', byteLength };
}

/** The round an upload names, as admission sees it. */
export interface UploadTarget {
  roundId: string;
  /** Its status; null when no such round exists. */
  status: RoundStatus | null;
  /** Its participants when it is the round in flight; null for any other round. */
  roster: RoundRoster | null;
}

/**
 * Admits an upload to the round it names: the round must be collecting updates, and the client a
 * participant that has not uploaded yet. On success the client's one upload is used up, whatever
 * the later checks say.
 */
export function admitUpload(target: UploadTarget, clientId: string): void {
  const { roundId, status, roster } = target;
  if (!roster || status === null) {
    if (status !== null && isRoundFinished(status)) throw new UploadRejection('round_closed', `round ${roundId} is ${status}; late uploads are not aggregated`);
    throw new UploadRejection('round_not_open', `round ${roundId} is not open`);
  }
  if (status !== 'reporting') {
    const reason = status === 'committing' || isRoundFinished(status) ? 'round_closed' : 'round_not_open';
    throw new UploadRejection(reason, `round ${roundId} is ${status}, not collecting updates`);
  }
  if (roster.hasAnswered(clientId)) throw new UploadRejection('duplicate_upload', `client already uploaded for round ${roundId}`);
  if (!roster.isParticipant(clientId)) throw new UploadRejection('not_selected', `client is not a participant of round ${roundId}`);
  roster.answer(clientId);
}

/** What an admitted update is checked against: the model the round trains. */
export interface UpdateExpectation {
  roundId: string;
  baseVersion: number;
  weightSpecs: readonly WeightSpec[];
  maxUpdateNorm: number | null;
  /** The plan's personal layers: uploads carry the other tensors only (absent or empty: all of them). */
  personalLayers?: readonly string[];
  /** The plan's compression of uploads; absent: float32. */
  compression?: Compression | undefined;
}

/** A validated delta: float32 values, or a compressed upload's view over its bytes. */
export type DeltaSource = Float32Array | CompressedDeltaView;

/**
 * Checks an admitted update against the model the round trains (base version, shapes, finiteness,
 * optional norm bound) and returns its delta as a flat Float32Array. `sumOfSquares` measures the
 * delta (float64, non-finite exactly when a value is): the round aggregator's kernel, or plain JS.
 * (Decodes a compressed delta densely; the coordinator's upload path uses checkUpdate, which does not.)
 */
export function validateUpdate(
  upload: ParsedUpload,
  expectation: UpdateExpectation,
  sumOfSquares: (delta: Float32Array) => number = jsSumOfSquares,
): { delta: Float32Array; norm: number } {
  const { delta, norm } = checkUpdate(upload, expectation, sumOfSquares);
  return { delta: delta instanceof Float32Array ? delta : delta.toDense(), norm };
}

/**
 * validateUpdate without decoding: a float32 delta as a Float32Array over the received bytes, a
 * compressed one as a view that was validated and measured from its bytes (one pass) and folds
 * from them (CompressedDeltaView.addScaledTo), in the model's positions (widened in a
 * personal-layers round).
 */
export function checkUpdate(
  upload: ParsedUpload,
  { roundId, baseVersion, weightSpecs, maxUpdateNorm, personalLayers = [], compression }: UpdateExpectation,
  sumOfSquares: (delta: Float32Array) => number = jsSumOfSquares,
): { delta: DeltaSource; norm: number } {
  if (upload.modelVersion !== baseVersion) {
    throw new UploadRejection('version_mismatch', `delta is against version ${upload.modelVersion}; round ${roundId} trains version ${baseVersion}`);
  }
  // personal-layers rounds: the personal tensors stay on the devices, so the upload lists the shared ones.
  const personal = personalLayers.length > 0 ? personalTensorMask(weightSpecs, personalLayers) : null;
  const expected = (personal ? sharedTensors(weightSpecs, personal) : weightSpecs).map((spec) => spec.shape);
  if (!sameShapes(upload.shapes, expected)) {
    throw new UploadRejection(
      'shape_mismatch',
      `delta has ${upload.shapes.length} tensors [${upload.shapes.map((s) => s.join('x')).join(', ')}]; the model has ${expected.length} [${expected.map((s) => s.join('x')).join(', ')}]`,
    );
  }
  const encoding = deltaEncodingFor(compression);
  if (upload.encoding !== encoding) {
    throw new UploadRejection('compression_mismatch', `delta is encoded as ${upload.encoding}; round ${roundId} takes ${encoding}`);
  }
  const modelShapes = weightSpecs.map((spec) => spec.shape);
  const values = totalValues(modelShapes);
  let delta: DeltaSource;
  try {
    if (encoding === 'float32') {
      delta = asFloat32(upload.data);
      // Widened to the model with zeros at the personal tensors: no upload of the round moves them.
      if (personal) delta = widenSharedDelta(delta, modelShapes, personal);
    } else {
      // Checked against the uploaded tensors, placed at their offsets in the model (no copy, no dense vector).
      delta = parseCompressedDelta(encoding, upload.data, expected, compression, { offsets: modelOffsets(modelShapes, personal), length: values });
    }
  } catch (error) {
    if (error instanceof DeltaDecodeError) throw new UploadRejection(error.reason, error.message);
    throw new UploadRejection('shape_mismatch', (error as Error).message);
  }
  if (delta.length !== values) {
    throw new UploadRejection('shape_mismatch', `delta has ${delta.length} values; the shapes need ${values}`);
  }
  if (!Number.isFinite(upload.trainLoss)) throw new UploadRejection('non_finite', 'trainLoss is not a finite number');
  // One pass: the sum of squares is non-finite exactly when some value is NaN or infinite.
  const squares = delta instanceof Float32Array ? sumOfSquares(delta) : delta.sumOfSquares();
  if (!Number.isFinite(squares)) throw new UploadRejection('non_finite', 'delta contains NaN or infinite values');
  const norm = Math.sqrt(squares);
  if (maxUpdateNorm !== null && norm > maxUpdateNorm) {
    throw new UploadRejection('norm_exceeded', `delta L2 norm ${norm.toPrecision(4)} exceeds the round's bound ${maxUpdateNorm}`);
  }
  return { delta, norm };
}

/** The offset in the model's flat vector of each uploaded tensor (all of them, or the shared ones). */
function modelOffsets(shapes: readonly (readonly number[])[], personal: readonly boolean[] | null): number[] {
  const offsets: number[] = [];
  let offset = 0;
  shapes.forEach((shape, t) => {
    if (!personal?.[t]) offsets.push(offset);
    offset += shapeSize(shape);
  });
  return offsets;
}

/** The limits on one update's influence in a round. */
export interface InfluenceLimits {
  /** The plan's cap on the examples an update counts for. */
  maxExamples: number;
  /** The round's adaptive L2 bound; null when off. */
  bound: number | null;
  config: UpdateBoundConfig;
  /** DP rounds: C, which every update is clipped to whatever the bound's mode (the adaptive bound is off). */
  dpClipNorm?: number | null;
}

export interface BoundedUpdate<D extends DeltaSource = Float32Array> {
  delta: D;
  /** The example count the update is weighted by. */
  numExamples: number;
  /** The update counts as scale · delta: bound / norm when clipped, else 1. */
  scale: number;
  /** ‖delta‖, before the scale. */
  norm: number;
  clamped: boolean;
  clipped: boolean;
}

/**
 * Bounds what a valid update can do to the aggregate: its weight (claimed examples, clamped to the
 * plan's cap) and its L2 norm (scaled down to the round's bound, as a factor the aggregator applies
 * in float64 while folding; or refused with norm_exceeded in `refuse` mode). The delta is untouched.
 */
export function boundInfluence<D extends DeltaSource>(delta: D, norm: number, numExamples: number, limits: InfluenceLimits): BoundedUpdate<D> {
  const counted = { numExamples: Math.min(numExamples, limits.maxExamples), clamped: numExamples > limits.maxExamples };
  const { dpClipNorm } = limits;
  if (dpClipNorm) {
    const clipped = norm > dpClipNorm;
    return { delta, norm, scale: clipped ? dpClipNorm / norm : 1, clipped, ...counted };
  }
  const decision = decide(limits.config, limits.bound, norm);
  if (decision.action === 'refuse') {
    throw new UploadRejection('norm_exceeded', `delta L2 norm ${norm.toPrecision(4)} exceeds the adaptive bound ${limits.bound!.toPrecision(4)}`);
  }
  const clipped = decision.action === 'clip';
  return { delta, norm, scale: clipped ? decision.scale : 1, clipped, ...counted };
}
