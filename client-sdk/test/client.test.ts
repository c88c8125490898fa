import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ArrayDataSource,
  ClientEvent,
  decodeWeights,
  FederatedClient,
  FlockClientError,
  PROTOCOL_VERSION,
  SDK_VERSION,
  ServerEvent,
  staticCondition,
  EVALUATION_REPORT_LIMITS,
  type DeviceIdentityInfo,
  type EvaluationReport,
  type UpdateUpload,
} from '../src/index.js';
import { FileModelStore } from '../src/node/file-store.js';
import { makeModel, oneHot, syntheticRows } from './support/fixtures.js';
import { testClient, until, type TestClient } from './support/clients.js';
import { TEST_TOKEN, TestCoordinator } from './support/test-coordinator.js';

let coordinator: TestCoordinator;
const running: TestClient[] = [];
const directories: string[] = [];

function track(client: TestClient): TestClient {
  running.push(client);
  return client;
}

beforeAll(async () => {
  coordinator = await TestCoordinator.start();
  const initial = makeModel(1);
  await coordinator.addModel(initial); // version 1
  initial.dispose();
});

afterEach(async () => {
  await Promise.all(running.splice(0).map(({ client }) => client.dispose()));
  coordinator.respondToUpload = () => ({ accepted: true });
  coordinator.acceptToken = () => false;
  coordinator.refuseProofs = false;
});

