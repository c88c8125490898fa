/**
 * The `flock` operator CLI (`pnpm flock <command>`). It talks only to the coordinator's REST API,
 * through FlockApiClient. `runCli` runs one invocation in-process and returns the exit code:
 *
 *   0  success
 *   1  the operation failed (HTTP 4xx/5xx, a round that failed or was aborted under --wait)
 *   2  usage error (bad arguments or options, an invalid URL, no operator token found)
 *   3  the coordinator cannot be reached
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { isRoundFinished } from '@flock/client-sdk/protocol';
import type { ModelVersionMeta, RoundDetails, RoundRecord, StartRoundRequest } from '../contract/index.js';
import { ApiError, ConnectionError, FlockApiClient } from './api-client.js';
import { renderModel, renderModelList, renderRound, renderRoundList, renderStatus, type StatusView } from './format.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNREACHABLE = 3;

/** Where the CLI writes and what it reads; process.* by default. */
export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Environment variables (FLOCK_URL, PORT, FLOCK_OPERATOR_TOKEN, FLOCK_DATA_DIR). Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /** Directory a relative FLOCK_DATA_DIR is resolved against. Default: process.cwd(). */
  cwd?: string;
  /** Polling period of `round start --wait`. Default 1000 ms. */
  pollIntervalMs?: number;
  /** Per-request timeout. Default 30 s. */
  requestTimeoutMs?: number;
  fetch?: typeof fetch;
}


/** Bad invocation detected by the CLI itself (exit 2). */
class UsageError extends Error {}

interface GlobalOptions {
  url?: string;
  token?: string;
  json?: boolean;
}

export interface ResolvedToken {
  token: string;
  /** Where it came from, safe to print (never the token itself). */
  source: string;
}

/** `--token`, else FLOCK_OPERATOR_TOKEN, else `${FLOCK_DATA_DIR ?? './data'}/operator-token`. */
export function resolveOperatorToken(flag: string | undefined, env: NodeJS.ProcessEnv, cwd: string): ResolvedToken {
  if (flag !== undefined) {
    if (flag.trim().length === 0) throw new UsageError('--token is empty');
    return { token: flag.trim(), source: 'the --token option' };
  }
  const fromEnv = env.FLOCK_OPERATOR_TOKEN?.trim();
  if (fromEnv) return { token: fromEnv, source: 'FLOCK_OPERATOR_TOKEN' };
  const path = resolve(cwd, env.FLOCK_DATA_DIR || './data', 'operator-token');
  let stored: string;
  try {
    stored = readFileSync(path, 'utf8').trim();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(
      `no operator token found: pass --token, set FLOCK_OPERATOR_TOKEN, or run where the coordinator keeps its data ` +
        `(it writes the token to ${path} on first start; set FLOCK_DATA_DIR if its data directory is elsewhere)` +
        (code && code !== 'ENOENT' ? ` [reading ${path} failed: ${code}]` : ''),
    );
  }
  if (stored.length === 0) throw new UsageError(`the operator token file ${path} is empty`);
  return { token: stored, source: path };
}

export function resolveBaseUrl(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag ?? (env.FLOCK_URL || `http://localhost:${env.PORT || 8080}`);
}

