/**
 * Global model versions on the wire: fetching one (`model:fetch`), the announcement of a new one
 * (`model:published`), and a device's local test of it (`model:evaluation`).
 */
import { z } from 'zod';
import { binarySchema, weightSpecSchema } from './weights.js';

/** Global model versions count from 1. */
export const modelVersionSchema = z.number().int().min(1);

export const modelFetchRequestSchema = z.object({
  /** Omit for the current version. */
  version: modelVersionSchema.optional(),
});
export type ModelFetchRequest = z.input<typeof modelFetchRequestSchema>;

/** A global model version as sent to devices: Keras topology JSON + binary weights. */
export const modelPayloadSchema = z.object({
  version: modelVersionSchema,
  /** `modelTopology` of the TensorFlow.js layers format. */
  topology: z.record(z.string(), z.unknown()),
  weightSpecs: z.array(weightSpecSchema),
  /** All weights, concatenated in weightSpecs order, float32 little-endian. */
  weights: binarySchema,
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

/** The device's local test of a newly published global model (aggregates only). */
export const evaluationReportSchema = z.object({
  modelVersion: modelVersionSchema,
  /** Held-out local examples the numbers were computed on. */
  numExamples: z.number().int().min(1).max(1_000_000_000),
  globalLoss: z.number(),
  globalAccuracy: z.number().min(0).max(1),
  /** The personalized model in use before this version (null on a device without one). */
  personalLoss: z.number().nullable(),
  personalAccuracy: z.number().min(0).max(1).nullable(),
  /** Whether the device adopted the new global model. */
  adopted: z.boolean(),
});
export type EvaluationReport = z.infer<typeof evaluationReportSchema>;
