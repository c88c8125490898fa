/** The on-demand request codec, pure: what a processor accepts, and each refusal's reason. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ON_DEMAND_CONTENT_TYPE, ON_DEMAND_HEADERS } from '../../src/contract/index.js';
import { checkShape, decodeRequest, float32Bytes, readFloat32, type IncomingRequest } from '../../src/on-demand/request-codec.js';

const MODEL_INPUT = [-1, 4];

function request(values: Float32Array, overrides: Partial<IncomingRequest['properties']> = {}, shape: unknown = [values.length / 4, 4]): IncomingRequest {
  return {
    content: float32Bytes(values),
    properties: {
      messageId: 'r-1',
      replyTo: 'amq.gen-reply',
      contentType: ON_DEMAND_CONTENT_TYPE,
      headers: { [ON_DEMAND_HEADERS.shape]: shape },
      ...overrides,
    },
  };
}

describe('decodeRequest', () => {
  it('reads the rows of a well-formed request, little-endian float32', () => {
    const values = Float32Array.from([0.5, -1, 2, 3, 4, 5, 6, 7.25]);
    const decoded = decodeRequest(request(values), MODEL_INPUT);
    expect(decoded).toMatchObject({ ok: true, requestId: 'r-1', replyTo: 'amq.gen-reply', rows: 2 });
    if (decoded.ok) expect([...decoded.input]).toEqual([...values]);
  });

  it('reads a body that starts at an odd offset of its buffer (a slice of a larger frame)', () => {
    const values = Float32Array.from([1, 2, 3, 4]);
    const frame = Buffer.concat([Buffer.from([9]), float32Bytes(values)]);
    const decoded = decodeRequest({ ...request(values), content: frame.subarray(1) }, MODEL_INPUT);
    expect(decoded.ok && [...decoded.input]).toEqual([1, 2, 3, 4]);
  });

  const row = Float32Array.from([1, 2, 3, 4]);
  const cases: [string, IncomingRequest, string, boolean][] = [
    ['no message id', request(row, { messageId: undefined }), 'missing_request_id', false],
    ['an id with spaces', request(row, { messageId: 'a b' }), 'missing_request_id', false],
    ['no reply queue', request(row, { replyTo: undefined }), 'missing_reply_to', false],
    ['JSON content', request(row, { contentType: 'application/json' }), 'bad_content_type', true],
    ['no shape header', request(row, { headers: {} }), 'bad_shape', true],
    ['a shape with a zero', request(row, {}, [0, 4]), 'bad_shape', true],
    ['a shape of text', request(row, {}, '1x4'), 'bad_shape', true],
    ['the wrong width', request(row, {}, [2, 2]), 'shape_mismatch', true],
    ['the wrong rank', request(row, {}, [1, 2, 2]), 'shape_mismatch', true],
    ['a body too short for its shape', request(row, {}, [2, 4]), 'size_mismatch', true],
    ['a NaN', request(Float32Array.from([1, Number.NaN, 3, 4])), 'non_finite', true],
    ['an infinity', request(Float32Array.from([1, 2, Number.POSITIVE_INFINITY, 4])), 'non_finite', true],
  ];
  it.each(cases)('refuses %s', (_name, message, reason, answerable) => {
    const decoded = decodeRequest(message, MODEL_INPUT);
    expect(decoded.ok).toBe(false);
    if (decoded.ok) return;
    expect(decoded.reason).toBe(reason);
    expect(decoded.message.length).toBeGreaterThan(0);
    // Whether the sender can be told: only with an id and a reply queue.
    expect(decoded.requestId !== null && decoded.replyTo !== null).toBe(answerable);
  });

  it('refuses a body over the limit before reading it', () => {
    const decoded = decodeRequest(request(new Float32Array(64), {}, [16, 4]), MODEL_INPUT, 100);
    expect(decoded).toMatchObject({ ok: false, reason: 'payload_too_large' });
  });

  it('never throws, whatever the properties hold', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.anything(),
        fc.anything(),
        fc.anything(),
        fc.anything(),
        (body, messageId, replyTo, contentType, shape) => {
          const decoded = decodeRequest(
            { content: body, properties: { messageId, replyTo, contentType, headers: { [ON_DEMAND_HEADERS.shape]: shape } } },
            MODEL_INPUT,
          );
          expect(typeof decoded.ok).toBe('boolean');
        },
      ),
    );
  });
});

describe('float32 bodies', () => {
  it('round-trips float32 values', () => {
    fc.assert(
      fc.property(fc.float32Array({ maxLength: 100 }), (values) => {
        expect(readFloat32(float32Bytes(values))).toEqual(values);
      }),
    );
  });

  it('checks a caller shape against the values it holds', () => {
    expect(checkShape([2, 3], 6)).toEqual([2, 3]);
    expect(() => checkShape([2, 3], 5)).toThrow(RangeError);
    expect(() => checkShape([], 0)).toThrow(RangeError);
  });
});
