/** `flock precompute`, `flock precompute jobs` and `flock predictions get` against a real coordinator (the tiny model). */
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PrecomputeJob, Prediction } from '../../src/contract/index.js';
import { emptyDir, runFlock } from '../cli/harness.js';
import { OPERATOR_TOKEN, type TestCoordinator } from '../support/coordinator.js';
import { startServingCoordinator, tinyRows } from '../serving/serving-helpers.js';
import { ndjsonLines } from './precompute-helpers.js';

const CLI = resolve(import.meta.dirname, '../../dist/cli/main.js');
let coordinator: TestCoordinator;
let env: NodeJS.ProcessEnv;
const dir = emptyDir('flock-precompute-cli-');

beforeAll(async () => {
  coordinator = await startServingCoordinator({}, { precompute: { maxUploadBytes: 1024 * 1024, maxLineBytes: 4096, batchRows: 16 } });
  env = { FLOCK_URL: coordinator.url, FLOCK_OPERATOR_TOKEN: OPERATOR_TOKEN };
});
afterAll(async () => {
  await coordinator?.dispose();
});

describe('flock precompute', () => {
  it('uploads an NDJSON file, follows the job to the end, and reads predictions back', async () => {
    const path = join(dir, 'rows.ndjson');
    writeFileSync(path, [...ndjsonLines(100), '{"id": "bad", "input": [1]}'].join('\n'));
    const run = await runFlock(['precompute', '--dataset', 'cli-set', '--input', path], { env });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/^Uploaded \d+ bytes; job [0-9a-f-]{36} on model v1\./);
    expect(run.stdout).toMatch(/: completed\n/);
    expect(run.stdout).toContain('101 lines: 100 stored, 1 rejected');
    expect(run.stdout).toContain('rejected: wrong_length 1');
    expect(run.stdout).toMatch(/line 101: wrong_length/);
    expect(run.stdout).toMatch(/[\d,.]+ rows\/s over/);

    const got = await runFlock(['predictions', 'get', 'cli-set', 'k42', '--json'], { env });
    expect(got.code, got.stderr).toBe(0);
    const prediction = JSON.parse(got.stdout) as Prediction;
    expect(prediction).toMatchObject({ dataset: 'cli-set', key: 'k42', modelVersion: 1 });
    expect(prediction.output).toHaveLength(10);
    const human = await runFlock(['predictions', 'get', 'cli-set', 'k42', '--version', '1'], { env });
    expect(human.stdout).toMatch(/^cli-set\/k42 at model v1: class \d \(0\.\d{4}\)/);
    const missing = await runFlock(['predictions', 'get', 'cli-set', 'nope'], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no prediction for key "nope" in dataset "cli-set" \(HTTP 404/);

    const jobs = await runFlock(['precompute', 'jobs', '--json'], { env });
    const list = JSON.parse(jobs.stdout) as PrecomputeJob[];
    expect(list.map((j) => [j.dataset, j.status, j.rowsStored])).toEqual([['cli-set', 'completed', 100]]);
    const one = await runFlock(['precompute', 'jobs', list[0]!.id], { env });
    expect(one.stdout).toContain(`Job ${list[0]!.id}: completed`);
    expect((await runFlock(['precompute', 'jobs'], { env })).stdout).toMatch(/cli-set\s+.*v1\s+.*completed/);
  });

  it('takes CSV by its extension with --key-field, returns at once with --no-wait, and exits 1 for a failed job', async () => {
    const path = join(dir, 'rows.csv');
    const rows = tinyRows(20, 4);
    writeFileSync(path, [`name,${Array.from({ length: 16 }, (_, i) => `x${i}`).join(',')}`, ...rows.map((r, i) => `n${i},${r.join(',')}`)].join('\n'));
    const queued = await runFlock(['precompute', '--dataset', 'cli-csv', '--input', path, '--key-field', 'name', '--no-wait', '--json'], { env });
    expect(queued.code, queued.stderr).toBe(0);
    expect(JSON.parse(queued.stdout)).toMatchObject({ status: 'queued', format: 'csv', keyField: 'name' });

    const failed = await runFlock(['precompute', '--dataset', 'cli-csv2', '--input', path], { env });
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('error: the CSV header has no column "id" (the key field)');
  });

  it('refuses bad invocations with exit 2 before sending anything', async () => {
    expect((await runFlock(['precompute', '--dataset', 'x'], { env })).code).toBe(2);
    const missing = await runFlock(['precompute', '--dataset', 'x', '--input', join(dir, 'nope.ndjson')], { env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read .*nope\.ndjson \(ENOENT\)/);
    expect((await runFlock(['precompute', '--dataset', 'x', '--input', 'f', '--format', 'xml'], { env })).code).toBe(2);
  });

  it('runs as the built `pnpm flock` binary', async () => {
    expect(existsSync(CLI), 'build the server first (pnpm build)').toBe(true);
    const path = join(dir, 'bin.ndjson');
    writeFileSync(path, ndjsonLines(30, 8, 'b').join('\n'));
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'precompute', '--dataset', 'bin-set', '--input', path, '--json'], {
      env: { ...env, PATH: process.env.PATH },
    });
    expect(JSON.parse(stdout)).toMatchObject({ status: 'completed', rowsStored: 30 });
  });
});
