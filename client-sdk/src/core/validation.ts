/**
 * Schemas for what the coordinator sends, so that a malformed message is reported as an error
 * instead of corrupting local state. (The protocol module holds the schemas the coordinator uses
 * for what clients send; these are the client side's counterparts.)
 */
import { z } from 'zod';
import { trainingPlanSchema } from '../protocol/messages.js';
import { REJECTION_REASONS } from '../protocol/reasons.js';
import { ROUND_OUTCOMES } from '../protocol/round-status.js';

const version = z.number().int().min(1);
const binary = z.custom<ArrayBuffer | Uint8Array>(
  (value) => value instanceof ArrayBuffer || value instanceof Uint8Array,
  'expected binary data',
);

export const welcomeSchema = z.object({
  clientId: z.string(),
  protocolVersion: z.number().int(),
  currentModelVersion: version.nullable(),
  maxUploadBytes: z.number().positive(),
});

export const roundConfigurationSchema = z.object({
  roundId: z.string().min(1).max(64),
  modelVersion: version,
  plan: trainingPlanSchema,
  deadlineAt: z.number(),
});

export const modelPayloadSchema = z.object({
  version,
  topology: z.record(z.string(), z.unknown()),
  weightSpecs: z.array(z.object({ name: z.string(), shape: z.array(z.number().int().min(0)), dtype: z.literal('float32') })),
  weights: binary,
});

export const modelFetchResultSchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), model: modelPayloadSchema }),
  z.object({ ok: z.literal(false), error: z.string() }),
]);

export const updateResultSchema = z.discriminatedUnion('accepted', [
  z.object({ accepted: z.literal(true) }),
  z.object({ accepted: z.literal(false), reason: z.enum(REJECTION_REASONS), message: z.string() }),
]);

export const roundClosedSchema = z.object({
  roundId: z.string(),
  outcome: z.enum(ROUND_OUTCOMES),
  modelVersion: version.nullable(),
  message: z.string().optional(),
});

export const modelPublishedSchema = z.object({
  version,
  parentVersion: version.nullable(),
  roundId: z.string().nullable(),
});
