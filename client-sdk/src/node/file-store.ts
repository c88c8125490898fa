/**
 * Persists the client's key pair, state and models as files in a directory (Node):
 * `device-key.json` (the private key as a JWK, mode 0600: it is the device's identity),
 * `state.json`, and per model slot a `<slot>.json` manifest (topology, weight specs, metadata)
 * naming a `<slot>-<id>.bin` weight file. Every write goes to a temporary file that is fsynced and renamed over the old one,
 * and a slot's manifest is replaced only after its new weight file is durable, so a crash at any
 * point leaves the previous or the new model, never a mix.
 */
import { randomUUID, webcrypto } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { StoredModel } from '../core/model.js';
import { MODEL_SLOTS, type ClientState, type ModelSlot, type ModelStore } from '../core/store.js';

interface ModelManifest {
  version: number | null;
  topology: unknown;
  weightSpecs: StoredModel['weightSpecs'];
  fineTunedEpochs: number;
  savedAt: number;
  weightsFile: string;
  byteLength: number;
}

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const KEY_FILE = 'device-key.json';

async function writeFileDurably(path: string, data: string | Uint8Array, mode = 0o666): Promise<void> {
  const temporary = `${path}.${randomUUID()}.tmp`;
  const handle = await open(temporary, 'w', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, path);
}

async function readIfExists(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

export class FileModelStore implements ModelStore {
  /** The private key is written to a file, so it must be extractable. */
  readonly exportsPrivateKey = true;
  private ready: Promise<void> | null = null;
  /** Writes run one at a time, so two saves of a slot cannot delete each other's weight file. */
  private writes: Promise<unknown> = Promise.resolve();

  constructor(readonly directory: string) {}

  /** Imports the stored private JWK (non-extractable) and its public half. */
  async loadKeyPair(): Promise<CryptoKeyPair | null> {
    const text = await readIfExists(join(this.directory, KEY_FILE));
    if (!text) return null;
    const { kty, crv, x, y, d } = JSON.parse(text.toString('utf8')) as JsonWebKey;
    const [privateKey, publicKey] = await Promise.all([
      webcrypto.subtle.importKey('jwk', { kty, crv, x, y, d }, KEY_ALGORITHM, false, ['sign']),
      webcrypto.subtle.importKey('jwk', { kty, crv, x, y }, KEY_ALGORITHM, true, ['verify']),
    ]);
    return { privateKey, publicKey };
  }

  saveKeyPair(keys: CryptoKeyPair): Promise<void> {
    return this.serialize(async () => {
      const { kty, crv, x, y, d } = await webcrypto.subtle.exportKey('jwk', keys.privateKey);
      await this.ensureDirectory();
      await writeFileDurably(join(this.directory, KEY_FILE), JSON.stringify({ kty, crv, x, y, d }), 0o600);
    });
  }

  async loadState(): Promise<ClientState | null> {
    const text = await readIfExists(join(this.directory, 'state.json'));
    return text ? (JSON.parse(text.toString('utf8')) as ClientState) : null;
  }

  saveState(state: ClientState): Promise<void> {
    const text = JSON.stringify(state);
    return this.serialize(async () => {
      await this.ensureDirectory();
      await writeFileDurably(join(this.directory, 'state.json'), text);
    });
  }

  async loadModel(slot: ModelSlot): Promise<StoredModel | null> {
    const text = await readIfExists(this.manifestPath(slot));
    if (!text) return null;
    const manifest = JSON.parse(text.toString('utf8')) as ModelManifest;
    const bytes = await readIfExists(join(this.directory, manifest.weightsFile));
    if (!bytes || bytes.byteLength !== manifest.byteLength) return null; // damaged: refetch rather than fail
    return {
      version: manifest.version,
      topology: manifest.topology,
      weightSpecs: manifest.weightSpecs,
      weights: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
      fineTunedEpochs: manifest.fineTunedEpochs,
      savedAt: manifest.savedAt,
    };
  }

  saveModel(slot: ModelSlot, model: StoredModel): Promise<void> {
    checkSlot(slot);
    return this.serialize(() => this.writeModel(slot, model));
  }

  deleteModel(slot: ModelSlot): Promise<void> {
    checkSlot(slot);
    return this.serialize(async () => {
      await rm(this.manifestPath(slot), { force: true });
      await this.removeStaleWeights(slot, null);
    });
  }

  private serialize(write: () => Promise<void>): Promise<void> {
    const result = this.writes.then(write);
    this.writes = result.catch(() => undefined);
    return result;
  }

  private async writeModel(slot: ModelSlot, model: StoredModel): Promise<void> {
    await this.ensureDirectory();
    const weightsFile = `${slot}-${randomUUID()}.bin`;
    await writeFileDurably(join(this.directory, weightsFile), new Uint8Array(model.weights));
    const manifest: ModelManifest = {
      version: model.version,
      topology: model.topology,
      weightSpecs: model.weightSpecs,
      fineTunedEpochs: model.fineTunedEpochs,
      savedAt: model.savedAt,
      weightsFile,
      byteLength: model.weights.byteLength,
    };
    await writeFileDurably(this.manifestPath(slot), JSON.stringify(manifest));
    await this.removeStaleWeights(slot, weightsFile);
  }

  private manifestPath(slot: ModelSlot): string {
    return join(this.directory, `${slot}.json`);
  }

  private ensureDirectory(): Promise<void> {
    this.ready ??= mkdir(this.directory, { recursive: true }).then(() => undefined);
    return this.ready;
  }

  /** Deletes the slot's weight files other than `keep` (left by replaced versions or crashes). */
  private async removeStaleWeights(slot: ModelSlot, keep: string | null): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.directory);
    } catch {
      return;
    }
    const stale = names.filter((name) => name.startsWith(`${slot}-`) && name.endsWith('.bin') && name !== keep);
    await Promise.all(stale.map((name) => rm(join(this.directory, name), { force: true })));
  }
}

function checkSlot(slot: ModelSlot): void {
  if (!MODEL_SLOTS.includes(slot)) throw new Error(`unknown model slot '${String(slot)}'`);
}
