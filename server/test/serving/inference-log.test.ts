/**
 * The inference log on both databases: the store's filters, paging, labels and retention; and
 * through a real coordinator, N concurrent requests leave exactly N records (one per request id),
 * with feedback labelling one. PostgreSQL: FLOCK_TEST_POSTGRES_URL (default
 * postgres://postgres@127.0.0.1:5432/test), a schema per test, dropped afterwards; unreachable fails.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { inferenceLogQuerySchema, type InferenceFeedbackResult, type V2InferResponse } from '../../src/contract/index.js';
import type { InferenceLogEntry, InferenceLogStore } from '../../src/storage/inference-log.js';
import { PostgresInferenceLog } from '../../src/storage/postgres-inference-log.js';
import { SqliteInferenceLog } from '../../src/storage/sqlite-inference-log.js';
import { operatorFetch } from '../support/coordinator.js';
import type { ServingConfig } from '../../src/serving/serving-config.js';
import { allLogRecords, INFERENCE_KEY, inputNameOf, servingReady, startServingCoordinator, tinyRows, v2 } from './serving-helpers.js';

const POSTGRES_URL = process.env.FLOCK_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const tmpRoot = mkdtempSync(join(tmpdir(), 'flock-inference-log-'));
const schemas: string[] = [];

afterAll(async () => {
  rmSync(tmpRoot, { recursive: true, force: true });
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
});

function newSchema(): string {
  const schema = `flock_serving_${randomBytes(4).toString('hex')}`;
  schemas.push(schema);
  return schema;
}

const databases = [
  { name: 'SQLite', store: (): InferenceLogStore => new SqliteInferenceLog(join(tmpRoot, `${randomBytes(4).toString('hex')}.db`)), databaseUrl: () => null },
  {
    name: 'PostgreSQL',
    store: (): InferenceLogStore => new PostgresInferenceLog(POSTGRES_URL, newSchema()),
    databaseUrl: () => `${POSTGRES_URL}?schema=${newSchema()}`,
  },
];

function entry(at: string, version: number, status: InferenceLogEntry['status'] = 'ok'): InferenceLogEntry {
  return {
    requestId: randomUUID(),
    at,
    modelName: 'global',
    modelVersion: version,
    status,
    latencyMs: 1.5,
    batchSize: 4,
    rows: 1,
    inputShape: [1, 16],
    inputDigest: 'ab'.repeat(16),
    topClass: status === 'ok' ? 3 : null,
    confidence: status === 'ok' ? 0.75 : null,
    error: status === 'ok' ? null : 'bad',
    input: null,
  };
}

describe.each(databases)('inference log on $name', (database) => {
  it('filters, pages, labels and deletes past retention', async () => {
    const store = database.store();
    await store.init();
    try {
      const entries = [
        entry('2026-01-01T00:00:00.000Z', 1),
        entry('2026-01-02T00:00:00.000Z', 1, 'bad_request'),
        entry('2026-01-03T00:00:00.000Z', 2),
        entry('2026-01-04T00:00:00.000Z', 2),
        { ...entry('2026-01-05T00:00:00.000Z', 2), input: new Uint8Array([1, 2, 3, 4]) },
      ];
      await store.append(entries);
      const query = (q: Record<string, unknown>) => store.query(inferenceLogQuerySchema.parse(q));
      expect((await query({})).records.map((r) => r.requestId)).toEqual(entries.map((e) => e.requestId).reverse());
      expect((await query({ version: 1 })).records).toHaveLength(2);
      expect((await query({ status: 'bad_request' })).records.map((r) => r.requestId)).toEqual([entries[1]!.requestId]);
      expect((await query({ since: '2026-01-03T00:00:00Z', until: '2026-01-05T00:00:00Z' })).records).toHaveLength(2);
      const first = await query({ limit: 2 });
      expect(first.records).toHaveLength(2);
      const second = await query({ limit: 2, before: first.nextBefore! });
      const third = await query({ limit: 2, before: second.nextBefore! });
      expect(third.nextBefore).toBeNull();
      expect([...first.records, ...second.records, ...third.records].map((r) => r.requestId)).toEqual(entries.map((e) => e.requestId).reverse());
      expect(first.records[0]).toMatchObject({ hasInput: true, inputShape: [1, 16], topClass: 3, confidence: 0.75, label: null });
      expect((await store.setLabel(entries[0]!.requestId, 3))?.label).toBe(3);
      expect(await store.setLabel(randomUUID(), 3)).toBeNull();
      expect(await store.deleteBefore('2026-01-03T00:00:00.000Z')).toBe(2);
      expect((await query({})).records).toHaveLength(3);
      // A batch whose transaction fails (here a repeated request id) is written not at all, and the store goes on.
      const repeated = entry('2026-01-06T00:00:00.000Z', 2);
      await expect(store.append([entry('2026-01-06T00:00:00.000Z', 2), repeated, repeated])).rejects.toThrow();
      expect((await query({})).records).toHaveLength(3);
      await store.append([entry('2026-01-07T00:00:00.000Z', 2)]);
      expect((await query({})).records).toHaveLength(4);
    } finally {
      await store.close();
    }
  });

  it('N concurrent requests leave exactly N records, one per request id; feedback labels one', async () => {
    const databaseUrl = database.databaseUrl();
    const serving: Partial<ServingConfig> = { logInputs: databaseUrl === null };
    const coordinator = await startServingCoordinator(serving, databaseUrl ? { databaseUrl } : {});
    try {
      await servingReady(coordinator.url);
      const input = await inputNameOf(coordinator.url);
      const N = 240;
      const CONCURRENCY = 32;
      const ids: string[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < N) {
            const i = next++;
            const { status, body } = await v2<V2InferResponse>(coordinator.url, '/v2/models/global/infer', {
              inputs: [{ name: input, shape: [1, 16], datatype: 'FP32', data: tinyRows(1, i + 1)[0] }],
            });
            expect(status).toBe(200);
            ids.push(body.parameters!.request_id as string);
          }
        }),
      );
      // Feedback right away: a record still buffered is flushed first.
      const feedback = await operatorFetch<InferenceFeedbackResult>(
        coordinator.url,
        `/api/inference-log/${ids[0]}/feedback`,
        { method: 'POST', body: JSON.stringify({ label: 4 }) },
        INFERENCE_KEY,
      );
      expect(feedback.status).toBe(200);
      expect(feedback.body).toMatchObject({ requestId: ids[0], modelVersion: 1 });
      expect(feedback.body.correct).toBe(feedback.body.topClass === 4);
      expect(
        (await operatorFetch(coordinator.url, `/api/inference-log/${randomUUID()}/feedback`, { method: 'POST', body: JSON.stringify({ label: 4 }) })).status,
      ).toBe(404);
      expect(
        (await operatorFetch(coordinator.url, `/api/inference-log/${ids[0]}/feedback`, { method: 'POST', body: JSON.stringify({ label: -1 }) })).status,
      ).toBe(400);

      await new Promise((resolve) => setTimeout(resolve, 500));
      const records = await allLogRecords(coordinator);
      expect(records).toHaveLength(N);
      expect(new Set(records.map((record) => record.requestId))).toEqual(new Set(ids));
      expect(records.every((record) => record.status === 'ok' && record.modelVersion === 1 && record.hasInput === (databaseUrl === null))).toBe(true);
      expect(records.find((record) => record.requestId === ids[0])!.label).toBe(4);
      expect(await allLogRecords(coordinator, '&version=2')).toHaveLength(0);
    } finally {
      await coordinator.dispose();
    }
  }, 60_000);
});
