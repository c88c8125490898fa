/**
 * Issue 10's attacks on devices' local-evaluation reports, with raw protocol clients against a real
 * coordinator (SQLite file, restarted on the same data directory where the attack needs it).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClientEvent, type EvaluationReport, type EvaluationReportResult } from '@flock/client-sdk/protocol';
import type { LocalEvaluationSummary, RoundDetails, RoundRecord } from '../../src/contract/index.js';
import { startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { makeDelta, newDeviceKey, ProtocolClient, type ConnectOptions } from '../support/protocol-client.js';

/** Sends a report and returns the coordinator's acknowledgement. */
function report(device: ProtocolClient, payload: unknown): Promise<EvaluationReportResult> {
  const socket = device.socket as unknown as { timeout(ms: number): { emitWithAck(event: string, payload: unknown): Promise<EvaluationReportResult> } };
  return socket.timeout(10_000).emitWithAck(ClientEvent.evaluation, payload);
}

const honestReport = (modelVersion: number, globalAccuracy: number): EvaluationReport => ({
  modelVersion,
  numExamples: 100,
  globalLoss: 0.3,
  globalAccuracy,
  personalLoss: 0.25,
  personalAccuracy: globalAccuracy + 0.02,
  adopted: true,
});

/** Runs one round to a commit with the given devices (all selected, all upload); returns the round and its version. */
async function commitRound(coordinator: TestCoordinator, devices: ProtocolClient[]): Promise<{ roundId: string; version: number }> {
  const seen = devices.map((d) => d.configurations.items.length);
  const started = await coordinator.api<RoundRecord>('/api/rounds', {
    method: 'POST',
    body: JSON.stringify({ minClients: devices.length, targetClients: devices.length, overSelection: 1, deadlineSeconds: 30 }),
  });
  expect(started.status).toBe(201);
  await Promise.all(
    devices.map(async (device, i) => {
      const configuration = await device.configurations.next(seen[i]);
      const model = await device.fetchModel(configuration.modelVersion);
      expect(await device.upload(configuration, model, makeDelta(model, i), 100)).toEqual({ accepted: true });
    }),
  );
  const { body } = await waitFor(
    () => coordinator.api<RoundDetails>(`/api/rounds/${started.body.id}`),
    (r) => r.body.status === 'committed',
    20_000,
    'the commit',
  );
  return { roundId: body.id, version: body.committedVersion! };
}

async function summaryOf(coordinator: TestCoordinator, roundId: string, reports: number): Promise<LocalEvaluationSummary> {
  const { body } = await waitFor(
    () => coordinator.api<RoundDetails>(`/api/rounds/${roundId}`),
    (r) => r.body.metrics.localEvaluation?.reports === reports,
    10_000,
    `a summary of ${reports} reports`,
  );
  return body.metrics.localEvaluation!;
}

