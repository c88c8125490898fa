/**
 * Row <-> record mapping shared by the SQLite and PostgreSQL implementations. Both use the same
 * column names and semantics; only the SQL dialect and the driver's value types differ
 * (SQLite hands JSON columns back as TEXT, pg parses JSONB itself).
 */
import { BYTES_PER_VALUE, ROUND_STATUSES, totalValues, type RoundStatus, type WeightSpec } from '@flock/client-sdk/protocol';
import {
  MODEL_VERSION_SOURCES,
  type LocalEvaluationSummary,
  type ModelVersionMeta,
  type ModelVersionSource,
  privacyAccountSchema,
  type RoundRecord,
  type RoundTransition,
} from '../contract/index.js';
import { emptyRoundMetrics } from '../rounds/round-types.js';
import type { EvaluationNumbers, EvaluationReportRecord, ModelVersionRecord, NewModelVersion, RoundPatch } from './storage.js';

/** `'a', 'b', 'c'` for CHECK constraints (the values are compile-time constants, never user input). */
export function sqlList(values: readonly string[]): string {
  return values.map((value) => `'${value}'`).join(', ');
}
export const STATUS_LIST = sqlList(ROUND_STATUSES);
export const SOURCE_LIST = sqlList(MODEL_VERSION_SOURCES);

/** Meta columns of model_versions (everything except the weight bytes and the large JSON), with the version's privacy account. */
export const MODEL_META_COLUMNS =
  'version, parent_version, round_id, source, created_at, num_parameters, metrics, ' +
  '(SELECT account FROM privacy_accounts WHERE privacy_accounts.version = model_versions.version) AS privacy';
export const MODEL_RECORD_COLUMNS = `${MODEL_META_COLUMNS}, topology, weight_specs, strategy_state`;
export const ROUND_COLUMNS = 'id, base_version, status, params, metrics, committed_version, error, created_at, updated_at, ended_at';

/** Thrown when a write refers to a round or version that does not exist. */
export class RecordNotFoundError extends Error {
  constructor(what: string) {
    super(`${what} not found`);
    this.name = 'RecordNotFoundError';
  }
}

/** Decodes a JSON column: SQLite returns the TEXT, pg has already parsed JSONB. */
export type JsonDecoder = (value: unknown) => unknown;
export const parseJsonText: JsonDecoder = (value) => (typeof value === 'string' ? (JSON.parse(value) as unknown) : value);
export const alreadyParsed: JsonDecoder = (value) => value;

export interface ModelMetaRow {
  version: number;
  parent_version: number | null;
  round_id: string | null;
  source: string;
  created_at: string;
  num_parameters: number;
  metrics: unknown;
  /** privacy_accounts.account, null for versions stored before accounts existed. */
  privacy: unknown;
}
export interface ModelRecordRow extends ModelMetaRow {
  topology: unknown;
  weight_specs: unknown;
  strategy_state: Uint8Array | null;
}
export interface RoundRow {
  id: string;
  base_version: number;
  status: string;
  params: unknown;
  metrics: unknown;
  committed_version: number | null;
  error: string | null;
  created_at: string;
  updated_at: string;
  ended_at: string | null;
}
export interface EvaluationReportRow {
  num_examples: number;
  global_loss: number;
  global_accuracy: number;
  personal_loss: number | null;
  personal_accuracy: number | null;
  /** SQLite stores 0/1, PostgreSQL a boolean. */
  adopted: number | boolean;
}
export interface TransitionRow {
  round_id: string;
  from_status: string | null;
  to_status: string;
  at: string;
  note: string | null;
}

export function rowToModelMeta(row: ModelMetaRow, decode: JsonDecoder): ModelVersionMeta {
  return {
    version: row.version,
    parentVersion: row.parent_version,
    roundId: row.round_id,
    source: row.source as ModelVersionSource,
    createdAt: row.created_at,
    numParameters: row.num_parameters,
    metrics: decode(row.metrics) as ModelVersionMeta['metrics'],
    privacy: row.privacy === null ? null : privacyAccountSchema.parse(decode(row.privacy)),
  };
}

export function rowToModelRecord(row: ModelRecordRow, decode: JsonDecoder): ModelVersionRecord {
  return {
    ...rowToModelMeta(row, decode),
    topology: decode(row.topology),
    weightSpecs: decode(row.weight_specs) as WeightSpec[],
    strategyState: row.strategy_state ? copyBytes(row.strategy_state) : null,
  };
}

/** Column values of a new model_versions row, in MODEL_INSERT_COLUMNS order. */
export const MODEL_INSERT_COLUMNS =
  'version, parent_version, round_id, source, created_at, num_parameters, metrics, topology, weight_specs, strategy_state, weights';

export function modelInsertValues(
  version: number,
  record: NewModelVersion,
  weights: Uint8Array,
  createdAt: string,
): [number, number | null, string | null, string, string, number, string, string, string, Buffer | null, Buffer] {
  return [
    version,
    record.parentVersion,
    record.roundId,
    record.source,
    createdAt,
    record.numParameters,
    JSON.stringify(record.metrics),
    JSON.stringify(record.topology),
    JSON.stringify(record.weightSpecs.map(({ name, shape, dtype }) => ({ name, shape, dtype }))),
    record.strategyState ? bufferView(record.strategyState) : null,
    bufferView(weights),
  ];
}

