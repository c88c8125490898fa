import pg from 'pg';
import type { PrecomputeJob, PrecomputeJobListQuery, Prediction } from '../contract/index.js';
import { sideStorePool } from './postgres-side-pool.js';
import {
  CheckpointMovedError,
  JOB_COLUMNS,
  JOB_INSERT_WIDTH,
  JOB_UPDATE_COLUMNS,
  jobInsertValues,
  jobUpdateValues,
  PRECOMPUTE_STATUS_LIST,
  PREDICTION_COLUMNS,
  rowToPrediction,
  rowToStoredJob,
  type JobRow,
  type PredictionConflict,
  type PredictionDbRow,
  type PredictionRow,
  type PredictionStore,
  type StoredJob,
} from './predictions.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS precompute_jobs (
  seq           BIGSERIAL PRIMARY KEY,
  id            TEXT NOT NULL UNIQUE,
  dataset       TEXT NOT NULL,
  model_version INTEGER NOT NULL,
  format        TEXT NOT NULL,
  key_field     TEXT NOT NULL,
  follow        BOOLEAN NOT NULL,
  status        TEXT NOT NULL CHECK (status IN (${PRECOMPUTE_STATUS_LIST})),
  source_path   TEXT NOT NULL,
  source_bytes  BIGINT NOT NULL,
  bytes_done    BIGINT NOT NULL,
  lines_done    BIGINT NOT NULL,
  rows_stored   BIGINT NOT NULL,
  rows_rejected BIGINT NOT NULL,
  rejected      TEXT NOT NULL,
  samples       TEXT NOT NULL,
  active_ms     DOUBLE PRECISION NOT NULL,
  error         TEXT,
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL,
  finished_at   TEXT
);
CREATE INDEX IF NOT EXISTS precompute_jobs_dataset ON precompute_jobs (dataset, seq);
CREATE TABLE IF NOT EXISTS predictions (
  dataset       TEXT NOT NULL,
  key           TEXT NOT NULL,
  model_version INTEGER NOT NULL,
  job_id        TEXT NOT NULL,
  top_class     INTEGER NOT NULL,
  confidence    DOUBLE PRECISION NOT NULL,
  output        BYTEA NOT NULL,
  created_at    TEXT NOT NULL,
  PRIMARY KEY (dataset, key, model_version)
);
`;

const UPDATE_SET = JOB_UPDATE_COLUMNS.map((column, i) => `${column} = $${i + 1}`).join(', ');
const UPDATE_WHERE = `id = $${JOB_UPDATE_COLUMNS.length + 1} AND bytes_done = $${JOB_UPDATE_COLUMNS.length + 2}`;
/** Rows per INSERT statement (8 parameters each). */
const ROWS_PER_STATEMENT = 1000;
const PREDICTION_WIDTH = 8;

/** Predictions and precompute jobs in PostgreSQL, on a small pool of their own. */
export class PostgresPredictions implements PredictionStore {
  private readonly pool: pg.Pool;

  constructor(
    url: string,
    private readonly schema: string | undefined,
  ) {
    this.pool = sideStorePool(url, schema, 'prediction store');
  }

  async init(): Promise<void> {
    await this.transaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`flock-schema:${this.schema ?? ''}`]);
      if (this.schema) await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`);
      await client.query(SCHEMA);
    });
  }

  async close(): Promise<void> {
    if (!this.pool.ended) await this.pool.end();
  }

  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  async createJob(job: PrecomputeJob, sourcePath: string): Promise<void> {
    const placeholders = Array.from({ length: JOB_INSERT_WIDTH }, (_, i) => `$${i + 1}`).join(', ');
    await this.pool.query(
      `INSERT INTO precompute_jobs (${JOB_COLUMNS}) VALUES (${placeholders})`,
      jobInsertValues(job, sourcePath, (b) => b),
    );
  }

  async getJob(id: string): Promise<StoredJob | null> {
    const { rows } = await this.pool.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM precompute_jobs WHERE id = $1`, [id]);
    return rows[0] ? rowToStoredJob(rows[0]) : null;
  }

  async listJobs(query: PrecomputeJobListQuery): Promise<PrecomputeJob[]> {
    const { rows } =
      query.dataset === undefined
        ? await this.pool.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM precompute_jobs ORDER BY seq DESC LIMIT $1`, [query.limit])
        : await this.pool.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM precompute_jobs WHERE dataset = $1 ORDER BY seq DESC LIMIT $2`, [
            query.dataset,
            query.limit,
          ]);
    return rows.map((row) => rowToStoredJob(row).job);
  }

  async unfinishedJobs(): Promise<StoredJob[]> {
    const { rows } = await this.pool.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM precompute_jobs WHERE status IN ('queued', 'running') ORDER BY seq`);
    return rows.map(rowToStoredJob);
  }

  async followedJobs(): Promise<StoredJob[]> {
    const { rows } = await this.pool.query<JobRow>(
      `SELECT ${JOB_COLUMNS} FROM precompute_jobs j WHERE follow AND seq = (SELECT MAX(seq) FROM precompute_jobs k WHERE k.dataset = j.dataset)`,
    );
    return rows.map(rowToStoredJob);
  }

  async commitBatch(
    job: PrecomputeJob,
    expectedBytesDone: number,
    rows: readonly PredictionRow[],
    next: (conflicts: PredictionConflict[]) => PrecomputeJob,
  ): Promise<PrecomputeJob> {
    const at = new Date().toISOString();
    return this.transaction(async (client) => {
      const inserted = new Set<string>();
      for (let start = 0; start < rows.length; start += ROWS_PER_STATEMENT) {
        const chunk = rows.slice(start, start + ROWS_PER_STATEMENT);
        const placeholders = chunk.map(
          (_, r) => `(${Array.from({ length: PREDICTION_WIDTH }, (_unused, c) => `$${r * PREDICTION_WIDTH + c + 1}`).join(', ')})`,
        );
        const values = chunk.flatMap((row) => [
          job.dataset,
          row.key,
          job.modelVersion,
          job.id,
          row.topClass,
          row.confidence,
          Buffer.from(row.output.buffer, row.output.byteOffset, row.output.byteLength),
          at,
        ]);
        const result = await client.query<{ key: string }>(
          `INSERT INTO predictions (${PREDICTION_COLUMNS}) VALUES ${placeholders.join(', ')} ON CONFLICT DO NOTHING RETURNING key`,
          values,
        );
        for (const { key } of result.rows) inserted.add(key);
      }
      const missing = rows.filter((row) => !inserted.has(row.key)).map((row) => row.key);
      const conflicts: PredictionConflict[] = [];
      if (missing.length > 0) {
        const { rows: owners } = await client.query<{ key: string; job_id: string }>(
          'SELECT key, job_id FROM predictions WHERE dataset = $1 AND model_version = $2 AND key = ANY($3)',
          [job.dataset, job.modelVersion, missing],
        );
        const ownerOf = new Map(owners.map((owner) => [owner.key, owner.job_id]));
        for (const key of missing) conflicts.push({ key, ownJob: ownerOf.get(key) === job.id });
      }
      const updated = next(conflicts);
      const { rowCount } = await client.query(`UPDATE precompute_jobs SET ${UPDATE_SET} WHERE ${UPDATE_WHERE}`, [
        ...jobUpdateValues(updated),
        job.id,
        expectedBytesDone,
      ]);
      if (rowCount === 0) throw new CheckpointMovedError(`job ${job.id} moved on`);
      return updated;
    });
  }

  async updateJob(job: PrecomputeJob, expectedBytesDone: number): Promise<boolean> {
    const { rowCount } = await this.pool.query(`UPDATE precompute_jobs SET ${UPDATE_SET} WHERE ${UPDATE_WHERE}`, [
      ...jobUpdateValues(job),
      job.id,
      expectedBytesDone,
    ]);
    return (rowCount ?? 0) > 0;
  }

  async getPrediction(dataset: string, key: string, version: number | null): Promise<Prediction | null> {
    const { rows } =
      version === null
        ? await this.pool.query<PredictionDbRow>(
            `SELECT ${PREDICTION_COLUMNS} FROM predictions WHERE dataset = $1 AND key = $2 ORDER BY model_version DESC LIMIT 1`,
            [dataset, key],
          )
        : await this.pool.query<PredictionDbRow>(`SELECT ${PREDICTION_COLUMNS} FROM predictions WHERE dataset = $1 AND key = $2 AND model_version = $3`, [
            dataset,
            key,
            version,
          ]);
    return rows[0] ? rowToPrediction(rows[0]) : null;
  }
}
