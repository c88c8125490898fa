/**
 * The model registry end to end over HTTP: a minimal Nest app (config + StorageModule +
 * ModelsModule) on an ephemeral port, SQLite in a temp dir, the default 2NN trained on a small
 * slice of MNIST at start. tfjs itself loads versions with tf.loadLayersModel and registers them
 * with tf.io.http.
 */
import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Global, Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigModule } from '../../src/config/config.module.js';
import { loadConfig, type FlockConfig } from '../../src/config/config.js';
import { loadMnist, mnistTensors, sliceMnist } from '../../src/datasets/mnist.js';
import { ensureTfBackend } from '../../src/models/default-model.js';
import { MetricsService } from '../../src/metrics/metrics.service.js';
import { ModelsModule } from '../../src/models/models.module.js';
import { ModelsService } from '../../src/models/models.service.js';
import { loadLayersModelFromParts, modelToParts } from '../../src/models/tfjs-format.js';
import { StorageModule } from '../../src/storage/storage.module.js';
import { modelVersionDetailSchema, modelVersionMetaSchema, type ModelVersionMeta } from '../../src/contract/index.js';
import { noKeepAliveFetch } from '../../src/simulation/http-fetch.js';

const OPERATOR = 'operator-token-0123456789';
const CLIENT = 'client-token-0123456789ab';
const auth = (token: string) => ({ Authorization: `Bearer ${token}` });

// Decorators are applied by hand: test files are outside the tsconfig that enables experimentalDecorators.
class TestModule {}
Module({})(TestModule);
/** MetricsService (the models module records test-set accuracy in it) without its /metrics route. */
class MetricsServiceModule {}
Global()(MetricsServiceModule);
Module({ providers: [MetricsService], exports: [MetricsService] })(MetricsServiceModule);

const dataDir = mkdtempSync(join(tmpdir(), 'flock-models-'));
let app: INestApplication;
let url: string;
let models: ModelsService;
let config: FlockConfig;

beforeAll(async () => {
  await ensureTfBackend();
  config = loadConfig(
    {},
    {
      dataDir,
      operatorToken: OPERATOR,
      clientToken: CLIENT,
      defaultModelTrainExamples: 1000,
      maxUploadBytes: 2 * 1024 * 1024,
      testSet: 'none', // test/models/test-set.test.ts covers the centralized evaluation
    },
  );
  app = await NestFactory.create(
    { module: TestModule, imports: [ConfigModule.forRoot(config), StorageModule, MetricsServiceModule, ModelsModule] },
    { logger: false },
  );
  await app.listen(0, '127.0.0.1');
  url = `http://127.0.0.1:${((app.getHttpServer() as Server).address() as AddressInfo).port}`;
  models = app.get(ModelsService);
}, 120_000);

afterAll(async () => {
  await app?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function getJson<T>(path: string, token = OPERATOR): Promise<{ status: number; body: T }> {
  const response = await noKeepAliveFetch(`${url}${path}`, { headers: auth(token) });
  return { status: response.status, body: (await response.json()) as T };
}

async function post(path: string, token = OPERATOR, body?: FormData): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await noKeepAliveFetch(`${url}${path}`, { method: 'POST', headers: auth(token), body });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

function tinyModel(seed: number): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [784], units: 8, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed }) }),
      tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }),
    ],
  });
}

/** A multipart body like tf.io.http's, built by hand to send broken models. */
function upload(modelJson: unknown, weights: Uint8Array | null): FormData {
  const form = new FormData();
  form.append('model.json', new Blob([typeof modelJson === 'string' ? modelJson : JSON.stringify(modelJson)], { type: 'application/json' }), 'model.json');
  // slice(): the DOM's Blob type (these tests are checked with DOM typings) takes ArrayBuffer-backed bytes only.
  if (weights) form.append('model.weights.bin', new Blob([weights.slice()], { type: 'application/octet-stream' }), 'model.weights.bin');
  return form;
}

