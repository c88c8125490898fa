import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
    expect(health.body).toMatchObject({ status: 'ok', modelVersion: 1, connectedClients: 0, eligibleClients: 0, activeRound: null });
    for (const path of ['/api/rounds', '/api/clients', '/api/models', '/metrics']) {
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
    const racing = await Promise.all([0, 1].map(() => coordinator.api<{ id: string; status: string }>('/api/rounds', { method: 'POST', body: JSON.stringify({ minClients: 1, selectionTimeoutSeconds: 60 }) })));
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
    const spec = await operatorFetch<{ openapi: string; paths: Record<string, unknown> }>(coordinator.url, '/api/docs/openapi.json', {}, '');
    expect(spec.status).toBe(200);
    expect(Object.keys(spec.body.paths)).toEqual(expect.arrayContaining(['/api/rounds', '/api/rounds/{id}', '/api/health', '/api/models', '/metrics']));
    const metrics = await operatorFetch<string>(coordinator.url, '/metrics', {}, OPERATOR_TOKEN);
    expect(metrics.status).toBe(200);
    for (const name of ['flock_rounds_total', 'flock_connected_clients', 'flock_eligible_clients', 'flock_aggregation_seconds', 'flock_model_version']) {
      expect(metrics.body).toContain(name);
    }
  });
});
