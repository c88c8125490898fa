/**
 * Across kill -9: a precompute job whose coordinator process is killed midway (twice) resumes from
 * its checkpoint when the coordinator starts again, and ends with every valid row of its input
 * stored exactly once and every bad line counted once. Runs the built coordinator (`pnpm build`
 * first) as a child process, on SQLite and on PostgreSQL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { PrecomputeJob } from '../../src/contract/index.js';
import { coordinatorStarted } from '../support/coordinator-child.js';
import { CLIENT_TOKEN, OPERATOR_TOKEN, waitFor } from '../support/coordinator.js';
import { writeTinyModel } from '../support/tiny-model.js';
import { INFERENCE_KEY } from '../serving/serving-helpers.js';
import { jobFinished, ndjsonLines, POSTGRES_URL, upload } from './precompute-helpers.js';

const MAIN = resolve(import.meta.dirname, '../../dist/main.js');
const ROWS = 12_000;
const BACKENDS = ['sqlite', 'postgres'] as const;

/** The input: ROWS valid rows, with a bad line every 1,000 rows and a repeated key every 1,500 (some repeats far from the first). */
function input(): { text: string; valid: number; wrongLength: number; duplicates: number } {
  const lines = ndjsonLines(ROWS, 3);
  const out: string[] = [];
  let wrongLength = 0;
  let duplicates = 0;
  lines.forEach((line, i) => {
    out.push(line);
    if (i % 1000 === 500) {
      out.push(`{"id": "bad${i}", "input": [1, 2]}`);
      wrongLength++;
    }
    if (i % 1500 === 1499) {
      out.push(lines[i - 1200]!);
      duplicates++;
    }
  });
  return { text: `${out.join('\n')}\n`, valid: ROWS, wrongLength, duplicates };
}

describe.each(BACKENDS)('a precompute killed with SIGKILL midway and resumed, on %s', (backend) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'flock-precompute-kill-'));
  const schema = `flock_precompute_kill_${randomBytes(4).toString('hex')}`;
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    if (backend === 'postgres') {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    }
  });

  async function startChild(name: string): Promise<{ child: ChildProcess; url: string }> {
    const child = spawn(process.execPath, [MAIN], {
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        FLOCK_DATA_DIR: dataDir,
        FLOCK_DATABASE_URL: backend === 'postgres' ? `${POSTGRES_URL}?schema=${schema}` : '',
        FLOCK_CLIENT_TOKEN: CLIENT_TOKEN,
        FLOCK_OPERATOR_TOKEN: OPERATOR_TOKEN,
        FLOCK_INFERENCE_KEYS: INFERENCE_KEY,
        FLOCK_INITIAL_MODEL: writeTinyModel(join(dataDir, 'model')),
        FLOCK_TEST_SET: 'none',
        FLOCK_PRECOMPUTE_BATCH_ROWS: '40',
        LOG_LEVEL: 'error',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const { url } = await coordinatorStarted(child, name);
    return { child, url };
  }

  async function job(url: string, id: string): Promise<PrecomputeJob> {
    const response = await fetch(`${url}/api/precompute/jobs/${id}`, { headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` } });
    return (await response.json()) as PrecomputeJob;
  }

  /** Kills the child once the job has committed past `fraction` of its input (and before its end). */
  async function killMidway(child: ChildProcess, url: string, id: string, fraction: number): Promise<void> {
    await waitFor(
      () => job(url, id),
      (j) => j.status === 'running' && j.bytesDone > fraction * j.sourceBytes,
      60_000,
      `job ${id} past ${fraction}`,
    );
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** The stored rows of the dataset: how many, and how many distinct keys. */
  async function storedRows(): Promise<{ rows: number; keys: number; maxPerKey: number }> {
    const sql = 'SELECT COUNT(*) AS rows, COUNT(DISTINCT key) AS keys FROM predictions WHERE dataset = $1';
    const perKey = 'SELECT COALESCE(MAX(n), 0) AS max FROM (SELECT COUNT(*) AS n FROM predictions WHERE dataset = $1 GROUP BY key) counts';
    if (backend === 'sqlite') {
      const db = new Database(join(dataDir, 'flock.db'), { readonly: true });
      try {
        const counts = db.prepare(sql.replace('$1', '?')).get('killed') as { rows: number; keys: number };
        const max = db.prepare(perKey.replace('$1', '?')).get('killed') as { max: number };
        return { ...counts, maxPerKey: max.max };
      } finally {
        db.close();
      }
    }
    const client = new pg.Client({ connectionString: POSTGRES_URL, options: `-c search_path=${schema}` });
    await client.connect();
    try {
      const counts = (await client.query<{ rows: string; keys: string }>(sql, ['killed'])).rows[0]!;
      const max = (await client.query<{ max: string }>(perKey, ['killed'])).rows[0]!;
      return { rows: Number(counts.rows), keys: Number(counts.keys), maxPerKey: Number(max.max) };
    } finally {
      await client.end();
    }
  }

  it('stores every row exactly once and counts every bad line once', async () => {
    expect(existsSync(MAIN), 'build the server first (pnpm build)').toBe(true);
    const { text, valid, wrongLength, duplicates } = input();
    const path = join(dataDir, 'input.ndjson');
    writeFileSync(path, text);

    const first = await startChild('first');
    const started = await upload(first.url, 'killed', text);
    expect(started.status).toBe(202);
    const id = started.body.id;
    await killMidway(first.child, first.url, id, 0.2);
    const afterFirstKill = await storedRows();
    expect(afterFirstKill.rows).toBeGreaterThan(0);
    expect(afterFirstKill.rows).toBeLessThan(valid);

    // Restarted: the job resumes by itself at start-up; killed again further on.
    const second = await startChild('second');
    await killMidway(second.child, second.url, id, 0.6);
    expect((await storedRows()).rows).toBeLessThan(valid);

    const third = await startChild('third');
    const done = await jobFinished(third.url, id, 90_000);
    expect(done).toMatchObject({ status: 'completed', rowsStored: valid, rowsRejected: wrongLength + duplicates, bytesDone: Buffer.byteLength(text) });
    expect(done.rejected).toEqual({ wrong_length: wrongLength, duplicate_key: duplicates });
    expect(done.linesDone).toBe(valid + wrongLength + duplicates);
    expect(await storedRows()).toEqual({ rows: valid, keys: valid, maxPerKey: 1 });
    // Every key is there, and it reads back.
    for (const key of ['k0', `k${valid - 1}`, `k${Math.floor(valid / 2)}`]) {
      const response = await fetch(`${third.url}/api/predictions/killed/${key}`, { headers: { Authorization: `Bearer ${INFERENCE_KEY}` } });
      expect(response.status).toBe(200);
    }
  }, 240_000);
});
