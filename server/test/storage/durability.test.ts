/**
 * A write that has resolved survives kill -9: a child process inserts versions with SqliteStorage
 * and is SIGKILLed the moment it reports a write; the reopened file must hold every reported version
 * intact.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { TWO_NN_SHAPES, newVersion, weightsFor } from './fixtures.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'flock-durability-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the child, kills it with SIGKILL right after its `killAfter`-th reported write; resolves with the versions it reported. */
function writeAndKill(path: string, versions: number, killAfter: number): Promise<{ version: number; seed: number }[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', join(here, 'register-ts.mjs'), join(here, 'durability-child.ts'), path, String(versions)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const reported: { version: number; seed: number }[] = [];
    let stderr = '';
    let buffered = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        const match = /^written (\d+) (\d+)$/.exec(line);
        // Lines past the kill point can arrive in the same chunk (the child outran the kill): not counted.
        if (match && reported.length < killAfter) reported.push({ version: Number(match[1]), seed: Number(match[2]) });
        if (reported.length === killAfter) child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child exited with code ${code} before being killed: ${stderr}`));
      else resolve(reported);
    });
  });
}

describe('SQLite durability', () => {
  it('keeps a version whose insert resolved right before kill -9', async () => {
    const path = join(dir, 'flock.db');
    const reported = await writeAndKill(path, 4, 1);
    expect(reported).toEqual([{ version: 1, seed: 1 }]);

    // The writer died without closing: the WAL has not been checkpointed into the main file.
    const storage = new SqliteStorage(path);
    await storage.init();
    let latestVersionAfterFirstRun: number;
    try {
      const latest = await storage.latestModelVersion();
      expect(latest!.version).toBeGreaterThanOrEqual(1);
      latestVersionAfterFirstRun = latest!.version;
      for (const { version, seed } of reported) {
        const expected = weightsFor(newVersion(TWO_NN_SHAPES), seed);
        const stored = await storage.getModelWeights(version);
        expect(stored?.byteLength).toBe(199_210 * 4);
        expect(Buffer.from(stored!).equals(Buffer.from(expected))).toBe(true);
        expect((await storage.getModelVersion(version))?.numParameters).toBe(199_210);
      }
    } finally {
      await storage.close();
    }

    // A second run against the same file, killed after two more writes, continues the numbering.
    const second = await writeAndKill(path, 3, 2);
    expect(second).toHaveLength(2);
    expect(second[0]!.version).toBeGreaterThan(latestVersionAfterFirstRun);
    const reopened = new SqliteStorage(path);
    await reopened.init();
    try {
      for (const { version, seed } of second) {
        const stored = await reopened.getModelWeights(version);
        expect(Buffer.from(stored!).equals(Buffer.from(weightsFor(newVersion(TWO_NN_SHAPES), seed)))).toBe(true);
      }
    } finally {
      await reopened.close();
    }
  }, 60_000);

  it('puts the database in WAL mode', async () => {
    const path = join(dir, 'pragmas.db');
    const storage = new SqliteStorage(path);
    await storage.init();
    await storage.close();
    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      db.close();
    }
  });
});
