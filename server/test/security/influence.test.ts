/**
 * Issue 10's attacks on the global model, by devices that hold real keys and speak the protocol with
 * raw socket.io clients, against real coordinators:
 *   - one device claiming 1e9 examples replaced the global model under FedAvg (100% share);
 *   - a finite delta value of 3.4e38 with 1e9 examples, two rounds running, committed w[0] = Infinity;
 *   - 50 sockets from one address took all 13 selection slots while 4 honest devices were eligible.
 * Each now fails: example counts are clamped to the plan's cap, updates clipped to the adaptive L2
 * bound, selection takes a few devices per address, and no aggregate commits unless it is finite and
 * close to its base.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { asFloat32, MAX_UPDATE_EXAMPLES, type RoundConfiguration } from '@flock/client-sdk/protocol';
import type { RoundDetails, RoundRecord } from '../../src/contract/index.js';
import type { FlockConfig } from '../../src/config/config.js';
import { startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { makeDelta, modelTensors, ProtocolClient } from '../support/protocol-client.js';
import { noKeepAliveFetch } from '../../src/simulation/http-fetch.js';

const MODEL_VALUES = 199_210;
const NO_BOUND: FlockConfig['updateBound'] = { mode: 'off', ceiling: 100, initial: 1, quantile: 0.5, learningRate: 0.2 };
const HONEST_EXAMPLES = 600;

const devices: ProtocolClient[] = [];
const coordinators: TestCoordinator[] = [];

async function coordinatorWith(overrides: Partial<FlockConfig> = {}): Promise<TestCoordinator> {
  const coordinator = await startTestCoordinator({ maxUploadBytes: MODEL_VALUES * 4 + 4096, ...overrides });
  coordinators.push(coordinator);
  return coordinator;
}

async function connect(coordinator: TestCoordinator, count: number, localAddress?: string): Promise<ProtocolClient[]> {
  const connected = await Promise.all(Array.from({ length: count }, () => ProtocolClient.connect(coordinator.url, localAddress ? { localAddress } : {})));
  devices.push(...connected);
  return connected;
}

async function eligible(coordinator: TestCoordinator, count: number): Promise<void> {
  await waitFor(
    () => coordinator.api<{ eligible: number }>('/api/clients'),
    (r) => r.body.eligible === count,
    10_000,
    `${count} eligible devices`,
  );
}

async function startRound(coordinator: TestCoordinator, body: Record<string, unknown>): Promise<RoundRecord> {
  const { status, body: round } = await coordinator.api<RoundRecord>('/api/rounds', {
    method: 'POST',
    body: JSON.stringify({ overSelection: 1, deadlineSeconds: 30, epochs: 1, batchSize: 10, learningRate: 0.1, ...body }),
  });
  expect(status, JSON.stringify(round)).toBe(201);
  return round;
}

async function weightsOf(coordinator: TestCoordinator, version: number | 'current'): Promise<Float32Array> {
  const response = await noKeepAliveFetch(`${coordinator.url}/api/models/${version}/weights.bin`, {
    headers: { Authorization: `Bearer ${coordinator.config.operatorToken}` },
  });
  expect(response.status).toBe(200);
  return asFloat32(new Uint8Array(await response.arrayBuffer()));
}

async function counter(coordinator: TestCoordinator, line: string): Promise<number> {
  const metrics = await coordinator.api<string>('/metrics');
  const escaped = line.replace(/[{}"]/g, (c) => `\\${c}`);
  return Number(new RegExp(`^${escaped} (\\S+)$`, 'm').exec(metrics.body)?.[1] ?? 0);
}

type Upload = [device: ProtocolClient, delta: (configuration: RoundConfiguration) => Promise<Float32Array[]>, numExamples: number];

/** The configuration a device received for a round. */
async function configurationOf(device: ProtocolClient, roundId: string): Promise<RoundConfiguration> {
  return (await waitFor(
    () => device.configurations.items.find((c) => c.roundId === roundId),
    (c) => c !== undefined,
    10_000,
    `the configuration of round ${roundId}`,
  ))!;
}

/** Every listed device uploads its delta for the round. */
async function uploadAll(roundId: string, uploads: Upload[]): Promise<void> {
  await Promise.all(
    uploads.map(async ([device, delta, numExamples]) => {
      const configuration = await configurationOf(device, roundId);
      const model = await device.fetchModel(configuration.modelVersion);
      expect(await device.upload(configuration, model, await delta(configuration), numExamples)).toEqual({ accepted: true });
    }),
  );
}

