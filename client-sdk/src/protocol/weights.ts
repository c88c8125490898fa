/**
 * Binary weight encoding shared by the coordinator and the SDK.
 *
 * A list of float32 tensors travels as one contiguous little-endian buffer (the same layout as the
 * weight file of the TensorFlow.js layers format) plus the tensor shapes. socket.io carries the
 * buffer as a binary attachment, so weights never become JSON arrays of numbers.
 */
import { z } from 'zod';

/** Binary data as socket.io delivers it: Node gives a Buffer (a Uint8Array), browsers an ArrayBuffer. */
export const binarySchema = z.custom<ArrayBuffer | Uint8Array>(
  (value) => value instanceof ArrayBuffer || value instanceof Uint8Array,
  'expected binary data (ArrayBuffer or Uint8Array)',
);

/** One tensor's entry in a TensorFlow.js weights manifest. Flock only moves float32 weights. */
export const weightSpecSchema = z.object({
  name: z.string(),
  shape: z.array(z.number().int().min(0)),
  dtype: z.literal('float32'),
});
export type WeightSpec = z.infer<typeof weightSpecSchema>;

/** Weights (or a weight delta) on the wire: shapes in JSON, values as one binary attachment. */
export const encodedWeightsSchema = z.object({
  shapes: z.array(z.array(z.number().int().min(0)).max(8)).max(10_000),
  /** Concatenated float32 values, little-endian. */
  data: binarySchema,
});
export type EncodedWeights = z.infer<typeof encodedWeightsSchema>;

export const BYTES_PER_VALUE = Float32Array.BYTES_PER_ELEMENT;

/** Number of values in a tensor of the given shape (1 for a scalar). */
export function shapeSize(shape: readonly number[]): number {
  let size = 1;
  for (const dim of shape) size *= dim;
  return size;
}

/** Total number of float32 values across the given shapes. */
export function totalValues(shapes: readonly (readonly number[])[]): number {
  let total = 0;
  for (const shape of shapes) total += shapeSize(shape);
  return total;
}

/** Packs tensors into one buffer (copies once). */
export function encodeWeights(tensors: readonly Float32Array[], shapes: readonly (readonly number[])[]): EncodedWeights {
  if (tensors.length !== shapes.length) {
    throw new Error(`encodeWeights: ${tensors.length} tensors but ${shapes.length} shapes`);
  }
  const flat = new Float32Array(totalValues(shapes));
  let offset = 0;
  tensors.forEach((tensor, i) => {
    const expected = shapeSize(shapes[i]!);
    if (tensor.length !== expected) {
      throw new Error(`encodeWeights: tensor ${i} has ${tensor.length} values, shape [${shapes[i]!.join(', ')}] needs ${expected}`);
    }
    flat.set(tensor, offset);
    offset += expected;
  });
  return { shapes: shapes.map((shape) => [...shape]), data: flat.buffer };
}

/**
 * Views a received binary payload as float32 values. Zero-copy when the bytes are 4-byte aligned;
 * Node's Buffers are often slices of a shared pool at odd offsets, and those are copied.
 */
export function asFloat32(data: ArrayBuffer | ArrayBufferView): Float32Array {
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.byteLength % BYTES_PER_VALUE !== 0) {
    throw new RangeError(`weight data has ${bytes.byteLength} bytes, not a multiple of ${BYTES_PER_VALUE}`);
  }
  if (bytes.byteOffset % BYTES_PER_VALUE === 0) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / BYTES_PER_VALUE);
  }
  return new Float32Array(bytes.slice().buffer);
}

/** Splits one flat buffer into per-tensor views (no copy). */
export function splitTensors(flat: Float32Array, shapes: readonly (readonly number[])[]): Float32Array[] {
  const expected = totalValues(shapes);
  if (flat.length !== expected) {
    throw new RangeError(`weight data has ${flat.length} values, shapes need ${expected}`);
  }
  const tensors: Float32Array[] = [];
  let offset = 0;
  for (const shape of shapes) {
    const size = shapeSize(shape);
    tensors.push(flat.subarray(offset, offset + size));
    offset += size;
  }
  return tensors;
}

/** Decodes an EncodedWeights into per-tensor Float32Array views. */
export function decodeWeights(encoded: EncodedWeights): Float32Array[] {
  return splitTensors(asFloat32(encoded.data), encoded.shapes);
}

/** True when two shape lists are identical (same count, same dimensions in order). */
export function sameShapes(a: readonly (readonly number[])[], b: readonly (readonly number[])[]): boolean {
  return a.length === b.length && a.every((shape, i) => shape.length === b[i]!.length && shape.every((dim, j) => dim === b[i]![j]));
}
