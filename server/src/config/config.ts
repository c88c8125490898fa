import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { eventLimitsFromEnv, type EventLimits } from '../boundary/event-rate-limit.js';
import { MAX_UPDATE_EXAMPLES } from '@flock/client-sdk/protocol';
import type { BusyConfig } from '../boundary/busy.js';
import type { PaceConfig } from '../rounds/pace.js';
import { UPDATE_BOUND_MODES, type UpdateBoundConfig, type UpdateBoundMode } from '../rounds/update-bound.js';

/** Everything the coordinator reads from its environment, resolved once at start-up. */
export interface FlockConfig {
  port: number;
  host: string;
  /** Directory of the embedded database and generated tokens. */
  dataDir: string;
  /** postgres://... to use PostgreSQL instead of the embedded SQLite file. */
  databaseUrl: string | null;
  /** redis://... to share socket.io rooms between coordinator processes (socket.io Redis adapter). */
  redisUrl: string | null;
  clientToken: string;
  operatorToken: string;
  /** Where each token came from, to tell the operator without printing the token. */
  tokenSources: { client: string; operator: string };
  /** Upper bound on the bytes of weight data in one upload. */
  maxUploadBytes: number;
  /** Over-selection factor used when a round does not set one. */
  overSelection: number;
  /** A TensorFlow.js model.json to register as version 1 instead of training the default 2NN. */
  initialModelPath: string | null;
  /** Examples of real MNIST the default model is trained on at first start. */
  defaultModelTrainExamples: number;
  /** Held-out test set every new global version is tested on ('none': no centralized evaluation). */
  testSet: TestSetName;
  logLevel: string;
  /** How long a device has, once connected, to answer the challenge with its key's signature. */
  proofTimeoutMs: number;
  /** Device enrolment by the app's backend (device tokens); null when off: devices use the shared client token. */
  enrolment: EnrolmentConfig | null;
  /** Socket connections one client address may hold at once (0: unlimited). */
  maxConnectionsPerAddress: number;
  /** Reverse proxies in front of the coordinator whose X-Forwarded-For is trusted (0: none, the header is ignored). */
  trustProxyHops: number;
  /** Per-socket limits on incoming events (null: off). */
  eventLimits: EventLimits | null;
  /** The most examples one update may claim and count for: the plan's maxExamplesPerUpdate, unless a round sets its own. */
  maxExamplesPerUpdate: number;
  /** Whether updates count for at most the median example count of the last committed round (under the plan's maxExamplesPerUpdate). */
  adaptiveExampleCap: boolean;
  /** The adaptive L2 bound on updates (rounds/update-bound.ts). */
  updateBound: UpdateBoundConfig;
  /** The most devices selected from one network address per round; 0: no limit. */
  maxSelectedPerAddress: number;
  /** The most L2 norm of the change a round may commit (new - old weights); larger aggregates fail the round. */
  maxModelChange: number;
  /** Pace steering: report windows in `round:configure` (rounds/pace.ts); null when off (`FLOCK_PACE_STEERING=off`). */
  pace: PaceConfig | null;
  /** Backpressure on arrivals: refuse new sessions with `coordinator_busy` while the event loop is slow (boundary/busy.ts); null when off (the default). */
  busy: BusyConfig | null;
}

/**
 * Enrolment: devices present a JWT from the app's backend, bound to their key (`cnf.jkt`), instead
 * of the shared client token, which is then refused.
 */
export interface EnrolmentConfig {
  /** Where the keys that verify device tokens come from: a JWKS URL, or key text (PEM public key, JWK or JWKS). */
  keys: { jwksUrl: string } | { keyText: string };
  /** Expected `iss` and `aud` of device tokens. */
  issuer: string;
  audience: string;
  /** Secret of the keyed hash that turns the token's `sub` (an app user) into the `userKey` the coordinator keeps. */
  userKeySecret: string;
}

const DEFAULT_MAX_UPLOAD_BYTES = 64 * 1024 * 1024;
const DEFAULT_PROOF_TIMEOUT_MS = 10_000;
/** Room for a NAT or an office behind one address, far below one process's 20,000 sockets. */
const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 128;
// Bounded influence (docs/SECURITY.md): a device's weight, its update's norm, its address's share of a round.
const DEFAULT_MAX_EXAMPLES_PER_UPDATE = 1000;
const DEFAULT_MAX_UPDATE_NORM = 100;
const DEFAULT_UPDATE_BOUND_INITIAL = 1;
const DEFAULT_UPDATE_BOUND_QUANTILE = 0.5;
const UPDATE_BOUND_LEARNING_RATE = 0.2;
const DEFAULT_MAX_SELECTED_PER_ADDRESS = 2;
const MODEL_CHANGE_PER_UPDATE_NORM = 10;
// Pace steering (bench/results/scale.md): what one coordinator process folds on this project's 2-core machine with room to spare.
const DEFAULT_MAX_UPLOADS_PER_SECOND = 200;
const DEFAULT_MAX_UPLOAD_BYTES_PER_SECOND = 16 * 1024 * 1024;
const DEFAULT_PACE_WINDOW_MS = 1000;
const DEFAULT_BUSY_RETRY_AFTER_MS = 30_000;

