/** `/api/rounds`: starting, listing, inspecting and cancelling federated rounds. */
import { z } from 'zod';
import { KEY_AGREEMENTS, REJECTION_REASONS, ROUND_STATUSES, trainingPlanSchema } from '@flock/client-sdk/protocol';
import { differentialPrivacySchema } from './privacy.js';
import { DEFAULT_STRATEGY, isStrategyName, STRATEGY_NAMES, strategyOptionsSchema } from './strategies.js';

const count = z.number().int().min(0);

/** Devices selected per wanted update: a round's `overSelection` and the coordinator's FLOCK_OVER_SELECTION alike. */
export const overSelectionSchema = z.number().min(1).max(10);
const timestamp = z.iso.datetime();

// ---------------------------------------------------------------- POST /api/rounds

/** A secure round's clip bound when none is given (and the round is not DP). */
export const DEFAULT_SECURE_CLIP_NORM = 10;

/** Settings of a secure round (docs/SECURITY.md, "Secure aggregation"), with their defaults. */
export const secureAggregationRequestSchema = z
  .object({
    clipNorm: z
      .number()
      .positive()
      .max(1e6)
      .optional()
      .describe(
        `L2 bound every device clips its delta to (devices enforce it; the coordinator cannot see it). Default: differentialPrivacy.clipNorm in a DP round, else ${DEFAULT_SECURE_CLIP_NORM}`,
      ),
    thresholdFraction: z
      .number()
      .min(0.5)
      .max(1)
      .default(0.5)
      .describe("Shamir threshold as a fraction of a device's neighbours plus itself (floor(f*(k+1))+1: a strict majority at 0.5)"),
    neighbours: z
      .number()
      .int()
      .min(1)
      .max(1024)
      .optional()
      .describe('Neighbours per device in the SecAgg+ graph (default 2*ceil(1.5*log2 n), all others below ~10 devices)'),
    phaseSeconds: z.number().positive().max(3600).default(30).describe('Deadline of each phase after reporting (share keys, masked input, unmasking)'),
    keyAgreement: z
      .enum(KEY_AGREEMENTS)
      .default('P-256')
      .describe(
        "Key agreement of the devices' keys: P-256 (every WebCrypto) or X25519 (Node >= 20, Chrome >= 133, Firefox >= 130, Safari >= 17; a device without it drops out)",
      ),
  })
  .strict();

/** Body of POST /api/rounds. Every field is optional; defaults suit a small deployment. */
export const startRoundRequestSchema = z
  .object({
    minClients: z.number().int().min(1).max(100_000).default(2).describe('Valid updates needed to commit'),
    targetClients: z.number().int().min(1).max(100_000).optional().describe('Updates wanted (default max(minClients, 10))'),
    overSelection: overSelectionSchema.optional().describe("Selection factor over the target (default: the coordinator's FLOCK_OVER_SELECTION)"),
    selectionTimeoutSeconds: z.number().positive().max(3600).default(30),
    deadlineSeconds: z.number().positive().max(86_400).default(120),
    epochs: trainingPlanSchema.shape.epochs.default(1),
    batchSize: trainingPlanSchema.shape.batchSize.default(10),
    learningRate: trainingPlanSchema.shape.learningRate.default(0.05),
    proximalMu: trainingPlanSchema.shape.proximalMu,
    strategy: z
      .string()
      .default(DEFAULT_STRATEGY)
      .refine(isStrategyName, { message: `strategy must be one of: ${STRATEGY_NAMES.join(', ')}` }),
    strategyOptions: strategyOptionsSchema.default({}).describe('Per-strategy options (server learning rate, trim fraction, ...); see docs/STRATEGIES.md'),
    maxUpdateNorm: z.number().positive().optional(),
    maxExamplesPerUpdate: trainingPlanSchema.shape.maxExamplesPerUpdate.describe(
      "The most examples one update counts for in this round (default: the coordinator's FLOCK_MAX_EXAMPLES_PER_UPDATE)",
    ),
    differentialPrivacy: differentialPrivacySchema.optional().describe('Run the round as DP-FedAvg (docs/PRIVACY.md); absent: no differential privacy'),
    personalization: trainingPlanSchema.shape.personalization.describe(
      "Devices' personalization method for this round (fine-tune, ditto, personal-layers); with personal-layers, the named layers are left out of uploads and aggregation",
    ),
    compression: trainingPlanSchema.shape.compression.describe(
      'How devices compress their uploads in this round: {kind: none | int8 | topk, topkFraction?} (default none: float32)',
    ),
    secureAggregation: z
      .union([z.boolean(), secureAggregationRequestSchema])
      .optional()
      .describe('Secure aggregation: the coordinator learns only the sum of the updates (true for the defaults, or the settings)'),
  })
  .strict()
  .refine((body) => body.targetClients === undefined || body.targetClients >= body.minClients, {
    message: 'targetClients must be at least minClients',
    path: ['targetClients'],
  });
