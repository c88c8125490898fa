/**
 * Precomputed predictions and the precompute jobs that make them (precompute/), in the coordinator's
 * database (SQLite or PostgreSQL), on a connection of their own like the inference log. A batch's
 * rows and its job's checkpoint are written in one transaction, fenced by the checkpoint it started
 * from, so a crash never keeps rows without the checkpoint that covers them, nor the reverse.
 */
import { join } from 'node:path';
import type { FlockConfig } from '../config/config.js';
import {
  PRECOMPUTE_JOB_STATUSES,
  type PrecomputeFormat,
  type PrecomputeJob,
  type PrecomputeJobListQuery,
  type PrecomputeJobStatus,
  type PrecomputeRejection,
  type Prediction,
} from '../contract/index.js';
import { rowsPerSecond } from '../precompute/job-progress.js';
import { sqlList } from './rows.js';

/** One row to store: the model's output for a key, with its summary. */
export interface PredictionRow {
  key: string;
  topClass: number;
  confidence: number;
  /** The output row, float32 little-endian. */
  output: Uint8Array;
}

/** A row that was not inserted because its (dataset, key, version) exists: by this job (a duplicate key of its input) or another. */
export interface PredictionConflict {
  key: string;
  ownJob: boolean;
}

/** A job as stored, with where its input lives (never shown through the API). */
export interface StoredJob {
  job: PrecomputeJob;
  sourcePath: string;
}

/** The job's checkpoint moved since the batch began: another runner took the job over. */
export class CheckpointMovedError extends Error {
  override readonly name = 'CheckpointMovedError';
}

export interface PredictionStore {
  init(): Promise<void>;
  close(): Promise<void>;
  createJob(job: PrecomputeJob, sourcePath: string): Promise<void>;
  getJob(id: string): Promise<StoredJob | null>;
  /** Newest first. */
  listJobs(query: PrecomputeJobListQuery): Promise<PrecomputeJob[]>;
  /** Queued and running jobs, oldest first: what a start-up resumes. */
  unfinishedJobs(): Promise<StoredJob[]>;
  /** The newest job of each dataset, for the datasets whose newest job follows new versions. */
  followedJobs(): Promise<StoredJob[]>;
  /**
   * In one transaction: inserts the rows (a key already stored for this dataset and version is
   * left as it is), asks `next` for the job record given the conflicts, and writes it, provided the
   * job's checkpoint (bytesDone) is still `expectedBytesDone`; else rolls back and throws CheckpointMovedError.
   */
  commitBatch(
    job: PrecomputeJob,
    expectedBytesDone: number,
    rows: readonly PredictionRow[],
    next: (conflicts: PredictionConflict[]) => PrecomputeJob,
  ): Promise<PrecomputeJob>;
  /** Writes the job's state (status, error, ...) if its checkpoint is still `expectedBytesDone`; false when it moved. */
  updateJob(job: PrecomputeJob, expectedBytesDone: number): Promise<boolean>;
  /** The prediction for a key: of `version`, else of the newest version that has it. */
  getPrediction(dataset: string, key: string, version: number | null): Promise<Prediction | null>;
}

export const PRECOMPUTE_STATUS_LIST = sqlList(PRECOMPUTE_JOB_STATUSES);

/** The mutable part of a job, in the order of jobUpdateValues (and of the UPDATE's placeholders). */
export const JOB_UPDATE_COLUMNS = [
  'status',
  'bytes_done',
  'lines_done',
  'rows_stored',
  'rows_rejected',
  'rejected',
  'samples',
  'active_ms',
  'error',
  'updated_at',
  'finished_at',
] as const;

/** What a job is given when created and never changes, in the order of jobInsertValues' leading values. */
const JOB_FIXED_COLUMNS = ['id', 'dataset', 'model_version', 'format', 'key_field', 'follow', 'source_path', 'source_bytes', 'created_at'] as const;

