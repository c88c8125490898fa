/**
 * Compressed weight deltas (for rounds without secure aggregation): the per-round choice the plan
 * carries, and the binary codecs both sides use.
 *
 *   float32  the plain encoding (weights.ts): 4 bytes per value.
 *   int8     per tensor one float32 scale, then one int8 per value: value ≈ scale · q.
 *            Layout: [scale f32 × T][q i8 × N]; exactly 4T + N bytes. Devices round
 *            stochastically (unbiased: E[scale · q] = value); download deltas round to nearest.
 *   topk     the K largest-magnitude values over the whole delta, the rest zero. Each kept value
 *            is its sign and one of its tensor's 8 float32 magnitude levels (geometric from the
 *            smallest kept magnitude to the largest; stochastic rounding between neighbours), a
 *            4-bit code; its position is the gap from the previous kept one in its tensor, Rice-
 *            coded with the tensor's parameter (rice.ts).
 *            Layout: [count u32 × T][level f32 × 8T][rice parameter u8 × T][code 4 bits × K, two a
 *            byte, low half first][gaps, Rice-coded bits, least significant first, 0-padded to a
 *            byte]; 37T + ceil(K/2) + ceil(gap bits / 8) bytes. A code is sign << 3 | level. The
 *            first kept value of a tensor is at gap, each next one at previous + 1 + gap (so strictly
 *            increasing by construction), inside the tensor; K (the sum of the counts) is at most
 *            topkCount(N, fraction) of the round's plan. Codes and gaps are kept apart so that the
 *            codes sit at fixed offsets. About 1 byte per kept value on the 2NN's uploads, against
 *            8 for an index and a float32 (bench/results/compression.md).
 * T is the number of tensors, N the number of values; every number is little-endian. The decoder
 * checks lengths, counts, ranges and order against the model's shapes before reading a value, so a
 * device's bytes can never make it read out of bounds or allocate more than one model-sized vector.
 * The coordinator's weighted-mean path does not decode at all: parseCompressedDelta validates the
 * bytes and returns a view that measures (L2 norm) and folds them straight from the encoding.
 */
import { z } from 'zod';
import { bestRiceParameter, MAX_RICE_PARAMETER, RiceReader, RiceWriter } from './rice.js';
import { shapeSize, totalValues } from './weights.js';

export const COMPRESSION_KINDS = ['none', 'int8', 'topk'] as const;
export type CompressionKind = (typeof COMPRESSION_KINDS)[number];

/** How an encoded delta's `data` is laid out (absent on the wire: float32). */
export const DELTA_ENCODINGS = ['float32', 'int8', 'topk'] as const;
export type DeltaEncoding = (typeof DELTA_ENCODINGS)[number];

/** The top-k fraction when a plan names none: about 1 byte per kept value, 20.8x fewer bytes than float32 on the 2NN (bench/results/compression.md). */
export const DEFAULT_TOPK_FRACTION = 0.2;

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

/**
 * Byte length of an encoding for these shapes: exact for float32 and int8; for topk with `kept`
 * values the most the encoder writes. It picks each tensor's Rice parameter for the fewest bits,
 * so at most those of k = floor(log2(size / count)): count · (1 + k) + size / 2^k < count · (3 +
 * log2(size / count)) bits, and summed over tensors at most K · (3 + log2(N / K)) (log-sum inequality).
 */