/** What a client sends (every field optional). */
export type StartRoundRequest = z.input<typeof startRoundRequestSchema>;
/** The request with the defaults filled in. */
export type StartRoundFields = z.output<typeof startRoundRequestSchema>;

// ---------------------------------------------------------------- round records

/** What an operator asked for when starting a round, with the defaults applied. */
export const roundParamsSchema = z.object({
  minClients: z.number().int().min(1).describe('Valid updates needed to commit'),
  targetClients: z.number().int().min(1).describe('Updates wanted; the coordinator selects ceil(targetClients * overSelection) devices'),
  overSelection: z.number().min(1).describe('Selection factor over the target (Bonawitz et al. use 1.3)'),
  selectionTimeoutMs: z.number().int().min(0).describe('How long to wait for minClients eligible devices before failing the round'),
  deadlineMs: z.number().int().min(0).describe('Reporting deadline, measured from configuration'),
  plan: trainingPlanSchema,
  strategy: z.string().describe('Aggregation strategy name'),
  strategyOptions: strategyOptionsSchema.describe('Options of the strategy, as the operator gave them (defaults are documented per strategy)'),
  maxUpdateNorm: z.number().positive().nullable().describe('Optional L2 bound on each update; uploads above it are rejected with norm_exceeded'),
  differentialPrivacy: differentialPrivacySchema
    .nullable()
    .default(null)
    .describe('DP-FedAvg parameters; null: not a DP round (and rounds stored before DP existed)'),
  secureAggregation: z
    .object({
      clipNorm: z.number().positive(),
      thresholdFraction: z.number().min(0.5).max(1),
      neighbours: z.number().int().min(1).nullable(),
      phaseTimeoutMs: z.number().int().min(1),
      /** Rounds stored before X25519 existed: P-256. */
      keyAgreement: z.enum(KEY_AGREEMENTS).default('P-256'),
    })
    .nullable()
    .optional()
    .describe('Secure aggregation settings; null or absent: a plain round'),
});
export type SecureAggregationParams = NonNullable<RoundParams['secureAggregation']>;
export type RoundParams = z.infer<typeof roundParamsSchema>;

/** Lower quartile, median and upper quartile of one number across devices (one value per device). */
export const quartilesSchema = z.object({
  q1: z.number(),
  median: z.number(),
  q3: z.number().describe('The interquartile range is q3 - q1'),
  p10: z.number().optional().describe('10th percentile: the devices served worst (absent in summaries stored by an older coordinator)'),
});
export type Quartiles = z.infer<typeof quartilesSchema>;

/** Robust statistics across the devices that reported: each device counts once, whatever its example count. */
export const localEvaluationSpreadSchema = z.object({
  globalAccuracy: quartilesSchema,
  globalLoss: quartilesSchema,
  personalAccuracy: quartilesSchema.nullable().describe('Over the reports that had a personal model; null when none had'),
  personalLoss: quartilesSchema.nullable(),
  personalReports: count.describe('Reports that had a personal model'),
  personalBetterShare: z
    .number()
    .min(0)
    .max(1)
    .nullable()
    .describe('Share of those reports in which the personal model was more accurate than the new global one'),
});
export type LocalEvaluationSpread = z.infer<typeof localEvaluationSpreadSchema>;

/**
 * Devices' local tests of the version a round committed, recomputed from the stored reports (one
 * per device). Summaries stored before the robust statistics existed read with `weightCap` and
 * `spread` null, their means example-weighted without a cap.
 */
