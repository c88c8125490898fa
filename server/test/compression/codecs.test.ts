import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compressDelta, storedResidual, usableResidual, RESIDUAL_MAX_AGE } from '@flock/client-sdk';
import {
  applyDownloadDelta,
  decodeInt8,
  decodeTopk,
  DeltaDecodeError,
  encodeDownloadDelta,
  encodedDeltaBytes,
  encodeInt8,
  encodeTopk,
  shapeSize,
  topkCount,
  totalValues,
} from '@flock/client-sdk/protocol';
import { topkLayout } from '../support/topk.js';
import { seeded, tensorsArbitrary as tensorsArbitraryOf } from './fixtures.js';

/** Shapes of 1-4 small tensors, and values for them. */
const tensorsArbitrary = tensorsArbitraryOf({ maxDim: 7, minRank: 0, maxRank: 3, maxAbs: 1e6 });

const flat = (tensors: readonly Float32Array[]): Float32Array => {
  const out = new Float32Array(tensors.reduce((sum, t) => sum + t.length, 0));
  let offset = 0;
  for (const tensor of tensors) {
    out.set(tensor, offset);
    offset += tensor.length;
  }
  return out;
};
const maxAbs = (values: ArrayLike<number>): number => Array.from(values).reduce((max, v) => Math.max(max, Math.abs(v)), 0);

describe('int8 codec', () => {
  it('has exactly 4 bytes per tensor plus one per value, and round to nearest is within half a scale step', () => {
    fc.assert(
      fc.property(tensorsArbitrary, ([shapes, tensors]) => {
        const bytes = encodeInt8(tensors, null);
        expect(bytes.byteLength).toBe(encodedDeltaBytes('int8', shapes));
        const decoded = decodeInt8(bytes, shapes);
        let offset = 0;
        tensors.forEach((tensor) => {
          const step = maxAbs(tensor) / 127;
          for (let i = 0; i < tensor.length; i++) {
            expect(Math.abs(decoded[offset + i]! - tensor[i]!)).toBeLessThanOrEqual(step / 2 + 1e-6 * Math.abs(tensor[i]!) + 1e-37);
          }
          offset += tensor.length;
        });
      }),
    );
  });

  it('rounds stochastically within one scale step, and without bias', () => {
    fc.assert(
      fc.property(tensorsArbitrary, fc.integer(), ([shapes, tensors], seed) => {
        const decoded = decodeInt8(encodeInt8(tensors, seeded(seed)), shapes);
        const original = flat(tensors);
        let offset = 0;
        tensors.forEach((tensor) => {
          const step = maxAbs(tensor) / 127;
          for (let i = 0; i < tensor.length; i++) expect(Math.abs(decoded[offset + i]! - original[offset + i]!)).toBeLessThanOrEqual(step * (1 + 1e-6) + 1e-37);
          offset += tensor.length;
        });
      }),
    );
    // Unbiased: the mean of many encodings of the same values converges on them (4 standard errors).
    const values = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 1.7) * (i % 5));
    const step = maxAbs(values) / 127;
    const draws = 4000;
    const sum = new Float64Array(values.length);
    const random = seeded(42);
    for (let d = 0; d < draws; d++) {
      const decoded = decodeInt8(encodeInt8([values], random), [[values.length]]);
      for (let i = 0; i < values.length; i++) sum[i] = sum[i]! + decoded[i]!;
    }
    // One draw's error is at most `step` (standard deviation at most step / 2).
    for (let i = 0; i < values.length; i++) expect(Math.abs(sum[i]! / draws - values[i]!)).toBeLessThan((4 * step) / 2 / Math.sqrt(draws));
  });

  it('refuses a payload of the wrong length for the shapes', () => {
    const shapes = [[3], [2, 2]];
    const bytes = encodeInt8([Float32Array.of(1, 2, 3), Float32Array.of(1, 2, 3, 4)], null);
    expect(() => decodeInt8(bytes.subarray(0, bytes.length - 1), shapes)).toThrow(DeltaDecodeError);
    expect(() => decodeInt8(new Uint8Array(bytes.length + 1), shapes)).toThrow(DeltaDecodeError);
  });

  it('is decodable from a Node Buffer at any byte offset (socket.io pool slices)', () => {
    const bytes = encodeInt8([Float32Array.of(0.5, -0.25, 1)], null);
    const pooled = Buffer.alloc(bytes.length + 3);
    pooled.set(bytes, 3);
    expect(Array.from(decodeInt8(pooled.subarray(3), [[3]]))).toEqual(Array.from(decodeInt8(bytes, [[3]])));
  });
});

