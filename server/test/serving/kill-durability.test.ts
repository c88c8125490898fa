/**
 * Across a kill -9: with FLOCK_INFERENCE_LOG_DURABLE each answer waits for the commit of its log
 * record, so every request a client got an answer for is in the log after the coordinator process
 * is killed mid-load (no answered request without its record). Runs the built coordinator
 * (`pnpm build` first) as a child process.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inferenceLogQuerySchema, type V2InferResponse } from '../../src/contract/index.js';
import { SqliteInferenceLog } from '../../src/storage/sqlite-inference-log.js';
import { coordinatorStarted } from '../support/coordinator-child.js';
import { CLIENT_TOKEN, OPERATOR_TOKEN } from '../support/coordinator.js';
import { writeTinyModel } from '../support/tiny-model.js';
import { INFERENCE_KEY, servingReady, tinyRows, v2 } from './serving-helpers.js';

const MAIN = resolve(import.meta.dirname, '../../dist/main.js');
const dataDir = mkdtempSync(join(tmpdir(), 'flock-serving-kill-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('durable inference log', () => {
  it('keeps the record of every answered request across a kill -9', async () => {
    expect(existsSync(MAIN), 'build the server first (pnpm build)').toBe(true);
    const child = spawn(process.execPath, [MAIN], {
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        FLOCK_DATA_DIR: dataDir,
        FLOCK_CLIENT_TOKEN: CLIENT_TOKEN,
        FLOCK_OPERATOR_TOKEN: OPERATOR_TOKEN,
        FLOCK_INFERENCE_KEYS: INFERENCE_KEY,
        FLOCK_INITIAL_MODEL: writeTinyModel(join(dataDir, 'model')),
        FLOCK_TEST_SET: 'none',
        FLOCK_INFERENCE_LOG_DURABLE: 'true',
        FLOCK_INFERENCE_LOG_FLUSH_MS: '5',
        LOG_LEVEL: 'error',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const { url } = await coordinatorStarted(child, 'durable log');
    await servingReady(url);
    const answered: string[] = [];
    let killed = false;
    const clients = Array.from({ length: 16 }, async (_, c) => {
      for (let i = 0; !killed; i++) {
        try {
          const { status, body } = await v2<V2InferResponse>(url, '/v2/models/global/infer', {
            inputs: [{ name: 'input', shape: [1, 16], datatype: 'FP32', data: tinyRows(1, c * 10_000 + i + 1)[0] }],
          });
          if (status === 200) answered.push(body.parameters!.request_id as string);
        } catch {
          // the coordinator is gone
        }
      }
    });
    // Killed mid-load, some 200 answers in (bounded in time on a slow machine).
    const deadline = Date.now() + 30_000;
    while (answered.length < 200 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    killed = true;
    await Promise.all(clients);
    await exited;

    const log = new SqliteInferenceLog(join(dataDir, 'flock.db'));
    await log.init();
    try {
      const logged = new Set<string>();
      let before: number | undefined;
      for (;;) {
        const page = await log.query(inferenceLogQuerySchema.parse({ limit: 1000, before }));
        for (const record of page.records) logged.add(record.requestId);
        if (page.nextBefore === null) break;
        before = page.nextBefore;
      }
      expect(answered.length).toBeGreaterThanOrEqual(100);
      expect(answered.filter((id) => !logged.has(id))).toEqual([]);
    } finally {
      await log.close();
    }
  }, 90_000);
});