export const localEvaluationSummarySchema = z.object({
  reports: count,
  numExamples: count.describe('Sum of the counted example counts (each clamped to the per-report cap)'),
  globalAccuracy: z.number().describe('Mean over devices, each weighted by its counted examples capped at weightCap'),
  globalLoss: z.number().describe('Mean with capped weights, as globalAccuracy'),
  personalAccuracy: z.number().nullable().describe('Mean with capped weights over the reports that had a personal model'),
  personalLoss: z.number().nullable(),
  personalNumExamples: count.describe('Counted examples of the reports that had a personal model'),
  adopted: count,
  // Defaults: an older coordinator's answers lack these two fields.
  weightCap: z
    .number()
    .min(0)
    .nullable()
    .default(null)
    .describe("The most weight one device's report has in the means (twice the median counted examples); null: uncapped, stored by an older coordinator"),
  spread: localEvaluationSpreadSchema
    .nullable()
    .default(null)
    .describe('Median and quartiles across devices; null in summaries stored by an older coordinator'),
});
export type LocalEvaluationSummary = z.infer<typeof localEvaluationSummarySchema>;

export const roundMetricsSchema = z.object({
  eligibleAtSelection: count,
  selected: count,
  reported: count,
  accepted: count,
  rejected: z.partialRecord(z.enum(REJECTION_REASONS), count).describe('Refused uploads by reason'),
  dropped: z.partialRecord(z.string(), count).describe('Selected clients that disconnected or abandoned before uploading, by cause'),
  totalExamples: count.describe('Sum of numExamples of accepted updates'),
  meanTrainLoss: z.number().nullable().describe("Example-weighted mean of the accepted updates' training losses"),
  updateNorm: z.number().nullable().describe('L2 norm of the change the strategy applied (aggregate delta, or x_new - x_old for server optimizers)'),
  bytesReceived: count.describe('Bytes of weight data received in uploads, accepted or not'),
  bytesUp: count
    .default(0)
    .describe(
      "Bytes of weight data of the accepted uploads, as sent (compressed in rounds whose plan says so; in secure rounds every phase's keys, shares, masked inputs and revealed shares; 0 in rounds stored by an older coordinator)",
    ),
  bytesDown: count
    .default(0)
    .describe(
      "Bytes of weight data sent to devices fetching the round's base version, from its publication to the round's end (whole models or deltas; this process's fetches only in cluster mode)",
    ),
  decodeMs: z
    .number()
    .min(0)
    .default(0)
    .describe(
      "Milliseconds from the arrival of the accepted uploads' last packet to their handler: socket.io's decoding and dispatch (0 in rounds stored by an older coordinator)",
    ),
  validationMs: z.number().min(0).describe('Milliseconds spent checking the accepted uploads once decoded (schema, shapes, finiteness, norm)'),
  aggregationMs: z.number().min(0).describe('Milliseconds spent folding updates into the aggregate and finalizing it'),
  durationMs: z.number().min(0).nullable(),
  localEvaluation: localEvaluationSummarySchema.nullable(),
  // Bounded influence (docs/SECURITY.md). Defaults: rounds stored by an older coordinator lack them.
  updateBound: z
    .number()
    .positive()
    .nullable()
    .default(null)
    .describe("The L2 bound on this round's updates (adaptive, under FLOCK_MAX_UPDATE_NORM); null: off"),
  nextUpdateBound: z.number().positive().nullable().default(null).describe('The adaptive bound after this round: what the next round starts from'),
  exampleCap: z
    .number()
    .int()
    .positive()
    .nullable()
    .default(null)
    .describe("The most examples an update counted for in this round: the plan's maxExamplesPerUpdate, or the adapted cap when lower"),
  nextExampleCap: z
    .number()
    .int()
    .positive()
    .nullable()
    .default(null)
    .describe(
      "The adapted cap after this round (the median count its updates claimed, under FLOCK_MAX_EXAMPLES_PER_UPDATE): the next round's, unless its plan states less",
    ),
  dpClipNorm: z
    .number()
    .positive()
    .nullable()
    .default(null)
    .describe('DP rounds: the C this round clipped to (with adaptive clipping, where the last DP round moved it)'),
  nextDpClipNorm: z
    .number()
    .positive()
    .nullable()
    .default(null)
    .describe('DP rounds with adaptive clipping: the C the next such round starts from (Andrew et al. 2021)'),
  expectedUpdates: z
    .number()
    .min(0)
    .nullable()
    .default(null)
    .describe('DP rounds: the sampling rate times the devices sampled from, the fixed denominator of the noisy mean; null otherwise'),
  clippedUpdates: count.default(0).describe('Accepted updates scaled down to the bound (refused ones count as rejected norm_exceeded)'),
  clampedExamples: count.default(0).describe("Accepted updates whose numExamples was above the plan's maxExamplesPerUpdate and counted as that"),
});
export type RoundMetrics = z.infer<typeof roundMetricsSchema>;

