import type { RoundStatus, WeightSpec } from '@flock/client-sdk/protocol';
import type { ModelVersionMeta, RoundRecord, RoundTransition } from '../contract/index.js';

/** A full version record without its weight bytes (those are fetched separately, they are large). */
export interface ModelVersionRecord extends ModelVersionMeta {
  /** `modelTopology` of the TensorFlow.js layers format (Keras JSON). */
  topology: unknown;
  weightSpecs: WeightSpec[];
  /** Opaque per-strategy server state (e.g. FedAdam moments), persisted with the version it produced. */
  strategyState: Uint8Array | null;
}

export type NewModelVersion = Omit<ModelVersionRecord, 'version' | 'createdAt'>;

export type RoundPatch = Partial<Pick<RoundRecord, 'status' | 'metrics' | 'committedVersion' | 'error' | 'endedAt'>>;

/**
 * Persistence of model versions and rounds. Implementations: SQLite (embedded default) and
 * PostgreSQL. Every method that writes is durable when its promise resolves: a kill -9 right after
 * never loses it.
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
   * Atomically inserts the round's new model version and marks the round committed, so a crash
   * leaves either both or neither.
   */
  commitRound(
    roundId: string,
    version: NewModelVersion,
    weights: Uint8Array,
    patch: RoundPatch,
    transition: Omit<RoundTransition, 'to'>,
  ): Promise<{ model: ModelVersionMeta; round: RoundRecord }>;
}

/** Nest injection token for the Storage implementation. */
export const STORAGE = Symbol('STORAGE');
