/** Runs the `flock` CLI in-process with captured output (see runCli). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli/cli.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** The CLI's whole environment (process.env is NOT inherited, so a developer's FLOCK_* never leaks in). */
  env?: NodeJS.ProcessEnv;
  /** Default: a fresh empty directory, so no ./data/operator-token is found by accident. */
  cwd?: string;
}

export function emptyDir(prefix = 'flock-cli-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function runFlock(args: string[], options: RunOptions = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    env: options.env ?? {},
    cwd: options.cwd ?? emptyDir(),
    pollIntervalMs: 5,
    requestTimeoutMs: 5000,
  });
  return { code, stdout, stderr };
}
