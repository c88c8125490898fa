// The options are part of the REST contract (a round's strategyOptions), so they are defined there.
import { strategyOptionsSchema, type StrategyOptions } from '../contract/index.js';

export { strategyOptionsSchema, type StrategyOptions };
export type StrategyOptionName = keyof StrategyOptions;

export const STRATEGY_OPTION_NAMES = Object.keys(strategyOptionsSchema.shape) as StrategyOptionName[];

/** A strategy name or options that cannot be used. Operator input: map it to a 400. */
export class StrategyConfigError extends Error {
  override readonly name = 'StrategyConfigError';
}
