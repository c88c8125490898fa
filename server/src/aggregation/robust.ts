/**
 * Byzantine-robust aggregators. Unlike the weighted mean they need every update of the round at
 * once, so they keep them all in memory until `finish`: n updates × model size × 4 bytes (float32,
 * by reference to the caller's buffers; nothing is copied on `add`). That is bounded by
 * `maxBufferedUpdates`. They are unweighted: `numExamples` is self-reported, and a Byzantine client
 * could otherwise claim a huge weight.
 */
import { medianInPlace, trimmedMeanInPlace } from './order-statistics.js';
import type { AggregateDelta, DeltaAggregator } from './pipeline.js';
import { scaledDelta, type ClientUpdate } from './strategy.js';
import { firstNonFinite, squaredDistance } from './vector-math.js';

export const DEFAULT_MAX_BUFFERED_UPDATES = 1000;

/** A buffered aggregator was offered more updates than it may hold. */
export class AggregationCapacityError extends Error {
  override readonly name = 'AggregationCapacityError';
}

function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  return `${(bytes / 2 ** 10).toFixed(1)} KiB`;
}

/** The updates of one round, by reference, bounded in number. */
export class UpdateBuffer {
  readonly deltas: Float32Array[] = [];

  constructor(
    readonly strategy: string,
    readonly size: number,
    readonly maxUpdates: number = DEFAULT_MAX_BUFFERED_UPDATES,
  ) {
    if (!(Number.isInteger(maxUpdates) && maxUpdates >= 1)) throw new RangeError(`maxBufferedUpdates must be a positive integer, got ${maxUpdates}`);
  }

  add(update: ClientUpdate): void {
    if (this.deltas.length >= this.maxUpdates) {
      throw new AggregationCapacityError(
        `${this.strategy} keeps every update in memory and holds at most maxBufferedUpdates = ${this.maxUpdates} ` +
          `(${formatBytes(this.maxUpdates * this.size * 4)} for this model); update ${this.deltas.length + 1} refused`,
      );
    }
    const delta = scaledDelta(update);
    if (delta.length !== this.size) throw new RangeError(`length mismatch: ${update.delta.length} vs ${this.size}`);
    if (!(update.numExamples > 0)) throw new RangeError(`numExamples must be positive, got ${update.numExamples}`);
    // Order statistics and distances are meaningless with NaN; the upload validator already refuses
    // non-finite deltas, this keeps the aggregators safe on their own (one pass, cheap next to them).
    const bad = firstNonFinite(delta);
    if (bad !== -1) throw new RangeError(`delta has a non-finite value at index ${bad}`);
    this.deltas.push(delta);
  }

  get count(): number {
    return this.deltas.length;
  }

  /** Hands the updates over and forgets them (so the caller's buffers can be collected). */
  take(): Float32Array[] {
    if (this.deltas.length === 0) throw new Error('no updates to aggregate');
    return this.deltas.splice(0);
  }
}

/** Coordinates gathered per block: block × n float32 scratch values stay in cache. */
const BLOCK = 256;

/**
 * out[i] = reduce(the n values of coordinate i). Gathers a block of coordinates at a time into one
 * reused scratch array (reading each update sequentially), then reduces each coordinate's run of
 * n values in place.
 */
function coordinateWise(deltas: readonly Float32Array[], size: number, reduce: (scratch: Float32Array, offset: number, n: number) => number): Float64Array {
  const n = deltas.length;
  const out = new Float64Array(size);
  const scratch = new Float32Array(BLOCK * n);
  for (let start = 0; start < size; start += BLOCK) {
    const width = Math.min(BLOCK, size - start);
    for (let k = 0; k < n; k++) {
      const delta = deltas[k]!;
      for (let b = 0; b < width; b++) scratch[b * n + k] = delta[start + b]!;
    }
    for (let b = 0; b < width; b++) out[start + b] = reduce(scratch, b * n, n);
  }
  return out;
}

/**
 * Coordinate-wise median (Yin et al. 2018): each coordinate of the aggregate is the median of that
 * coordinate over the n updates (mean of the two middle values for even n). Tolerates up to
 * ceil(n/2) - 1 arbitrary updates: every coordinate stays within the honest updates' range.
 */
export class CoordinateMedian implements DeltaAggregator {
  private readonly buffer: UpdateBuffer;
  private added = 0;

  constructor(size: number, maxBufferedUpdates?: number) {
    this.buffer = new UpdateBuffer('median', size, maxBufferedUpdates);
  }

  add(update: ClientUpdate): void {
    this.buffer.add(update);
    this.added++;
  }

  get count(): number {
    return this.added;
  }

  finish(): AggregateDelta {
    const deltas = this.buffer.take();
    return { delta: coordinateWise(deltas, this.buffer.size, medianInPlace), warnings: [] };
  }
}

/** Updates trimmed per side: floor(fraction · n), robust to float error in fraction · n. */
export function trimCount(fraction: number, n: number): number {
  return Math.floor(fraction * n + 1e-9);
}

/**
 * Coordinate-wise trimmed mean (Yin et al. 2018): per coordinate, drop the k = floor(β·n) smallest
 * and k largest values and average the rest. Tolerates up to k arbitrary updates. Refuses (at
 * `finish`) a round where k would be 0, because that is a plain mean with no robustness at all.
 */
export class TrimmedMean implements DeltaAggregator {
  private readonly buffer: UpdateBuffer;
  private added = 0;

