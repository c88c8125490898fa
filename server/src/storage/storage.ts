import type { EvaluationReport, RoundStatus, WeightSpec } from '@flock/client-sdk/protocol';
import type { LocalEvaluationSummary, ModelVersionMeta, RoundRecord, RoundTransition } from '../contract/index.js';

/** A full version record without its weight bytes (those are fetched separately, they are large). */
export interface ModelVersionRecord extends ModelVersionMeta {
  /** `modelTopology` of the TensorFlow.js layers format (Keras JSON). */
  topology: unknown;
  weightSpecs: WeightSpec[];
  /** Opaque per-strategy server state (e.g. FedAdam moments), persisted with the version it produced. */
  strategyState: Uint8Array | null;
}

export type NewModelVersion = Omit<ModelVersionRecord, 'version' | 'createdAt'>;

export type RoundPatch = Partial<Pick<RoundRecord, 'status' | 'metrics' | 'committedVersion' | 'error' | 'endedAt'>> & {
  /** Replaces only `metrics.localEvaluation` (read and written in one transaction). */
  localEvaluation?: LocalEvaluationSummary;
};

/** The numbers a device's evaluation report carries, as stored (no examples, no predictions). */
export type EvaluationNumbers = Omit<EvaluationReport, 'modelVersion'>;

/** One device's report on one version: unique per (modelVersion, clientId). */
export interface EvaluationReportRecord extends EvaluationNumbers {
  modelVersion: number;
  /** The device's pseudonymous client id (the only thing stored about the device). */
  clientId: string;
}

/**
 * Persistence of model versions, rounds and devices' evaluation reports. Implementations: SQLite
 * (embedded default) and PostgreSQL. Every method that writes is durable when its promise
 * resolves: a kill -9 right after never loses it.
 */
export interface Storage {
  /** Creates tables if needed. */
  init(): Promise<void>;
  close(): Promise<void>;

  /** Inserts a version numbered max+1; weights are the concatenated float32 bytes in weightSpecs order. */
  insertModelVersion(version: NewModelVersion, weights: Uint8Array): Promise<ModelVersionMeta>;
  latestModelVersion(): Promise<ModelVersionMeta | null>;
  listModelVersions(): Promise<ModelVersionMeta[]>;
  getModelVersion(version: number): Promise<ModelVersionRecord | null>;
  /** The metadata alone (no topology, specs or weights). */
  getModelVersionMeta(version: number): Promise<ModelVersionMeta | null>;
  getModelWeights(version: number): Promise<Uint8Array | null>;
  /** Merges numbers into a version's metrics (used for evaluation results that arrive later). */
  updateModelMetrics(version: number, metrics: Record<string, number | string | null>): Promise<void>;

  createRound(round: RoundRecord): Promise<void>;
  updateRound(id: string, patch: RoundPatch): Promise<RoundRecord>;
  getRound(id: string): Promise<RoundRecord | null>;
  /** Newest first. */
  listRounds(options?: { limit?: number; offset?: number }): Promise<RoundRecord[]>;
  /** Rounds whose status is one of the given ones (used at start-up to abort those in flight). */
  findRoundsByStatus(statuses: readonly RoundStatus[]): Promise<RoundRecord[]>;
  appendTransition(transition: RoundTransition): Promise<void>;
  listTransitions(roundId: string): Promise<RoundTransition[]>;

  /**
   * Stores a device's evaluation report. Resolves false, writing nothing, when this device already
   * reported this version (the unique key decides, also across processes and restarts); throws
   * RecordNotFoundError when the version does not exist.
   */
  insertEvaluationReport(report: EvaluationReportRecord): Promise<boolean>;
  /** The numbers of every report on a version (without device ids), in no particular order. */
  listEvaluationReports(version: number): Promise<EvaluationNumbers[]>;

  /**
   * Atomically inserts the round's new model version and marks the round committed, so a crash
   * leaves either both or neither. `fence`: the round lease's fencing token (round-lease.ts); the
   * transaction fails with FencedOffError, writing nothing, when the lease has since been taken by
   * another process. null: no fencing (one process).
   */
  commitRound(
    roundId: string,
    version: NewModelVersion,
    weights: Uint8Array,
    patch: RoundPatch,
    transition: Omit<RoundTransition, 'to'>,
    fence?: number | null,
  ): Promise<{ model: ModelVersionMeta; round: RoundRecord }>;
}

/** Nest injection token for the Storage implementation. */
export const STORAGE = Symbol('STORAGE');
