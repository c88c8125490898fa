/**
 * Precompute through the REST API of a real coordinator (the tiny 16 -> 10 model, real inference
 * workers), on SQLite and on PostgreSQL (FLOCK_TEST_POSTGRES_URL, default
 * postgres://postgres@127.0.0.1:5432/test, a schema of its own, dropped afterwards).
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PrecomputeJob, Prediction, V2InferResponse } from '../../src/contract/index.js';
import { FlockEventBus } from '../../src/events/event-bus.js';
import { matchPredictionLookup } from '../../src/precompute/prediction-fast-path.js';
import { OPERATOR_TOKEN, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { INFERENCE_KEY, registerTinyModel, startServingCoordinator, tinyRows, v2 } from '../serving/serving-helpers.js';
import { jobFinished, ndjsonLines, POSTGRES_URL, upload } from './precompute-helpers.js';

const BACKENDS = ['sqlite', 'postgres'] as const;

describe('prediction lookup fast path routing (pure)', () => {
  it('takes only the canonical GET lookup, with at most a version', () => {
    expect(matchPredictionLookup('GET', '/api/predictions/digits/k-1.a_b~c')).toEqual({ dataset: 'digits', key: 'k-1.a_b~c', version: null });
    expect(matchPredictionLookup('GET', '/api/predictions/digits/k1?version=12')).toEqual({ dataset: 'digits', key: 'k1', version: 12 });
    for (const [method, url] of [
      ['POST', '/api/predictions/digits/k1'],
      ['GET', '/api/predictions/digits/k1/'],
      ['GET', '/api/predictions/digits/k%201'],
      ['GET', '/API/predictions/digits/k1'],
      ['GET', '/api/predictions/-digits/k1'],
      ['GET', '/api/predictions/digits/k1?version=0'],
      ['GET', '/api/predictions/digits/k1?version=1234567890123456'],
      ['GET', '/api/predictions/digits/k1?version=1&x=2'],
      ['GET', '/api/predictions/digits/k1/extra'],
    ] as const) {
      expect(matchPredictionLookup(method, url), `${method} ${url}`).toBeNull();
    }
  });
});

describe.each(BACKENDS)('precompute REST API on %s', (backend) => {
  const schema = `flock_precompute_${randomBytes(4).toString('hex')}`;
  let coordinator: TestCoordinator;

  beforeAll(async () => {
    coordinator = await startServingCoordinator(
      {},
      {
        ...(backend === 'postgres' ? { databaseUrl: `${POSTGRES_URL}?schema=${schema}` } : {}),
        precompute: { maxUploadBytes: 256 * 1024, maxLineBytes: 4096, batchRows: 32 },
      },
    );
  });

  afterAll(async () => {
    await coordinator?.dispose();
    if (backend === 'postgres') {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    }
  });

  const prediction = (dataset: string, key: string, query = '', token: string | null = INFERENCE_KEY) =>
    v2<Prediction & { message?: string }>(coordinator.url, `/api/predictions/${dataset}/${encodeURIComponent(key)}${query}`, undefined, token);

  it('stores every valid row once, keyed, and counts each bad line with its reason', async () => {
    const lines = ndjsonLines(200);
    const input = [
      ...lines.slice(0, 50),
      '{"id": "short", "input": [1, 2, 3]}',
      '{"id": "inf", "input": [' + Array.from({ length: 16 }, (_, i) => (i === 3 ? '1e999' : '0.5')).join(',') + ']}',
      '{"input": [' + Array(16).fill(0).join(',') + ']}',
      'not json',
      '',
      `{"id": "long", "input": [${Array(2000).fill('0.123').join(',')}]}`,
      ...lines.slice(50, 150),
      lines[7]!, // a duplicate key, in a later batch
      ...lines.slice(150),
    ].join('\n');
    const started = await upload(coordinator.url, 'digits', `${input}\n`);
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ dataset: 'digits', modelVersion: 1, status: 'queued', keyField: 'id', format: 'ndjson' });
    const job = await jobFinished(coordinator.url, started.body.id);
    expect(job).toMatchObject({ status: 'completed', rowsStored: 200, rowsRejected: 6, error: null, bytesDone: job.sourceBytes });
    expect(job.rejected).toEqual({ wrong_length: 1, non_finite: 1, missing_key: 1, malformed: 1, line_too_long: 1, duplicate_key: 1 });
    expect(job.rejectionSamples.map((r) => [r.line, r.reason])).toEqual([
      [51, 'wrong_length'],
      [52, 'non_finite'],
      [53, 'missing_key'],
      [54, 'malformed'],
      [56, 'line_too_long'],
      [157, 'duplicate_key'],
    ]);
    expect(job.rowsPerSecond).toBeGreaterThan(0);

    // Each stored prediction is what the served model answers for the same input.
    const rows = tinyRows(200);
    for (const i of [0, 7, 99, 199]) {
      const { status, body } = await prediction('digits', `k${i}`);
      expect(status).toBe(200);
      const served = await v2<V2InferResponse>(coordinator.url, '/v2/models/global/infer', {
        inputs: [{ name: 'input', shape: [1, 16], datatype: 'FP32', data: rows[i] }],
      });
      const output = served.body.outputs[0]!.data as number[];
      expect(body).toMatchObject({ dataset: 'digits', key: `k${i}`, modelVersion: 1, jobId: job.id, topClass: output.indexOf(Math.max(...output)) });
      body.output.forEach((value, c) => expect(value).toBeCloseTo(output[c]!, 6));
      expect(body.confidence).toBeCloseTo(Math.max(...output), 6);
    }
    expect((await prediction('digits', 'short')).status).toBe(404);
    expect((await prediction('digits', 'k1', '', OPERATOR_TOKEN)).status).toBe(200);
    expect((await prediction('digits', 'k1', '', null)).status).toBe(401);
    expect((await prediction('digits', 'k1', '', 'not-a-valid-key-at-all')).status).toBe(401);
    expect((await prediction('bad name!', 'k1')).status).toBe(400);

    // The canonical lookup is answered in front of express (no ETag); with a trailing slash it goes
    // through express (ETag). The same answer, helmet's headers included.
    const lookup = (path: string) => fetch(`${coordinator.url}${path}`, { headers: { Authorization: `Bearer ${INFERENCE_KEY}` } });
    const [fast, routed] = [await lookup('/api/predictions/digits/k1'), await lookup('/api/predictions/digits/k1/')];
    expect([fast.status, routed.status]).toEqual([200, 200]);
    expect([fast.headers.get('etag'), typeof routed.headers.get('etag')]).toEqual([null, 'string']);
    for (const header of ['content-type', 'x-content-type-options', 'content-security-policy', 'x-frame-options']) {
      expect(fast.headers.get(header), header).toBe(routed.headers.get(header));
    }
    expect(await fast.json()).toEqual(await routed.json());

    const list = await coordinator.api<PrecomputeJob[]>('/api/precompute/jobs?dataset=digits');
    expect(list.body.map((j) => j.id)).toEqual([job.id]);
    expect((await coordinator.api(`/api/precompute/jobs/${job.id}/resume`, { method: 'POST' })).status).toBe(409);
  });

  it('reads CSV with a named key column, and keeps a version per key: the newest by default, or the one asked for', async () => {
    const rows = tinyRows(40, 5);
    const csv = [`${Array.from({ length: 16 }, (_, i) => `p${i}`).join(',')},uid`, ...rows.map((row, i) => `${row.join(',')},u${i}`), '1,2,3,u99'].join('\r\n');
    const first = await upload(coordinator.url, 'csv-set', csv, '?keyField=uid', 'text/csv');
    expect(first.status).toBe(202);
    const job1 = await jobFinished(coordinator.url, first.body.id);
    expect(job1).toMatchObject({ status: 'completed', format: 'csv', rowsStored: 40, rejected: { wrong_length: 1 } });

    const v2Version = await registerTinyModel(coordinator, 9);
    // The same input again for version 2, followed: a later commit re-runs it.
    const second = await upload(coordinator.url, 'csv-set', csv, `?keyField=uid&format=csv&version=${v2Version}&follow=true`, 'application/octet-stream');
    const job2 = await jobFinished(coordinator.url, second.body.id);
    expect(job2).toMatchObject({ status: 'completed', modelVersion: v2Version, rowsStored: 40, follow: true });

    expect((await prediction('csv-set', 'u3')).body.modelVersion).toBe(v2Version);
    expect((await prediction('csv-set', 'u3', '?version=1')).body.modelVersion).toBe(1);
    expect((await prediction('csv-set', 'u3', '?version=1')).body.output).not.toEqual((await prediction('csv-set', 'u3')).body.output);

    // A third version commits: the followed dataset is precomputed again with it, from the kept input.
    const v3Version = await registerTinyModel(coordinator, 11);
    coordinator.app.get(FlockEventBus).emit('version.committed', { version: v3Version, parentVersion: v2Version, roundId: 'test-round' });
    const followed = await waitFor(
      () => coordinator.api<PrecomputeJob[]>('/api/precompute/jobs?dataset=csv-set'),
      (r) => r.body[0]?.modelVersion === v3Version,
      10_000,
      'the followed dataset to be queued again',
    );
    const job3 = await jobFinished(coordinator.url, followed.body[0]!.id);
    expect(job3).toMatchObject({ status: 'completed', modelVersion: v3Version, rowsStored: 40, follow: true });
    expect((await prediction('csv-set', 'u3')).body.modelVersion).toBe(v3Version);

    // The same dataset and version again: nothing is stored twice, each row is counted as already stored.
    const again = await upload(coordinator.url, 'csv-set', csv, `?keyField=uid&version=1`, 'text/csv');
    expect(await jobFinished(coordinator.url, again.body.id)).toMatchObject({ rowsStored: 0, rejected: { already_stored: 40, wrong_length: 1 } });
  });

  it('refuses what it cannot take: bad names, versions and options, JSON bodies, oversized and empty inputs, a CSV without its key column', async () => {
    const line = ndjsonLines(1)[0]!;
    expect((await upload(coordinator.url, 'a/b', line)).status).toBe(404);
    expect((await upload(coordinator.url, '-bad', line)).status).toBe(400);
    expect((await upload(coordinator.url, 'ok', line, '?version=99')).status).toBe(404);
    expect((await upload(coordinator.url, 'ok', line, '?format=xml')).status).toBe(400);
    expect((await upload(coordinator.url, 'ok', '', '')).status).toBe(400);
    expect((await upload(coordinator.url, 'ok', line, '', 'application/json')).status).toBe(415);
    const big = await upload(coordinator.url, 'ok', Buffer.alloc(300 * 1024, 0x20));
    expect(big.status).toBe(413);
    // Chunked, no Content-Length, and no end: the client still gets the 413, not a reset.
    expect(await chunkedUntilAnswered(`${coordinator.url}/api/precompute/ok`)).toEqual({ status: 413, connection: 'close' });
    const unauthorized = await fetch(`${coordinator.url}/api/precompute/ok`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${INFERENCE_KEY}` },
      body: line,
    });
    expect(unauthorized.status).toBe(401);

    const noKey = await upload(coordinator.url, 'csv-bad', 'a,b\n1,2\n', '', 'text/csv');
    expect(await jobFinished(coordinator.url, noKey.body.id)).toMatchObject({ status: 'failed', error: 'the CSV header has no column "id" (the key field)' });
  });
});

/** Streams 16 KiB chunks of spaces (chunked encoding, never ending) until the coordinator answers. */
function chunkedUntilAnswered(url: string): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { Authorization: `Bearer ${OPERATOR_TOKEN}`, 'Content-Type': 'application/x-ndjson' } });
    const chunk = Buffer.alloc(16 * 1024, 0x20);
    let answered = false;
    const writeMore = (): void => {
      while (!answered && req.write(chunk));
      if (!answered) req.once('drain', writeMore);
    };
    req.on('response', (response) => {
      answered = true;
      response.resume();
      resolve({ status: response.statusCode ?? 0, connection: response.headers.connection });
      req.destroy();
    });
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    writeMore();
  });
}
