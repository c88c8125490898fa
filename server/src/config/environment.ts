/**
 * The coordinator's whole environment as one zod schema: every variable it reads, its default and
 * its range. Parsing reports every problem at once, one readable line each (`NAME: what is wrong
 * (got value)`), never a value of a secret. config.ts turns the result into a FlockConfig.
 */
import { MAX_UPDATE_EXAMPLES } from '@flock/client-sdk/protocol';
import { z } from 'zod';
import { eventLimitsFromEnv } from '../boundary/event-rate-limit.js';
import { overSelectionSchema } from '../contract/rounds.js';
import { UPDATE_BOUND_MODES } from '../rounds/update-bound.js';

/** pino's levels; `silent` turns logging off. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const isLogLevel = (value: unknown): value is LogLevel => (LOG_LEVELS as readonly unknown[]).includes(value);

export const TEST_SET_NAMES = ['mnist', 'none'] as const;
export type TestSetName = (typeof TEST_SET_NAMES)[number];

/** Variables whose values are never echoed in an error (tokens, keys, URLs that may carry a password). */
const SECRET = new Set([
  'FLOCK_INFERENCE_KEYS',
  'FLOCK_SERVING_WEBHOOK_URL',
  'FLOCK_CLIENT_TOKEN',
  'FLOCK_OPERATOR_TOKEN',
  'FLOCK_USER_KEY_SECRET',
  'FLOCK_ENROLMENT_KEY',
  'FLOCK_DATABASE_URL',
  'FLOCK_REDIS_URL',
  'FLOCK_AMQP_URL',
]);

/** An empty or blank variable counts as unset (`FOO= node ...`). */
const blankAsUnset = (value: unknown): unknown => (typeof value === 'string' && value.trim() === '' ? undefined : value);
const variable = <S extends z.ZodType>(schema: S) => z.preprocess(blankAsUnset, schema);

const integer = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const positive = () => z.coerce.number().positive();
const text = () => z.string().optional();
const secret = () => z.string().min(16).optional();
const flag = () => z.enum(['true', '1', 'false', '0']).transform((value) => value === 'true' || value === '1');
const urlOf = (protocols: RegExp, example: string) => z.url({ protocol: protocols, error: `must be a URL such as ${example}` }).optional();

/** A rate-limit variable, checked by the limiter's own parser (whose messages start with the variable's name). */
const eventLimitText = (check: (value: string) => unknown) =>
  z
    .string()
    .superRefine((value, ctx) => {
      try {
        check(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message.replace(/^[A-Z_]+: /, '').replace(/, got ".*"$/, '') });
      }
    })
    .optional();

const ENROLMENT_KEY_SOURCES = ['FLOCK_ENROLMENT_JWKS_URL', 'FLOCK_ENROLMENT_KEY', 'FLOCK_ENROLMENT_KEY_FILE'] as const;

