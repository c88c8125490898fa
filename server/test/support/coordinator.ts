import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initNodeBackend } from '@flock/client-sdk/node';
import { isRoundFinished } from '@flock/client-sdk/protocol';
import { loadConfig, type FlockConfig } from '../../src/config/config.js';
import type { RoundDetails } from '../../src/contract/index.js';
import { createCoordinator, type Coordinator } from '../../src/coordinator.js';
import { noKeepAliveFetch } from '../../src/simulation/http-fetch.js';

export const CLIENT_TOKEN = 'test-client-token-0123456789';
export const OPERATOR_TOKEN = 'test-operator-token-0123456789';

/**
 * For tests that check FedAvg's exact arithmetic (the committed model is the example-weighted mean
 * of the deltas sent): no adaptive norm bound, no adaptive example cap. Bounded influence, on by
 * default, has its own tests (security/influence.test.ts).
 */
export const EXACT_AVERAGES: Partial<FlockConfig> = {
  updateBound: { mode: 'off', ceiling: 100, initial: 1, quantile: 0.5, learningRate: 0.2 },
  adaptiveExampleCap: false,
};

export interface TestCoordinator extends Coordinator {
  dataDir: string;
  /** fetch against the operator API with the operator token. */
  api<T = unknown>(path: string, init?: RequestInit): Promise<{ status: number; body: T }>;
  /** Polls the round until it has finished (committed, failed or aborted), and returns it. */
  roundEnded(id: string, timeoutMs?: number): Promise<RoundDetails>;
  /** Polls until no device is connected any more (after a test disconnected its own). */
  devicesLeft(timeoutMs?: number): Promise<void>;
  /** Polls until exactly `n` devices are eligible (conditions reports are fire-and-forget). */
  eligible(n: number, timeoutMs?: number): Promise<void>;
  /** POST /api/rounds, expecting 201; the new round's id. */
  startRound(body: Record<string, unknown>): Promise<string>;
  /** Stops the coordinator and deletes its data directory. */
  dispose(): Promise<void>;
}

/**
 * A real coordinator on loopback (port 0) with a fresh SQLite file in a temp dir. The centralized
 * test-set evaluation is off unless `testSet` is given (its thread would load tfjs and MNIST in
 * every test that commits a round); test/models/test-set.test.ts covers it.
 */
export async function startTestCoordinator(overrides: Partial<FlockConfig> = {}): Promise<TestCoordinator> {
  await initNodeBackend();
  const dataDir = overrides.dataDir ?? mkdtempSync(join(tmpdir(), 'flock-test-'));
  const config = loadConfig(
    {},
    {
      port: 0,
      host: '127.0.0.1',
      clientToken: CLIENT_TOKEN,
      operatorToken: OPERATOR_TOKEN,
      defaultModelTrainExamples: 600,
      testSet: 'none',
      ...overrides,
      dataDir,
    },
  );
  const coordinator = await createCoordinator(config);
  const api = <T>(path: string, init?: RequestInit) => operatorFetch<T>(coordinator.url, path, init);
  return {
    ...coordinator,
    dataDir,
    api,
    roundEnded: async (id, timeoutMs = 20_000) => {
      const { body } = await waitFor(
        () => api<RoundDetails>(`/api/rounds/${id}`),
        (r) => isRoundFinished(r.body.status),
        timeoutMs,
        `round ${id} to end`,
      );
      return body;
    },
    devicesLeft: async (timeoutMs = 5_000) => {
      await waitFor(
        () => api<{ connected: number }>('/api/clients'),
        (r) => r.body.connected === 0,
        timeoutMs,
        'devices to leave',
      );
    },
    eligible: async (n, timeoutMs = 15_000) => {
      await waitFor(
        () => api<{ eligible: number }>('/api/clients'),
        (r) => r.body.eligible === n,
        timeoutMs,
        `${n} eligible devices`,
      );
    },
    startRound: async (body) => {
      const response = await api<{ id: string }>('/api/rounds', { method: 'POST', body: JSON.stringify(body) });
      if (response.status !== 201) throw new Error(`starting a round answered ${response.status}: ${JSON.stringify(response.body)}`);
      return response.body.id;
    },
    dispose: async () => {
      await coordinator.close();
      if (!overrides.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * One connection per request (see noKeepAliveFetch): a test that keeps its event loop busy for
 * longer than the server's keep-alive timeout (5 s; e.g. checking 199,210 weights one by one on a
 * loaded machine) would otherwise send its next request on a pooled socket that the server closes
 * at that moment, and fail with ECONNRESET.
 */
export async function operatorFetch<T>(baseUrl: string, path: string, init: RequestInit = {}, token = OPERATOR_TOKEN): Promise<{ status: number; body: T }> {
  const headers = new Headers(init.headers);
  if (token) headers.set('Authorization', `Bearer ${token}`);
  if (init.body && !headers.has('Content-Type')) headers.set('Content-Type', 'application/json');
  const response = await noKeepAliveFetch(`${baseUrl}${path}`, { ...init, headers });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON (metrics, weights): keep the text
  }
  return { status: response.status, body: body as T };
}

/** Polls until the predicate holds (the round engine works asynchronously). */
export async function waitFor<T>(read: () => Promise<T> | T, predicate: (value: T) => boolean, timeoutMs = 20_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (predicate(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(value)?.slice(0, 500)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
