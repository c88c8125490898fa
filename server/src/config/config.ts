import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { EventLimits } from '../boundary/event-rate-limit.js';
import type { BusyConfig } from '../boundary/busy.js';
import type { PaceConfig } from '../rounds/pace.js';
import type { UpdateBoundConfig } from '../rounds/update-bound.js';
import type { ServingAction } from '../contract/index.js';
import type { ServingConfig } from '../serving/serving-config.js';
import { ConfigError, parseEnvironment, type Environment, type LogLevel, type TestSetName } from './environment.js';

export { ConfigError, TEST_SET_NAMES, type TestSetName } from './environment.js';

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
  /** Prefix of every key and channel the processes share in Redis (FLOCK_REDIS_PREFIX). */
  redisPrefix: string;
  /** A coordinator process whose Redis heartbeat is older than this is dead (FLOCK_PROCESS_TTL_MS). */
  processTtlMs: number;
  /** How long a round's leader waits for the other processes' partial aggregates at commit (FLOCK_PARTIAL_TIMEOUT_MS). */
  partialTimeoutMs: number;
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
  logLevel: LogLevel;
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
  /**
   * The HTTP upload listener (uploads/upload-ingress.service.ts); null when off (FLOCK_UPLOAD_PORT=off,
   * and in cluster mode, where a device's upload must reach the process that holds its session).
   */
  uploads: UploadListenerConfig | null;
  /** Backpressure on arrivals: refuse new sessions with `coordinator_busy` while the event loop is slow (boundary/busy.ts); null when off (the default). */
  busy: BusyConfig | null;
  /** Differential privacy: the δ of every reported ε, and the budget rounds may not exceed (null: none). */
  privacy: { delta: number; budget: { epsilon: number; delta: number } | null };
  /** Model serving: the V2 inference API (serving/). */
  serving: ServingConfig;
  /** Model-on-demand (on-demand/): new versions are announced on `versionsExchange` of this broker; null: off. */
  onDemand: { amqpUrl: string; versionsExchange: string } | null;
  /** Precompute jobs (precompute/): input bounds and batch size. */
  precompute: PrecomputeConfig;
}

