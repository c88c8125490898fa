/**
 * Precompute throughput: the 10,000 MNIST test images as NDJSON (`{"id": "t0", "input": [784 values in [0, 1]]}`)
 * uploaded to a coordinator process (the default 2NN, 784 -> 200 -> 200 -> 10) and precomputed, at a
 * few batch sizes (FLOCK_PRECOMPUTE_BATCH_ROWS), on SQLite (and PostgreSQL with --postgres URL).
 * Reports the job's own rows/s (lines consumed per second of running time: parsing, prediction on
 * the inference worker, the batch's transaction) and the wall time from upload to completion.
 *
 *   pnpm build && pnpm bench:precompute [--rows 10000] [--batch-rows 64,256,1024] [--postgres postgres://...] [--out bench/results/precompute.md]
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startCoordinator } from './lib/coordinator-process.js';
import { machineInfo } from './lib/measure.js';
import { mnistNdjson, precompute } from './lib/precompute-job.js';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '10000' },
    'batch-rows': { type: 'string', default: '64,256,1024' },
    postgres: { type: 'string' },
    out: { type: 'string' },
  },
});
const ROWS = Number(args.rows);
const BATCH_ROWS = args['batch-rows'].split(',').map(Number);

interface Result {
  database: string;
  batchRows: number;
  jobRowsPerSecond: number;
  wallSeconds: number;
  uploadSeconds: number;
  stored: number;
}

async function measure(body: string, database: string, batchRows: number, databaseUrl: string | undefined): Promise<Result> {
  const coordinator = await startCoordinator(
    { FLOCK_PRECOMPUTE_BATCH_ROWS: String(batchRows), FLOCK_PRECOMPUTE_MAX_UPLOAD_BYTES: String(512 * 1024 * 1024), FLOCK_DATABASE_URL: databaseUrl },
    'precompute',
  );
  try {
    const { job, wallSeconds, uploadSeconds } = await precompute(coordinator.url, 'mnist-test', body);
    return { database, batchRows, jobRowsPerSecond: job.rowsPerSecond ?? 0, wallSeconds, uploadSeconds, stored: job.rowsStored };
  } finally {
    coordinator.close();
  }
}

async function main(): Promise<void> {
  const body = await mnistNdjson(ROWS);
  const results: Result[] = [];
  const databases: [string, string | undefined][] = [['SQLite', undefined]];
  if (args.postgres) databases.push(['PostgreSQL', args.postgres]);
  for (const [database, baseUrl] of databases)
    for (const batchRows of BATCH_ROWS) {
      // A fresh schema per run: a second run on the same tables would find every key already stored.
      const url = baseUrl && `${baseUrl}${baseUrl.includes('?') ? '&' : '?'}schema=flock_bench_${randomBytes(4).toString('hex')}`;
      const result = await measure(body, database, batchRows, url);
      if (result.stored !== ROWS) throw new Error(`${database} batch ${batchRows}: stored ${result.stored} of ${ROWS} rows`);
      results.push(result);
      console.error(`${database} batch ${batchRows}: ${result.jobRowsPerSecond.toFixed(0)} rows/s (job), ${result.wallSeconds.toFixed(2)} s wall`);
    }
  const machine = machineInfo();
  const lines = [
    `# Precompute throughput`,
    '',
    `${ROWS} MNIST test images (NDJSON, ${(Buffer.byteLength(body) / 1024 / 1024).toFixed(1)} MiB), the default 2NN, one inference worker; ${machine.cpus} cores (${machine.cpuModel}), Node ${machine.node}.`,
    '',
    '| database | batch rows | rows/s (job) | wall s (upload to done) | upload s | stored |',
    '|---|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.database} | ${r.batchRows} | ${r.jobRowsPerSecond.toFixed(0)} | ${r.wallSeconds.toFixed(2)} | ${r.uploadSeconds.toFixed(2)} | ${r.stored} |`,
    ),
    '',
  ];
  const markdown = lines.join('\n');
  console.log(markdown);
  if (args.out) writeFileSync(args.out, markdown);
}

await main();
