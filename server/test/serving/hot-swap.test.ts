/**
 * Hot swap under load: while 16 clients send requests back to back, a new version is registered;
 * the workers load it and `global` switches to it without a request failing, every answer names
 * the version that computed it (each client sees 1 then 2, never back), and each request has
 * exactly one log record.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { V2InferResponse } from '../../src/contract/index.js';
import type { TestCoordinator } from '../support/coordinator.js';
import { allLogRecords, inputNameOf, registerTinyModel, servingReady, startServingCoordinator, tinyRows, v2 } from './serving-helpers.js';

const CLIENTS = 16;

describe('hot swap', () => {
  let coordinator: TestCoordinator;

  beforeAll(async () => {
    coordinator = await startServingCoordinator({ maxBatchSize: 32, maxQueueDelayMs: 2 });
    await servingReady(coordinator.url);
  }, 60_000);
  afterAll(() => coordinator?.dispose());

  it('switches to a new version under concurrent load without dropping a request', async () => {
    const input = await inputNameOf(coordinator.url);
    let stop = false;
    const answers: { status: number; version: string | undefined; requestId: unknown }[][] = [];
    const clients = Array.from({ length: CLIENTS }, async (_, client) => {
      const mine: (typeof answers)[number] = [];
      answers.push(mine);
      for (let i = 0; !stop; i++) {
        const { status, body } = await v2<V2InferResponse>(coordinator.url, '/v2/models/global/infer', {
          inputs: [{ name: input, shape: [1, 16], datatype: 'FP32', data: tinyRows(1, client * 1000 + i)[0] }],
        });
        mine.push({ status, version: body.model_version, requestId: body.parameters?.request_id });
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const registered = await registerTinyModel(coordinator, 2);
    expect(registered).toBe(2);
    // Load until every client has been answered by version 2 and enough requests went through (not for a fixed time: the machine may be loaded).
    const deadline = Date.now() + 30_000;
    const switched = (): boolean => answers.every((mine) => mine.some((answer) => answer.version === '2')) && answers.flat().length > CLIENTS * 4;
    while (!switched() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    stop = true;
    await Promise.all(clients);

    const all = answers.flat();
    expect(all.length).toBeGreaterThan(CLIENTS * 4);
    expect(all.filter((answer) => answer.status !== 200)).toEqual([]);
    expect(new Set(all.map((answer) => answer.version))).toEqual(new Set(['1', '2']));
    for (const mine of answers) {
      const versions = mine.map((answer) => Number(answer.version));
      expect(versions).toEqual([...versions].sort((a, b) => a - b));
    }

    // Exactly one record per request (FLOCK_INFERENCE_LOG_FLUSH_MS is 200 ms).
    await new Promise((resolve) => setTimeout(resolve, 500));
    const records = await allLogRecords(coordinator);
    const ids = all.map((answer) => answer.requestId);
    expect(records).toHaveLength(all.length);
    expect(new Set(records.map((record) => record.requestId))).toEqual(new Set(ids));
    const byId = new Map(records.map((record) => [record.requestId, record]));
    for (const answer of all) expect(String(byId.get(answer.requestId as string)!.modelVersion)).toBe(answer.version);
  }, 60_000);
});
