#!/usr/bin/env node
/**
 * `pnpm package:serverless`: builds the serverless deployment zip of one model version and checks it
 * against the platform's limits. Exit codes: 0 written, 1 failed (over a limit, a model that cannot be
 * fetched or read), 2 usage, 3 coordinator unreachable.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { ApiError, ConnectionError } from '../../cli/api-client.js';
import { parseIntOption } from '../../cli/option-parsers.js';
import { EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, resolveOperatorToken, UsageError } from '../../cli/session.js';
import type { ModelVersionSelector } from '../../contract/index.js';
import { AWS_LAMBDA_LIMITS } from './limits.js';
import { modelFromCoordinator, modelFromDataDir, modelFromFile, type PackagedModelSource } from './model-source.js';
import { buildServerlessPackage, PackageLimitError } from './package.js';

interface Options {
  coordinator?: string;
  version?: ModelVersionSelector;
  token?: string;
  dataDir?: string;
  model?: string;
  modelVersion: number;
  out: string;
  maxZippedBytes: number;
  maxUnzippedBytes: number;
}

const bytes = parseIntOption(1);

function parseSelector(value: string): ModelVersionSelector {
  if (value === 'current') return 'current';
  try {
    return parseIntOption(1)(value);
  } catch {
    throw new InvalidArgumentError(`expected a version number or "current", got "${value}"`);
  }
}

function program(): Command {
  return new Command('package:serverless')
    .description('Build the serverless deployment zip (AWS Lambda / fetch handler) of one model version.')
    .option('--coordinator <url>', "take the model from this coordinator's REST API")
    .option('--version <n>', 'with --coordinator: the version (a number or "current"); with --data-dir: the version (default: the newest)', parseSelector)
    .option('--token <token>', 'with --coordinator: a token that may read models (default: $FLOCK_OPERATOR_TOKEN, else $FLOCK_DATA_DIR/operator-token)')
    .option('--data-dir <dir>', "take the model from a coordinator's data directory (its SQLite database), e.g. ./data after `pnpm start`")
    .option('--model <model.json>', 'take the model from a TensorFlow.js model.json on disk (float32 weights)')
    .option('--model-version <n>', 'with --model: the version number the function reports', parseIntOption(1), 1)
    .option('--out <zip>', 'where the zip goes', 'dist/flock-inference.zip')
    .option('--max-zipped-bytes <n>', 'refuse a zip larger than this', bytes, AWS_LAMBDA_LIMITS.zippedBytes)
    .option('--max-unzipped-bytes <n>', 'refuse contents larger than this unzipped', bytes, AWS_LAMBDA_LIMITS.unzippedBytes)
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', '\nExit codes: 0 written, 1 failed (over a limit, model unreadable), 2 usage, 3 coordinator unreachable.');
}

async function modelOf(options: Options): Promise<PackagedModelSource> {
  const sources = [options.coordinator, options.dataDir, options.model].filter((value) => value !== undefined);
  if (sources.length !== 1) throw new UsageError('give exactly one of --coordinator, --data-dir and --model');
  if (options.coordinator !== undefined) {
    const { token } = resolveOperatorToken(options.token, process.env, process.cwd());
    return modelFromCoordinator(options.coordinator, options.version ?? 'current', token);
  }
  if (options.version === 'current') throw new UsageError('--version current needs --coordinator; leave --version out for the newest');
  if (options.dataDir !== undefined) return modelFromDataDir(options.dataDir, options.version ?? null);
  return modelFromFile(options.model!, options.modelVersion);
}

async function run(argv: string[]): Promise<number> {
  const command = program();
  await command.parseAsync(argv, { from: 'user' });
  const options = command.opts<Options>();
  const model = await modelOf(options);
  const result = await buildServerlessPackage({
    model,
    out: options.out,
    limits: { zippedBytes: options.maxZippedBytes, unzippedBytes: options.maxUnzippedBytes },
  });
  const mib = (n: number): string => `${(n / (1024 * 1024)).toFixed(2)} MiB`;
  process.stdout.write(
    `${result.path}: model version ${result.modelVersion} from ${model.source}\n` +
      `  ${mib(result.zippedBytes)} zipped (limit ${mib(options.maxZippedBytes)}), ${mib(result.unzippedBytes)} unzipped (limit ${mib(options.maxUnzippedBytes)})\n` +
      result.files.map((file) => `  ${file.name.padEnd(40)} ${String(file.bytes).padStart(10)} bytes\n`).join('') +
      '  entry point: index.handler (AWS Lambda, Node.js 20), or the `fetch` export\n',
  );
  return EXIT_OK;
}

function exitCodeOf(error: unknown): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  const say = (text: string): void => void process.stderr.write(`error: ${text}\n`);
  if (error instanceof UsageError) {
    say(error.message);
    return EXIT_USAGE;
  }
  if (error instanceof ConnectionError) {
    say(`cannot reach the coordinator at ${error.url} (${error.reason})`);
    return EXIT_UNREACHABLE;
  }
  if (error instanceof ApiError) say(`${error.message} (HTTP ${error.status} from ${error.method} ${error.path})`);
  else if (error instanceof PackageLimitError) say(`${error.message}; nothing was written`);
  else say(error instanceof Error ? error.message : String(error));
  return EXIT_FAILED;
}

process.exitCode = await run(process.argv.slice(2)).catch(exitCodeOf);
