/**
 * Personalization methods with real SDK clients against the real bed.coordinator over socket.io (real
 * MNIST slices): personal layers never cross the socket and the bed.coordinator folds the shared
 * tensors only; Ditto's personal model stays within its proximal bound; personal models survive
 * restarts and new global versions as each method prescribes.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  FederatedClient,
  ManualCondition,
  MemoryModelStore,
  type GlobalModelEvaluatedEvent,
  type ModelStore,
  type PersonalizationOptions,
  type StoredModel,
} from '@flock/client-sdk';
import { FileModelStore } from '@flock/client-sdk/node';
import { splitTensors } from '@flock/client-sdk/protocol';
import type { ModelVersionDetail } from '../../src/contract/index.js';
import { WEIGHTS_FILE } from '../../src/models/tfjs-format.js';
import { CLIENT_TOKEN, OPERATOR_TOKEN, waitFor } from '../support/coordinator.js';
import { mnistSlice, recordingTransport, sdkTestBed } from '../support/sdk-device.js';

const TRAIN_PER_CLIENT = 120;
const TEST_PER_CLIENT = 40;
/** The 2NN's tensors: hidden1 kernel, bias, hidden2 kernel, bias, output kernel, bias. */
const SHARED_SHAPES = [[784, 200], [200], [200, 200], [200]];
const OUTPUT_VALUES = 200 * 10 + 10;
const SHARED_BYTES = (199_210 - OUTPUT_VALUES) * 4;

const bed = sdkTestBed(6 * (TRAIN_PER_CLIENT + TEST_PER_CLIENT));

interface Device {
  client: FederatedClient;
  store: ModelStore;
  /** Every message the device emitted on its socket. */
  sent: { event: string; args: unknown[] }[];
}

function device(k: number, personalization: PersonalizationOptions, store: ModelStore = new MemoryModelStore()): Device {
  const sent: Device['sent'] = [];
  const client = new FederatedClient({
    serverUrl: bed.coordinator.url,
    clientToken: CLIENT_TOKEN,
    dataSource: mnistSlice(bed.mnist, k, TRAIN_PER_CLIENT, TEST_PER_CLIENT),
    conditions: [new ManualCondition('idle', 'yes'), new ManualCondition('charging', 'yes'), new ManualCondition('unmetered', 'yes')],
    store,
    personalization,
    evaluateOnlyWhenEligible: false,
    socketOptions: { transports: ['websocket'] },
    ...recordingTransport((event, args) => sent.push({ event, args })),
  });
  bed.track(client);
  return { client, store, sent };
}

async function startRound(body: Record<string, unknown>): Promise<{ status: number; id: string; body: unknown }> {
  const response = await bed.coordinator.api<{ id: string }>('/api/rounds', { method: 'POST', body: JSON.stringify(body) });
  return { status: response.status, id: response.body.id, body: response.body };
}

/** The global model of a version as the bed.coordinator serves it, one array per tensor. */
async function globalTensors(version: number): Promise<Float32Array[]> {
  const details = await bed.coordinator.api<ModelVersionDetail>(`/api/models/${version}`);
  const weights = await fetch(`${bed.coordinator.url}/api/models/${version}/${WEIGHTS_FILE}`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } });
  expect(weights.status).toBe(200);
  const flat = new Float32Array(await weights.arrayBuffer());
  return splitTensors(
    flat,
    details.body.weightSpecs.map((spec) => spec.shape),
  );
}

function tensorsOf(stored: StoredModel): Float32Array[] {
  return splitTensors(
    new Float32Array(stored.weights),
    stored.weightSpecs.map((spec) => spec.shape),
  );
}

function distance(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  let sum = 0;
  a.forEach((tensor, i) => tensor.forEach((value, j) => (sum += (value - b[i]![j]!) ** 2)));
  return Math.sqrt(sum);
}

const equal = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((value, i) => value === b[i]);

