/**
 * Pure: an on-demand request (an AMQP message's properties and body) checked against the served
 * model's input signature into rows of one Float32Array, and the replies built from a prediction.
 * Every field comes from the network: each check has its own reason code, nothing here throws.
 */
import {
  ON_DEMAND_CONTENT_TYPE,
  ON_DEMAND_HEADERS,
  ON_DEMAND_MAX_BODY_BYTES,
  onDemandRequestSchema,
  replyToSchema,
  onDemandRequestIdSchema,
  tensorShapeSchema,
  type DeadLetterReason,
} from '../contract/index.js';

/** The parts of an AMQP message the codec reads (amqplib's `MessageProperties` fit it). */
export interface IncomingRequest {
  content: Uint8Array;
  properties: { messageId?: unknown; replyTo?: unknown; contentType?: unknown; headers?: Record<string, unknown> | undefined };
}

export interface DecodedOnDemandRequest {
  ok: true;
  requestId: string;
  replyTo: string;
  rows: number;
  input: Float32Array;
}

/** A refused request, with whatever is needed to tell its sender (null when that is what was wrong). */
export interface RefusedOnDemandRequest {
  ok: false;
  reason: DeadLetterReason;
  message: string;
  requestId: string | null;
  replyTo: string | null;
}

/**
 * Checks a request against the model's input shape (`-1`: any size, the batch). Order: id, reply
 * queue, content type, shape header, size limit, shape against the model, byte count, finite values.
 */
export function decodeRequest(
  message: IncomingRequest,
  inputShape: readonly number[],
  maxBodyBytes = ON_DEMAND_MAX_BODY_BYTES,
): DecodedOnDemandRequest | RefusedOnDemandRequest {
  const id = onDemandRequestIdSchema.safeParse(message.properties.messageId);
  const requestId = id.success ? id.data : null;
  const to = replyToSchema.safeParse(message.properties.replyTo);
  const replyTo = to.success ? to.data : null;
  const refuse = (reason: DeadLetterReason, text: string): RefusedOnDemandRequest => ({ ok: false, reason, message: text, requestId, replyTo });
  if (requestId === null) return refuse('missing_request_id', 'message_id must be 1-128 characters of letters, digits and . _ : -');
  if (replyTo === null) return refuse('missing_reply_to', 'reply_to must name the queue the reply goes to');
  const meta = onDemandRequestSchema.safeParse({
    messageId: requestId,
    replyTo,
    contentType: message.properties.contentType,
    shape: message.properties.headers?.[ON_DEMAND_HEADERS.shape],
  });
  if (!meta.success) {
    const badType = meta.error.issues.some((issue) => issue.path[0] === 'contentType');
    if (badType) return refuse('bad_content_type', `content_type must be ${ON_DEMAND_CONTENT_TYPE}`);
    return refuse('bad_shape', `header ${ON_DEMAND_HEADERS.shape} must be a list of 1 to 8 positive whole numbers, rows first`);
  }
  const { shape } = meta.data;
  if (message.content.byteLength > maxBodyBytes)
    return refuse('payload_too_large', `the body has ${message.content.byteLength} bytes; at most ${maxBodyBytes}`);
  if (shape.length !== inputShape.length || shape.some((d, i) => inputShape[i] !== -1 && inputShape[i] !== d)) {
    return refuse('shape_mismatch', `shape [${shape.join(', ')}] does not fit the model's input [${inputShape.join(', ')}]`);
  }
  const values = shape.reduce((product, d) => product * d, 1);
  if (message.content.byteLength !== values * 4) {
    return refuse('size_mismatch', `shape [${shape.join(', ')}] needs ${values * 4} bytes of float32; the body has ${message.content.byteLength}`);
  }
  // Copied into a buffer of its own: aligned, transferable to the worker thread, and little-endian as sent.
  const input = new Float32Array(values);
  const view = new DataView(message.content.buffer, message.content.byteOffset, message.content.byteLength);
  for (let i = 0; i < values; i++) {
    const value = view.getFloat32(i * 4, true);
    if (!Number.isFinite(value)) return refuse('non_finite', `value ${i} is not a finite number`);
    input[i] = value;
  }
  return { ok: true, requestId, replyTo, rows: shape[0]!, input };
}

/** Float32 values as little-endian bytes (a message body). */
export function float32Bytes(values: Float32Array): Buffer {
  const out = Buffer.allocUnsafe(values.length * 4);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i]!, i * 4);
  return out;
}

/** Reads a body of little-endian float32 values (an aligned copy). */
export function readFloat32(body: Uint8Array): Float32Array {
  const count = Math.floor(body.byteLength / 4);
  const out = new Float32Array(count);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/** Checks a shape given by a caller before it is sent. */
export function checkShape(shape: readonly number[], values: number): number[] {
  const parsed = tensorShapeSchema.safeParse([...shape]);
  if (!parsed.success) throw new RangeError('shape must be 1 to 8 positive whole numbers, rows first');
  const product = parsed.data.reduce((p, d) => p * d, 1);
  if (product !== values) throw new RangeError(`shape [${shape.join(', ')}] holds ${product} values, the input has ${values}`);
  return parsed.data;
}
