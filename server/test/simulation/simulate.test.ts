import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSimulationOutput, type RoundRow } from '../../src/simulation/report.js';
import { runSimulation } from '../../src/simulation/simulator.js';

const out = mkdtempSync(join(tmpdir(), 'flock-sim-test-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('pnpm simulate (runSimulation)', () => {
  it(
    'trains a random 2NN with real SDK clients in worker threads to well above chance in 3 rounds, with simulated dropouts',
    async () => {
      const rows: RoundRow[] = [];
      // 10 clients x 300 IID examples, all selected every round (C = 1), so the seeded dropout
      // draws (per round and client) are the same on every run.
      const summary = await runSimulation({
        clients: 10,
        examplesPerClient: 300,
        fraction: 1,
        rounds: 3,
        epochs: 1,
        batchSize: 10,
        learningRate: 0.1,
        partition: 'iid',
        workers: 2,
        seed: 3,
        dropout: 0.2,
        localTestExamples: 10,
        localEvaluation: 0.5,
        init: 'random',
        onRound: (row) => rows.push(row),
      });
      expect(rows).toHaveLength(3);
      expect(summary.rounds).toEqual(rows);
      expect(summary.initialAccuracy).toBeLessThan(0.3); // an untrained 2NN
      for (const row of rows) {
        expect(row.status).toBe('committed');
        expect(row.clients).toBe(10);
        expect(row.accepted + row.dropped).toBe(10);
        expect(row.accepted).toBeGreaterThan(0);
        expect(row.bytes).toBe(row.accepted * 199_210 * 4);
      }
      const dropped = rows.reduce((n, row) => n + row.dropped, 0);
      expect(dropped).toBeGreaterThan(0);
      expect(dropped).toBeLessThan(20);
      expect(rows[0]!.accuracy).toBeGreaterThan(summary.initialAccuracy + 0.3);
      expect(summary.finalAccuracy).toBeGreaterThan(0.8);
      expect(summary.clientErrors.upload_rejected ?? 0).toBe(0);

      const files = await writeSimulationOutput(out, summary, { target: 0.9 });
      const csv = readFileSync(files[1]!, 'utf8').trim().split('\n');
      expect(csv).toHaveLength(4);
      const json = JSON.parse(readFileSync(files[0]!, 'utf8')) as { rounds: RoundRow[]; config: { clientsPerRound: number } };
      expect(json.rounds).toHaveLength(3);
      expect(json.config.clientsPerRound).toBe(10);
      const svg = readFileSync(files[2]!, 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      for (const axis of ['test accuracy (%)', 'test loss']) expect(svg).toContain(`>${axis}</text>`);
    },
    180_000, // ~17 s on an idle 2-core machine; generous for a loaded one
  );

  it('--secure-aggregation --secagg-key-agreement X25519: 12 clients (rosters of up to 11 neighbours) with dropouts commit secure rounds that train the 2NN', async () => {
    const rows: RoundRow[] = [];
    const summary = await runSimulation({
      clients: 12,
      examplesPerClient: 300,
      fraction: 1,
      rounds: 2,
      epochs: 1,
      batchSize: 10,
      learningRate: 0.1,
      partition: 'iid',
      workers: 2,
      seed: 3,
      dropout: 0.2,
      localTestExamples: 10,
      localEvaluation: 0,
      init: 'random',
      secureAggregation: 'X25519',
      onRound: (row) => rows.push(row),
    });
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      expect(row.status).toBe('committed');
      expect(row.accepted + row.dropped).toBe(12);
      expect(row.accepted).toBeGreaterThan(1);
      // Masked inputs: the 2NN's values plus the weight and the loss, 4 bytes each, and nothing in the clear.
      expect(row.bytes).toBe(row.accepted * 199_212 * 4);
    }
    expect(rows.reduce((n, row) => n + row.dropped, 0)).toBeGreaterThan(0);
    expect(rows[0]!.accuracy).toBeGreaterThan(summary.initialAccuracy + 0.3);
    expect(summary.clientErrors).toEqual({});
  }, 180_000);

  it('Byzantine clients send poisoned but valid updates: FedAvg is thrown off, trimmed mean is not', async () => {
    // 10 clients, all selected; 2 of them send Gaussian noise of norm ~450 instead of their delta.
    const common = {
      clients: 10,
      examplesPerClient: 300,
      fraction: 1,
      rounds: 2,
      partition: 'iid' as const,
      seed: 5,
      byzantine: 0.2,
      attack: 'noise' as const,
      localEvaluation: 0,
      // The coordinator's default norm bound would clip the noise (bench/poisoning.ts measures that): this shows FedAvg without it.
      defenses: false,
    };
    const fedavg = await runSimulation({ ...common, strategy: 'fedavg' });
    const trimmed = await runSimulation({ ...common, strategy: 'trimmed-mean', strategyOptions: { trimFraction: 0.2 } });
    for (const summary of [fedavg, trimmed]) {
      for (const row of summary.rounds) {
        expect(row.status).toBe('committed');
        expect(row.accepted).toBe(10); // protocol-valid: the coordinator cannot tell them apart
        expect(row.poisoned).toBe(2);
      }
      expect(summary.clientErrors.upload_rejected ?? 0).toBe(0);
    }
    expect(fedavg.finalAccuracy).toBeLessThan(0.5);
    expect(trimmed.finalAccuracy).toBeGreaterThan(0.8);
    // The round-time split is filled in from the SDK's timings and the coordinator's metrics.
    const row = trimmed.rounds[1]!;
    expect(row.clientTrainingMs).toBeGreaterThan(0);
    expect(row.clientUploadMs).toBeGreaterThan(0);
    expect(row.reportingMs).toBeGreaterThan(0);
    expect(row.validationMs).toBeGreaterThan(0);
    expect(row.aggregationMs).toBeGreaterThan(0);
  }, 180_000);
});