describe('initial model', () => {
  it('is the default 2NN, trained at start and stored as version 1', async () => {
    const { status, body } = await getJson<ModelVersionMeta[]>('/api/models');
    expect(status).toBe(200);
    expect(body).toHaveLength(1);
    expect(body[0]).toMatchObject({ version: 1, parentVersion: null, roundId: null, source: 'initial', numParameters: 199_210 });
    expect(body[0]!.metrics).toMatchObject({ initialModel: 'default-2nn', trainExamples: 1000, testExamples: 10_000, backend: 'wasm' });
    expect(body[0]!.metrics.testAccuracy).toBeGreaterThan(0.8);
    // Idempotent: no second version.
    expect((await models.ensureInitialModel()).version).toBe(1);
    expect(await models.list()).toHaveLength(1);
  });

  it('serves version details (no strategy state bytes in JSON)', async () => {
    const { status, body } = await getJson<Record<string, unknown>>('/api/models/current');
    expect(status).toBe(200);
    expect(body).toMatchObject({ version: 1, hasStrategyState: false, modelUrl: '/api/models/1/model.json' });
    expect(body).not.toHaveProperty('strategyState');
    expect((body.weightSpecs as unknown[]).length).toBe(6);
  });
});

describe('auth and parameter validation', () => {
  it('answers 401 without a token, and client tokens only read models', async () => {
    for (const path of ['/api/models', '/api/models/current', '/api/models/1/model.json', '/api/models/1/weights.bin']) {
      expect((await noKeepAliveFetch(`${url}${path}`)).status).toBe(401);
      expect((await noKeepAliveFetch(`${url}${path}`, { headers: auth('wrong-token-0123456789') })).status).toBe(401);
    }
    expect((await getJson('/api/models', CLIENT)).status).toBe(401);
    expect((await getJson('/api/models/1', CLIENT)).status).toBe(401);
    expect((await post('/api/models/1/rollback', CLIENT)).status).toBe(401);
    expect((await post('/api/models', CLIENT, upload({}, null))).status).toBe(401);
    expect((await noKeepAliveFetch(`${url}/api/models/1/model.json`, { headers: auth(CLIENT) })).status).toBe(200);
    expect((await noKeepAliveFetch(`${url}/api/models/1/weights.bin`, { headers: auth(CLIENT) })).status).toBe(200);
  });

  it('answers 400 for versions that are not positive integers and 404 for unknown ones', async () => {
    for (const bad of ['abc', '0', '-1', '1.5', '1e3', '01', '99999999999']) {
      const { status, body } = await getJson<{ message: string }>(`/api/models/${bad}`);
      expect(status, bad).toBe(400);
      expect(body.message).toMatch(/model version must be a positive integer or "current"/);
      expect((await noKeepAliveFetch(`${url}/api/models/${bad}/weights.bin`, { headers: auth(CLIENT) })).status).toBe(400);
    }
    expect((await post('/api/models/current/rollback')).status).toBe(400);
    expect((await getJson('/api/models/999')).status).toBe(404);
    expect((await noKeepAliveFetch(`${url}/api/models/999/model.json`, { headers: auth(CLIENT) })).status).toBe(404);
    expect((await noKeepAliveFetch(`${url}/api/models/999/weights.bin`, { headers: auth(CLIENT) })).status).toBe(404);
    expect((await post('/api/models/999/rollback')).status).toBe(404);
  });
});

