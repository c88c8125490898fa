/**
 * Cost of devices' local-evaluation reports on the coordinator: storing one report (the per-event
 * work: one indexed insert, durable when it returns) and recomputing a version's robust summary from
 * its stored reports (read the numbers, sort four columns, quartiles and capped-weight means), for
 * 1,000 to 100,000 reports on one version, on SQLite (the embedded default) and PostgreSQL.
 *
 *   pnpm bench:evaluations            # ~1 min on 2 cores (PostgreSQL at FLOCK_BENCH_POSTGRES_URL, default the test database)
 *   pnpm bench:evaluations --quick    # 1,000 and 10,000 reports
 *
 * The summary is recomputed at most every max(500 ms, 10 x its own duration) per version while
 * reports arrive (server/src/rounds/summary-refresher.ts), so the table's last column is the share
 * of the time refreshing can take at most. The longest event-loop block is the longest gap between
 * two runs of a 1 ms timer during a refresh (SQLite reads in steps of 2,000 reports and yields
 * between them; the summary itself is one synchronous step). Prints Markdown to stdout.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mulberry32 } from '../server/src/datasets/seeded-random.js';
import { summarizeReports } from '../server/src/rounds/evaluation-summary.js';
import { PostgresStorage } from '../server/src/storage/postgres-storage.js';
import { SqliteStorage } from '../server/src/storage/sqlite-storage.js';
import type { Storage } from '../server/src/storage/storage.js';
import { machineInfo, median } from './lib/measure.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const SIZES = args.quick ? [1_000, 10_000] : [1_000, 10_000, 100_000];
const POSTGRES_URL = process.env.FLOCK_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REPETITIONS = 5;
const SINGLE_INSERTS = 200;

// The drivers are the server's dependencies (the root package has none): resolve them from there,
// typed by the little used here.
interface SqliteDatabase {
  prepare(sql: string): { run(...params: unknown[]): unknown };
  transaction(fn: () => void): () => void;
  close(): void;
}
interface PgClient {
  connect(): Promise<void>;
  query(sql: string, params?: unknown[]): Promise<unknown>;
  end(): Promise<void>;
}
const serverRequire = createRequire(new URL('../server/package.json', import.meta.url));
const Database = serverRequire('better-sqlite3') as new (path: string) => SqliteDatabase;
const pg = serverRequire('pg') as { Client: new (config: { connectionString: string; options: string }) => PgClient };

interface Backend {
  name: string;
  storage: Storage;
  /** Inserts `count` reports on `version` in bulk (setup, not measured). */
  fill(version: number, count: number, seed: number): Promise<void>;
  dispose(): Promise<void>;
}

/** Report numbers as devices would send them: accuracies around 0.9, losses around 0.3, 20 to 500 examples. */
function reportRow(random: () => number, i: number): [string, number, number, number, number | null, number | null, number] {
  const accuracy = Math.min(1, Math.max(0, 0.9 + (random() - 0.5) * 0.2));
  const personal = random() < 0.7;
  return [
    `device-${i}`,
    20 + Math.floor(random() * 480),
    0.3 + random() * 0.2,
    accuracy,
    personal ? 0.28 + random() * 0.2 : null,
    personal ? Math.min(1, accuracy + (random() - 0.4) * 0.05) : null,
    random() < 0.8 ? 1 : 0,
  ];
}