describe('top-k codec', () => {
  it('keeps exactly topkCount values, the largest in magnitude, each sent as one of the two levels around it, and decodes to exactly what it says it sent', () => {
    fc.assert(
      fc.property(tensorsArbitrary, fc.double({ min: 0.001, max: 1, noNaN: true }), fc.integer(), ([shapes, tensors], fraction, seed) => {
        const total = totalValues(shapes);
        const selection = encodeTopk(tensors, fraction, seeded(seed));
        expect(selection.kept).toBe(topkCount(total, fraction));
        const layout = topkLayout(selection.data, shapes);
        // 37 bytes per tensor, half a byte per value, then the gaps' bits, padded to a byte.
        expect(selection.data.byteLength).toBe(37 * shapes.length + Math.ceil(selection.kept / 2) + Math.ceil(layout.gapBits / 8));
        expect(selection.data.byteLength).toBeLessThanOrEqual(encodedDeltaBytes('topk', shapes, selection.kept));
        const decoded = decodeTopk(selection.data, shapes, topkCount(total, fraction));
        expect(Array.from(decoded)).toEqual(Array.from(flat(selection.sent)));
        // Every kept value is at least as large as every dropped one.
        const input = flat(tensors);
        const positions = new Set(layout.positions);
        expect(positions.size).toBe(selection.kept);
        let smallestKept = Infinity;
        let largestDropped = 0;
        for (let i = 0; i < input.length; i++) {
          if (positions.has(i)) smallestKept = Math.min(smallestKept, Math.abs(input[i]!));
          else {
            largestDropped = Math.max(largestDropped, Math.abs(input[i]!));
            expect(decoded[i]).toBe(0);
          }
        }
        expect(smallestKept).toBeGreaterThanOrEqual(largestDropped);
        // Levels run from the tensor's smallest kept magnitude to its largest; each value keeps its
        // sign and is sent as a level with no other level between it and the value.
        let offset = 0;
        tensors.forEach((tensor, t) => {
          const levels = Array.from(layout.levels[t]!);
          const kept = layout.positions.filter((p) => p >= offset && p < offset + tensor.length).map((p) => Math.abs(input[p]!));
          if (kept.length > 0 && Math.max(...kept) > 0) {
            expect(levels[0]).toBe(Math.min(...kept));
            expect(levels[7]).toBe(Math.max(...kept));
          }
          for (let i = 0; i < tensor.length; i++) {
            if (!positions.has(offset + i)) continue;
            const value = tensor[i]!;
            const sent = decoded[offset + i]!;
            if (value !== 0 && sent !== 0) expect(Math.sign(sent)).toBe(Math.sign(value));
            expect(levels).toContain(Math.abs(sent));
            const [low, high] = [Math.min(Math.abs(value), Math.abs(sent)), Math.max(Math.abs(value), Math.abs(sent))];
            expect(levels.filter((level) => level > low && level < high)).toEqual([]);
          }
          offset += tensor.length;
        });
      }),
    );
  });

  it('rounds its kept values without bias (the mean of many encodings converges on them)', () => {
    const values = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 1.7) * ((i % 5) + 1));
    const draws = 4000;
    const sum = new Float64Array(values.length);
    const random = seeded(42);
    let levels: number[] = [];
    for (let d = 0; d < draws; d++) {
      const data = encodeTopk([values], 1, random).data;
      levels = Array.from(topkLayout(data, [[values.length]]).levels[0]!);
      const decoded = decodeTopk(data, [[values.length]], values.length);
      for (let i = 0; i < values.length; i++) sum[i] = sum[i]! + decoded[i]!;
    }
    for (let i = 0; i < values.length; i++) {
      // A draw is one of the two levels around the value: its deviation is at most their distance.
      const magnitude = Math.abs(values[i]!);
      const above = levels.find((level) => level >= magnitude)!;
      const below = [...levels].reverse().find((level) => level <= magnitude)!;
      expect(Math.abs(sum[i]! / draws - values[i]!)).toBeLessThanOrEqual((4 * (above - below)) / 2 / Math.sqrt(draws) + 1e-6);
    }
  });

  it("codes each tensor's gaps with the Rice parameter that needs the fewest bits", () => {
    const big = new Float32Array(2 ** 21);
    big[0] = 1;
    big[200] = 2;
    big[2 ** 21 - 1] = 3;
    const selection = encodeTopk([big], 3 / big.length, null);
    expect(selection.kept).toBe(3);
    const gaps = [0, 199, 2 ** 21 - 202];
    const bits = (k: number): number => gaps.reduce((sum, gap) => sum + 1 + k + Math.floor(gap / 2 ** k), 0);
    const fewest = Math.min(...Array.from({ length: 32 }, (_, k) => bits(k)));
    const layout = topkLayout(selection.data, [[big.length]]);
    expect(layout.gapBits).toBe(fewest);
    expect(layout.positions).toEqual([0, 200, 2 ** 21 - 1]);
    const decoded = decodeTopk(selection.data, [[big.length]], 3);
    // Levels 1, ..., 3 (geometric) hold 1 and 3 exactly; 2 rounds to its nearest level.
    expect(decoded[0]).toBe(1);
    expect(decoded[2 ** 21 - 1]).toBe(3);
    expect(Math.abs(decoded[200]! - 2)).toBeLessThanOrEqual(2 * (3 ** (1 / 7) - 1));
  });

  it('refuses more values than the round allows, counts, parameters and lengths that disagree, gaps out of range and bits after the last gap', () => {
    const shapes = [[4], [3]];
    const good = encodeTopk([Float32Array.of(5, 0, -6, 1), Float32Array.of(0, 7, 2)], 3 / 7, null);
    expect(good.kept).toBe(3);
    // layout: counts at 0, 4; levels at 8-71; Rice parameters at 72, 73 (both 0); codes at 74-75; gaps at 76:
    // tensor 0 gaps 0 ("0") and 1 ("10"), tensor 1 gap 1 ("10"), least significant bit first: 0b01010.
    expect(Array.from(good.data.subarray(72, 74))).toEqual([0, 0]);
    expect(Array.from(good.data.subarray(76))).toEqual([0b01010]);
    expect(Array.from(decodeTopk(good.data, shapes, 3), (v) => v !== 0)).toEqual([true, false, true, false, false, true, false]);
    const over = (() => {
      try {
        decodeTopk(good.data, shapes, 2);
      } catch (error) {
        return error;
      }
    })();
    expect(over).toBeInstanceOf(DeltaDecodeError);
    expect((over as DeltaDecodeError).reason).toBe('compression_mismatch');

    const tamper = (edit: (bytes: Uint8Array, view: DataView) => void): Uint8Array => {
      const copy = good.data.slice();
      edit(copy, new DataView(copy.buffer));
      return copy;
    };
    /** The good header and codes, then these gap bits ("0 10 10": least significant first). */
    const withGapBits = (bits: string): Uint8Array => {
      const list = bits.replace(/ /g, '');
      const copy = new Uint8Array(76 + Math.ceil(list.length / 8));
      copy.set(good.data.subarray(0, 76));
      for (let i = 0; i < list.length; i++) if (list[i] === '1') copy[76 + (i >> 3)]! |= 1 << (i & 7);
      return copy;
    };
    expect(Array.from(withGapBits('0 10 10'))).toEqual(Array.from(good.data));
    const malformed = [
      tamper((_, v) => v.setUint32(4, 4, true)), // tensor 1 counts 4 of its 3 values
      tamper((_, v) => v.setUint32(0, 0xffffffff, true)), // a huge count
      tamper((bytes) => (bytes[73] = 32)), // a Rice parameter above 31
      tamper((bytes) => (bytes[75]! |= 0x10)), // the unused half of the last code byte is not 0
      withGapBits('1110 0 10'), // tensor 0 positions 3, then 4: outside its 4 values
      withGapBits('0 10 1110'), // tensor 1 position 3 of 3 values
      good.data.subarray(0, 76), // no gaps at all (a missing last gap inside the last byte reads its zero padding: gap 0)
      Object.assign(withGapBits('0 10 0'), { 73: 8 }), // tensor 1's Rice parameter 8: its gap's 8 low bits run past the end
      withGapBits('0 10 10 001'), // a 1 in the padding
      withGapBits('0 10 10 000 00000000'), // a byte after the last gap
      Uint8Array.from([...good.data, ...new Array<number>(64).fill(0)]), // longer than the encoder can write (encodedDeltaBytes)
      good.data.subarray(0, 75), // shorter than header and codes
      good.data.subarray(0, 70), // shorter than the header
      new Uint8Array(4), // shorter than the counts
    ];
    for (const bytes of malformed) {
      let caught: unknown = null;
      try {
        decodeTopk(bytes, shapes, 3);
      } catch (error) {
        caught = error;
      }
      expect(caught, `case ${malformed.indexOf(bytes)}`).toBeInstanceOf(DeltaDecodeError);
      expect((caught as DeltaDecodeError).reason).toBe('malformed');
    }
  });

  it('decodes arbitrary bytes without throwing anything but a DeltaDecodeError (fuzz)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.array(fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 2 }), { maxLength: 4 }),
        (bytes, shapes) => {
          for (const decode of [() => decodeTopk(bytes, shapes, 50), () => decodeInt8(bytes, shapes)]) {
            try {
              const out = decode();
              expect(out.length).toBe(totalValues(shapes));
            } catch (error) {
              expect(error).toBeInstanceOf(DeltaDecodeError);
            }
          }
        },
      ),
    );
  });

  it('refuses every mutation of a valid encoding, or decodes it inside its shapes (fuzz: bit flips, truncation, extension)', () => {
    fc.assert(
      fc.property(
        tensorsArbitrary,
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: -3, max: 3 }),
        ([shapes, tensors], fraction, flips, resize) => {
          const total = totalValues(shapes);
          const bytes = encodeTopk(tensors, fraction, null).data.slice();
          for (const [at, bit] of flips) if (bytes.length > 0) bytes[at % bytes.length]! ^= 1 << bit;
          const mutated =
            resize >= 0 ? Uint8Array.from([...bytes, ...new Array<number>(resize).fill(0x7f)]) : bytes.subarray(0, Math.max(0, bytes.length + resize));
          try {
            const out = decodeTopk(mutated, shapes, topkCount(total, fraction));
            expect(out.length).toBe(total);
          } catch (error) {
            expect(error).toBeInstanceOf(DeltaDecodeError);
          }
        },
      ),
    );
  });
});

