import { StrategyConfigError, describeStrategy, effectiveStrategyOptions, minimumUpdates } from '../aggregation/strategies.js';
import { roundParamsFromRequest, type RoundParams, type StartRoundFields } from '../contract/index.js';
import { roundStrategy } from './round-strategy.js';

/**
 * Turns a validated start request (contract/rounds.ts) into round parameters, checking that the
 * strategy can finish with the round's sizes (Krum needs n > 2f + 2, buffered strategies hold every
 * update) and that a DP round's strategy is a weighted mean. Throws StrategyConfigError for combinations that could never commit.
 */
export function toRoundParams(request: StartRoundFields, defaultOverSelection: number): RoundParams {
  const params = roundParamsFromRequest(request, defaultOverSelection);
  roundStrategy(params); // the strategy, wrapped for DP rounds, can be built
  const needed = minimumUpdates(params.strategy, params.strategyOptions);
  if (params.minClients < needed) {
    throw new StrategyConfigError(`strategy ${params.strategy} needs at least ${needed} updates to aggregate; raise minClients (now ${params.minClients})`);
  }
  if (describeStrategy(params.strategy).buffersUpdates) {
    const selected = Math.ceil(params.targetClients * params.overSelection);
    const capacity = effectiveStrategyOptions(params.strategy, params.strategyOptions).maxBufferedUpdates!;
    if (selected > capacity) {
      throw new StrategyConfigError(
        `strategy ${params.strategy} keeps every update in memory and may receive ${selected} (targetClients x overSelection); ` +
          `maxBufferedUpdates is ${capacity}: lower targetClients or raise strategyOptions.maxBufferedUpdates`,
      );
    }
  }
  return params;
}
