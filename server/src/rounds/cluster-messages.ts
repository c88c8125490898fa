import { z } from 'zod';
import { ABANDON_REASONS, compressionSchema, REJECTION_REASONS, weightSpecSchema } from '@flock/client-sdk/protocol';
import { differentialPrivacySchema, strategyOptionsSchema } from '../contract/index.js';

/*
 * What coordinator processes tell each other about the round in flight (cluster mode), one schema
 * per message: the leader publishes the round it drives (descriptor), every process tells the
 * leader how it answered each upload, and hands over its partial aggregate at commit. Small JSON,
 * never weights: partials travel as binary Redis values (partial-aggregate.ts). Pure.
 */

/** The round as the processes that take its uploads need it (stored while it is open: `round:<id>:open`). */
export const roundDescriptorSchema = z.object({
  roundId: z.string().min(1),
  /** The process driving it. */
  leader: z.string().min(1),
  baseVersion: z.number().int().positive(),
  weightSpecs: z.array(weightSpecSchema),
  maxUpdateNorm: z.number().positive().nullable(),
  /** The plan's personal layers (left out of uploads); empty when every tensor is shared. */
  personalLayers: z.array(z.string()).optional(),
  /** The plan's compression of uploads; absent: float32. */
  compression: compressionSchema.optional(),
  /** The most examples an update counts for (the round's cap). */
  exampleCap: z.number().positive(),
  /** The round's adaptive L2 bound, null when off. */
  updateBound: z.number().positive().nullable(),
  strategy: z.string(),
  strategyOptions: strategyOptionsSchema,
  /** DP rounds: the parameters and the expected number of updates (the noisy mean's denominator). */
  differentialPrivacy: differentialPrivacySchema.nullable(),
  expectedUpdates: z.number().positive().nullable(),
});
export type RoundDescriptor = z.infer<typeof roundDescriptorSchema>;

const answerBase = {
  roundId: z.string(),
  /** The process that took the upload. */
  from: z.string(),
  clientId: z.string(),
  /** Whether it used up the client's one upload (passed the round, duplicate and participant checks). */
  admitted: z.boolean(),
  /** Weight bytes received, null when the upload was not even readable. */
  bytes: z.number().int().nonnegative().nullable(),
  /** The update's L2 norm when it passed validation (what the next adaptive bound learns from). */
  norm: z.number().nonnegative().nullable(),
};

export const clusterMessageSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('accepted'),
    ...answerBase,
    numExamples: z.number().positive(),
    claim: z.number().positive(),
    trainLoss: z.number(),
    decodeMs: z.number().nonnegative(),
    validationMs: z.number().nonnegative(),
    foldMs: z.number().nonnegative(),
    clipped: z.boolean(),
    clamped: z.boolean(),
  }),
  z.object({ type: z.literal('rejected'), ...answerBase, reason: z.enum(REJECTION_REASONS) }),
  z.object({ type: z.literal('abandon'), roundId: z.string(), clientId: z.string(), reason: z.enum(ABANDON_REASONS) }),
  /** Leader to all: reporting ended, hand over your partial. */
  z.object({ type: z.literal('collect'), roundId: z.string() }),
  /** A process to the leader: its partial is stored (count 0: it has none). */
  z.object({ type: z.literal('partial'), roundId: z.string(), from: z.string(), count: z.number().int().nonnegative() }),
  /** Leader to all: the round ended, forget it. */
  z.object({ type: z.literal('closed'), roundId: z.string() }),
]);
export type ClusterMessage = z.infer<typeof clusterMessageSchema>;
export type UploadAnswer = Extract<ClusterMessage, { type: 'accepted' | 'rejected' }>;
/** What the leader's round engine hears: answers and abandons of its participants. */
export type LeaderMessage = UploadAnswer | Extract<ClusterMessage, { type: 'abandon' }>;
