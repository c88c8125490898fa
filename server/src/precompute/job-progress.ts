/** Pure: a precompute job's record before it runs and after each committed batch, and its throughput. */
import type { PrecomputeJob, PrecomputeRejection } from '../contract/index.js';

/** Rejected rows kept with their line and message in the job record (the rest are only counted). */
export const MAX_REJECTION_SAMPLES = 20;

/** What one batch did: where the input stands after it, what it stored and what it refused. */
export interface BatchStep {
  bytesDone: number;
  linesDone: number;
  stored: number;
  rejections: readonly PrecomputeRejection[];
  /** Running time the batch adds. */
  activeMs: number;
  at: string;
}

/** Lines consumed per second of running time (null before any). */
export function rowsPerSecond(linesDone: number, activeMs: number): number | null {
  return activeMs > 0 ? linesDone / (activeMs / 1000) : null;
}

export function advanceJob(job: PrecomputeJob, step: BatchStep): PrecomputeJob {
  const rejected = { ...job.rejected };
  for (const { reason } of step.rejections) rejected[reason] = (rejected[reason] ?? 0) + 1;
  const room = MAX_REJECTION_SAMPLES - job.rejectionSamples.length;
  const activeMs = job.activeMs + step.activeMs;
  return {
    ...job,
    bytesDone: step.bytesDone,
    linesDone: step.linesDone,
    rowsStored: job.rowsStored + step.stored,
    rowsRejected: job.rowsRejected + step.rejections.length,
    rejected,
    rejectionSamples: room > 0 ? [...job.rejectionSamples, ...step.rejections.slice(0, room)] : job.rejectionSamples,
    activeMs,
    rowsPerSecond: rowsPerSecond(step.linesDone, activeMs),
    updatedAt: step.at,
  };
}

/** A job's state before it has run: queued at `at`, nothing read, stored or refused. */
export function queuedProgress(at: string) {
  return {
    status: 'queued',
    bytesDone: 0,
    linesDone: 0,
    rowsStored: 0,
    rowsRejected: 0,
    rejected: {},
    rejectionSamples: [],
    activeMs: 0,
    rowsPerSecond: null,
    error: null,
    createdAt: at,
    updatedAt: at,
    finishedAt: null,
  } satisfies Partial<PrecomputeJob>;
}
