/**
 * The floor under the inference API (bench/serving.ts): a process that answers
 * `POST /v2/models/global/infer` with nothing but node:http, no framework, no model. It reads each
 * request's body whole and answers a fixed response of the real one's form (a 1 x 10 FP32 output,
 * JSON). With `--parse` it also `JSON.parse`s the body, the least a server must do with a JSON
 * tensor. What this process answers per second under the same load is more than any JSON
 * inference server on this machine can answer. Prints "listening PORT".
 *
 *   node --import tsx bench/lib/http-floor-server.ts [--parse]
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({ options: { parse: { type: 'boolean', default: false } } });

const outputs = [{ name: 'output', datatype: 'FP32', shape: [1, 10], data: [0.01, 0.02, 0.9, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01] }];
let parsed = 0;

const server = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    if (args.parse) parsed += (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { inputs: unknown[] }).inputs.length;
    const body = JSON.stringify({ model_name: 'global', model_version: '1', id: randomUUID(), outputs });
    response.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }).end(body);
  });
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  console.log(`listening ${typeof address === 'object' && address ? address.port : 0}`);
});
process.on('SIGTERM', () => console.error(`parsed ${parsed} inputs`));