const bytesOf = (data: ArrayBuffer | Uint8Array): Uint8Array => (data instanceof Uint8Array ? data : new Uint8Array(data));

/** The flat positions a top-k encoding carries, parsed independently of the decoder. */
const keptPositions = (data: Uint8Array, shapes: number[][]): Set<number> => new Set(topkLayout(data, shapes).positions);

describe('top-k error feedback', () => {
  it('sent + new residual = delta + old residual: the residual carries what was left out and the rounding of what was sent', () => {
    fc.assert(
      fc.property(tensorsArbitrary, fc.integer(), ([shapes, tensors], seed) => {
        const random = seeded(seed);
        const old = tensors.map((t) => Float32Array.from(t, () => Math.fround((random() - 0.5) * 10)));
        const { encoded, residual } = compressDelta(tensors, shapes, { kind: 'topk', topkFraction: 0.3 }, old, random);
        expect(encoded.encoding).toBe('topk');
        const sent = decodeTopk(encoded.data, shapes, topkCount(totalValues(shapes), 0.3));
        const positions = keptPositions(bytesOf(encoded.data), shapes);
        const corrected = flat(tensors.map((t, i) => Float32Array.from(t, (v, j) => Math.fround(v + old[i]![j]!))));
        const left = flat(residual!);
        for (let i = 0; i < corrected.length; i++) {
          if (positions.has(i)) expect(left[i]).toBe(Math.fround(corrected[i]! - sent[i]!));
          else expect(left[i]).toBe(corrected[i]);
        }
      }),
    );
  });

  it('reaches every coordinate eventually: over rounds, sent values add up to the inputs minus what is still kept back', () => {
    const shapes = [[50]];
    const random = seeded(7);
    let residual: Float32Array[] | null = null;
    const totalIn = new Float64Array(50);
    const totalSent = new Float64Array(50);
    for (let round = 0; round < 200; round++) {
      const delta = [Float32Array.from({ length: 50 }, (_, i) => (i < 5 ? 1 : 0.01) * (0.5 + random()))];
      const result = compressDelta(delta, shapes, { kind: 'topk', topkFraction: 0.1 }, residual);
      residual = result.residual;
      const sent = decodeTopk(result.encoded.data, shapes, 5);
      for (let i = 0; i < 50; i++) {
        totalIn[i] = totalIn[i]! + delta[0]![i]!;
        totalSent[i] = totalSent[i]! + sent[i]!;
      }
    }
    for (let i = 0; i < 50; i++) expect(totalSent[i]! + residual![0]![i]!).toBeCloseTo(totalIn[i]!, 2);
    // The small coordinates were sent too, not starved by the five large ones.
    for (let i = 5; i < 50; i++) expect(totalSent[i]).toBeGreaterThan(0);
  });

  it('keeps a stored residual only for the same shapes and at most RESIDUAL_MAX_AGE versions back', () => {
    const specs = [{ name: 'w', shape: [2, 2], dtype: 'float32' as const }];
    const stored = storedResidual([Float32Array.of(1, 2, 3, 4)], specs, 10);
    expect(usableResidual(stored, specs, 10)?.map((t) => Array.from(t))).toEqual([[1, 2, 3, 4]]);
    expect(usableResidual(stored, specs, 10 + RESIDUAL_MAX_AGE)).not.toBeNull();
    expect(usableResidual(stored, specs, 11 + RESIDUAL_MAX_AGE)).toBeNull();
    expect(usableResidual(stored, specs, 9)).toBeNull(); // from the future: another history
    expect(usableResidual(stored, [{ name: 'w', shape: [4], dtype: 'float32' }], 10)).toBeNull();
    expect(usableResidual({ ...stored, weights: new ArrayBuffer(12) }, specs, 10)).toBeNull(); // damaged
    expect(usableResidual(null, specs, 10)).toBeNull();
  });
});

