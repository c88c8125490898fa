/**
 * Precompute: a dataset's rows predicted ahead of time by one model version and stored keyed by
 * (dataset, key, version), so that an application reads a prediction instead of running the model.
 * `POST /api/precompute/{dataset}` (an NDJSON or CSV body) starts a job; `GET /api/precompute/jobs[/{id}]`
 * shows its progress; `GET /api/predictions/{dataset}/{key}` answers from the database.
 */
import { z } from 'zod';

export const PRECOMPUTE_FORMATS = ['ndjson', 'csv'] as const;
export type PrecomputeFormat = (typeof PRECOMPUTE_FORMATS)[number];

export const PRECOMPUTE_JOB_STATUSES = ['queued', 'running', 'completed', 'failed'] as const;
export type PrecomputeJobStatus = (typeof PRECOMPUTE_JOB_STATUSES)[number];

/**
 * Why an input row was not stored. Each is counted per job; none stops the job.
 * `already_stored`: another job stored this key for this version before (the first write stays).
 */
export const PRECOMPUTE_REJECT_REASONS = [
  'line_too_long',
  'malformed',
  'missing_key',
  'invalid_key',
  'wrong_length',
  'not_numeric',
  'non_finite',
  'duplicate_key',
  'already_stored',
] as const;
export type PrecomputeRejectReason = (typeof PRECOMPUTE_REJECT_REASONS)[number];

/** A dataset's name: letters, digits, `.`, `_`, `-` (it appears in URL paths). */
/** A dataset's name (a URL segment as it is: no percent-encoding needed). */
export const DATASET_NAME_PATTERN = '[A-Za-z0-9][A-Za-z0-9._-]{0,63}';

export const datasetNameSchema = z
  .string()
  .regex(new RegExp(`^${DATASET_NAME_PATTERN}$`), 'dataset name must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit');

/** A row's key as stored and looked up: 1-256 characters, no control characters. */
export const MAX_PREDICTION_KEY_LENGTH = 256;
export const predictionKeySchema = z
  .string()
  .min(1, 'key must not be empty')
  .max(MAX_PREDICTION_KEY_LENGTH, `key must be at most ${MAX_PREDICTION_KEY_LENGTH} characters`)
  // eslint-disable-next-line no-control-regex
  .regex(/^[^\u0000-\u001f\u007f]*$/, 'key must not contain control characters');

export const precomputeJobIdSchema = z.uuid({ error: 'job id must be a UUID' });

const flagSchema = z.enum(['true', 'false', '1', '0']).transform((value) => value === 'true' || value === '1');

/** Query of `POST /api/precompute/{dataset}`; the body is the input file itself. */
export const precomputeStartQuerySchema = z.object({
  format: z.enum(PRECOMPUTE_FORMATS).optional().describe('Default: from the Content-Type (text/csv: csv; else ndjson)'),
  keyField: z.string().min(1).max(128).default('id').describe('The field (NDJSON) or column (CSV header) holding each row key'),
  version: z.coerce.number().int().min(1).optional().describe('The model version to predict with (default: the current one)'),
  follow: flagSchema.optional().describe('Precompute the dataset again with every new version that commits'),
});
export type PrecomputeStartQuery = z.infer<typeof precomputeStartQuerySchema>;
export type PrecomputeStartQueryInput = z.input<typeof precomputeStartQuerySchema>;

export const precomputeRejectionSchema = z.object({
  line: z.number().int().min(1).describe('1-based line of the input'),
  reason: z.enum(PRECOMPUTE_REJECT_REASONS),
  message: z.string(),
});
export type PrecomputeRejection = z.infer<typeof precomputeRejectionSchema>;

export const precomputeJobSchema = z.object({
  id: z.uuid(),
  dataset: z.string(),
  modelVersion: z.number().int(),
  format: z.enum(PRECOMPUTE_FORMATS),
  keyField: z.string(),
  follow: z.boolean(),
  status: z.enum(PRECOMPUTE_JOB_STATUSES),
  sourceBytes: z.number().int().min(0).describe('Size of the uploaded input'),
  bytesDone: z.number().int().min(0).describe('Input bytes consumed: the checkpoint a resumed job continues from'),
  linesDone: z.number().int().min(0),
  rowsStored: z.number().int().min(0),
  rowsRejected: z.number().int().min(0),
  rejected: z.partialRecord(z.enum(PRECOMPUTE_REJECT_REASONS), z.number().int()).describe('Rejected rows by reason'),
  rejectionSamples: z.array(precomputeRejectionSchema).describe('The first rejected rows (at most 20)'),
  activeMs: z.number().min(0).describe('Time spent running (over every resumption)'),
  rowsPerSecond: z.number().min(0).nullable().describe('Lines consumed per second of activeMs'),
  error: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  finishedAt: z.string().nullable(),
});
export type PrecomputeJob = z.infer<typeof precomputeJobSchema>;

export const precomputeJobListSchema = z.array(precomputeJobSchema);

export const precomputeJobListQuerySchema = z.object({
  dataset: datasetNameSchema.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
export type PrecomputeJobListQuery = z.infer<typeof precomputeJobListQuerySchema>;

export const predictionQuerySchema = z.object({
  version: z.coerce.number().int().min(1).optional().describe('Default: the newest version that has this key'),
});

/** `GET /api/predictions/{dataset}/{key}`. */
export const predictionSchema = z.object({
  dataset: z.string(),
  key: z.string(),
  modelVersion: z.number().int(),
  topClass: z.number().int().describe('Index of the largest output value'),
  confidence: z.number().describe('That value (a probability for softmax models)'),
  output: z.array(z.number()).describe('The model output row'),
  jobId: z.string(),
  createdAt: z.string(),
});
export type Prediction = z.infer<typeof predictionSchema>;
