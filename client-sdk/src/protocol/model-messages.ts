/**
 * Global model versions on the wire: fetching one (`model:fetch`), the announcement of a new one
 * (`model:published`), and a device's local test of it (`model:evaluation`).
 */
import { z } from 'zod';
import { EVALUATION_REFUSAL_REASONS } from './reasons.js';
import { binarySchema, weightSpecSchema } from './weights.js';

/** Global model versions count from 1. */
export const modelVersionSchema = z.number().int().min(1);

export const modelFetchRequestSchema = z.object({
  /** Omit for the current version. */
  version: modelVersionSchema.optional(),
  /**
   * A version the device holds exactly (as received whole): the coordinator may answer with the
   * int8 difference to it instead of the whole model (see `deltaFrom` in the payload).
   */
  deltaFrom: modelVersionSchema.optional(),
});
export type ModelFetchRequest = z.input<typeof modelFetchRequestSchema>;

/** A global model version as sent to devices: Keras topology JSON + binary weights. */
export const modelPayloadSchema = z.object({
  version: modelVersionSchema,
  /** `modelTopology` of the TensorFlow.js layers format. */
  topology: z.record(z.string(), z.unknown()),
  weightSpecs: z.array(weightSpecSchema),
  /**
   * All weights, concatenated in weightSpecs order, float32 little-endian. When `deltaFrom` is set:
   * instead the int8 encoding (compression.ts) of `version − deltaFrom`, rounded to nearest, which
   * the device adds to its copy of `deltaFrom` (error at most half a tensor's scale per value).
   */
  weights: binarySchema,
  /** Present when `weights` is a download delta against this version (the request's `deltaFrom`). */
  deltaFrom: modelVersionSchema.optional(),
});
export type ModelPayload = z.infer<typeof modelPayloadSchema>;

/** The acknowledgement of `model:fetch`. */
export const modelFetchResultSchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), model: modelPayloadSchema }),
  z.object({ ok: z.literal(false), error: z.string() }),
]);
export type ModelFetchResult = z.infer<typeof modelFetchResultSchema>;

export const modelPublishedSchema = z.object({
  version: modelVersionSchema,
  parentVersion: modelVersionSchema.nullable(),
  roundId: z.string().nullable(),
});
export type ModelPublished = z.infer<typeof modelPublishedSchema>;

/**
 * Bounds of an evaluation report (docs/SECURITY.md, "Evaluation reports"). A device states its own
 * numbers, so the schema bounds each one: a report outside them is refused as `malformed`.
 */
export const EVALUATION_REPORT_LIMITS = {
  /** Held-out examples one report may state (the coordinator counts at most 10,000 of them in its summaries). */
  maxExamples: 1_000_000,
  /** Largest loss a report may state; losses are finite and non-negative. */
  maxLoss: 1_000_000,
} as const;

const evaluationLoss = z.number().min(0).max(EVALUATION_REPORT_LIMITS.maxLoss);
const evaluationAccuracy = z.number().min(0).max(1);

/** The device's local test of a newly published global model (aggregates only). */
export const evaluationReportSchema = z.object({
  modelVersion: modelVersionSchema,
  /** Held-out local examples the numbers were computed on. */
  numExamples: z.number().int().min(1).max(EVALUATION_REPORT_LIMITS.maxExamples),
  globalLoss: evaluationLoss,
  globalAccuracy: evaluationAccuracy,
  /** The personalized model in use before this version (null on a device without one). */
  personalLoss: evaluationLoss.nullable(),
  personalAccuracy: evaluationAccuracy.nullable(),
  /** Whether the device adopted the new global model. */
  adopted: z.boolean(),
});
export type EvaluationReport = z.infer<typeof evaluationReportSchema>;

/** The acknowledgement of `model:evaluation` (optional: the SDK sends reports without asking for it). */
export const evaluationReportResultSchema = z.discriminatedUnion('accepted', [
  z.object({ accepted: z.literal(true) }),
  z.object({ accepted: z.literal(false), reason: z.enum(EVALUATION_REFUSAL_REASONS) }),
]);
export type EvaluationReportResult = z.infer<typeof evaluationReportResultSchema>;
