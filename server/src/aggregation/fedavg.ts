import { ComposedStrategy, type AggregateDelta, type DeltaAggregator } from './pipeline.js';
import { DirectUpdate } from './server-optimizers.js';
import { createFloat64Accumulator, foldInto, type Float64Accumulator, type KernelChoice, type ReceiveArea } from './kernels/float64-accumulator.js';
import { foldSource, type ClientUpdate } from './strategy.js';

/**
 * Streaming example-weighted mean of client deltas: a running sum of n_k * scale_k * delta_k in
 * float64 (so thousands of updates don't lose float32 precision) and the total n. The sum lives in
 * a Float64Accumulator (the wasm SIMD kernel where available). Memory is 12 bytes per parameter
 * with the wasm kernel (the sum and one staged upload; plus 4 per slot of a receive area), 8 with the
 * JS one, whatever the number of clients; no reference to an update is kept after `add`.
 */
export class WeightedMeanAccumulator implements DeltaAggregator {
  private readonly accumulator: Float64Accumulator;
  private totalWeight = 0;
  private updates = 0;

  constructor(size: number, kernel: KernelChoice = 'auto') {
    this.accumulator = createFloat64Accumulator(size, kernel);
  }

  /** The kernel folding the updates. */
  get kernel(): Float64Accumulator['kernel'] {
    return this.accumulator.kernel;
  }

  /** The upload path measures an update here, so that add() folds it from the same copy. */
  sumOfSquares(delta: Float32Array): number {
    return this.accumulator.sumOfSquares(delta);
  }

  /** Where uploads may be written to be measured and folded in place (Float64Accumulator.receiveArea): before the first add. */
  receiveArea(slots: number): ReceiveArea | null {
    return this.accumulator.receiveArea(slots);
  }

  add(update: ClientUpdate): void {
    if (!(update.numExamples > 0)) throw new RangeError(`numExamples must be positive, got ${update.numExamples}`);
    const scale = update.scale ?? 1;
    if (!(scale >= 0 && scale <= 1)) throw new RangeError(`scale must be in [0, 1], got ${scale}`);
    // A compressed upload is folded from its bytes (no dense vector).
    foldInto(this.accumulator, foldSource(update), update.numExamples * scale);
    this.totalWeight += update.numExamples;
    this.updates++;
  }

  get count(): number {
    return this.updates;
  }

  /** The weighted mean delta (float64, a new vector). */
  mean(): Float64Array {
    if (this.updates === 0) throw new Error('no updates to average');
    const sum = this.accumulator.sum;
    const mean = new Float64Array(sum.length);
    for (let i = 0; i < mean.length; i++) mean[i] = sum[i]! / this.totalWeight;
    return mean;
  }

  finish(): AggregateDelta {
    return { delta: this.mean(), warnings: [] };
  }
}

/**
 * Federated averaging (McMahan et al. 2017): w <- w + sum_k n_k delta_k / sum_k n_k.
 * Streaming, stateless, no options (add `clipNorm` through createStrategy to bound updates).
 */
export class FedAvg extends ComposedStrategy {
  constructor() {
    super({ name: 'fedavg', createAggregator: (size) => new WeightedMeanAccumulator(size), optimizer: new DirectUpdate(), weightedMean: true });
  }
}
