import { DifferentiallyPrivate } from '../aggregation/differentially-private.js';
import { createStrategy, StrategyConfigError } from '../aggregation/strategies.js';
import type { Strategy } from '../aggregation/strategy.js';
import type { RoundParams } from '../contract/index.js';

/** What a round's strategy is made of. */
export type StrategyParams = Pick<RoundParams, 'strategy' | 'strategyOptions' | 'differentialPrivacy'>;

/**
 * The strategy a round aggregates with: the named one with its options, wrapped in DP-FedAvg for DP
 * rounds. `expectedUpdates` (q · eligible devices) is known once the round has selected; before
 * that, validation builds it with 1. Throws StrategyConfigError for combinations that cannot run.
 */
export function roundStrategy(params: StrategyParams, expectedUpdates = 1): Strategy {
  const strategy = createStrategy(params.strategy, params.strategyOptions);
  const dp = params.differentialPrivacy;
  if (!dp) return strategy;
  if (params.strategyOptions.clipNorm !== undefined) {
    throw new StrategyConfigError('differentialPrivacy.clipNorm bounds every update of a DP round: leave strategyOptions.clipNorm out');
  }
  try {
    return new DifferentiallyPrivate(strategy, { clipNorm: dp.clipNorm, noiseMultiplier: dp.noiseMultiplier, expectedUpdates });
  } catch (error) {
    throw new StrategyConfigError((error as Error).message);
  }
}
