/** `/api/models`: global model versions, their download in the TensorFlow.js format, registration and rollback. */
import { z } from 'zod';
import { privacyAccountSchema } from './privacy.js';

export const MODEL_VERSION_SOURCES = ['initial', 'registered', 'round', 'rollback'] as const;
/** How a model version came to be. */
export type ModelVersionSource = (typeof MODEL_VERSION_SOURCES)[number];

/** Free-form numbers and strings recorded with a version (test-set results, training notes). */
export const modelMetricsSchema = z
  .record(z.string(), z.union([z.number(), z.string(), z.null()]))
  .describe('Free-form numbers recorded with the version, e.g. testAccuracy, testLoss, testExamples, testSet, trainExamples');
export type ModelMetrics = z.infer<typeof modelMetricsSchema>;

/** What the coordinator adds to a version's metrics once it has tested it on its held-out test set. */
export const testSetMetricsSchema = z.object({
  testAccuracy: z.number().min(0).max(1),
  testLoss: z.number(),
  testExamples: z.number().int().min(1),
  testSet: z.string(),
});
export type TestSetMetrics = z.infer<typeof testSetMetricsSchema>;

/** Metadata of an immutable global model version (everything but topology and weights). */
export const modelVersionMetaSchema = z.object({
  version: z.number().int().min(1).describe('Version number (1, 2, ...); the highest is the current global model'),
  parentVersion: z.number().int().min(1).nullable().describe('The version this one was derived from'),
  roundId: z.uuid().nullable().describe('The round that committed this version'),
  source: z.enum(MODEL_VERSION_SOURCES),
  createdAt: z.iso.datetime(),
  numParameters: z.number().int().min(0),
  metrics: modelMetricsSchema,
  privacy: privacyAccountSchema
    .nullable()
    .default(null)
    .describe(
      'Differential privacy: the ledger as of this version and whether its lineage is covered (docs/PRIVACY.md); null for versions stored before accounts existed',
    ),
});
export type ModelVersionMeta = z.infer<typeof modelVersionMetaSchema>;

/** `GET /api/models`: newest (current) first. */
export const modelVersionListSchema = z.array(modelVersionMetaSchema);

/** One tensor of a TensorFlow.js weights manifest (Flock only moves float32 weights). */
export const weightSpecSchema = z.object({
  name: z.string(),
  shape: z.array(z.number().int().min(0)),
  dtype: z.literal('float32'),
});

/** `GET /api/models/{version}`: metadata (with the test-set numbers in `metrics`), weight specs and topology. */
export const modelVersionDetailSchema = modelVersionMetaSchema.extend({
  weightSpecs: z.array(weightSpecSchema).describe('Tensors in the order of the weight bytes'),
  topology: z.unknown().describe('Keras `modelTopology` of the TensorFlow.js layers format'),
  hasStrategyState: z.boolean().describe('Whether the version carries aggregation-strategy state (e.g. FedAdam moments)'),
  modelUrl: z.string().describe('Load with tf.loadLayersModel(url) and an Authorization header'),
});
export type ModelVersionDetail = z.infer<typeof modelVersionDetailSchema>;

/** `GET /api/models/{version}/model.json`: the TensorFlow.js layers format; the weights path names the concrete version. */
export const modelJsonSchema = z.object({
  format: z.literal('layers-model'),
  generatedBy: z.string(),
  convertedBy: z.null(),
  modelTopology: z.unknown(),
  weightsManifest: z.array(z.object({ paths: z.array(z.string()), weights: z.array(weightSpecSchema) })),
});
export type ModelJson = z.infer<typeof modelJsonSchema>;

/** `{version}` of `/api/models/{version}...`: a positive integer, or `current` where the route allows it. */
const isVersionNumber = (value: string): boolean => /^[1-9][0-9]{0,9}$/.test(value) && Number(value) <= 2 ** 31 - 1;
const versionError = (expected: string) => (issue: { input?: unknown }) => `model version must be ${expected}, got "${String(issue.input).slice(0, 32)}"`;

export const modelVersionNumberSchema = z
  .string()
  .refine(isVersionNumber, { error: versionError('a positive integer') })
  .transform(Number);
export const modelVersionSelectorSchema = z
  .string()
  .refine((value) => value === 'current' || isVersionNumber(value), { error: versionError('a positive integer or "current"') })
  .transform((value) => (value === 'current' ? ('current' as const) : Number(value)));
export type ModelVersionSelector = z.output<typeof modelVersionSelectorSchema>;

/** `POST /api/models` (multipart, as `model.save(tf.io.http(url))` sends it): the optional text field `metrics`, a JSON object. */
export const registerMetricsSchema = z.record(z.string().max(128), z.union([z.number(), z.string().max(1024), z.null()]));
export type RegisterMetrics = z.infer<typeof registerMetricsSchema>;

/** The multipart parts of `POST /api/models`. */
export const REGISTER_PARTS = { modelJson: 'model.json', weights: 'model.weights.bin', metrics: 'metrics' } as const;
/** The text fields of that multipart body (the files come separately), each still to be checked. */
export const registerFieldsSchema = z.object({ [REGISTER_PARTS.metrics]: z.unknown().optional() });
