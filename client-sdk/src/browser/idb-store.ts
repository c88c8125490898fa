/**
 * Persists the client's state and models in IndexedDB (via `idb`). A model and its metadata are one
 * record, written in one transaction, so a reload sees the previous or the new model, never a mix.
 */
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import { DEFAULT_DATABASE_NAME } from '../core/defaults.js';
import type { StoredModel } from '../core/model.js';
import { MODEL_SLOTS, type ClientState, type ModelSlot, type ModelStore } from '../core/store.js';

interface FlockDatabase extends DBSchema {
  state: { key: 'client'; value: ClientState };
  models: { key: ModelSlot; value: StoredModel };
}

export class IndexedDbModelStore implements ModelStore {
  private database: Promise<IDBPDatabase<FlockDatabase>> | null = null;

  /** One database per name: use different names for several clients in one origin. */
  constructor(readonly databaseName: string = DEFAULT_DATABASE_NAME) {}

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
    this.database ??= openDB<FlockDatabase>(this.databaseName, 1, {
      upgrade(database) {
        database.createObjectStore('state');
        database.createObjectStore('models');
      },
    });
    return this.database;
  }
}
