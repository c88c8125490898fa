/**
 * Socket.io events and payloads between the coordinator and client devices.
 * Schemas are zod so that both sides validate what they receive with the same definition.
 *
 * Flow of a round (Bonawitz et al. 2019): connected clients report eligibility; an operator starts a
 * round; the coordinator selects eligible clients and sends each a `round:configure` (plan + model
 * version); a client fetches the model if it lacks it, trains, and uploads its delta (`round:update`,
 * acknowledged); the coordinator folds accepted deltas into a running aggregate, commits a new
 * version, tells the participants (`round:closed`) and everyone (`model:published`).
 */
import { z } from 'zod';
import { ABANDON_REASONS, INELIGIBILITY_REASONS, REJECTION_REASONS } from './reasons.js';
import type { RoundOutcome } from './round-status.js';
import type { EncodedWeights, WeightSpec } from './weights.js';

export const PROTOCOL_VERSION = 1;

/** Events a client emits. */
export const ClientEvent = {
  /** Eligibility changed (idle, charging, unmetered). Sent on connect and on every change. */
  conditions: 'client:conditions',
  /** Fetch a model version; acknowledged with a ModelFetchResult. */
  fetchModel: 'model:fetch',
  /** Upload a weight delta for a round; acknowledged with an UpdateResult. */
  update: 'round:update',
  /** A selected client stops participating before uploading. */
  abandon: 'round:abandon',
  /** Aggregate numbers of the local test of a new global model (never examples or labels). */
  evaluation: 'model:evaluation',
} as const;

/** Events the coordinator emits. */
export const ServerEvent = {
  /** Sent once after a successful handshake. */
  welcome: 'server:welcome',
  /** The client was selected for a round: here is the plan. */
  configure: 'round:configure',
  /** An upload was refused (also returned in the upload's acknowledgement). */
  updateRejected: 'round:update-rejected',
  /** A round the client was selected for ended. */
  roundClosed: 'round:closed',
  /** A new global model version was committed (broadcast to every client). */
  modelPublished: 'model:published',
} as const;

/** Handshake `auth` object: `io(url, { auth })`. */
export interface HandshakeAuth {
  token: string;
  clientId: string;
  protocolVersion: number;
  sdkVersion?: string;
}

/** Client ids are chosen by the device (random UUID, persisted) and must be opaque. */
export const clientIdSchema = z.string().regex(/^[A-Za-z0-9_-]{8,128}$/, 'client id must be 8-128 of [A-Za-z0-9_-]');

export const handshakeAuthSchema = z.object({
  token: z.string().min(1).max(512),
  clientId: clientIdSchema,
  protocolVersion: z.number().int(),
  sdkVersion: z.string().max(64).optional(),
});

export interface Welcome {
  clientId: string;
  protocolVersion: number;
  /** Latest committed global model version, or null before the first one exists. */
  currentModelVersion: number | null;
  /** Largest upload the coordinator accepts, in bytes of weight data. */
  maxUploadBytes: number;
}

export const conditionsReportSchema = z.object({
  eligible: z.boolean(),
  reasons: z.array(z.enum(INELIGIBILITY_REASONS)).max(INELIGIBILITY_REASONS.length).default([]),
});
export type ConditionsReport = z.input<typeof conditionsReportSchema>;

/** Local training hyper-parameters for one round. */
export const trainingPlanSchema = z.object({
  epochs: z.number().int().min(1).max(100),
  batchSize: z.number().int().min(1).max(100_000),
  learningRate: z.number().positive().max(10),
  /** FedProx proximal term mu (Li et al. 2020); 0 or absent means plain local SGD. */
  proximalMu: z.number().min(0).max(100).optional(),
});
export type TrainingPlan = z.infer<typeof trainingPlanSchema>;

export interface RoundConfiguration {
  roundId: string;
  /** The global version to train from; fetch it with `model:fetch` if not cached. */
  modelVersion: number;
  plan: TrainingPlan;
  /** Epoch milliseconds after which uploads are refused. */
  deadlineAt: number;
}

export const modelFetchRequestSchema = z.object({
  /** Omit for the current version. */
  version: z.number().int().min(1).optional(),
});
export type ModelFetchRequest = z.input<typeof modelFetchRequestSchema>;

/** A global model version as sent to devices: Keras topology JSON + binary weights. */
export interface ModelPayload {
  version: number;
  /** `modelTopology` of the TensorFlow.js layers format. */
  topology: unknown;
  weightSpecs: WeightSpec[];
  /** All weights, concatenated in weightSpecs order, float32 little-endian. */
  weights: ArrayBuffer | Uint8Array;
}
export type ModelFetchResult = { ok: true; model: ModelPayload } | { ok: false; error: string };

const binarySchema = z.custom<ArrayBuffer | Uint8Array>(
  (value) => value instanceof ArrayBuffer || value instanceof Uint8Array,
  'expected binary data (ArrayBuffer or Uint8Array)',
);

export const encodedWeightsSchema = z.object({
  shapes: z.array(z.array(z.number().int().min(0)).max(8)).max(10_000),
  data: binarySchema,
});

export const updateUploadSchema = z.object({
  roundId: z.string().min(1).max(64),
  /** The global version the delta was computed against. */
  modelVersion: z.number().int().min(1),
  /** Local examples trained on: the weight of this update in federated averaging. */
  numExamples: z.number().int().min(1).max(1_000_000_000),
  /** Mean training loss of the last local epoch. */
  trainLoss: z.number(),
  /** trained weights minus received weights */
  delta: encodedWeightsSchema,
});
export interface UpdateUpload {
  roundId: string;
  modelVersion: number;
  numExamples: number;
  trainLoss: number;
  delta: EncodedWeights;
}

export type UpdateResult = { accepted: true } | { accepted: false; reason: (typeof REJECTION_REASONS)[number]; message: string };

export interface UpdateRejected {
  roundId: string | null;
  reason: (typeof REJECTION_REASONS)[number];
  message: string;
}

export const abandonSchema = z.object({
  roundId: z.string().min(1).max(64),
  reason: z.enum(ABANDON_REASONS),
});
export type Abandon = z.infer<typeof abandonSchema>;

export interface RoundClosed {
  roundId: string;
  outcome: RoundOutcome;
  /** The version the round committed, when it did. */
  modelVersion: number | null;
  /** Human-readable cause for failed/aborted rounds. */
  message?: string;
}

export interface ModelPublished {
  version: number;
  parentVersion: number | null;
  roundId: string | null;
}

/** The device's local test of a newly published global model (aggregates only). */
export const evaluationReportSchema = z.object({
  modelVersion: z.number().int().min(1),
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

/** Typed event maps for socket.io's generics: `Socket<ServerToClientEvents, ClientToServerEvents>`. */
export interface ServerToClientEvents {
  [ServerEvent.welcome]: (welcome: Welcome) => void;
  [ServerEvent.configure]: (configuration: RoundConfiguration) => void;
  [ServerEvent.updateRejected]: (rejection: UpdateRejected) => void;
  [ServerEvent.roundClosed]: (closed: RoundClosed) => void;
  [ServerEvent.modelPublished]: (published: ModelPublished) => void;
}
export interface ClientToServerEvents {
  [ClientEvent.conditions]: (report: ConditionsReport) => void;
  [ClientEvent.fetchModel]: (request: ModelFetchRequest, ack: (result: ModelFetchResult) => void) => void;
  [ClientEvent.update]: (upload: UpdateUpload, ack: (result: UpdateResult) => void) => void;
  [ClientEvent.abandon]: (abandon: Abandon) => void;
  [ClientEvent.evaluation]: (report: EvaluationReport) => void;
}
