import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EvaluationReport } from '@flock/client-sdk/protocol';
import { EvaluationsService } from '../../src/rounds/evaluations.service.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { newRound, newVersion, weightsFor } from '../storage/fixtures.js';

/** Devices' local tests of a committed version, folded into its round's metrics in a real SQLite file. */
describe('EvaluationsService', () => {
  let dir: string;
  let storage: SqliteStorage;
  let version: number;

  const report = (overrides: Partial<EvaluationReport>): EvaluationReport => ({
    modelVersion: version,
    numExamples: 10,
    globalLoss: 0.5,
    globalAccuracy: 0.8,
    personalLoss: null,
    personalAccuracy: null,
    adopted: true,
    ...overrides,
  });
  const summary = async () => (await storage.getRound('r1'))!.metrics.localEvaluation;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flock-evaluations-'));
    storage = new SqliteStorage(join(dir, 'flock.db'));
    await storage.init();
    const base = newVersion();
    await storage.insertModelVersion(base, weightsFor(base));
    await storage.createRound(newRound('r1', { status: 'committed' }));
    const produced = newVersion(undefined, { parentVersion: 1, roundId: 'r1', source: 'round' });
    version = (await storage.insertModelVersion(produced, weightsFor(produced))).version;
  });
  afterEach(async () => {
    await storage.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps example-weighted means, counting each device once and only the personal reports in the personal means', async () => {
    const service = new EvaluationsService(storage);
    await service.handleReport('a', report({ numExamples: 10, globalAccuracy: 0.9, personalAccuracy: 0.6, personalLoss: 1 }));
    await service.handleReport('b', report({ numExamples: 30, globalAccuracy: 0.5, adopted: false }));
    await service.handleReport('a', report({ numExamples: 1000, globalAccuracy: 0 })); // a second report: ignored
    const stored = await summary();
    expect(stored).toMatchObject({ reports: 2, numExamples: 40, adopted: 1, personalAccuracy: 0.6, personalLoss: 1, personalNumExamples: 10 });
    expect(stored!.globalAccuracy).toBeCloseTo((10 * 0.9 + 30 * 0.5) / 40, 12);
  });

  it('continues the stored means after a restart instead of restarting them', async () => {
    await new EvaluationsService(storage).handleReport('a', report({ numExamples: 10, personalAccuracy: 0.6, personalLoss: 1 }));
    const restarted = new EvaluationsService(storage);
    await restarted.handleReport('b', report({ numExamples: 30, personalAccuracy: 0.2, personalLoss: 2 }));
    const stored = await summary();
    expect(stored).toMatchObject({ reports: 2, numExamples: 40, personalNumExamples: 40 });
    expect(stored!.personalAccuracy).toBeCloseTo((10 * 0.6 + 30 * 0.2) / 40, 12);
    expect(stored!.personalLoss).toBeCloseTo((10 * 1 + 30 * 2) / 40, 12);
  });

  it('counts every one of many concurrent first reports of a version', async () => {
    const service = new EvaluationsService(storage);
    await Promise.all(Array.from({ length: 20 }, (_, i) => service.handleReport(`device-${i}`, report({ numExamples: i + 1 }))));
    expect(await summary()).toMatchObject({ reports: 20, numExamples: 210 });
  });

  it('ignores malformed reports and versions no round produced', async () => {
    const service = new EvaluationsService(storage);
    await service.handleReport('a', { ...report({}), globalAccuracy: 2 });
    await service.handleReport('a', report({ modelVersion: 1 }));
    expect(await summary()).toBeNull();
  });
});
