import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { concatWeights } from '@flock/client-sdk';
import { asFloat32, type ModelPayload } from '@flock/client-sdk/protocol';
import type { RoundDetails, RoundRecord } from '../../src/contract/index.js';
import { noKeepAliveFetch } from '../../src/simulation/http-fetch.js';
import { OPERATOR_TOKEN, operatorFetch, waitFor } from '../support/coordinator.js';
import { makeDelta, ProtocolClient } from '../support/protocol-client.js';
import { TestCluster, type CoordinatorProcess } from './cluster-processes.js';

/*
 * Three real coordinator processes on one PostgreSQL database and one Redis (cluster mode), raw
 * protocol devices spread over them. Rounds commit exactly the example-weighted average of the
 * updates folded in every process; a non-leader killed with -9 mid-round loses only its partial;
 * the leader killed with -9 leaves its round to be aborted by the next process that takes the
 * round lease, which runs the next round.
 */

const cluster = new TestCluster();
/** Exact averages: no adaptive bound or cap (as EXACT_AVERAGES in support/coordinator.ts); a short heartbeat TTL so that deaths are noticed fast. */
const ENV = { FLOCK_UPDATE_BOUND_MODE: 'off', FLOCK_ADAPTIVE_EXAMPLE_CAP: 'false', FLOCK_PROCESS_TTL_MS: '1500', FLOCK_PARTIAL_TIMEOUT_MS: '8000' };
let p1: CoordinatorProcess;
let p2: CoordinatorProcess;
let p3: CoordinatorProcess;
const devices = new Map<CoordinatorProcess, ProtocolClient[]>();

const flatten = (tensors: Float32Array[]): Float32Array => new Float32Array(concatWeights(tensors));

