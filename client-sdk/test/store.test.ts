import 'fake-indexeddb/auto';
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IndexedDbModelStore } from '../src/browser/idb-store.js';
import { DeviceIdentity } from '../src/core/identity.js';
import {
  base64url,
  MemoryModelStore,
  proofMessage,
  RESIDUAL_MAX_AGE,
  storedResidual,
  usableResidual,
  type ClientState,
  type ModelStore,
  type StoredModel,
} from '../src/index.js';
import { FileModelStore } from '../src/node/file-store.js';

function model(version: number | null, values: number[]): StoredModel {
  return {
    version,
    topology: { class_name: 'Sequential', config: { name: `m${version}`, layers: [] } },
    weightSpecs: [{ name: 'dense/kernel', shape: [values.length], dtype: 'float32' }],
    weights: Float32Array.from(values).buffer,
    fineTunedEpochs: 2,
    savedAt: 1_700_000_000_000,
  };
}

const state: ClientState = {
  lastEvaluatedVersion: 3,
  lastEvaluation: {
    modelVersion: 3,
    numExamples: 40,
    globalLoss: 0.4,
    globalAccuracy: 0.9,
    personalLoss: 0.5,
    personalAccuracy: 0.85,
    adopted: true,
  },
};

const directories: string[] = [];
afterAll(async () => {
  await Promise.all(directories.map((directory) => rm(directory, { recursive: true, force: true })));
});

interface StoreKind {
  name: string;
  /** Opens the same persistent location each time it is called with the same key. */
  open(key: string): Promise<ModelStore>;
  persistent: boolean;
}

const memoryStores = new Map<string, MemoryModelStore>();
const kinds: StoreKind[] = [
  {
    name: 'MemoryModelStore',
    persistent: false,
    open: async (key) => {
      // Memory persists only within the instance: the same key returns the same instance.
      if (!memoryStores.has(key)) memoryStores.set(key, new MemoryModelStore());
      return memoryStores.get(key)!;
    },
  },
  {
    name: 'FileModelStore',
    persistent: true,
    open: async (key) => {
      const directory = join(tmpdir(), `flock-store-test-${key}`);
      if (!directories.includes(directory)) {
        await rm(directory, { recursive: true, force: true });
        directories.push(directory);
      }
      return new FileModelStore(join(directory, 'nested', 'dir'));
    },
  },
  { name: 'IndexedDbModelStore (fake-indexeddb)', persistent: true, open: async (key) => new IndexedDbModelStore(`flock-test-${key}`) },
];

describe.each(kinds)('$name', (kind) => {
  const key = (suffix: string): string => `${kind.name.split(' ')[0]}-${suffix}-${process.pid}`;

  it('starts empty', async () => {
    const store = await kind.open(key('empty'));
    expect(await store.loadState()).toBeNull();
    expect(await store.loadModel('personal')).toBeNull();
    expect(await store.loadModel('global')).toBeNull();
    expect(await store.loadKeyPair()).toBeNull();
    await store.close?.();
  });

  it('round-trips state and models, slot by slot', async () => {
    const store = await kind.open(key('roundtrip'));
    await store.saveState(state);
    await store.saveModel('personal', model(3, [1, 2, 3]));
    await store.saveModel('global', model(4, [4, 5]));
    expect(await store.loadState()).toEqual(state);
    const personal = (await store.loadModel('personal'))!;
    expect(personal).toMatchObject({ version: 3, fineTunedEpochs: 2, savedAt: 1_700_000_000_000, weightSpecs: model(3, [1, 2, 3]).weightSpecs });
    expect(personal.weights).toBeInstanceOf(ArrayBuffer);
    expect(Array.from(new Float32Array(personal.weights))).toEqual([1, 2, 3]);
    expect(personal.topology).toEqual(model(3, []).topology);
    expect(Array.from(new Float32Array((await store.loadModel('global'))!.weights))).toEqual([4, 5]);
    await store.close?.();
  });

  it('replaces and deletes a slot', async () => {
    const store = await kind.open(key('replace'));
    await store.saveModel('personal', model(1, [1]));
    await store.saveModel('personal', model(2, [2, 2]));
    const loaded = (await store.loadModel('personal'))!;
    expect(loaded.version).toBe(2);
    expect(Array.from(new Float32Array(loaded.weights))).toEqual([2, 2]);
    await store.deleteModel('personal');
    expect(await store.loadModel('personal')).toBeNull();
    await store.close?.();
  });

  it('does not share mutable data with callers', async () => {
    const store = await kind.open(key('copies'));
    const saved = model(1, [1, 2]);
    await store.saveModel('personal', saved);
    new Float32Array(saved.weights)[0] = 99;
    const loaded = (await store.loadModel('personal'))!;
    expect(new Float32Array(loaded.weights)[0]).toBe(1);
    new Float32Array(loaded.weights)[1] = 99;
    expect(new Float32Array((await store.loadModel('personal'))!.weights)[1]).toBe(2);
    await store.close?.();
  });
});

