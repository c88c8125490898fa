/**
 * The prediction store on SQLite and PostgreSQL (FLOCK_TEST_POSTGRES_URL, a schema of its own):
 * a batch's rows and the job's checkpoint commit together or not at all, fenced by the checkpoint.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PrecomputeJob } from '../../src/contract/index.js';
import { advanceJob } from '../../src/precompute/job-progress.js';
import { PostgresPredictions } from '../../src/storage/postgres-predictions.js';
import { CheckpointMovedError, type PredictionRow, type PredictionStore } from '../../src/storage/predictions.js';
import { SqlitePredictions } from '../../src/storage/sqlite-predictions.js';
import { queuedProgress } from '../../src/precompute/job-progress.js';
import { POSTGRES_URL } from './precompute-helpers.js';

function newJob(dataset = 'd', version = 1): PrecomputeJob {
  const fixed = { id: randomUUID(), dataset, modelVersion: version, format: 'ndjson', keyField: 'id', follow: false, sourceBytes: 1000 } as const;
  return { ...fixed, ...queuedProgress(new Date().toISOString()), status: 'running' };
}

function rows(keys: string[]): PredictionRow[] {
  return keys.map((key, i) => ({ key, topClass: i % 3, confidence: 0.5, output: new Uint8Array(Float32Array.from([0.25, 0.5, 0.25]).buffer) }));
}

const step = (bytesDone: number, stored: number) => ({
  bytesDone,
  linesDone: bytesDone / 10,
  stored,
  rejections: [],
  activeMs: 10,
  at: new Date().toISOString(),
});

const BACKENDS = ['sqlite', 'postgres'] as const;

describe.each(BACKENDS)('prediction store on %s', (backend) => {
  const dir = mkdtempSync(join(tmpdir(), 'flock-predictions-'));
  const schema = `flock_predictions_${randomBytes(4).toString('hex')}`;
  let store: PredictionStore;

  beforeAll(async () => {
    store = backend === 'sqlite' ? new SqlitePredictions(join(dir, 'flock.db')) : new PostgresPredictions(POSTGRES_URL, schema);
    await store.init();
  });
  afterAll(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
    if (backend === 'postgres') {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    }
  });

  it('commits a batch with its checkpoint, and reads rows back by key and version', async () => {
    const job = newJob();
    await store.createJob(job, '/tmp/in.ndjson');
    const after = await store.commitBatch(job, 0, rows(['a', 'b']), (conflicts) => {
      expect(conflicts).toEqual([]);
      return advanceJob(job, step(100, 2));
    });
    expect(after).toMatchObject({ bytesDone: 100, rowsStored: 2 });
    expect((await store.getJob(job.id))?.job).toEqual(after);
    expect((await store.getJob(job.id))?.sourcePath).toBe('/tmp/in.ndjson');
    const a = await store.getPrediction('d', 'a', null);
    expect(a).toMatchObject({ dataset: 'd', key: 'a', modelVersion: 1, topClass: 0, confidence: 0.5, output: [0.25, 0.5, 0.25], jobId: job.id });
    expect(await store.getPrediction('d', 'a', 2)).toBeNull();
    expect(await store.getPrediction('d', 'zz', null)).toBeNull();
  });

  it("rolls back the rows when the checkpoint moved, and tells its own repeated keys from other jobs' ones", async () => {
    const job = newJob('fence');
    await store.createJob(job, '/tmp/fence.ndjson');
    const first = await store.commitBatch(job, 0, rows(['x', 'y']), () => advanceJob(job, step(100, 2)));
    // A stale runner (it started from 0) is refused, and none of its rows stay.
    await expect(store.commitBatch(job, 0, rows(['z']), () => advanceJob(job, step(200, 1)))).rejects.toBeInstanceOf(CheckpointMovedError);
    expect(await store.getPrediction('fence', 'z', null)).toBeNull();
    expect((await store.getJob(job.id))?.job.bytesDone).toBe(100);
    expect(await store.updateJob({ ...first, status: 'failed' }, 0)).toBe(false);

    let seen: unknown;
    await store.commitBatch(first, 100, rows(['x', 'w']), (conflicts) => {
      seen = conflicts;
      return advanceJob(first, step(200, 1));
    });
    expect(seen).toEqual([{ key: 'x', ownJob: true }]);
    const other = newJob('fence');
    await store.createJob(other, '/tmp/fence2.ndjson');
    await store.commitBatch(other, 0, rows(['w', 'v']), (conflicts) => {
      seen = conflicts;
      return advanceJob(other, step(100, 1));
    });
    expect(seen).toEqual([{ key: 'w', ownJob: false }]);
    expect((await store.listJobs({ dataset: 'fence', limit: 10 })).map((j) => j.id)).toEqual([other.id, job.id]);
    expect((await store.unfinishedJobs()).map((s) => s.job.id)).toContain(other.id);
  });

  it('keeps one row per version, the newest answered by default', async () => {
    const v1 = newJob('versions', 1);
    const v3 = newJob('versions', 3);
    for (const job of [v1, v3]) {
      await store.createJob(job, '/tmp/v.ndjson');
      await store.commitBatch(job, 0, rows(['k']), () => advanceJob(job, step(10, 1)));
    }
    expect((await store.getPrediction('versions', 'k', null))?.modelVersion).toBe(3);
    expect((await store.getPrediction('versions', 'k', 1))?.modelVersion).toBe(1);
  });
});