/** Checks a new version's weight bytes against its specs before it is written. */
export function validateNewVersion(record: NewModelVersion, weights: Uint8Array): void {
  for (const spec of record.weightSpecs) {
    if (spec.dtype !== 'float32') throw new Error(`weight ${spec.name}: dtype ${String(spec.dtype)} is not float32`);
  }
  const values = totalValues(record.weightSpecs.map((spec) => spec.shape));
  if (weights.byteLength !== values * BYTES_PER_VALUE) {
    throw new Error(`weights have ${weights.byteLength} bytes, the weight specs need ${values * BYTES_PER_VALUE}`);
  }
  if (record.numParameters !== values) {
    throw new Error(`numParameters is ${record.numParameters}, the weight specs hold ${values}`);
  }
}

/** A local-evaluation summary as stored by this or an older coordinator, in today's shape. */
export function upgradeLocalEvaluation(stored: unknown): LocalEvaluationSummary | null {
  if (stored === null || stored === undefined) return null;
  const summary = stored as Partial<LocalEvaluationSummary> & Omit<LocalEvaluationSummary, 'personalNumExamples' | 'weightCap' | 'spread'>;
  return {
    ...summary,
    // Before personalNumExamples existed every report had a personal model.
    personalNumExamples: summary.personalNumExamples ?? (summary.personalAccuracy === null ? 0 : summary.numExamples),
    // Before the robust statistics: example-weighted means, no cap, no spread.
    weightCap: summary.weightCap ?? null,
    spread: summary.spread ?? null,
  };
}

export function rowToRound(row: RoundRow, decode: JsonDecoder): RoundRecord {
  // Over the defaults: rounds stored by an older coordinator lack newer counters.
  const metrics: RoundRecord['metrics'] = { ...emptyRoundMetrics(), ...(decode(row.metrics) as Partial<RoundRecord['metrics']>) };
  return {
    id: row.id,
    baseVersion: row.base_version,
    status: row.status as RoundStatus,
    params: decode(row.params) as RoundRecord['params'],
    metrics: { ...metrics, localEvaluation: upgradeLocalEvaluation(metrics.localEvaluation) },
    committedVersion: row.committed_version,
    error: row.error,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    endedAt: row.ended_at,
  };
}

/** Column values in ROUND_COLUMNS order. */
export function roundValues(round: RoundRecord): [string, number, string, string, string, number | null, string | null, string, string, string | null] {
  return [
    round.id,
    round.baseVersion,
    round.status,
    JSON.stringify(round.params),
    JSON.stringify(round.metrics),
    round.committedVersion,
    round.error,
    round.createdAt,
    round.updatedAt,
    round.endedAt,
  ];
}

/** The round after a patch; updatedAt is always bumped. */
export function applyRoundPatch(round: RoundRecord, patch: RoundPatch, now: string): RoundRecord {
  const next: RoundRecord = { ...round, updatedAt: now };
  if (patch.status !== undefined) next.status = patch.status;
  if (patch.metrics !== undefined) next.metrics = patch.metrics;
  if (patch.localEvaluation !== undefined) next.metrics = { ...next.metrics, localEvaluation: patch.localEvaluation };
  if (patch.committedVersion !== undefined) next.committedVersion = patch.committedVersion;
  if (patch.error !== undefined) next.error = patch.error;
  if (patch.endedAt !== undefined) next.endedAt = patch.endedAt;
  return next;
}

/** Columns of evaluation_reports, in evaluationReportValues order. */
export const EVALUATION_REPORT_COLUMNS = 'model_version, client_id, num_examples, global_loss, global_accuracy, personal_loss, personal_accuracy, adopted';
/** Evaluation reports read per step (a few milliseconds of parsing): a version with many is read in steps along its key. */
export const REPORTS_PER_READ = 2_000;
/** The numbers alone, for summaries. */
export const EVALUATION_NUMBER_COLUMNS = 'num_examples, global_loss, global_accuracy, personal_loss, personal_accuracy, adopted';

/** Column values in EVALUATION_REPORT_COLUMNS order; `adopted` as 0/1, which both SQLite and PostgreSQL's boolean accept. */
export function evaluationReportValues(report: EvaluationReportRecord): [number, string, number, number, number, number | null, number | null, number] {
  return [
    report.modelVersion,
    report.clientId,
    report.numExamples,
    report.globalLoss,
    report.globalAccuracy,
    report.personalLoss,
    report.personalAccuracy,
    report.adopted ? 1 : 0,
  ];
}

export function rowToEvaluationNumbers(row: EvaluationReportRow): EvaluationNumbers {
  return {
    numExamples: row.num_examples,
    globalLoss: row.global_loss,
    globalAccuracy: row.global_accuracy,
    personalLoss: row.personal_loss,
    personalAccuracy: row.personal_accuracy,
    adopted: row.adopted === true || row.adopted === 1,
  };
}

export function rowToTransition(row: TransitionRow): RoundTransition {
  return {
    roundId: row.round_id,
    from: row.from_status as RoundStatus | null,
    to: row.to_status as RoundStatus,
    at: row.at,
    note: row.note,
  };
}

export function transitionValues(t: RoundTransition): [string, string | null, string, string, string | null] {
  return [t.roundId, t.from, t.to, t.at, t.note];
}

/** What commitRound writes to the round: the patch, the new version, status committed unless the patch says otherwise. */
export function commitPatch(patch: RoundPatch, committedVersion: number): RoundPatch {
  return { ...patch, status: patch.status ?? 'committed', committedVersion };
}

/** Stored copy of a new version: the round id defaults to the committing round. */
export function commitVersion(roundId: string, version: NewModelVersion): NewModelVersion {
  return { ...version, roundId: version.roundId ?? roundId };
}

/** A Buffer over the same memory (drivers want Buffers; no copy). */
export function bufferView(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A fresh Uint8Array that owns its (4-byte aligned) memory. */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

/** Uint8Array view of a driver's Buffer; the drivers allocate large Buffers on their own (aligned) memory. */
export function asUint8(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function nowIso(): string {
  return new Date().toISOString();
}
