/**
 * The serving patterns side by side, in one run on one machine (issue 16): one coordinator process
 * (the default 2NN, 784 -> 200 -> 200 -> 10, defaults otherwise: one inference worker, dynamic
 * batching, inference log on) and, against it,
 *   - the limit: back-to-back `model.predict` in an inference worker thread, batches of 64 and of 1;
 *   - as a service: `POST /v2/models/global/infer`, one JSON row per request;
 *   - on demand: one event processor (`flock processor`, its own process) behind RabbitMQ, one
 *     binary row per request through OnDemandClient;
 *   - precompute: the MNIST rows uploaded as NDJSON and predicted into the database (rows/s of the
 *     job), then answered by key from the database (`GET /api/predictions/{dataset}/{key}`).
 * Every request path gets the same closed-loop load, `--requests` requests with `--in-flight`
 * outstanding after a warm-up: autocannon for the HTTP paths (lib/http-load.ts: bodies encoded once,
 * raw sockets), OnDemandClient for the broker (lib/closed-loop.ts). Everything shares this machine's cores: the loader,
 * the coordinator, its worker thread, the processor and RabbitMQ.
 *
 *   pnpm build && pnpm bench:serving-patterns [--requests 3000] [--in-flight 64] [--rows 5000] [--seconds 3] [--amqp-url amqp://...]
 *
 * Writes bench/results/serving-patterns.md. Needs RabbitMQ (127.0.0.1:5672, guest/guest by default).
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MNIST_PIXELS, readMnist } from '../server/src/datasets/mnist.js';
import { OnDemandClient } from '../server/src/on-demand/on-demand-client.js';
import type { ClosedLoopResult } from './lib/closed-loop.js';
import { startCoordinator } from './lib/coordinator-process.js';
import { httpLoad, type HttpLoad } from './lib/http-load.js';
import { machineInfo } from './lib/measure.js';
import { mnistNdjson, precompute } from './lib/precompute-job.js';
import { rawPredictRowsPerSecond } from './lib/raw-predict.js';
import { deleteQueue, measureOnDemand, startProcessor } from './on-demand.js';

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '3000' },
    'in-flight': { type: 'string', default: '64' },
    rows: { type: 'string', default: '5000' },
    seconds: { type: 'string', default: '3' },
    'amqp-url': { type: 'string', default: process.env.FLOCK_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672' },
  },
});
const REQUESTS = Number(args.requests);
const IN_FLIGHT = Number(args['in-flight']);
const ROWS = Number(args.rows);
const AMQP_URL = args['amqp-url'];
const INFERENCE_KEY = 'bench-inference-key-0123456789';
const DATASET = 'mnist-test';
const RAW_BATCH = 64;

interface Line {
  pattern: string;
  path: string;
  /** Rows or requests per second. */
  perSecond: number;
  unit: 'rows/s' | 'requests/s';
  load: ClosedLoopResult | null;
}

