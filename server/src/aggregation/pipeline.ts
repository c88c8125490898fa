import type { TrainingPlan } from '@flock/client-sdk/protocol';
import type { ReceiveArea } from './kernels/float64-accumulator.js';
import type { AggregationResult, ClientUpdate, RoundAggregator, RoundContext, SplitAggregation, Strategy } from './strategy.js';

/**
 * Strategies are built from parts instead of subclass copies (cf. Reddi et al.'s FedOpt framing):
 *
 *   client updates --> [Strategy wrappers, e.g. NormBounded: per-update transforms]
 *                  --> DeltaAggregator      (weighted mean | median | trimmed mean | krum ...)
 *                  --> AggregateTransforms  (extension point: DP noise, not built yet)
 *                  --> ServerOptimizer      (x + Δ | momentum | Adagrad/Adam/Yogi, with state)
 *                  --> new global weights, server state
 */

/** The aggregate of one round, before the server applies it. */
export interface AggregateDelta {
  /** The combined delta (float64, model size). */
  delta: Float64Array;
  /** Non-fatal notes for the operator. */
  warnings: string[];
}

/** Combines one round's client updates into a single delta. Created per round. */
export interface DeltaAggregator {
  /** Folds (streaming) or keeps (buffered) one update. Never mutates `update.delta`. */
  add(update: ClientUpdate): void;
  /** Optional, see RoundAggregator.sumOfSquares. */
  sumOfSquares?(delta: Float32Array): number;
  /** Optional, see RoundAggregator.receiveArea: only an aggregator that folds each update where it lies, keeping nothing of it. */
  receiveArea?(slots: number): ReceiveArea | null;
  readonly count: number;
  /** Throws when there are no updates, or too few for the aggregator's guarantee. */
  finish(): AggregateDelta;
}

/** What an aggregate transform knows about the round. */
export interface AggregateInfo {
  /** Updates that went into the aggregate. */
  updates: number;
}

/**
 * Extension point between aggregation and the server optimizer: a function of the aggregate
 * delta. This is where DP-FedAvg's Gaussian noise (McMahan et al. 2018: std z·S / expected total
 * weight, after NormBounded clipped every update to S) will go; none is built yet. A transform may
 * modify `delta` in place and return it, or return a new vector of the same length.
 */
export interface AggregateTransform {
  readonly name: string;
  apply(delta: Float64Array, info: AggregateInfo): Float64Array;
}

/** The server's step: applies an aggregate delta to the global weights, with optional state. */
export interface ServerOptimizer {
  /**
   * Returns the new weights, the state to persist, the update norm (see AggregationResult) and
   * warnings (e.g. previous state unusable). Never mutates its inputs.
   */
  step(globalWeights: Float32Array, delta: Float64Array, serverState: Uint8Array | null): Omit<AggregationResult, 'warnings'> & { warnings: string[] };
}

export interface ComposedStrategyParts {
  name: string;
  /** Creates the per-round aggregator for a model of `size` parameters. */
  createAggregator(size: number): DeltaAggregator;
  optimizer: ServerOptimizer;
  /** Adjusts the plan sent to clients (FedProx). Identity when absent. */
  configurePlan?: (plan: TrainingPlan) => TrainingPlan;
  /** Applied in order to the aggregate before the optimizer. Empty by default. */
  aggregateTransforms?: readonly AggregateTransform[];
  /** True when the aggregator is the example-weighted mean: then the strategy can be split over processes (split()). */
  weightedMean?: boolean;
}

/** A Strategy assembled from an aggregator, optional aggregate transforms and a server optimizer. */
export class ComposedStrategy implements Strategy {
  readonly name: string;
  private readonly parts: ComposedStrategyParts;

  constructor(parts: ComposedStrategyParts) {
    this.name = parts.name;
    this.parts = parts;
  }

  configurePlan(plan: TrainingPlan): TrainingPlan {
    return this.parts.configurePlan ? this.parts.configurePlan(plan) : plan;
  }

  begin(context: RoundContext): RoundAggregator {
    const aggregator = this.parts.createAggregator(context.globalWeights.length);
    const measured: Pick<RoundAggregator, 'sumOfSquares'> = aggregator.sumOfSquares ? { sumOfSquares: (delta) => aggregator.sumOfSquares!(delta) } : {};
    // Aggregate transforms and the optimizer see only the finished aggregate: the fold reads what the aggregator is given.
    const receiving: Pick<RoundAggregator, 'receiveArea'> = aggregator.receiveArea ? { receiveArea: (slots) => aggregator.receiveArea!(slots) } : {};
    return {
      ...measured,
      ...receiving,
      add: (update) => aggregator.add(update),
      get count() {
        return aggregator.count;
      },
      finish: (): AggregationResult => this.apply(context, aggregator.finish(), aggregator.count),
    };
  }

  split(): SplitAggregation | null {
    if (!this.parts.weightedMean) return null;
    return {
      prepare: (update) => update,
      finish: (context, mean, updates) => this.apply(context, { delta: mean, warnings: [] }, updates),
    };
  }

  /** Aggregate transforms, then the server optimizer. */
  private apply({ globalWeights, serverState }: RoundContext, aggregate: AggregateDelta, updates: number): AggregationResult {
    let delta = aggregate.delta;
    for (const transform of this.parts.aggregateTransforms ?? []) {
      delta = transform.apply(delta, { updates });
      if (delta.length !== globalWeights.length) throw new RangeError(`aggregate transform ${transform.name} changed the length to ${delta.length}`);
    }
    const step = this.parts.optimizer.step(globalWeights, delta, serverState);
    return { ...step, warnings: [...aggregate.warnings, ...step.warnings] };
  }
}
