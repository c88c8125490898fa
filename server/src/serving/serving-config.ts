import type { ServingAction } from '../contract/index.js';

/** Deviation thresholds of a new version against the previous one, and what crossing one does. */
export interface ServingMonitorConfig {
  /** Rows a version must have predicted before its distribution is compared (FLOCK_SERVING_MIN_SAMPLES). */
  minSamples: number;
  /** Population stability index of predicted classes above which the version deviates (null: not checked). */
  psiThreshold: number | null;
  /** Jensen-Shannon divergence (base 2, 0..1) of predicted classes above which it deviates. */
  jsThreshold: number | null;
  /** Shadow mode: share of rows on which the new and the previous version disagree. */
  disagreementThreshold: number | null;
  /** Accuracy on labelled feedback below which it deviates (checked from minSamples / 10 labels on). */
  minAccuracy: number | null;
  actions: ServingAction[];
  webhookUrl: string | null;
  /** Share of requests also run on the previous version (shadow mode); 0: off. */
  shadowFraction: number;
}

/** The V2 inference service: credentials, worker threads, dynamic batching, limits, log. */
export interface ServingConfig {
  /** Bearer keys of the inference API (FLOCK_INFERENCE_KEYS, or generated into the data dir). */
  inferenceKeys: string[];
  inferenceKeySource: string;
  workers: number;
  /** Rows per batch at most; 1 turns dynamic batching off. */
  maxBatchSize: number;
  /** How long the oldest queued request may wait for a batch to fill while a worker is free. */
  maxQueueDelayMs: number;
  /** Requests waiting at most; more are answered 503. */
  maxQueue: number;
  maxBodyBytes: number;
  /** The infer route is answered by a node:http listener in front of express (v2-fast-path.ts); false: by express. */
  fastPath: boolean;
  log: boolean;
  logFlushMs: number;
  logRetentionDays: number;
  logInputs: boolean;
  /** Answers wait for the commit of their log record (group commit every logFlushMs). */
  logDurable: boolean;
  monitor: ServingMonitorConfig;
}
