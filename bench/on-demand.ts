/**
 * Model-on-demand over RabbitMQ, measured from the caller: a coordinator process (the default 2NN,
 * 784 -> 200 -> 200 -> 10), event processors as their own processes (`flock processor`), and an
 * OnDemandClient in this process sending one-row MNIST test images (binary float32, 3,136 bytes)
 * with a fixed number in flight. Requests/s and latency percentiles with 1 and with 2 processors
 * sharing the queue and, in the same run, the same load on the coordinator's V2 HTTP endpoint (JSON, from autocannon,
 * inference log off), the synchronous path the broker stands in for.
 *
 *   pnpm build && pnpm bench:on-demand [--requests 5000] [--in-flight 64] [--processors 1,2] [--amqp-url amqp://...] [--profile-dir DIR]
 *
 * Needs RabbitMQ (127.0.0.1:5672, guest/guest by default). Everything shares this machine's cores.
 * `measureOnDemand` is the measurement alone, for other benchmarks to reuse against their own setup.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readMnist, MNIST_PIXELS } from '../server/src/datasets/mnist.js';
import { OnDemandClient } from '../server/src/on-demand/on-demand-client.js';
import { connectBroker } from '../server/src/on-demand/broker.js';
import { queuesOf } from '../server/src/on-demand/topology.js';
import { closedLoop, type ClosedLoopResult } from './lib/closed-loop.js';
import { OPERATOR_TOKEN, startCoordinator } from './lib/coordinator-process.js';
import { httpLoad, type HttpLoad } from './lib/http-load.js';

export interface OnDemandMeasurement extends ClosedLoopResult {
  /** Replies dropped as repeats of an answered request (at-least-once delivery). */
  duplicates: number;
  /** Mean rows per batch the replies report. */
  meanBatchSize: number;
}

/** Sends `requests` one-row requests from `rows` (round robin) with `inFlight` outstanding, through `client`. */
export async function measureOnDemand(client: OnDemandClient, rows: readonly Float32Array[], requests: number, inFlight: number): Promise<OnDemandMeasurement> {
  let batchRows = 0;
  let answered = 0;
  const duplicatesBefore = client.stats.duplicates;
  const result = await closedLoop(requests, inFlight, async (i) => {
    const row = rows[i % rows.length]!;
    const reply = await client.request(row, [1, row.length]);
    batchRows += reply.batchSize;
    answered++;
    return true;
  });
  return { ...result, duplicates: client.stats.duplicates - duplicatesBefore, meanBatchSize: answered === 0 ? 0 : batchRows / answered };
}

const INFERENCE_KEY = 'bench-inference-key-0123456789';
const CLI = resolve(import.meta.dirname, '../server/dist/cli/main.js');

export function startProcessor(coordinatorUrl: string, amqpUrl: string, queue: string, nodeArgs: string[]): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [...nodeArgs, CLI, 'processor', '--url', coordinatorUrl, '--token', OPERATOR_TOKEN, '--amqp-url', amqpUrl, '--queue', queue],
    {
      env: { ...process.env, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  return new Promise((resolveStart, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes('event processor consuming')) resolveStart(child);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`the processor exited (${code}):\n${output}`)));
  });
}

/** Removes a benchmark's request queue and its dead-letter queue and exchange. */
export async function deleteQueue(amqpUrl: string, queue: string): Promise<void> {
  const broker = await connectBroker(amqpUrl);
  const channel = await broker.createChannel();
  const names = queuesOf(queue);
  await channel.deleteQueue(names.requests);
  await channel.deleteQueue(names.deadLetters);
  await channel.deleteExchange(names.deadLetterExchange);
  await broker.close();
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      requests: { type: 'string', default: '5000' },
      'in-flight': { type: 'string', default: '64' },
      processors: { type: 'string', default: '1,2' },
      'amqp-url': { type: 'string', default: process.env.FLOCK_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672' },
      /** CPU profiles of the processors (node --cpu-prof) into this directory. */
      'profile-dir': { type: 'string' },
    },
  });
  const requests = Number(args.requests);
  const inFlight = Number(args['in-flight']);
  const amqpUrl = args['amqp-url'];
  const nodeArgs = args['profile-dir'] ? ['--cpu-prof', `--cpu-prof-dir=${args['profile-dir']}`] : [];
  const mnist = await readMnist('test', { count: 1000 });
  const rows = Array.from({ length: mnist.count }, (_, i) => mnist.images.slice(i * MNIST_PIXELS, (i + 1) * MNIST_PIXELS));
  const coordinator = await startCoordinator({ FLOCK_INFERENCE_KEYS: INFERENCE_KEY, FLOCK_INFERENCE_LOG: 'false' }, 'on-demand');
  const results: { path: string; m: OnDemandMeasurement }[] = [];
  try {
    for (const count of args.processors.split(',').map(Number)) {
      const queue = `flock.bench.${randomUUID().slice(0, 8)}`;
      const processors = await Promise.all(Array.from({ length: count }, () => startProcessor(coordinator.url, amqpUrl, queue, nodeArgs)));
      const client = await OnDemandClient.connect(amqpUrl, { queue, timeoutMs: 60_000 });
      try {
        await measureOnDemand(client, rows, Math.min(500, requests), inFlight); // warm-up
        results.push({ path: `RabbitMQ, ${count} processor${count > 1 ? 's' : ''}`, m: await measureOnDemand(client, rows, requests, inFlight) });
      } finally {
        await client.close();
        for (const child of processors) child.kill('SIGTERM');
        await deleteQueue(amqpUrl, queue);
      }
    }
    const infer: HttpLoad = {
      url: `${coordinator.url}/v2/models/global/infer`,
      method: 'POST',
      headers: { Authorization: `Bearer ${INFERENCE_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, MNIST_PIXELS], datatype: 'FP32', data: Array.from(rows[0]!) }] }),
    };
    await httpLoad(infer, Math.min(500, requests), inFlight); // warm-up
    const http = await httpLoad(infer, requests, inFlight);
    results.push({ path: 'HTTP V2 (JSON, autocannon), the coordinator', m: { ...http, duplicates: 0, meanBatchSize: NaN } });
  } finally {
    coordinator.close();
  }
  console.log(`| path | requests | in flight | requests/s | p50 ms | p99 ms | mean batch | duplicates | errors |`);
  console.log(`|---|---|---|---|---|---|---|---|---|`);
  for (const { path, m } of results) {
    console.log(
      `| ${path} | ${m.requests} | ${m.inFlight} | ${m.requestsPerSecond.toFixed(0)} | ${m.p50Ms.toFixed(1)} | ${m.p99Ms.toFixed(1)} | ${Number.isNaN(m.meanBatchSize) ? '-' : m.meanBatchSize.toFixed(1)} | ${m.duplicates} | ${m.errors} |`,
    );
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
