import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RoundDetails } from '../../src/contract/index.js';
import { startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { makeDelta, ProtocolClient } from '../support/protocol-client.js';
import { writeTinyModel } from '../support/tiny-model.js';

/*
 * Adaptive clipping (Andrew et al. 2021) in DP rounds: each round moves C towards the target
 * quantile of the update norms it saw (a noisy count), the next round clips to the moved C and
 * tells the devices so, and the C survives a restart.
 */
const ADAPTIVE = { targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 0.6 };
const DP = { noiseMultiplier: 1, clipNorm: 1, samplingRate: 1, adaptiveClipping: ADAPTIVE };

const dataDir = mkdtempSync(join(tmpdir(), 'flock-dp-adaptive-'));
const modelPath = writeTinyModel(join(dataDir, 'model'));
let coordinator: TestCoordinator;
let clients: ProtocolClient[] = [];

/** One DP round of three devices: two send updates of norm about 0.3·C, one of about 30·C. Returns the round and the C its plan carried. */
async function round(): Promise<{ ended: RoundDetails; planClipNorm: number }> {
  clients.forEach((client) => client.disconnect());
  await coordinator.devicesLeft(10_000);
  clients = await Promise.all([0, 1, 2].map(() => ProtocolClient.connect(coordinator.url)));
  await waitFor(
    () => coordinator.api<{ eligible: number }>('/api/clients'),
    (r) => r.body.eligible === 3,
    10_000,
  );
  const started = await coordinator.api<{ id: string }>('/api/rounds', { method: 'POST', body: JSON.stringify({ minClients: 3, differentialPrivacy: DP }) });
  expect(started.status, JSON.stringify(started.body)).toBe(201);
  const plans = await Promise.all(
    clients.map(async (client, k) => {
      const configuration = await client.configurations.next();
      const model = await client.fetchModel(configuration.modelVersion);
      const C = configuration.plan.clipNorm!;
      const delta = makeDelta(model, k, 1);
      const norm = Math.sqrt(delta.reduce((sum, tensor) => sum + tensor.reduce((s, v) => s + v * v, 0), 0));
      const target = k < 2 ? 0.3 * C : 30 * C;
      expect(
        await client.upload(
          configuration,
          model,
          delta.map((tensor) => tensor.map((v) => (v * target) / norm)),
          10,
        ),
      ).toEqual({ accepted: true });
      return C;
    }),
  );
  const ended = await coordinator.roundEnded(started.body.id);
  expect(ended.status, ended.error ?? '').toBe('committed');
  expect(new Set(plans).size).toBe(1);
  return { ended, planClipNorm: plans[0]! };
}

beforeAll(async () => {
  coordinator = await startTestCoordinator({ dataDir, initialModelPath: modelPath });
});
afterEach(async () => {
  clients.forEach((client) => client.disconnect());
  clients = [];
  await coordinator.devicesLeft(10_000);
});
afterAll(async () => {
  await coordinator?.dispose();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('adaptive clipping in DP rounds', () => {
  let next = 0;

  it('moves C by exp(−η (b̃ − γ)) with b̃ the noisy share of updates within C, and clips the next round to it', async () => {
    const first = await round();
    expect(first.planClipNorm).toBe(DP.clipNorm);
    expect(first.ended.metrics).toMatchObject({ dpClipNorm: 1, clippedUpdates: 1, expectedUpdates: 3 });
    // Two of three were within C: b̃ = (2 + N(0, 0.6²)) / 3, so C moves by exp(−0.2 (b̃ − 0.5)), within 5 σ_b.
    const moved = first.ended.metrics.nextDpClipNorm!;
    const share = (count: number) => Math.exp(-ADAPTIVE.learningRate * (count / 3 - ADAPTIVE.targetQuantile));
    expect(moved).toBeGreaterThan(share(2 + 5 * ADAPTIVE.countNoiseStd));
    expect(moved).toBeLessThan(share(2 - 5 * ADAPTIVE.countNoiseStd));
    expect(moved).not.toBe(1);

    const second = await round();
    expect(second.planClipNorm).toBe(moved);
    expect(second.ended.metrics.dpClipNorm).toBe(moved);
    next = second.ended.metrics.nextDpClipNorm!;
  });

  it('keeps the moved C across a restart', async () => {
    await coordinator.close();
    coordinator = await startTestCoordinator({ dataDir, initialModelPath: modelPath });
    const third = await round();
    expect(third.planClipNorm).toBe(next);
  });
});