/** Every column of a job, in the order of jobInsertValues. */
export const JOB_COLUMNS = [...JOB_FIXED_COLUMNS, ...JOB_UPDATE_COLUMNS].join(', ');
export const JOB_INSERT_WIDTH = JOB_FIXED_COLUMNS.length + JOB_UPDATE_COLUMNS.length;

export interface JobRow {
  id: string;
  dataset: string;
  model_version: number;
  format: string;
  key_field: string;
  follow: number | boolean;
  status: string;
  source_path: string;
  source_bytes: number | string;
  bytes_done: number | string;
  lines_done: number | string;
  rows_stored: number | string;
  rows_rejected: number | string;
  rejected: string;
  samples: string;
  active_ms: number;
  error: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

export function jobInsertValues(job: PrecomputeJob, sourcePath: string, bool: (b: boolean) => unknown): unknown[] {
  return [
    job.id,
    job.dataset,
    job.modelVersion,
    job.format,
    job.keyField,
    bool(job.follow),
    sourcePath,
    job.sourceBytes,
    job.createdAt,
    ...jobUpdateValues(job),
  ];
}

export function jobUpdateValues(job: PrecomputeJob): unknown[] {
  return [
    job.status,
    job.bytesDone,
    job.linesDone,
    job.rowsStored,
    job.rowsRejected,
    JSON.stringify(job.rejected),
    JSON.stringify(job.rejectionSamples),
    job.activeMs,
    job.error,
    job.updatedAt,
    job.finishedAt,
  ];
}

export function rowToStoredJob(row: JobRow): StoredJob {
  const linesDone = Number(row.lines_done);
  return {
    sourcePath: row.source_path,
    job: {
      id: row.id,
      dataset: row.dataset,
      modelVersion: row.model_version,
      format: row.format as PrecomputeFormat,
      keyField: row.key_field,
      follow: Boolean(row.follow),
      status: row.status as PrecomputeJobStatus,
      sourceBytes: Number(row.source_bytes),
      bytesDone: Number(row.bytes_done),
      linesDone,
      rowsStored: Number(row.rows_stored),
      rowsRejected: Number(row.rows_rejected),
      rejected: JSON.parse(row.rejected) as PrecomputeJob['rejected'],
      rejectionSamples: JSON.parse(row.samples) as PrecomputeRejection[],
      activeMs: row.active_ms,
      rowsPerSecond: rowsPerSecond(linesDone, row.active_ms),
      error: row.error,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      finishedAt: row.finished_at,
    },
  };
}

export interface PredictionDbRow {
  dataset: string;
  key: string;
  model_version: number;
  job_id: string;
  top_class: number;
  confidence: number;
  output: Buffer;
  created_at: string;
}

export const PREDICTION_COLUMNS = 'dataset, key, model_version, job_id, top_class, confidence, output, created_at';

export function rowToPrediction(row: PredictionDbRow): Prediction {
  const bytes = new Uint8Array(row.output);
  const output = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return {
    dataset: row.dataset,
    key: row.key,
    modelVersion: row.model_version,
    topClass: row.top_class,
    confidence: row.confidence,
    output: Array.from(output),
    jobId: row.job_id,
    createdAt: row.created_at,
  };
}

/** The store the configuration asks for (the same database as Storage), not yet initialised. */
export async function createPredictionStore(config: Pick<FlockConfig, 'databaseUrl' | 'dataDir'>): Promise<PredictionStore> {
  if (config.databaseUrl && /^postgres(ql)?:\/\//i.test(config.databaseUrl)) {
    const { PostgresPredictions } = await import('./postgres-predictions.js');
    const url = new URL(config.databaseUrl);
    const schema = url.searchParams.get('schema') ?? undefined;
    url.searchParams.delete('schema');
    return new PostgresPredictions(url.toString(), schema);
  }
  const { SqlitePredictions } = await import('./sqlite-predictions.js');
  return new SqlitePredictions(join(config.dataDir, 'flock.db'));
}
