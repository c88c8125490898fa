/** What one `flock` invocation shares between its commands: where it writes, how it finds the coordinator, its exit code. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { FlockApiClient } from './api-client.js';

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
  /** Whether stderr is a terminal (progress bars are drawn there). Default: false. */
  interactive?: boolean;
}

/** Bad invocation detected by the CLI itself (exit 2). */
export class UsageError extends Error {}

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

/** What a command works with once the global options are resolved. */
export interface CommandContext {
  client: FlockApiClient;
  url: string;
  json: boolean;
}

export class CliSession {
  readonly env: NodeJS.ProcessEnv;
  readonly pollIntervalMs: number;
  /** stderr is a terminal: progress bars may be drawn on it. */
  readonly interactive: boolean;
  /** Set by a command whose operation ran but failed (a round that did not commit under --wait). */
  exitCode = EXIT_OK;
  /** Where the operator token came from, for the hint on a 401. */
  tokenSource = '';
  readonly cwd: string;

  constructor(private readonly io: CliIO) {
    this.env = io.env ?? process.env;
    this.cwd = io.cwd ?? process.cwd();
    this.pollIntervalMs = io.pollIntervalMs ?? 1000;
    this.interactive = io.interactive ?? false;
  }

  out(text: string): void {
    this.io.stdout(text.endsWith('\n') ? text : `${text}\n`);
  }

  err(text: string): void {
    this.io.stderr(text.endsWith('\n') ? text : `${text}\n`);
  }

  /** The client for the coordinator the global options (or the environment) name. */
  connect(command: Command): CommandContext {
    const options = command.optsWithGlobals<GlobalOptions>();
    const url = resolveBaseUrl(options.url, this.env);
    const token = resolveOperatorToken(options.token, this.env, this.cwd);
    this.tokenSource = token.source;
    let client: FlockApiClient;
    try {
      client = new FlockApiClient({ baseUrl: url, token: token.token, timeoutMs: this.io.requestTimeoutMs, fetch: this.io.fetch });
    } catch (error) {
      throw new UsageError(`invalid coordinator URL "${url}": ${(error as Error).message}`);
    }
    return { client, url: client.baseUrl, json: options.json === true };
  }

  /** The raw JSON with --json, else the human rendering. */
  print(ctx: CommandContext, value: unknown, human: () => string): void {
    this.out(ctx.json ? JSON.stringify(value, null, 2) : human());
  }
}
