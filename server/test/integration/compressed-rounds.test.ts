import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  applyDownloadDelta,
  asFloat32,
  ClientEvent,
  decodeInt8,
  decodeTopk,
  encodeInt8,
  encodedDeltaBytes,
  encodeTopk,
  encodeWeights,
  topkCount,
  type ModelPayload,
  type RejectionReason,
  type RoundConfiguration,
} from '@flock/client-sdk/protocol';
import type { ModelVersionMeta, RoundRecord } from '../../src/contract/index.js';
import { noKeepAliveFetch } from '../../src/simulation/http-fetch.js';
import { EXACT_AVERAGES, startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { makeDelta, ProtocolClient } from '../support/protocol-client.js';

/*
 * Compressed rounds over real socket.io against the real coordinator: what it folds is exactly the
 * decoded deltas (int8, top-k), a delta in another encoding or with too many values is refused and
 * counted, the norm bound applies to the decoded values, bytes up and down are in the round's
 * metrics, and a download delta rebuilds the version within its stated bound.
 */

const VALUES = 199_210;
const MODEL_BYTES = VALUES * 4;
const TENSORS = 6;
const SHAPES = [[784, 200], [200], [200, 200], [200], [200, 10], [10]];

let coordinator: TestCoordinator;
let clients: ProtocolClient[] = [];
let eligibleCount = 0;

async function connectClients(count: number): Promise<ProtocolClient[]> {
  const connected = await Promise.all(Array.from({ length: count }, () => ProtocolClient.connect(coordinator.url)));
  clients.push(...connected);
  eligibleCount += count;
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

async function weightsOf(version: number): Promise<Float32Array> {
  const response = await noKeepAliveFetch(`${coordinator.url}/api/models/${version}/weights.bin`, {
    headers: { Authorization: `Bearer ${coordinator.config.operatorToken}` },
  });
  expect(response.status).toBe(200);
  return asFloat32(new Uint8Array(await response.arrayBuffer()));
}

const shapesOf = (model: ModelPayload): number[][] => model.weightSpecs.map((spec) => spec.shape);

function uploadOf(configuration: RoundConfiguration, delta: unknown, numExamples: number): unknown {
  return { roundId: configuration.roundId, modelVersion: configuration.modelVersion, numExamples, trainLoss: 0.4, delta };
}

/** Runs one round of three devices uploading `encode(delta_k)`; returns the decoded deltas, weights and the ended round. */
async function compressedRound(
  compression: Record<string, unknown>,
  encode: (delta: Float32Array[], model: ModelPayload) => { shapes: number[][]; data: Uint8Array; encoding: string },
  decode: (data: Uint8Array, model: ModelPayload) => Float32Array,
) {
  const devices = await connectClients(3);
  const before = await coordinator.api<ModelVersionMeta>('/api/models/current');
  const base = await weightsOf(before.body.version);
  const round = await startRound({ minClients: 3, targetClients: 3, overSelection: 1, deadlineSeconds: 30, compression });
  expect(round.params.plan.compression).toEqual(compression);
  const examples = [100, 300, 600];
  const decoded: Float32Array[] = [];
  const sentBytes: number[] = [];
  let fetchedBytes = 0;
  await Promise.all(
    devices.map(async (device, k) => {
      const configuration = await device.configurations.next();
      expect(configuration.plan.compression).toEqual(compression);
      const model = await device.fetchModel(configuration.modelVersion);
      fetchedBytes += model.weights.byteLength;
      const encoded = encode(makeDelta(model, k + 1, 0.002), model);
      decoded[k] = decode(encoded.data, model);
      sentBytes[k] = encoded.data.byteLength;
      expect(await device.uploadRaw(uploadOf(configuration, encoded, examples[k]!))).toEqual({ accepted: true });
    }),
  );
  const ended = await coordinator.roundEnded(round.id);
  expect(ended.status).toBe('committed');
  const committed = await weightsOf(ended.committedVersion!);
  // new = base + Σ n_k decoded_k / Σ n_k: the coordinator folded exactly the decoded values.
  for (let i = 0; i < committed.length; i++) {
    const mean = (examples[0]! * decoded[0]![i]! + examples[1]! * decoded[1]![i]! + examples[2]! * decoded[2]![i]!) / 1000;
    expect(Math.abs(committed[i]! - (base[i]! + mean))).toBeLessThan(1e-6);
  }
  const upBytes = sentBytes.reduce((a, b) => a + b, 0);
  expect(ended.metrics).toMatchObject({ accepted: 3, rejected: {}, bytesReceived: upBytes, bytesUp: upBytes, bytesDown: fetchedBytes });
  return { ended, sentBytes };
}

beforeAll(async () => {
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

describe('compressed rounds over real socket.io', () => {
  it('int8: the coordinator folds exactly the dequantized deltas; uploads are 4 bytes per tensor plus 1 per value', async () => {
    let seed = 1;
    const { sentBytes } = await compressedRound(
      { kind: 'int8' },
      (delta, model) => {
        const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
        return { shapes: shapesOf(model), data: encodeInt8(delta, random), encoding: 'int8' };
      },
      (data, model) => decodeInt8(data, shapesOf(model)),
    );
    expect(sentBytes).toEqual([4 * TENSORS + VALUES, 4 * TENSORS + VALUES, 4 * TENSORS + VALUES]);
    expect(MODEL_BYTES / sentBytes[0]!).toBeGreaterThan(3.99);
  });

  it('top-k: the coordinator folds exactly the kept values, at most the plan fraction of them', async () => {
    const fraction = 0.01;
    const kept = topkCount(VALUES, fraction);
    const { sentBytes } = await compressedRound(
      { kind: 'topk', topkFraction: fraction },
      (delta, model) => ({ shapes: shapesOf(model), data: encodeTopk(delta, fraction).data, encoding: 'topk' }),
      (data, model) => decodeTopk(data, shapesOf(model), kept),
    );
    // 37 bytes per tensor, half a byte per kept value and at least a bit of gap each; at most encodedDeltaBytes.
    for (const bytes of sentBytes) {
      expect(bytes).toBeGreaterThanOrEqual(37 * TENSORS + Math.ceil(kept / 2) + Math.ceil(kept / 8));
      expect(bytes).toBeLessThanOrEqual(encodedDeltaBytes('topk', SHAPES, kept));
    }
    expect(MODEL_BYTES / sentBytes[0]!).toBeGreaterThan(100);
  });

  it('refuses another encoding than the plan names, too many top-k values and broken encodings, and bounds the decoded norm', async () => {
    const devices = await connectClients(6);
    const round = await startRound({
      minClients: 1,
      targetClients: 6,
      overSelection: 1,
      deadlineSeconds: 30,
      maxUpdateNorm: 5,
      compression: { kind: 'topk', topkFraction: 0.001 },
    });
    const configurations = await Promise.all(devices.map((d) => d.configurations.next()));
    const model = await devices[0]!.fetchModel(configurations[0]!.modelVersion);
    const shapes = shapesOf(model);
    const small = makeDelta(model, 1, 0.001);
    const expectRejected = async (k: number, delta: unknown, reason: RejectionReason, message: RegExp) => {
      const result = await devices[k]!.uploadRaw(uploadOf(configurations[k]!, delta, 10));
      expect(result).toMatchObject({ accepted: false, reason });
      expect(result.accepted === false && result.message).toMatch(message);
    };
    await expectRejected(0, encodeWeights(small, shapes), 'compression_mismatch', /float32; round .* takes topk/);
    await expectRejected(1, { shapes, data: encodeInt8(small, null), encoding: 'int8' }, 'compression_mismatch', /int8; round .* takes topk/);
    await expectRejected(
      2,
      { shapes, data: encodeTopk(small, 0.01).data, encoding: 'topk' },
      'compression_mismatch',
      /carries 1993 values; the round allows 200/,
    );
    const accepted = encodeTopk(small, 0.001).data;
    const broken = accepted.slice();
    new DataView(broken.buffer).setUint32(0, 784 * 200 + 1, true); // more values than the first tensor has
    await expectRejected(3, { shapes, data: broken, encoding: 'topk' }, 'malformed', /counts 156801 values of its 156800/);
    // The norm bound applies to what the sparse values stand for.
    const large = makeDelta(model, 2, 1);
    await expectRejected(4, { shapes, data: encodeTopk(large, 0.001).data, encoding: 'topk' }, 'norm_exceeded', /exceeds the round's bound 5/);
    expect(await devices[5]!.uploadRaw(uploadOf(configurations[5]!, { shapes, data: accepted, encoding: 'topk' }, 10))).toEqual({
      accepted: true,
    });
    const ended = await coordinator.roundEnded(round.id);
    expect(ended.status).toBe('committed');
    expect(ended.metrics.rejected).toEqual({ compression_mismatch: 3, malformed: 1, norm_exceeded: 1 });
    expect(ended.metrics.bytesUp).toBe(accepted.byteLength);
    const metrics = await coordinator.api<string>('/metrics');
    expect(metrics.body).toMatch(/flock_uploads_total\{result="rejected",reason="compression_mismatch"\} 3/);
  });

  it('refuses a start request whose compression is malformed (400), and records none when it is none', async () => {
    for (const compression of [{ kind: 'int8', topkFraction: 0.1 }, { kind: 'topk', topkFraction: 0 }, { kind: 'topk', topkFraction: 1.5 }, { kind: 'gzip' }]) {
      const response = await coordinator.api('/api/rounds', { method: 'POST', body: JSON.stringify({ minClients: 1, compression }) });
      expect(response.status, JSON.stringify(compression)).toBe(400);
    }
    const round = await startRound({ minClients: 1, selectionTimeoutSeconds: 1, compression: { kind: 'none' } });
    expect(round.params.plan.compression).toBeUndefined();
    expect((await coordinator.roundEnded(round.id)).status).toBe('failed'); // no device to select
  });

  it('answers a fetch with deltaFrom with an int8 delta that rebuilds the version within half a step per tensor', async () => {
    const [device] = await connectClients(1);
    const current = await coordinator.api<ModelVersionMeta>('/api/models/current');
    const version = current.body.version;
    expect(version).toBeGreaterThanOrEqual(3); // the rounds above committed versions
    const whole = await device!.fetchModel(version);
    const response = (await device!.socket.timeout(15_000).emitWithAck(ClientEvent.fetchModel, { version, deltaFrom: version - 2 })) as {
      ok: true;
      model: ModelPayload;
    };
    expect(response.ok).toBe(true);
    const { model } = response;
    expect(model.deltaFrom).toBe(version - 2);
    expect(model.weights.byteLength).toBe(4 * TENSORS + VALUES);
    const base = await weightsOf(version - 2);
    const exact = asFloat32(whole.weights);
    const rebuilt = applyDownloadDelta(base, model.weights, shapesOf(model));
    let offset = 0;
    for (const spec of model.weightSpecs) {
      const n = spec.shape.reduce((a, b) => a * b, 1);
      let change = 0;
      for (let i = offset; i < offset + n; i++) change = Math.max(change, Math.abs(exact[i]! - base[i]!));
      for (let i = offset; i < offset + n; i++) expect(Math.abs(rebuilt[i]! - exact[i]!)).toBeLessThanOrEqual(change / 254 + 1e-6);
      offset += n;
    }
    // No delta from a version that is not older: the whole model.
    const same = (await device!.socket.timeout(15_000).emitWithAck(ClientEvent.fetchModel, { version, deltaFrom: version })) as {
      ok: true;
      model: ModelPayload;
    };
    expect(same.model.deltaFrom).toBeUndefined();
    expect(same.model.weights.byteLength).toBe(MODEL_BYTES);
    const metrics = await coordinator.api<string>('/metrics');
    expect(metrics.body).toMatch(/flock_download_bytes_total\{kind="delta"\} 199234/);
  });
});
