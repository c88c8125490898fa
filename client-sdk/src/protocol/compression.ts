/**
 * Compressed weight deltas (for rounds without secure aggregation): the per-round choice the plan
 * carries, and the binary codecs both sides use.
 *
 *   float32  the plain encoding (weights.ts): 4 bytes per value.
 *   int8     per tensor one float32 scale, then one int8 per value: value ≈ scale · q.
 *            Layout: [scale f32 × T][q i8 × N]; exactly 4T + N bytes. Devices round
 *            stochastically (unbiased: E[scale · q] = value); download deltas round to nearest.
 *   topk     the K largest-magnitude values over the whole delta, the rest zero.
 *            Layout: [count u32 × T][index u32 × K][value f32 × K]; exactly 4T + 8K bytes. Indices
 *            are positions inside their tensor, strictly increasing per tensor; K is at most
 *            topkCount(N, fraction) of the round's plan.
 * T is the number of tensors, N the number of values; every number is little-endian. The decoder
 * checks lengths, counts, ranges and order against the model's shapes before reading a value, so a
 * device's bytes can never make it read out of bounds or allocate more than one model-sized vector.
 */
import { z } from 'zod';
import { shapeSize, totalValues } from './weights.js';

export const COMPRESSION_KINDS = ['none', 'int8', 'topk'] as const;
export type CompressionKind = (typeof COMPRESSION_KINDS)[number];

/** How an encoded delta's `data` is laid out (absent on the wire: float32). */
export const DELTA_ENCODINGS = ['float32', 'int8', 'topk'] as const;
export type DeltaEncoding = (typeof DELTA_ENCODINGS)[number];

/** The top-k fraction when a plan names none. */
export const DEFAULT_TOPK_FRACTION = 0.01;

/** The round's compression of uploads, negotiated in the plan. */
export const compressionSchema = z
  .object({
    kind: z.enum(COMPRESSION_KINDS),
    /** Share of the delta's values a top-k upload may carry (topk only; default DEFAULT_TOPK_FRACTION). */
    topkFraction: z.number().gt(0).max(1).optional(),
  })
  .refine((compression) => compression.kind === 'topk' || compression.topkFraction === undefined, {
    message: 'topkFraction applies to topk compression only',
    path: ['topkFraction'],
  });
export type Compression = z.infer<typeof compressionSchema>;

/** The encoding an upload must use under a round's compression. */
export function deltaEncodingFor(compression: Compression | undefined): DeltaEncoding {
  const kind = compression?.kind ?? 'none';
  return kind === 'none' ? 'float32' : kind;
}

/** The most values a top-k delta of `values` values may carry at `fraction` (at least 1, at most all). */
export function topkCount(values: number, fraction: number): number {
  return Math.min(values, Math.max(1, Math.ceil(fraction * values)));
}

/** Exact byte length of an encoding for these shapes (topk: with `kept` values). */
export function encodedDeltaBytes(encoding: DeltaEncoding, shapes: readonly (readonly number[])[], kept = 0): number {
  const values = totalValues(shapes);
  if (encoding === 'float32') return 4 * values;
  if (encoding === 'int8') return 4 * shapes.length + values;
  return 4 * shapes.length + 8 * kept;
}

/**
 * Why a compressed delta could not be decoded; the coordinator refuses it with `reason`:
 * `compression_mismatch` when it carries more values than the round allows, else `malformed`.
 */
export class DeltaDecodeError extends Error {
  constructor(
    message: string,
    readonly reason: 'malformed' | 'compression_mismatch' = 'malformed',
  ) {
    super(message);
  }
}

