import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { contentLength, headEnd, isHeadProblem, parseRequestHead, type RequestHead } from '../../src/boundary/request-head.js';

const head = (text: string): Buffer => Buffer.from(text, 'latin1');
const parsed = (text: string): RequestHead => {
  const result = parseRequestHead(head(text));
  if (isHeadProblem(result)) throw new Error(`refused: ${result.message}`);
  return result;
};
const problem = (text: string): string | null => {
  const result = parseRequestHead(head(text));
  return isHeadProblem(result) ? `${result.status} ${result.message}` : null;
};

describe('the strict request head (the upload listener, the inference keep-alive connections)', () => {
  it('reads the request line and the fields, names in lower case, the path without its query', () => {
    const request = parsed('PUT /v1/uploads?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization:  Bearer t.k \r\nContent-Length: 12\r\nAccept: a\r\naccept: b\r\n\r\n');
    expect(request.method).toBe('PUT');
    expect(request.version).toBe('1.1');
    expect(request.path).toBe('/v1/uploads');
    expect(Object.fromEntries(request.headers)).toEqual({ host: 'a', authorization: 'Bearer t.k', 'content-length': '12', accept: 'a, b' });
    expect(parsed('OPTIONS /v1/uploads HTTP/1.0\r\n\r\n')).toMatchObject({ method: 'OPTIONS', version: '1.0' });
  });

  it('reads Content-Length as plain decimal digits only', () => {
    const length = (value: string | null) => contentLength(parsed(`PUT / HTTP/1.1\r\n${value === null ? '' : `Content-Length: ${value}\r\n`}\r\n`));
    expect(length('12')).toBe(12);
    expect(length('0')).toBe(0);
    expect(length('999999999999999')).toBe(999999999999999);
    for (const value of [null, '', '0x20', '1e3', '-1', '+5', '1.0', '1234567890123456', '12, 12']) expect(length(value), String(value)).toBeNull();
  });

  it('finds where the body starts, or that the head is not complete yet', () => {
    const bytes = head('PUT / HTTP/1.1\r\nA: b\r\n\r\nBODY');
    expect(headEnd(bytes, bytes.length)).toBe(bytes.length - 4);
    expect(headEnd(bytes, bytes.length - 6)).toBe(-1);
    expect(headEnd(head('PUT / HTTP/1.1\nA: b\n\nBODY'), 26)).toBe(-1); // bare LFs never end a head
  });

  it('refuses what a lenient parser would have to interpret', () => {
    expect(problem('PUT /v1/uploads HTTP/1.1\r\nA: b\r\n c\r\n\r\n')).toMatch(/^400 malformed header field/); // obs-fold
    expect(problem('PUT /v1/uploads HTTP/1.1\r\nA: b\nC: d\r\n\r\n')).toMatch(/^400/); // bare LF inside
    expect(problem('PUT /v1/uploads HTTP/1.1\r\nA: b\rC: d\r\n\r\n')).toMatch(/^400/); // bare CR
    expect(problem('PUT /v1/uploads HTTP/1.1\r\nA: b\x00c\r\n\r\n')).toMatch(/^400/);
    expect(problem('PUT /v1/uploads HTTP/1.1\r\nA b: c\r\n\r\n')).toMatch(/^400/);
    expect(problem('PUT /v1/uploads HTTP/1.1\r\nA : c\r\n\r\n')).toMatch(/^400/);
    expect(problem('PUT  /v1/uploads HTTP/1.1\r\n\r\n')).toMatch(/^400 malformed request line/);
    expect(problem('PUT /v1/uploads HTTP/2.0\r\n\r\n')).toMatch(/^400 malformed request line/);
    expect(problem('PUT /v1/uploads\r\n\r\n')).toMatch(/^400 malformed request line/);
    expect(problem('PUT /v1/uploads HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n')).toBe('400 conflicting Content-Length fields');
    expect(problem('PUT /v1/uploads HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n')).toBe(
      '400 Transfer-Encoding and Content-Length together',
    );
    expect(parsed('PUT /v1/uploads HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n').headers.get('content-length')).toBe('5');
  });

  it('never throws, whatever the bytes (and never reads past them)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.uint8Array({ maxLength: 64 }), (before, field) => {
        const bytes = Buffer.concat([Buffer.from('PUT /v1/uploads HTTP/1.1\r\n'), before, Buffer.from('\r\nX: '), field, Buffer.from('\r\n\r\n')]);
        const result = parseRequestHead(bytes);
        if (!isHeadProblem(result)) expect(result.method).toBe('PUT');
      }),
      { numRuns: 500 },
    );
  });
});