const flat = (tensors: Float32Array[]): Float32Array => {
  const out = new Float32Array(tensors.reduce((n, t) => n + t.length, 0));
  let offset = 0;
  for (const t of tensors) {
    out.set(t, offset);
    offset += t.length;
  }
  return out;
};
const norm = (values: Float32Array): number => Math.sqrt(values.reduce((sum, v) => sum + v * v, 0));

afterEach(() => {
  devices.splice(0).forEach((device) => device.disconnect());
});
afterAll(async () => {
  await Promise.all(coordinators.map((coordinator) => coordinator.dispose()));
});

describe('one device cannot replace the global model (default fedavg)', () => {
  let coordinator: TestCoordinator;
  beforeAll(async () => {
    coordinator = await coordinatorWith();
  });

  it('claiming a million examples with a huge delta counts for the plan cap and the adaptive bound: the rest is the honest average', async () => {
    const honest = await connect(coordinator, 4);
    await eligible(coordinator, 4);
    // Round 1, honest only: the bound's estimate starts at the median of their norms.
    const first = await startRound(coordinator, { minClients: 4, targetClients: 4 });
    const honestDelta = (i: number) => async (c: RoundConfiguration) => makeDelta(await honest[i]!.fetchModel(c.modelVersion), i, 0.005 * (i + 1));
    await uploadAll(
      first.id,
      honest.map((device, i): Upload => [device, honestDelta(i), HONEST_EXAMPLES]),
    );
    const round1 = await coordinator.roundEnded(first.id);
    expect(round1.status).toBe('committed');
    const bound = round1.metrics.nextUpdateBound!;
    expect(bound).toBeGreaterThan(0);

    // Round 2: the attacker joins, claims the wire's maximum and sends a delta of norm ~1e5 towards its own model.
    const [attacker] = await connect(coordinator, 1);
    await eligible(coordinator, 5);
    const base = await weightsOf(coordinator, 'current');
    const second = await startRound(coordinator, { minClients: 5, targetClients: 5 });
    // The plan states FLOCK_MAX_EXAMPLES_PER_UPDATE (1000); updates count for at most round 1's median count (600).
    expect(round1.metrics.nextExampleCap).toBe(HONEST_EXAMPLES);
    expect(second.params.plan.maxExamplesPerUpdate).toBe(1000);
    expect(second.metrics.exampleCap).toBe(HONEST_EXAMPLES);
    const configuration = await configurationOf(attacker!, second.id);
    expect(configuration.plan.maxExamplesPerUpdate).toBe(1000);
    const model = await attacker!.fetchModel(configuration.modelVersion);
    const evil = modelTensors(model).map((tensor) => tensor.map((w) => 100 - w)); // "weights of its choosing": all 100
    await uploadAll(second.id, [
      ...honest.map((device, i): Upload => [device, honestDelta(i), HONEST_EXAMPLES]),
      [attacker!, async () => evil, MAX_UPDATE_EXAMPLES],
    ]);
    const round2 = await coordinator.roundEnded(second.id);
    expect(round2.status).toBe('committed');
    expect(round2.metrics.updateBound).toBe(bound);
    expect(round2.metrics.clampedExamples).toBe(1);
    expect(round2.metrics.totalExamples).toBe(5 * HONEST_EXAMPLES);

    // The committed change is the weighted mean of the updates as bounded: the attacker's weight clamped to 600, deltas clipped to the bound.
    const after = await weightsOf(coordinator, round2.committedVersion!);
    const total = 5 * HONEST_EXAMPLES;
    const updates = [
      ...(await Promise.all(honest.map((_, i) => honestDelta(i)(configuration)))).map((d) => ({ delta: flat(d), examples: HONEST_EXAMPLES })),
      { delta: flat(evil), examples: HONEST_EXAMPLES },
    ];
    const expected = new Float64Array(MODEL_VALUES);
    for (const { delta, examples } of updates) {
      const scale = Math.min(1, bound / norm(delta));
      for (let j = 0; j < MODEL_VALUES; j++) expected[j]! += (examples / total) * scale * delta[j]!;
    }
    let worst = 0;
    for (let j = 0; j < MODEL_VALUES; j++) worst = Math.max(worst, Math.abs(after[j]! - base[j]! - expected[j]!));
    expect(worst).toBeLessThan(1e-5);
    // Its influence: at most its capped share of the bound, not 100%: the model is nowhere near "all 100".
    const change = new Float32Array(MODEL_VALUES).map((_, j) => after[j]! - base[j]!);
    expect(norm(change)).toBeLessThanOrEqual(bound * (1 + 1e-4));
    expect(after.every((w) => Math.abs(w - 100) > 50)).toBe(true);
    expect(await counter(coordinator, 'flock_updates_clamped_total{what="examples"}')).toBeGreaterThanOrEqual(1);
    expect(await counter(coordinator, 'flock_updates_clamped_total{what="norm"}')).toBeGreaterThanOrEqual(1);
  });

  it('refuses a claim above the wire maximum (the issue used 1e9)', async () => {
    const [device] = await connect(coordinator, 1);
    await eligible(coordinator, 1);
    const round = await startRound(coordinator, { minClients: 1, targetClients: 1 });
    const configuration = await configurationOf(device!, round.id);
    const model = await device!.fetchModel(configuration.modelVersion);
    const result = await device!.upload(configuration, model, makeDelta(model, 1), 1e9);
    expect(result).toMatchObject({ accepted: false, reason: 'malformed' });
    const { body } = await coordinator.api<RoundDetails>(`/api/rounds/${round.id}`);
    expect(body.metrics).toMatchObject({ accepted: 0, rejected: { malformed: 1 } });
    await coordinator.api(`/api/rounds/${round.id}/cancel`, { method: 'POST' });
  });
});

