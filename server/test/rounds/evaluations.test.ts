import { mkdtempSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EvaluationReport } from '@flock/client-sdk/protocol';
import { MetricsService } from '../../src/metrics/metrics.service.js';
import { EvaluationsService } from '../../src/rounds/evaluations.service.js';
import { OfferedVersions } from '../../src/rounds/offered-versions.js';
import { MIN_REFRESH_INTERVAL_MS } from '../../src/rounds/summary-refresher.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { newRound, newVersion, weightsFor } from '../storage/fixtures.js';

/** Devices' local tests of a committed version, stored one per device and summarized on its round, in a real SQLite file. */
describe('EvaluationsService', () => {
  let dir: string;
  let storage: SqliteStorage;
  let metrics: MetricsService;
  let version: number;
  /** A connection welcomed when `version` was current. */
  let offers: OfferedVersions;

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
  const service = () => new EvaluationsService(storage, metrics);
  const counted = async (result: string, reason: string) =>
    (await metrics.evaluationReportsTotal.get()).values.find((v) => v.labels.result === result && v.labels.reason === reason)?.value ?? 0;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flock-evaluations-'));
    storage = new SqliteStorage(join(dir, 'flock.db'));
    await storage.init();
    metrics = new MetricsService();
    const base = newVersion();
    await storage.insertModelVersion(base, weightsFor(base));
    await storage.createRound(newRound('r1', { status: 'committed' }));
    const produced = newVersion(undefined, { parentVersion: 1, roundId: 'r1', source: 'round' });
    version = (await storage.insertModelVersion(produced, weightsFor(produced))).version;
    offers = new OfferedVersions(version);
  });
  afterEach(async () => {
    await storage.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps means with capped weights (here below the cap: example-weighted), counting each device once and only the personal reports in the personal means', async () => {
    const evaluations = service();
    await evaluations.handleReport('a', report({ numExamples: 10, globalAccuracy: 0.9, personalAccuracy: 0.6, personalLoss: 1 }), offers);
    await evaluations.handleReport('b', report({ numExamples: 30, globalAccuracy: 0.5, adopted: false }), offers);
    expect(await evaluations.handleReport('a', report({ numExamples: 1000, globalAccuracy: 0 }), offers)).toEqual({
      accepted: false,
      reason: 'duplicate_report',
    });
    await evaluations.flush();
    const stored = await summary();
    expect(stored).toMatchObject({ reports: 2, numExamples: 40, adopted: 1, personalAccuracy: 0.6, personalLoss: 1, personalNumExamples: 10, weightCap: 40 });
    expect(stored!.globalAccuracy).toBeCloseTo((10 * 0.9 + 30 * 0.5) / 40, 12);
    expect(stored!.spread).toMatchObject({ globalAccuracy: { q1: 0.6, median: 0.7, q3: 0.8 }, personalReports: 1, personalBetterShare: 0 });
  });

  it('continues from the stored reports after a restart, and the stored key refuses a device reporting again', async () => {
    const before = service();
    await before.handleReport('a', report({ numExamples: 10, personalAccuracy: 0.6, personalLoss: 1 }), offers);
    await before.flush();
    const restarted = service();
    await restarted.handleReport('b', report({ numExamples: 30, personalAccuracy: 0.2, personalLoss: 2 }), offers);
    expect(await restarted.handleReport('a', report({ numExamples: 30, personalAccuracy: 0.9, personalLoss: 2 }), new OfferedVersions(version))).toEqual({
      accepted: false,
      reason: 'duplicate_report',
    });
    await restarted.flush();
    const stored = await summary();
    expect(stored).toMatchObject({ reports: 2, numExamples: 40, personalNumExamples: 40 });
    expect(stored!.personalAccuracy).toBeCloseTo((10 * 0.6 + 30 * 0.2) / 40, 12);
    expect(stored!.personalLoss).toBeCloseTo((10 * 1 + 30 * 2) / 40, 12);
  });

  it('counts every one of many concurrent first reports of a version', async () => {
    const evaluations = service();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => evaluations.handleReport(`device-${i}`, report({ numExamples: i + 1 }), offers)));
    expect(results.every((r) => r.accepted)).toBe(true);
    await evaluations.flush();
    expect(await summary()).toMatchObject({ reports: 20, numExamples: 210 });
    expect(await counted('accepted', '')).toBe(20);
  });

  it('refuses malformed reports, unknown versions, versions no round produced and versions never offered, counting each reason', async () => {
    const evaluations = service();
    const hostile: unknown[] = [
      { ...report({}), globalAccuracy: 2 },
      { ...report({}), globalLoss: 1e308 },
      { ...report({}), numExamples: 1e9 },
      { ...report({}), personalLoss: -1, personalAccuracy: 0.5 },
      null,
      'report',
    ];
    for (const payload of hostile) expect(await evaluations.handleReport('a', payload, offers)).toEqual({ accepted: false, reason: 'malformed' });
    expect(await evaluations.handleReport('a', report({ modelVersion: 99 }), offers)).toEqual({ accepted: false, reason: 'unknown_version' });
    expect(await evaluations.handleReport('a', report({ modelVersion: 1 }), new OfferedVersions(1))).toEqual({ accepted: false, reason: 'no_round' });
    // Welcomed at a later version, never fetched this one; and a connection not yet welcomed.
    expect(await evaluations.handleReport('a', report({}), new OfferedVersions(version + 1))).toEqual({ accepted: false, reason: 'not_offered' });
    expect(await evaluations.handleReport('a', report({}), undefined)).toEqual({ accepted: false, reason: 'not_offered' });
    await evaluations.flush();
    expect(await summary()).toBeNull();
    expect(await storage.listEvaluationReports(version)).toEqual([]);
    expect(await counted('refused', 'malformed')).toBe(hostile.length);
    expect(await counted('refused', 'not_offered')).toBe(2);
    expect(await counted('refused', 'unknown_version')).toBe(1);
    expect(await counted('refused', 'no_round')).toBe(1);
  });

  it('accepts an older version the connection fetched', async () => {
    const evaluations = service();
    const later = new OfferedVersions(version + 1);
    later.recordFetch(version);
    expect(await evaluations.handleReport('a', report({}), later)).toEqual({ accepted: true });
  });

  it('recomputes the summary at a bounded rate while reports keep coming, and every report is in the final one', async () => {
    const evaluations = service();
    let refreshes = 0;
    const update = storage.updateRound.bind(storage);
    storage.updateRound = async (...args) => {
      refreshes++;
      return update(...args);
    };
    const began = performance.now();
    for (let i = 0; i < 200; i++) await evaluations.handleReport(`device-${i}`, report({ globalAccuracy: i / 200 }), offers);
    const elapsed = performance.now() - began;
    // The first report's refresh at once, then at most one per interval (however slow the disk).
    expect(refreshes).toBeLessThanOrEqual(2 + Math.floor(elapsed / MIN_REFRESH_INTERVAL_MS));
    expect(refreshes).toBeLessThan(20);
    await evaluations.flush();
    expect(await summary()).toMatchObject({ reports: 200, spread: { globalAccuracy: { median: 199 / 400 } } });
  });
});