describe('personalization against the real bed.coordinator', () => {
  it('personal layers never cross the socket; the bed.coordinator keeps them at the global value; the device keeps its own across versions and restarts', async () => {
    const dir = bed.tempDir('flock-personal-');
    const method: PersonalizationOptions = { method: 'personal-layers', personalLayers: ['output'], fineTuneEpochs: 1 };
    const devices = [device(0, method, new FileModelStore(dir)), device(1, method)];
    await Promise.all(devices.map((d) => d.client.start()));
    await bed.coordinator.eligible(2);
    const evaluated = devices.map((d) => d.client.next('globalModelEvaluated', (e) => e.modelVersion === 2));
    const v1 = await globalTensors(1);

    // a plan naming a layer the model lacks is refused at the start
    const unknown = await startRound({ minClients: 2, personalization: { method: 'personal-layers', personalLayers: ['head'] } });
    expect(unknown.status).toBe(400);
    expect(JSON.stringify(unknown.body)).toMatch(/personal layers not in the model: head/);

    const plan = { method: 'personal-layers', personalLayers: ['output'] };
    const round = await startRound({ minClients: 2, targetClients: 2, overSelection: 1, epochs: 1, batchSize: 10, learningRate: 0.05, personalization: plan });
    expect(round.status).toBe(201);
    const ended = await bed.coordinator.roundEnded(round.id, 60_000);
    expect(ended).toMatchObject({ status: 'committed', committedVersion: 2 });
    expect(ended.metrics).toMatchObject({ accepted: 2, bytesReceived: 2 * SHARED_BYTES });

    // What crossed the socket: the shared tensors' delta only, no output-layer shapes or values.
    for (const { sent } of devices) {
      const updates = sent.filter((m) => m.event === 'round:update');
      expect(updates).toHaveLength(1);
      const payload = updates[0]!.args[0] as { delta: { data: ArrayBuffer; shapes: number[][] } };
      expect(payload.delta.shapes).toEqual(SHARED_SHAPES);
      expect(payload.delta.data.byteLength).toBe(SHARED_BYTES);
      // Everything else is small JSON (the proof of the device key carries a 64-byte signature).
      for (const message of sent.filter((m) => m.event !== 'round:update' && m.event !== 'client:proof')) {
        const json = JSON.stringify(message.args, (key, value: unknown) => (value instanceof ArrayBuffer || ArrayBuffer.isView(value) ? '<binary>' : value));
        expect(json.length, message.event).toBeLessThan(1000);
        expect(json).not.toContain('<binary>');
      }
    }

    // The bed.coordinator folded the shared tensors and kept the personal ones at the global value.
    const v2 = await globalTensors(2);
    expect(equal(v2[4]!, v1[4]!) && equal(v2[5]!, v1[5]!)).toBe(true);
    expect(equal(v2[0]!, v1[0]!)).toBe(false);

    // Each device took version 2's shared layers and kept (and trained) its own output layer.
    await Promise.all(evaluated);
    const heads: Float32Array[] = [];
    for (const { store } of devices) {
      const personal = tensorsOf((await store.loadModel('personal'))!);
      expect(personal.slice(0, 4).every((tensor, i) => equal(tensor, v2[i]!))).toBe(true);
      expect(equal(personal[4]!, v2[4]!)).toBe(false);
      heads.push(personal[4]!);
    }
    expect(equal(heads[0]!, heads[1]!)).toBe(false);

    // A restart: the same personal model (shared layers of version 2, the device's own head).
    const probe = tf.tensor2d(bed.mnist.images.subarray(0, 5 * 784), [5, 784]);
    const before = await (await devices[0]!.client.predict(probe)).array();
    await bed.dispose(devices[0]!.client);
    const restarted = device(0, method, new FileModelStore(dir));
    await restarted.client.load();
    expect(restarted.client.modelInfo.personalVersion).toBe(2);
    expect(await (await restarted.client.predict(probe)).array()).toEqual(before);
    probe.dispose();
    expect(equal(tensorsOf((await restarted.store.loadModel('personal'))!)[4]!, heads[0]!)).toBe(true);
  });

  it('a device never joins a round whose plan would upload a layer its app keeps personal', async () => {
    const keeper = device(2, { method: 'personal-layers', personalLayers: ['output'] });
    const plain = [device(3, {}), device(4, {})];
    await Promise.all([keeper, ...plain].map((d) => d.client.start()));
    await bed.coordinator.eligible(3);
    const abandoned = keeper.client.next('roundAbandoned');
    const failure = keeper.client.next('error');
    const round = await startRound({ minClients: 2, targetClients: 3, overSelection: 1, epochs: 1, batchSize: 10, learningRate: 0.05 });
    expect(round.status).toBe(201);
    expect(await abandoned).toEqual({ roundId: round.id, reason: 'training_failed' });
    expect((await failure).message).toMatch(/would upload the personal layers output/);
    expect((await bed.coordinator.roundEnded(round.id, 60_000)).status).toBe('committed');
    expect(keeper.sent.some((m) => m.event === 'round:update')).toBe(false);
  });

  it('Ditto keeps its own model within the proximal bound of each new global version, across versions and restarts', async () => {
    const dir = bed.tempDir('flock-ditto-');
    const lambda = 0.5;
    const method: PersonalizationOptions = { method: 'ditto', dittoLambda: lambda, fineTuneEpochs: 3, batchSize: 10, learningRate: 0.05 };
    const devices = [device(5, method, new FileModelStore(dir)), device(1, method)];
    await Promise.all(devices.map((d) => d.client.start()));
    await bed.coordinator.eligible(2);
    const evaluations: GlobalModelEvaluatedEvent[] = [];
    devices[0]!.client.on('globalModelEvaluated', (e) => evaluations.push(e));
    const round = await startRound({ minClients: 2, targetClients: 2, overSelection: 1, epochs: 1, batchSize: 10, learningRate: 0.05 });
    const committed = await bed.coordinator.roundEnded(round.id, 60_000);
    expect(committed.status).toBe('committed');
    const version = committed.committedVersion!;
    const { report, decision } = (await waitFor(
      () => evaluations.find((e) => e.modelVersion === version),
      (e) => e !== undefined,
      60_000,
      `the evaluation of version ${version}`,
    ))!;
    expect(decision.adopt).toBe(false); // Ditto keeps (moves) its own model
    expect(report).toMatchObject({ modelVersion: version, numExamples: TEST_PER_CLIENT, adopted: false });

    // ||v - w|| <= sqrt(2 F(w) / lambda): F(v) + lambda/2 ||v - w||^2 fell below F(w) (v started at w).
    const w = await globalTensors(version);
    const stored = (await devices[0]!.store.loadModel('personal'))!;
    expect(stored.version).toBe(version);
    const v = tensorsOf(stored);
    const trainLoss = await lossOf(w, stored, 5);
    const moved = distance(v, w);
    expect(moved).toBeGreaterThan(0);
    expect(moved).toBeLessThanOrEqual(Math.sqrt((2 * trainLoss) / lambda));

    // A restart keeps v; the next global version moves it again rather than replacing it.
    await bed.dispose(devices[0]!.client);
    const restarted = device(5, method, new FileModelStore(dir));
    await restarted.client.load();
    expect(tensorsOf((await restarted.store.loadModel('personal'))!).every((tensor, i) => equal(tensor, v[i]!))).toBe(true);
    await restarted.client.start();
    await bed.coordinator.eligible(2);
    const third = restarted.client.next('globalModelEvaluated', (e) => e.modelVersion === version + 1);
    const second = await startRound({ minClients: 2, targetClients: 2, overSelection: 1, epochs: 1, batchSize: 10, learningRate: 0.05 });
    expect((await bed.coordinator.roundEnded(second.id, 60_000)).status).toBe('committed');
    await third;
    const w3 = await globalTensors(version + 1);
    const v3 = tensorsOf((await restarted.store.loadModel('personal'))!);
    expect(distance(v3, w3)).toBeGreaterThan(0);
    expect(distance(v3, v)).toBeGreaterThan(0);
  });
});