async function main(): Promise<void> {
  const mnist = await readMnist('test', { count: ROWS });
  const rows = Array.from({ length: mnist.count }, (_, i) =>
    Float32Array.from(mnist.images.subarray(i * MNIST_PIXELS, (i + 1) * MNIST_PIXELS), (v) => v / 255),
  );
  const ndjson = await mnistNdjson(ROWS);
  const coordinator = await startCoordinator(
    { FLOCK_INFERENCE_KEYS: INFERENCE_KEY, FLOCK_PRECOMPUTE_MAX_UPLOAD_BYTES: String(512 * 1024 * 1024) },
    'serving-patterns',
  );
  const lines: Line[] = [];
  const warmUp = Math.min(500, REQUESTS);
  try {
    const raw = await rawPredictRowsPerSecond(coordinator.url, rows[0]!, RAW_BATCH, Number(args.seconds));
    lines.push({ pattern: 'the limit', path: `model.predict in a worker thread, batches of ${RAW_BATCH}`, perSecond: raw.batched, unit: 'rows/s', load: null });
    lines.push({ pattern: 'the limit', path: 'model.predict in a worker thread, one row at a time', perSecond: raw.single, unit: 'rows/s', load: null });

    const infer: HttpLoad = {
      url: `${coordinator.url}/v2/models/global/infer`,
      method: 'POST',
      headers: { Authorization: `Bearer ${INFERENCE_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, MNIST_PIXELS], datatype: 'FP32', data: Array.from(rows[0]!) }] }),
    };
    await httpLoad(infer, warmUp, IN_FLIGHT);
    const service = await httpLoad(infer, REQUESTS, IN_FLIGHT);
    lines.push({
      pattern: 'as a service',
      path: 'POST /v2/models/global/infer (JSON, one row)',
      perSecond: service.requestsPerSecond,
      unit: 'requests/s',
      load: service,
    });

    const queue = `flock.bench.${randomUUID().slice(0, 8)}`;
    const processor = await startProcessor(coordinator.url, AMQP_URL, queue, []);
    const client = await OnDemandClient.connect(AMQP_URL, { queue, timeoutMs: 60_000 });
    try {
      await measureOnDemand(client, rows, warmUp, IN_FLIGHT);
      const onDemand = await measureOnDemand(client, rows, REQUESTS, IN_FLIGHT);
      lines.push({
        pattern: 'on demand',
        path: 'RabbitMQ, one processor (binary, one row)',
        perSecond: onDemand.requestsPerSecond,
        unit: 'requests/s',
        load: onDemand,
      });
    } finally {
      await client.close();
      processor.kill('SIGTERM');
      await deleteQueue(AMQP_URL, queue);
    }

    const { job, wallSeconds } = await precompute(coordinator.url, DATASET, ndjson);
    if (job.rowsStored !== ROWS) throw new Error(`precompute stored ${job.rowsStored} of ${ROWS} rows`);
    lines.push({
      pattern: 'precompute',
      path: `the job: ${ROWS} NDJSON rows predicted into SQLite (${wallSeconds.toFixed(1)} s upload to done)`,
      perSecond: job.rowsPerSecond ?? NaN,
      unit: 'rows/s',
      load: null,
    });
    // The canonical URL is answered in front of express; with a trailing slash it goes through
    // express and Nest (as every lookup did before the fast path): the two side by side.
    for (const [path, label] of [
      ['', 'fast path'],
      ['/', 'through express and Nest'],
    ] as const) {
      const lookup: HttpLoad = {
        url: coordinator.url,
        method: 'GET',
        headers: { Authorization: `Bearer ${INFERENCE_KEY}` },
        paths: Array.from({ length: ROWS }, (_, i) => `/api/predictions/${DATASET}/t${i}${path}`),
      };
      await httpLoad(lookup, warmUp, IN_FLIGHT);
      const answers = await httpLoad(lookup, REQUESTS, IN_FLIGHT);
      lines.push({
        pattern: 'precompute',
        path: `GET /api/predictions/${DATASET}/{key} (from the database, ${label})`,
        perSecond: answers.requestsPerSecond,
        unit: 'requests/s',
        load: answers,
      });
    }
  } finally {
    coordinator.close();
  }

  const limit = lines[0]!.perSecond;
  const machine = machineInfo();
  const fmt = (value: number, digits = 0): string => (Number.isFinite(value) ? value.toLocaleString('en', { maximumFractionDigits: digits }) : '–');
  const report = [
    '# Serving patterns, one run',
    '',
    `\`pnpm build && pnpm bench:serving-patterns --requests ${REQUESTS} --in-flight ${IN_FLIGHT} --rows ${ROWS}\`, ${new Date().toISOString().slice(0, 10)}: the default 2NN on one coordinator process (one inference worker, dynamic batching, inference log on), MNIST test images; each request path loaded by ${IN_FLIGHT} closed-loop lanes for ${REQUESTS} requests after a warm-up (HTTP: autocannon, one body encoded once; broker: OnDemandClient). ${machine.cpus} cores (${machine.cpuModel}), Node ${machine.node}; the loader, the coordinator, the processor and RabbitMQ share them.`,
    '',
    '| pattern | path | throughput | of the batched limit | p50 ms | p99 ms | errors |',
    '|---|---|---:|---:|---:|---:|---:|',
    ...lines.map(
      (line) =>
        `| ${line.pattern} | ${line.path} | ${fmt(line.perSecond)} ${line.unit} | ${fmt((100 * line.perSecond) / limit, 1)}% | ${line.load ? fmt(line.load.p50Ms, 1) : ''} | ${line.load ? fmt(line.load.p99Ms, 1) : ''} | ${line.load?.errors ?? ''} |`,
    ),
    '',
  ].join('\n');
  writeFileSync(join(import.meta.dirname, 'results', 'serving-patterns.md'), report);
  console.log(report);
}

await main();
