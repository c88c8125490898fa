import { DifferentiallyPrivate, sumNoiseMultiplier } from '../aggregation/differentially-private.js';
import { createStrategy, StrategyConfigError } from '../aggregation/strategies.js';
import type { Strategy } from '../aggregation/strategy.js';
import type { RoundParams } from '../contract/index.js';

/** What a round's strategy is made of. */
export type StrategyParams = Pick<RoundParams, 'strategy' | 'strategyOptions' | 'differentialPrivacy'>;

/**
 * The strategy a round aggregates with: the named one with its options, wrapped in DP-FedAvg for DP
 * rounds. `expectedUpdates` (q · eligible devices) is known once the round has selected; before
 * that, validation builds it with 1. `clipNorm`: the round's C (with adaptive clipping, where the
 * previous round moved it; else the request's). Throws StrategyConfigError for combinations that
 * cannot run.
 */
export function roundStrategy(params: StrategyParams, expectedUpdates = 1, clipNorm = params.differentialPrivacy?.clipNorm): Strategy {
  const strategy = createStrategy(params.strategy, params.strategyOptions);
  const dp = params.differentialPrivacy;
  if (!dp) return strategy;
  if (params.strategyOptions.clipNorm !== undefined) {
    throw new StrategyConfigError('differentialPrivacy.clipNorm bounds every update of a DP round: leave strategyOptions.clipNorm out');
  }
  try {
    const adaptive = dp.adaptiveClipping;
    if (!adaptive) return new DifferentiallyPrivate(strategy, { clipNorm: clipNorm!, noiseMultiplier: dp.noiseMultiplier, expectedUpdates, noise: dp.noise });
    if (dp.noise === 'distributed')
      throw new StrategyConfigError(
        'adaptive clipping needs the count of unclipped updates, which distributed noise (secure aggregation) hides: give a fixed clipNorm',
      );
    // Andrew et al.'s default σ_b = m / 20, at least z so that the sum keeps most of the noise budget.
    const countNoiseStd = adaptive.countNoiseStd ?? Math.max(expectedUpdates / 20, dp.noiseMultiplier);
    return new DifferentiallyPrivate(strategy, {
      clipNorm: clipNorm!,
      noiseMultiplier: sumNoiseMultiplier(dp.noiseMultiplier, countNoiseStd),
      expectedUpdates,
      adaptive: { targetQuantile: adaptive.targetQuantile, learningRate: adaptive.learningRate, countNoiseStd },
    });
  } catch (error) {
    throw new StrategyConfigError((error as Error).message);
  }
}
