import { z } from 'zod';

/**
 * Per-round strategy options. Every field is optional; which ones a strategy accepts, and their
 * defaults, are in STRATEGY_CATALOG (strategies.ts) and docs/STRATEGIES.md. Unknown keys are refused
 * (strict), and so are known keys that the chosen strategy does not use (see parseStrategyOptions).
 */
export const strategyOptionsSchema = z.strictObject({
  /** η, the server's step size (fedavgm, fedadagrad, fedadam, fedyogi). */
  serverLearningRate: z.number().positive().max(100).optional(),
  /** β of server momentum (fedavgm). */
  serverMomentum: z.number().min(0).lt(1).optional(),
  /** β1, first-moment decay (fedadagrad, fedadam, fedyogi). */
  beta1: z.number().min(0).lt(1).optional(),
  /** β2, second-moment decay (fedadam, fedyogi). */
  beta2: z.number().min(0).lt(1).optional(),
  /** τ, adaptivity floor (fedadagrad, fedadam, fedyogi). */
  tau: z.number().positive().max(10).optional(),
  /** μ of the FedProx proximal term, sent to clients in the plan (fedprox). Same bounds as the plan's. */
  proximalMu: z.number().min(0).max(100).optional(),
  /** β, the fraction trimmed from each side per coordinate (trimmed-mean). */
  trimFraction: z.number().positive().lt(0.5).optional(),
  /** f, the Byzantine updates to tolerate (krum, multi-krum). */
  byzantineClients: z.number().int().min(0).max(10_000).optional(),
  /** m, the best-scored updates Multi-Krum averages (multi-krum). */
  multiKrumSelect: z.number().int().min(1).max(100_000).optional(),
  /** S: clip every update to this L2 norm before aggregating (any strategy). */
  clipNorm: z.number().positive().optional(),
  /** Most updates a buffered strategy holds in memory (median, trimmed-mean, krum, multi-krum). */
  maxBufferedUpdates: z.number().int().min(1).max(100_000).optional(),
});

export type StrategyOptions = z.infer<typeof strategyOptionsSchema>;
export type StrategyOptionName = keyof StrategyOptions;

export const STRATEGY_OPTION_NAMES = Object.keys(strategyOptionsSchema.shape) as StrategyOptionName[];

/** A strategy name or options that cannot be used. Operator input: map it to a 400. */
export class StrategyConfigError extends Error {
  override readonly name = 'StrategyConfigError';
}
