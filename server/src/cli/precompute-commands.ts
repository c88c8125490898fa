/**
 * `flock precompute --dataset NAME --input FILE`: uploads a dataset (NDJSON or CSV), then follows its
 * job with a progress bar until it is done; `flock precompute jobs [id]`; `flock predictions get DATASET KEY`.
 */
import { openAsBlob, statSync } from 'node:fs';
import { extname } from 'node:path';
import cliProgress from 'cli-progress';
import { InvalidArgumentError, type Command } from 'commander';
import { PRECOMPUTE_FORMATS, type PrecomputeFormat, type PrecomputeJob, type Prediction } from '../contract/index.js';
import { formatNumber, table } from './format.js';
import { parseIntOption, parseVersion } from './option-parsers.js';
import { EXIT_FAILED, UsageError, type CliSession } from './session.js';

interface PrecomputeOptions {
  dataset: string;
  input: string;
  keyField?: string;
  format?: PrecomputeFormat;
  version?: number;
  follow?: boolean;
  wait: boolean;
}

function parseFormat(value: string): PrecomputeFormat {
  if (!(PRECOMPUTE_FORMATS as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${PRECOMPUTE_FORMATS.join(', ')}`);
  return value as PrecomputeFormat;
}

/** The format: --format, else the file's extension (.csv: csv; else ndjson). */
export function inputFormat(path: string, asked: PrecomputeFormat | undefined): PrecomputeFormat {
  return asked ?? (extname(path).toLowerCase() === '.csv' ? 'csv' : 'ndjson');
}

export function renderJob(job: PrecomputeJob): string {
  const percent = job.sourceBytes > 0 ? ((100 * job.bytesDone) / job.sourceBytes).toFixed(1) : '0';
  const lines = [
    `Job ${job.id}: ${job.status}`,
    `  dataset ${job.dataset}, model v${job.modelVersion}, ${job.format} keyed by "${job.keyField}"${job.follow ? ', follows new versions' : ''}`,
    `  ${percent}% of ${job.sourceBytes} bytes; ${job.linesDone} lines: ${job.rowsStored} stored, ${job.rowsRejected} rejected`,
    `  ${job.rowsPerSecond === null ? '-' : formatNumber(job.rowsPerSecond)} rows/s over ${(job.activeMs / 1000).toFixed(2)} s running`,
  ];
  const reasons = Object.entries(job.rejected);
  if (reasons.length > 0) lines.push(`  rejected: ${reasons.map(([reason, count]) => `${reason} ${count}`).join(', ')}`);
  for (const sample of job.rejectionSamples.slice(0, 5)) lines.push(`    line ${sample.line}: ${sample.reason} (${sample.message})`);
  if (job.error) lines.push(`  error: ${job.error}`);
  return lines.join('\n');
}

export function renderJobList(jobs: PrecomputeJob[]): string {
  if (jobs.length === 0) return 'No precompute jobs.';
  return table(
    ['Job', 'Dataset', 'Version', 'Status', 'Stored', 'Rejected', 'Rows/s', 'Created'],
    jobs.map((j) => [
      j.id,
      j.dataset,
      `v${j.modelVersion}`,
      j.status,
      j.rowsStored,
      j.rowsRejected,
      j.rowsPerSecond === null ? '-' : formatNumber(j.rowsPerSecond),
      j.createdAt,
    ]),
  );
}

export function renderPrediction(p: Prediction): string {
  return [
    `${p.dataset}/${p.key} at model v${p.modelVersion}: class ${p.topClass} (${p.confidence.toFixed(4)})`,
    `  output [${p.output.map((v) => v.toFixed(4)).join(', ')}]`,
    `  stored ${p.createdAt} by job ${p.jobId}`,
  ].join('\n');
}

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/** A bar on a terminal's stderr; elsewhere (pipes, tests) no bar: the final summary says it all. */
function progressBar(session: CliSession): cliProgress.SingleBar | null {
  if (!session.interactive) return null;
  return new cliProgress.SingleBar(
    {
      format: 'precompute [{bar}] {percentage}% | {lines} lines, {stored} stored, {rejected} rejected | {rate} rows/s',
      hideCursor: true,
      stream: process.stderr,
    },
    cliProgress.Presets.shades_classic,
  );
}

export function addPrecomputeCommands(program: Command, session: CliSession): void {
  const precompute = program
    .command('precompute')
    .description('predict a dataset ahead of time with a model version and store the predictions (then: flock predictions get)')
    .option('--dataset <name>', 'dataset name (letters, digits, ".", "_", "-")')
    .option('--input <file>', 'NDJSON lines {"id": ..., "input": [numbers]}, or CSV with a header (the key column and one column per input value)')
    .option('--key-field <name>', 'the field or column holding each row key (default: id)')
    .option('--format <format>', `input format (${PRECOMPUTE_FORMATS.join(', ')}; default: from the file extension)`, parseFormat)
    .option('--version <n>', 'model version to predict with (default: the current one)', parseVersion)
    .option('--follow', 'precompute the dataset again with every new version that commits')
    .option('--no-wait', 'return once the job is queued instead of following it')
    .action(async (options: PrecomputeOptions, command: Command) => {
      if (!options.dataset || !options.input) throw new UsageError('precompute needs --dataset <name> and --input <file>');
      let size: number;
      try {
        size = statSync(options.input).size;
      } catch (error) {
        throw new UsageError(`cannot read ${options.input} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
      }
      const ctx = session.connect(command);
      const format = inputFormat(options.input, options.format);
      const started = performance.now();
      const queued = await ctx.client.startPrecompute(options.dataset, await openAsBlob(options.input), {
        format,
        keyField: options.keyField,
        version: options.version,
        follow: options.follow,
      });
      if (!options.wait) {
        session.print(ctx, queued, () => renderJob(queued));
        return;
      }
      if (!ctx.json) session.err(`Uploaded ${size} bytes; job ${queued.id} on model v${queued.modelVersion}.`);
      const bar = ctx.json ? null : progressBar(session);
      bar?.start(queued.sourceBytes, 0, { lines: 0, stored: 0, rejected: 0, rate: '-' });
      let job = queued;
      try {
        while (job.status === 'queued' || job.status === 'running') {
          await sleep(session.pollIntervalMs);
          job = await ctx.client.precomputeJob(queued.id);
          bar?.update(job.bytesDone, {
            lines: job.linesDone,
            stored: job.rowsStored,
            rejected: job.rowsRejected,
            rate: job.rowsPerSecond === null ? '-' : Math.round(job.rowsPerSecond),
          });
        }
      } finally {
        bar?.stop();
      }
      const seconds = (performance.now() - started) / 1000;
      session.print(ctx, job, () => `${renderJob(job)}\n  ${seconds.toFixed(2)} s from upload to ${job.status}`);
      if (job.status !== 'completed') session.exitCode = EXIT_FAILED;
    });

  precompute
    .command('jobs')
    .description('precompute jobs, newest first, or one job in detail')
    .argument('[id]', 'a job id')
    .option('--dataset <name>', 'only this dataset')
    .option('--limit <n>', 'jobs at most (1-1000)', parseIntOption(1), 20)
    .action(async (id: string | undefined, options: { dataset?: string; limit: number }, command: Command) => {
      const ctx = session.connect(command);
      if (id !== undefined) {
        const job = await ctx.client.precomputeJob(id);
        session.print(ctx, job, () => renderJob(job));
        return;
      }
      const jobs = await ctx.client.precomputeJobs(options);
      session.print(ctx, jobs, () => renderJobList(jobs));
    });

  program
    .command('predictions')
    .description('read precomputed predictions')
    .command('get')
    .description('the stored prediction of a key: of the newest version that has it, or of --version')
    .argument('<dataset>', 'dataset name')
    .argument('<key>', 'row key')
    .option('--version <n>', 'model version', parseVersion)
    .action(async (dataset: string, key: string, options: { version?: number }, command: Command) => {
      const ctx = session.connect(command);
      const prediction = await ctx.client.prediction(dataset, key, options.version);
      session.print(ctx, prediction, () => renderPrediction(prediction));
    });
}
