import { z } from 'zod';
import { trainingPlanSchema } from '@flock/client-sdk/protocol';
import {
  DEFAULT_STRATEGY,
  STRATEGY_NAMES,
  StrategyConfigError,
  describeStrategy,
  effectiveStrategyOptions,
  minimumUpdates,
  strategyOptionsSchema,
} from '../aggregation/strategies.js';
import type { RoundParams } from './round-types.js';

/** Body of POST /api/rounds. Every field is optional; defaults suit a small deployment. */
export const startRoundSchema = z
  .object({
    minClients: z.number().int().min(1).max(100_000).default(2),
    targetClients: z.number().int().min(1).max(100_000).optional(),
    overSelection: z.number().min(1).max(10).optional(),
    selectionTimeoutSeconds: z.number().positive().max(3600).default(30),
    deadlineSeconds: z.number().positive().max(86_400).default(120),
    epochs: trainingPlanSchema.shape.epochs.default(1),
    batchSize: trainingPlanSchema.shape.batchSize.default(10),
    learningRate: trainingPlanSchema.shape.learningRate.default(0.05),
    proximalMu: trainingPlanSchema.shape.proximalMu,
    strategy: z
      .string()
      .default(DEFAULT_STRATEGY)
      .refine((name) => STRATEGY_NAMES.includes(name), { message: `strategy must be one of: ${STRATEGY_NAMES.join(', ')}` }),
    /** Per-strategy options (server learning rate, trim fraction, ...); see docs/STRATEGIES.md. */
    strategyOptions: strategyOptionsSchema.default({}),
    maxUpdateNorm: z.number().positive().optional(),
  })
  .strict()
  .refine((body) => body.targetClients === undefined || body.targetClients >= body.minClients, {
    message: 'targetClients must be at least minClients',
    path: ['targetClients'],
  });
export type StartRoundRequest = z.input<typeof startRoundSchema>;

/**
 * Turns a validated request into round parameters, checking that the strategy can finish with the
 * round's sizes (Krum needs n > 2f + 2, buffered strategies hold every update). Throws
 * StrategyConfigError for combinations that could never commit.
 */
export function toRoundParams(body: z.output<typeof startRoundSchema>, defaultOverSelection: number): RoundParams {
  const params = buildRoundParams(body, defaultOverSelection);
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

function buildRoundParams(body: z.output<typeof startRoundSchema>, defaultOverSelection: number): RoundParams {
  return {
    minClients: body.minClients,
    targetClients: body.targetClients ?? Math.max(body.minClients, 10),
    overSelection: body.overSelection ?? defaultOverSelection,
    selectionTimeoutMs: Math.round(body.selectionTimeoutSeconds * 1000),
    deadlineMs: Math.round(body.deadlineSeconds * 1000),
    plan: {
      epochs: body.epochs,
      batchSize: body.batchSize,
      learningRate: body.learningRate,
      ...(body.proximalMu !== undefined ? { proximalMu: body.proximalMu } : {}),
    },
    strategy: body.strategy,
    strategyOptions: body.strategyOptions,
    maxUpdateNorm: body.maxUpdateNorm ?? null,
  };
}
