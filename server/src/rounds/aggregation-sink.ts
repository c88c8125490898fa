import { PartialAggregate } from '../aggregation/partial-aggregate.js';
import type { AggregationResult, RoundAggregator, RoundContext, SplitAggregation } from '../aggregation/strategy.js';

/** What went into a split aggregate, as its partials say (authoritative over the leader's running tally). */
export interface AggregateTally {
  accepted: number;
  totalExamples: number;
  /** Σ trainLoss · numExamples */
  lossSum: number;
  /** Processes whose partial did not arrive (died mid-round): their updates are lost. */
  lost: string[];
}

export type FinishedAggregate = { result: AggregationResult; tally: AggregateTally | null } | { refused: string };

/**
 * Where a round's accepted updates end up, and how the leader finishes them at commit: folded in
 * this process (LocalAggregationSink: one process, every strategy), or in a partial per process
 * that the leader collects and combines (SplitAggregationSink: cluster mode, weighted-mean family).
 */
export interface AggregationSink {
  /** The new weights, or why the round cannot commit (fewer than `minUpdates` updates arrived). */
  finish(minUpdates: number): Promise<FinishedAggregate>;
}

/** One process: the strategy's own aggregator, which the round engine feeds as uploads arrive. */
export class LocalAggregationSink implements AggregationSink {
  constructor(private readonly aggregator: RoundAggregator) {}

  async finish(): Promise<FinishedAggregate> {
    return { result: this.aggregator.finish(), tally: null };
  }
}

/** What the leader gets back from collecting the processes' partials. */
export interface CollectedPartials {
  partials: PartialAggregate[];
  lost: string[];
}

/**
 * Cluster mode: every process folds the uploads of its own sockets into a partial
 * (cluster-rounds.ts); at commit the leader collects the partials, combines them and runs the
 * strategy's finish on the combined weighted mean (the Master Aggregator).
 */
export class SplitAggregationSink implements AggregationSink {
  constructor(
    private readonly split: SplitAggregation,
    private readonly context: RoundContext,
    private readonly collect: () => Promise<CollectedPartials>,
  ) {}

  async finish(minUpdates: number): Promise<FinishedAggregate> {
    const { partials, lost } = await this.collect();
    const combined = PartialAggregate.combine(partials, this.context.globalWeights.length);
    if (combined.count < Math.max(1, minUpdates)) {
      return {
        refused: `quorum lost: the partial aggregates hold ${combined.count} update(s), ${minUpdates} needed (${lost.length} coordinator process(es) stopped mid-round)`,
      };
    }
    return {
      result: this.split.finish(this.context, combined.mean(), combined.count),
      tally: { accepted: combined.count, totalExamples: combined.totalWeight, lossSum: combined.lossSum, lost },
    };
  }
}