/** Defaults and ranges of every variable; README.md's configuration table documents them. */
const variables = z.object({
  PORT: variable(integer(0, 65_535).default(8080)),
  HOST: variable(z.string().default('0.0.0.0')),
  FLOCK_DATA_DIR: variable(z.string().default('./data')),
  FLOCK_DATABASE_URL: variable(urlOf(/^postgres(ql)?$/, 'postgres://user@host/db')),
  FLOCK_REDIS_URL: variable(urlOf(/^rediss?$/, 'redis://host:6379')),
  // Cluster mode (several processes, docs/ARCHITECTURE.md "Scale path").
  FLOCK_REDIS_PREFIX: variable(z.string().default('flock:')),
  FLOCK_PROCESS_TTL_MS: variable(integer(1000).default(10_000)),
  FLOCK_PARTIAL_TIMEOUT_MS: variable(integer(100).default(5_000)),
  /** Read by aggregation/kernels/wasm-module.ts at load; validated and documented here. */
  FLOCK_VECTOR_KERNEL: variable(z.enum(['auto', 'js']).default('auto')),
  FLOCK_CLIENT_TOKEN: variable(secret()),
  FLOCK_OPERATOR_TOKEN: variable(secret()),
  FLOCK_MAX_UPLOAD_BYTES: variable(integer(1).default(64 * 1024 * 1024)),
  FLOCK_OVER_SELECTION: variable(z.coerce.number().pipe(overSelectionSchema).default(1.3)),
  FLOCK_INITIAL_MODEL: variable(text()),
  FLOCK_DEFAULT_MODEL_EXAMPLES: variable(integer(1, 60_000).default(6000)),
  FLOCK_TEST_SET: variable(z.enum(TEST_SET_NAMES).default('mnist')),
  LOG_LEVEL: variable(z.enum(LOG_LEVELS).default('info')),
  FLOCK_PROOF_TIMEOUT_MS: variable(integer(1).default(10_000)),
  FLOCK_ENROLMENT_JWKS_URL: variable(urlOf(/^https?$/, 'https://issuer.example/.well-known/jwks.json')),
  FLOCK_ENROLMENT_KEY: variable(text()),
  FLOCK_ENROLMENT_KEY_FILE: variable(text()),
  FLOCK_ENROLMENT_ISSUER: variable(text()),
  FLOCK_ENROLMENT_AUDIENCE: variable(text()),
  FLOCK_USER_KEY_SECRET: variable(secret()),
  // Room for a NAT or an office behind one address, far below one process's 20,000 sockets.
  FLOCK_MAX_CONNECTIONS_PER_ADDRESS: variable(integer(0).default(128)),
  FLOCK_TRUST_PROXY: variable(integer(0, 100).default(0)),
  FLOCK_EVENT_RATE_LIMITS: variable(eventLimitText((value) => eventLimitsFromEnv(value, undefined))),
  FLOCK_EVENT_ABUSE_LIMIT: variable(eventLimitText((value) => eventLimitsFromEnv(undefined, value))),
  // Bounded influence (docs/SECURITY.md): a device's weight, its update's norm, its address's share of a round.
  FLOCK_MAX_EXAMPLES_PER_UPDATE: variable(integer(1, MAX_UPDATE_EXAMPLES).default(1000)),
  FLOCK_ADAPTIVE_EXAMPLE_CAP: variable(flag().default(true)),
  FLOCK_UPDATE_BOUND_MODE: variable(z.enum(UPDATE_BOUND_MODES).default('clip')),
  FLOCK_MAX_UPDATE_NORM: variable(positive().default(100)),
  FLOCK_UPDATE_BOUND_INITIAL: variable(positive().default(1)),
  FLOCK_UPDATE_BOUND_QUANTILE: variable(positive().lt(1).default(0.5)),
  FLOCK_MAX_SELECTED_PER_ADDRESS: variable(integer(0).default(2)),
  /** Default: 10 x FLOCK_MAX_UPDATE_NORM (config.ts). */
  FLOCK_MAX_MODEL_CHANGE: variable(positive().optional()),
  // Pace steering (bench/results/scale.md): what one coordinator process folds on this project's 2-core machine with room to spare.
  FLOCK_PACE_STEERING: variable(flag().default(true)),
  FLOCK_MAX_UPLOADS_PER_SECOND: variable(positive().default(200)),
  FLOCK_MAX_UPLOAD_BYTES_PER_SECOND: variable(positive().default(16 * 1024 * 1024)),
  FLOCK_PACE_WINDOW_MS: variable(integer(1).default(1000)),
  // Uploads over HTTP (server/src/uploads/): a listener of their own in a worker thread. Port default: PORT + 1 (0 with PORT=0).
  FLOCK_UPLOAD_PORT: variable(z.union([z.literal('off'), integer(0, 65_535)]).optional()),
  FLOCK_UPLOAD_HOST: variable(z.string().optional()),
  FLOCK_UPLOAD_URL: variable(urlOf(/^https?$/, 'https://uploads.example.com/v1/uploads')),
  FLOCK_UPLOAD_SLOTS: variable(integer(1, 1024).default(8)),
  FLOCK_UPLOAD_MIN_BYTES: variable(integer(0).default(64 * 1024)),
  FLOCK_UPLOAD_REQUEST_TIMEOUT_MS: variable(integer(1000).default(120_000)),
  // Refusing new devices while the event loop lags (0: off).
  FLOCK_BUSY_EVENT_LOOP_DELAY_MS: variable(integer(0).default(0)),
  FLOCK_BUSY_RETRY_AFTER_MS: variable(integer(1).default(30_000)),
  // Differential privacy (docs/PRIVACY.md): the δ ε is reported at, and the operator's budget (none by default).
  FLOCK_DP_DELTA: variable(positive().lt(1).default(1e-5)),
  FLOCK_DP_EPSILON_BUDGET: variable(positive().optional()),
  // Model serving (server/src/serving/): the V2 inference API, its worker threads, batching, log and monitor.
  FLOCK_INFERENCE_KEYS: variable(z.string().optional()),
  FLOCK_INFERENCE_WORKERS: variable(integer(1, 64).default(1)),
  FLOCK_INFERENCE_MAX_BATCH_SIZE: variable(integer(1, 4096).default(64)),
  FLOCK_INFERENCE_MAX_QUEUE_DELAY_MS: variable(z.coerce.number().min(0).max(1000).default(0)),
  FLOCK_INFERENCE_MAX_QUEUE: variable(integer(1).default(4096)),
  FLOCK_INFERENCE_MAX_BODY_BYTES: variable(integer(1024).default(8 * 1024 * 1024)),
  FLOCK_INFERENCE_FAST_PATH: variable(flag().default(true)),
  FLOCK_INFERENCE_LOG: variable(flag().default(true)),
  FLOCK_INFERENCE_LOG_FLUSH_MS: variable(integer(1, 60_000).default(200)),
  FLOCK_INFERENCE_LOG_RETENTION_DAYS: variable(positive().default(30)),
  FLOCK_INFERENCE_LOG_INPUTS: variable(flag().default(false)),
  FLOCK_INFERENCE_LOG_DURABLE: variable(flag().default(false)),
  FLOCK_SERVING_MIN_SAMPLES: variable(integer(1).default(200)),
  FLOCK_SERVING_PSI_THRESHOLD: variable(positive().optional()),
  FLOCK_SERVING_JS_THRESHOLD: variable(positive().optional()),
  FLOCK_SERVING_DISAGREEMENT_THRESHOLD: variable(positive().max(1).optional()),
  FLOCK_SERVING_MIN_ACCURACY: variable(positive().max(1).optional()),
  FLOCK_SERVING_ACTIONS: variable(
    z
      .string()
      .regex(/^(alert|rollback|retrain)(,(alert|rollback|retrain))*$/, 'must be a comma-separated list of alert, rollback, retrain')
      .default('alert'),
  ),
  FLOCK_SERVING_WEBHOOK_URL: variable(urlOf(/^https?$/, 'https://hooks.example/flock')),
  FLOCK_SERVING_SHADOW_FRACTION: variable(z.coerce.number().min(0).max(1).default(0)),
  // Precompute (server/src/precompute/): uploaded inputs, predicted in batches on the inference workers.
  FLOCK_PRECOMPUTE_MAX_UPLOAD_BYTES: variable(integer(1024).default(1024 * 1024 * 1024)),
  FLOCK_PRECOMPUTE_MAX_LINE_BYTES: variable(integer(64, 64 * 1024 * 1024).default(1024 * 1024)),
  FLOCK_PRECOMPUTE_BATCH_ROWS: variable(integer(1, 4096).default(256)),
  // Model-on-demand (server/src/on-demand/): the broker the coordinator announces new versions on.
  FLOCK_AMQP_URL: variable(urlOf(/^amqps?$/, 'amqp://guest:guest@127.0.0.1:5672')),
  FLOCK_AMQP_VERSIONS_EXCHANGE: variable(
    z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,200}$/, 'must be 1-200 letters, digits and . _ : -')
      .default('flock.versions'),
  ),
});

