/** Aggregation strategies as operators name and configure them (the aggregation module implements them). */
import { z } from 'zod';

/** Every strategy the coordinator knows, in documentation order. */
export const STRATEGY_NAMES = ['fedavg', 'fedavgm', 'fedprox', 'fedadagrad', 'fedadam', 'fedyogi', 'median', 'trimmed-mean', 'krum', 'multi-krum'] as const;
export type StrategyName = (typeof STRATEGY_NAMES)[number];
export const DEFAULT_STRATEGY: StrategyName = 'fedavg';

const KNOWN: ReadonlySet<string> = new Set(STRATEGY_NAMES);
export function isStrategyName(name: string): name is StrategyName {
  return KNOWN.has(name);
}

/**
 * Per-round strategy options. Every field is optional; which ones a strategy accepts, and their
 * defaults, are in the aggregation module's catalog and docs/STRATEGIES.md. Unknown keys are refused
 * (strict), and so are known keys that the chosen strategy does not use (checked by the coordinator).
 */
export const strategyOptionsSchema = z.strictObject({
  serverLearningRate: z.number().positive().max(100).optional().describe("η, the server's step size (fedavgm, fedadagrad, fedadam, fedyogi)"),
  serverMomentum: z.number().min(0).lt(1).optional().describe('β of server momentum (fedavgm)'),
  beta1: z.number().min(0).lt(1).optional().describe('β1, first-moment decay (fedadagrad, fedadam, fedyogi)'),
  beta2: z.number().min(0).lt(1).optional().describe('β2, second-moment decay (fedadam, fedyogi)'),
  tau: z.number().positive().max(10).optional().describe('τ, adaptivity floor (fedadagrad, fedadam, fedyogi)'),
  // Same bounds as the training plan's proximalMu.
  proximalMu: z.number().min(0).max(100).optional().describe('μ of the FedProx proximal term, sent to clients in the plan (fedprox)'),
  trimFraction: z.number().positive().lt(0.5).optional().describe('β, the fraction trimmed from each side per coordinate (trimmed-mean)'),
  byzantineClients: z.number().int().min(0).max(10_000).optional().describe('f, the Byzantine updates to tolerate (krum, multi-krum)'),
  multiKrumSelect: z.number().int().min(1).max(100_000).optional().describe('m, the best-scored updates Multi-Krum averages (multi-krum)'),
  clipNorm: z.number().positive().optional().describe('S: clip every update to this L2 norm before aggregating (any strategy)'),
  maxBufferedUpdates: z
    .number()
    .int()
    .min(1)
    .max(100_000)
    .optional()
    .describe('Most updates a buffered strategy holds in memory (median, trimmed-mean, krum, multi-krum)'),
});
export type StrategyOptions = z.infer<typeof strategyOptionsSchema>;
