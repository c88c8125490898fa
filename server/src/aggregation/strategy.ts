import type { CompressedDeltaView, TrainingPlan } from '@flock/client-sdk/protocol';
import type { ReceiveArea } from './kernels/float64-accumulator.js';

/** One accepted client update, as the aggregator sees it. */
export interface ClientUpdate {
  /**
   * Flat weight delta (trained minus global), in weightSpecs order. Aggregators never mutate it.
   * Streaming strategies fold it in `add` and keep no reference; buffered (robust) strategies keep
   * the reference until `finish`, so the caller must not reuse the buffer during the round.
   */
  delta: Float32Array;
  /** Local examples: the update's weight. */
  numExamples: number;
  /**
   * The update counts as scale · delta (0 < scale <= 1; 1 when absent): norm clipping without a
   * copy. Streaming aggregators fold it into the weight; buffered ones materialize it (scaledDelta).
   */
  scale?: number;
  /** ‖delta‖ (before `scale`), when the caller has measured it already: spares a wrapper that clips a second pass. */
  norm?: number;
}

/**
 * A compressed (int8 / top-k) upload as a ClientUpdate, without a dense vector: the weighted-mean
 * folds (WeightedMeanAccumulator, PartialAggregate, the DP aggregator) recognise it (instanceof)
 * and fold `compressed` straight from the upload's bytes. Anything that reads `delta` gets it
 * decoded densely, once, on first read: the strategies that need individual updates (median,
 * trimmed mean, Krum / multi-Krum) and the NormBounded wrapper (clipNorm), which measures and may
 * copy the dense delta. A copy of it (spread) is a plain object with the dense delta, so a wrapper
 * that replaces the delta can never be folded from the old bytes.
 */
export class CompressedUpdate implements ClientUpdate {
  declare delta: Float32Array;
  scale?: number;
  norm?: number;

  constructor(
    readonly compressed: CompressedDeltaView,
    public numExamples: number,
    scale?: number,
    norm?: number,
  ) {
    if (scale !== undefined) this.scale = scale;
    if (norm !== undefined) this.norm = norm;
    let dense: Float32Array | null = null;
    Object.defineProperty(this, 'delta', { enumerable: true, get: () => (dense ??= compressed.toDense()) });
  }
}

/**
 * An accepted update as the aggregator takes it: float32 values as they are, a compressed upload as
 * a CompressedUpdate that folds from its bytes. `scale` is left out when it is 1.
 */
export function clientUpdate(delta: Float32Array | CompressedDeltaView, numExamples: number, scale = 1, norm?: number): ClientUpdate {
  const scaled = scale === 1 ? undefined : scale;
  if (!(delta instanceof Float32Array)) return new CompressedUpdate(delta, numExamples, scaled, norm);
  return { delta, numExamples, ...(scaled === undefined ? {} : { scale: scaled }), ...(norm === undefined ? {} : { norm }) };
}

/** What a fold reads of an update: a compressed upload's view (folded from its bytes), else its float32 delta. */
export function foldSource(update: ClientUpdate): Float32Array | CompressedDeltaView {
  return update instanceof CompressedUpdate ? update.compressed : update.delta;
}

/** The delta an update stands for: `delta` itself, or a scaled float32 copy when it carries a scale. */
export function scaledDelta(update: ClientUpdate): Float32Array {
  const { delta, scale = 1 } = update;
  if (scale === 1) return delta;
  const scaled = new Float32Array(delta.length);
  for (let i = 0; i < delta.length; i++) scaled[i] = delta[i]! * scale;
  return scaled;
}

/** What a strategy needs to aggregate one round. */
export interface RoundContext {
  /** Flat global weights the round's clients trained from. Read-only. */
  globalWeights: Float32Array;
  /** Server-side optimizer state the previous version carried (e.g. FedAdam moments), if any. */
  serverState: Uint8Array | null;
}

export interface AggregationResult {
  /** Flat weights of the new global version. */
  weights: Float32Array;
  /** State to persist with the new version (null when the strategy keeps none). */
  serverState: Uint8Array | null;
  /**
   * L2 norm of the round's update. For strategies with a server optimizer (fedavgm, fedadagrad,
   * fedadam, fedyogi) it is the norm of the change actually applied, x_new - x_old. For the others
   * (fedavg, fedprox, median, trimmed-mean, krum, multi-krum) it is the norm of the aggregate delta,
   * which is also the applied change (they apply it with step 1).
   */
  updateNorm: number;
  /**
   * Things the operator should know that did not fail the round: e.g. a previous server state that
   * could not be used (another strategy's, or another model size) and was replaced by fresh state,
   * or multi-krum selecting fewer updates than configured. Log them. Absent or empty when none.
   */
  warnings?: readonly string[];
  /** DP rounds with adaptive clipping: the clip norm the next such round uses (differentially-private.ts). */
  nextClipNorm?: number;
}

/** Folds a round's updates as they arrive; created per round by a Strategy. */
export interface RoundAggregator {
  add(update: ClientUpdate): void;
  /**
   * Optional: Σ delta[i]² (float64; NaN or Infinity when a value is not finite), computed where
   * add() folds, so that validating and folding an upload share one copy of it (the wasm kernel).
   */
  sumOfSquares?(delta: Float32Array): number;
  /**
   * Optional, and only before the first add: where another thread (the HTTP upload listener's) may
   * write uploads, one region per slot, for sumOfSquares and add to read in place (no copy on this
   * thread). Offered only where add() folds the very bytes it is given and keeps none of them (the
   * weighted means), so a region is free again once add() returns. Null when the kernel has none.
   */
  receiveArea?(slots: number): ReceiveArea | null;
  /** Updates folded in so far. */
  readonly count: number;
  /** Computes the new global weights. Call once, after at least one update. */
  finish(): AggregationResult;
}

/**
 * An aggregation strategy (cf. Flower's Strategy): how the plan sent to clients is configured and
 * how their updates become the next global model. Implementations are pure: no I/O, no clocks.
 */
export interface Strategy {
  readonly name: string;
  /** Adjusts the training plan sent to clients (e.g. FedProx sets the proximal term). */
  configurePlan(plan: TrainingPlan): TrainingPlan;
  begin(context: RoundContext): RoundAggregator;
  /**
   * How to aggregate over several coordinator processes, for strategies whose aggregate is an
   * example-weighted mean (it decomposes into partial sums); null or absent for the others (robust
   * strategies need every update in one place).
   */
  split?(): SplitAggregation | null;
}

/** A weighted-mean strategy split into per-process folds and one finish at the round's leader. */
export interface SplitAggregation {
  /** The per-update transform, applied where the update is folded (e.g. clipping to a norm). */
  prepare(update: ClientUpdate): ClientUpdate;
  /** The new weights from the combined weighted mean delta of `updates` updates. */
  finish(context: RoundContext, mean: Float64Array, updates: number): AggregationResult;
}