  constructor(
    size: number,
    private readonly trimFraction: number,
    maxBufferedUpdates?: number,
  ) {
    if (!(trimFraction > 0 && trimFraction < 0.5)) throw new RangeError(`trimFraction must be in (0, 0.5), got ${trimFraction}`);
    this.buffer = new UpdateBuffer('trimmed-mean', size, maxBufferedUpdates);
  }

  add(update: ClientUpdate): void {
    this.buffer.add(update);
    this.added++;
  }

  get count(): number {
    return this.added;
  }

  finish(): AggregateDelta {
    const n = this.buffer.count;
    if (n === 0) throw new Error('no updates to aggregate');
    const trim = trimCount(this.trimFraction, n);
    if (trim < 1) {
      let needed = n + 1;
      while (trimCount(this.trimFraction, needed) < 1) needed++;
      throw new Error(
        `trimmed-mean with trimFraction ${this.trimFraction} trims floor(${this.trimFraction} × ${n}) = 0 updates per side; ` +
          `it needs at least ${needed} updates (got n = ${n}); raise trimFraction or collect more updates`,
      );
    }
    const deltas = this.buffer.take();
    return { delta: coordinateWise(deltas, this.buffer.size, (values, offset, count) => trimmedMeanInPlace(values, offset, count, trim)), warnings: [] };
  }
}

export interface KrumOptions {
  /** f: Byzantine updates to tolerate. Requires n > 2f + 2 at finish. */
  byzantineClients: number;
  /**
   * null: Krum, the aggregate is the single best-scored update. A number m: Multi-Krum, the plain
   * (unweighted) mean of the m best-scored updates, capped at n - f (with a warning). 'n-f': m = n - f.
   */
  select: number | 'n-f' | null;
  maxBufferedUpdates?: number;
}

/**
 * Krum and Multi-Krum (Blanchard et al. 2017). The score of update i is the sum of its squared L2
 * distances to its n - f - 2 nearest other updates; Krum picks the lowest score (ties: the earliest
 * update), Multi-Krum averages the m lowest. Requires n > 2f + 2.
 *
 * Pairwise distances are computed as updates arrive (update k costs k distance computations of
 * model size), so `finish` only scores: O(n²·d) total work, n(n-1)/2 float64 distances of memory on
 * top of the buffered updates.
 */
export class Krum implements DeltaAggregator {
  private readonly buffer: UpdateBuffer;
  /** distances[k][j] = ‖u_k - u_j‖² for j < k. */
  private readonly distances: Float64Array[] = [];
  private readonly label: string;
  private added = 0;

  constructor(
    size: number,
    private readonly options: KrumOptions,
  ) {
    const { byzantineClients: f, select } = options;
    if (!(Number.isInteger(f) && f >= 0)) throw new RangeError(`byzantineClients must be a non-negative integer, got ${f}`);
    if (typeof select === 'number' && !(Number.isInteger(select) && select >= 1))
      throw new RangeError(`multiKrumSelect must be a positive integer, got ${select}`);
    this.label = select === null ? 'krum' : 'multi-krum';
    this.buffer = new UpdateBuffer(this.label, size, options.maxBufferedUpdates);
  }

  add(update: ClientUpdate): void {
    this.buffer.add(update);
    const previous = this.buffer.deltas;
    const k = previous.length - 1;
    const added = previous[k]!; // the update as buffered (scaled when it carries a scale)
    const row = new Float64Array(k);
    for (let j = 0; j < k; j++) row[j] = squaredDistance(added, previous[j]!);
    this.distances.push(row);
    this.added++;
  }

  get count(): number {
    return this.added;
  }

  private distance(i: number, j: number): number {
    return i > j ? this.distances[i]![j]! : this.distances[j]![i]!;
  }

  /** Krum scores of the buffered updates. */
  scores(): Float64Array {
    const n = this.buffer.count;
    const f = this.options.byzantineClients;
    const neighbours = n - f - 2;
    const scores = new Float64Array(n);
    const row = new Float64Array(n - 1);
    for (let i = 0; i < n; i++) {
      let c = 0;
      for (let j = 0; j < n; j++) if (j !== i) row[c++] = this.distance(i, j);
      row.sort();
      let score = 0;
      for (let j = 0; j < neighbours; j++) score += row[j]!;
      scores[i] = score;
    }
    return scores;
  }

  finish(): AggregateDelta {
    const n = this.buffer.count;
    const f = this.options.byzantineClients;
    if (n === 0) throw new Error('no updates to aggregate');
    if (!(n > 2 * f + 2)) {
      throw new Error(`${this.label} needs n > 2f + 2 updates to tolerate f = ${f} Byzantine ones (at least ${2 * f + 3}); got n = ${n}`);
    }
    const scores = this.scores();
    // Ascending score, ties by arrival order: deterministic.
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]! || a - b);
    const warnings: string[] = [];
    let m = 1;
    const { select } = this.options;
    if (select === 'n-f') m = n - f;
    else if (typeof select === 'number') {
      m = Math.min(select, n - f);
      if (m < select) warnings.push(`multi-krum: multiKrumSelect = ${select} exceeds n - f = ${n - f}; averaged the ${m} best-scored updates`);
    }
    const deltas = this.buffer.take();
    const delta = new Float64Array(this.buffer.size);
    for (let r = 0; r < m; r++) {
      const chosen = deltas[order[r]!]!;
      for (let i = 0; i < delta.length; i++) delta[i]! += chosen[i]!;
    }
    if (m > 1) for (let i = 0; i < delta.length; i++) delta[i]! /= m;
    this.distances.length = 0;
    return { delta, warnings };
  }
}
