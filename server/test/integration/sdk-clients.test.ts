import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { FederatedClient, ManualCondition, MemoryModelStore, type FederatedClientOptions, type ModelStore } from '@flock/client-sdk';
import { FileModelStore } from '@flock/client-sdk/node';
import type { RoundDetails } from '../../src/contract/index.js';
import { CLIENT_TOKEN, waitFor } from '../support/coordinator.js';
import { mnistSlice, recordingTransport, sdkTestBed } from '../support/sdk-device.js';

const MODEL_BYTES = 199_210 * 4;
const TRAIN_PER_CLIENT = 120;
const TEST_PER_CLIENT = 40;

const bed = sdkTestBed(8 * (TRAIN_PER_CLIENT + TEST_PER_CLIENT));

interface OutgoingMessage {
  event: string;
  args: unknown[];
}

interface Device {
  client: FederatedClient;
  idle: ManualCondition;
  sent: OutgoingMessage[];
}

/** A real SDK client; every message it emits on the socket is recorded. */
function device(k: number, store: ModelStore = new MemoryModelStore(), transformDelta?: FederatedClientOptions['transformDelta']): Device {
  const idle = new ManualCondition('idle', 'yes');
  const sent: OutgoingMessage[] = [];
  const client = new FederatedClient({
    serverUrl: bed.coordinator.url,
    clientToken: CLIENT_TOKEN,
    dataSource: mnistSlice(bed.mnist, k, TRAIN_PER_CLIENT, TEST_PER_CLIENT),
    conditions: [idle, new ManualCondition('charging', 'yes'), new ManualCondition('unmetered', 'yes')],
    store,
    ...(transformDelta ? { transformDelta } : {}),
    socketOptions: { transports: ['websocket'] },
    ...recordingTransport((event, args) => sent.push({ event, args })),
  });
  bed.track(client);
  return { client, idle, sent };
}