describe('a finite 3.4e38 delta value cannot make the global model infinite', () => {
  const spike = (model: Awaited<ReturnType<ProtocolClient['fetchModel']>>): Float32Array[] => {
    const delta = makeDelta(model, 7, 0.001);
    delta[0]![0] = 3.4e38;
    return delta;
  };

  async function twoSpikedRounds(coordinator: TestCoordinator, request: Record<string, unknown> = {}): Promise<RoundDetails[]> {
    const [honest, attacker] = await connect(coordinator, 2);
    await eligible(coordinator, 2);
    const rounds: RoundDetails[] = [];
    for (let r = 0; r < 2; r++) {
      const round = await startRound(coordinator, { minClients: 2, targetClients: 2, ...request });
      await uploadAll(round.id, [
        [honest!, async (c) => makeDelta(await honest!.fetchModel(c.modelVersion), r), 10],
        [attacker!, async (c) => spike(await attacker!.fetchModel(c.modelVersion)), MAX_UPDATE_EXAMPLES],
      ]);
      rounds.push(await coordinator.roundEnded(round.id));
    }
    return rounds;
  }

  it('with the defaults, the spike is clipped to the bound: both rounds commit finite weights that moved by at most the bound', async () => {
    const coordinator = await coordinatorWith();
    const initial = await weightsOf(coordinator, 'current');
    const rounds = await twoSpikedRounds(coordinator);
    expect(rounds.map((r) => r.status)).toEqual(['committed', 'committed']);
    // Round 1 bounds at FLOCK_UPDATE_BOUND_INITIAL (1), below the honest delta's norm (~3) too; round 2 at round 1's median norm.
    expect(rounds.map((r) => r.metrics.clippedUpdates)).toEqual([2, 1]);
    const final = await weightsOf(coordinator, 'current');
    expect(final.every(Number.isFinite)).toBe(true);
    const moved = Math.abs(final[0]! - initial[0]!);
    expect(moved).toBeLessThanOrEqual(rounds[0]!.metrics.updateBound! + rounds[1]!.metrics.updateBound!);
  });

  it('without the bound, the commit check fails the round that would commit Infinity, and the model stays as it was', async () => {
    // The setting: no example cap, no norm bound, and a change limit too loose to stop round 1.
    const coordinator = await coordinatorWith({ maxExamplesPerUpdate: MAX_UPDATE_EXAMPLES, maxModelChange: Number.MAX_VALUE, updateBound: NO_BOUND });
    const rounds = await twoSpikedRounds(coordinator, { maxExamplesPerUpdate: MAX_UPDATE_EXAMPLES });
    expect(rounds[0]!.status).toBe('committed');
    expect(rounds[1]!.status).toBe('failed');
    expect(rounds[1]!.error).toMatch(/^commit refused \(non_finite_weights\)/);
    const current = await weightsOf(coordinator, 'current');
    expect(current).toEqual(await weightsOf(coordinator, rounds[0]!.committedVersion!));
    expect(current.every(Number.isFinite)).toBe(true);
    expect(await counter(coordinator, 'flock_commits_refused_total{reason="non_finite_weights"}')).toBe(1);
  });

  it('without the bound, a change above FLOCK_MAX_MODEL_CHANGE fails the round (update_too_large)', async () => {
    const coordinator = await coordinatorWith({ maxExamplesPerUpdate: MAX_UPDATE_EXAMPLES, updateBound: NO_BOUND });
    const before = await weightsOf(coordinator, 'current');
    const rounds = await twoSpikedRounds(coordinator, { maxExamplesPerUpdate: MAX_UPDATE_EXAMPLES });
    expect(rounds.map((r) => r.status)).toEqual(['failed', 'failed']);
    expect(rounds[0]!.error).toMatch(/^commit refused \(update_too_large\)/);
    expect(await weightsOf(coordinator, 'current')).toEqual(before);
    expect(await counter(coordinator, 'flock_commits_refused_total{reason="update_too_large"}')).toBe(2);
  });
});