/** A round as stored: `POST /api/rounds`, `GET /api/rounds` items, `POST /api/rounds/{id}/cancel`. */
export const roundRecordSchema = z.object({
  id: z.uuid(),
  baseVersion: z.number().int().min(1).describe('The global version clients train from'),
  status: z.enum(ROUND_STATUSES),
  params: roundParamsSchema,
  metrics: roundMetricsSchema,
  committedVersion: z.number().int().min(1).nullable().describe('The version this round committed'),
  error: z.string().nullable().describe('Why the round failed or was aborted'),
  createdAt: timestamp,
  updatedAt: timestamp,
  endedAt: timestamp.nullable(),
});
export type RoundRecord = z.infer<typeof roundRecordSchema>;

export const roundTransitionSchema = z.object({
  roundId: z.uuid(),
  from: z.enum(ROUND_STATUSES).nullable(),
  to: z.enum(ROUND_STATUSES),
  at: timestamp,
  note: z.string().nullable(),
});
export type RoundTransition = z.infer<typeof roundTransitionSchema>;

/** `GET /api/rounds/{id}`: the record plus its state transitions and the time left to its deadline. */
export const roundDetailsSchema = roundRecordSchema.extend({
  transitions: z.array(roundTransitionSchema),
  timeLeftMs: z.number().min(0).nullable().describe('Until the reporting deadline, for the round in flight'),
});
export type RoundDetails = z.infer<typeof roundDetailsSchema>;

// ---------------------------------------------------------------- GET /api/rounds

export const roundListQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(50),
  offset: z.coerce.number().int().min(0).default(0),
});
export type RoundListQuery = Partial<z.output<typeof roundListQuerySchema>>;

/** Newest first. */
export const roundListSchema = z.array(roundRecordSchema);

/** `{id}` of `/api/rounds/{id}` and `/api/rounds/{id}/cancel`. */
export const roundIdSchema = z.uuid({ error: 'round id must be a UUID' });

// ---------------------------------------------------------------- defaults

/**
 * Round parameters from a validated start request: the defaults that depend on other fields
 * (targetClients, overSelection from the coordinator's configuration) and seconds as milliseconds.
 * Whether the strategy can finish with these sizes is the coordinator's check.
 */
export function roundParamsFromRequest(request: StartRoundFields, defaultOverSelection: number): RoundParams {
  return {
    minClients: request.minClients,
    targetClients: request.targetClients ?? Math.max(request.minClients, 10),
    overSelection: request.overSelection ?? defaultOverSelection,
    selectionTimeoutMs: Math.round(request.selectionTimeoutSeconds * 1000),
    deadlineMs: Math.round(request.deadlineSeconds * 1000),
    plan: {
      epochs: request.epochs,
      batchSize: request.batchSize,
      learningRate: request.learningRate,
      ...(request.proximalMu !== undefined ? { proximalMu: request.proximalMu } : {}),
      ...(request.maxExamplesPerUpdate !== undefined ? { maxExamplesPerUpdate: request.maxExamplesPerUpdate } : {}),
      ...(request.differentialPrivacy ? { clipNorm: request.differentialPrivacy.clipNorm } : {}),
      ...(request.personalization !== undefined ? { personalization: request.personalization } : {}),
      ...(request.compression !== undefined && request.compression.kind !== 'none' ? { compression: request.compression } : {}),
    },
    strategy: request.strategy,
    strategyOptions: request.strategyOptions,
    maxUpdateNorm: request.maxUpdateNorm ?? null,
    differentialPrivacy: request.differentialPrivacy ?? null,
    secureAggregation: secureAggregationParams(request.secureAggregation, request.differentialPrivacy?.clipNorm),
  };
}

function secureAggregationParams(requested: StartRoundFields['secureAggregation'], dpClipNorm: number | undefined): SecureAggregationParams | null {
  if (requested === undefined || requested === false) return null;
  const settings = requested === true ? secureAggregationRequestSchema.parse({}) : requested;
  return {
    clipNorm: settings.clipNorm ?? dpClipNorm ?? DEFAULT_SECURE_CLIP_NORM,
    thresholdFraction: settings.thresholdFraction,
    neighbours: settings.neighbours ?? null,
    phaseTimeoutMs: Math.round(settings.phaseSeconds * 1000),
    keyAgreement: settings.keyAgreement,
  };
}
