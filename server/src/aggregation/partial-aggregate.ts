import type { CompressedDeltaView } from '@flock/client-sdk/protocol';
import { createFloat64Accumulator, foldInto, type Float64Accumulator } from './kernels/float64-accumulator.js';

/** "FLPA": Flock partial aggregate. */
const MAGIC = 0x41504c46;
const FORMAT_VERSION = 1;
const HEADER_BYTES = 32;
const LITTLE_ENDIAN_HOST = new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f;

/**
 * One process's share of a round's weighted mean (the Aggregator of Bonawitz et al. 2019): the
 * float64 sum of n_k · delta_k over the updates it accepted, their total weight, their count and
 * their weighted train loss. Partials of several processes add up exactly like one accumulator fed
 * every update (up to the float64 order of additions), so the round's leader (the Master
 * Aggregator) combines them and divides once. The sum lives in a Float64Accumulator, the same
 * kernel (wasm SIMD where available) as one process's FedAvg. Pure: no I/O.
 */
export class PartialAggregate {
  private readonly accumulator: Float64Accumulator;
  totalWeight = 0;
  count = 0;
  /** Σ trainLoss_k · n_k, for the round's mean train loss. */
  lossSum = 0;

  constructor(length: number) {
    this.accumulator = createFloat64Accumulator(length);
  }

  /** Σ n_k · scale_k · delta_k so far (a view, valid while the partial lives). */
  get sum(): Float64Array {
    return this.accumulator.sum;
  }

  /** The upload intake measures an update here, so that add() folds it from the same copy (as WeightedMeanAccumulator does). */
  sumOfSquares(delta: Float32Array): number {
    return this.accumulator.sumOfSquares(delta);
  }

  /**
   * Folds one (already bounded) update, `scale` · delta (its clip factor), weighted by its example
   * count: float32 values, or a compressed upload folded from its bytes.
   */
  add(delta: Float32Array | CompressedDeltaView, numExamples: number, trainLoss: number, scale = 1): void {
    if (!(numExamples > 0)) throw new RangeError(`numExamples must be positive, got ${numExamples}`);
    foldInto(this.accumulator, delta, numExamples * scale);
    this.totalWeight += numExamples;
    this.count++;
    this.lossSum += trainLoss * numExamples;
  }

  /** Adds another partial into this one. */
  merge(other: PartialAggregate): void {
    if (other.sum.length !== this.sum.length) throw new RangeError(`length mismatch: ${this.sum.length} vs ${other.sum.length}`);
    for (let i = 0; i < this.sum.length; i++) this.sum[i]! += other.sum[i]!;
    this.totalWeight += other.totalWeight;
    this.count += other.count;
    this.lossSum += other.lossSum;
  }

  /** The example-weighted mean delta (float64): what a single accumulator fed every update would finish with. */
  mean(): Float64Array {
    if (this.count === 0 || !(this.totalWeight > 0)) throw new Error('no updates to average');
    const mean = new Float64Array(this.sum.length);
    for (let i = 0; i < mean.length; i++) mean[i] = this.sum[i]! / this.totalWeight;
    return mean;
  }

  /** Binary form (never JSON arrays): a 32-byte header (magic, format, count, length, total weight, loss sum) and the float64 sum, little-endian. */
  encode(): Uint8Array {
    if (!LITTLE_ENDIAN_HOST) throw new Error('partial aggregates are encoded on little-endian hosts only');
    const bytes = new Uint8Array(HEADER_BYTES + this.sum.byteLength);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, MAGIC, true);
    view.setUint32(4, FORMAT_VERSION, true);
    view.setUint32(8, this.count, true);
    view.setUint32(12, this.sum.length, true);
    view.setFloat64(16, this.totalWeight, true);
    view.setFloat64(24, this.lossSum, true);
    bytes.set(new Uint8Array(this.sum.buffer, this.sum.byteOffset, this.sum.byteLength), HEADER_BYTES);
    return bytes;
  }

  /** Reads an encoded partial, checking its header and size against the model's length; throws RangeError on anything else. */
  static decode(bytes: Uint8Array, length: number): PartialAggregate {
    if (!LITTLE_ENDIAN_HOST) throw new Error('partial aggregates are decoded on little-endian hosts only');
    if (bytes.byteLength !== HEADER_BYTES + length * 8)
      throw new RangeError(`partial aggregate of ${bytes.byteLength} bytes; ${HEADER_BYTES + length * 8} expected`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (view.getUint32(0, true) !== MAGIC || view.getUint32(4, true) !== FORMAT_VERSION) throw new RangeError('not a partial aggregate (magic or format)');
    if (view.getUint32(12, true) !== length) throw new RangeError(`partial aggregate of ${view.getUint32(12, true)} values; ${length} expected`);
    // Copied into the partial's own (8-byte aligned) sum, whatever the offset of the bytes received
    // (a Node Buffer may be a view into a shared pool).
    const partial = new PartialAggregate(length);
    new Uint8Array(partial.sum.buffer, partial.sum.byteOffset, length * 8).set(bytes.subarray(HEADER_BYTES));
    partial.count = view.getUint32(8, true);
    partial.totalWeight = view.getFloat64(16, true);
    partial.lossSum = view.getFloat64(24, true);
    if (!(partial.totalWeight >= 0) || !Number.isFinite(partial.lossSum)) throw new RangeError('partial aggregate with an invalid total weight or loss sum');
    return partial;
  }

  /** The sum of several partials (none: an empty one). */
  static combine(parts: readonly PartialAggregate[], length: number): PartialAggregate {
    const combined = new PartialAggregate(length);
    for (const part of parts) combined.merge(part);
    return combined;
  }
}
