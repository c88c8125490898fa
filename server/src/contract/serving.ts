/**
 * Model serving: the Open Inference Protocol (KServe V2, also spoken by Triton, MLServer and
 * OpenVINO Model Server) under `/v2`, and the inference log and feedback under `/api/inference-log`.
 * https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
 */
import { z } from 'zod';

/** The name the global model is served under. */
export const SERVED_MODEL_NAME = 'global';
/** The platform string of model metadata. */
export const SERVED_PLATFORM = 'tensorflowjs_layers';
/** The only tensor datatype served: the models' float32. */
export const SERVED_DATATYPE = 'FP32';
/** Largest number of values one request may carry (also bounded by the body size limit). */
export const MAX_INFER_VALUES = 4_000_000;
/** Header of the binary tensor extension: the length of the JSON part that precedes the tensor bytes. */
export const INFERENCE_HEADER_LENGTH = 'inference-header-content-length';

/** Every V2 error: `{ "error": "..." }`. */
export const v2ErrorSchema = z.object({ error: z.string() });
export type V2Error = z.infer<typeof v2ErrorSchema>;

export const v2LiveSchema = z.object({ live: z.boolean() });
export const v2ReadySchema = z.object({ ready: z.boolean() });

/** `GET /v2`: server metadata. */
export const v2ServerMetadataSchema = z.object({
  name: z.string(),
  version: z.string(),
  extensions: z.array(z.string()),
});
export type V2ServerMetadata = z.infer<typeof v2ServerMetadataSchema>;

/** One tensor of a model's signature; -1 is a variable dimension (the batch). */
export const v2TensorMetadataSchema = z.object({
  name: z.string(),
  datatype: z.string(),
  shape: z.array(z.number().int().min(-1)),
});
export type V2TensorMetadata = z.infer<typeof v2TensorMetadataSchema>;

/** `GET /v2/models/{name}[/versions/{version}]`. */
export const v2ModelMetadataSchema = z.object({
  name: z.string(),
  versions: z.array(z.string()).describe('Every version that can be served, newest first'),
  platform: z.string(),
  inputs: z.array(v2TensorMetadataSchema),
  outputs: z.array(v2TensorMetadataSchema),
});
export type V2ModelMetadata = z.infer<typeof v2ModelMetadataSchema>;

/** `{version}` in a V2 path: a positive integer as text. */
export const v2VersionParamSchema = z
  .string()
  .regex(/^[1-9][0-9]{0,8}$/, 'model version must be a positive integer')
  .transform(Number);

const parametersSchema = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional();

export const v2RequestInputSchema = z.object({
  name: z.string().max(256),
  shape: z.array(z.number().int().min(0)).min(1).max(8),
  datatype: z.string().max(16),
  parameters: parametersSchema,
  /** Absent only with the binary tensor extension (`parameters.binary_data_size`). */
  // Numbers, flat or nested row-major: checked value by value while they are copied into float32
  // (a schema per value would cost more than the prediction; even z.array(z.unknown()) visits each
  // one, 20 µs for 784 values). Documented as the array it is.
  data: z
    .custom<unknown[]>((value) => Array.isArray(value), 'expected an array')
    .optional()
    .meta({ type: 'array', items: {}, description: 'The values, flat or nested, row-major' }),
});
export type V2RequestInput = z.infer<typeof v2RequestInputSchema>;

/** `POST /v2/models/{name}[/versions/{version}]/infer`. */
export const v2InferRequestSchema = z.object({
  id: z.string().max(256).optional(),
  parameters: parametersSchema,
  inputs: z.array(v2RequestInputSchema).min(1).max(16),
  outputs: z
    .array(z.object({ name: z.string().max(256), parameters: parametersSchema }))
    .max(16)
    .optional(),
});
export type V2InferRequest = z.infer<typeof v2InferRequestSchema>;

export const v2ResponseOutputSchema = z.object({
  name: z.string(),
  shape: z.array(z.number().int().min(0)),
  datatype: z.string(),
  parameters: parametersSchema,
  data: z.array(z.number()).optional(),
});
export type V2ResponseOutput = z.infer<typeof v2ResponseOutputSchema>;

export const v2InferResponseSchema = z.object({
  model_name: z.string(),
  model_version: z.string().describe('The version that computed this answer'),
  id: z.string().describe("The request's id, or the coordinator's request id when it had none"),
  parameters: parametersSchema,
  outputs: z.array(v2ResponseOutputSchema),
});
export type V2InferResponse = z.infer<typeof v2InferResponseSchema>;

/** How an inference request ended, as logged. */
export const INFERENCE_STATUSES = ['ok', 'bad_request', 'not_found', 'unavailable', 'failed'] as const;
export type InferenceStatus = (typeof INFERENCE_STATUSES)[number];