function parseIntOption(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}, got "${value}"`);
    return n;
  };
}

function parseNumberOption(options: { positive: boolean }) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0 || (options.positive && n === 0)) {
      throw new InvalidArgumentError(`expected a ${options.positive ? 'positive' : 'non-negative'} number, got "${value}"`);
    }
    return n;
  };
}

/** A JSON object (strategy options); the coordinator validates its keys and values. */
function parseJsonObjectOption(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`expected a JSON object, got "${value}" (${(error as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidArgumentError(`expected a JSON object, got "${value}"`);
  return parsed as Record<string, unknown>;
}

const parseVersion = parseIntOption(1);

interface Context {
  client: FlockApiClient;
  url: string;
  json: boolean;
}

export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  const env = io.env ?? process.env;
  const cwd = io.cwd ?? process.cwd();
  const pollIntervalMs = io.pollIntervalMs ?? 1000;
  const out = (text: string): void => io.stdout(text.endsWith('\n') ? text : `${text}\n`);
  const err = (text: string): void => io.stderr(text.endsWith('\n') ? text : `${text}\n`);
  let exitCode = EXIT_OK;
  let tokenSource = '';

  function context(command: Command): Context {
    const options = command.optsWithGlobals<GlobalOptions>();
    const url = resolveBaseUrl(options.url, env);
    const token = resolveOperatorToken(options.token, env, cwd);
    tokenSource = token.source;
    let client: FlockApiClient;
    try {
      client = new FlockApiClient({ baseUrl: url, token: token.token, timeoutMs: io.requestTimeoutMs, fetch: io.fetch });
    } catch (error) {
      throw new UsageError(`invalid coordinator URL "${url}": ${(error as Error).message}`);
    }
    return { client, url: client.baseUrl, json: options.json === true };
  }

  function print(ctx: Context, value: unknown, human: () => string): void {
    out(ctx.json ? JSON.stringify(value, null, 2) : human());
  }

  const program = new Command('flock')
    .description('Operate a Flock coordinator through its REST API.')
    .option('--url <url>', 'coordinator base URL (default: $FLOCK_URL, else http://localhost:$PORT, PORT defaulting to 8080)')
    .option('--token <token>', 'operator token (default: $FLOCK_OPERATOR_TOKEN, else the file $FLOCK_DATA_DIR/operator-token, FLOCK_DATA_DIR defaulting to ./data)')
    .option('--json', 'print the raw JSON responses instead of tables')
    .exitOverride()
    .configureOutput({ writeOut: (text) => io.stdout(text), writeErr: (text) => io.stderr(text) })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 operation failed, 2 usage error (or no operator token), 3 coordinator unreachable.',
    );

  program
    .command('status')
    .description('coordinator URL, current model version and its test accuracy, clients, active round')
    .action(async (_options: unknown, command: Command) => {
      const ctx = context(command);
      const health = await ctx.client.health();
      let model: ModelVersionMeta | null = null;
      try {
        model = await ctx.client.currentModel();
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) throw error;
      }
      const [latestRound = null] = await ctx.client.listRounds({ limit: 1 });
      const view: StatusView = { url: ctx.url, health, model, latestRound };
      print(ctx, view, () => renderStatus(view));
    });

  const round = program.command('round').description('start, list, inspect and cancel training rounds');

  round
    .command('start')
    .description('start a round (parameters left out take the coordinator defaults)')
    .option('--min-clients <n>', 'valid updates needed to commit', parseIntOption(1))
    .option('--target-clients <n>', 'updates wanted', parseIntOption(1))
    .option('--over-selection <x>', 'selection factor over the target (e.g. 1.3)', parseNumberOption({ positive: true }))
    .option('--selection-timeout <seconds>', 'how long to wait for enough eligible devices', parseNumberOption({ positive: true }))
    .option('--deadline <seconds>', 'reporting deadline, from configuration', parseNumberOption({ positive: true }))
    .option('--epochs <n>', 'local epochs', parseIntOption(1))
    .option('--batch-size <n>', 'local batch size', parseIntOption(1))
    .option('--learning-rate <x>', 'local SGD learning rate', parseNumberOption({ positive: true }))
    .option('--proximal-mu <x>', 'FedProx proximal term (0 = plain SGD)', parseNumberOption({ positive: false }))
    .option('--strategy <name>', 'aggregation strategy, e.g. fedavg, fedyogi, krum (docs/STRATEGIES.md)')
    .option('--strategy-options <json>', 'strategy options as a JSON object, e.g. \'{"serverLearningRate":0.03}\'', parseJsonObjectOption)
    .option('--max-update-norm <x>', 'reject updates whose L2 norm is above this', parseNumberOption({ positive: true }))
    .option('--wait', 'poll the round every second until it ends; exit 1 if it failed or was aborted')
    .action(async (options: Record<string, unknown>, command: Command) => {
      const ctx = context(command);
      const body: StartRoundRequest = {};
      const mapping: [string, keyof StartRoundRequest][] = [
        ['minClients', 'minClients'],
        ['targetClients', 'targetClients'],
        ['overSelection', 'overSelection'],
        ['selectionTimeout', 'selectionTimeoutSeconds'],
        ['deadline', 'deadlineSeconds'],
        ['epochs', 'epochs'],
        ['batchSize', 'batchSize'],
        ['learningRate', 'learningRate'],
        ['proximalMu', 'proximalMu'],
        ['strategy', 'strategy'],
        ['strategyOptions', 'strategyOptions'],
        ['maxUpdateNorm', 'maxUpdateNorm'],
      ];
      for (const [option, field] of mapping) {
        if (options[option] !== undefined) (body as Record<string, unknown>)[field] = options[option];
      }
      const started = await ctx.client.startRound(body);
      if (options.wait !== true) {
        print(ctx, started, () => `Started round ${started.id} (${started.status}).\n${renderRound(started)}\nFollow it with: pnpm flock round show ${started.id}`);
        return;
      }
      err(`Started round ${started.id} (${started.status}); waiting for it to end...`);
      let current: RoundRecord | RoundDetails = started;
      while (!isRoundFinished(current.status)) {
        await new Promise((done) => setTimeout(done, pollIntervalMs));
        const next: RoundDetails = await ctx.client.getRound(started.id);
        if (next.status !== current.status) {
          const progress = `${next.metrics.reported}/${next.metrics.selected} reported, ${next.metrics.accepted} accepted`;
          err(`round ${started.id}: ${current.status} -> ${next.status} (${progress})`);
        }
        current = next;
      }
      const finished = current;
      print(ctx, finished, () => renderRound(finished));
      if (finished.status !== 'committed') {
        err(`error: round ${finished.id} ${finished.status}${finished.error ? `: ${finished.error}` : ''}`);
        exitCode = EXIT_FAILED;
      } else if (!ctx.json) {
        out(`Round ${finished.id} committed model v${finished.committedVersion}.`);
      }
    });

  round
    .command('list')
    .description('recent rounds, newest first')
    .option('--limit <n>', 'how many rounds', parseIntOption(1), 20)
    .option('--offset <n>', 'skip this many of the newest rounds', parseIntOption(0))
    .action(async (options: { limit: number; offset?: number }, command: Command) => {
      const ctx = context(command);
      const rounds = await ctx.client.listRounds({ limit: options.limit, offset: options.offset });
      print(ctx, rounds, () => renderRoundList(rounds));
    });

  round
    .command('show')
    .description('details of one round: parameters, rejected by reason, dropped, transitions')
    .argument('<id>', 'round id')
    .action(async (id: string, _options: unknown, command: Command) => {
      const ctx = context(command);
      const details = await ctx.client.getRound(id);
      print(ctx, details, () => renderRound(details));
    });

  round
    .command('cancel')
    .description('abort a round in flight')
    .argument('<id>', 'round id')
    .action(async (id: string, _options: unknown, command: Command) => {
      const ctx = context(command);
      const cancelled = await ctx.client.cancelRound(id);
      print(ctx, cancelled, () => `Round ${cancelled.id} is now ${cancelled.status}.\n${renderRound(cancelled)}`);
    });

  const model = program.command('model').description('list, inspect and roll back global model versions');

  model
    .command('list')
    .description('model versions, newest (current) first')
    .action(async (_options: unknown, command: Command) => {
      const ctx = context(command);
      const models = await ctx.client.listModels();
      print(ctx, models, () => renderModelList(models));
    });

  model
    .command('show')
    .description('metadata and metrics of one version')
    .argument('<version>', 'model version number', parseVersion)
    .action(async (version: number, _options: unknown, command: Command) => {
      const ctx = context(command);
      const meta = await ctx.client.getModel(version);
      print(ctx, meta, () => renderModel(meta));
    });

  model
    .command('rollback')
    .description('make an older version current again (recorded as a new version)')
    .argument('<version>', 'model version number to restore', parseVersion)
    .action(async (version: number, _options: unknown, command: Command) => {
      const ctx = context(command);
      const meta = await ctx.client.rollbackModel(version);
      print(ctx, meta, () => `Rolled back to v${version}: the current version is now v${meta.version}.\n${renderModel(meta)}`);
    });

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed the message (or the help). Help and --version exit 0.
      return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (error instanceof UsageError) {
      err(`error: ${error.message}`);
      return EXIT_USAGE;
    }
    if (error instanceof ConnectionError) {
      err(
        `error: cannot reach the coordinator at ${error.url} (${error.reason}).\n` +
          'Is it running? Start it with `pnpm start`, or point --url / FLOCK_URL at it.',
      );
      return EXIT_UNREACHABLE;
    }
    if (error instanceof ApiError) {
      err(`error: ${error.message} (HTTP ${error.status} from ${error.method} ${error.path})`);
      if (error.status === 401 || error.status === 403) {
        err(`The coordinator refused the operator token from ${tokenSource}. Check that it matches the coordinator's.`);
      }
      return EXIT_FAILED;
    }
    err(`error: ${error instanceof Error ? error.message : String(error)}`);
    return EXIT_FAILED;
  }
}
