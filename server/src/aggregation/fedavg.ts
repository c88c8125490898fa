import { ComposedStrategy, type AggregateDelta, type DeltaAggregator } from './pipeline.js';
import { DirectUpdate } from './server-optimizers.js';
import type { ClientUpdate } from './strategy.js';
import { addScaledInto } from './vector-math.js';

/**
 * Streaming example-weighted mean of client deltas: a running sum of n_k * delta_k in float64
 * (so thousands of updates don't lose float32 precision) and the total n. Memory is two vectors of
 * model size, whatever the number of clients; no reference to an update is kept after `add`.
 */
export class WeightedMeanAccumulator implements DeltaAggregator {
  private readonly weightedSum: Float64Array;
  private totalWeight = 0;
  private updates = 0;

  constructor(size: number) {
    this.weightedSum = new Float64Array(size);
  }

  add(update: ClientUpdate): void {
    if (!(update.numExamples > 0)) throw new RangeError(`numExamples must be positive, got ${update.numExamples}`);
    addScaledInto(this.weightedSum, update.delta, update.numExamples);
    this.totalWeight += update.numExamples;
    this.updates++;
  }

  get count(): number {
    return this.updates;
  }

  /** The weighted mean delta (float64, a new vector). */
  mean(): Float64Array {
    if (this.updates === 0) throw new Error('no updates to average');
    const mean = new Float64Array(this.weightedSum.length);
    for (let i = 0; i < mean.length; i++) mean[i] = this.weightedSum[i]! / this.totalWeight;
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
