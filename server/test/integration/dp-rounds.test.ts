import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ArrayDataSource, FederatedClient, manualConditions, MemoryModelStore } from '@flock/client-sdk';
import { asFloat32, ClientEvent, l2Norm, type UpdateUpload } from '@flock/client-sdk/protocol';
import type { ModelVersionMeta, PrivacyStatus, RoundDetails } from '../../src/contract/index.js';
import { mulberry32 } from '../../src/datasets/seeded-random.js';
import { epsilonOfRounds } from '../../src/privacy/rdp.js';
import { CLIENT_TOKEN, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { metrics, metricValue } from '../support/metrics.js';
import { makeDelta, ProtocolClient } from '../support/protocol-client.js';
import { recordingTransport } from '../support/sdk-device.js';
import { TINY_MODEL_PARAMETERS, writeTinyModel } from '../support/tiny-model.js';

/*
 * DP-FedAvg rounds end to end: real SDK devices clip before upload, the coordinator clips again,
 * adds the noise and keeps the ledger in every version; the budget stops rounds and survives a
 * restart. Noise multiplier 2 with every device sampled (q = 1): one round costs ε = 2.17 at
 * δ = 1e-5, two 3.19, three 4.01 (dp_accounting's numbers for the Gaussian mechanism, composed in
 * RDP), so a budget of 3.5 admits exactly two.
 */
const DELTA = 1e-5;
const BUDGET = 3.5;
const DP = { noiseMultiplier: 2, clipNorm: 0.05, samplingRate: 1 };

const dataDir = mkdtempSync(join(tmpdir(), 'flock-dp-'));
const modelPath = writeTinyModel(join(dataDir, 'model'));
let coordinator: TestCoordinator;
let running: FederatedClient[] = [];
let raw: ProtocolClient[] = [];

const startOptions = () => ({ dataDir, initialModelPath: modelPath, privacy: { delta: DELTA, budget: { epsilon: BUDGET, delta: DELTA } } });

/** An SDK device on 40 random examples of the tiny model's 16 inputs, trained hard so its delta is far above C; its uploads are recorded. */
function device(seed: number): { client: FederatedClient; uploads: UpdateUpload[] } {
  const random = mulberry32(seed);
  const xs = Array.from({ length: 40 }, () => Array.from({ length: 16 }, () => random()));
  const ys = Array.from({ length: 40 }, () => Math.floor(random() * 10));
  const uploads: UpdateUpload[] = [];
  const client = new FederatedClient({
    serverUrl: coordinator.url,
    clientToken: CLIENT_TOKEN,
    dataSource: ArrayDataSource.fromExamples(xs, ys),
    conditions: Object.values(manualConditions('yes')),
    store: new MemoryModelStore(),
    socketOptions: { transports: ['websocket'] },
    ...recordingTransport((event, args) => {
      if (event === ClientEvent.update) uploads.push(args[0] as UpdateUpload);
    }),
  });
  running.push(client);
  return { client, uploads };
}

async function startRound(body: Record<string, unknown>): Promise<{ status: number; body: { id: string; message?: string } }> {
  return coordinator.api<{ id: string; message?: string }>('/api/rounds', { method: 'POST', body: JSON.stringify(body) });
}

const privacy = async () => (await coordinator.api<PrivacyStatus>('/api/privacy')).body;
const version = async (v: number) => (await coordinator.api<ModelVersionMeta>(`/api/models/${v}`)).body;
const epsilonAfter = (rounds: number) => epsilonOfRounds([{ samplingRate: 1, noiseMultiplier: DP.noiseMultiplier, rounds }], DELTA).epsilon;

beforeAll(async () => {
  coordinator = await startTestCoordinator(startOptions());
});
afterEach(async () => {
  await Promise.all(running.map((client) => client.dispose()));
  raw.forEach((client) => client.disconnect());
  running = [];
  raw = [];
  await coordinator.devicesLeft(10_000);
});
afterAll(async () => {
  await coordinator?.dispose();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('differentially private rounds', () => {
  it('starts from an empty ledger: the first version carries no device data', async () => {
    expect(await privacy()).toEqual({
      delta: DELTA,
      budget: { epsilon: BUDGET, delta: DELTA },
      spent: { epsilon: 0, dpRounds: 0 },
      remaining: BUDGET,
      currentVersion: 1,
      currentProtected: true,
    });
  });

  it('refuses a round without differential privacy while a budget is set', async () => {
    const refused = await startRound({ minClients: 1 });
    expect(refused.status).toBe(400);
    expect(refused.body.message).toMatch(/every round must be differentially private/);
  });

  it('refuses DP with a strategy that needs individual updates, and DP beside strategyOptions.clipNorm', async () => {
    const median = await startRound({ minClients: 1, strategy: 'median', differentialPrivacy: DP });
    expect(median.status).toBe(400);
    expect(JSON.stringify(median.body)).toMatch(/differential privacy needs a weighted-mean strategy/);
    const clipped = await startRound({ minClients: 1, strategyOptions: { clipNorm: 1 }, differentialPrivacy: DP });
    expect(clipped.status).toBe(400);
    expect(JSON.stringify(clipped.body)).toMatch(/leave strategyOptions.clipNorm out/);
  });

  it('SDK devices clip to C before upload; the round commits with the noise and the ledger records it', async () => {
    const devices = [1, 2, 3].map(device);
    await Promise.all(devices.map((d) => d.client.start()));
    await coordinator.eligible(3);
    const started = await startRound({ minClients: 3, epochs: 5, batchSize: 5, learningRate: 0.5, differentialPrivacy: DP });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const round = await coordinator.roundEnded(started.body.id, 60_000);
    expect(round.status, round.error ?? '').toBe('committed');
    // Every upload that crossed the socket was within C, and the plan said so.
    for (const { uploads } of devices) {
      expect(uploads).toHaveLength(1);
      const norm = l2Norm(asFloat32(uploads[0]!.delta.data));
      expect(norm).toBeLessThanOrEqual(DP.clipNorm);
      expect(norm).toBeGreaterThan(DP.clipNorm * 0.99); // trained far beyond C: clipped, not small
    }
    expect(round.params.plan.clipNorm).toBe(DP.clipNorm);
    expect(round.metrics).toMatchObject({ accepted: 3, clippedUpdates: 0, expectedUpdates: 3, updateBound: null });

    const committed = await version(2);
    expect(committed.privacy).toMatchObject({ protected: true, dpRounds: 1, delta: DELTA });
    expect(committed.privacy!.epsilon).toBeCloseTo(epsilonAfter(1), 10);
    expect((await privacy()).spent.epsilon).toBeCloseTo(epsilonAfter(1), 10);
    expect(metricValue(await metrics(coordinator), 'flock_dp_epsilon_spent')).toBeCloseTo(epsilonAfter(1), 6);
    expect(metricValue(await metrics(coordinator), 'flock_dp_epsilon_budget')).toBe(BUDGET);
  });

  it('clips a device that did not (the guarantee does not rest on the SDK): one update moves the model by at most C plus the noise', async () => {
    const client = await ProtocolClient.connect(coordinator.url);
    raw.push(client);
    await coordinator.eligible(1);
    const started = await startRound({ minClients: 1, differentialPrivacy: DP });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const configuration = await client.configurations.next();
    expect(configuration.plan.clipNorm).toBe(DP.clipNorm);
    const model = await client.fetchModel(configuration.modelVersion);
    const huge = makeDelta(model, 7, 100); // norm in the hundreds
    expect(l2Norm(huge)).toBeGreaterThan(100);
    expect(await client.upload(configuration, model, huge, 10)).toEqual({ accepted: true });
    const round = await coordinator.roundEnded(started.body.id);
    expect(round.status, round.error ?? '').toBe('committed');
    expect(round.metrics).toMatchObject({ accepted: 1, clippedUpdates: 1, expectedUpdates: 1 });
    // ‖Δ‖ = ‖clip(u) + N(0, z²C²I)‖ <= C + zC(√n + 6) with overwhelming probability; unclipped it would be > 100.
    const bound = DP.clipNorm + DP.noiseMultiplier * DP.clipNorm * (Math.sqrt(TINY_MODEL_PARAMETERS) + 6);
    expect(round.metrics.updateNorm!).toBeLessThan(bound);
    expect((await version(3)).privacy).toMatchObject({ dpRounds: 2, protected: true });
  });

  it('refuses the round that would exceed the budget, with the reason, and starts nothing', async () => {
    const client = await ProtocolClient.connect(coordinator.url);
    raw.push(client);
    await coordinator.eligible(1);
    const refused = await startRound({ minClients: 1, differentialPrivacy: DP });
    expect(refused.status).toBe(409);
    expect(refused.body.message).toMatch(/privacy budget exceeded: .* spent epsilon = 3\.18\d+ .* bring it to 4\.01\d+, above the budget of 3\.5/);
    const { body: rounds } = await coordinator.api<RoundDetails[]>('/api/rounds');
    expect(rounds.filter((r) => r.status === 'committed')).toHaveLength(2);
    expect(rounds.every((r) => r.status !== 'selecting')).toBe(true);
  });

  it('a rollback carries the ledger on (nothing is refunded) with the lineage of the copied version', async () => {
    const { status, body } = await coordinator.api<ModelVersionMeta>('/api/models/1/rollback', { method: 'POST' });
    expect(status).toBe(201);
    expect(body.privacy).toMatchObject({ protected: true, dpRounds: 2 });
    expect(body.privacy!.epsilon).toBeCloseTo(epsilonAfter(2), 10);
  });

  it('keeps the ledger across a restart', async () => {
    await coordinator.close();
    coordinator = await startTestCoordinator(startOptions());
    const status = await privacy();
    expect(status).toMatchObject({ spent: { dpRounds: 2 }, currentVersion: 4, currentProtected: true });
    expect(status.spent.epsilon).toBeCloseTo(epsilonAfter(2), 10);
    expect(status.remaining).toBeCloseTo(BUDGET - epsilonAfter(2), 10);
    expect(metricValue(await metrics(coordinator), 'flock_dp_epsilon_spent')).toBeCloseTo(epsilonAfter(2), 6);
    expect((await startRound({ minClients: 1, differentialPrivacy: DP })).status).toBe(409);
  });
});