export const TEST_SET_NAMES = ['mnist', 'none'] as const;
export type TestSetName = (typeof TEST_SET_NAMES)[number];

function testSetFromEnv(env: NodeJS.ProcessEnv): TestSetName {
  const raw = env.FLOCK_TEST_SET;
  if (raw === undefined || raw === '') return 'mnist';
  if ((TEST_SET_NAMES as readonly string[]).includes(raw)) return raw as TestSetName;
  throw new Error(`FLOCK_TEST_SET must be one of ${TEST_SET_NAMES.join(', ')}, got "${raw}"`);
}

function intFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  return value;
}

function floatFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

function updateBoundFromEnv(env: NodeJS.ProcessEnv): UpdateBoundConfig {
  const mode = env.FLOCK_UPDATE_BOUND_MODE || 'clip';
  if (!(UPDATE_BOUND_MODES as readonly string[]).includes(mode))
    throw new Error(`FLOCK_UPDATE_BOUND_MODE must be one of ${UPDATE_BOUND_MODES.join(', ')}, got "${mode}"`);
  const quantile = floatFromEnv(env, 'FLOCK_UPDATE_BOUND_QUANTILE', DEFAULT_UPDATE_BOUND_QUANTILE);
  if (quantile >= 1) throw new Error(`FLOCK_UPDATE_BOUND_QUANTILE must be in (0, 1), got "${quantile}"`);
  return {
    mode: mode as UpdateBoundMode,
    ceiling: floatFromEnv(env, 'FLOCK_MAX_UPDATE_NORM', DEFAULT_MAX_UPDATE_NORM),
    initial: floatFromEnv(env, 'FLOCK_UPDATE_BOUND_INITIAL', DEFAULT_UPDATE_BOUND_INITIAL),
    quantile,
    learningRate: UPDATE_BOUND_LEARNING_RATE,
  };
}

function booleanFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new Error(`${name} must be true or false, got "${raw}"`);
}

function maxExamplesFromEnv(env: NodeJS.ProcessEnv): number {
  const value = intFromEnv(env, 'FLOCK_MAX_EXAMPLES_PER_UPDATE', DEFAULT_MAX_EXAMPLES_PER_UPDATE);
  if (value < 1 || value > MAX_UPDATE_EXAMPLES) throw new Error(`FLOCK_MAX_EXAMPLES_PER_UPDATE must be in [1, ${MAX_UPDATE_EXAMPLES}], got ${value}`);
  return value;
}

/** Reads a token from the environment, else from the data directory, else generates and stores one. */
function resolveToken(env: NodeJS.ProcessEnv, dataDir: string, name: string, file: string): { token: string; source: string } {
  const fromEnv = env[name];
  if (fromEnv) {
    if (fromEnv.length < 16) throw new Error(`${name} must be at least 16 characters`);
    return { token: fromEnv, source: `environment variable ${name}` };
  }
  const path = join(dataDir, file);
  if (existsSync(path)) {
    const stored = readFileSync(path, 'utf8').trim();
    if (stored.length >= 16) return { token: stored, source: path };
  }
  const token = randomBytes(24).toString('base64url');
  // 0600: the token file is a credential.
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  return { token, source: `${path} (generated)` };
}

function requiredFromEnv(env: NodeJS.ProcessEnv, name: string, because: string): string {
  const value = env[name];
  if (!value) throw new Error(`${name} is required ${because}`);
  return value;
}

/** Enrolment is on when one source of verification keys is configured. */
function enrolmentFromEnv(env: NodeJS.ProcessEnv, dataDir: string): EnrolmentConfig | null {
  const sources = ['FLOCK_ENROLMENT_JWKS_URL', 'FLOCK_ENROLMENT_KEY', 'FLOCK_ENROLMENT_KEY_FILE'].filter((name) => env[name]);
  if (sources.length === 0) return null;
  if (sources.length > 1) throw new Error(`set only one of ${sources.join(', ')}`);
  const because = 'when enrolment is on';
  let keys: EnrolmentConfig['keys'];
  if (env.FLOCK_ENROLMENT_JWKS_URL) keys = { jwksUrl: env.FLOCK_ENROLMENT_JWKS_URL };
  else if (env.FLOCK_ENROLMENT_KEY) keys = { keyText: env.FLOCK_ENROLMENT_KEY };
  else keys = { keyText: readFileSync(env.FLOCK_ENROLMENT_KEY_FILE!, 'utf8') };
  return {
    keys,
    issuer: requiredFromEnv(env, 'FLOCK_ENROLMENT_ISSUER', because),
    audience: requiredFromEnv(env, 'FLOCK_ENROLMENT_AUDIENCE', because),
    userKeySecret: resolveToken(env, dataDir, 'FLOCK_USER_KEY_SECRET', 'user-key-secret').token,
  };
}

