/** ModelsService without HTTP: an initial model registered from a model.json on disk, and register() validation. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { FlockEventBus } from '../../src/events/event-bus.js';
import { ensureTfBackend } from '../../src/models/default-model.js';
import { MetricsService } from '../../src/metrics/metrics.service.js';
import { ModelsService } from '../../src/models/models.service.js';
import { TestSetEvaluationService } from '../../src/models/test-set-evaluation.service.js';
import { modelToParts, readModelFromDisk } from '../../src/models/tfjs-format.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';

const dir = mkdtempSync(join(tmpdir(), 'flock-initial-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(async () => {
  await ensureTfBackend();
});

function service(dataDir: string, initialModelPath: string | null): { models: ModelsService; storage: SqliteStorage } {
  const config = loadConfig(
    {},
    { dataDir, initialModelPath, operatorToken: 'operator-token-0123456789', clientToken: 'client-token-0123456789ab', testSet: 'none' },
  );
  const storage = new SqliteStorage(join(dataDir, 'flock.db'));
  return { models: new ModelsService(storage, config, new TestSetEvaluationService(config, storage, new MetricsService(), new FlockEventBus())), storage };
}

/** Writes a model the way tfjs-node's file:// handler does, with the weights split over two shards. */
async function writeModelDir(model: tf.LayersModel, target: string): Promise<Uint8Array> {
  const parts = await modelToParts(model);
  const half = 1024;
  writeFileSync(join(target, 'group1-shard1of2.bin'), parts.weights.subarray(0, half));
  writeFileSync(join(target, 'group1-shard2of2.bin'), parts.weights.subarray(half));
  writeFileSync(
    join(target, 'model.json'),
    JSON.stringify({
      format: 'layers-model',
      generatedBy: 'test',
      convertedBy: null,
      modelTopology: parts.topology,
      weightsManifest: [{ paths: ['group1-shard1of2.bin', 'group1-shard2of2.bin'], weights: parts.weightSpecs }],
    }),
  );
  return parts.weights;
}

describe('initial model from config.initialModelPath', () => {
  it('registers the model.json and its weight shards as version 1', async () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 300 }), tf.layers.dense({ units: 2 })] });
    const weights = await writeModelDir(model, dir);
    model.dispose();
    const dataDir = mkdtempSync(join(dir, 'data-'));
    const { models, storage } = service(dataDir, join(dir, 'model.json'));
    await storage.init();
    try {
      const meta = await models.ensureInitialModel();
      expect(meta).toMatchObject({ version: 1, source: 'initial', parentVersion: null, numParameters: 4 * 300 + 300 + 300 * 2 + 2 });
      expect(meta.metrics).toEqual({ initialModel: 'file' });
      expect(Buffer.from(await models.getWeightBytes(1)).equals(Buffer.from(weights))).toBe(true);
      expect(await models.ensureInitialModel()).toEqual(meta);
    } finally {
      await storage.close();
    }
  });

  it('fails start-up clearly for a missing or broken model.json', async () => {
    const dataDir = mkdtempSync(join(dir, 'data-'));
    const { models, storage } = service(dataDir, join(dir, 'missing.json'));
    await storage.init();
    try {
      await expect(models.ensureInitialModel()).rejects.toThrow(/cannot read .*missing\.json/);
      writeFileSync(
        join(dir, 'bad.json'),
        JSON.stringify({ modelTopology: {}, weightsManifest: [{ paths: ['nope.bin'], weights: [{ name: 'w', shape: [1], dtype: 'float32' }] }] }),
      );
      await expect(readModelFromDisk(join(dir, 'bad.json'))).rejects.toThrow(/cannot read weight file/);
      expect(await storage.latestModelVersion()).toBeNull();
    } finally {
      await storage.close();
    }
  });
});

describe('ModelsService.register', () => {
  it('validates specs and bytes before storing', async () => {
    const dataDir = mkdtempSync(join(dir, 'data-'));
    const { models, storage } = service(dataDir, null);
    await storage.init();
    try {
      const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2 })] });
      const parts = await modelToParts(model);
      model.dispose();
      await expect(models.register(parts.topology, parts.weightSpecs, new Float32Array([1, 2, 3]))).rejects.toThrow(/bytes/);
      await expect(models.register(parts.topology, [{ name: 'x', shape: [2], dtype: 'float16' }], new Float32Array(2))).rejects.toThrow(/float32/);
      await expect(models.register(parts.topology, 'nonsense', new Float32Array(2))).rejects.toThrow(/invalid weight specs/);
      const values = new Float32Array(parts.weights.buffer.slice(0));
      values[3] = Number.POSITIVE_INFINITY;
      await expect(models.register(parts.topology, parts.weightSpecs, values)).rejects.toThrow(/finite/);
      expect(await models.current()).toBeNull();
      const meta = await models.register(parts.topology, parts.weightSpecs, new Float32Array(parts.weights.buffer.slice(0)), { note: 'ok' });
      expect(meta).toMatchObject({ version: 1, source: 'registered', parentVersion: null, numParameters: 8, metrics: { note: 'ok' } });
      await expect(models.rollback(1)).rejects.toThrow(/already the current version/);
    } finally {
      await storage.close();
    }
  });
});
