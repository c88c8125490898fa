import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type FlockConfig } from '../../src/config/config.js';
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
export async function v2<T = unknown>(baseUrl: string, path: string, body?: unknown, token: string | null = INFERENCE_KEY): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${baseUrl}${path}`, { method: body === undefined ? 'GET' : 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body) });
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
