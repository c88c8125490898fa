import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { FlockApiClient } from '../../src/cli/api-client.js';
import {
  clientCountsSchema,
  healthSchema,
  statusSchema,
  modelJsonSchema,
  modelVersionDetailSchema,
  modelVersionListSchema,
  modelVersionMetaSchema,
  roundDetailsSchema,
  roundListSchema,
  roundRecordSchema,
} from '../../src/contract/index.js';
import { build2NN } from '../../src/models/default-model.js';
import { modelToParts } from '../../src/models/tfjs-format.js';
import { noKeepAliveFetch } from '../../src/simulation/http-fetch.js';
import { OPERATOR_TOKEN, operatorFetch, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';

let coordinator: TestCoordinator;

beforeAll(async () => {
  coordinator = await startTestCoordinator();
});
afterAll(async () => {
  await coordinator?.dispose();
});

describe('operator REST API', () => {
  it('serves health without a token, and nothing else', async () => {
    const health = await operatorFetch<{ status: string; modelVersion: number }>(coordinator.url, '/api/health', {}, '');
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: 'ok' });
    const status = await operatorFetch(coordinator.url, '/api/status');
    expect(status.body).toMatchObject({ status: 'ok', modelVersion: 1, connectedClients: 0, eligibleClients: 0, activeRound: null });
    for (const path of ['/api/status', '/api/rounds', '/api/clients', '/api/models', '/metrics']) {
      expect((await operatorFetch(coordinator.url, path, {}, '')).status, path).toBe(401);
      expect((await operatorFetch(coordinator.url, path, {}, 'wrong-token-wrong-token')).status, path).toBe(401);
    }
    // the client token is not an operator token
    expect((await operatorFetch(coordinator.url, '/api/rounds', {}, coordinator.config.clientToken)).status).toBe(401);
    expect((await operatorFetch(coordinator.url, '/api/rounds', { method: 'POST', body: '{}' }, '')).status).toBe(401);
  });

  it('validates round parameters with clear messages', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ minClients: 0 }, /minClients/],
      [{ minClients: 5, targetClients: 2 }, /targetClients must be at least minClients/],
      [{ learningRate: -1 }, /learningRate/],
      [{ epochs: 1.5 }, /epochs/],
      [{ strategy: 'magic' }, /strategy must be one of: fedavg/],
      [{ strategy: 'krum', minClients: 2 }, /strategy krum needs at least 5 updates/],
      [{ strategy: 'fedavg', strategyOptions: { trimFraction: 0.1 } }, /trimFraction.{0,4} does not apply to strategy .{0,4}fedavg/],
      [{ strategy: 'median', minClients: 2, targetClients: 2000 }, /keeps every update in memory/],
      [{ strategy: 'fedadam', strategyOptions: { beta1: 2 } }, /beta1/],
      [{ deadlineSeconds: 'soon' }, /deadlineSeconds/],
      [{ unknownField: 1 }, /unknownField|Unrecognized/],
    ];
    for (const [body, message] of cases) {
      const response = await coordinator.api<{ message: string[] }>('/api/rounds', { method: 'POST', body: JSON.stringify(body) });
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(JSON.stringify(response.body.message)).toMatch(message);
    }
    const malformed = await coordinator.api('/api/rounds', { method: 'POST', body: '{not json' });
    expect(malformed.status).toBe(400);
  });

  it('runs one round at a time, cancels, and answers 404/400 for unknown or malformed ids', async () => {
    // two operators press start at once: exactly one round opens
    const racing = await Promise.all(
      [0, 1].map(() =>
        coordinator.api<{ id: string; status: string }>('/api/rounds', {
          method: 'POST',
          body: JSON.stringify({ minClients: 1, selectionTimeoutSeconds: 60 }),
        }),
      ),
    );
    expect(racing.map((r) => r.status).sort()).toEqual([201, 409]);
    const first = racing.find((r) => r.status === 201)!;
    const second = await coordinator.api<{ message: string }>('/api/rounds', { method: 'POST', body: '{}' });
    expect(second.status).toBe(409);
    expect(second.body.message).toMatch(/one round at a time/);
    const live = await coordinator.api<{ status: string; transitions: unknown[] }>(`/api/rounds/${first.body.id}`);
    expect(live.body.status).toBe('selecting');
    const cancelled = await coordinator.api<{ status: string; error: string }>(`/api/rounds/${first.body.id}/cancel`, { method: 'POST' });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ status: 'aborted', error: 'cancelled by an operator' });
    expect((await coordinator.api(`/api/rounds/${first.body.id}/cancel`, { method: 'POST' })).status).toBe(409);
    expect((await coordinator.api(`/api/rounds/${randomUUID()}`)).status).toBe(404);
    expect((await coordinator.api('/api/rounds/not-a-uuid')).status).toBe(400);
    const list = await coordinator.api<{ id: string; status: string }[]>('/api/rounds?limit=5');
    expect(list.body[0]).toMatchObject({ id: first.body.id, status: 'aborted' });
    expect((await coordinator.api('/api/rounds?limit=0')).status).toBe(400);
  });

  it('documents the API with OpenAPI and exposes Prometheus metrics', async () => {
    type Operation = { responses: Record<string, { content?: Record<string, { schema?: { properties?: Record<string, unknown> } }> }> };
    const spec = await operatorFetch<{ openapi: string; paths: Record<string, Record<string, Operation>> }>(coordinator.url, '/api/docs/openapi.json', {}, '');
    expect(spec.status).toBe(200);
    expect(Object.keys(spec.body.paths)).toEqual(expect.arrayContaining(['/api/rounds', '/api/rounds/{id}', '/api/health', '/api/models', '/metrics']));
    // Response schemas come from the contract's zod schemas.
    const properties = (path: string, method: string, status: string) =>
      Object.keys(spec.body.paths[path]?.[method]?.responses[status]?.content?.['application/json']?.schema?.properties ?? {});
    expect(properties('/api/health', 'get', '200')).toEqual(Object.keys(healthSchema.shape));
    expect(properties('/api/status', 'get', '200')).toEqual(Object.keys(statusSchema.shape));
    expect(properties('/api/clients', 'get', '200')).toEqual(Object.keys(clientCountsSchema.shape));
    expect(properties('/api/rounds', 'post', '201')).toEqual(Object.keys(roundRecordSchema.shape));
    expect(properties('/api/rounds/{id}', 'get', '200')).toEqual(expect.arrayContaining(['transitions', 'timeLeftMs', 'metrics']));
    expect(properties('/api/models/{version}', 'get', '200')).toEqual(Object.keys(modelVersionDetailSchema.shape));
    const metrics = await operatorFetch<string>(coordinator.url, '/metrics', {}, OPERATOR_TOKEN);
    expect(metrics.status).toBe(200);
    for (const name of ['flock_rounds_total', 'flock_connected_clients', 'flock_eligible_clients', 'flock_aggregation_seconds', 'flock_model_version']) {
      expect(metrics.body).toContain(name);
    }
    // prom-client's process metrics under the one prefix, not flock_process_process_...
    expect(metrics.body).toMatch(/^flock_process_cpu_seconds_total /m);
    expect(metrics.body).not.toContain('flock_process_process_');
  });

  it('answers exactly what the REST contract says, through the client the CLI and the simulator use', async () => {
    // The simulator's transport (no keep-alive, bodies serialized by hand), multipart included.
    const client = new FlockApiClient({ baseUrl: coordinator.url, token: OPERATOR_TOKEN, fetch: noKeepAliveFetch });
    const model = build2NN(11);
    const parts = await modelToParts(model);
    model.dispose();
    const modelJson = {
      format: 'layers-model',
      modelTopology: parts.topology,
      weightsManifest: [{ paths: ['./model.weights.bin'], weights: parts.weightSpecs }],
    };
    const registered = await client.registerModel({ modelJson, weights: parts.weights, metrics: { note: 'contract test', seed: 11 } });
    expect(registered).toMatchObject({ source: 'registered', metrics: { note: 'contract test', seed: 11 } });
    expect(Buffer.from(await client.modelWeights(registered.version)).equals(Buffer.from(parts.weights))).toBe(true);

    const started = await client.startRound({ minClients: 1, selectionTimeoutSeconds: 60, strategy: 'fedadam', strategyOptions: { serverLearningRate: 0.03 } });
    const responses: [z.ZodType, unknown][] = [
      [healthSchema, await client.health()],
      [statusSchema, await client.status()],
      [clientCountsSchema, await client.clientCounts()],
      [modelVersionListSchema, await client.listModels()],
      [modelVersionDetailSchema, await client.currentModel()],
      [modelVersionMetaSchema, registered],
      [modelJsonSchema, await client.modelJson(registered.version)],
      [roundRecordSchema, started],
      [roundDetailsSchema, await client.getRound(started.id)],
      [roundRecordSchema, await client.cancelRound(started.id)],
      [roundListSchema, await client.listRounds({ limit: 5 })],
      [modelVersionMetaSchema, await client.rollbackModel(1)],
    ];
    // The client already refused anything the contract lacks a required field of; unknown keys would be
    // stripped by parse, so equality also means the coordinator sends nothing the contract does not name.
    for (const [schema, body] of responses) expect(schema.parse(body)).toEqual(body);
    expect(started.params).toMatchObject({ strategy: 'fedadam', strategyOptions: { serverLearningRate: 0.03 }, targetClients: 10 });
    expect(started.metrics).toMatchObject({ validationMs: 0, aggregationMs: 0 });
  });
});
