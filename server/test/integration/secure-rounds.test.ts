import * as tf from '@tensorflow/tfjs';
import { io } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ArrayDataSource, FederatedClient, ManualCondition, MemoryModelStore, type FlockSocket } from '@flock/client-sdk';
import { asFloat32, ClientEvent, type KeyAgreement } from '@flock/client-sdk/protocol';
import { encodeInput, SecAggServerSession, toBytes } from '@flock/client-sdk/secagg';
import type { ModelVersionMeta, RoundDetails } from '../../src/contract/index.js';
import { readMnist } from '../../src/datasets/mnist.js';
import { noKeepAliveFetch } from '../../src/simulation/http-fetch.js';
import { CLIENT_TOKEN, EXACT_AVERAGES, startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { nextLoopbackAddress } from '../support/protocol-client.js';

/**
 * Secure rounds end to end: real SDK clients (tfjs on wasm, real MNIST) against the real
 * coordinator over socket.io. Each device replaces its trained delta by a fixed pseudo-random one
 * (transformDelta), so that what a round must commit is known exactly: the example-weighted mean
 * of the deltas of the devices in the sum.
 */

const PARAMETERS = 199_210;
const DEVICES = 6;
const trainCount = (k: number): number => 40 + 20 * k;

let coordinator: TestCoordinator;
let mnist: Awaited<ReturnType<typeof readMnist>>;
let running: FederatedClient[] = [];

function fixedDelta(k: number): Float32Array {
  let state = 977 + k;
  return Float32Array.from({ length: PARAMETERS }, () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state / 2 ** 32 - 0.5) * 0.01;
  });
}

interface Device {
  client: FederatedClient;
  sent: string[];
}

/** Device k; it disconnects for good when the coordinator sends it `dropOn`. */
function device(k: number, dropOn?: string): Device {
  const rows = Array.from({ length: trainCount(k) }, (_, i) => mnist.images.subarray((k * 200 + i) * 784, (k * 200 + i + 1) * 784));
  const labels = Array.from(mnist.labels.subarray(k * 200, k * 200 + trainCount(k)));
  const sent: string[] = [];
  const delta = fixedDelta(k);
  const client = new FederatedClient({
    serverUrl: coordinator.url,
    clientToken: CLIENT_TOKEN,
    dataSource: new ArrayDataSource({ train: { xs: rows, ys: labels }, test: { xs: rows.slice(0, 10), ys: labels.slice(0, 10) } }),
    conditions: [new ManualCondition('idle', 'yes'), new ManualCondition('charging', 'yes'), new ManualCondition('unmetered', 'yes')],
    store: new MemoryModelStore(),
    evaluateOnlyWhenEligible: true,
    transformDelta: (tensors) => {
      let offset = 0;
      return tensors.map((tensor) => {
        const part = delta.slice(offset, offset + tensor.length);
        offset += tensor.length;
        return part;
      });
    },
    socketOptions: { transports: ['websocket'] },
    socketFactory: (url, options) => {
      const socket = io(url, { ...options, localAddress: nextLoopbackAddress() } as typeof options) as FlockSocket;
      socket.onAnyOutgoing((event: string) => sent.push(event));
      if (dropOn) socket.onAny((event: string) => event === dropOn && socket.disconnect());
      return socket;
    },
  });
  running.push(client);
  return { client, sent };
}

async function weightsOf(version: number): Promise<Float32Array> {
  const response = await noKeepAliveFetch(`${coordinator.url}/api/models/${version}/weights.bin`, {
    headers: { Authorization: `Bearer ${coordinator.config.operatorToken}` },
  });
  expect(response.status).toBe(200);
  return asFloat32(new Uint8Array(await response.arrayBuffer())).slice();
}

async function currentVersion(): Promise<number> {
  return (await coordinator.api<ModelVersionMeta>('/api/models/current')).body.version;
}

