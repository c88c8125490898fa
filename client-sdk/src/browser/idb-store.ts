/**
 * Persists the client's key pair, state and models in IndexedDB (via `idb`). A model and its
 * metadata are one record, written in one transaction, so a reload sees the previous or the new
 * model, never a mix. The key pair is stored as the CryptoKeys themselves (structured clone keeps
 * them non-extractable): script on the page can use the private key but never read it out.
 */
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import { DEFAULT_DATABASE_NAME } from '../core/defaults.js';
import type { StoredModel } from '../core/model.js';
import { MODEL_SLOTS, type ClientState, type ModelSlot, type ModelStore } from '../core/store.js';

interface FlockDatabase extends DBSchema {
  state: { key: 'client'; value: ClientState };
  models: { key: ModelSlot; value: StoredModel };
  keys: { key: 'device'; value: CryptoKeyPair };
}

/** 2 added the `keys` store (device identity). */
const DATABASE_VERSION = 2;

export class IndexedDbModelStore implements ModelStore {
  private database: Promise<IDBPDatabase<FlockDatabase>> | null = null;

  /** One database per name: use different names for several clients in one origin. */
  constructor(readonly databaseName: string = DEFAULT_DATABASE_NAME) {}

  async loadKeyPair(): Promise<CryptoKeyPair | null> {
    return (await (await this.db()).get('keys', 'device')) ?? null;
  }

  async saveKeyPair(keys: CryptoKeyPair): Promise<void> {
    await (await this.db()).put('keys', { publicKey: keys.publicKey, privateKey: keys.privateKey }, 'device');
  }

  async loadState(): Promise<ClientState | null> {
    return (await (await this.db()).get('state', 'client')) ?? null;
  }

  async saveState(state: ClientState): Promise<void> {
    await (await this.db()).put('state', state, 'client');
  }

  async loadModel(slot: ModelSlot): Promise<StoredModel | null> {
    return (await (await this.db()).get('models', slot)) ?? null;
  }

  async saveModel(slot: ModelSlot, model: StoredModel): Promise<void> {
    if (!MODEL_SLOTS.includes(slot)) throw new Error(`unknown model slot '${String(slot)}'`);
    // Structured clone copies the ArrayBuffer; the topology must be plain JSON.
    await (await this.db()).put('models', { ...model, topology: JSON.parse(JSON.stringify(model.topology)) as unknown }, slot);
  }

  async deleteModel(slot: ModelSlot): Promise<void> {
    await (await this.db()).delete('models', slot);
  }

  async close(): Promise<void> {
    const database = this.database;
    this.database = null;
    (await database)?.close();
  }

  private db(): Promise<IDBPDatabase<FlockDatabase>> {
    this.database ??= openDB<FlockDatabase>(this.databaseName, DATABASE_VERSION, {
      upgrade(database, oldVersion) {
        if (oldVersion < 1) {
          database.createObjectStore('state');
          database.createObjectStore('models');
        }
        if (oldVersion < 2) database.createObjectStore('keys');
      },
    });
    return this.database;
  }
}