afterAll(async () => {
  await coordinator.close();
  await Promise.all(directories.map((directory) => rm(directory, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'flock-client-test-'));
  directories.push(directory);
  return directory;
}

let roundCounter = 0;
function roundConfig(
  overrides: Partial<{
    epochs: number;
    batchSize: number;
    learningRate: number;
    proximalMu: number;
    maxExamplesPerUpdate: number;
    modelVersion: number;
    deadlineAt: number;
  }> = {},
) {
  const { epochs = 1, batchSize = 10, learningRate = 0.1, proximalMu, maxExamplesPerUpdate, modelVersion = 1, deadlineAt = Date.now() + 60_000 } = overrides;
  return {
    roundId: `round-${++roundCounter}`,
    modelVersion,
    plan: {
      epochs,
      batchSize,
      learningRate,
      ...(proximalMu === undefined ? {} : { proximalMu }),
      ...(maxExamplesPerUpdate === undefined ? {} : { maxExamplesPerUpdate }),
    },
    deadlineAt,
  };
}

async function connected(test: TestClient): Promise<string> {
  await test.client.start();
  const clientId = test.client.clientId!;
  await coordinator.waitForConnection(clientId);
  await until(() => test.client.status === 'waiting', 10_000, 'waiting status');
  return clientId;
}

describe('connection', () => {
  it('connects with its token, protocol version and public key, proves the key, and keeps its key-derived id across restarts', async () => {
    const directory = await tempDir();
    const first = track(testClient(coordinator, { store: new FileModelStore(directory) }));
    const clientId = await connected(first);
    const publicKey = first.client.publicKey!;
    // The client id is the RFC 7638 thumbprint of the public key (computed here with node:crypto).
    expect(clientId).toBe(createHash('sha256').update(`{"crv":"P-256","kty":"EC","x":"${publicKey.x}","y":"${publicKey.y}"}`).digest('base64url'));
    const handshake = coordinator.handshakes.find((auth) => (auth.publicKey as { x?: string } | undefined)?.x === publicKey.x)!;
    expect(handshake).toEqual({
      token: TEST_TOKEN,
      publicKey: { kty: 'EC', crv: 'P-256', x: publicKey.x, y: publicKey.y },
      protocolVersion: PROTOCOL_VERSION,
      sdkVersion: SDK_VERSION,
    });
    expect(coordinator.proofs.filter((proof) => proof.clientId === clientId)).toEqual([{ clientId, verified: true }]);
    // The private key is in the store's directory, readable by its owner only.
    expect((await stat(join(directory, 'device-key.json'))).mode & 0o777).toBe(0o600);
    await first.client.dispose();

    const second = track(testClient(coordinator, { store: new FileModelStore(directory) }));
    await connected(second);
    expect(second.client.clientId).toBe(clientId);
    expect(coordinator.proofs.filter((proof) => proof.clientId === clientId)).toEqual([
      { clientId, verified: true },
      { clientId, verified: true },
    ]);
    const other = track(testClient(coordinator));
    await connected(other);
    expect(other.client.clientId).not.toBe(clientId);
  });

  it('asks the deviceToken function for a token at each connection, with the identity to bind it to, and retries when it fails', async () => {
    const issued = new Set<string>();
    coordinator.acceptToken = (token) => typeof token === 'string' && issued.has(token);
    const asked: DeviceIdentityInfo[] = [];
    const test = track(
      testClient(coordinator, {
        clientToken: undefined,
        credentialRetryMs: 200,
        deviceToken: async (device) => {
          asked.push(device);
          if (asked.length === 1) throw new Error('backend unreachable');
          const token = `device-token-${asked.length}`;
          issued.add(token);
          return token;
        },
      }),
    );
    const clientId = await connected(test);
    expect(test.errors.map((error) => error.code)).toEqual(['device_token_failed']);
    expect(asked).toEqual([
      { clientId, publicKey: test.client.publicKey },
      { clientId, publicKey: test.client.publicKey },
    ]);
    // A reconnection asks again.
    coordinator.sockets.get(clientId)!.conn.close();
    await until(() => asked.length === 3 && test.client.status === 'waiting', 10_000, 'a reconnection with a fresh token');
    expect(coordinator.handshakes.at(-1)!.token).toBe('device-token-3');
  });

  it('needs exactly one of clientToken and deviceToken', () => {
    expect(() => testClient(coordinator, { clientToken: undefined })).toThrow(/either clientToken or deviceToken/);
    expect(() => testClient(coordinator, { deviceToken: 'a-device-token' })).toThrow(/either clientToken or deviceToken/);
  });

  it("stops when the coordinator refuses the device's proof, with its reason", async () => {
    coordinator.refuseProofs = true;
    const test = track(testClient(coordinator));
    const error = test.client.next('error');
    await test.client.start();
    expect((await error).code).toBe('invalid_proof');
    await until(() => test.client.status === 'offline', 5_000, 'offline');
    const attempts = coordinator.proofs.length;
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(coordinator.proofs.length).toBe(attempts);
  });

  it('reports eligibility on connect and on every change', async () => {
    const test = track(testClient(coordinator));
    const since = Date.now();
    const clientId = await connected(test);
    const reports = () => coordinator.eventsOf(ClientEvent.conditions).filter((event) => event.clientId === clientId && event.at >= since);
    await until(() => reports().length === 1);
    expect(reports()[0]!.payload).toEqual({ eligible: true, reasons: [] });

    test.conditions.charging.set('no');
    await until(() => reports().length === 2);
    expect(reports()[1]!.payload).toEqual({ eligible: false, reasons: ['not_charging'] });
    test.conditions.unmetered.set('unknown');
    await until(() => reports().length === 3);
    expect(reports()[2]!.payload).toEqual({ eligible: false, reasons: ['not_charging', 'unknown_conditions'] });
    // Two changes in one tick: reports are coalesced, the last one says eligible.
    test.conditions.unmetered.set('yes');
    test.conditions.charging.set('yes');
    await until(() => (reports().at(-1)!.payload as { eligible: boolean }).eligible);
    expect(reports().at(-1)!.payload).toEqual({ eligible: true, reasons: [] });
    expect(test.client.conditions.eligible).toBe(true);
  });

  it("reports 'no_data' when the data source has no training examples", async () => {
    const test = track(testClient(coordinator, { dataSource: new ArrayDataSource({ train: { xs: [], ys: [] } }) }));
    const clientId = await connected(test);
    const report = await coordinator.waitFor(ClientEvent.conditions, (_, id) => id === clientId);
    expect(report.payload).toEqual({ eligible: false, reasons: ['no_data'] });
  });

  it("stops on a refused handshake ('unauthorized') without retrying", async () => {
    const test = track(testClient(coordinator, { clientToken: 'wrong-token' }));
    const error = test.client.next('error');
    await test.client.start();
    expect((await error).code).toBe('unauthorized');
    const attempts = coordinator.handshakes.filter((auth) => auth.token === 'wrong-token').length;
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(coordinator.handshakes.filter((auth) => auth.token === 'wrong-token').length).toBe(attempts);
    expect(test.client.status).toBe('offline');
  });

  it('reports malformed coordinator messages as protocol errors and acts on none of them', async () => {
    const test = track(testClient(coordinator));
    const clientId = await connected(test);
    const acted: string[] = [];
    for (const event of ['connected', 'roundJoined', 'roundClosed', 'modelPublished'] as const) test.client.on(event, () => acted.push(event));
    const socket = coordinator.sockets.get(clientId)!;
    socket.emit(ServerEvent.welcome, { clientId, protocolVersion: PROTOCOL_VERSION, currentModelVersion: 0, maxUploadBytes: 1000 });
    socket.emit(ServerEvent.configure, { ...roundConfig(), plan: { epochs: 0, batchSize: 10, learningRate: 0.1 } });
    socket.emit(ServerEvent.roundClosed, { roundId: 'round-x', outcome: 'finished', modelVersion: null });
    socket.emit(ServerEvent.modelPublished, { version: '2', parentVersion: 1, roundId: null });
    socket.emit(ServerEvent.updateRejected, { roundId: 'round-x', reason: 'no_reason_code', message: 'refused' });
    await until(() => test.errors.length >= 5, 5000, 'five errors');
    expect(test.errors.map((error) => [error.code, error.message])).toEqual([
      ['protocol', expect.stringMatching(/^malformed welcome: /)],
      ['protocol', expect.stringMatching(/^malformed round configuration: /)],
      ['protocol', expect.stringMatching(/^malformed round:closed: /)],
      ['protocol', expect.stringMatching(/^malformed model:published: /)],
      ['protocol', expect.stringMatching(/^malformed round:update-rejected: /)],
    ]);
    expect(acted).toEqual([]);
    expect(test.client.status).toBe('waiting');
  });

  it('reconnects with backoff after the connection drops', async () => {
    const test = track(testClient(coordinator));
    const clientId = await connected(test);
    const socket = coordinator.sockets.get(clientId)!;
    socket.conn.close(); // transport failure (not a server-side disconnect)
    await until(() => test.client.status === 'offline', 5000, 'offline');
    await until(() => test.client.status === 'waiting', 5000, 'reconnected');
    expect(coordinator.sockets.get(clientId)).not.toBe(socket);
  });
});

describe('rounds', () => {
  it("reports at most the plan's maxExamplesPerUpdate as its example count", async () => {
    const test = track(testClient(coordinator, { examples: 250, seed: 4 }));
    const clientId = await connected(test);
    const uploaded = test.client.next('uploaded');
    coordinator.configure(clientId, roundConfig({ maxExamplesPerUpdate: 120 }));
    const update = await coordinator.waitFor(ClientEvent.update, (_, id) => id === clientId);
    expect((update.payload as UpdateUpload).numExamples).toBe(120); // of its 200 training examples
    expect(await uploaded).toMatchObject({ numExamples: 120, result: { accepted: true } });
  });

  it('trains the round model and uploads only the weight delta, with numExamples and the training loss', async () => {
    const test = track(testClient(coordinator, { examples: 250, seed: 3 }));
    const clientId = await connected(test);
    const framesBefore = coordinator.rawFrames.length;
    const joined = test.client.next('roundJoined');
    const uploaded = test.client.next('uploaded');
    const config = roundConfig({ epochs: 2, batchSize: 10 });
    coordinator.configure(clientId, config);

    expect(await joined).toEqual(config);
    const update = await coordinator.waitFor(ClientEvent.update, (_, id) => id === clientId);
    const upload = update.payload as UpdateUpload;
    expect(Object.keys(upload).sort()).toEqual(['delta', 'modelVersion', 'numExamples', 'roundId', 'trainLoss']);
    expect(upload).toMatchObject({ roundId: config.roundId, modelVersion: 1, numExamples: 200 }); // 250 minus 20% held out
    expect(Number.isFinite(upload.trainLoss) && upload.trainLoss > 0).toBe(true);
    expect(Object.keys(upload.delta).sort()).toEqual(['data', 'shapes']);

    const model = coordinator.models.get(1)!;
    expect(upload.delta.shapes).toEqual(model.weightSpecs.map((spec) => spec.shape));
    expect(upload.delta.data.byteLength).toBe(model.weights.byteLength);
    const delta = decodeWeights(upload.delta);
    expect(delta.some((tensor) => tensor.some((value) => value !== 0))).toBe(true);

    const event = await uploaded;
    expect(event).toMatchObject({ roundId: config.roundId, bytes: model.weights.byteLength, numExamples: 200, result: { accepted: true } });
    expect(test.statuses).toEqual(expect.arrayContaining(['training', 'uploading']));
    await until(() => test.client.status === 'waiting');

    // What crossed the socket: only protocol events, and no feature values of any local example.
    const events = new Set(coordinator.received.filter((received) => received.clientId === clientId).map((received) => received.event));
    // (model:evaluation: the client also tested the current global model after connecting.)
    const allowed: string[] = [ClientEvent.conditions, ClientEvent.fetchModel, ClientEvent.update, ClientEvent.evaluation];
    expect([...events].filter((name) => !allowed.includes(name))).toEqual([]);
    const frames = coordinator.rawFrames.slice(framesBefore);
    const binary = frames.filter((frame): frame is Buffer => Buffer.isBuffer(frame));
    const text = frames.filter((frame): frame is string => typeof frame === 'string').join('\n');
    expect(binary.reduce((sum, frame) => sum + frame.byteLength, 0)).toBe(model.weights.byteLength); // the delta, nothing else
    for (const row of test.rows.xs) {
      const rowBytes = Buffer.from(Float32Array.from(row.slice(0, 3)).buffer);
      for (const frame of binary) expect(frame.indexOf(rowBytes)).toBe(-1);
      expect(text).not.toContain(String(row[0]).slice(0, 10));
    }
  });

  it('abandons with conditions_changed when a condition changes mid-training: stops within one batch, uploads nothing', async () => {
    const test = track(testClient(coordinator, { examples: 2000, seed: 4 }));
    const clientId = await connected(test);
    let batches = 0;
    let batchesAtChange = -1;
    test.client.on('trainingProgress', () => {
      batches++;
      if (batches === 5) {
        test.conditions.unmetered.set('no'); // left Wi-Fi
        batchesAtChange = batches;
      }
    });
    const abandoned = test.client.next('roundAbandoned');
    const config = roundConfig({ epochs: 3, batchSize: 10 });
    coordinator.configure(clientId, config);
    expect(await abandoned).toEqual({ roundId: config.roundId, reason: 'conditions_changed' });
    const abandon = await coordinator.waitFor(ClientEvent.abandon, (payload) => (payload as { roundId: string }).roundId === config.roundId);
    expect(abandon.payload).toEqual({ roundId: config.roundId, reason: 'conditions_changed' });
    expect(batches).toBe(batchesAtChange); // no batch after the change
    await until(() => test.client.status === 'waiting');
    expect(coordinator.eventsOf(ClientEvent.update).filter((event) => event.clientId === clientId)).toEqual([]);
    const conditions = coordinator.eventsOf(ClientEvent.conditions).filter((event) => event.clientId === clientId);
    expect(conditions.at(-1)!.payload).toEqual({ eligible: false, reasons: ['metered_network'] });
  });

  it('abandons at once when selected while not eligible, and with no_data without examples', async () => {
    const test = track(testClient(coordinator));
    const clientId = await connected(test);
    test.conditions.idle.set('no');
    const config = roundConfig();
    coordinator.configure(clientId, config);
    expect(await test.client.next('roundAbandoned')).toEqual({ roundId: config.roundId, reason: 'conditions_changed' });

    test.conditions.idle.set('yes');
    test.dataSource.replace({ train: { xs: [], ys: [] } });
    const second = roundConfig();
    coordinator.configure(clientId, second);
    expect(await test.client.next('roundAbandoned')).toEqual({ roundId: second.roundId, reason: 'no_data' });
    await coordinator.waitFor(ClientEvent.abandon, (payload) => (payload as { reason: string }).reason === 'no_data');
  });

  it("stop() during training abandons with 'stopped'", async () => {
    const test = track(testClient(coordinator, { examples: 2000, seed: 5 }));
    const clientId = await connected(test);
    let stopping: Promise<void> | undefined;
    test.client.once('trainingProgress', () => {
      stopping = test.client.stop();
    });
    const config = roundConfig({ epochs: 5 });
    coordinator.configure(clientId, config);
    const abandon = await coordinator.waitFor(ClientEvent.abandon, (payload) => (payload as { roundId: string }).roundId === config.roundId);
    expect(abandon.payload).toEqual({ roundId: config.roundId, reason: 'stopped' });
    await stopping;
    await until(() => test.client.status === 'stopped');
    expect(coordinator.eventsOf(ClientEvent.update).filter((event) => event.clientId === clientId)).toEqual([]);
  });

  it('stops training silently when the round closes, and abandons past the deadline', async () => {
    const test = track(testClient(coordinator, { examples: 2000, seed: 6 }));
    const clientId = await connected(test);
    const config = roundConfig({ epochs: 5 });
    test.client.once('trainingProgress', () => coordinator.closeRound(config.roundId, 'aborted', null));
    coordinator.configure(clientId, config);
    expect(await test.client.next('roundAbandoned')).toEqual({ roundId: config.roundId, reason: 'round_closed' });

    const late = roundConfig({ epochs: 50, deadlineAt: Date.now() + 300 });
    coordinator.configure(clientId, late);
    expect(await test.client.next('roundAbandoned')).toEqual({ roundId: late.roundId, reason: 'deadline' });
    await coordinator.waitFor(ClientEvent.abandon, (payload) => (payload as { roundId: string }).roundId === late.roundId);
    expect(coordinator.eventsOf(ClientEvent.abandon).some((event) => (event.payload as { roundId: string }).roundId === config.roundId)).toBe(false);
  });

  it('reports its upload before the close and publication of the round it completed, even when those arrive before the acknowledgement', async () => {
    const test = track(testClient(coordinator, { seed: 8 }));
    const clientId = await connected(test);
    const config = roundConfig();
    // The coordinator closes the round and publishes its version before it acknowledges the upload that
    // completed it. (Version 1 again: the device has tested it already, so nothing follows the publication.)
    coordinator.respondToUpload = (upload) => {
      coordinator.closeRound(upload.roundId, 'committed', 1);
      coordinator.io.emit(ServerEvent.modelPublished, { version: 1, parentVersion: null, roundId: upload.roundId });
      return { accepted: true };
    };
    const order: string[] = [];
    test.client.on('uploaded', () => order.push('uploaded'));
    test.client.on('roundClosed', () => order.push('roundClosed'));
    test.client.on('modelPublished', () => order.push('modelPublished'));
    const published = test.client.next('modelPublished');
    coordinator.configure(clientId, config);
    await published;
    expect(order).toEqual(['uploaded', 'roundClosed', 'modelPublished']);
    // The wire had them the other way round: the close and the publication went out first.
    const update = await coordinator.waitFor(ClientEvent.update, (_, id) => id === clientId);
    expect((update.payload as UpdateUpload).roundId).toBe(config.roundId);
  });

  it('reports a rejected upload', async () => {
    coordinator.respondToUpload = () => ({ accepted: false, reason: 'norm_exceeded', message: 'too large' });
    const test = track(testClient(coordinator));
    const clientId = await connected(test);
    const uploaded = test.client.next('uploaded');
    const error = test.client.next('error');
    coordinator.configure(clientId, roundConfig());
    expect((await uploaded).result).toEqual({ accepted: false, reason: 'norm_exceeded', message: 'too large' });
    const reported = await error;
    expect(reported).toBeInstanceOf(FlockClientError);
    expect(reported).toMatchObject({ code: 'upload_rejected', details: { rejection: 'norm_exceeded' } });
  });

  it('trains with the FedProx term when the plan has proximalMu', async () => {
    const test = track(testClient(coordinator, { examples: 300, seed: 7 }));
    const clientId = await connected(test);
    const norms: number[] = [];
    for (const proximalMu of [0, 5]) {
      const config = roundConfig({ epochs: 3, learningRate: 0.3, proximalMu });
      coordinator.configure(clientId, config);
      const update = await coordinator.waitFor(ClientEvent.update, (payload) => (payload as UpdateUpload).roundId === config.roundId);
      const delta = decodeWeights((update.payload as UpdateUpload).delta);
      norms.push(Math.sqrt(delta.reduce((sum, tensor) => sum + tensor.reduce((s, v) => s + v * v, 0), 0)));
      await until(() => test.client.status === 'waiting');
    }
    expect(norms[1]!).toBeLessThan(norms[0]! * 0.8);
  });
});

/** A model trained well on the synthetic task (independently of the SDK: plain model.fit). */
async function pretrained(seed: number): Promise<tf.LayersModel> {
  const model = makeModel(seed);
  const rows = syntheticRows(1500, 100 + seed);
  model.compile({ optimizer: tf.train.sgd(0.3), loss: 'categoricalCrossentropy' });
  const xs = tf.tensor2d(rows.xs);
  const ys = tf.tensor2d(oneHot(rows.labels));
  await model.fit(xs, ys, { epochs: 15, batchSize: 10, verbose: 0 });
  tf.dispose([xs, ys]);
  return model;
}

describe('evaluation, adoption and personalization', () => {
  it('tests a published model, adopts it when not worse, fine-tunes it, persists it, and predicts offline after a restart', async () => {
    const directory = await tempDir();
    const test = track(testClient(coordinator, { store: new FileModelStore(directory), personalization: { fineTuneEpochs: 2 } }));
    const evaluated = test.client.next('globalModelEvaluated');
    const adopted = test.client.next('modelAdopted');
    const clientId = await connected(test);
    // The welcome names the current version (1): the client tests it without waiting for a publication.
    const report = await coordinator.waitFor(ClientEvent.evaluation, (_, id) => id === clientId);
    const payload = report.payload as EvaluationReport;
    expect(Object.keys(payload).sort()).toEqual(
      ['adopted', 'globalAccuracy', 'globalLoss', 'modelVersion', 'numExamples', 'personalAccuracy', 'personalLoss'].sort(),
    );
    expect(payload).toMatchObject({ modelVersion: 1, numExamples: 40, personalLoss: null, personalAccuracy: null, adopted: true });
    expect((await evaluated).report).toEqual(payload);
    expect(await adopted).toMatchObject({ version: 1, fineTunedEpochs: 2 });
    await until(() => test.client.status === 'waiting');
    expect(test.client.modelInfo).toMatchObject({ personalVersion: 1, fineTunedEpochs: 2, lastEvaluatedVersion: 1, cachedGlobalVersion: 1 });
    expect(JSON.parse(await readFile(join(directory, 'personal.json'), 'utf8'))).toMatchObject({ version: 1, fineTunedEpochs: 2 });

    const sample = test.rows.xs.slice(0, 5);
    const online = await test.client.predict(sample);
    const expected = await online.array();
    online.dispose();
    await test.client.dispose();

    // Restart with no coordinator reachable: predict() uses the persisted personalized model.
    const offline = new FederatedClient({
      serverUrl: 'http://127.0.0.1:9',
      clientToken: TEST_TOKEN,
      dataSource: test.dataSource,
      conditions: [staticCondition('idle', 'yes')],
      store: new FileModelStore(directory),
    });
    const prediction = await offline.predict(sample);
    expect(await prediction.array()).toEqual(expected);
    prediction.dispose();
    expect(offline.clientId).toBe(clientId);
    expect(offline.modelInfo).toMatchObject({ personalVersion: 1, fineTunedEpochs: 2, lastEvaluatedVersion: 1 });
    expect(offline.modelInfo.lastEvaluation).toEqual(payload);
    const single = await offline.predict(sample[0]!);
    expect(single.shape).toEqual([1, 3]);
    single.dispose();
    await offline.dispose();
  });

  it('keeps the personalized model when the new global model is worse by more than the tolerance', async () => {
    const good = await pretrained(40);
    const test = track(testClient(coordinator, { initialModel: good, initialModelVersion: null, examples: 300, seed: 41 }));
    good.dispose();
    const clientId = await connected(test);
    const before = await test.client.predict(test.rows.xs.slice(0, 3));
    const bad = makeModel(99);
    const version = await coordinator.addModel(bad);
    bad.dispose();
    const evaluated = test.client.next('globalModelEvaluated');
    coordinator.publish(version);
    const { report, decision } = await evaluated;
    expect(decision.adopt).toBe(false);
    expect(report!.adopted).toBe(false);
    expect(report!.personalAccuracy!).toBeGreaterThan(report!.globalAccuracy + 0.02);
    const sent = await coordinator.waitFor(ClientEvent.evaluation, (payload, id) => id === clientId && (payload as EvaluationReport).modelVersion === version);
    expect(sent.payload).toEqual(report);
    await until(() => test.client.status === 'waiting');
    expect(test.client.modelInfo).toMatchObject({ personalVersion: null, lastEvaluatedVersion: version });
    const after = await test.client.predict(test.rows.xs.slice(0, 3));
    expect(await after.array()).toEqual(await before.array());
    tf.dispose([before, after]);
  });

  it("with onRejected 'fineTuneGlobal', fine-tunes the rejected global model and adopts it when it passes", async () => {
    const good = await pretrained(50);
    const test = track(
      testClient(coordinator, {
        initialModel: good,
        examples: 600,
        seed: 51,
        // A wide tolerance: the raw model (about 0.39) fails it by far, and the fine-tuned one (0.90-0.98
        // against a personal 0.92-0.99 in 13 runs) passes it by far, whatever its shuffles drew.
        adoption: { tolerance: 0.3, onRejected: 'fineTuneGlobal' },
        personalization: { fineTuneEpochs: 30, learningRate: 0.3, batchSize: 10 },
      }),
    );
    good.dispose();
    const clientId = await connected(test);
    const fresh = makeModel(98);
    const version = await coordinator.addModel(fresh);
    fresh.dispose();
    // This version's outcome (the coordinator is shared with the tests before).
    const evaluated = test.client.next('globalModelEvaluated', ({ report }) => report?.modelVersion === version);
    const adopted = test.client.next('modelAdopted', (event) => event.version === version);
    coordinator.publish(version);
    const { report, decision } = await evaluated;
    expect(report!.globalAccuracy).toBeLessThan(report!.personalAccuracy! - 0.3); // the raw global model fails
    expect(decision).toMatchObject({ adopt: true });
    expect(decision.reason).toMatch(/^after local fine-tuning/);
    const event = await adopted;
    expect(event.version).toBe(version);
    expect(event.evaluation!.accuracy).toBeGreaterThanOrEqual(report!.personalAccuracy! - 0.3);
    await coordinator.waitFor(ClientEvent.evaluation, (payload, id) => id === clientId && (payload as EvaluationReport).modelVersion === version);
  });

  it('defers evaluation while not eligible, then tests the newest version (also one published before it connected)', async () => {
    const test = track(testClient(coordinator));
    test.conditions.charging.set('no');
    const clientId = await connected(test);
    coordinator.publish(coordinator.currentVersion!);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(coordinator.eventsOf(ClientEvent.evaluation).filter((event) => event.clientId === clientId)).toEqual([]);
    test.conditions.charging.set('yes');
    const report = await coordinator.waitFor(ClientEvent.evaluation, (_, id) => id === clientId);
    // It evaluates the newest version it heard of (from the welcome: published before it connected).
    expect((report.payload as EvaluationReport).modelVersion).toBe(coordinator.currentVersion);
    expect(test.client.modelInfo.personalVersion).toBe(coordinator.currentVersion);
  });

  it("keeps a report outside the protocol's bounds on the device (the coordinator would refuse it)", async () => {
    // A loss 10^7 times cross-entropy: above EVALUATION_REPORT_LIMITS.maxLoss on any model.
    const huge = {
      name: 'hugeCrossentropy',
      loss: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.mul<tf.Scalar>(tf.mean(tf.metrics.categoricalCrossentropy(yTrue, yPred)), 1e7),
      correct: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.metrics.categoricalAccuracy(yTrue, yPred),
    };
    const test = track(testClient(coordinator, { loss: huge, personalization: { fineTuneEpochs: 0 } }));
    const evaluated = test.client.next('globalModelEvaluated');
    const clientId = await connected(test);
    const { report } = await evaluated;
    expect(report!.globalLoss).toBeGreaterThan(EVALUATION_REPORT_LIMITS.maxLoss);
    await until(() => test.client.status === 'waiting');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(coordinator.eventsOf(ClientEvent.evaluation).filter((event) => event.clientId === clientId)).toEqual([]);
  });

  it('reports a failed model fetch once and does not retry in a loop', async () => {
    const test = track(testClient(coordinator));
    const clientId = await connected(test);
    await until(() => test.client.status === 'waiting');
    const error = test.client.next('error', (candidate) => candidate.code === 'model_fetch_failed');
    coordinator.publish(999); // announced, but the coordinator cannot serve it
    expect((await error).message).toMatch(/no model version 999/);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const fetches = coordinator
      .eventsOf(ClientEvent.fetchModel)
      .filter((event) => event.clientId === clientId && (event.payload as { version: number }).version === 999);
    expect(fetches).toHaveLength(1);
    expect(test.client.status).toBe('waiting');
  });

  it('predict() without any model fails with no_model', async () => {
    const test = track(testClient(coordinator));
    await expect(test.client.predict([[1, 2, 3, 4, 5, 6, 7, 8]])).rejects.toMatchObject({ code: 'no_model' });
  });
});

describe('package', () => {
  it('SDK_VERSION matches package.json', async () => {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(SDK_VERSION).toBe(pkg.version);
  });
});