async function refusals(coordinator: TestCoordinator, reason: string): Promise<number> {
  const { body } = await coordinator.api<string>('/metrics');
  const line = body.split('\n').find((l) => l.startsWith(`flock_evaluation_reports_total{result="refused",reason="${reason}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('evaluation reports from hostile devices', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'flock-evaluations-'));
  let coordinator: TestCoordinator;
  const devices: ProtocolClient[] = [];
  const connect = async (options: ConnectOptions = {}) => {
    const device = await ProtocolClient.connect(coordinator.url, options);
    devices.push(device);
    return device;
  };

  beforeAll(async () => {
    coordinator = await startTestCoordinator({ dataDir });
  });
  afterEach(() => {
    devices.splice(0).forEach((d) => d.disconnect());
  });
  afterAll(async () => {
    await coordinator?.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses the poisoning report (1e9 examples, loss 1e308); a liar within the bounds moves neither the median nor the capped mean beyond its share', async () => {
    const honest = await Promise.all([connect(), connect(), connect()]);
    const attacker = await connect({ eligible: false }); // connected when the version is published, not selected
    const { roundId, version } = await commitRound(coordinator, honest);
    const accuracies = [0.88, 0.9, 0.92];
    for (const [i, device] of honest.entries()) expect(await report(device, honestReport(version, accuracies[i]!))).toEqual({ accepted: true });

    const poison = { modelVersion: version, numExamples: 1e9, globalLoss: 1e308, globalAccuracy: 0, personalLoss: 1e308, personalAccuracy: 0, adopted: false };
    expect(await report(attacker, poison)).toEqual({ accepted: false, reason: 'malformed' });
    const clean = await summaryOf(coordinator, roundId, 3);
    expect(clean.globalAccuracy).toBeCloseTo(0.9, 12);
    expect(clean.globalLoss).toBeCloseTo(0.3, 12);
    expect(clean.spread!.globalAccuracy.median).toBeCloseTo(0.9, 12);

    // The worst report the bounds allow: a million examples (counted as COUNTED_EXAMPLES_CAP), accuracy 0, the largest loss.
    const liar = { ...poison, numExamples: 1_000_000, globalLoss: 1_000_000, personalLoss: 1_000_000 };
    expect(await report(attacker, liar)).toEqual({ accepted: true });
    const lied = await summaryOf(coordinator, roundId, 4);
    expect(lied.spread!.globalAccuracy.median).toBeCloseTo(0.89, 12); // between the two lower honest devices
    expect(lied.weightCap).toBe(200); // twice the median count (100): the liar weighs 200 of 500, not 10,000 of 10,300
    expect(lied.globalAccuracy).toBeCloseTo((100 * (0.88 + 0.9 + 0.92)) / 500, 12);
    expect(lied.spread!.globalLoss.median).toBeCloseTo(0.3, 12);
    expect(Number.isFinite(lied.globalLoss)).toBe(true);
  });

  it('does not let reports for 40 versions that do not exist make room for a second report', async () => {
    const device = await connect();
    const { roundId, version } = await commitRound(coordinator, [device]);
    expect(await report(device, honestReport(version, 0.9))).toEqual({ accepted: true });
    const unknownBefore = await refusals(coordinator, 'unknown_version');
    for (let v = 1000; v < 1040; v++) expect(await report(device, honestReport(v, 0.1))).toEqual({ accepted: false, reason: 'unknown_version' });
    expect(await report(device, honestReport(version, 0.1))).toEqual({ accepted: false, reason: 'duplicate_report' });
    expect(await refusals(coordinator, 'unknown_version')).toBe(unknownBefore + 40);
    const summary = await summaryOf(coordinator, roundId, 1);
    expect(summary.globalAccuracy).toBeCloseTo(0.9, 12);
  });

  it('refuses a report on a version the device was never offered, until it fetches that version', async () => {
    const trainer = await connect();
    const { roundId, version } = await commitRound(coordinator, [trainer]);
    // A rollback makes a newer current version: a device connecting now is welcomed with that one.
    const rolled = await coordinator.api<{ version: number }>(`/api/models/${version - 1}/rollback`, { method: 'POST' });
    expect(rolled.status).toBe(201);
    const late = await connect();
    expect(late.welcome.currentModelVersion).toBe(rolled.body.version);
    expect(await report(late, honestReport(version, 0.5))).toEqual({ accepted: false, reason: 'not_offered' });
    // The rollback version itself was offered, but no round committed it: nothing summarizes it.
    expect(await report(late, honestReport(rolled.body.version, 0.5))).toEqual({ accepted: false, reason: 'no_round' });
    await late.fetchModel(version);
    expect(await report(late, honestReport(version, 0.5))).toEqual({ accepted: true });
    expect((await summaryOf(coordinator, roundId, 1)).globalAccuracy).toBeCloseTo(0.5, 12);
  });

  it('refuses a device reporting the same version again after a coordinator restart', async () => {
    const key = newDeviceKey(); // the same identity before and after the restart
    const device = await connect({ key });
    const { roundId, version } = await commitRound(coordinator, [device]);
    expect(await report(device, honestReport(version, 0.9))).toEqual({ accepted: true });
    await summaryOf(coordinator, roundId, 1);
    device.disconnect();

    await coordinator.close();
    coordinator = await startTestCoordinator({ dataDir });
    const again = await connect({ key });
    expect(again.welcome.currentModelVersion).toBe(version);
    expect(await report(again, honestReport(version, 0.1))).toEqual({ accepted: false, reason: 'duplicate_report' });
    expect(await refusals(coordinator, 'duplicate_report')).toBe(1);
    const summary = await summaryOf(coordinator, roundId, 1);
    expect(summary.globalAccuracy).toBeCloseTo(0.9, 12);
  });
});
