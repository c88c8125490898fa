/**
 * The inference log: one record per inference request (serving/), in the coordinator's database
 * (SQLite or PostgreSQL), written in batches by serving/inference-log-writer.ts. Its own store and
 * connection, apart from Storage, so that a burst of log writes never queues behind a round's commit.
 */
import { join } from 'node:path';
import type { FlockConfig } from '../config/config.js';
import { INFERENCE_STATUSES, type InferenceLogPage, type InferenceLogQuery, type InferenceLogRecord, type InferenceStatus } from '../contract/index.js';
import { sqlList } from './rows.js';

/** What the serving path writes: a record without its position, with the raw input when the operator keeps inputs. */
export interface InferenceLogEntry extends Omit<InferenceLogRecord, 'seq' | 'label' | 'hasInput'> {
  /** The input tensor's bytes (FLOCK_INFERENCE_LOG_INPUTS), else null. */
  input: Uint8Array | null;
}

export interface InferenceLogStore {
  init(): Promise<void>;
  close(): Promise<void>;
  /** Appends the entries in one transaction. */
  append(entries: readonly InferenceLogEntry[]): Promise<void>;
  /** Newest first, filtered. */
  query(query: InferenceLogQuery): Promise<InferenceLogPage>;
  get(requestId: string): Promise<InferenceLogRecord | null>;
  /** Records the true label of a request; null when no such request is logged. */
  setLabel(requestId: string, label: number): Promise<InferenceLogRecord | null>;
  /** Deletes records older than `beforeIso`; resolves how many. */
  deleteBefore(beforeIso: string): Promise<number>;
}

export const INFERENCE_STATUS_LIST = sqlList(INFERENCE_STATUSES);

export const INFERENCE_LOG_COLUMNS =
  'seq, request_id, at, model_name, model_version, status, latency_ms, batch_size, rows, input_shape, input_digest, top_class, confidence, error, label, input IS NOT NULL AS has_input';
export const INFERENCE_LOG_INSERT_COLUMNS =
  'request_id, at, model_name, model_version, status, latency_ms, batch_size, rows, input_shape, input_digest, top_class, confidence, error, input';
export const INFERENCE_LOG_INSERT_WIDTH = 14;

export interface InferenceLogRow {
  seq: number | string;
  request_id: string;
  at: string;
  model_name: string;
  model_version: number | null;
  status: string;
  latency_ms: number;
  batch_size: number;
  rows: number;
  input_shape: string;
  input_digest: string | null;
  top_class: number | null;
  confidence: number | null;
  error: string | null;
  label: number | null;
  has_input: number | boolean;
}

export function inferenceLogValues(entry: InferenceLogEntry): unknown[] {
  return [
    entry.requestId,
    entry.at,
    entry.modelName,
    entry.modelVersion,
    entry.status,
    entry.latencyMs,
    entry.batchSize,
    entry.rows,
    JSON.stringify(entry.inputShape),
    entry.inputDigest,
    entry.topClass,
    entry.confidence,
    entry.error,
    entry.input === null ? null : Buffer.from(entry.input.buffer, entry.input.byteOffset, entry.input.byteLength),
  ];
}

export function rowToInferenceLogRecord(row: InferenceLogRow): InferenceLogRecord {
  return {
    seq: Number(row.seq),
    requestId: row.request_id,
    at: row.at,
    modelName: row.model_name,
    modelVersion: row.model_version,
    status: row.status as InferenceStatus,
    latencyMs: row.latency_ms,
    batchSize: row.batch_size,
    rows: row.rows,
    inputShape: JSON.parse(row.input_shape) as number[],
    inputDigest: row.input_digest,
    topClass: row.top_class,
    confidence: row.confidence,
    error: row.error,
    label: row.label,
    hasInput: Boolean(row.has_input),
  };
}

/** WHERE clause and values of a query; `param(i)` renders the i-th placeholder (`?` or `$i`). */
export function inferenceLogFilter(query: InferenceLogQuery, param: (i: number) => string): { where: string; values: unknown[] } {
  const clauses: string[] = [];
  const values: unknown[] = [];
  const add = (sql: string, value: unknown): void => {
    values.push(value);
    clauses.push(sql.replace('?', param(values.length)));
  };
  if (query.version !== undefined) add('model_version = ?', query.version);
  if (query.status !== undefined) add('status = ?', query.status);
  if (query.since !== undefined) add('at >= ?', new Date(query.since).toISOString());
  if (query.until !== undefined) add('at < ?', new Date(query.until).toISOString());
  if (query.before !== undefined) add('seq < ?', query.before);
  return { where: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', values };
}

/** A page from rows fetched with LIMIT limit + 1 (one more tells whether there is a next page). */
export function pageOf(rows: InferenceLogRow[], limit: number): InferenceLogPage {
  const records = rows.slice(0, limit).map(rowToInferenceLogRecord);
  return { records, nextBefore: rows.length > limit ? records[records.length - 1]!.seq : null };
}

/** The store the configuration asks for (the same database as Storage), not yet initialised. */
export async function createInferenceLogStore(config: Pick<FlockConfig, 'databaseUrl' | 'dataDir'>): Promise<InferenceLogStore> {
  if (config.databaseUrl && /^postgres(ql)?:\/\//i.test(config.databaseUrl)) {
    const { PostgresInferenceLog } = await import('./postgres-inference-log.js');
    const url = new URL(config.databaseUrl);
    const schema = url.searchParams.get('schema') ?? undefined;
    url.searchParams.delete('schema');
    return new PostgresInferenceLog(url.toString(), schema);
  }
  const { SqliteInferenceLog } = await import('./sqlite-inference-log.js');
  return new SqliteInferenceLog(join(config.dataDir, 'flock.db'));
}