async function weightsOf(coordinator: CoordinatorProcess, version: number): Promise<Float32Array> {
  const response = await noKeepAliveFetch(`${coordinator.url}/api/models/${version}/weights.bin`, { headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` } });
  expect(response.status).toBe(200);
  return asFloat32(new Uint8Array(await response.arrayBuffer()));
}

function startRound(coordinator: CoordinatorProcess, body: Record<string, unknown>) {
  return operatorFetch<RoundRecord & { message?: string }>(coordinator.url, '/api/rounds', { method: 'POST', body: JSON.stringify(body) });
}

function roundEnded(coordinator: CoordinatorProcess, id: string): Promise<RoundDetails> {
  return waitFor(
    () => operatorFetch<RoundDetails>(coordinator.url, `/api/rounds/${id}`),
    (r) => ['committed', 'failed', 'aborted'].includes(r.body.status),
    40_000,
    `round ${id} to end`,
  ).then((r) => r.body);
}

async function eligible(coordinator: CoordinatorProcess, count: number): Promise<void> {
  await waitFor(
    () => operatorFetch<{ connected: number; eligible: number }>(coordinator.url, '/api/clients'),
    (r) => r.body.connected === count && r.body.eligible === count,
    10_000,
    `${count} connected eligible devices in the cluster`,
  );
}

/** A device uploads its delta for the round it was configured for (the `nth` configuration it got). */
async function upload(device: ProtocolClient, nth: number, seed: number, numExamples: number): Promise<{ delta: Float32Array; numExamples: number }> {
  const configuration = await device.configurations.next(nth);
  const model: ModelPayload = await device.fetchModel(configuration.modelVersion);
  const delta = makeDelta(model, seed);
  expect(await device.upload(configuration, model, delta, numExamples, 0.1 * seed)).toEqual({ accepted: true });
  return { delta: flatten(delta), numExamples };
}

/** new = base + Σ n_k delta_k / Σ n_k, checked value by value. */
function expectWeightedAverage(committed: Float32Array, base: Float32Array, updates: { delta: Float32Array; numExamples: number }[]): void {
  const total = updates.reduce((n, u) => n + u.numExamples, 0);
  expect(committed.length).toBe(base.length);
  let worst = 0;
  for (let i = 0; i < committed.length; i++) {
    let sum = 0;
    for (const u of updates) sum += u.numExamples * u.delta[i]!;
    worst = Math.max(worst, Math.abs(committed[i]! - (base[i]! + sum / total)));
  }
  expect(worst).toBeLessThan(1e-6);
}

beforeAll(async () => {
  await cluster.create();
  p1 = await cluster.start('p1', ENV); // trains and stores version 1 before the others start
  [p2, p3] = await Promise.all([cluster.start('p2', ENV), cluster.start('p3', ENV)]);
  for (const p of [p1, p2, p3]) devices.set(p, await Promise.all([0, 1].map(() => ProtocolClient.connect(p.url))));
  await eligible(p2, 6);
});

afterAll(async () => {
  // What the processes logged (warn and above), to read when a test failed.
  if (process.env.FLOCK_TEST_SHOW_CLUSTER_LOGS) for (const p of cluster.processes) console.log(p.name, p.output().slice(-6000));
  for (const list of devices.values()) list.forEach((d) => d.disconnect());
  await cluster.dispose();
});

describe('several coordinator processes on PostgreSQL and Redis', () => {
  it('refuses strategies that cannot be split over processes', async () => {
    const refused = await startRound(p2, { minClients: 2, strategy: 'median' });
    expect(refused.status).toBe(400);
    expect(refused.body.message).toMatch(/cannot run over several coordinator processes/);
  });

  it('commits exactly the weighted average of the updates folded in three processes, driven by one of them', async () => {
    const base = await weightsOf(p2, 1);
    const started = await startRound(p1, { minClients: 6, targetClients: 6, overSelection: 1, deadlineSeconds: 40 });
    expect(started.status).toBe(201);
    const elsewhere = await startRound(p3, { minClients: 2 });
    expect(elsewhere.status).toBe(409);
    expect(elsewhere.body.message).toMatch(/another coordinator process is driving a round/);
    const cancelElsewhere = await operatorFetch<{ message: string }>(p2.url, `/api/rounds/${started.body.id}/cancel`, { method: 'POST' });
    expect(cancelElsewhere.status).toBe(409);
    expect(cancelElsewhere.body.message).toMatch(/driven by another coordinator process: cancel it there/);

    const all = [...devices.get(p1)!, ...devices.get(p2)!, ...devices.get(p3)!];
    const updates = await Promise.all(all.map((device, k) => upload(device, 0, k + 1, 100 * (k + 1))));
    const ended = await roundEnded(p2, started.body.id);
    expect(ended.status, ended.error ?? '').toBe('committed');
    expect(ended.metrics).toMatchObject({ selected: 6, reported: 6, accepted: 6, totalExamples: 2100 });
    expect(ended.transitions.map((t) => t.to)).toEqual(['selecting', 'configuring', 'reporting', 'committing', 'committed']);
    expectWeightedAverage(await weightsOf(p3, ended.committedVersion!), base, updates);
    for (const device of all) expect(await device.closed.next()).toMatchObject({ roundId: started.body.id, outcome: 'committed' });
  });

  it('commits with the others when a non-leader process is killed (-9) mid-round: only its partial is lost', async () => {
    const version = (await operatorFetch<{ version: number }>(p1.url, '/api/models/current')).body.version;
    const base = await weightsOf(p1, version);
    const started = await startRound(p1, { minClients: 4, targetClients: 6, overSelection: 1, deadlineSeconds: 40 });
    expect(started.status).toBe(201);
    // p2's devices upload into p2's partial, then p2 dies with it
    await Promise.all(devices.get(p2)!.map((device, k) => upload(device, 1, 20 + k, 70)));
    await cluster.kill9(p2);
    const survivors = [...devices.get(p1)!, ...devices.get(p3)!];
    const updates = await Promise.all(survivors.map((device, k) => upload(device, 1, 10 + k, 50 * (k + 1))));
    const ended = await roundEnded(p1, started.body.id);
    expect(ended.status, ended.error ?? '').toBe('committed');
    expect(ended.metrics).toMatchObject({ selected: 6, accepted: 4, totalExamples: 500 });
    expectWeightedAverage(await weightsOf(p3, ended.committedVersion!), base, updates);
    devices.delete(p2);
  });

  it('aborts the round of a leader killed (-9) mid-round; the next round runs and commits on another process', async () => {
    const version = (await operatorFetch<{ version: number }>(p3.url, '/api/models/current')).body.version;
    const base = await weightsOf(p3, version);
    await eligible(p3, 4); // p2's devices purged
    const orphaned = await startRound(p1, { minClients: 4, targetClients: 4, overSelection: 1, deadlineSeconds: 40 });
    expect(orphaned.status).toBe(201);
    await Promise.all(devices.get(p3)!.map((device, k) => upload(device, 2, 30 + k, 40)));
    await cluster.kill9(p1);
    devices.delete(p1);
    await eligible(p3, 2); // p1's devices purged, p3's released by whoever aborted the round

    // p1's lease ended with its connection: p3 takes it, marks p1's round aborted and drives the next one
    const next = await waitFor(
      () => startRound(p3, { minClients: 2, targetClients: 2, overSelection: 1, deadlineSeconds: 40 }),
      (r) => r.status !== 409,
      10_000,
      'the round lease to be free',
    );
    expect(next.status).toBe(201);
    const aborted = (await operatorFetch<RoundDetails>(p3.url, `/api/rounds/${orphaned.body.id}`)).body;
    expect(aborted).toMatchObject({ status: 'aborted', error: 'the coordinator process driving the round stopped', committedVersion: null });

    const updates = await Promise.all(devices.get(p3)!.map((device, k) => upload(device, 3, 40 + k, 30 * (k + 1))));
    const ended = await roundEnded(p3, next.body.id);
    expect(ended.status, ended.error ?? '').toBe('committed');
    expect(ended.committedVersion).toBe(version + 1);
    expect(ended.metrics).toMatchObject({ accepted: 2, totalExamples: 90 });
    expectWeightedAverage(await weightsOf(p3, ended.committedVersion!), base, updates);
  });
});