describe('TensorFlow.js format', () => {
  it('serves raw weights as application/octet-stream, equal to the stored bytes', async () => {
    const response = await noKeepAliveFetch(`${url}/api/models/1/weights.bin`, { headers: auth(CLIENT) });
    expect(response.headers.get('content-type')).toBe('application/octet-stream');
    expect(response.headers.get('cache-control')).toContain('immutable');
    const bytes = new Uint8Array(await response.arrayBuffer());
    expect(bytes.byteLength).toBe(199_210 * 4);
    expect(Buffer.from(bytes).equals(Buffer.from(await models.getWeightBytes(1)))).toBe(true);
  });

  it("points the current model.json at the concrete version's weights", async () => {
    const response = await noKeepAliveFetch(`${url}/api/models/current/model.json`, { headers: auth(CLIENT) });
    expect(response.headers.get('cache-control')).toBe('no-cache');
    expect(response.headers.get('x-flock-model-version')).toBe('1');
    const json = (await response.json()) as { format: string; convertedBy: null; weightsManifest: { paths: string[] }[] };
    expect(json.format).toBe('layers-model');
    expect(json.convertedBy).toBeNull();
    expect(json.weightsManifest[0]!.paths).toEqual(['../1/weights.bin']);
  });

  it('loads with plain tf.loadLayersModel and predicts exactly what the stored weights predict', async () => {
    const loaded = await tf.loadLayersModel(`${url}/api/models/current/model.json`, { requestInit: { headers: auth(CLIENT) } });
    const record = await models.get(1);
    const reference = await loadLayersModelFromParts({ topology: record.topology, weightSpecs: record.weightSpecs, weights: await models.getWeightBytes(1) });
    const { xs, ys } = mnistTensors(sliceMnist(await loadMnist('test'), 0, 64));
    try {
      expect(loaded.countParams()).toBe(199_210);
      const [a, b] = [loaded.predict(xs) as tf.Tensor, reference.predict(xs) as tf.Tensor];
      expect(Array.from(await a.data())).toEqual(Array.from(await b.data()));
      // And it is a useful model.
      const accuracy = (await tf.metrics.categoricalAccuracy(ys, a).mean().data())[0]!;
      expect(accuracy).toBeGreaterThan(0.7);
      tf.dispose([a, b]);
    } finally {
      tf.dispose([xs, ys]);
      loaded.dispose();
      reference.dispose();
    }
  });
});