async function sqliteBackend(dir: string): Promise<Backend> {
  const path = join(dir, 'flock.db');
  const storage = new SqliteStorage(path);
  await storage.init();
  return {
    name: 'SQLite',
    storage,
    async fill(version, count, seed) {
      const db = new Database(path);
      const insert = db.prepare('INSERT INTO evaluation_reports VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
      const random = mulberry32(seed);
      db.transaction(() => {
        for (let i = 0; i < count; i++) insert.run(version, ...reportRow(random, i));
      })();
      db.close();
    },
    dispose: () => storage.close(),
  };
}

async function postgresBackend(): Promise<Backend | null> {
  const schema = `flock_bench_${process.pid}`;
  const storage = new PostgresStorage(POSTGRES_URL, { schema, maxConnections: 2 });
  try {
    await storage.init();
  } catch (error) {
    console.error(`PostgreSQL skipped: ${(error as Error).message}`);
    await storage.close();
    return null;
  }
  const client = new pg.Client({ connectionString: POSTGRES_URL, options: `-c search_path=${schema}` });
  await client.connect();
  return {
    name: 'PostgreSQL',
    storage,
    async fill(version, count, seed) {
      const random = mulberry32(seed);
      const rows = Array.from({ length: count }, (_, i) => reportRow(random, i));
      const column = (k: number) => rows.map((row) => row[k]);
      await client.query(
        `INSERT INTO evaluation_reports SELECT $1, * FROM unnest($2::text[], $3::int[], $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::int[]::boolean[])`,
        [version, column(0), column(1), column(2), column(3), column(4), column(5), column(6)],
      );
    },
    async dispose() {
      await storage.close();
      await client.query(`DROP SCHEMA ${schema} CASCADE`);
      await client.end();
    },
  };
}

/** A fresh version to hang reports on (one per measurement, so sizes do not mix). */
async function newVersion(storage: Storage): Promise<number> {
  const spec = { name: 'w', shape: [2], dtype: 'float32' as const };
  const meta = await storage.insertModelVersion(
    {
      parentVersion: null,
      roundId: null,
      source: 'initial',
      numParameters: 2,
      metrics: {},
      topology: {},
      weightSpecs: [spec],
      strategyState: null,
      privacy: null,
    },
    new Uint8Array(8),
  );
  return meta.version;
}

async function insertLatencyMs(backend: Backend): Promise<number> {
  const version = await newVersion(backend.storage);
  const random = mulberry32(7);
  const times: number[] = [];
  for (let i = 0; i < SINGLE_INSERTS; i++) {
    const [clientId, numExamples, globalLoss, globalAccuracy, personalLoss, personalAccuracy, adopted] = reportRow(random, i);
    const t0 = performance.now();
    await backend.storage.insertEvaluationReport({
      modelVersion: version,
      clientId,
      numExamples,
      globalLoss,
      globalAccuracy,
      personalLoss,
      personalAccuracy,
      adopted: adopted === 1,
    });
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** Runs `work`, measuring the longest time the event loop could not run a 1 ms timer meanwhile. */
async function withLongestBlock<T>(work: () => Promise<T>): Promise<{ result: T; longestBlockMs: number }> {
  let last = performance.now();
  let longest = 0;
  const tick = () => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  };
  const timer = setInterval(tick, 1);
  try {
    const result = await work();
    tick();
    return { result, longestBlockMs: longest };
  } finally {
    clearInterval(timer);
  }
}

async function refresh(backend: Backend, count: number): Promise<{ readMs: number; summarizeMs: number; longestBlockMs: number }> {
  const version = await newVersion(backend.storage);
  await backend.fill(version, count, count);
  const read: number[] = [];
  const summarize: number[] = [];
  const blocks: number[] = [];
  for (let r = 0; r < REPETITIONS; r++) {
    let t1 = 0;
    const t0 = performance.now();
    const { result: summary, longestBlockMs } = await withLongestBlock(async () => {
      const reports = await backend.storage.listEvaluationReports(version);
      t1 = performance.now();
      return summarizeReports(reports);
    });
    const t2 = performance.now();
    if (summary?.reports !== count) throw new Error(`expected ${count} reports, summarized ${summary?.reports}`);
    read.push(t1 - t0);
    summarize.push(t2 - t1);
    blocks.push(longestBlockMs);
  }
  return { readMs: median(read), summarizeMs: median(summarize), longestBlockMs: median(blocks) };
}

const dir = mkdtempSync(join(tmpdir(), 'flock-bench-evaluations-'));
try {
  const backends = [await sqliteBackend(dir), await postgresBackend()].filter((b): b is Backend => b !== null);
  const lines = [
    '# Local-evaluation reports: storing one, recomputing a summary',
    '',
    `${machineInfo().cpuModel}, ${machineInfo().cpus} cores, load ${loadavg()[0]!.toFixed(1)} at start; medians of ${REPETITIONS} runs (${SINGLE_INSERTS} for single inserts). \`pnpm bench:evaluations\`.`,
    '',
    '| storage | reports on the version | store one report (ms) | read numbers (ms) | summarize (ms) | refresh total (ms) | longest event-loop block (ms) | refresh interval (ms) | share of the time, at most |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const backend of backends) {
    const insert = await insertLatencyMs(backend);
    for (const count of SIZES) {
      console.error(`${backend.name}: ${count} reports`);
      const { readMs, summarizeMs, longestBlockMs } = await refresh(backend, count);
      const total = readMs + summarizeMs;
      const interval = Math.max(500, 10 * total);
      lines.push(
        `| ${backend.name} | ${count.toLocaleString('en')} | ${insert.toFixed(2)} | ${readMs.toFixed(1)} | ${summarizeMs.toFixed(1)} | ${total.toFixed(1)} | ${longestBlockMs.toFixed(1)} | ${interval.toFixed(0)} | ${((100 * total) / (interval + total)).toFixed(1)}% |`,
      );
    }
    await backend.dispose();
  }
  console.log(lines.join('\n'));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
