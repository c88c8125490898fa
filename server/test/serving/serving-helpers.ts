import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type FlockConfig } from '../../src/config/config.js';
import type { InferenceLogPage, InferenceLogRecord } from '../../src/contract/index.js';
import type { ServingConfig } from '../../src/serving/serving-config.js';
import { CLIENT_TOKEN, OPERATOR_TOKEN, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { writeTinyModel } from '../support/tiny-model.js';

export const INFERENCE_KEY = 'test-inference-key-0123456789';

/** The serving defaults of the environment schema, with the test's key and `overrides`. */
export function servingConfig(overrides: Partial<ServingConfig> = {}, env: NodeJS.ProcessEnv = {}): ServingConfig {
  const dataDir = mkdtempSync(join(tmpdir(), 'flock-serving-config-'));
  const base = loadConfig({ FLOCK_INFERENCE_KEYS: INFERENCE_KEY, ...env }, { dataDir, clientToken: CLIENT_TOKEN, operatorToken: OPERATOR_TOKEN }).serving;
  return { ...base, ...overrides };
}

/** A coordinator serving the tiny model (16 inputs -> 10 classes) as version 1. */
export async function startServingCoordinator(serving: Partial<ServingConfig> = {}, config: Partial<FlockConfig> = {}): Promise<TestCoordinator> {
  const modelDir = mkdtempSync(join(tmpdir(), 'flock-serving-model-'));
  return startTestCoordinator({ initialModelPath: writeTinyModel(modelDir), serving: servingConfig(serving), ...config });
}

/** fetch with the inference key (or `token`), JSON in and out. */
export async function v2<T = unknown>(
  baseUrl: string,
  path: string,
  body?: unknown,
  token: string | null = INFERENCE_KEY,
): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${baseUrl}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: response.status, body: parsed as T };
}

/** `rows` rows of 16 values, seeded. */
export function tinyRows(rows: number, seed = 1): number[][] {
  let state = seed;
  const next = (): number => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
  return Array.from({ length: rows }, () => Array.from({ length: 16 }, () => next()));
}

/**
 * Registers the tiny model (another seed) as a new version through `POST /api/models`;
 * `alter` may change its weights first (in manifest order: hidden kernel, hidden bias, output kernel, output bias).
 */
export async function registerTinyModel(coordinator: TestCoordinator, seed: number, alter?: (weights: Float32Array) => void): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'flock-serving-model-'));
  const modelJson = JSON.parse(readFileSync(writeTinyModel(dir, seed), 'utf8')) as { weightsManifest: { paths: string[] }[] };
  const weights = new Float32Array(new Uint8Array(readFileSync(join(dir, 'weights.bin'))).buffer);
  alter?.(weights);
  modelJson.weightsManifest[0]!.paths = ['./model.weights.bin'];
  const form = new FormData();
  form.append('model.json', new Blob([JSON.stringify(modelJson)], { type: 'application/json' }), 'model.json');
  form.append('model.weights.bin', new Blob([new Uint8Array(weights.buffer)], { type: 'application/octet-stream' }), 'model.weights.bin');
  const response = await fetch(`${coordinator.url}/api/models`, { method: 'POST', headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` }, body: form });
  const body = (await response.json()) as { version: number };
  if (response.status !== 201) throw new Error(`registering a model failed: ${response.status} ${JSON.stringify(body)}`);
  return body.version;
}

/** Polls `/v2/health/ready` until the workers serve. */
export async function servingReady(baseUrl: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await v2<{ ready: boolean }>(baseUrl, '/v2/health/ready', undefined, null)).body.ready) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('serving did not become ready');
}

/** The tiny model's input name (from its metadata). */
export async function inputNameOf(baseUrl: string): Promise<string> {
  const { body } = await v2<{ inputs: { name: string }[] }>(baseUrl, '/v2/models/global');
  return body.inputs[0]!.name;
}

/** Every record of the inference log (all pages). */
export async function allLogRecords(coordinator: TestCoordinator, query = ''): Promise<InferenceLogRecord[]> {
  const records: InferenceLogRecord[] = [];
  let before: number | null = null;
  do {
    const path: string = `/api/inference-log?limit=1000${query}${before === null ? '' : `&before=${before}`}`;
    const { status, body }: { status: number; body: InferenceLogPage } = await coordinator.api<InferenceLogPage>(path);
    if (status !== 200) throw new Error(`GET ${path}: ${status}`);
    records.push(...body.records);
    before = body.nextBefore;
  } while (before !== null);
  return records;
}

/** A local HTTP endpoint standing for an operator's webhook: records each JSON body it is sent. */
export interface WebhookRecorder {
  url: string;
  received: unknown[];
  close(): Promise<void>;
}

export async function startWebhookRecorder(): Promise<WebhookRecorder> {
  const received: unknown[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      received.push(JSON.parse(body));
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
