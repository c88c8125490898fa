import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { ENVIRONMENT_VARIABLES } from '../../src/config/environment.js';

const MAIN = resolve(import.meta.dirname, '../../dist/main.js');
const dataDir = mkdtempSync(join(tmpdir(), 'flock-config-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const TOKENS = { FLOCK_DATA_DIR: dataDir, FLOCK_CLIENT_TOKEN: 'client-token-0123456789', FLOCK_OPERATOR_TOKEN: 'operator-token-0123456789' };

/** The problems loadConfig reports for this environment (it must refuse it). */
function problemsOf(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig({ ...TOKENS, ...env });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('the environment was accepted');
}

describe('the coordinator with an invalid environment (node dist/main.js)', () => {
  it('prints every problem as one plain line, exits 1, and logs no JSON and no stack', () => {
    const run = spawnSync(process.execPath, [MAIN], {
      env: {
        PATH: process.env.PATH,
        ...TOKENS,
        FLOCK_OVER_SELECTION: '0.5',
        LOG_LEVEL: 'verbose',
        PORT: 'eighty',
        FLOCK_ADAPTIVE_EXAMPLE_CAP: 'yes',
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.split('\n')).toEqual([
      'Flock coordinator: invalid configuration',
      '  PORT: must be a number (got eighty)',
      '  FLOCK_OVER_SELECTION: must be at least 1 (got 0.5)',
      '  LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent (got verbose)',
      '  FLOCK_ADAPTIVE_EXAMPLE_CAP: must be one of 0, 1, true, false (got yes)',
      '',
    ]);
  }, 60_000);
});

describe('loadConfig: the whole environment through one schema', () => {
  it('reads every variable it documents', () => {
    const config = loadConfig({
      ...TOKENS,
      PORT: '9090',
      HOST: '127.0.0.1',
      FLOCK_DATABASE_URL: 'postgres://127.0.0.1:5432/test',
      FLOCK_REDIS_URL: 'redis://127.0.0.1:6379',
      FLOCK_MAX_UPLOAD_BYTES: '1048576',
      FLOCK_OVER_SELECTION: '2',
      FLOCK_INITIAL_MODEL: '/models/model.json',
      FLOCK_DEFAULT_MODEL_EXAMPLES: '600',
      FLOCK_TEST_SET: 'none',
      LOG_LEVEL: 'debug',
      FLOCK_PROOF_TIMEOUT_MS: '2000',
      FLOCK_MAX_CONNECTIONS_PER_ADDRESS: '0',
      FLOCK_TRUST_PROXY: '1',
      FLOCK_EVENT_RATE_LIMITS: 'conditions=5/50',
      FLOCK_EVENT_ABUSE_LIMIT: '3/30',
      FLOCK_MAX_EXAMPLES_PER_UPDATE: '500',
      FLOCK_ADAPTIVE_EXAMPLE_CAP: 'false',
      FLOCK_UPDATE_BOUND_MODE: 'refuse',
      FLOCK_MAX_UPDATE_NORM: '50',
      FLOCK_UPDATE_BOUND_INITIAL: '2',
      FLOCK_UPDATE_BOUND_QUANTILE: '0.9',
      FLOCK_MAX_SELECTED_PER_ADDRESS: '0',
      FLOCK_MAX_MODEL_CHANGE: '123',
    });
    expect(config).toMatchObject({
      port: 9090,
      host: '127.0.0.1',
      dataDir,
      databaseUrl: 'postgres://127.0.0.1:5432/test',
      redisUrl: 'redis://127.0.0.1:6379',
      clientToken: TOKENS.FLOCK_CLIENT_TOKEN,
      operatorToken: TOKENS.FLOCK_OPERATOR_TOKEN,
      maxUploadBytes: 1_048_576,
      overSelection: 2,
      initialModelPath: '/models/model.json',
      defaultModelTrainExamples: 600,
      testSet: 'none',
      logLevel: 'debug',
      proofTimeoutMs: 2000,
      enrolment: null,
      maxConnectionsPerAddress: 0,
      trustProxyHops: 1,
      eventLimits: { rules: { conditions: { perSecond: 5, burst: 50 } }, abuse: { perSecond: 3, burst: 30 } },
      maxExamplesPerUpdate: 500,
      adaptiveExampleCap: false,
      updateBound: { mode: 'refuse', ceiling: 50, initial: 2, quantile: 0.9 },
      maxSelectedPerAddress: 0,
      maxModelChange: 123,
    });
  });

  it('applies the defaults to unset and blank variables', () => {
    const config = loadConfig({ ...TOKENS, PORT: '', FLOCK_OVER_SELECTION: ' ', FLOCK_EVENT_RATE_LIMITS: 'off' });
    expect(config).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      overSelection: 1.3,
      logLevel: 'info',
      testSet: 'mnist',
      eventLimits: null,
      maxModelChange: 1000,
    });
  });

  it('puts the upload listener next to the API port unless told otherwise, and turns it off in cluster mode', () => {
    const listener = (env: NodeJS.ProcessEnv) => loadConfig({ ...TOKENS, ...env }).uploads;
    expect(listener({})).toEqual({ port: 8081, host: '0.0.0.0', portChosen: false, publicUrl: null, slots: 8, requestTimeoutMs: 120_000, minBytes: 65_536 });
    expect(listener({ PORT: '0' })).toMatchObject({ port: 0, portChosen: false });
    expect(loadConfig({ ...TOKENS }, { port: 0, host: '127.0.0.1' }).uploads).toMatchObject({ port: 0, host: '127.0.0.1' });
    expect(
      listener({
        FLOCK_UPLOAD_PORT: '9000',
        FLOCK_UPLOAD_HOST: '127.0.0.1',
        FLOCK_UPLOAD_URL: 'https://uploads.example.com/v1/uploads',
        FLOCK_UPLOAD_SLOTS: '2',
        FLOCK_UPLOAD_REQUEST_TIMEOUT_MS: '5000',
        FLOCK_UPLOAD_MIN_BYTES: '0',
      }),
    ).toEqual({
      port: 9000,
      host: '127.0.0.1',
      portChosen: true,
      publicUrl: 'https://uploads.example.com/v1/uploads',
      slots: 2,
      requestTimeoutMs: 5000,
      minBytes: 0,
    });
    expect(listener({ FLOCK_UPLOAD_PORT: 'off' })).toBeNull();
    expect(listener({ FLOCK_REDIS_URL: 'redis://127.0.0.1:6379' })).toBeNull();
    expect(problemsOf({ FLOCK_UPLOAD_PORT: 'on', FLOCK_UPLOAD_URL: 'ftp://x' })).toHaveLength(2);
  });

  it('refuses values out of range with the range, and never echoes a secret', () => {
    expect(problemsOf({ FLOCK_OVER_SELECTION: '11', FLOCK_UPDATE_BOUND_QUANTILE: '1', FLOCK_MAX_EXAMPLES_PER_UPDATE: '2.5' })).toEqual([
      'FLOCK_OVER_SELECTION: must be at most 10 (got 11)',
      'FLOCK_MAX_EXAMPLES_PER_UPDATE: must be a whole number (got 2.5)',
      'FLOCK_UPDATE_BOUND_QUANTILE: must be less than 1 (got 1)',
    ]);
    expect(problemsOf({ FLOCK_OPERATOR_TOKEN: 'short-secret', FLOCK_DATABASE_URL: 'mysql://user:hunter2@db/flock' })).toEqual([
      'FLOCK_DATABASE_URL: must be a URL such as postgres://user@host/db',
      'FLOCK_OPERATOR_TOKEN: must be at least 16 characters',
    ]);
    expect(problemsOf({ FLOCK_EVENT_RATE_LIMITS: 'uploads=1/2', FLOCK_EVENT_ABUSE_LIMIT: '1/0' })).toEqual([
      'FLOCK_EVENT_RATE_LIMITS: unknown event class "uploads" (one of proof, conditions, fetch, update, evaluation, abandon, secagg) (got uploads=1/2)',
      'FLOCK_EVENT_ABUSE_LIMIT: expected perSecond/burst such as 2/20 (got 1/0)',
    ]);
  });

  it('checks the enrolment variables together, alongside the other problems', () => {
    expect(problemsOf({ FLOCK_ENROLMENT_KEY: '{}', FLOCK_ENROLMENT_JWKS_URL: 'https://app.example/jwks.json', LOG_LEVEL: 'loud' })).toEqual([
      'LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent (got loud)',
      'set only one of FLOCK_ENROLMENT_JWKS_URL, FLOCK_ENROLMENT_KEY',
      'FLOCK_ENROLMENT_ISSUER: is required when enrolment is on (FLOCK_ENROLMENT_JWKS_URL is set)',
      'FLOCK_ENROLMENT_AUDIENCE: is required when enrolment is on (FLOCK_ENROLMENT_JWKS_URL is set)',
    ]);
  });

  it('documents every variable in the README configuration table, one row each', () => {
    const readme = readFileSync(resolve(import.meta.dirname, '../../../README.md'), 'utf8');
    const rows = [...readme.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((match) => match[1]);
    expect([...rows].sort()).toEqual([...ENVIRONMENT_VARIABLES].sort());
  });
});