describe('download deltas', () => {
  it('rebuild the version within half an int8 step of each tensor change (plus float32 rounding)', () => {
    fc.assert(
      fc.property(tensorsArbitrary, fc.integer(), fc.double({ min: 1e-6, max: 10, noNaN: true }), ([shapes, tensors], seed, size) => {
        const random = seeded(seed);
        const base = flat(tensors);
        const current = Float32Array.from(base, (v) => v + (random() - 0.5) * size);
        const data = encodeDownloadDelta(current, base, shapes);
        expect(data.byteLength).toBe(encodedDeltaBytes('int8', shapes));
        const rebuilt = applyDownloadDelta(base, data, shapes);
        let offset = 0;
        for (const shape of shapes) {
          const n = shapeSize(shape);
          let change = 0;
          for (let i = offset; i < offset + n; i++) change = Math.max(change, Math.abs(Math.fround(current[i]! - base[i]!)));
          for (let i = offset; i < offset + n; i++) {
            const rounding = 2 ** -23 * (Math.abs(current[i]!) + Math.abs(base[i]!)) * 2;
            expect(Math.abs(rebuilt[i]! - current[i]!)).toBeLessThanOrEqual(change / 254 + rounding + 1e-37);
          }
          offset += n;
        }
      }),
    );
  });

  it('are exact where nothing changed', () => {
    const base = Float32Array.of(1, 2, 3, 4, 5, 6);
    const current = Float32Array.of(1, 2, 3, 4.5, 5, 6);
    const rebuilt = applyDownloadDelta(base, encodeDownloadDelta(current, base, [[3], [3]]), [[3], [3]]);
    expect(Array.from(rebuilt)).toEqual(Array.from(current));
  });
});
