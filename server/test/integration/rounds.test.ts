import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { concatWeights } from '@flock/client-sdk';
import { asFloat32, PROTOCOL_VERSION, type ModelPayload, type RejectionReason } from '@flock/client-sdk/protocol';
import type { ModelVersionMeta, RoundRecord } from '../../src/contract/index.js';
import { EXACT_AVERAGES, startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { makeDelta, ProtocolClient } from '../support/protocol-client.js';
import { noKeepAliveFetch } from '../../src/simulation/http-fetch.js';

const MODEL_BYTES = 199_210 * 4;

let coordinator: TestCoordinator;
let clients: ProtocolClient[] = [];
let eligibleCount = 0;

async function connectClients(count: number, eligible = true): Promise<ProtocolClient[]> {
  const connected = await Promise.all(Array.from({ length: count }, () => ProtocolClient.connect(coordinator.url, { eligible })));
  clients.push(...connected);
  if (eligible) eligibleCount += count;
  // conditions reports are fire-and-forget: wait until the coordinator has counted them
  await waitFor(
    () => coordinator.api<{ eligible: number }>('/api/clients'),
    (r) => r.body.eligible === eligibleCount,
    5000,
    'eligible clients',
  );
  return connected;
}

async function startRound(body: Record<string, unknown>): Promise<RoundRecord> {
  const { status, body: round } = await coordinator.api<RoundRecord>('/api/rounds', { method: 'POST', body: JSON.stringify(body) });
  expect(status, JSON.stringify(round)).toBe(201);
  return round;
}

async function weightsOf(version: number | 'current'): Promise<Float32Array> {
  const response = await noKeepAliveFetch(`${coordinator.url}/api/models/${version}/weights.bin`, {
    headers: { Authorization: `Bearer ${coordinator.config.operatorToken}` },
  });
  expect(response.status).toBe(200);
  return asFloat32(new Uint8Array(await response.arrayBuffer()));
}

const flatten = (tensors: Float32Array[]): Float32Array => new Float32Array(concatWeights(tensors));

beforeAll(async () => {
  // These tests check FedAvg's exact arithmetic across rounds: without the adaptive bound and cap.
  coordinator = await startTestCoordinator({ maxUploadBytes: MODEL_BYTES + 4096, ...EXACT_AVERAGES });
});
afterEach(async () => {
  clients.forEach((c) => c.disconnect());
  clients = [];
  eligibleCount = 0;
  await coordinator.devicesLeft();
});
afterAll(async () => {
  await coordinator?.dispose();
});

describe('a federated round over real socket.io', () => {
  it("commits the example-weighted average of three clients' deltas", async () => {
    const devices = await connectClients(3);
    const before = await coordinator.api<ModelVersionMeta>('/api/models/current');
    const baseWeights = await weightsOf(before.body.version);
    const round = await startRound({ minClients: 3, targetClients: 3, overSelection: 1, deadlineSeconds: 30, epochs: 1, batchSize: 10, learningRate: 0.1 });
    expect(round.status).toBe('selecting');
    expect(round.baseVersion).toBe(before.body.version);

    const examples = [100, 300, 600];
    const deltas: Float32Array[][] = [];
    let model: ModelPayload | null = null;
    await Promise.all(
      devices.map(async (device, k) => {
        const configuration = await device.configurations.next();
        expect(configuration).toMatchObject({ roundId: round.id, modelVersion: before.body.version, plan: { epochs: 1, batchSize: 10, learningRate: 0.1 } });
        model = await device.fetchModel(configuration.modelVersion);
        deltas[k] = makeDelta(model, k + 1);
        expect(await device.upload(configuration, model, deltas[k], examples[k]!, 0.2 * (k + 1))).toEqual({ accepted: true });
      }),
    );

    const ended = await coordinator.roundEnded(round.id);
    expect(ended.status).toBe('committed');
    expect(ended.committedVersion).toBe(before.body.version + 1);
    expect(ended.transitions.map((t) => t.to)).toEqual(['selecting', 'configuring', 'reporting', 'committing', 'committed']);
    expect(ended.metrics).toMatchObject({
      selected: 3,
      reported: 3,
      accepted: 3,
      rejected: {},
      dropped: {},
      totalExamples: 1000,
      bytesReceived: 3 * MODEL_BYTES,
    });
    expect(ended.metrics.meanTrainLoss).toBeCloseTo((0.2 * 100 + 0.4 * 300 + 0.6 * 600) / 1000, 6);

    // new = base + sum_k n_k delta_k / sum_k n_k, checked value by value on the downloaded weights
    const committed = await weightsOf(ended.committedVersion!);
    const flatDeltas = deltas.map(flatten);
    let normSquared = 0;
    for (let i = 0; i < committed.length; i++) {
      const mean = (examples[0]! * flatDeltas[0]![i]! + examples[1]! * flatDeltas[1]![i]! + examples[2]! * flatDeltas[2]![i]!) / 1000;
      normSquared += mean * mean;
      expect(Math.abs(committed[i]! - (baseWeights[i]! + mean))).toBeLessThan(1e-6);
    }
    expect(ended.metrics.updateNorm).toBeCloseTo(Math.sqrt(normSquared), 3);

    for (const device of devices) {
      expect(await device.closed.next()).toMatchObject({ roundId: round.id, outcome: 'committed', modelVersion: ended.committedVersion });
      expect(await device.published.next()).toMatchObject({ version: ended.committedVersion, parentVersion: before.body.version, roundId: round.id });
    }
    const current = await coordinator.api<ModelVersionMeta>('/api/models/current');
    expect(current.body).toMatchObject({ version: ended.committedVersion, parentVersion: before.body.version, roundId: round.id, source: 'round' });
  });

  it('fails cleanly when the quorum is missed and leaves the model untouched', async () => {
    const devices = await connectClients(3);
    const before = await coordinator.api<ModelVersionMeta>('/api/models/current');
    const baseWeights = await weightsOf(before.body.version);
    const round = await startRound({ minClients: 3, targetClients: 3, overSelection: 1, deadlineSeconds: 1.5 });
    // two upload, the third stays silent past the deadline
    await Promise.all(
      devices.slice(0, 2).map(async (device, k) => {
        const configuration = await device.configurations.next();
        const model = await device.fetchModel(configuration.modelVersion);
        expect((await device.upload(configuration, model, makeDelta(model, k), 50)).accepted).toBe(true);
      }),
    );
    const ended = await coordinator.roundEnded(round.id);
    expect(ended.status).toBe('failed');
    expect(ended.error).toMatch(/quorum not reached \(deadline reached\): 2 valid update\(s\), 3 needed/);
    expect(ended.committedVersion).toBeNull();
    expect(ended.transitions.map((t) => t.to)).toEqual(['selecting', 'configuring', 'reporting', 'failed']);
    const after = await coordinator.api<ModelVersionMeta>('/api/models/current');
    expect(after.body.version).toBe(before.body.version);
    expect(Buffer.from((await weightsOf('current')).buffer).equals(Buffer.from(baseWeights.buffer))).toBe(true);
    for (const device of devices) expect((await device.closed.next()).outcome).toBe('failed');
  });

  it('fails at selection when too few devices are eligible, and never selects ineligible ones', async () => {
    const [eligible] = await connectClients(1);
    const [onBattery] = await connectClients(1, false);
    const round = await startRound({ minClients: 2, targetClients: 2, selectionTimeoutSeconds: 1 });
    const ended = await coordinator.roundEnded(round.id);
    expect(ended.status).toBe('failed');
    expect(ended.error).toMatch(/selection timed out: 1 eligible client\(s\) available, 2 needed/);
    expect(eligible!.configurations.items).toHaveLength(0);
    expect(onBattery!.configurations.items).toHaveLength(0);
  });

  it('drops a client that disconnects mid-round and commits with the others', async () => {
    const devices = await connectClients(4);
    const before = await coordinator.api<ModelVersionMeta>('/api/models/current');
    const round = await startRound({ minClients: 3, targetClients: 4, overSelection: 1, deadlineSeconds: 30 });
    const configurations = await Promise.all(devices.map((d) => d.configurations.next()));
    devices[3]!.disconnect();
    await Promise.all(
      devices.slice(0, 3).map(async (device, k) => {
        const model = await device.fetchModel(configurations[k]!.modelVersion);
        expect((await device.upload(configurations[k]!, model, makeDelta(model, k), 10)).accepted).toBe(true);
      }),
    );
    // every remaining participant answered: the round closes before its 30 s deadline
    const ended = await coordinator.roundEnded(round.id);
    expect(ended.status).toBe('committed');
    expect(ended.committedVersion).toBe(before.body.version + 1);
    expect(ended.metrics).toMatchObject({ selected: 4, accepted: 3, dropped: { disconnected: 1 } });
    expect(ended.transitions.find((t) => t.to === 'committing')?.note).toBe('all participants answered');
  });

  it('drops a client that abandons because its conditions changed', async () => {
    const devices = await connectClients(3);
    const round = await startRound({ minClients: 2, targetClients: 3, overSelection: 1, deadlineSeconds: 30 });
    const configurations = await Promise.all(devices.map((d) => d.configurations.next()));
    devices[0]!.abandon(round.id, 'conditions_changed');
    for (const k of [1, 2]) {
      const model = await devices[k]!.fetchModel(configurations[k]!.modelVersion);
      await devices[k]!.upload(configurations[k]!, model, makeDelta(model, k), 10);
    }
    const ended = await coordinator.roundEnded(round.id);
    expect(ended.status).toBe('committed');
    expect(ended.metrics.dropped).toEqual({ conditions_changed: 1 });
  });

  it('rejects every kind of invalid upload with its reason code, counts it, and keeps it out of the aggregate', async () => {
    const devices = await connectClients(6);
    const [bystander] = await connectClients(1, false); // connected but not eligible: never selected
    const before = await coordinator.api<ModelVersionMeta>('/api/models/current');
    const baseWeights = await weightsOf(before.body.version);
    const round = await startRound({ minClients: 1, targetClients: 6, overSelection: 1, deadlineSeconds: 30, maxUpdateNorm: 5 });
    const configurations = await Promise.all(devices.map((d) => d.configurations.next()));
    const model = await devices[0]!.fetchModel(configurations[0]!.modelVersion);
    const shapes = model.weightSpecs.map((s) => s.shape);
    const good = (seed: number) => makeDelta(model, seed, 0.001);
    const expectRejected = async (device: ProtocolClient, payload: unknown, reason: RejectionReason, message: RegExp) => {
      const result = await device.uploadRaw(payload);
      expect(result).toMatchObject({ accepted: false, reason });
      expect(result.accepted === false && result.message).toMatch(message);
      // the same refusal arrives as an error event with the stable code
      const event = await device.rejections.next(device.rejections.items.length - 1);
      expect(event.reason).toBe(reason);
    };
    const upload = (configuration = configurations[0]!, overrides: Record<string, unknown> = {}, delta = good(1)) => {
      const flat = flatten(delta);
      return {
        roundId: configuration.roundId,
        modelVersion: configuration.modelVersion,
        numExamples: 20,
        trainLoss: 0.3,
        delta: { shapes, data: flat.buffer },
        ...overrides,
      };
    };

    // checked before anything else, and do not use up the client's one upload
    await expectRejected(devices[0]!, { ...upload(), delta: { shapes, data: new Uint8Array(MODEL_BYTES + 8192) } }, 'payload_too_large', /limit is/);
    await expectRejected(devices[0]!, upload(undefined, { numExamples: -3 }), 'malformed', /numExamples/);
    await expectRejected(devices[0]!, { roundId: round.id }, 'malformed', /invalid upload/);
    await expectRejected(bystander!, upload(), 'not_selected', /not a participant/);
    await expectRejected(devices[0]!, upload(undefined, { roundId: randomUUID() }), 'round_not_open', /not open/);
    // a valid one, then its replay
    expect(await devices[0]!.uploadRaw(upload(configurations[0], {}, good(10)))).toEqual({ accepted: true });
    await expectRejected(devices[0]!, upload(configurations[0], {}, good(10)), 'duplicate_upload', /already uploaded/);
    await expectRejected(devices[1]!, upload(configurations[1], { modelVersion: before.body.version + 7 }), 'version_mismatch', /trains version/);
    await expectRejected(
      devices[2]!,
      { ...upload(configurations[2]), delta: { shapes: shapes.slice(1), data: flatten(good(2).slice(1)).buffer } },
      'shape_mismatch',
      /tensors/,
    );
    const withNaN = good(3);
    withNaN[2]![17] = Number.NaN;
    await expectRejected(devices[3]!, upload(configurations[3], {}, withNaN), 'non_finite', /NaN or infinite/);
    await expectRejected(devices[4]!, upload(configurations[4], {}, makeDelta(model, 4, 1)), 'norm_exceeded', /exceeds the round's bound 5/);
    expect(await devices[5]!.uploadRaw(upload(configurations[5], { numExamples: 60 }, good(11)))).toEqual({ accepted: true });

    const ended = await coordinator.roundEnded(round.id);
    expect(ended.status).toBe('committed');
    expect(ended.metrics.accepted).toBe(2);
    expect(ended.metrics.rejected).toEqual({
      payload_too_large: 1,
      malformed: 2,
      not_selected: 1,
      duplicate_upload: 1,
      version_mismatch: 1,
      shape_mismatch: 1,
      non_finite: 1,
      norm_exceeded: 1,
    });
    // only the two accepted deltas (20 and 60 examples) moved the model
    const committed = await weightsOf(ended.committedVersion!);
    const a = flatten(good(10));
    const b = flatten(good(11));
    for (let i = 0; i < committed.length; i += 97) {
      expect(Math.abs(committed[i]! - (baseWeights[i]! + (20 * a[i]! + 60 * b[i]!) / 80))).toBeLessThan(1e-6);
    }
    // a straggler after the commit is told the round is closed
    await expectRejected(devices[1]!, upload(configurations[1]), 'round_closed', /committed/);

    const metrics = await coordinator.api<string>('/metrics');
    expect(metrics.body).toMatch(/flock_uploads_total\{result="rejected",reason="norm_exceeded"\} 1/);
    expect(metrics.body).toMatch(/flock_uploads_total\{result="rejected",reason="round_closed"\} 1/);
    // an upload naming an unknown round belongs to no round: counted globally only
    expect(metrics.body).toMatch(/flock_uploads_total\{result="rejected",reason="round_not_open"\} 1/);
  });
});

describe('the device handshake', () => {
  it('refuses a wrong client token, the operator token and a wrong protocol version', async () => {
    await expect(ProtocolClient.connect(coordinator.url, { token: 'not-the-token-at-all' })).rejects.toThrow('unauthorized');
    await expect(ProtocolClient.connect(coordinator.url, { token: coordinator.config.operatorToken })).rejects.toThrow('unauthorized');
    await expect(ProtocolClient.connect(coordinator.url, { protocolVersion: 99 })).rejects.toThrow('protocol_mismatch');
    await expect(ProtocolClient.connect(coordinator.url, { publicKey: { kty: 'EC', crv: 'P-256', x: 'bad id!', y: 'bad' } })).rejects.toThrow(
      'invalid_public_key',
    );
    const metrics = await coordinator.api<string>('/metrics');
    expect(metrics.body).toMatch(/flock_connections_refused_total\{reason="unauthorized"\} 2/);
  });

  it('welcomes a valid device with the current version and upload limit', async () => {
    const [device] = await connectClients(1);
    const current = await coordinator.api<ModelVersionMeta>('/api/models/current');
    expect(device!.welcome).toMatchObject({
      clientId: device!.clientId,
      protocolVersion: PROTOCOL_VERSION,
      currentModelVersion: current.body.version,
      maxUploadBytes: MODEL_BYTES + 4096,
    });
    const model = await device!.fetchModel();
    expect(model.version).toBe(current.body.version);
    expect(model.weights.byteLength).toBe(MODEL_BYTES);
  });
});
