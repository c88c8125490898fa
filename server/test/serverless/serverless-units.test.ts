/** The serverless handler's pure parts: limits, the V2 path behind a stage, API Gateway events in and results out, the bounded body reader. */
import { describe, expect, it } from 'vitest';
import { isServerlessResponse, requestFromEvent, resultFromResponse } from '../../src/serverless/aws-proxy.js';
import { readBounded } from '../../src/serverless/fetch-adapter.js';
import { AWS_LAMBDA_LIMITS, limitProblems } from '../../src/serverless/packager/limits.js';
import { v2PathOf } from '../../src/serverless/v2-router.js';

describe('package limits', () => {
  it("are AWS Lambda's: 50 MiB zipped, 250 MiB unzipped", () => {
    expect(AWS_LAMBDA_LIMITS).toEqual({ zippedBytes: 52_428_800, unzippedBytes: 262_144_000 });
  });

  it('lists every limit exceeded, none at the limit', () => {
    const limits = { zippedBytes: 100, unzippedBytes: 1000 };
    expect(limitProblems({ zippedBytes: 100, unzippedBytes: 1000 }, limits)).toEqual([]);
    expect(limitProblems({ zippedBytes: 101, unzippedBytes: 1000 }, limits)).toEqual([
      'the zip is 101 bytes (0.00 MiB), over the limit of 100 bytes (0.00 MiB) zipped',
    ]);
    expect(limitProblems({ zippedBytes: 101, unzippedBytes: 1001 }, limits)).toHaveLength(2);
  });
});

describe('v2PathOf', () => {
  it('finds /v2 behind a stage or base path, and nothing else', () => {
    expect(v2PathOf('/v2/models/global/infer')).toBe('/v2/models/global/infer');
    expect(v2PathOf('/prod/v2/health/ready')).toBe('/v2/health/ready');
    expect(v2PathOf('/prod/v2/')).toBe('/v2');
    expect(v2PathOf('/v2')).toBe('/v2');
    expect(v2PathOf('/api/status')).toBeNull();
    expect(v2PathOf('/v22/models')).toBeNull();
  });
});

describe('API Gateway events', () => {
  const v1 = {
    httpMethod: 'POST',
    path: '/v2/models/global/infer',
    headers: { Authorization: 'Bearer k', 'Content-Type': 'application/json' },
    body: '{"a":1}',
  };
  const v2 = {
    version: '2.0',
    rawPath: '/prod/v2/health/ready',
    headers: { 'user-agent': 'probe' },
    requestContext: { http: { method: 'GET' } },
    isBase64Encoded: false,
  };

  it('reads payload format 1.0 (headers in any case) and 2.0 (no body)', () => {
    const one = requestFromEvent(v1, 1024);
    expect(isServerlessResponse(one)).toBe(false);
    expect(one).toMatchObject({ method: 'POST', path: '/v2/models/global/infer', headers: { authorization: 'Bearer k', 'content-type': 'application/json' } });
    expect(Buffer.from((one as { body: Uint8Array }).body).toString()).toBe('{"a":1}');
    const two = requestFromEvent(v2, 1024);
    expect(two).toMatchObject({ method: 'GET', path: '/prod/v2/health/ready', headers: { 'user-agent': 'probe' } });
    expect((two as { body: Uint8Array }).body.byteLength).toBe(0);
  });

  it('decodes base64 bodies and refuses one over the limit before decoding it', () => {
    const bytes = Buffer.from([0, 1, 2, 250, 251, 252]);
    const decoded = requestFromEvent({ ...v1, body: bytes.toString('base64'), isBase64Encoded: true }, 1024);
    expect(Buffer.from((decoded as { body: Uint8Array }).body).equals(bytes)).toBe(true);
    const large = Buffer.alloc(4096).toString('base64');
    expect(requestFromEvent({ ...v1, body: large, isBase64Encoded: true }, 1024)).toMatchObject({ status: 413 });
    expect(requestFromEvent({ ...v1, body: 'x'.repeat(1025) }, 1024)).toMatchObject({ status: 413 });
    expect(requestFromEvent({ ...v1, body: 'x'.repeat(1024) }, 1024)).toMatchObject({ method: 'POST' });
  });

  it('answers 400 for what is not a proxy event', () => {
    for (const event of [null, 'text', { httpMethod: 'GET' }, { version: '2.0', rawPath: '/v2' }, { ...v1, headers: { a: 1 } }]) {
      const refused = requestFromEvent(event, 1024);
      expect(refused).toMatchObject({ status: 400 });
      expect(JSON.parse((refused as { body: string }).body)).toMatchObject({ error: expect.stringMatching(/^not an API Gateway proxy event/) as unknown });
    }
  });

  it('returns text bodies as they are and bytes as base64', () => {
    expect(resultFromResponse({ status: 200, headers: { a: 'b' }, body: '{}' })).toEqual({
      statusCode: 200,
      headers: { a: 'b' },
      body: '{}',
      isBase64Encoded: false,
    });
    expect(resultFromResponse({ status: 200, headers: {}, body: new Uint8Array([255, 0]) })).toEqual({
      statusCode: 200,
      headers: {},
      body: '/wA=',
      isBase64Encoded: true,
    });
  });
});

describe('readBounded', () => {
  it('reads a body up to the limit and stops past it', async () => {
    const post = (body: BodyInit, headers: Record<string, string> = {}) => new Request('https://x/', { method: 'POST', body, headers });
    expect(Buffer.from((await readBounded(post('abc'), 3))!).toString()).toBe('abc');
    expect(await readBounded(post('abcd'), 3)).toBeNull();
    expect(await readBounded(new Request('https://x/'), 3)).toEqual(new Uint8Array(0));
  });
});