describe('register, rollback, service API', () => {
  let registered: ModelVersionMeta;

  it('registers what model.save(tf.io.http(...)) uploads, byte-exact', async () => {
    const model = tinyModel(3);
    const expected = await modelToParts(model);
    const result = await model.save(tf.io.http(`${url}/api/models`, { requestInit: { headers: auth(OPERATOR) } }));
    model.dispose();
    const response = result.responses![0]!;
    expect(response.status).toBe(201);
    registered = (await response.json()) as ModelVersionMeta;
    expect(registered).toMatchObject({ version: 2, parentVersion: 1, source: 'registered', numParameters: 784 * 8 + 8 + 8 * 10 + 10 });
    expect(Buffer.from(await models.getWeightBytes(2)).equals(Buffer.from(expected.weights))).toBe(true);

    // And it loads back through the HTTP format with the same weights.
    const loaded = await tf.loadLayersModel(`${url}/api/models/2/model.json`, { requestInit: { headers: auth(CLIENT) } });
    const loadedParts = await modelToParts(loaded);
    loaded.dispose();
    expect(Buffer.from(loadedParts.weights).equals(Buffer.from(expected.weights))).toBe(true);
    expect((await models.current())?.version).toBe(2);
  });

  it('refuses tf.io.http uploads with a client token', async () => {
    const model = tinyModel(4);
    await expect(model.save(tf.io.http(`${url}/api/models`, { requestInit: { headers: auth(CLIENT) } }))).rejects.toThrow(/401/);
    model.dispose();
    expect((await models.current())?.version).toBe(2);
  });

  it('rejects invalid models with 400 (and oversized ones with 413), storing nothing', async () => {
    const model = tinyModel(5);
    const parts = await modelToParts(model);
    model.dispose();
    const manifest = (weights: unknown[]) => ({
      format: 'layers-model',
      modelTopology: parts.topology,
      weightsManifest: [{ paths: ['./model.weights.bin'], weights }],
    });
    const good = manifest(parts.weightSpecs);

    const nan = Uint8Array.from(parts.weights);
    new DataView(nan.buffer).setFloat32(40, Number.NaN, true);
    const cases: [string, FormData, RegExp][] = [
      ['NaN weight', upload(good, nan), /must be finite/],
      ['short weights', upload(good, parts.weights.subarray(0, parts.weights.length - 4)), /bytes/],
      ['int32 dtype', upload(manifest(parts.weightSpecs.map((spec, i) => (i === 0 ? { ...spec, dtype: 'int32' } : spec))), parts.weights), /float32/],
      [
        'unknown weight name',
        upload(manifest(parts.weightSpecs.map((spec, i) => (i === 0 ? { ...spec, name: 'nope/kernel' } : spec))), parts.weights),
        /TensorFlow.js cannot load/,
      ],
      ['not JSON', upload('{not json', parts.weights), /not valid JSON/],
      ['no topology', upload({ weightsManifest: [] }, null), /modelTopology/],
      ['graph model', upload({ ...good, format: 'graph-model' }, parts.weights), /layers-model/],
    ];
    for (const [name, body, message] of cases) {
      const { status, body: error } = await post('/api/models', OPERATOR, body);
      expect(status, name).toBe(400);
      expect(String(error.message), name).toMatch(message);
    }
    const noModelJson = new FormData();
    noModelJson.append('model.weights.bin', new Blob([parts.weights.slice()]), 'model.weights.bin');
    expect((await post('/api/models', OPERATOR, noModelJson)).status).toBe(400);
    expect((await post('/api/models', OPERATOR, upload(good, new Uint8Array(config.maxUploadBytes + 4)))).status).toBe(413);
    expect((await models.current())?.version).toBe(2);
  });

  it('rolls back by creating a new version with the old weights; history is kept', async () => {
    const { status, body } = await post('/api/models/1/rollback');
    expect(status).toBe(201);
    expect(body).toMatchObject({ version: 3, parentVersion: 2, source: 'rollback', roundId: null, numParameters: 199_210 });
    const v1 = await models.get(1);
    expect(body.metrics).toEqual({ ...v1.metrics, rolledBackFrom: 1 });
    expect(Buffer.from(await models.getWeightBytes(3)).equals(Buffer.from(await models.getWeightBytes(1)))).toBe(true);
    expect((await models.get(3)).topology).toEqual(v1.topology);
    expect((await getJson<ModelVersionMeta[]>('/api/models')).body.map((meta) => [meta.version, meta.source])).toEqual([
      [3, 'rollback'],
      [2, 'registered'],
      [1, 'initial'],
    ]);
    expect((await post('/api/models/3/rollback')).status).toBe(409);
  });

  it('gives devices a ModelPayload and caches the current weights', async () => {
    const payload = await models.getModelPayload(3);
    expect(payload.version).toBe(3);
    expect(payload.weightSpecs).toHaveLength(6);
    expect((payload.weights as Uint8Array).byteLength).toBe(199_210 * 4);
    const weights = await models.getWeights(3);
    expect(weights).toBeInstanceOf(Float32Array);
    expect(weights.length).toBe(199_210);
    expect((await models.getWeights(3)) === weights).toBe(true); // served from the cache
    models.invalidateCache();
    const reloaded = await models.getWeights(3);
    expect(reloaded === weights).toBe(false);
    expect(
      Buffer.from(reloaded.buffer, reloaded.byteOffset, reloaded.byteLength).equals(Buffer.from(weights.buffer, weights.byteOffset, weights.byteLength)),
    ).toBe(true);
    await expect(models.getWeights(42)).rejects.toThrow(/does not exist/);
  });
});

describe('OpenAPI', () => {
  it('documents the routes', () => {
    const document = SwaggerModule.createDocument(app, new DocumentBuilder().addBearerAuth().build());
    expect(Object.keys(document.paths).sort()).toEqual([
      '/api/models',
      '/api/models/{version}',
      '/api/models/{version}/model.json',
      '/api/models/{version}/rollback',
      '/api/models/{version}/weights.bin',
      '/api/privacy',
    ]);
    expect(Object.keys(document.paths['/api/models']!).sort()).toEqual(['get', 'post']);
    expect(document.paths['/api/models/{version}/weights.bin']!.get!.responses['200']).toHaveProperty('content.application/octet-stream');
    // Response schemas are the contract's zod schemas (inline): the version metadata fields, and the detail's on top.
    interface ObjectSchema {
      properties: object;
      items: { properties: object };
    }
    const jsonSchema = (path: string, status: string) =>
      (document.paths[path]!.get!.responses[status] as { content: Record<string, { schema: ObjectSchema }> }).content['application/json']!.schema;
    expect(Object.keys(jsonSchema('/api/models', '200').items.properties)).toEqual(Object.keys(modelVersionMetaSchema.shape));
    expect(Object.keys(jsonSchema('/api/models/{version}', '200').properties)).toEqual(Object.keys(modelVersionDetailSchema.shape));
  });
});
