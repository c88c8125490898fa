/**
 * One contract, two implementations: every test runs against SQLite (a temp file) and PostgreSQL
 * (FLOCK_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test; each test gets its own
 * schema, dropped afterwards). PostgreSQL being unreachable fails the suite: CI starts it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PostgresStorage, redactUrl } from '../../src/storage/postgres-storage.js';
import { RecordNotFoundError, REPORTS_PER_READ } from '../../src/storage/rows.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import type { EvaluationNumbers, Storage } from '../../src/storage/storage.js';
import { localEvaluationSummarySchema } from '../../src/contract/index.js';
import { summarizeReports } from '../../src/rounds/evaluation-summary.js';
import type { RoundStatus } from '@flock/client-sdk/protocol';
import { TWO_NN_SHAPES, newRound, newVersion, weightsFor } from './fixtures.js';

const POSTGRES_URL = process.env.FLOCK_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

interface Harness {
  storage: Storage;
  /** Runs SQL on a separate connection to the same database (to poke at the schema's guarantees). */
  raw(sql: string): Promise<void>;
  /** A second Storage instance on the same database (a restart, or another process). */
  reopen(): Promise<Storage>;
  dispose(): Promise<void>;
}

interface Implementation {
  name: string;
  setup(): Promise<Harness>;
}