export function encodedDeltaBytes(encoding: DeltaEncoding, shapes: readonly (readonly number[])[], kept = 0): number {
  const values = totalValues(shapes);
  if (encoding === 'float32') return 4 * values;
  if (encoding === 'int8') return 4 * shapes.length + values;
  const gapBits = kept === 0 ? 0 : kept * (3 + Math.log2(values / kept));
  return topkOffsets(shapes.length).codesAt + Math.ceil(kept / 2) + Math.ceil(gapBits / 8);
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

/** Dequantizes an int8 delta into one flat float32 vector, after checking its length against the shapes (parseInt8, then toDense). */
export function decodeInt8(data: ArrayBuffer | ArrayBufferView, shapes: readonly (readonly number[])[]): Float32Array {
  return parseInt8(data, shapes).toDense();
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
  /**
   * The delta the coordinator will decode, per tensor: the kept values as sent (± one of the
   * tensor's float32 levels), the rest zero. For error feedback: residual = input − sent (which
   * carries both what top-k left out and the rounding error of what it kept).
   */
  sent: Float32Array[];
}

/** Magnitude levels per tensor of a top-k delta: a kept value is its sign and one of them (4 bits). */
export const TOPK_LEVELS = 8;

/** Where a top-k delta of `tensors` tensors keeps its parts: counts at 0, then the levels, the Rice parameters, the codes. */
function topkOffsets(tensors: number): { levelsAt: number; parametersAt: number; codesAt: number } {
  const levelsAt = 4 * tensors;
  const parametersAt = levelsAt + 4 * TOPK_LEVELS * tensors;
  return { levelsAt, parametersAt, codesAt: parametersAt + tensors };
}

/**
 * A tensor's magnitude levels for kept magnitudes in [low, high]: geometric from low to high (the
 * relative rounding error is the same at every size, and top-k's magnitudes are heavy-tailed), or,
 * when low is 0 (fewer non-zero values than kept ones), 0 and then high / 64 ... high.
 */
function magnitudeLevels(low: number, high: number): Float32Array {
  const levels = new Float32Array(TOPK_LEVELS);
  if (!(high > 0)) return levels;
  const last = TOPK_LEVELS - 1;
  const from = low > 0 ? low : high / 64;
  const first = low > 0 ? 0 : 1;
  for (let j = first; j < last; j++) levels[j] = from * (high / from) ** ((j - first) / (last - first));
  levels[0] = low; // exact: the ends are kept magnitudes themselves
  levels[last] = high;
  return levels;
}

/**
 * The level index for `magnitude` (within levels[0]..levels[last]): rounded stochastically between
 * its two neighbouring levels with `random` (unbiased: E[level] = magnitude), or to the nearest.
 */
function levelIndex(levels: Float32Array, magnitude: number, random: (() => number) | null): number {
  let j = 0;
  while (j < TOPK_LEVELS - 2 && magnitude > levels[j + 1]!) j++;
  const below = levels[j]!;
  const above = levels[j + 1]!;
  if (!(above > below)) return magnitude > below ? j + 1 : j;
  const up = (magnitude - below) / (above - below);
  return (random ? random() < up : up >= 0.5) ? j + 1 : j;
}

/**
 * Keeps the `topkCount(N, fraction)` largest-magnitude values over all tensors (ties broken by
 * position) and sends each as its sign and one of its tensor's TOPK_LEVELS magnitude levels,
 * rounding stochastically with `random` (unbiased; null rounds to nearest), with the gaps between
 * positions Rice-coded. Linear time: the threshold is found by selection, not by sorting.
 */
export function encodeTopk(tensors: readonly Float32Array[], fraction: number, random: (() => number) | null = Math.random): TopkSelection {
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
  const positions = new Uint32Array(k);
  const gaps = new Uint32Array(k);
  const T = tensors.length;
  const counts = new Uint32Array(T);
  const levels: Float32Array[] = [];
  const riceParameters = new Uint8Array(T);
  let kept = 0;
  let gapBits = 0;
  tensors.forEach((tensor, t) => {
    const first = kept;
    let previous = -1;
    let low = Infinity;
    let high = 0;
    for (let i = 0; i < tensor.length; i++) {
      const magnitude = Math.abs(tensor[i]!);
      if (magnitude > threshold || (magnitude === threshold && equalAllowed > 0)) {
        if (magnitude === threshold) equalAllowed--;
        positions[kept] = i;
        gaps[kept++] = i - previous - 1;
        previous = i;
        low = Math.min(low, magnitude);
        high = Math.max(high, magnitude);
      }
    }
    counts[t] = kept - first;
    levels.push(kept > first ? magnitudeLevels(low, high) : new Float32Array(TOPK_LEVELS));
    const rice = bestRiceParameter(gaps.subarray(first, kept));
    riceParameters[t] = rice.parameter;
    gapBits += rice.bits;
  });
  const { levelsAt, parametersAt, codesAt } = topkOffsets(T);
  const gapsAt = codesAt + Math.ceil(k / 2);
  const data = new Uint8Array(gapsAt + Math.ceil(gapBits / 8));
  const view = viewOf(data);
  const writer = new RiceWriter(data, gapsAt);
  const sent = tensors.map((tensor) => new Float32Array(tensor.length));
  let entry = 0;
  tensors.forEach((tensor, t) => {
    const tensorLevels = levels[t]!;
    view.setUint32(4 * t, counts[t]!, true);
    tensorLevels.forEach((level, j) => view.setFloat32(levelsAt + 4 * (TOPK_LEVELS * t + j), level, true));
    data[parametersAt + t] = riceParameters[t]!;
    for (let c = 0; c < counts[t]!; c++, entry++) {
      const position = positions[entry]!;
      const value = tensor[position]!;
      const level = levelIndex(tensorLevels, Math.abs(value), random);
      const code = value < 0 ? level | TOPK_LEVELS : level;
      data[codesAt + (entry >>> 1)]! |= entry & 1 ? code << 4 : code;
      sent[t]![position] = value < 0 ? -tensorLevels[level]! : tensorLevels[level]!;
      writer.write(gaps[entry]!, riceParameters[t]!);
    }
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

// ---------------------------------------------------------------- fused views

/**
 * A validated compressed delta that is read straight from its bytes: measured and folded without
 * a dense per-upload vector (the coordinator's weighted-mean path), or decoded densely on demand
 * (strategies that keep individual updates). Its values are exactly what the dense decoders return
 * (float32 scale · q), so every method here is bit-identical to the same operation on `toDense()`.
 */
export interface CompressedDeltaView {
  readonly encoding: 'int8' | 'topk';
  /** Values of the dense vector it stands for. */
  readonly length: number;
  /**
   * Σ v² in float64, bit-identical to the coordinator's sumOfSquares kernel on `toDense()`
   * (eight partial sums by position mod 8, combined ((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7)); zeros add
   * nothing). NaN or Infinity exactly when some value is not finite.
   */
  sumOfSquares(): number;
  /** target[i] += weight · v[i] for every value it carries (the rest are zero: nothing to add), in float64. */
  addScaledTo(target: Float64Array, weight: number): void;
  /** The dense float32 vector (a new one). */
  toDense(): Float32Array;
  /**
   * int8 only: its tensors as runs of quantized values (the bytes at `source`, `end - start` of them,
   * standing for positions start..end, value = float32 scale · q), for kernels that fold them
   * elsewhere (the coordinator's wasm kernel). Null for top-k.
   */
  int8Runs(): { quantized: Int8Array; runs: readonly Int8Run[] } | null;
}

/** One tensor of an int8 delta: positions [start, end) of the dense vector, quantized values from `source`. */
export interface Int8Run {
  start: number;
  end: number;
  source: number;
  /** The tensor's float32 scale. */
  scale: number;
}

/**
 * Where each uploaded tensor sits in the dense vector: `offsets[t]` (increasing, non-overlapping)
 * inside a vector of `length` values. Default: packed in order (offset = the sum of the previous
 * sizes, length = all of them); a personal-layers round widens the shared tensors to the model.
 */
export interface DeltaPlacement {
  offsets: readonly number[];
  length: number;
}

function packedPlacement(shapes: readonly (readonly number[])[]): DeltaPlacement {
  const offsets: number[] = [];
  let offset = 0;
  for (const shape of shapes) {
    offsets.push(offset);
    offset += shapeSize(shape);
  }
  return { offsets, length: offset };
}

function checkPlacement(shapes: readonly (readonly number[])[], placement: DeltaPlacement): void {
  if (placement.offsets.length !== shapes.length) throw new RangeError(`placement of ${placement.offsets.length} tensors for ${shapes.length}`);
  let end = 0;
  shapes.forEach((shape, t) => {
    const offset = placement.offsets[t]!;
    if (!(Number.isInteger(offset) && offset >= end)) throw new RangeError(`tensor ${t} placed at ${offset}, before the end of the previous one (${end})`);
    end = offset + shapeSize(shape);
  });
  if (end > placement.length) throw new RangeError(`tensors end at ${end}, past the vector's ${placement.length} values`);
}

/**
 * The kernels' order of additions (js-kernels.ts jsSumOfSquares): the squares of positions below
 * the last multiple of 8 go to eight partial sums by position mod 8, combined as
 * ((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7)); the last (length mod 8) squares are then added in order.
 * Zeros add nothing (x + 0 = x), so a sparse sum in this order is bit-identical to the dense one.
 */
class LaneSum {
  private readonly lanes = new Float64Array(8);
  private readonly tail: number;
  private readonly tailSquares: number[] = [];

  constructor(length: number) {
    this.tail = length - (length % 8);
  }

  /** Adds value² at `position`; positions at or past the tail must come in increasing order. */
  add(position: number, value: number): void {
    if (position < this.tail) this.lanes[position & 7]! += value * value;
    else this.tailSquares.push(value * value);
  }

  total(): number {
    const l = this.lanes;
    let total = l[0]! + l[1]! + (l[2]! + l[3]!) + (l[4]! + l[5]! + (l[6]! + l[7]!));
    for (const square of this.tailSquares) total += square;
    return total;
  }
}

/** float32 scale · q for every q (indexed by q + 128): the dense decoders' values, looked up. */
function dequantizeTable(scale: number): Float64Array {
  const table = new Float64Array(256);
  for (let q = -128; q < 128; q++) table[q + 128] = Math.fround(scale * q);
  return table;
}

class Int8View implements CompressedDeltaView {
  readonly encoding = 'int8';
  readonly length: number;
  private readonly quantized: Int8Array;
  /** Per tensor: where it sits, where its bytes start, its scale. */
  private readonly runs: Int8Run[];
  /** Per tensor: its float32 values by q + 128, and their squares (both exact: the same products as per value). */
  private readonly tables: Float64Array[];
  private readonly squares: Float64Array[];

  constructor(bytes: Uint8Array, shapes: readonly (readonly number[])[], placement: DeltaPlacement) {
    const view = viewOf(bytes);
    this.length = placement.length;
    this.quantized = new Int8Array(bytes.buffer, bytes.byteOffset + 4 * shapes.length, bytes.byteLength - 4 * shapes.length);
    let source = 0;
    this.runs = shapes.map((shape, t) => {
      const start = placement.offsets[t]!;
      const run = { start, end: start + shapeSize(shape), source, scale: view.getFloat32(4 * t, true) };
      source += shapeSize(shape);
      return run;
    });
    this.tables = this.runs.map((run) => dequantizeTable(run.scale));
    this.squares = this.tables.map((table) => table.map((value) => value * value));
  }

  int8Runs(): { quantized: Int8Array; runs: readonly Int8Run[] } {
    return { quantized: this.quantized, runs: this.runs };
  }

  sumOfSquares(): number {
    // The kernels' order (LaneSum), with the eight lanes in locals over each aligned run of 8.
    const lanes = new Float64Array(8);
    const tail = this.length - (this.length % 8);
    const tailSquares: number[] = [];
    const quantized = this.quantized;
    this.runs.forEach(({ start, end, source: first }, t) => {
      const squares = this.squares[t]!;
      const bulkEnd = Math.min(end, tail);
      let source = first;
      let i = start;
      for (; i < bulkEnd && (i & 7) !== 0; i++, source++) lanes[i & 7]! += squares[quantized[source]! + 128]!;
      let s0 = lanes[0]!;
      let s1 = lanes[1]!;
      let s2 = lanes[2]!;
      let s3 = lanes[3]!;
      let s4 = lanes[4]!;
      let s5 = lanes[5]!;
      let s6 = lanes[6]!;
      let s7 = lanes[7]!;
      for (; i + 8 <= bulkEnd; i += 8, source += 8) {
        s0 += squares[quantized[source]! + 128]!;
        s1 += squares[quantized[source + 1]! + 128]!;
        s2 += squares[quantized[source + 2]! + 128]!;
        s3 += squares[quantized[source + 3]! + 128]!;
        s4 += squares[quantized[source + 4]! + 128]!;
        s5 += squares[quantized[source + 5]! + 128]!;
        s6 += squares[quantized[source + 6]! + 128]!;
        s7 += squares[quantized[source + 7]! + 128]!;
      }
      lanes[0] = s0;
      lanes[1] = s1;
      lanes[2] = s2;
      lanes[3] = s3;
      lanes[4] = s4;
      lanes[5] = s5;
      lanes[6] = s6;
      lanes[7] = s7;
      for (; i < bulkEnd; i++, source++) lanes[i & 7]! += squares[quantized[source]! + 128]!;
      for (; i < end; i++, source++) tailSquares.push(squares[quantized[source]! + 128]!);
    });
    let total = lanes[0]! + lanes[1]! + (lanes[2]! + lanes[3]!) + (lanes[4]! + lanes[5]! + (lanes[6]! + lanes[7]!));
    for (const square of tailSquares) total += square;
    return total;
  }

  addScaledTo(target: Float64Array, weight: number): void {
    if (target.length !== this.length) throw new RangeError(`length mismatch: ${target.length} vs ${this.length}`);
    const quantized = this.quantized;
    this.runs.forEach(({ start, end, source }, t) => {
      // weight · value for each of the 256 values: the same product the fold of the dense value makes.
      const scaled = this.tables[t]!.map((value) => weight * value);
      for (let i = start, j = source; i < end; i++, j++) target[i]! += scaled[quantized[j]! + 128]!;
    });
  }

  toDense(): Float32Array {
    const out = new Float32Array(this.length);
    const quantized = this.quantized;
    this.runs.forEach(({ start, end, source }, t) => {
      const table = this.tables[t]!;
      for (let i = start, j = source; i < end; i++, j++) out[i] = table[quantized[j]! + 128]!;
    });
    return out;
  }
}

class TopkView implements CompressedDeltaView {
  readonly encoding = 'topk';

  constructor(
    readonly length: number,
    /** Dense positions of the kept values, strictly increasing. */
    private readonly positions: Uint32Array,
    /** Their values (float32 scale · q), in float64. */
    private readonly values: Float64Array,
  ) {}

  sumOfSquares(): number {
    const sum = new LaneSum(this.length);
    const { positions, values } = this;
    for (let e = 0; e < positions.length; e++) sum.add(positions[e]!, values[e]!);
    return sum.total();
  }

  addScaledTo(target: Float64Array, weight: number): void {
    if (target.length !== this.length) throw new RangeError(`length mismatch: ${target.length} vs ${this.length}`);
    const { positions, values } = this;
    for (let e = 0; e < positions.length; e++) target[positions[e]!]! += weight * values[e]!;
  }

  toDense(): Float32Array {
    const out = new Float32Array(this.length);
    for (let e = 0; e < this.positions.length; e++) out[this.positions[e]!] = this.values[e]!;
    return out;
  }

  int8Runs(): null {
    return null;
  }
}

/** Validates an int8 delta's length against the shapes and returns a view over its bytes (no copy). */
export function parseInt8(
  data: ArrayBuffer | ArrayBufferView,
  shapes: readonly (readonly number[])[],
  placement = packedPlacement(shapes),
): CompressedDeltaView {
  checkPlacement(shapes, placement);
  const bytes = bytesOf(data);
  const expected = encodedDeltaBytes('int8', shapes);
  if (bytes.byteLength !== expected) throw new DeltaDecodeError(`int8 delta has ${bytes.byteLength} bytes; the shapes need ${expected}`);
  // A non-finite or negative scale yields non-finite or flipped values: the norm check refuses the former.
  return new Int8View(bytes, shapes, placement);
}

/**
 * Validates a top-k delta against the shapes in one pass over its bytes: the counts (in total at
 * most `maxKept`, each at most its tensor's size), the Rice parameters (at most 31), the byte
 * length (at least the header and the codes, at most what the encoder can write: encodedDeltaBytes), every gap (a Rice code that stays inside its tensor
 * and inside the bytes), and that the bytes end in the byte of the last gap with zero padding.
 * Allocates 12 bytes per kept value (positions and values), never a model-sized vector; its work is
 * linear in the bytes.
 */
export function parseTopk(
  data: ArrayBuffer | ArrayBufferView,
  shapes: readonly (readonly number[])[],
  maxKept: number,
  placement = packedPlacement(shapes),
): CompressedDeltaView {
  checkPlacement(shapes, placement);
  const bytes = bytesOf(data);
  const tensors = shapes.length;
  const { levelsAt, parametersAt, codesAt } = topkOffsets(tensors);
  if (bytes.byteLength < codesAt) throw new DeltaDecodeError(`top-k delta has ${bytes.byteLength} bytes: fewer than the ${codesAt} of its header`);
  const view = viewOf(bytes);
  let kept = 0;
  for (let t = 0; t < tensors; t++) {
    const count = view.getUint32(4 * t, true);
    const size = shapeSize(shapes[t]!);
    if (count > size) throw new DeltaDecodeError(`top-k delta: tensor ${t} counts ${count} values of its ${size}`);
    if (bytes[parametersAt + t]! > MAX_RICE_PARAMETER)
      throw new DeltaDecodeError(`top-k delta: tensor ${t}'s Rice parameter ${bytes[parametersAt + t]} is above ${MAX_RICE_PARAMETER}`);
    kept += count;
  }
  if (kept > maxKept) throw new DeltaDecodeError(`top-k delta carries ${kept} values; the round allows ${maxKept}`, 'compression_mismatch');
  const gapsAt = codesAt + Math.ceil(kept / 2);
  const maximum = encodedDeltaBytes('topk', shapes, kept);
  if (bytes.byteLength < gapsAt || bytes.byteLength > maximum) {
    throw new DeltaDecodeError(`top-k delta of ${kept} values has ${bytes.byteLength} bytes; it needs ${gapsAt} to ${maximum}`);
  }
  if (kept % 2 === 1 && bytes[gapsAt - 1]! >>> 4 !== 0) throw new DeltaDecodeError('top-k delta: the unused half of its last code byte is not 0');
  const positions = new Uint32Array(kept);
  const values = new Float64Array(kept);
  const reader = new RiceReader(bytes, gapsAt, bytes.byteLength);
  let entry = 0;
  for (let t = 0; t < tensors; t++) {
    const size = shapeSize(shapes[t]!);
    const count = view.getUint32(4 * t, true);
    const parameter = bytes[parametersAt + t]!;
    // Each code's value (± a float32 level, exactly the dense decoder's), looked up.
    const table = new Float64Array(2 * TOPK_LEVELS);
    for (let j = 0; j < TOPK_LEVELS; j++) {
      table[j] = view.getFloat32(levelsAt + 4 * (TOPK_LEVELS * t + j), true);
      table[j | TOPK_LEVELS] = -table[j]!;
    }
    const failure = reader.readPositions(parameter, count, size, positions, entry, placement.offsets[t]!);
    if (failure?.reason === 'end') throw new DeltaDecodeError(`top-k delta: tensor ${t}'s gap ${failure.gap} runs past the end of the bytes`);
    if (failure) throw new DeltaDecodeError(`top-k delta: tensor ${t}'s gap ${failure.gap} leads outside its ${size} values`);
    for (const end = entry + count; entry < end; entry++) values[entry] = table[(bytes[codesAt + (entry >>> 1)]! >>> (entry & 1 ? 4 : 0)) & 0xf]!;
  }
  if (!reader.endsCleanly()) throw new DeltaDecodeError('top-k delta: bytes after its last gap');
  return new TopkView(placement.length, positions, values);
}

/**
 * Expands a top-k delta into one flat float32 vector, after the checks of parseTopk.
 */
export function decodeTopk(data: ArrayBuffer | ArrayBufferView, shapes: readonly (readonly number[])[], maxKept: number): Float32Array {
  return parseTopk(data, shapes, maxKept).toDense();
}

/**
 * Validates an upload's delta in the encoding its round expects and returns a view that measures
 * and folds it from its bytes (or decodes it densely on demand). `placement` widens it (personal
 * layers). float32 deltas take the caller's own path (weights.ts); this handles the compressed ones.
 */
export function parseCompressedDelta(
  encoding: Exclude<DeltaEncoding, 'float32'>,
  data: ArrayBuffer | ArrayBufferView,
  shapes: readonly (readonly number[])[],
  compression: Compression | undefined,
  placement = packedPlacement(shapes),
): CompressedDeltaView {
  if (encoding === 'int8') return parseInt8(data, shapes, placement);
  return parseTopk(data, shapes, topkCount(totalValues(shapes), compression?.topkFraction ?? DEFAULT_TOPK_FRACTION), placement);
}

/** Decodes an upload's compressed delta into one flat float32 vector (parseCompressedDelta, then toDense). */
export function decodeCompressedDelta(
  encoding: Exclude<DeltaEncoding, 'float32'>,
  data: ArrayBuffer | ArrayBufferView,
  shapes: readonly (readonly number[])[],
  compression: Compression | undefined,
): Float32Array {
  return parseCompressedDelta(encoding, data, shapes, compression).toDense();
}