describe('Sybils behind one address cannot take a round', () => {
  it('50 identities from 127.0.0.66 get at most FLOCK_MAX_SELECTED_PER_ADDRESS (2) of 13 slots; the 4 honest devices are all selected', async () => {
    const coordinator = await coordinatorWith();
    // Honest devices each from their own address (127.0.0.2-5), the Sybils all from one.
    const honest = (await Promise.all([2, 3, 4, 5].map((n) => connect(coordinator, 1, `127.0.0.${n}`)))).flat();
    // However many of the 50 the coordinator lets connect from one address.
    const attempts = await Promise.allSettled(Array.from({ length: 50 }, () => ProtocolClient.connect(coordinator.url, { localAddress: '127.0.0.66' })));
    const sybils = attempts.flatMap((attempt) => (attempt.status === 'fulfilled' ? [attempt.value] : []));
    devices.push(...sybils);
    expect(sybils.length).toBeGreaterThan(2);
    await eligible(coordinator, 4 + sybils.length);
    const round = await startRound(coordinator, { minClients: 4, targetClients: 13 });
    const { body } = await waitFor(
      () => coordinator.api<RoundDetails>(`/api/rounds/${round.id}`),
      (r) => r.body.status === 'reporting',
      10_000,
      'the round to select',
    );
    expect(body.metrics.eligibleAtSelection).toBe(4 + 2);
    expect(body.metrics.selected).toBe(6);
    await Promise.all(honest.map((device) => device.configurations.next()));
    await waitFor(
      () => sybils.filter((device) => device.configurations.items.length > 0).length,
      (n) => n === 2,
      10_000,
      'the selected Sybils to be configured',
    );
    await coordinator.api(`/api/rounds/${round.id}/cancel`, { method: 'POST' });
  });
});

describe('the adaptive bound and cap survive a restart', () => {
  it('a restarted coordinator starts from the newest committed round', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'flock-influence-'));
    try {
      const first = await startTestCoordinator({ dataDir, maxUploadBytes: MODEL_VALUES * 4 + 4096 });
      let committed: RoundDetails;
      try {
        const pair = await connect(first, 2);
        await eligible(first, 2);
        const round = await startRound(first, { minClients: 2, targetClients: 2 });
        await uploadAll(
          round.id,
          pair.map((device, i): Upload => [device, async (c) => makeDelta(await device.fetchModel(c.modelVersion), i, 0.002), 100 + i * 200]),
        );
        committed = await first.roundEnded(round.id);
        expect(committed.status).toBe('committed');
      } finally {
        devices.splice(0).forEach((device) => device.disconnect());
        await first.dispose();
      }
      const restarted = await startTestCoordinator({ dataDir, maxUploadBytes: MODEL_VALUES * 4 + 4096 });
      try {
        const next = await startRound(restarted, { minClients: 1, targetClients: 1 });
        expect(next.metrics.updateBound).toBe(committed.metrics.nextUpdateBound);
        expect(next.metrics.exampleCap).toBe(committed.metrics.nextExampleCap);
        expect(next.metrics.exampleCap).toBe(100); // the median (nearest rank) of the claims 100 and 300
        await restarted.api(`/api/rounds/${next.id}/cancel`, { method: 'POST' });
      } finally {
        await restarted.dispose();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
