/**
 * Persistence of the device's federated state: its key pair (its identity), the personalized model
 * `predict()` uses (with the global version it is based on), the last global model it fetched (so a
 * round on that version needs no download), and its last local evaluation. Implementations:
 * MemoryModelStore (here), FileModelStore (Node), IndexedDbModelStore (browsers).
 */
import type { EvaluationReport } from '../protocol/model-messages.js';
import type { PersonalizationPlan } from '../protocol/personalization.js';
import type { StoredModel } from './model.js';
import type { CryptoKeyPairLike } from './runtime.js';

/**
 * `personal`: the model predict() uses. `global`: the latest global model fetched, as received.
 * `residual`: top-k error feedback's leftovers (weight-shaped values, `version` the base they were
 * computed against, no topology; see compress-delta.ts).
 */
export const MODEL_SLOTS = ['personal', 'global', 'residual'] as const;
export type ModelSlot = (typeof MODEL_SLOTS)[number];

export interface ClientState {
  /** The last global version tested locally (adopted or not), so it is not tested twice. */
  lastEvaluatedVersion: number | null;
  /** What the last local test reported. */
  lastEvaluation: EvaluationReport | null;
  /** The personalization the latest round's plan stated (it overrides the app's until the next plan); absent: none yet. */
  planPersonalization?: PersonalizationPlan | null;
}

/** Where the device's key pair lives: the same pair after a restart is the same device. */
export interface KeyStore {
  /** The stored key pair (WebCrypto CryptoKeys), or null before the first start. */
  loadKeyPair(): Promise<CryptoKeyPairLike | null>;
  /** Keeps the key pair; durable when the promise resolves. */
  saveKeyPair(keys: CryptoKeyPairLike): Promise<void>;
  /**
   * True when `saveKeyPair` writes the private key out (the file store), so it must be
   * extractable; stores that keep CryptoKeys themselves (IndexedDB, memory) get a non-extractable one.
   */
  readonly exportsPrivateKey?: boolean;
}

export interface ModelStore extends KeyStore {
  loadState(): Promise<ClientState | null>;
  saveState(state: ClientState): Promise<void>;
  loadModel(slot: ModelSlot): Promise<StoredModel | null>;
  /** Replaces the slot's model; durable when the promise resolves. */
  saveModel(slot: ModelSlot, model: StoredModel): Promise<void>;
  deleteModel(slot: ModelSlot): Promise<void>;
  /** Releases resources (file handles, database connections). */
  close?(): Promise<void>;
}

/** Deep copies, so that callers and the store never share mutable state. */
export function cloneState(state: ClientState): ClientState {
  return JSON.parse(JSON.stringify(state)) as ClientState;
}

export function cloneModel(model: StoredModel): StoredModel {
  return {
    version: model.version,
    topology: JSON.parse(JSON.stringify(model.topology)) as unknown,
    weightSpecs: model.weightSpecs.map((spec) => ({ name: spec.name, shape: [...spec.shape], dtype: spec.dtype })),
    weights: model.weights.slice(0),
    fineTunedEpochs: model.fineTunedEpochs,
    savedAt: model.savedAt,
  };
}

/** Keeps everything in memory: state is lost with the process (tests, ephemeral clients). */
export class MemoryModelStore implements ModelStore {
  private state: ClientState | null = null;
  private keys: CryptoKeyPairLike | null = null;
  private readonly models = new Map<ModelSlot, StoredModel>();

  async loadKeyPair(): Promise<CryptoKeyPairLike | null> {
    return this.keys;
  }

  /** CryptoKeys are immutable: kept as they are. */
  async saveKeyPair(keys: CryptoKeyPairLike): Promise<void> {
    this.keys = { publicKey: keys.publicKey, privateKey: keys.privateKey };
  }

  async loadState(): Promise<ClientState | null> {
    return this.state ? cloneState(this.state) : null;
  }

  async saveState(state: ClientState): Promise<void> {
    this.state = cloneState(state);
  }

  async loadModel(slot: ModelSlot): Promise<StoredModel | null> {
    const model = this.models.get(slot);
    return model ? cloneModel(model) : null;
  }

  async saveModel(slot: ModelSlot, model: StoredModel): Promise<void> {
    this.models.set(slot, cloneModel(model));
  }

  async deleteModel(slot: ModelSlot): Promise<void> {
    this.models.delete(slot);
  }
}