/** Every variable the coordinator reads (README.md documents each one). */
export const ENVIRONMENT_VARIABLES: readonly string[] = Object.keys(variables.shape);

export const environmentSchema = variables
  // Cross-field checks run even when a field failed, so that every problem is reported at once.
  .superRefine(
    (env, ctx) => {
      const keySources = ENROLMENT_KEY_SOURCES.filter((name) => env[name] !== undefined);
      if (keySources.length > 1) ctx.addIssue({ code: 'custom', path: [], message: `set only one of ${keySources.join(', ')}` });
      if (keySources.length === 0) return;
      for (const name of ['FLOCK_ENROLMENT_ISSUER', 'FLOCK_ENROLMENT_AUDIENCE'] as const)
        if (env[name] === undefined) ctx.addIssue({ code: 'custom', path: [name], message: `is required when enrolment is on (${keySources[0]} is set)` });
    },
    { when: () => true },
  )
  .transform(({ FLOCK_EVENT_RATE_LIMITS: limits, FLOCK_EVENT_ABUSE_LIMIT: abuse, ...rest }) => ({ ...rest, eventLimits: eventLimitsFromEnv(limits, abuse) }));
export type Environment = z.output<typeof environmentSchema>;

/** An invalid environment: every problem, one line each, for a person to read. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

/** Messages in the words an operator setting a variable would use. */
function describeIssue(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      return issue.expected === 'int' ? 'must be a whole number' : issue.expected === 'number' ? 'must be a number' : undefined;
    case 'too_small':
      if (issue.origin === 'string') return `must be at least ${issue.minimum} characters`;
      return issue.inclusive ? `must be at least ${issue.minimum}` : `must be more than ${issue.minimum}`;
    case 'too_big':
      return issue.inclusive ? `must be at most ${issue.maximum}` : `must be less than ${issue.maximum}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map(String).join(', ')}`;
    default:
      return undefined;
  }
}

/** `NAME: problem (got value)`; the value is left out for secrets and unset variables. */
function problemLine(issue: z.core.$ZodIssue, env: NodeJS.ProcessEnv): string {
  const name = issue.path.map(String).join('.');
  if (!name) return issue.message;
  const raw = env[name];
  const shown = raw === undefined || SECRET.has(name) ? '' : ` (got ${raw.length > 64 ? `${raw.slice(0, 64)}...` : raw})`;
  return `${name}: ${issue.message}${shown}`;
}

/** Reads the environment through the schema; throws ConfigError listing every problem. */
export function parseEnvironment(env: NodeJS.ProcessEnv): Environment {
  const result = environmentSchema.safeParse(env, { error: describeIssue });
  if (result.success) return result.data;
  throw new ConfigError(result.error.issues.map((issue) => problemLine(issue, env)));
}