export interface PrecomputeConfig {
  /** Largest uploaded input, in bytes. */
  maxUploadBytes: number;
  /** Longest input line, in bytes; longer ones are refused as `line_too_long`. */
  maxLineBytes: number;
  /** Rows per prediction batch, and per transaction with the job's checkpoint. */
  batchRows: number;
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

const UPDATE_BOUND_LEARNING_RATE = 0.2;
const MODEL_CHANGE_PER_UPDATE_NORM = 10;

/** Reads a token from the environment, else from the data directory, else generates and stores one. */
function resolveToken(fromEnv: string | undefined, name: string, dataDir: string, file: string): { token: string; source: string } {
  if (fromEnv) return { token: fromEnv, source: `environment variable ${name}` };
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

/** FLOCK_INFERENCE_KEYS: comma-separated keys, each at least 16 characters (the coordinator's and the serverless handler's). */
export function parseInferenceKeys(text: string): string[] {
  const keys = text
    .split(',')
    .map((key) => key.trim())
    .filter((key) => key.length > 0);
  if (keys.length === 0 || keys.some((key) => key.length < 16)) throw new ConfigError(['FLOCK_INFERENCE_KEYS: every key must be at least 16 characters']);
  return keys;
}

/** Inference keys: FLOCK_INFERENCE_KEYS, else one kept in the data dir. */
function resolveInferenceKeys(fromEnv: string | undefined, dataDir: string): { keys: string[]; source: string } {
  if (fromEnv !== undefined) return { keys: parseInferenceKeys(fromEnv), source: 'environment variable FLOCK_INFERENCE_KEYS' };
  const { token, source } = resolveToken(undefined, 'FLOCK_INFERENCE_KEYS', dataDir, 'inference-key');
  return { keys: [token], source };
}

function servingFrom(env: Environment, dataDir: string): ServingConfig {
  const inference = resolveInferenceKeys(env.FLOCK_INFERENCE_KEYS, dataDir);
  return {
    inferenceKeys: inference.keys,
    inferenceKeySource: inference.source,
    workers: env.FLOCK_INFERENCE_WORKERS,
    maxBatchSize: env.FLOCK_INFERENCE_MAX_BATCH_SIZE,
    maxQueueDelayMs: env.FLOCK_INFERENCE_MAX_QUEUE_DELAY_MS,
    maxQueue: env.FLOCK_INFERENCE_MAX_QUEUE,
    maxBodyBytes: env.FLOCK_INFERENCE_MAX_BODY_BYTES,
    fastPath: env.FLOCK_INFERENCE_FAST_PATH,
    log: env.FLOCK_INFERENCE_LOG,
    logFlushMs: env.FLOCK_INFERENCE_LOG_FLUSH_MS,
    logRetentionDays: env.FLOCK_INFERENCE_LOG_RETENTION_DAYS,
    logInputs: env.FLOCK_INFERENCE_LOG_INPUTS,
    logDurable: env.FLOCK_INFERENCE_LOG_DURABLE,
    monitor: {
      minSamples: env.FLOCK_SERVING_MIN_SAMPLES,
      psiThreshold: env.FLOCK_SERVING_PSI_THRESHOLD ?? null,
      jsThreshold: env.FLOCK_SERVING_JS_THRESHOLD ?? null,
      disagreementThreshold: env.FLOCK_SERVING_DISAGREEMENT_THRESHOLD ?? null,
      minAccuracy: env.FLOCK_SERVING_MIN_ACCURACY ?? null,
      actions: [...new Set(env.FLOCK_SERVING_ACTIONS.split(','))] as ServingAction[],
      webhookUrl: env.FLOCK_SERVING_WEBHOOK_URL ?? null,
      shadowFraction: env.FLOCK_SERVING_SHADOW_FRACTION,
    },
  };
}

/** Enrolment is on when one source of verification keys is configured (the schema checked the rest). */
function enrolmentFrom(env: Environment, dataDir: string): EnrolmentConfig | null {
  let keys: EnrolmentConfig['keys'];
  if (env.FLOCK_ENROLMENT_JWKS_URL) keys = { jwksUrl: env.FLOCK_ENROLMENT_JWKS_URL };
  else if (env.FLOCK_ENROLMENT_KEY) keys = { keyText: env.FLOCK_ENROLMENT_KEY };
  else if (env.FLOCK_ENROLMENT_KEY_FILE) keys = { keyText: readOrExplain(env.FLOCK_ENROLMENT_KEY_FILE, 'FLOCK_ENROLMENT_KEY_FILE') };
  else return null;
  return {
    keys,
    issuer: env.FLOCK_ENROLMENT_ISSUER!,
    audience: env.FLOCK_ENROLMENT_AUDIENCE!,
    userKeySecret: resolveToken(env.FLOCK_USER_KEY_SECRET, 'FLOCK_USER_KEY_SECRET', dataDir, 'user-key-secret').token,
  };
}

function readOrExplain(path: string, name: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError([`${name}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`]);
  }
}

/**
 * The configuration from the environment (checked whole by environment.ts: a ConfigError lists
 * every problem) and `overrides` (tests, the simulator), which win over it.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<FlockConfig> = {}): FlockConfig {
  const parsed = parseEnvironment(env);
  const dataDir = resolve(overrides.dataDir ?? parsed.FLOCK_DATA_DIR);
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (error) {
    throw new ConfigError([`FLOCK_DATA_DIR: cannot create ${dataDir} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`]);
  }
  const client = overrides.clientToken
    ? { token: overrides.clientToken, source: 'configuration' }
    : resolveToken(parsed.FLOCK_CLIENT_TOKEN, 'FLOCK_CLIENT_TOKEN', dataDir, 'client-token');
  const operator = overrides.operatorToken
    ? { token: overrides.operatorToken, source: 'configuration' }
    : resolveToken(parsed.FLOCK_OPERATOR_TOKEN, 'FLOCK_OPERATOR_TOKEN', dataDir, 'operator-token');
  if (client.token === operator.token) throw new ConfigError(['FLOCK_CLIENT_TOKEN, FLOCK_OPERATOR_TOKEN: the client token and the operator token must differ']);
  const updateBound: UpdateBoundConfig = {
    mode: parsed.FLOCK_UPDATE_BOUND_MODE,
    ceiling: parsed.FLOCK_MAX_UPDATE_NORM,
    initial: parsed.FLOCK_UPDATE_BOUND_INITIAL,
    quantile: parsed.FLOCK_UPDATE_BOUND_QUANTILE,
    learningRate: UPDATE_BOUND_LEARNING_RATE,
  };
  const config: FlockConfig = {
    port: parsed.PORT,
    host: parsed.HOST,
    dataDir,
    databaseUrl: parsed.FLOCK_DATABASE_URL ?? null,
    redisUrl: parsed.FLOCK_REDIS_URL ?? null,
    redisPrefix: parsed.FLOCK_REDIS_PREFIX,
    processTtlMs: parsed.FLOCK_PROCESS_TTL_MS,
    partialTimeoutMs: parsed.FLOCK_PARTIAL_TIMEOUT_MS,
    clientToken: client.token,
    operatorToken: operator.token,
    tokenSources: { client: client.source, operator: operator.source },
    maxUploadBytes: parsed.FLOCK_MAX_UPLOAD_BYTES,
    overSelection: parsed.FLOCK_OVER_SELECTION,
    initialModelPath: parsed.FLOCK_INITIAL_MODEL ?? null,
    defaultModelTrainExamples: parsed.FLOCK_DEFAULT_MODEL_EXAMPLES,
    testSet: parsed.FLOCK_TEST_SET,
    logLevel: parsed.LOG_LEVEL,
    proofTimeoutMs: parsed.FLOCK_PROOF_TIMEOUT_MS,
    enrolment: enrolmentFrom(parsed, dataDir),
    maxConnectionsPerAddress: parsed.FLOCK_MAX_CONNECTIONS_PER_ADDRESS,
    trustProxyHops: parsed.FLOCK_TRUST_PROXY,
    eventLimits: parsed.eventLimits,
    maxExamplesPerUpdate: parsed.FLOCK_MAX_EXAMPLES_PER_UPDATE,
    adaptiveExampleCap: parsed.FLOCK_ADAPTIVE_EXAMPLE_CAP,
    updateBound,
    maxSelectedPerAddress: parsed.FLOCK_MAX_SELECTED_PER_ADDRESS,
    maxModelChange: parsed.FLOCK_MAX_MODEL_CHANGE ?? MODEL_CHANGE_PER_UPDATE_NORM * updateBound.ceiling,
    privacy: {
      delta: parsed.FLOCK_DP_DELTA,
      budget: parsed.FLOCK_DP_EPSILON_BUDGET === undefined ? null : { epsilon: parsed.FLOCK_DP_EPSILON_BUDGET, delta: parsed.FLOCK_DP_DELTA },
    },
    pace: parsed.FLOCK_PACE_STEERING
      ? {
          uploadsPerSecond: parsed.FLOCK_MAX_UPLOADS_PER_SECOND,
          uploadBytesPerSecond: parsed.FLOCK_MAX_UPLOAD_BYTES_PER_SECOND,
          windowMs: parsed.FLOCK_PACE_WINDOW_MS,
        }
      : null,
    uploads: null, // below: it follows the final port, host and Redis URL
    // On when FLOCK_BUSY_EVENT_LOOP_DELAY_MS is set above 0.
    busy:
      parsed.FLOCK_BUSY_EVENT_LOOP_DELAY_MS > 0
        ? { eventLoopDelayMs: parsed.FLOCK_BUSY_EVENT_LOOP_DELAY_MS, retryAfterMs: parsed.FLOCK_BUSY_RETRY_AFTER_MS }
        : null,
    serving: servingFrom(parsed, dataDir),
    precompute: {
      maxUploadBytes: parsed.FLOCK_PRECOMPUTE_MAX_UPLOAD_BYTES,
      maxLineBytes: parsed.FLOCK_PRECOMPUTE_MAX_LINE_BYTES,
      batchRows: parsed.FLOCK_PRECOMPUTE_BATCH_ROWS,
    },
    onDemand: parsed.FLOCK_AMQP_URL ? { amqpUrl: parsed.FLOCK_AMQP_URL, versionsExchange: parsed.FLOCK_AMQP_VERSIONS_EXCHANGE } : null,
  };
  const merged = { ...config, ...overrides, dataDir, clientToken: client.token, operatorToken: operator.token };
  return 'uploads' in overrides ? merged : { ...merged, uploads: uploadListenerFrom(parsed, merged) };
}

/** Nest injection token for FlockConfig. */
export const FLOCK_CONFIG = Symbol('FLOCK_CONFIG');

export interface UploadListenerConfig {
  port: number;
  host: string;
  /** Whether the operator chose the port: then a port in use stops the start instead of leaving uploads on the socket. */
  portChosen: boolean;
  /** The URL devices are told to PUT to (FLOCK_UPLOAD_URL); null: the coordinator's host at `port`. */
  publicUrl: string | null;
  slots: number;
  requestTimeoutMs: number;
  /** Rounds whose model is smaller (float32 bytes) keep uploads on the socket, where a small message costs less than a connection. */
  minBytes: number;
}

function uploadListenerFrom(
  parsed: Environment,
  { port: apiPort, host, redisUrl }: Pick<FlockConfig, 'port' | 'host' | 'redisUrl'>,
): UploadListenerConfig | null {
  const chosen = parsed.FLOCK_UPLOAD_PORT;
  if (chosen === 'off' || redisUrl) return null;
  return {
    port: chosen ?? (apiPort === 0 || apiPort === 65_535 ? 0 : apiPort + 1),
    host: parsed.FLOCK_UPLOAD_HOST ?? host,
    portChosen: chosen !== undefined,
    publicUrl: parsed.FLOCK_UPLOAD_URL ?? null,
    slots: parsed.FLOCK_UPLOAD_SLOTS,
    requestTimeoutMs: parsed.FLOCK_UPLOAD_REQUEST_TIMEOUT_MS,
    minBytes: parsed.FLOCK_UPLOAD_MIN_BYTES,
  };
}