describe('SDK clients against the real bed.coordinator', () => {
  it('three devices train, upload only deltas, commit a round, then test and report the new model', async () => {
    const devices = [0, 1, 2].map((k) => device(k));
    await Promise.all(devices.map((d) => d.client.start()));
    await bed.coordinator.eligible(3);
    const uploads = devices.map((d) => d.client.next('uploaded'));
    const evaluations = devices.map((d) => d.client.next('globalModelEvaluated', (e) => e.modelVersion === 2));
    const roundId = await bed.coordinator.startRound({ minClients: 3, targetClients: 3, overSelection: 1, epochs: 1, batchSize: 10, learningRate: 0.05 });

    for (const uploaded of await Promise.all(uploads)) {
      expect(uploaded).toMatchObject({ roundId, modelVersion: 1, bytes: MODEL_BYTES, numExamples: TRAIN_PER_CLIENT, result: { accepted: true } });
      expect(Number.isFinite(uploaded.trainLoss)).toBe(true);
      // where the device's time went: training dominates; every phase was measured
      const { downloadMs, trainingMs, encodeMs, uploadMs } = uploaded.timings;
      for (const ms of [downloadMs, trainingMs, encodeMs, uploadMs]) expect(ms).toBeGreaterThanOrEqual(0);
      expect(trainingMs).toBeGreaterThan(encodeMs);
      expect(uploadMs).toBeGreaterThan(0);
    }
    const round = await bed.coordinator.roundEnded(roundId, 60_000);
    expect(round).toMatchObject({ status: 'committed', committedVersion: 2 });
    expect(round.metrics).toMatchObject({ accepted: 3, totalExamples: 3 * TRAIN_PER_CLIENT, bytesReceived: 3 * MODEL_BYTES });
    expect(round.metrics.validationMs).toBeGreaterThan(0);
    // socket.io's decoding of the uploads, timed from their last packet's arrival
    expect(round.metrics.decodeMs).toBeGreaterThan(0);

    // each device tested version 2 on its held-out data and reported only aggregate numbers
    for (const evaluated of await Promise.all(evaluations)) {
      expect(evaluated.report).toMatchObject({ modelVersion: 2, numExamples: TEST_PER_CLIENT });
      expect(evaluated.report!.globalAccuracy).toBeGreaterThan(0.5);
    }
    const withEvaluations = await waitFor(
      () => bed.coordinator.api<RoundDetails>(`/api/rounds/${roundId}`),
      (r) => r.body.metrics.localEvaluation?.reports === 3,
      15_000,
      'evaluation reports',
    );
    expect(withEvaluations.body.metrics.localEvaluation).toMatchObject({ reports: 3, numExamples: 3 * TEST_PER_CLIENT });

    // What crossed the socket: protocol events only (the proof of the device key: a 64-byte signature); weights as one binary buffer; no examples or labels.
    const allowed = new Set(['client:proof', 'client:conditions', 'model:fetch', 'round:update', 'round:abandon', 'model:evaluation']);
    for (const { sent } of devices) {
      expect(
        sent.every((m) => allowed.has(m.event)),
        sent.map((m) => m.event).join(','),
      ).toBe(true);
      const updates = sent.filter((m) => m.event === 'round:update');
      expect(updates).toHaveLength(1);
      const payload = updates[0]!.args[0] as { delta: { data: ArrayBuffer; shapes: number[][] }; numExamples: number };
      expect(payload.delta.data).toBeInstanceOf(ArrayBuffer);
      expect(payload.delta.data.byteLength).toBe(MODEL_BYTES);
      // Everything except the weight buffer is a few hundred bytes of JSON: no room for 120 examples.
      for (const message of sent) {
        const json = JSON.stringify(message.args, (key, value: unknown) =>
          value instanceof ArrayBuffer || ArrayBuffer.isView(value) ? `<${(value as ArrayBuffer).byteLength} bytes>` : value,
        );
        expect(json.length, message.event).toBeLessThan(1000);
      }
    }
  });

  it('a device whose conditions drop mid-training uploads nothing, and the round commits with the others', async () => {
    const devices = [3, 4, 5].map((k) => device(k));
    await Promise.all(devices.map((d) => d.client.start()));
    await bed.coordinator.eligible(3);
    const quitter = devices[0]!;
    let uploadedByQuitter = false;
    quitter.client.on('uploaded', () => (uploadedByQuitter = true));
    // The user picks the phone up during the round's training (not during fine-tuning after a local test of the current version).
    quitter.client.on('trainingProgress', (progress) => {
      if (progress.purpose === 'round') quitter.idle.set('no');
    });
    const abandoned = quitter.client.next('roundAbandoned');
    const others = devices.slice(1).map((d) => d.client.next('uploaded'));
    const roundId = await bed.coordinator.startRound({ minClients: 2, targetClients: 3, overSelection: 1, epochs: 2, batchSize: 10, learningRate: 0.05 });

    expect(await abandoned).toEqual({ roundId, reason: 'conditions_changed' });
    await Promise.all(others);
    const round = await bed.coordinator.roundEnded(roundId, 60_000);
    expect(round.status).toBe('committed');
    expect(round.metrics).toMatchObject({ selected: 3, accepted: 2, dropped: { conditions_changed: 1 } });
    expect(uploadedByQuitter).toBe(false);
    expect(quitter.sent.some((m) => m.event === 'round:update')).toBe(false);
    // it also told the bed.coordinator it is no longer eligible
    expect(quitter.sent.filter((m) => m.event === 'client:conditions').at(-1)?.args[0]).toMatchObject({ eligible: false, reasons: ['not_idle'] });
  });

  it('transformDelta changes what a device uploads; a transform that breaks the shapes uploads nothing', async () => {
    const honest = device(0);
    const zeroing = device(1, undefined, (delta) => delta.map((tensor) => new Float32Array(tensor.length)));
    const broken = device(2, undefined, (delta) => delta.slice(1).map((tensor) => tensor.subarray(1)));
    const devices = [honest, zeroing, broken];
    await Promise.all(devices.map((d) => d.client.start()));
    await bed.coordinator.eligible(3);
    const failure = broken.client.next('error');
    const abandoned = broken.client.next('roundAbandoned');
    const uploads = [honest, zeroing].map((d) => d.client.next('uploaded'));
    const roundId = await bed.coordinator.startRound({ minClients: 2, targetClients: 3, overSelection: 1, epochs: 1, batchSize: 10, learningRate: 0.05 });

    expect((await failure).code).toBe('training_failed');
    expect(await abandoned).toEqual({ roundId, reason: 'training_failed' });
    await Promise.all(uploads);
    const round = await bed.coordinator.roundEnded(roundId, 60_000);
    expect(round.metrics).toMatchObject({ accepted: 2, dropped: { training_failed: 1 } });
    expect(round.status).toBe('committed');
    const sentDelta = (d: Device) => new Float32Array((d.sent.find((m) => m.event === 'round:update')!.args[0] as { delta: { data: ArrayBuffer } }).delta.data);
    expect(sentDelta(zeroing).every((v) => v === 0)).toBe(true);
    expect(sentDelta(honest).some((v) => v !== 0)).toBe(true);
    expect(broken.sent.some((m) => m.event === 'round:update')).toBe(false);
  });

  it('a restarted device resumes with its persisted key (so its id) and personalized model', async () => {
    const dir = bed.tempDir('flock-sdk-state-');
    const first = device(6, new FileModelStore(dir));
    const helper = device(7);
    await Promise.all([first.client.start(), helper.client.start()]);
    await bed.coordinator.eligible(2);
    const adopted = first.client.next('modelAdopted', (e) => e.version > 1);
    const roundId = await bed.coordinator.startRound({ minClients: 2, targetClients: 2, overSelection: 1 });
    const round = await bed.coordinator.roundEnded(roundId, 60_000);
    expect(round.status).toBe('committed');
    const adoption = await adopted;
    const clientId = first.client.clientId;
    const probe = tf.tensor2d(bed.mnist.images.subarray(0, 5 * 784), [5, 784]);
    const before = await (await first.client.predict(probe)).array();
    await bed.dispose(first.client);

    // a new process: same store directory, no network needed to predict
    const restarted = device(6, new FileModelStore(dir));
    await restarted.client.load();
    expect(restarted.client.clientId).toBe(clientId);
    expect(restarted.client.modelInfo.personalVersion).toBe(adoption.version);
    const after = await (await restarted.client.predict(probe)).array();
    probe.dispose();
    expect(after).toEqual(before);
    // and it rejoins the federation under the same id
    await restarted.client.start();
    await bed.coordinator.eligible(2);
    const next = restarted.client.next('roundJoined');
    const second = await bed.coordinator.startRound({ minClients: 2, targetClients: 2, overSelection: 1 });
    expect((await next).roundId).toBe(second);
    expect((await bed.coordinator.roundEnded(second, 60_000)).status).toBe('committed');
  });
});
