/**
 * Rounds on the wire: eligibility reports, the coordinator's plan for a selected device, the
 * device's upload (or abandon) and the coordinator's answers, and the round's end.
 */
import { z } from 'zod';
import { compressionSchema, DELTA_ENCODINGS } from './compression.js';
import { modelVersionSchema } from './model-messages.js';
import { personalizationPlanSchema } from './personalization.js';
import { ABANDON_REASONS, INELIGIBILITY_REASONS, REJECTION_REASONS } from './reasons.js';
import { ROUND_OUTCOMES } from './round-status.js';
import { secureAggregationPlanSchema } from './secagg-messages.js';
import { uploadEndpointSchema } from './upload-endpoint.js';
import { encodedWeightsSchema } from './weights.js';

const roundIdSchema = z.string().min(1).max(64);

export const conditionsReportSchema = z.object({
  eligible: z.boolean(),
  reasons: z.array(z.enum(INELIGIBILITY_REASONS)).max(INELIGIBILITY_REASONS.length).default([]),
});
export type ConditionsReport = z.input<typeof conditionsReportSchema>;

/**
 * The most examples one update may ever claim on the wire. What an update counts for in a round is
 * bounded lower, by the plan's `maxExamplesPerUpdate` (see docs/SECURITY.md, "Bounded influence").
 */
export const MAX_UPDATE_EXAMPLES = 1_000_000;

/** Local training hyper-parameters for one round. */
export const trainingPlanSchema = z.object({
  epochs: z.number().int().min(1).max(100),
  batchSize: z.number().int().min(1).max(100_000),
  learningRate: z.number().positive().max(10),
  /** FedProx proximal term mu (Li et al. 2020); 0 or absent means plain local SGD. */
  proximalMu: z.number().min(0).max(100).optional(),
  /**
   * The most examples an update counts for in this round: the coordinator clamps `numExamples` to
   * it and the SDK reports no more. Absent only in rounds stored by an older coordinator.
   */
  maxExamplesPerUpdate: z.number().int().min(1).max(MAX_UPDATE_EXAMPLES).optional(),
  /**
   * Differentially private rounds: the SDK scales its delta down to this L2 norm before upload (the
   * coordinator clips again, so the guarantee does not rest on the device). Absent: no clipping.
   */
  clipNorm: z.number().positive().max(10_000).optional(),
  /**
   * The operator's choice of personalization method for this round's devices (overrides the app's).
   * With `personal-layers`, uploads carry the shared tensors only (personalization.ts).
   */
  personalization: personalizationPlanSchema.optional(),
  /** How uploads are compressed in this round (compression.ts); absent: float32. */
  compression: compressionSchema.optional(),
});
export type TrainingPlan = z.infer<typeof trainingPlanSchema>;

/**
 * Pace steering (Bonawitz et al. 2019): when the coordinator wants this device's upload, in epoch
 * milliseconds. A device that finished training before `notBefore` waits, then uploads at a random
 * moment of the window, so a large round's uploads arrive at the rate the coordinator can fold;
 * one that finishes later uploads at once.
 */
export const reportWindowSchema = z
  .object({
    notBefore: z.number(),
    notAfter: z.number(),
  })
  .refine((window) => window.notAfter >= window.notBefore, { message: 'notAfter must not precede notBefore' });
export type ReportWindow = z.infer<typeof reportWindowSchema>;

export const roundConfigurationSchema = z.object({
  roundId: roundIdSchema,
  /** The global version to train from; fetch it with `model:fetch` if not cached. */
  modelVersion: modelVersionSchema,
  plan: trainingPlanSchema,
  /** Epoch milliseconds after which uploads are refused. */
  deadlineAt: z.number(),
  /** When to upload; absent: as soon as trained (pace steering off, or an older coordinator). */
  reportWindow: reportWindowSchema.optional(),
  /**
   * Present in a secure round: the device does not upload its delta but takes part in secure
   * aggregation (secagg-messages.ts), clipping its delta to `clipNorm` itself.
   */
  secureAggregation: secureAggregationPlanSchema.optional(),
  /** Where to PUT the upload over HTTP (upload-endpoint.ts); absent: upload over socket.io. */
  upload: uploadEndpointSchema.optional(),
});
export type RoundConfiguration = z.infer<typeof roundConfigurationSchema>;

/** A delta on the wire: float32 (encoding absent), or compressed as the round's plan says (compression.ts). */
export const encodedDeltaSchema = encodedWeightsSchema.extend({ encoding: z.enum(DELTA_ENCODINGS).optional() });
export type EncodedDelta = z.infer<typeof encodedDeltaSchema>;

export const updateUploadSchema = z.object({
  roundId: roundIdSchema,
  /** The global version the delta was computed against. */
  modelVersion: modelVersionSchema,
  /** Local examples trained on: the weight of this update in federated averaging. */
  numExamples: z.number().int().min(1).max(MAX_UPDATE_EXAMPLES),
  /** Mean training loss of the last local epoch. */
  trainLoss: z.number(),
  /** trained weights minus received weights, in the encoding the plan's compression names */
  delta: encodedDeltaSchema,
});
export type UpdateUpload = z.infer<typeof updateUploadSchema>;

/** The round an upload names, read on its own to address the rejection of an upload that is otherwise malformed. */
export const uploadRoundSchema = updateUploadSchema.pick({ roundId: true });

/** The acknowledgement of `round:update`. */
export const updateResultSchema = z.discriminatedUnion('accepted', [
  z.object({ accepted: z.literal(true) }),
  z.object({ accepted: z.literal(false), reason: z.enum(REJECTION_REASONS), message: z.string() }),
]);
export type UpdateResult = z.infer<typeof updateResultSchema>;

export const updateRejectedSchema = z.object({
  roundId: z.string().nullable(),
  reason: z.enum(REJECTION_REASONS),
  message: z.string(),
});
export type UpdateRejected = z.infer<typeof updateRejectedSchema>;

export const abandonSchema = z.object({
  roundId: roundIdSchema,
  reason: z.enum(ABANDON_REASONS),
});
export type Abandon = z.infer<typeof abandonSchema>;

export const roundClosedSchema = z.object({
  roundId: z.string(),
  outcome: z.enum(ROUND_OUTCOMES),
  /** The version the round committed, when it did. */
  modelVersion: modelVersionSchema.nullable(),
  /** Human-readable cause for failed/aborted rounds. */
  message: z.string().optional(),
});
export type RoundClosed = z.infer<typeof roundClosedSchema>;