/** Mean cross-entropy of the global weights `w` (in `like`'s topology) on device k's training examples. */
async function lossOf(w: Float32Array[], like: StoredModel, k: number): Promise<number> {
  const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: like.topology as object, weightSpecs: like.weightSpecs, weightData: concat(w) }));
  const start = k * (TRAIN_PER_CLIENT + TEST_PER_CLIENT);
  const xs = tf.tensor2d(bed.mnist.images.subarray(start * 784, (start + TRAIN_PER_CLIENT) * 784), [TRAIN_PER_CLIENT, 784]);
  const ys = tf.oneHot(tf.tensor1d(Array.from(bed.mnist.labels.subarray(start, start + TRAIN_PER_CLIENT)), 'int32'), 10);
  const loss = tf.tidy(() => tf.losses.softmaxCrossEntropy(ys, tf.log(tf.clipByValue(model.predict(xs) as tf.Tensor, 1e-7, 1))));
  const value = (await loss.data())[0]!;
  tf.dispose([xs, ys, loss]);
  model.dispose();
  return value;
}

function concat(tensors: readonly Float32Array[]): ArrayBuffer {
  const flat = new Float32Array(tensors.reduce((n, t) => n + t.length, 0));
  let offset = 0;
  for (const t of tensors) {
    flat.set(t, offset);
    offset += t.length;
  }
  return flat.buffer;
}
