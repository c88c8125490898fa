import type { RoundContext, SplitAggregation } from '../../aggregation/strategy.js';
import type { AggregationSink, FinishedAggregate } from '../aggregation-sink.js';
import type { SecureRound } from './secure-round.js';

/**
 * A secure round's aggregate: the strategy never sees an update, only the unmasked sum. At commit
 * the secure round runs its remaining phases; the sum Σ w·delta over Σ w becomes the weighted mean
 * that the strategy's split finish turns into the new weights (the weighted-mean family only, as
 * in cluster mode), and what the sum holds is what commits.
 */
export class SecureAggregationSink implements AggregationSink {
  constructor(
    private readonly secure: SecureRound,
    private readonly split: SplitAggregation,
    private readonly context: RoundContext,
  ) {}

  async finish(minUpdates: number): Promise<FinishedAggregate> {
    const outcome = await this.secure.run();
    if ('failed' in outcome) return { refused: `secure aggregation failed: ${outcome.failed}` };
    const { sum, summed } = outcome;
    if (summed < Math.max(1, minUpdates) || sum.totalWeight <= 0) {
      return { refused: `secure aggregation summed ${summed} update(s), ${minUpdates} needed` };
    }
    const mean = sum.weightedDeltaSum;
    for (let i = 0; i < mean.length; i++) mean[i] = mean[i]! / sum.totalWeight;
    return {
      result: this.split.finish(this.context, mean, summed),
      tally: { accepted: summed, totalExamples: sum.totalWeight, lossSum: sum.weightedLossSum, lost: [] },
    };
  }
}