/** One record of the inference log (`GET /api/inference-log`). */
export const inferenceLogRecordSchema = z.object({
  seq: z.number().int().min(1).describe('Position in the log (the cursor)'),
  requestId: z.uuid(),
  at: z.iso.datetime(),
  modelName: z.string(),
  modelVersion: z.number().int().min(1).nullable(),
  status: z.enum(INFERENCE_STATUSES),
  latencyMs: z.number().min(0),
  batchSize: z.number().int().min(0).describe('Rows in the batch that computed the answer'),
  rows: z.number().int().min(0).describe('Rows (examples) in the request'),
  inputShape: z.array(z.number().int().min(0)),
  inputDigest: z.string().nullable().describe('SHA-256 of the input tensor bytes (hex, first 32 characters)'),
  topClass: z.number().int().min(0).nullable().describe("The first row's predicted class (classifiers)"),
  confidence: z.number().min(0).max(1).nullable().describe("The first row's top probability"),
  error: z.string().nullable(),
  label: z.number().int().min(0).nullable().describe('The true label, once feedback arrived'),
  hasInput: z.boolean().describe('Whether the raw input is stored (FLOCK_INFERENCE_LOG_INPUTS)'),
});
export type InferenceLogRecord = z.infer<typeof inferenceLogRecordSchema>;

/** `GET /api/inference-log` query. Newest first; `before` is the `seq` to continue below. */
export const inferenceLogQuerySchema = z.object({
  version: z.coerce.number().int().min(1).optional(),
  status: z.enum(INFERENCE_STATUSES).optional(),
  since: z.iso.datetime().optional(),
  until: z.iso.datetime().optional(),
  before: z.coerce.number().int().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
export type InferenceLogQuery = z.infer<typeof inferenceLogQuerySchema>;
export type InferenceLogQueryInput = z.input<typeof inferenceLogQuerySchema>;

export const inferenceLogPageSchema = z.object({
  records: z.array(inferenceLogRecordSchema),
  nextBefore: z.number().int().min(1).nullable().describe('Pass as `before` for the next page; null at the end'),
});
export type InferenceLogPage = z.infer<typeof inferenceLogPageSchema>;

/** `POST /api/inference-log/{requestId}/feedback`: the true label of a served request. */
export const inferenceFeedbackSchema = z.object({ label: z.number().int().min(0).max(100_000) });
export type InferenceFeedback = z.infer<typeof inferenceFeedbackSchema>;
export const inferenceFeedbackResultSchema = z.object({
  requestId: z.uuid(),
  modelVersion: z.number().int().min(1).nullable(),
  topClass: z.number().int().min(0).nullable(),
  correct: z.boolean().nullable(),
});
export type InferenceFeedbackResult = z.infer<typeof inferenceFeedbackResultSchema>;

export const requestIdSchema = z.uuid({ error: 'request id must be a UUID' });

/** One served version's live statistics (`GET /api/serving`). */
export const servingVersionStatsSchema = z.object({
  version: z.number().int().min(1),
  predictions: z.number().int().min(0).describe('Rows predicted'),
  classCounts: z.array(z.number().int().min(0)).describe('Predicted classes (argmax), counted'),
  confidenceHistogram: z.array(z.number().int().min(0)).describe('Top probabilities in 10 bins of 0.1'),
  feedback: z.number().int().min(0),
  feedbackCorrect: z.number().int().min(0),
  shadowCompared: z.number().int().min(0).describe('Rows also run on the previous version (shadow mode)'),
  shadowDisagreed: z.number().int().min(0),
  deviceEvaluations: z.number().int().min(0).describe("Devices' local evaluations of the version (model:evaluation reports)"),
  deviceAccuracy: z
    .number()
    .min(0)
    .max(1)
    .nullable()
    .describe("Their mean global accuracy, weighted as in the rounds' local-evaluation summaries (examples, capped)"),
});
export type ServingVersionStats = z.infer<typeof servingVersionStatsSchema>;

export const SERVING_ACTIONS = ['alert', 'rollback', 'retrain'] as const;
export type ServingAction = (typeof SERVING_ACTIONS)[number];

export const servingActionRecordSchema = z.object({
  at: z.iso.datetime(),
  version: z.number().int().min(1),
  signal: z.string().describe('psi, js, disagreement or accuracy'),
  value: z.number(),
  threshold: z.number(),
  action: z.enum(SERVING_ACTIONS),
  outcome: z.string().describe('What the action did, or why it failed'),
});
export type ServingActionRecord = z.infer<typeof servingActionRecordSchema>;

/** `GET /api/serving`: what the dashboard's Serving panel shows. */
export const servingStatusSchema = z.object({
  currentVersion: z.number().int().min(1).nullable(),
  requests: z.number().int().min(0).describe('Inference requests since the coordinator started'),
  latency: z
    .object({ p50Ms: z.number().min(0), p99Ms: z.number().min(0), samples: z.number().int().min(1) })
    .nullable()
    .describe('Latency of the last answered requests (up to 1024)'),
  batching: z.object({ maxBatchSize: z.number().int().min(1), maxQueueDelayMs: z.number().min(0), workers: z.number().int().min(1) }),
  deviation: z
    .object({
      version: z.number().int().min(1),
      previousVersion: z.number().int().min(1),
      psi: z.number().nullable(),
      js: z.number().nullable(),
      disagreement: z.number().nullable(),
    })
    .nullable(),
  versions: z.array(servingVersionStatsSchema),
  actions: z.array(servingActionRecordSchema),
});
export type ServingStatus = z.infer<typeof servingStatusSchema>;
