/**
 * The inference route's fast path (a node:http listener in front of express) against the express
 * route it stands in for, on one real coordinator: the canonical URL is the fast path's, the same
 * URL with a trailing slash still goes through express (helmet, body parsers, Nest guard and pipe,
 * V2 filter). Both must answer alike: statuses, `{ error }` messages, predictions, helmet's headers.
 * Express's JSON answers carry an ETag and the fast path's do not, which shows which one answered.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATOR_TOKEN, type TestCoordinator } from '../support/coordinator.js';
import { RawClient } from '../support/raw-http.js';
import { matchInferRoute, parseJsonBody } from '../../src/serving/v2-fast-path.js';
import { INFERENCE_KEY, servingReady, startServingCoordinator, tinyRows } from './serving-helpers.js';

const BODY_LIMIT = 64 * 1024;

describe('fast path routing (pure)', () => {
  const json = { 'content-type': 'application/json' };
  it('takes only the canonical POST infer routes with a JSON or binary body', () => {
    expect(matchInferRoute('POST', '/v2/models/global/infer', json)).toEqual({ name: 'global', version: null, body: 'json' });
    expect(matchInferRoute('POST', '/v2/models/global/versions/12/infer?x=1', json)).toEqual({ name: 'global', version: '12', body: 'json' });
    expect(matchInferRoute('POST', '/v2/models/global/versions/latest/infer', { 'content-type': 'application/json; charset=UTF-8' })).toMatchObject({
      version: 'latest',
    });
    expect(matchInferRoute('POST', '/v2/models/global/infer', { 'inference-header-content-length': '10' })).toMatchObject({ body: 'binary' });
    expect(matchInferRoute('POST', '/v2/models/global/infer', { 'content-type': 'application/octet-stream' })).toMatchObject({ body: 'binary' });
    // Everything else is express's.
    for (const [method, url, headers] of [
      ['GET', '/v2/models/global/infer', json],
      ['POST', '/v2/models/global/infer/', json],
      ['POST', '/V2/models/global/infer', json],
      ['POST', '/v2/models/glo%62al/infer', json],
      ['POST', '/v2/models/global/ready', json],
      ['POST', '/v2/models/global/versions/1/2/infer', json],
      ['POST', '/v2/models/global/infer', { 'content-type': 'text/plain' }],
      ['POST', '/v2/models/global/infer', {}],
      ['POST', '/v2/models/global/infer', { 'content-type': 'application/json; charset=latin1' }],
      ['POST', '/v2/models/global/infer', { ...json, 'content-encoding': 'gzip' }],
    ] as const) {
      expect(matchInferRoute(method, url, headers), `${method} ${url} ${JSON.stringify(headers)}`).toBeNull();
    }
  });

  it('parses bodies as the JSON parser does: empty is {}, only objects and arrays', () => {
    expect(parseJsonBody(Buffer.from(''))).toEqual({});
    expect(parseJsonBody(Buffer.from(' {"a": [1]} '))).toEqual({ a: [1] });
    for (const bad of ['"text"', '12', '{"a":', 'null']) expect(() => parseJsonBody(Buffer.from(bad)), bad).toThrow('request body is not valid JSON');
  });
});

describe('fast path against the express route', () => {
  let coordinator: TestCoordinator;

  beforeAll(async () => {
    coordinator = await startServingCoordinator({ maxBodyBytes: BODY_LIMIT });
    await servingReady(coordinator.url);
  }, 60_000);
  afterAll(() => coordinator?.dispose());

  const post = async (path: string, body: string | Buffer, headers: Record<string, string>) => {
    const response = await fetch(`${coordinator.url}${path}`, { method: 'POST', headers, body: typeof body === 'string' ? body : new Uint8Array(body) });
    const bytes = Buffer.from(await response.arrayBuffer());
    return { status: response.status, headers: response.headers, bytes };
  };
  const auth = { Authorization: `Bearer ${INFERENCE_KEY}`, 'Content-Type': 'application/json' };
  const input = (extra: Record<string, unknown> = {}) =>
    JSON.stringify({ id: 'same', inputs: [{ name: 'input', shape: [2, 16], datatype: 'FP32', data: tinyRows(2, 3), ...extra }] });
  const binary = (() => {
    const values = Float32Array.from(tinyRows(2, 3).flat());
    const header = Buffer.from(
      JSON.stringify({
        id: 'same',
        inputs: [{ name: 'input', shape: [2, 16], datatype: 'FP32', parameters: { binary_data_size: values.byteLength } }],
        parameters: { binary_data_output: true },
      }),
    );
    return { body: Buffer.concat([header, Buffer.from(values.buffer)]), headerLength: String(header.byteLength) };
  })();

  /** [description, path suffix after /v2/models/, body, headers] */
  const cases: [string, string, string | Buffer, Record<string, string>][] = [
    ['JSON', 'global/infer', input(), auth],
    ['pinned version', 'global/versions/1/infer', input(), auth],
    [
      'binary extension',
      'global/infer',
      binary.body,
      { ...auth, 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': binary.headerLength },
    ],
    ['bad shape', 'global/infer', input({ shape: [2, 15] }), auth],
    ['bad data', 'global/infer', input({ data: [1, 'x'] }), auth],
    ['invalid request', 'global/infer', '{"inputs": []}', auth],
    ['malformed JSON', 'global/infer', '{"inputs": [', auth],
    ['unknown model', 'resnet/infer', input(), auth],
    ['unknown version', 'global/versions/99/infer', input(), auth],
    ['malformed version', 'global/versions/latest/infer', input(), auth],
    ['no key', 'global/infer', input(), { 'Content-Type': 'application/json' }],
    ['operator token', 'global/infer', input(), { ...auth, Authorization: `Bearer ${OPERATOR_TOKEN}` }],
    ['over the body limit', 'global/infer', JSON.stringify({ padding: 'x'.repeat(BODY_LIMIT) }), auth],
  ];

  it.each(cases)('%s: the same answer from both', async (_what, suffix, body, headers) => {
    const fast = await post(`/v2/models/${suffix}`, body, headers);
    const slow = await post(`/v2/models/${suffix}/`, body, headers);
    expect(fast.headers.get('etag')).toBeNull();
    // (express's binary answers are streamed, without one)
    if (slow.headers.get('content-type')!.startsWith('application/json')) expect(slow.headers.get('etag')).not.toBeNull();
    expect(fast.status).toBe(slow.status);
    expect(fast.headers.get('content-type')).toBe(slow.headers.get('content-type'));
    expect(fast.headers.get('inference-header-content-length')).toBe(slow.headers.get('inference-header-content-length'));
    for (const name of ['x-content-type-options', 'x-frame-options', 'referrer-policy', 'strict-transport-security', 'cross-origin-opener-policy']) {
      expect(fast.headers.get(name), name).toBe(slow.headers.get(name));
      expect(fast.headers.get(name), name).not.toBeNull();
    }
    expect(fast.headers.get('x-powered-by')).toBeNull();
    // The coordinator's request id differs per request; everything else is the same bytes.
    const requestId = /"request_id":"[0-9a-f-]{36}"/;
    expect(fast.bytes.toString('latin1').replace(requestId, '')).toBe(slow.bytes.toString('latin1').replace(requestId, ''));
  });

  it('answers a keep-alive connection before node:http, and hands it to node:http at its first other request', async () => {
    const client = await RawClient.open(coordinator.url);
    try {
      const infer = `POST /v2/models/global/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${INFERENCE_KEY}\r\nContent-Type: application/octet-stream\r\nInference-Header-Content-Length: ${binary.headerLength}\r\nContent-Length: ${binary.body.length}\r\n\r\n`;
      const request = Buffer.concat([Buffer.from(infer), binary.body]);
      // Two on the layer (pipelined), the readiness check on node:http, then one more infer there.
      client.send(Buffer.concat([request, request]));
      client.send(`GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n`);
      client.send(request);
      const answers = await client.answers(4);
      expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
      for (const answer of [answers[0]!, answers[1]!, answers[3]!]) {
        expect(answer.headers['inference-header-content-length']).toBe(answers[0]!.headers['inference-header-content-length']);
        expect(answer.headers['x-content-type-options']).toBe('nosniff');
        expect(answer.headers['content-type']).toBe('application/octet-stream');
      }
      const requestId = /"request_id":"[0-9a-f-]{36}"/;
      expect(answers[1]!.body.replace(requestId, '')).toBe(answers[0]!.body.replace(requestId, ''));
      expect(answers[3]!.body.replace(requestId, '')).toBe(answers[0]!.body.replace(requestId, ''));
      expect(client.closed).toBe(false);
    } finally {
      client.socket.destroy();
    }
  });

  it('leaves a request without an accepted key to node:http before reading its body: 401, and the connection goes on', async () => {
    const client = await RawClient.open(coordinator.url);
    try {
      const infer = (key: string, body: Buffer) =>
        Buffer.concat([
          Buffer.from(
            `POST /v2/models/global/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/octet-stream\r\nInference-Header-Content-Length: ${binary.headerLength}\r\nContent-Length: ${body.length}\r\n\r\n`,
          ),
          body,
        ]);
      client.send(infer('wrong-key-0123456789abcdef', Buffer.concat([binary.body, Buffer.alloc(BODY_LIMIT - binary.body.length)])));
      client.send(infer(INFERENCE_KEY, binary.body));
      const answers = await client.answers(2);
      expect(answers.map((answer) => answer.status)).toEqual([401, 200]);
      expect(JSON.parse(answers[0]!.body)).toEqual({ error: expect.stringMatching(/inference key required/) as unknown });
    } finally {
      client.socket.destroy();
    }
  });

  it('refuses a chunked body past the limit while reading it, and closes the connection', async () => {
    const { status, body, connection } = await new Promise<{ status: number; body: string; connection: string | undefined }>((resolve, reject) => {
      const req = httpRequest(`${coordinator.url}/v2/models/global/infer`, { method: 'POST', headers: auth }, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body: text, connection: res.headers.connection }));
      });
      req.on('error', reject);
      // No Content-Length: chunked, 4 KiB at a time, well past the limit.
      const chunk = 'x'.repeat(4096);
      for (let i = 0; i < (2 * BODY_LIMIT) / chunk.length; i++) req.write(chunk);
      req.end();
    });
    expect(status).toBe(413);
    expect(JSON.parse(body)).toEqual({ error: 'request body too large' });
    expect(connection).toBe('close');
  });

  it('survives a client that leaves mid-body, and answers the next one', async () => {
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${coordinator.url}/v2/models/global/infer`, { method: 'POST', headers: { ...auth, 'Content-Length': '5000' } });
      req.on('error', () => resolve());
      req.write('{"inputs": [');
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 100);
    });
    const next = await post('/v2/models/global/infer', input(), auth);
    expect(next.status).toBe(200);
  });
});
