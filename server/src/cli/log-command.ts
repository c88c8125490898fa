/** `flock log`: the inference log (one record per request to the served model), newest first. */
import { InvalidArgumentError, type Command } from 'commander';
import { INFERENCE_STATUSES, type InferenceLogRecord, type InferenceStatus } from '../contract/index.js';
import { formatNumber, table } from './format.js';
import { parseIntOption, parseVersion } from './option-parsers.js';
import type { CliSession } from './session.js';

interface LogOptions {
  version?: number;
  status?: InferenceStatus;
  since?: string;
  until?: string;
  before?: number;
  limit: number;
}

function parseStatus(value: string): InferenceStatus {
  if (!(INFERENCE_STATUSES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${INFERENCE_STATUSES.join(', ')}`);
  return value as InferenceStatus;
}

function parseTime(value: string): string {
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) throw new InvalidArgumentError(`expected a date and time such as 2026-12-04T18:00:00Z, got "${value}"`);
  return time.toISOString();
}

export function renderInferenceLog(records: InferenceLogRecord[], nextBefore: number | null): string {
  if (records.length === 0) return 'No inference requests logged.';
  const rows = records.map((r) => [
    r.seq,
    r.at,
    r.requestId,
    r.modelVersion === null ? '-' : `v${r.modelVersion}`,
    r.status,
    formatNumber(r.latencyMs),
    r.batchSize,
    `[${r.inputShape.join(', ')}]`,
    r.topClass === null ? '-' : `${r.topClass} (${r.confidence === null ? '-' : r.confidence.toFixed(2)})`,
    r.label === null ? '-' : r.label,
  ]);
  const out = table(['Seq', 'Time', 'Request', 'Version', 'Status', 'Latency ms', 'Batch', 'Input', 'Top class', 'Label'], rows);
  return nextBefore === null ? out : `${out}\nMore: --before ${nextBefore}`;
}

export function addLogCommand(program: Command, session: CliSession): void {
  program
    .command('log')
    .description('inference log records (requests to the served model), newest first')
    .option('--version <n>', 'only this model version', parseVersion)
    .option('--status <status>', `only this status (${INFERENCE_STATUSES.join(', ')})`, parseStatus)
    .option('--since <time>', 'only records at or after this time', parseTime)
    .option('--until <time>', 'only records before this time', parseTime)
    .option('--before <seq>', 'continue below this record (the previous page\'s "More")', parseIntOption(1))
    .option('--limit <n>', 'records per page (1-1000)', parseIntOption(1), 20)
    .action(async (options: LogOptions, command: Command) => {
      const ctx = session.connect(command);
      const page = await ctx.client.inferenceLog(options);
      session.print(ctx, page, () => renderInferenceLog(page.records, page.nextBefore));
    });
}