function paceFromEnv(env: NodeJS.ProcessEnv): PaceConfig | null {
  if (!booleanFromEnv(env, 'FLOCK_PACE_STEERING', true)) return null;
  return {
    uploadsPerSecond: floatFromEnv(env, 'FLOCK_MAX_UPLOADS_PER_SECOND', DEFAULT_MAX_UPLOADS_PER_SECOND),
    uploadBytesPerSecond: floatFromEnv(env, 'FLOCK_MAX_UPLOAD_BYTES_PER_SECOND', DEFAULT_MAX_UPLOAD_BYTES_PER_SECOND),
    windowMs: intFromEnv(env, 'FLOCK_PACE_WINDOW_MS', DEFAULT_PACE_WINDOW_MS),
  };
}

/** On when FLOCK_BUSY_EVENT_LOOP_DELAY_MS is set (0 or unset: off). */
function busyFromEnv(env: NodeJS.ProcessEnv): BusyConfig | null {
  const eventLoopDelayMs = intFromEnv(env, 'FLOCK_BUSY_EVENT_LOOP_DELAY_MS', 0);
  if (eventLoopDelayMs === 0) return null;
  return { eventLoopDelayMs, retryAfterMs: intFromEnv(env, 'FLOCK_BUSY_RETRY_AFTER_MS', DEFAULT_BUSY_RETRY_AFTER_MS) };
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<FlockConfig> = {}): FlockConfig {
  const dataDir = resolve(overrides.dataDir ?? env.FLOCK_DATA_DIR ?? './data');
  mkdirSync(dataDir, { recursive: true });
  const client = overrides.clientToken
    ? { token: overrides.clientToken, source: 'configuration' }
    : resolveToken(env, dataDir, 'FLOCK_CLIENT_TOKEN', 'client-token');
  const operator = overrides.operatorToken
    ? { token: overrides.operatorToken, source: 'configuration' }
    : resolveToken(env, dataDir, 'FLOCK_OPERATOR_TOKEN', 'operator-token');
  if (client.token === operator.token) throw new Error('the client token and the operator token must differ');
  const config: FlockConfig = {
    port: intFromEnv(env, 'PORT', 8080),
    host: env.HOST ?? '0.0.0.0',
    dataDir,
    databaseUrl: env.FLOCK_DATABASE_URL || null,
    redisUrl: env.FLOCK_REDIS_URL || null,
    clientToken: client.token,
    operatorToken: operator.token,
    tokenSources: { client: client.source, operator: operator.source },
    maxUploadBytes: intFromEnv(env, 'FLOCK_MAX_UPLOAD_BYTES', DEFAULT_MAX_UPLOAD_BYTES),
    overSelection: floatFromEnv(env, 'FLOCK_OVER_SELECTION', 1.3),
    initialModelPath: env.FLOCK_INITIAL_MODEL || null,
    defaultModelTrainExamples: intFromEnv(env, 'FLOCK_DEFAULT_MODEL_EXAMPLES', 6000),
    testSet: testSetFromEnv(env),
    logLevel: env.LOG_LEVEL ?? 'info',
    proofTimeoutMs: intFromEnv(env, 'FLOCK_PROOF_TIMEOUT_MS', DEFAULT_PROOF_TIMEOUT_MS),
    enrolment: enrolmentFromEnv(env, dataDir),
    maxConnectionsPerAddress: intFromEnv(env, 'FLOCK_MAX_CONNECTIONS_PER_ADDRESS', DEFAULT_MAX_CONNECTIONS_PER_ADDRESS),
    trustProxyHops: intFromEnv(env, 'FLOCK_TRUST_PROXY', 0),
    eventLimits: eventLimitsFromEnv(env.FLOCK_EVENT_RATE_LIMITS, env.FLOCK_EVENT_ABUSE_LIMIT),
    maxExamplesPerUpdate: maxExamplesFromEnv(env),
    adaptiveExampleCap: booleanFromEnv(env, 'FLOCK_ADAPTIVE_EXAMPLE_CAP', true),
    updateBound: updateBoundFromEnv(env),
    maxSelectedPerAddress: intFromEnv(env, 'FLOCK_MAX_SELECTED_PER_ADDRESS', DEFAULT_MAX_SELECTED_PER_ADDRESS),
    maxModelChange: 0,
    pace: paceFromEnv(env),
    busy: busyFromEnv(env),
  };
  config.maxModelChange = floatFromEnv(env, 'FLOCK_MAX_MODEL_CHANGE', MODEL_CHANGE_PER_UPDATE_NORM * config.updateBound.ceiling);
  return { ...config, ...overrides, dataDir, clientToken: client.token, operatorToken: operator.token };
}

/** Nest injection token for FlockConfig. */
export const FLOCK_CONFIG = Symbol('FLOCK_CONFIG');
