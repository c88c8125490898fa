import { describe, expect, it } from 'vitest';
import { decodeServerState, encodeServerState, loadServerState, ServerStateError, serverStateTag } from '../../src/aggregation/server-state.js';

const spec = { tag: 'fedadam', vectors: 2, length: 3 };

describe('server state encoding', () => {
  it('round-trips float32 vectors, with a small header', () => {
    const m = Float32Array.from([0.5, -1, 1e-8]);
    const v = Float64Array.from([0.25, 2, 3e20]);
    const bytes = encodeServerState('fedadam', [m, v]);
    // 12 fixed header bytes + "fedadam" padded to 8 + 2 × 3 × 4 data bytes
    expect(bytes.length).toBe(12 + 8 + 24);
    expect(String.fromCharCode(...bytes.subarray(0, 4))).toBe('FLKS');
    expect(serverStateTag(bytes)).toBe('fedadam');
    const [m2, v2] = decodeServerState(bytes, spec);
    expect([...m2!]).toEqual([...m]);
    expect([...v2!]).toEqual([...Float32Array.from(v)]);
  });

  it('decodes from an unaligned view (as a database driver may hand it back)', () => {
    const bytes = encodeServerState('fedadam', [Float32Array.from([1, 2, 3]), Float32Array.from([4, 5, 6])]);
    const backing = new Uint8Array(bytes.length + 3);
    backing.set(bytes, 1);
    const view = backing.subarray(1, 1 + bytes.length);
    const [m, v] = decodeServerState(view, spec);
    expect([...m!, ...v!]).toEqual([1, 2, 3, 4, 5, 6]);
    // Decoded vectors are copies: changing them does not change the stored bytes.
    m![0] = 99;
    expect([...decodeServerState(view, spec)[0]!]).toEqual([1, 2, 3]);
  });

  it('refuses state of another strategy, size, format or integrity, saying what is wrong', () => {
    const good = encodeServerState('fedadam', [new Float32Array(3), new Float32Array(3)]);
    const refuse = (bytes: Uint8Array, message: RegExp) => {
      expect(() => decodeServerState(bytes, spec)).toThrow(ServerStateError);
      expect(() => decodeServerState(bytes, spec)).toThrow(message);
    };
    refuse(encodeServerState('fedyogi', [new Float32Array(3), new Float32Array(3)]), /belongs to strategy "fedyogi", not "fedadam"/);
    refuse(encodeServerState('fedadam', [new Float32Array(4), new Float32Array(4)]), /2 vector\(s\) of 4 values; "fedadam" needs 2 of 3/);
    refuse(encodeServerState('fedadam', [new Float32Array(3)]), /1 vector\(s\) of 3 values/);
    refuse(good.subarray(0, 8), /too short/);
    refuse(good.subarray(0, good.length - 4), /header implies/);
    const badMagic = good.slice();
    badMagic[0] = 0;
    refuse(badMagic, /bad magic/);
    const badVersion = good.slice();
    badVersion[4] = 9;
    refuse(badVersion, /format version 9/);
    const nan = encodeServerState('fedadam', [Float32Array.from([0, NaN, 0]), new Float32Array(3)]);
    refuse(nan, /non-finite value at index 1/);
    expect(serverStateTag(new Uint8Array([1, 2, 3]))).toBeNull();
  });

  it('loadServerState: no state is silent, unusable state falls back with a warning', () => {
    expect(loadServerState(null, spec)).toEqual({ vectors: null, warning: null });
    const foreign = encodeServerState('fedavgm', [new Float32Array(3)]);
    const loaded = loadServerState(foreign, spec);
    expect(loaded.vectors).toBeNull();
    expect(loaded.warning).toMatch(/ignored the previous server state \(server state belongs to strategy "fedavgm", not "fedadam"\)/);
  });

  it('validates what it encodes', () => {
    expect(() => encodeServerState('', [new Float32Array(1)])).toThrow(/tag/);
    expect(() => encodeServerState('x', [])).toThrow(/1..255 vectors/);
    expect(() => encodeServerState('x', [new Float32Array(1), new Float32Array(2)])).toThrow(/differ in length/);
  });
});
