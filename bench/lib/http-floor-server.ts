/**
 * The floor under the inference API (bench/serving.ts): a process that answers
 * `POST /v2/models/global/infer` with nothing but the coordinator's own HTTP layer (node:http, and
 * in front of it the keep-alive connections of boundary/fast-connections.ts, as the coordinator's
 * inference route uses them), no framework, no model. It reads each request's body whole and
 * answers a fixed response of the real one's form (a 1 x 10 FP32 output, JSON). With `--parse` it also `JSON.parse`s the body, the least a server must do with a JSON
 * tensor. With `--log` it also keeps the inference log as the issue asks of every request: a
 * SHA-256 digest of the body and one record, written in batches by the coordinator's own
 * InferenceLogWriter into its own SQLite store (a fresh file). What this process answers per second
 * under the same load bounds what an inference server doing that work (and more) can answer here.
 * Prints "listening PORT".
 *
 *   node --import tsx bench/lib/http-floor-server.ts [--parse] [--log]
 */
import { hash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { takeConnections } from '../../server/src/boundary/fast-connections.js';
import { InferenceLogWriter } from '../../server/src/serving/inference-log-writer.js';
import { newRequestId } from '../../server/src/serving/request-id.js';
import { SqliteInferenceLog } from '../../server/src/storage/sqlite-inference-log.js';

const { values: args } = parseArgs({ options: { parse: { type: 'boolean', default: false }, log: { type: 'boolean', default: false } } });

/** The coordinator's default flush interval (FLOCK_INFERENCE_LOG_FLUSH_MS). */
const LOG_FLUSH_MS = 200;
const store = args.log ? new SqliteInferenceLog(join(mkdtempSync(join(tmpdir(), 'flock-floor-')), 'log.db')) : null;
await store?.init();
const writer = store ? new InferenceLogWriter(store, LOG_FLUSH_MS, { written: () => undefined, dropped: () => undefined }) : null;

const outputs = [{ name: 'output', datatype: 'FP32', shape: [1, 10], data: [0.01, 0.02, 0.9, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01] }];
let parsed = 0;

/** What the coordinator does with every request at the least: read it, log it, answer it. */
function answer(body: Buffer): string {
  if (args.parse) parsed += (JSON.parse(body.toString('utf8')) as { inputs: unknown[] }).inputs.length;
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
  return JSON.stringify({ model_name: 'global', model_version: '1', id: requestId, outputs });
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
takeConnections(server, () => ({ maxBodyBytes: 1 << 20, answer: (body) => Promise.resolve({ status: 200, headers: json, body: answer(body) }) }));
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  console.log(`listening ${typeof address === 'object' && address ? address.port : 0}`);
});
process.on('SIGTERM', () => console.error(`parsed ${parsed} inputs`));
