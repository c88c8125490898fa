import { SqliteConnection } from './sqlite-connection.js';
import type { PrecomputeJob, PrecomputeJobListQuery, Prediction } from '../contract/index.js';
import {
  CheckpointMovedError,
  JOB_COLUMNS,
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
  seq           INTEGER PRIMARY KEY AUTOINCREMENT,
  id            TEXT NOT NULL UNIQUE,
  dataset       TEXT NOT NULL,
  model_version INTEGER NOT NULL,
  format        TEXT NOT NULL,
  key_field     TEXT NOT NULL,
  follow        INTEGER NOT NULL,
  status        TEXT NOT NULL CHECK (status IN (${PRECOMPUTE_STATUS_LIST})),
  source_path   TEXT NOT NULL,
  source_bytes  INTEGER NOT NULL,
  bytes_done    INTEGER NOT NULL,
  lines_done    INTEGER NOT NULL,
  rows_stored   INTEGER NOT NULL,
  rows_rejected INTEGER NOT NULL,
  rejected      TEXT NOT NULL,
  samples       TEXT NOT NULL,
  active_ms     REAL NOT NULL,
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
  confidence    REAL NOT NULL,
  output        BLOB NOT NULL,
  created_at    TEXT NOT NULL,
  PRIMARY KEY (dataset, key, model_version)
);
`;

const UPDATE_SET = JOB_UPDATE_COLUMNS.map((column) => `${column} = ?`).join(', ');

/** Predictions and precompute jobs in the embedded SQLite file, on their own connection (WAL). */
export class SqlitePredictions extends SqliteConnection implements PredictionStore {
  constructor(path: string) {
    super(path, SCHEMA);
  }

  async createJob(job: PrecomputeJob, sourcePath: string): Promise<void> {
    const placeholders = JOB_COLUMNS.split(',')
      .map(() => '?')
      .join(', ');
    this.conn.prepare(`INSERT INTO precompute_jobs (${JOB_COLUMNS}) VALUES (${placeholders})`).run(...jobInsertValues(job, sourcePath, (b) => (b ? 1 : 0)));
  }

  async getJob(id: string): Promise<StoredJob | null> {
    const row = this.conn.prepare(`SELECT ${JOB_COLUMNS} FROM precompute_jobs WHERE id = ?`).get(id) as JobRow | undefined;
    return row ? rowToStoredJob(row) : null;
  }

  async listJobs(query: PrecomputeJobListQuery): Promise<PrecomputeJob[]> {
    const where = query.dataset === undefined ? '' : 'WHERE dataset = ?';
    const values = query.dataset === undefined ? [] : [query.dataset];
    const rows = this.conn.prepare(`SELECT ${JOB_COLUMNS} FROM precompute_jobs ${where} ORDER BY seq DESC LIMIT ?`).all(...values, query.limit) as JobRow[];
    return rows.map((row) => rowToStoredJob(row).job);
  }

  async unfinishedJobs(): Promise<StoredJob[]> {
    const rows = this.conn.prepare(`SELECT ${JOB_COLUMNS} FROM precompute_jobs WHERE status IN ('queued', 'running') ORDER BY seq`).all() as JobRow[];
    return rows.map(rowToStoredJob);
  }

  async followedJobs(): Promise<StoredJob[]> {
    const rows = this.conn
      .prepare(`SELECT ${JOB_COLUMNS} FROM precompute_jobs j WHERE follow = 1 AND seq = (SELECT MAX(seq) FROM precompute_jobs k WHERE k.dataset = j.dataset)`)
      .all() as JobRow[];
    return rows.map(rowToStoredJob);
  }

  async commitBatch(
    job: PrecomputeJob,
    expectedBytesDone: number,
    rows: readonly PredictionRow[],
    next: (conflicts: PredictionConflict[]) => PrecomputeJob,
  ): Promise<PrecomputeJob> {
    const conn = this.conn;
    const insert = conn.prepare(`INSERT INTO predictions (${PREDICTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`);
    const owner = conn.prepare('SELECT job_id FROM predictions WHERE dataset = ? AND key = ? AND model_version = ?');
    const update = conn.prepare(`UPDATE precompute_jobs SET ${UPDATE_SET} WHERE id = ? AND bytes_done = ?`);
    const at = new Date().toISOString();
    return conn
      .transaction(() => {
        const conflicts: PredictionConflict[] = [];
        for (const row of rows) {
          const output = Buffer.from(row.output.buffer, row.output.byteOffset, row.output.byteLength);
          const { changes } = insert.run(job.dataset, row.key, job.modelVersion, job.id, row.topClass, row.confidence, output, at);
          if (changes === 0) {
            const existing = owner.get(job.dataset, row.key, job.modelVersion) as { job_id: string };
            conflicts.push({ key: row.key, ownJob: existing.job_id === job.id });
          }
        }
        const updated = next(conflicts);
        if (update.run(...jobUpdateValues(updated), job.id, expectedBytesDone).changes === 0) throw new CheckpointMovedError(`job ${job.id} moved on`);
        return updated;
      })
      .immediate();
  }

  async updateJob(job: PrecomputeJob, expectedBytesDone: number): Promise<boolean> {
    return (
      this.conn.prepare(`UPDATE precompute_jobs SET ${UPDATE_SET} WHERE id = ? AND bytes_done = ?`).run(...jobUpdateValues(job), job.id, expectedBytesDone)
        .changes > 0
    );
  }

  async getPrediction(dataset: string, key: string, version: number | null): Promise<Prediction | null> {
    const row = (
      version === null
        ? this.conn.prepare(`SELECT ${PREDICTION_COLUMNS} FROM predictions WHERE dataset = ? AND key = ? ORDER BY model_version DESC LIMIT 1`).get(dataset, key)
        : this.conn.prepare(`SELECT ${PREDICTION_COLUMNS} FROM predictions WHERE dataset = ? AND key = ? AND model_version = ?`).get(dataset, key, version)
    ) as PredictionDbRow | undefined;
    return row ? rowToPrediction(row) : null;
  }
}
