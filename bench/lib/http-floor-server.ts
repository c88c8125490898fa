/**
 * The floor under the inference API (bench/serving.ts): a process that answers
 * `POST /v2/models/global/infer` with nothing but the coordinator's own HTTP layer (node:http, and
 * in front of it the keep-alive connections of boundary/fast-connections.ts, as the coordinator's
 * inference route uses them), no framework, no model. It reads each request's body whole and
 * answers a fixed response of the real one's form (a 1 x 10 FP32 output, JSON). With `--parse` it also `JSON.parse`s the body, the least a server must do with a JSON
 * tensor. With `--log` it also keeps the inference log as the issue asks of every request: a
 * SHA-256 digest of the body and one record, written in batches by the coordinator's own
 * InferenceLogWriter into its own SQLite store (a fresh file). With `--predict URL` it predicts too,
 * as the coordinator does and with its own parts: version 1 of the coordinator at URL in one
 * inference thread (InferencePool) behind the dynamic batcher (DynamicBatcher, batches of up to 64,
 * no queue delay: the coordinator's defaults); each body's last 784 x 4 bytes are the row, and the
 * answer is its output in the binary extension under a fixed JSON header (no checks, no metrics;
 * the log record too with --log). What this process answers per second under the same load bounds what an inference
 * server doing that work (and more) can answer here. Prints "listening PORT".
 *
 *   node --import tsx bench/lib/http-floor-server.ts [--parse] [--log] [--predict URL]
 */
import { hash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { takeConnections, type FastAnswer } from '../../server/src/boundary/fast-connections.js';
import { DynamicBatcher } from '../../server/src/serving/dynamic-batcher.js';
import { InferencePool } from '../../server/src/serving/inference-pool.js';
import { InferenceLogWriter } from '../../server/src/serving/inference-log-writer.js';
import { newRequestId } from '../../server/src/serving/request-id.js';
import { SqliteInferenceLog } from '../../server/src/storage/sqlite-inference-log.js';
import { loadCoordinatorVersion } from './raw-predict.js';

const { values: args } = parseArgs({
  options: { parse: { type: 'boolean', default: false }, log: { type: 'boolean', default: false }, predict: { type: 'string' } },
});

/** The coordinator's default flush interval (FLOCK_INFERENCE_LOG_FLUSH_MS). */
const LOG_FLUSH_MS = 200;
const store = args.log ? new SqliteInferenceLog(join(mkdtempSync(join(tmpdir(), 'flock-floor-')), 'log.db')) : null;
await store?.init();
const writer = store ? new InferenceLogWriter(store, LOG_FLUSH_MS, { written: () => undefined, dropped: () => undefined }) : null;

const outputs = [{ name: 'output', datatype: 'FP32', shape: [1, 10], data: [0.01, 0.02, 0.9, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01] }];
let parsed = 0;

/** The request's log record (with --log): a fresh id, a digest of the body, one record in the writer's buffer. */
function logRequest(body: Buffer): string {
  const requestId = newRequestId();
  // Not durable (the coordinator's default): nothing waits for the commit.
  writer
    ?.add({
      requestId,
      at: new Date().toISOString(),
      modelName: 'global',
      modelVersion: 1,
      status: 'ok',
      latencyMs: 1,
      batchSize: 1,
      rows: 1,
      inputShape: [1, body.byteLength],
      inputDigest: hash('sha256', body, 'hex').slice(0, 32),
      topClass: 2,
      confidence: 0.9,
      error: null,
      input: null,
    })
    ?.catch(() => undefined);
  return requestId;
}

/** What the coordinator does with every request at the least: read it, log it, answer it. */
function answer(body: Buffer): string {
  if (args.parse) parsed += (JSON.parse(body.toString('utf8')) as { inputs: unknown[] }).inputs.length;
  return JSON.stringify({ model_name: 'global', model_version: '1', id: logRequest(body), outputs });
}

/** The 784 FP32 values at the end of a binary body, predicted in a batch: the least an inference server does per request. */
async function predictor(coordinatorUrl: string): Promise<(body: Buffer) => Promise<FastAnswer>> {
  const FEATURES = 784;
  const pool = new InferencePool(1);
  // The pool's thread does not hold the process open (serving must not): the timer does until it is loaded.
  const starting = setInterval(() => undefined, 1000);
  await pool.start();
  await loadCoordinatorVersion(pool, coordinatorUrl, 1);
  clearInterval(starting);
  const batcher = new DynamicBatcher(pool, { maxBatchSize: 64, maxQueueDelayMs: 0, maxQueue: 4096 });
  const header = Buffer.from(
    JSON.stringify({
      model_name: 'global',
      model_version: '1',
      outputs: [{ name: 'output', datatype: 'FP32', shape: [1, 10], parameters: { binary_data_size: 40 } }],
    }),
  );
  const headers = ['Content-Type', 'application/octet-stream', 'Inference-Header-Content-Length', String(header.byteLength)];
  return async (body) => {
    const row = new Float32Array(FEATURES);
    new Uint8Array(row.buffer).set(body.subarray(body.byteLength - row.byteLength));
    const [output] = (await batcher.submit(1, 1, row)).outputs;
    logRequest(body);
    return { status: 200, headers, body: Buffer.concat([header, Buffer.from(output!.buffer, output!.byteOffset, output!.byteLength)]) };
  };
}

const server = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const body = answer(Buffer.concat(chunks));
    response.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }).end(body);
  });
});
const json = ['Content-Type', 'application/json'];
const predict = args.predict === undefined ? null : await predictor(args.predict);
takeConnections(server, () => ({
  maxBodyBytes: 1 << 20,
  answer: (body) => predict?.(body) ?? Promise.resolve({ status: 200, headers: json, body: answer(body) }),
}));
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  console.log(`listening ${typeof address === 'object' && address ? address.port : 0}`);
});
process.on('SIGTERM', () => console.error(`parsed ${parsed} inputs`));