async function runRound(devices: Device[], body: Record<string, unknown>): Promise<RoundDetails> {
  await Promise.all(devices.map((d) => d.client.start()));
  await waitFor(
    () => coordinator.api<{ eligible: number }>('/api/clients'),
    (r) => r.body.eligible === devices.length,
    20_000,
    `${devices.length} eligible clients`,
  );
  const started = await coordinator.api<{ id: string }>('/api/rounds', { method: 'POST', body: JSON.stringify(body) });
  expect(started.status, JSON.stringify(started.body)).toBe(201);
  return coordinator.roundEnded(started.body.id, 90_000);
}

/** The example-weighted mean of the fixed deltas of devices `ks`. */
function expectedChange(ks: readonly number[]): Float64Array {
  const mean = new Float64Array(PARAMETERS);
  const total = ks.reduce((sum, k) => sum + trainCount(k), 0);
  for (const k of ks) {
    const delta = fixedDelta(k);
    const weight = trainCount(k) / total;
    for (let i = 0; i < PARAMETERS; i++) mean[i]! += weight * delta[i]!;
  }
  return mean;
}

function maxDifference(change: Float32Array, base: Float32Array, expected: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < PARAMETERS; i++) worst = Math.max(worst, Math.abs(change[i]! - base[i]! - expected[i]!));
  return worst;
}

const SECURE = { minClients: 3, targetClients: DEVICES, overSelection: 1, deadlineSeconds: 60, epochs: 1, batchSize: 20, learningRate: 0.05 };
const ALL = Array.from({ length: DEVICES }, (_, k) => k);

beforeAll(async () => {
  await tf.ready();
  coordinator = await startTestCoordinator(EXACT_AVERAGES);
  mnist = await readMnist('train', { start: 0, count: DEVICES * 200 });
});
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(running.map((client) => client.dispose()));
  running = [];
  await coordinator.devicesLeft(10_000);
});
afterAll(async () => {
  await coordinator?.dispose();
});