describe.each(kinds.filter((kind) => kind.persistent))('$name persistence', (kind) => {
  const key = (suffix: string): string => `${kind.name.split(' ')[0]}-${suffix}-${process.pid}`;

  it('survives a restart (a new instance on the same location)', async () => {
    const first = await kind.open(key('restart'));
    await first.saveState(state);
    await first.saveModel('personal', model(7, [7, 8, 9]));
    await first.close?.();
    const second = await kind.open(key('restart'));
    expect(await second.loadState()).toEqual(state);
    expect(Array.from(new Float32Array((await second.loadModel('personal'))!.weights))).toEqual([7, 8, 9]);
    await second.close?.();
  });

  it("keeps top-k error feedback's residual across a restart, and it still fits only the same shapes and recent versions", async () => {
    const specs = [{ name: 'dense/kernel', shape: [2, 2], dtype: 'float32' as const }];
    const first = await kind.open(key('residual'));
    await first.saveModel('residual', storedResidual([Float32Array.of(0.5, -0.25, 0, 1e-3)], specs, 12));
    await first.close?.();
    const second = await kind.open(key('residual'));
    const stored = await second.loadModel('residual');
    expect(stored?.version).toBe(12);
    expect(usableResidual(stored, specs, 13)?.map((tensor) => Array.from(tensor))).toEqual([[0.5, -0.25, 0, Math.fround(1e-3)]]);
    expect(usableResidual(stored, [{ name: 'dense/kernel', shape: [4, 1], dtype: 'float32' }], 13)).toBeNull();
    expect(usableResidual(stored, specs, 12 + RESIDUAL_MAX_AGE + 1)).toBeNull();
    await second.close?.();
  });

  it('keeps the device key across a restart: the same client id, and its signatures verify with the first public key', async () => {
    const first = await kind.open(key('identity'));
    const made = await DeviceIdentity.load(first);
    await first.close?.();
    const second = await kind.open(key('identity'));
    const loaded = await DeviceIdentity.load(second);
    expect(loaded.clientId).toBe(made.clientId);
    expect(loaded.publicKey).toEqual(made.publicKey);
    const challenge = randomBytes(32);
    const signature = await loaded.prove(challenge);
    const publicKey = createPublicKey({ key: made.publicKey, format: 'jwk' });
    expect(verify('sha256', proofMessage(challenge, made.clientId), { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature)).toBe(true);
    expect(verify('sha256', proofMessage(randomBytes(32), made.clientId), { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature)).toBe(false);
    // Once loaded, the private key cannot be read out (IndexedDB keeps the non-extractable CryptoKey; the file store imports it so).
    expect((await second.loadKeyPair())!.privateKey.extractable).toBe(false);
    await second.close?.();
  });
});

describe('device identity', () => {
  it('makes a new key in an empty store, and another store makes another identity', async () => {
    const store = new MemoryModelStore();
    const identity = await DeviceIdentity.load(store);
    expect(identity.clientId).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await DeviceIdentity.load(store)).clientId).toBe(identity.clientId);
    expect((await DeviceIdentity.load(new MemoryModelStore())).clientId).not.toBe(identity.clientId);
    expect((await store.loadKeyPair())!.privateKey.extractable).toBe(false);
  });

  it('derives the client id as the RFC 7638 thumbprint of the public key (checked with node:crypto)', async () => {
    const store = new MemoryModelStore();
    const identity = await DeviceIdentity.load(store);
    const { x, y } = identity.publicKey;
    expect(identity.clientId).toBe(createHash('sha256').update(`{"crv":"P-256","kty":"EC","x":"${x}","y":"${y}"}`).digest('base64url'));
  });
});

describe('base64url', () => {
  it('matches Buffer for every length mod 3', () => {
    for (let length = 0; length < 40; length++) {
      const bytes = randomBytes(length);
      expect(base64url(bytes)).toBe(bytes.toString('base64url'));
    }
  });
});

describe('MemoryModelStore specifics', () => {
  it('keeps nothing across instances', async () => {
    const first = new MemoryModelStore();
    await first.saveState(state);
    expect(await new MemoryModelStore().loadState()).toBeNull();
  });
});

describe('FileModelStore specifics', () => {
  it('keeps one weight file per slot and no temporary files', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'flock-file-store-'));
    directories.push(directory);
    const store = new FileModelStore(directory);
    await Promise.all([store.saveModel('personal', model(1, [1])), store.saveModel('personal', model(2, [2])), store.saveState(state)]);
    await store.saveModel('global', model(5, [5]));
    const files = (await readdir(directory)).sort();
    expect(files.filter((name) => name.endsWith('.tmp'))).toEqual([]);
    expect(files.filter((name) => name.startsWith('personal-') && name.endsWith('.bin'))).toHaveLength(1);
    expect(files).toEqual(expect.arrayContaining(['personal.json', 'global.json', 'state.json']));
    // Writes are serialized: the last save wins.
    expect((await store.loadModel('personal'))!.version).toBe(2);
  });
});