function bytesOf(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  return data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A little-endian reader over the received bytes (DataView: no alignment or copy needed). */
function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// ---------------------------------------------------------------- int8

/** The smallest positive float32 (subnormal). */
const MIN_FLOAT32 = 2 ** -149;

/**
 * Quantizes tensors to int8 with a per-tensor scale (max |value| / 127). `random` draws the
 * stochastic rounding (unbiased); pass null to round to nearest (error at most scale / 2 per value).
 */
export function encodeInt8(tensors: readonly Float32Array[], random: (() => number) | null = Math.random): Uint8Array {
  const count = tensors.reduce((sum, tensor) => sum + tensor.length, 0);
  const bytes = new Uint8Array(4 * tensors.length + count);
  const view = viewOf(bytes);
  const quantized = new Int8Array(bytes.buffer, 4 * tensors.length, count);
  let offset = 0;
  tensors.forEach((tensor, t) => {
    let maxAbs = 0;
    for (let i = 0; i < tensor.length; i++) maxAbs = Math.max(maxAbs, Math.abs(tensor[i]!));
    // Values below float32's normal range would underflow the scale to 0: keep the smallest one.
    const scale = maxAbs > 0 ? Math.max(Math.fround(maxAbs / 127), MIN_FLOAT32) : 0;
    view.setFloat32(4 * t, scale, true);
    if (scale > 0) {
      for (let i = 0; i < tensor.length; i++) {
        const scaled = tensor[i]! / scale;
        const q = random ? Math.floor(scaled + random()) : Math.round(scaled);
        quantized[offset + i] = Math.max(-127, Math.min(127, q));
      }
    }
    offset += tensor.length;
  });
  return bytes;
}

/** Dequantizes an int8 delta into one flat float32 vector, after checking its length against the shapes. */
export function decodeInt8(data: ArrayBuffer | ArrayBufferView, shapes: readonly (readonly number[])[]): Float32Array {
  const bytes = bytesOf(data);
  const expected = encodedDeltaBytes('int8', shapes);
  if (bytes.byteLength !== expected) throw new DeltaDecodeError(`int8 delta has ${bytes.byteLength} bytes; the shapes need ${expected}`);
  const view = viewOf(bytes);
  const quantized = new Int8Array(bytes.buffer, bytes.byteOffset + 4 * shapes.length, bytes.byteLength - 4 * shapes.length);
  const out = new Float32Array(quantized.length);
  let offset = 0;
  shapes.forEach((shape, t) => {
    const scale = view.getFloat32(4 * t, true);
    const end = offset + shapeSize(shape);
    // A non-finite or negative scale yields non-finite or flipped values: the norm check refuses the former.
    for (let i = offset; i < end; i++) out[i] = scale * quantized[i]!;
    offset = end;
  });
  return out;
}

// ---------------------------------------------------------------- download deltas

/**
 * The furthest a download delta reaches back: a device holding an older version gets the whole
 * model. The int8 error grows with the distance (it is half the largest change per tensor / 127).
 */
export const MAX_DOWNLOAD_DELTA_VERSIONS = 20;

/** The coordinator's download delta: int8 (rounded to nearest) of current − base, per tensor. */
export function encodeDownloadDelta(current: Float32Array, base: Float32Array, shapes: readonly (readonly number[])[]): Uint8Array {
  if (current.length !== base.length || current.length !== totalValues(shapes)) {
    throw new RangeError(`download delta: ${current.length} and ${base.length} values for shapes of ${totalValues(shapes)}`);
  }
  const difference = new Float32Array(current.length);
  for (let i = 0; i < difference.length; i++) difference[i] = current[i]! - base[i]!;
  const tensors: Float32Array[] = [];
  let offset = 0;
  for (const shape of shapes) {
    const size = shapeSize(shape);
    tensors.push(difference.subarray(offset, offset + size));
    offset += size;
  }
  return encodeInt8(tensors, null);
}

/**
 * The device's side: base + the decoded delta, as new float32 weights. Each value is within half
 * its tensor's scale (plus float32 rounding) of the version's exact weights.
 */
export function applyDownloadDelta(base: Float32Array, data: ArrayBuffer | ArrayBufferView, shapes: readonly (readonly number[])[]): Float32Array {
  const delta = decodeInt8(data, shapes);
  if (delta.length !== base.length) throw new DeltaDecodeError(`download delta has ${delta.length} values; the base has ${base.length}`);
  for (let i = 0; i < delta.length; i++) delta[i] = base[i]! + delta[i]!;
  return delta;
}

// ---------------------------------------------------------------- top-k

/** The kept values of a top-k selection, and the dense vector they stand for (the rest zero). */
export interface TopkSelection {
  data: Uint8Array;
  /** How many values were kept. */
  kept: number;
  /** The delta the coordinator will decode, per tensor (for error feedback: residual = input - sent). */
  sent: Float32Array[];
}

/**
 * Keeps the `topkCount(N, fraction)` largest-magnitude values over all tensors (ties broken by
 * position). Linear time: the threshold is found by selection, not by sorting.
 */
export function encodeTopk(tensors: readonly Float32Array[], fraction: number): TopkSelection {
  const total = tensors.reduce((sum, tensor) => sum + tensor.length, 0);
  const k = total === 0 ? 0 : topkCount(total, fraction);
  const magnitudes = new Float32Array(total);
  let offset = 0;
  for (const tensor of tensors) {
    for (let i = 0; i < tensor.length; i++) magnitudes[offset + i] = Math.abs(tensor[i]!);
    offset += tensor.length;
  }
  const threshold = k === 0 ? Infinity : kthLargest(magnitudes, k);
  // Everything above the threshold, then values equal to it in order until k are kept.
  let above = 0;
  for (const tensor of tensors) for (let i = 0; i < tensor.length; i++) if (Math.abs(tensor[i]!) > threshold) above++;
  let equalAllowed = k - above;
  const data = new Uint8Array(4 * tensors.length + 8 * k);
  const view = viewOf(data);
  const sent = tensors.map((tensor) => new Float32Array(tensor.length));
  let kept = 0;
  tensors.forEach((tensor, t) => {
    let count = 0;
    for (let i = 0; i < tensor.length; i++) {
      const magnitude = Math.abs(tensor[i]!);
      if (magnitude > threshold || (magnitude === threshold && equalAllowed > 0)) {
        if (magnitude === threshold) equalAllowed--;
        view.setUint32(4 * tensors.length + 4 * kept, i, true);
        view.setFloat32(4 * tensors.length + 4 * k + 4 * kept, tensor[i]!, true);
        sent[t]![i] = tensor[i]!;
        kept++;
        count++;
      }
    }
    view.setUint32(4 * t, count, true);
  });
  return { data, kept, sent };
}

/** The k-th largest of `values` (1-based; values is reordered). Quickselect, expected linear time. */
function kthLargest(values: Float32Array, k: number): number {
  let low = 0;
  let high = values.length - 1;
  const target = k - 1;
  while (low < high) {
    const pivot = values[(low + high) >>> 1]!;
    let i = low;
    let j = high;
    while (i <= j) {
      while (values[i]! > pivot) i++;
      while (values[j]! < pivot) j--;
      if (i <= j) {
        const swap = values[i]!;
        values[i] = values[j]!;
        values[j] = swap;
        i++;
        j--;
      }
    }
    if (target <= j) high = j;
    else if (target >= i) low = i;
    else return values[target]!;
  }
  return values[target]!;
}

/**
 * Expands a top-k delta into one flat float32 vector, after checking its byte length, counts (in
 * total at most `maxKept`), index ranges and order against the shapes.
 */
export function decodeTopk(data: ArrayBuffer | ArrayBufferView, shapes: readonly (readonly number[])[], maxKept: number): Float32Array {
  const bytes = bytesOf(data);
  const tensors = shapes.length;
  if (bytes.byteLength < 4 * tensors || (bytes.byteLength - 4 * tensors) % 8 !== 0) {
    throw new DeltaDecodeError(`top-k delta has ${bytes.byteLength} bytes: not ${4 * tensors} bytes of counts plus 8 bytes per value`);
  }
  const kept = (bytes.byteLength - 4 * tensors) / 8;
  if (kept > maxKept) throw new DeltaDecodeError(`top-k delta carries ${kept} values; the round allows ${maxKept}`, 'compression_mismatch');
  const view = viewOf(bytes);
  let counted = 0;
  for (let t = 0; t < tensors; t++) counted += view.getUint32(4 * t, true);
  if (counted !== kept) throw new DeltaDecodeError(`top-k delta's counts add up to ${counted}, its bytes hold ${kept} values`);
  const out = new Float32Array(totalValues(shapes));
  const indexAt = 4 * tensors;
  const valueAt = indexAt + 4 * kept;
  let entry = 0;
  let offset = 0;
  for (let t = 0; t < tensors; t++) {
    const size = shapeSize(shapes[t]!);
    const count = view.getUint32(4 * t, true);
    let previous = -1;
    for (let c = 0; c < count; c++, entry++) {
      const index = view.getUint32(indexAt + 4 * entry, true);
      if (index >= size || index <= previous) {
        throw new DeltaDecodeError(`top-k delta: tensor ${t} index ${index} is ${index >= size ? `outside its ${size} values` : 'not above the previous one'}`);
      }
      previous = index;
      out[offset + index] = view.getFloat32(valueAt + 4 * entry, true);
    }
    offset += size;
  }
  return out;
}

/**
 * Decodes an upload's delta in the encoding its round expects into one flat float32 vector.
 * float32 deltas are returned by the caller's own path (weights.ts); this handles the compressed ones.
 */
export function decodeCompressedDelta(
  encoding: Exclude<DeltaEncoding, 'float32'>,
  data: ArrayBuffer | ArrayBufferView,
  shapes: readonly (readonly number[])[],
  compression: Compression | undefined,
): Float32Array {
  if (encoding === 'int8') return decodeInt8(data, shapes);
  return decodeTopk(data, shapes, topkCount(totalValues(shapes), compression?.topkFraction ?? DEFAULT_TOPK_FRACTION));
}