describe('secure rounds: real SDK clients, real coordinator', () => {
  it('a secure round commits what a plain round commits (within the fixed-point precision), and the coordinator only ever holds masked inputs', async () => {
    const plainBase = await currentVersion();
    const plain = await runRound(
      ALL.map((k) => device(k)),
      { ...SECURE },
    );
    expect(plain.status, plain.error ?? '').toBe('committed');
    const plainChange = maxDifference(await weightsOf(plain.committedVersion!), await weightsOf(plainBase), expectedChange(ALL));
    await Promise.all(running.map((client) => client.dispose()));
    running = [];
    await coordinator.devicesLeft(10_000);

    // Instrument what the coordinator's secure aggregation receives: the only per-device vectors it gets.
    // It calls through; the calls keep the payloads (the session reads them and keeps only the running sum).
    const receiveMasked = vi.spyOn(SecAggServerSession.prototype, 'receiveMasked');
    const secureBase = await currentVersion();
    const devices = ALL.map((k) => device(k));
    const secure = await runRound(devices, { ...SECURE, secureAggregation: true });
    expect(secure.status, secure.error ?? '').toBe('committed');
    expect(secure.params.secureAggregation).toMatchObject({ clipNorm: 10, thresholdFraction: 0.5 });
    expect(secure.metrics).toMatchObject({
      accepted: DEVICES,
      totalExamples: ALL.reduce((sum, k) => sum + trainCount(k), 0),
      // Masked inputs: d values and the weight and loss, 4 bytes each.
      bytesReceived: DEVICES * (PARAMETERS + 2) * 4,
    });
    // bytesUp adds each device's keys (2 x 65), sealed shares (5 x 168) and revealed shares (at most 2 x 6 x 66).
    expect(secure.metrics.bytesUp).toBeGreaterThanOrEqual(secure.metrics.bytesReceived + DEVICES * (130 + 5 * 168));
    expect(secure.metrics.bytesUp).toBeLessThanOrEqual(secure.metrics.bytesReceived + DEVICES * (130 + 5 * 168 + 12 * 66));
    const secureChange = maxDifference(await weightsOf(secure.committedVersion!), await weightsOf(secureBase), expectedChange(ALL));
    // float32 weights of ~0.1 carry ~1e-8 rounding; the fixed-point sum adds < 1e-7 to the mean.
    expect(plainChange).toBeLessThan(1e-6);
    expect(secureChange).toBeLessThan(1e-6);

    // No delta left a device in the clear, and no masked input resembles its device's input.
    for (const { sent } of devices) {
      expect(sent).not.toContain(ClientEvent.update);
      expect(sent).toEqual(expect.arrayContaining([ClientEvent.secAggAdvertise, ClientEvent.secAggShares, ClientEvent.secAggMasked, ClientEvent.secAggReveal]));
    }
    const received = receiveMasked.mock.calls.map(([, payload]) => {
      const data = toBytes((payload as { data: Uint8Array }).data);
      return new Uint32Array(data.slice().buffer);
    });
    expect(received).toHaveLength(DEVICES);
    for (const masked of received) {
      for (const k of ALL) {
        const plainInput = encodeInput(fixedDelta(k), trainCount(k), 1, { clipNorm: 10, maxWeight: 1000, maxSummands: DEVICES }).encoded;
        let equal = 0;
        for (let i = 0; i < PARAMETERS; i++) if (masked[i] === plainInput[i]) equal++;
        expect(equal).toBeLessThan(5);
      }
    }
  }, 180_000);

  const drops: [string, string, (dropped: number) => number[], KeyAgreement][] = [
    ['advertising keys', 'round:configure', (dropped) => ALL.filter((k) => k !== dropped), 'P-256'],
    ['sharing keys', 'secagg:roster', (dropped) => ALL.filter((k) => k !== dropped), 'P-256'],
    ['sending its masked input', 'secagg:relay', (dropped) => ALL.filter((k) => k !== dropped), 'P-256'],
    // The dropped device's X25519 mask key is rebuilt from its neighbours' shares.
    ['sending its masked input', 'secagg:relay', (dropped) => ALL.filter((k) => k !== dropped), 'X25519'],
    // A device that leaves at unmasking sent its masked input: it is in the sum.
    ['unmasking', 'secagg:unmask', () => ALL, 'P-256'],
  ];
  for (const [phase, event, summed, keyAgreement] of drops) {
    it(`a device dropping before ${phase} is recovered (${keyAgreement} keys): the round commits the sum of the inputs sent`, async () => {
      const dropped = 2;
      const base = await currentVersion();
      const round = await runRound(
        ALL.map((k) => device(k, k === dropped ? event : undefined)),
        { ...SECURE, secureAggregation: { phaseSeconds: 10, keyAgreement } },
      );
      expect(round.status, round.error ?? '').toBe('committed');
      expect(round.params.secureAggregation).toMatchObject({ keyAgreement });
      const ks = summed(dropped);
      expect(round.metrics.accepted).toBe(ks.length);
      expect(maxDifference(await weightsOf(round.committedVersion!), await weightsOf(base), expectedChange(ks))).toBeLessThan(1e-6);
    }, 120_000);
  }

  it('below the threshold the round fails and the model stays as it was', async () => {
    const base = await currentVersion();
    const before = await weightsOf(base);
    // 6 devices, all neighbours: 4 of 6 shares rebuild a secret; 3 leave at unmasking.
    const round = await runRound(
      ALL.map((k) => device(k, k >= 3 ? 'secagg:unmask' : undefined)),
      { ...SECURE, secureAggregation: { phaseSeconds: 10 } },
    );
    expect(round.status).toBe('failed');
    expect(round.error).toMatch(/secure aggregation failed: .*threshold 4/);
    expect(round.committedVersion).toBeNull();
    expect(await currentVersion()).toBe(base);
    expect(await weightsOf(base)).toEqual(before);
  }, 120_000);

  it('distributed DP: devices add their share of the noise before masking; the round commits (sum of clipped deltas + noise) / (q N) and the ledger records it', async () => {
    const dp = { noiseMultiplier: 0.5, clipNorm: 0.5, samplingRate: 1, noise: 'distributed' };
    const base = await currentVersion();
    const round = await runRound(
      ALL.map((k) => device(k)),
      { ...SECURE, differentialPrivacy: dp, secureAggregation: true },
    );
    expect(round.status, round.error ?? '').toBe('committed');
    // The secure clip bound defaults to the DP one; every device counts once (weight 1).
    expect(round.params.secureAggregation).toMatchObject({ clipNorm: dp.clipNorm });
    expect(round.metrics).toMatchObject({ accepted: DEVICES, totalExamples: DEVICES, expectedUpdates: DEVICES });

    // What the round must commit without noise: the mean of the clipped deltas over q N = 6.
    const clippedMean = new Float64Array(PARAMETERS);
    for (const k of ALL) {
      const delta = fixedDelta(k);
      const scale = Math.min(1, dp.clipNorm / Math.sqrt(delta.reduce((sum, v) => sum + v * v, 0)));
      for (let i = 0; i < PARAMETERS; i++) clippedMean[i]! += (scale * delta[i]!) / DEVICES;
    }
    const [after, before] = [await weightsOf(round.committedVersion!), await weightsOf(base)];
    let sum = 0;
    let squares = 0;
    for (let i = 0; i < PARAMETERS; i++) {
      const residual = after[i]! - before[i]! - clippedMean[i]!;
      sum += residual;
      squares += residual * residual;
    }
    // Each device adds N(0, (z C)² / m) with m = max(minClients, ceil(0.5 · 6)) = 3 (any 3 summed
    // inputs carry the central noise z C); all 6 summed: the mean carries z C · sqrt(6 / 3) / 6.
    const expectedStd = (dp.noiseMultiplier * dp.clipNorm * Math.sqrt(DEVICES / 3)) / DEVICES;
    const mean = sum / PARAMETERS;
    const std = Math.sqrt(squares / PARAMETERS - mean * mean);
    expect(Math.abs(std / expectedStd - 1)).toBeLessThan(0.02); // standard error 0.16% over 199,210 coordinates
    expect(Math.abs(mean)).toBeLessThan((5 * expectedStd) / Math.sqrt(PARAMETERS));

    const committed = await coordinator.api<ModelVersionMeta>(`/api/models/${round.committedVersion}`);
    expect(committed.body.privacy).toMatchObject({ dpRounds: 1 });
    expect(committed.body.privacy!.epsilon).toBeGreaterThan(0);
  }, 180_000);

  it('refuses DP settings secure aggregation cannot carry (400)', async () => {
    const dp = { noiseMultiplier: 1, clipNorm: 1, samplingRate: 1 };
    for (const [body, message] of [
      [{ differentialPrivacy: dp, secureAggregation: true }, /set differentialPrivacy.noise to 'distributed'/],
      [{ differentialPrivacy: { ...dp, noise: 'distributed' } }, /turn secureAggregation on/],
      [{ differentialPrivacy: { ...dp, noise: 'distributed' }, secureAggregation: { clipNorm: 2 } }, /must agree/],
      [{ differentialPrivacy: { ...dp, noise: 'distributed', adaptiveClipping: {} }, secureAggregation: true }, /adaptive clipping/],
    ] as const) {
      const response = await coordinator.api<{ message: string }>('/api/rounds', { method: 'POST', body: JSON.stringify(body) });
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(JSON.stringify(response.body)).toMatch(message);
    }
  });

  it('refuses strategies and settings that need individual updates (400)', async () => {
    for (const [body, message] of [
      [{ strategy: 'median' }, /needs individual updates/],
      [{ strategy: 'krum', minClients: 7, targetClients: 7 }, /needs individual updates/],
      [{ strategyOptions: { clipNorm: 1 } }, /with clipNorm needs individual updates/],
      [{ maxUpdateNorm: 5 }, /maxUpdateNorm/],
    ] as const) {
      const response = await coordinator.api<{ message: string }>('/api/rounds', {
        method: 'POST',
        body: JSON.stringify({ ...body, secureAggregation: true }),
      });
      expect(response.status).toBe(400);
      expect(JSON.stringify(response.body)).toMatch(message);
    }
  });
});
