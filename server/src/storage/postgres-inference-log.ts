import pg from 'pg';
import type { InferenceLogPage, InferenceLogQuery, InferenceLogRecord } from '../contract/index.js';
import { sideStorePool } from './postgres-side-pool.js';
import {
  INFERENCE_LOG_COLUMNS,
  INFERENCE_LOG_INSERT_COLUMNS,
  INFERENCE_LOG_INSERT_WIDTH,
  INFERENCE_STATUS_LIST,
  inferenceLogFilter,
  inferenceLogValues,
  pageOf,
  rowToInferenceLogRecord,
  type InferenceLogEntry,
  type InferenceLogRow,
  type InferenceLogStore,
} from './inference-log.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS inference_log (
  seq           BIGSERIAL PRIMARY KEY,
  request_id    TEXT NOT NULL UNIQUE,
  at            TEXT NOT NULL,
  model_name    TEXT NOT NULL,
  model_version INTEGER,
  status        TEXT NOT NULL CHECK (status IN (${INFERENCE_STATUS_LIST})),
  latency_ms    DOUBLE PRECISION NOT NULL,
  batch_size    INTEGER NOT NULL,
  rows          INTEGER NOT NULL,
  input_shape   TEXT NOT NULL,
  input_digest  TEXT,
  top_class     INTEGER,
  confidence    DOUBLE PRECISION,
  error         TEXT,
  label         INTEGER,
  input         BYTEA
);
CREATE INDEX IF NOT EXISTS inference_log_at ON inference_log (at);
CREATE INDEX IF NOT EXISTS inference_log_version ON inference_log (model_version, seq);
`;

/** Records per INSERT statement (14 parameters each, far below PostgreSQL's 65,535). */
const ROWS_PER_STATEMENT = 500;

/** The inference log in PostgreSQL, on a small pool of its own. */
export class PostgresInferenceLog implements InferenceLogStore {
  private readonly pool: pg.Pool;

  constructor(
    url: string,
    private readonly schema: string | undefined,
  ) {
    this.pool = sideStorePool(url, schema, 'inference log');
  }

  async init(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`flock-schema:${this.schema ?? ''}`]);
      if (this.schema) await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`);
      await client.query(SCHEMA);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    if (!this.pool.ended) await this.pool.end();
  }

  async append(entries: readonly InferenceLogEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      for (let start = 0; start < entries.length; start += ROWS_PER_STATEMENT) {
        const chunk = entries.slice(start, start + ROWS_PER_STATEMENT);
        const placeholders = chunk.map(
          (_, row) => `(${Array.from({ length: INFERENCE_LOG_INSERT_WIDTH }, (_unused, col) => `$${row * INFERENCE_LOG_INSERT_WIDTH + col + 1}`).join(', ')})`,
        );
        await client.query(`INSERT INTO inference_log (${INFERENCE_LOG_INSERT_COLUMNS}) VALUES ${placeholders.join(', ')}`, chunk.flatMap(inferenceLogValues));
      }
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  async query(query: InferenceLogQuery): Promise<InferenceLogPage> {
    const { where, values } = inferenceLogFilter(query, (i) => `$${i}`);
    const { rows } = await this.pool.query<InferenceLogRow>(
      `SELECT ${INFERENCE_LOG_COLUMNS} FROM inference_log ${where} ORDER BY seq DESC LIMIT $${values.length + 1}`,
      [...values, query.limit + 1],
    );
    return pageOf(rows, query.limit);
  }

  async get(requestId: string): Promise<InferenceLogRecord | null> {
    const { rows } = await this.pool.query<InferenceLogRow>(`SELECT ${INFERENCE_LOG_COLUMNS} FROM inference_log WHERE request_id = $1`, [requestId]);
    return rows[0] ? rowToInferenceLogRecord(rows[0]) : null;
  }

  async setLabel(requestId: string, label: number): Promise<InferenceLogRecord | null> {
    const { rowCount } = await this.pool.query('UPDATE inference_log SET label = $1 WHERE request_id = $2', [label, requestId]);
    return rowCount === 0 ? null : this.get(requestId);
  }

  async deleteBefore(beforeIso: string): Promise<number> {
    const { rowCount } = await this.pool.query('DELETE FROM inference_log WHERE at < $1', [beforeIso]);
    return rowCount ?? 0;
  }
}