const tmpRoot = mkdtempSync(join(tmpdir(), 'flock-storage-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

const sqlite: Implementation = {
  name: 'SQLite',
  async setup() {
    const path = join(tmpRoot, `${randomBytes(6).toString('hex')}.db`);
    const storage = new SqliteStorage(path);
    await storage.init();
    const others: Storage[] = [];
    return {
      storage,
      async raw(sql) {
        const db = new Database(path);
        try {
          db.exec(sql);
        } finally {
          db.close();
        }
      },
      async reopen() {
        const other = new SqliteStorage(path);
        await other.init();
        others.push(other);
        return other;
      },
      async dispose() {
        await Promise.all([storage, ...others].map((s) => s.close()));
      },
    };
  },
};

const postgres: Implementation = {
  name: 'PostgreSQL',
  async setup() {
    const schema = `flock_test_${process.pid}_${randomBytes(4).toString('hex')}`;
    const storage = new PostgresStorage(POSTGRES_URL, { schema, maxConnections: 4 });
    await storage.init();
    const others: Storage[] = [];
    const client = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
      const c = new pg.Client({ connectionString: POSTGRES_URL, options: `-c search_path=${schema}` });
      await c.connect();
      try {
        return await fn(c);
      } finally {
        await c.end();
      }
    };
    return {
      storage,
      raw: (sql) => client(async (c) => void (await c.query(sql))),
      async reopen() {
        const other = new PostgresStorage(POSTGRES_URL, { schema, maxConnections: 2 });
        await other.init();
        others.push(other);
        return other;
      },
      async dispose() {
        await Promise.all([storage, ...others].map((s) => s.close()));
        await client((c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
      },
    };
  },
};

beforeAll(async () => {
  // Fail loudly (never skip) when PostgreSQL is not there.
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    throw new Error(
      `The storage contract tests need PostgreSQL at ${redactUrl(POSTGRES_URL)} and could not connect (${(error as Error).message}). ` +
        'Start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or set FLOCK_TEST_POSTGRES_URL.',
    );
  } finally {
    await client.end().catch(() => undefined);
  }
});

describe.each([sqlite, postgres])('Storage contract: $name', (implementation) => {
  let harness: Harness;
  let storage: Storage;

  beforeEach(async () => {
    harness = await implementation.setup();
    storage = harness.storage;
  });
  afterEach(async () => {
    await harness.dispose();
  });

  describe('model versions', () => {
    it('numbers versions 1, 2, 3 and lists them newest first', async () => {
      expect(await storage.latestModelVersion()).toBeNull();
      expect(await storage.listModelVersions()).toEqual([]);
      const first = await storage.insertModelVersion(newVersion(), weightsFor(newVersion()));
      const second = await storage.insertModelVersion(
        newVersion([[3, 2], [2]], { source: 'round', parentVersion: 1, roundId: 'r1' }),
        weightsFor(newVersion(), 2),
      );
      const third = await storage.insertModelVersion(newVersion([[3, 2], [2]], { source: 'rollback', parentVersion: 2 }), weightsFor(newVersion(), 3));
      expect([first.version, second.version, third.version]).toEqual([1, 2, 3]);
      expect(second).toMatchObject({ parentVersion: 1, roundId: 'r1', source: 'round', numParameters: 8 });
      expect(Number.isNaN(Date.parse(first.createdAt))).toBe(false);
      expect((await storage.latestModelVersion())?.version).toBe(3);
      expect((await storage.listModelVersions()).map((meta) => meta.version)).toEqual([3, 2, 1]);
      expect(await storage.getModelVersion(99)).toBeNull();
      expect(await storage.getModelWeights(99)).toBeNull();
    });

    it('assigns distinct consecutive numbers to concurrent inserts, also from a second instance', async () => {
      const other = await harness.reopen();
      const version = newVersion();
      const metas = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? storage : other).insertModelVersion(version, weightsFor(version, i))));
      expect(metas.map((meta) => meta.version).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    });

    it('round-trips a 2NN-sized version byte-exact, with its topology, specs, metrics and strategy state', async () => {
      const version = newVersion(TWO_NN_SHAPES, { strategyState: new Uint8Array([0, 1, 2, 254, 255]) });
      expect(version.numParameters).toBe(199_210);
      const weights = weightsFor(version, 7);
      const insertStart = performance.now();
      const meta = await storage.insertModelVersion(version, weights);
      const insertMs = performance.now() - insertStart;
      const readStart = performance.now();
      const stored = await storage.getModelWeights(meta.version);
      const readMs = performance.now() - readStart;
      console.info(
        `[${implementation.name}] 2NN version (${weights.byteLength} bytes): insert ${insertMs.toFixed(1)} ms, read weights ${readMs.toFixed(1)} ms`,
      );
      expect(stored).not.toBeNull();
      expect(Buffer.compare(Buffer.from(stored!), Buffer.from(weights))).toBe(0);
      const record = await storage.getModelVersion(meta.version);
      expect(record).toEqual({ ...meta, topology: version.topology, weightSpecs: version.weightSpecs, strategyState: new Uint8Array([0, 1, 2, 254, 255]) });
      expect(record!.metrics).toEqual({ testAccuracy: 0.5, note: 'fixture', missing: null });
    });

    it('rejects weights whose length does not match the specs, storing nothing', async () => {
      await expect(storage.insertModelVersion(newVersion(), new Uint8Array(12))).rejects.toThrow(/bytes/);
      expect(await storage.latestModelVersion()).toBeNull();
    });

    it('keeps versions immutable: copies out, later inserts do not touch them, the schema refuses updates and deletes', async () => {
      const version = newVersion();
      const weights = weightsFor(version);
      const original = Uint8Array.from(weights);
      await storage.insertModelVersion(version, weights);
      weights.fill(0); // the caller reusing its buffer must not change the stored version
      const read = await storage.getModelWeights(1);
      expect(Buffer.from(read!).equals(Buffer.from(original))).toBe(true);
      read!.fill(9); // nor must a reader modifying what it got
      expect(Buffer.from((await storage.getModelWeights(1))!).equals(Buffer.from(original))).toBe(true);

      await storage.insertModelVersion(newVersion([[3, 2], [2]], { parentVersion: 1 }), weightsFor(version, 5));
      expect(Buffer.from((await storage.getModelWeights(1))!).equals(Buffer.from(original))).toBe(true);

      await expect(harness.raw('UPDATE model_versions SET weights = weights WHERE version = 1')).rejects.toThrow(/immutable/);
      await expect(harness.raw("UPDATE model_versions SET source = 'round' WHERE version = 1")).rejects.toThrow(/immutable/);
      await expect(harness.raw('DELETE FROM model_versions WHERE version = 1')).rejects.toThrow(/immutable|never deleted/);
      expect((await storage.getModelVersion(1))?.source).toBe('initial');
    });

    it('merges metrics (later values win, nulls kept) and nothing else changes', async () => {
      const meta = await storage.insertModelVersion(newVersion(), weightsFor(newVersion()));
      await storage.updateModelMetrics(meta.version, { note: null, localAccuracy: 0.91 });
      await storage.updateModelMetrics(meta.version, { reports: 3 });
      const record = await storage.getModelVersion(meta.version);
      expect(record!.metrics).toEqual({ testAccuracy: 0.5, note: null, missing: null, localAccuracy: 0.91, reports: 3 });
      expect({ ...record!, metrics: undefined }).toEqual({
        ...meta,
        metrics: undefined,
        topology: newVersion().topology,
        weightSpecs: newVersion().weightSpecs,
        strategyState: null,
      });
      await expect(storage.updateModelMetrics(42, { a: 1 })).rejects.toThrow(RecordNotFoundError);
    });

    it('keeps data across a reopen (init is idempotent)', async () => {
      await storage.insertModelVersion(newVersion(), weightsFor(newVersion()));
      await storage.init();
      const other = await harness.reopen();
      expect((await other.latestModelVersion())?.version).toBe(1);
    });
  });

  describe('rounds', () => {
    it('creates, reads and patches rounds; updatedAt moves, unknown ids are errors', async () => {
      const round = newRound('round-1');
      await storage.createRound(round);
      expect(await storage.getRound('round-1')).toEqual(round);
      expect(await storage.getRound('nope')).toBeNull();
      await expect(storage.createRound(round)).rejects.toThrow();

      const metrics = { ...round.metrics, selected: 4, rejected: { norm_exceeded: 1 } };
      const updated = await storage.updateRound('round-1', { status: 'reporting', metrics });
      expect(updated).toMatchObject({ status: 'reporting', metrics, committedVersion: null, error: null, endedAt: null });
      expect(updated.updatedAt > round.updatedAt).toBe(true);
      expect(await storage.getRound('round-1')).toEqual(updated);

      const failed = await storage.updateRound('round-1', { status: 'failed', error: 'quorum not reached', endedAt: '2025-01-01T00:05:00.000Z' });
      expect(failed).toMatchObject({ status: 'failed', error: 'quorum not reached', endedAt: '2025-01-01T00:05:00.000Z', metrics });
      await expect(storage.updateRound('nope', { status: 'aborted' })).rejects.toThrow(RecordNotFoundError);
    });

    it('lists rounds newest first with limit and offset', async () => {
      for (let i = 1; i <= 5; i++) {
        await storage.createRound(newRound(`r${i}`, { createdAt: `2025-01-0${i}T00:00:00.000Z` }));
      }
      // Same createdAt as r5: the one created later counts as newer.
      await storage.createRound(newRound('r6', { createdAt: '2025-01-05T00:00:00.000Z' }));
      expect((await storage.listRounds()).map((r) => r.id)).toEqual(['r6', 'r5', 'r4', 'r3', 'r2', 'r1']);
      expect((await storage.listRounds({ limit: 2 })).map((r) => r.id)).toEqual(['r6', 'r5']);
      expect((await storage.listRounds({ limit: 2, offset: 2 })).map((r) => r.id)).toEqual(['r4', 'r3']);
      expect((await storage.listRounds({ offset: 5 })).map((r) => r.id)).toEqual(['r1']);
    });

    it('finds rounds by status', async () => {
      const statuses: RoundStatus[] = ['selecting', 'reporting', 'committed', 'failed', 'configuring', 'reporting'];
      for (const [i, status] of statuses.entries()) await storage.createRound(newRound(`s${i}`, { status }));
      expect((await storage.findRoundsByStatus(['selecting', 'configuring', 'reporting', 'committing'])).map((r) => r.id)).toEqual(['s0', 's1', 's4', 's5']);
      expect((await storage.findRoundsByStatus(['failed'])).map((r) => r.id)).toEqual(['s3']);
      expect(await storage.findRoundsByStatus(['aborted'])).toEqual([]);
      expect(await storage.findRoundsByStatus([])).toEqual([]);
    });

    it('lists transitions in the order they were appended, per round', async () => {
      await storage.createRound(newRound('a'));
      await storage.createRound(newRound('b'));
      const at = '2025-01-01T00:00:00.000Z'; // identical timestamps: order must come from insertion
      const path: [RoundStatus | null, RoundStatus][] = [
        [null, 'selecting'],
        ['selecting', 'configuring'],
        ['configuring', 'reporting'],
        ['reporting', 'failed'],
      ];
      for (const [from, to] of path) {
        await storage.appendTransition({ roundId: 'a', from, to, at, note: `${from}->${to}` });
        await storage.appendTransition({ roundId: 'b', from, to, at, note: null });
      }
      const transitions = await storage.listTransitions('a');
      expect(transitions.map((t) => [t.from, t.to])).toEqual(path);
      expect(transitions[1]).toEqual({ roundId: 'a', from: 'selecting', to: 'configuring', at, note: 'selecting->configuring' });
      expect(await storage.listTransitions('b')).toHaveLength(4);
      expect(await storage.listTransitions('c')).toEqual([]);
      await expect(storage.appendTransition({ roundId: 'missing', from: null, to: 'selecting', at, note: null })).rejects.toThrow();
    });
  });

  describe('evaluation reports', () => {
    const numbers = (globalAccuracy: number, adopted = true): EvaluationNumbers => ({
      numExamples: 40,
      globalLoss: 0.25,
      globalAccuracy,
      personalLoss: null,
      personalAccuracy: null,
      adopted,
    });
    const roundVersion = async () => {
      await storage.insertModelVersion(newVersion(), weightsFor(newVersion()));
      await storage.createRound(newRound('r1', { status: 'committed' }));
      return storage.insertModelVersion(newVersion([[3, 2], [2]], { source: 'round', parentVersion: 1, roundId: 'r1' }), weightsFor(newVersion(), 2));
    };

    it('stores one report per device and version: a second one is refused by the key, also from another instance', async () => {
      const { version } = await roundVersion();
      const personal = { ...numbers(0.75, false), personalLoss: 0.5, personalAccuracy: 0.875 };
      expect(await storage.insertEvaluationReport({ modelVersion: version, clientId: 'device-a', ...personal })).toBe(true);
      expect(await storage.insertEvaluationReport({ modelVersion: version, clientId: 'device-b', ...numbers(0.5) })).toBe(true);
      expect(await storage.insertEvaluationReport({ modelVersion: 1, clientId: 'device-a', ...numbers(0.25) })).toBe(true);
      const other = await harness.reopen();
      expect(await other.insertEvaluationReport({ modelVersion: version, clientId: 'device-a', ...numbers(0) })).toBe(false);
      expect(await storage.insertEvaluationReport({ modelVersion: version, clientId: 'device-b', ...numbers(0) })).toBe(false);
      const stored = await storage.listEvaluationReports(version);
      expect(stored.sort((a, b) => a.globalAccuracy - b.globalAccuracy)).toEqual([numbers(0.5), personal]);
      expect(await storage.listEvaluationReports(1)).toEqual([numbers(0.25)]);
      expect(await storage.listEvaluationReports(99)).toEqual([]);
      await expect(
        harness.raw(`INSERT INTO evaluation_reports VALUES (${version}, 'device-a', 1, 0, 0, NULL, NULL, ${implementation.name === 'SQLite' ? 0 : 'false'})`),
      ).rejects.toThrow(/unique|primary key|duplicate/i);
    });

    it('lists every report of a version with more reports than one read step, each once', async () => {
      const { version } = await roundVersion();
      const count = 2 * REPORTS_PER_READ + 1;
      // Both dialects: a recursive CTE in front of INSERT; (i % 2 = 0) is 0/1 in SQLite and a boolean in PostgreSQL.
      await harness.raw(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${count})
         INSERT INTO evaluation_reports SELECT ${version}, 'device-' || i, i, 0.5, 0.75, NULL, NULL, (i % 2 = 0) FROM n`,
      );
      const stored = await storage.listEvaluationReports(version);
      expect(stored).toHaveLength(count);
      expect(new Set(stored.map((r) => r.numExamples)).size).toBe(count);
      expect(stored.filter((r) => r.adopted)).toHaveLength(REPORTS_PER_READ);
    });

    it('refuses reports on versions that do not exist, and numbers out of bounds at the schema', async () => {
      await roundVersion();
      await expect(storage.insertEvaluationReport({ modelVersion: 42, clientId: 'device-a', ...numbers(0.5) })).rejects.toThrow(RecordNotFoundError);
      await expect(storage.insertEvaluationReport({ modelVersion: 2, clientId: 'device-a', ...numbers(1.5) })).rejects.toThrow(/check/i);
      await expect(storage.insertEvaluationReport({ modelVersion: 2, clientId: 'device-b', ...numbers(0.5), numExamples: 0 })).rejects.toThrow(/check/i);
      expect(await storage.listEvaluationReports(2)).toEqual([]);
    });

    it("reads a version's metadata alone", async () => {
      const meta = await roundVersion();
      expect(await storage.getModelVersionMeta(meta.version)).toEqual(meta);
      expect(await storage.getModelVersionMeta(99)).toBeNull();
    });

    it("patches a round's local evaluation alone", async () => {
      await storage.createRound(newRound('r1', { status: 'committed' }));
      const metrics = { ...newRound('r1').metrics, accepted: 3 };
      await storage.updateRound('r1', { metrics });
      const summary = summarizeReports([numbers(0.5), numbers(0.75)])!;
      const patched = await storage.updateRound('r1', { localEvaluation: summary });
      expect(patched.metrics).toEqual({ ...metrics, localEvaluation: summary });
      expect((await storage.getRound('r1'))!.metrics).toEqual({ ...metrics, localEvaluation: summary });
    });

    it('migrates a database from before: creates the table, and older summaries read in the current shape', async () => {
      const { version } = await roundVersion();
      await harness.raw('DROP TABLE evaluation_reports');
      // A summary as stored before personalNumExamples, and before the robust statistics.
      const old = { reports: 2, numExamples: 40, globalAccuracy: 0.7, globalLoss: 0.4, personalAccuracy: 0.8, personalLoss: 0.3, adopted: 1 };
      const metrics = JSON.stringify({ ...newRound('r1').metrics, localEvaluation: old });
      await harness.raw(`UPDATE rounds SET metrics = '${metrics}' WHERE id = 'r1'`);
      const upgraded = await harness.reopen();
      expect((await upgraded.getRound('r1'))!.metrics.localEvaluation).toEqual({ ...old, personalNumExamples: 40, weightCap: null, spread: null });
      expect(localEvaluationSummarySchema.safeParse((await upgraded.getRound('r1'))!.metrics.localEvaluation).success).toBe(true);
      expect(await upgraded.insertEvaluationReport({ modelVersion: version, clientId: 'device-a', ...numbers(0.5) })).toBe(true);
    });
  });

  describe('commitRound', () => {
    async function prepare(): Promise<void> {
      await storage.insertModelVersion(newVersion(), weightsFor(newVersion()));
      await storage.createRound(newRound('r1', { status: 'committing' }));
    }

    it('inserts the version, marks the round committed and appends the transition', async () => {
      await prepare();
      const metrics = { ...newRound('r1').metrics, accepted: 3, totalExamples: 900 };
      const weights = weightsFor(newVersion(), 11);
      const { model, round } = await storage.commitRound(
        'r1',
        newVersion([[3, 2], [2]], { source: 'round', parentVersion: 1, strategyState: new Uint8Array([7]) }),
        weights,
        { metrics, endedAt: '2025-01-01T00:10:00.000Z' },
        { roundId: 'r1', from: 'committing', at: '2025-01-01T00:10:00.000Z', note: 'deadline' },
      );
      expect(model).toMatchObject({ version: 2, parentVersion: 1, roundId: 'r1', source: 'round' });
      expect(round).toMatchObject({ id: 'r1', status: 'committed', committedVersion: 2, metrics, endedAt: '2025-01-01T00:10:00.000Z' });
      expect(await storage.getRound('r1')).toEqual(round);
      expect(Buffer.from((await storage.getModelWeights(2))!).equals(Buffer.from(weights))).toBe(true);
      expect((await storage.getModelVersion(2))?.strategyState).toEqual(new Uint8Array([7]));
      expect(await storage.listTransitions('r1')).toEqual([
        { roundId: 'r1', from: 'committing', to: 'committed', at: '2025-01-01T00:10:00.000Z', note: 'deadline' },
      ]);
    });

    it('leaves neither the version nor the round change when the round update fails', async () => {
      await prepare();
      await expect(
        storage.commitRound(
          'missing-round',
          newVersion([[3, 2], [2]], { source: 'round', parentVersion: 1 }),
          weightsFor(newVersion(), 2),
          {},
          {
            roundId: 'missing-round',
            from: 'committing',
            at: '2025-01-01T00:10:00.000Z',
            note: null,
          },
        ),
      ).rejects.toThrow(RecordNotFoundError);
      expect((await storage.latestModelVersion())?.version).toBe(1);
      expect(await storage.getModelWeights(2)).toBeNull();
    });

    it('leaves neither the version nor the round change when the last step (the transition) fails', async () => {
      await prepare();
      const before = await storage.getRound('r1');
      await expect(
        storage.commitRound(
          'r1',
          newVersion([[3, 2], [2]], { source: 'round', parentVersion: 1 }),
          weightsFor(newVersion(), 2),
          { error: 'x' },
          {
            roundId: 'r1',
            from: 'not-a-status' as RoundStatus, // violates the CHECK constraint after the version and round writes
            at: '2025-01-01T00:10:00.000Z',
            note: null,
          },
        ),
      ).rejects.toThrow();
      expect((await storage.latestModelVersion())?.version).toBe(1);
      expect(await storage.getRound('r1')).toEqual(before);
      expect(await storage.listTransitions('r1')).toEqual([]);
      // The next successful commit still gets version 2.
      const { model } = await storage.commitRound(
        'r1',
        newVersion([[3, 2], [2]], { source: 'round', parentVersion: 1 }),
        weightsFor(newVersion(), 2),
        {},
        {
          roundId: 'r1',
          from: 'committing',
          at: '2025-01-01T00:11:00.000Z',
          note: null,
        },
      );
      expect(model.version).toBe(2);
    });
  });
});
