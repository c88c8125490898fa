/**
 * The wasm SIMD kernels (vector-kernels.wat) against the pure-JS ones (js-kernels.ts): same results
 * to the bit, for any values (NaN, ±Infinity, float32 extremes, subnormals) and any length (the
 * SIMD loops take 8 values at a time, the tails one by one). The JS kernels are checked against
 * the plain definitions.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeInt8, parseInt8 } from '@flock/client-sdk/protocol';
import { FedAvg, WeightedMeanAccumulator } from '../../src/aggregation/fedavg.js';
import { createFloat64Accumulator, defaultKernel, type ReceiveArea } from '../../src/aggregation/kernels/float64-accumulator.js';
import { jsAddScaled, jsSumOfSquares } from '../../src/aggregation/kernels/js-kernels.js';
import { createStrategy } from '../../src/aggregation/strategies.js';
import { scaledDelta, type RoundAggregator } from '../../src/aggregation/strategy.js';

const F32_MAX = 3.4028234663852886e38;

/** Float32 values weighted towards the awkward ones. */
const float32Value = fc.oneof(
  { weight: 6, arbitrary: fc.float({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 1, arbitrary: fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, F32_MAX, -F32_MAX, 1.401298464324817e-45, -0) },
);
const finiteFloat32Value = fc.float({ noNaN: true, noDefaultInfinity: true });
const vector = (values: fc.Arbitrary<number>) => fc.array(values, { maxLength: 70 }).map((list) => Float32Array.from(list));

/** Equal as float64 values, NaN equal to NaN (wasm does not promise NaN payloads or signs). */
function sameValue(a: number, b: number): boolean {
  return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
}

function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!sameValue(a[i]!, b[i]!)) return false;
  return true;
}

describe('vector kernels: wasm SIMD and JS', () => {
  it('loads the wasm SIMD kernel on this Node (built by pnpm build)', () => {
    expect(defaultKernel()).toEqual({ kernel: 'wasm-simd', reason: null });
    expect(createFloat64Accumulator(3).kernel).toBe('wasm-simd');
  });

  it('compute bit-identical sums of squares, NaN or Infinity exactly for non-finite input', () => {
    fc.assert(
      fc.property(vector(float32Value), (values) => {
        const wasm = createFloat64Accumulator(values.length, 'wasm-simd').sumOfSquares(values);
        const js = jsSumOfSquares(values);
        expect(sameValue(wasm, js)).toBe(true);
        expect(Number.isFinite(js)).toBe(values.every((v) => Number.isFinite(v)));
      }),
      { numRuns: 500 },
    );
  });

  it('fold bit-identically into float64 sums, over several updates and scales', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 0, max: 70 })
          .chain((n) =>
            fc
              .array(fc.tuple(fc.array(float32Value, { minLength: n, maxLength: n }), fc.double({ min: 0, max: 1e6, noNaN: true })), { maxLength: 5 })
              .map((updates) => ({ n, updates })),
          ),
        ({ n, updates }) => {
          const wasm = createFloat64Accumulator(n, 'wasm-simd');
          const js = createFloat64Accumulator(n, 'js');
          const reference = new Float64Array(n);
          for (const [list, scale] of updates) {
            const values = Float32Array.from(list);
            // Half the updates measured first (the upload path: the fold reuses the staged copy).
            if (scale > 5e5) expect(sameValue(wasm.sumOfSquares(values), js.sumOfSquares(values))).toBe(true);
            wasm.addScaled(values, scale);
            js.addScaled(values, scale);
            for (let i = 0; i < n; i++) reference[i]! += scale * values[i]!;
          }
          expect(sameValues(wasm.sum, js.sum)).toBe(true);
          expect(sameValues(js.sum, reference)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('sum squares like the plain sequential loop, up to float64 rounding', () => {
    fc.assert(
      fc.property(vector(finiteFloat32Value), (values) => {
        let sequential = 0;
        for (const v of values) sequential += v * v;
        expect(Math.abs(jsSumOfSquares(values) - sequential)).toBeLessThanOrEqual(sequential * values.length * 2 ** -52);
      }),
    );
  });

  it('fold a staged upload only while it is the same array, and refuse a wrong length', () => {
    const accumulator = createFloat64Accumulator(9, 'wasm-simd');
    const a = Float32Array.from({ length: 9 }, (_, i) => i + 1);
    const b = Float32Array.from({ length: 9 }, () => 1);
    expect(accumulator.sumOfSquares(a)).toBe(285);
    accumulator.addScaled(b, 2); // not the staged array: copied in afresh
    accumulator.addScaled(a, 1);
    expect(Array.from(accumulator.sum)).toEqual(Array.from(a, (v) => v + 2));
    expect(() => accumulator.addScaled(new Float32Array(8), 1)).toThrow(RangeError);
    const target = new Float64Array(2);
    jsAddScaled(target, Float32Array.from([1, 2]), 0.5);
    expect(Array.from(target)).toEqual([0.5, 1]);
  });

  it('fold uploads longer than one copy chunk (16,384 values) bit-identically, measured first or not', () => {
    const n = 2 * 16_384 + 13;
    const values = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 10 ** ((i % 7) - 3));
    const wasm = createFloat64Accumulator(n, 'wasm-simd');
    const js = createFloat64Accumulator(n, 'js');
    for (const accumulator of [wasm, js]) {
      accumulator.addScaled(values, 3);
      expect(accumulator.sumOfSquares(values)).toBe(jsSumOfSquares(values));
      accumulator.addScaled(values, 0.5);
    }
    expect(sameValues(wasm.sum, js.sum)).toBe(true);
    expect(wasm.sum[n - 1]).toBe(3.5 * values[n - 1]!);
  });

  it('reads an upload at any byte offset', () => {
    const bytes = new Uint8Array(4 * 5 + 4);
    const values = new Float32Array(bytes.buffer, 4, 5);
    values.set([1, 2, 3, 4, 5]);
    const accumulator = createFloat64Accumulator(5, 'wasm-simd');
    expect(accumulator.sumOfSquares(values)).toBe(55);
    accumulator.addScaled(values, 3);
    expect(Array.from(accumulator.sum)).toEqual([3, 6, 9, 12, 15]);
  });
});

describe('WeightedMeanAccumulator with kernels, scales and partials', () => {
  const updates = [
    { delta: Float32Array.from([1, 0, -2, 0.5, 3]), numExamples: 10 },
    { delta: Float32Array.from([4, 3, 0, -1, 1]), numExamples: 30, scale: 0.25 },
    { delta: Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5]), numExamples: 5 },
  ];

  it('gives the same mean with either kernel, a scale counting as a scaled delta', () => {
    const means = (['wasm-simd', 'js'] as const).map((kernel) => {
      const accumulator = new WeightedMeanAccumulator(5, kernel);
      expect(accumulator.kernel).toBe(kernel);
      updates.forEach((update) => accumulator.add(update));
      return Array.from(accumulator.mean());
    });
    expect(means[0]).toEqual(means[1]);
    const expected = [0, 1, 2, 3, 4].map((i) => (10 * updates[0]!.delta[i]! + 30 * 0.25 * updates[1]!.delta[i]! + 5 * updates[2]!.delta[i]!) / 45);
    means[0]!.forEach((value, i) => expect(value).toBeCloseTo(expected[i]!, 12));
    // Buffered strategies see the same update as a scaled float32 copy.
    expect(Array.from(scaledDelta(updates[1]!))).toEqual([1, 0.75, 0, -0.25, 0.25]);
  });

  it('buffered strategies (median, krum) aggregate a scaled update as its scaled copy', () => {
    for (const name of ['median', 'krum'] as const) {
      const strategy = createStrategy(name, name === 'krum' ? { byzantineClients: 0 } : {});
      const run = (scaled: boolean) => {
        const aggregator = strategy.begin({ globalWeights: new Float32Array(5), serverState: null });
        updates.forEach((update) => aggregator.add(scaled ? update : { delta: scaledDelta(update), numExamples: update.numExamples }));
        return Array.from(aggregator.finish().weights);
      };
      expect(run(true)).toEqual(run(false));
    }
  });

  it('refuses a scale outside [0, 1]', () => {
    const accumulator = new WeightedMeanAccumulator(5);
    expect(() => accumulator.add({ ...updates[0]!, scale: 2 })).toThrow(RangeError);
    expect(() => accumulator.add({ ...updates[0]!, scale: Number.NaN })).toThrow(RangeError);
  });
});

describe('receive area: uploads measured and folded where another thread wrote them', () => {
  /** Writes `values` into region `slot` of the area, as the upload listener's thread does, and returns the view the main thread reads. */
  function receive(area: ReceiveArea, slot: number, values: Float32Array): Float32Array {
    const view = new Float32Array(area.buffer, area.offsets[slot], values.length);
    view.set(values);
    return view;
  }

  it('lays its regions out after the sum and the staging area, 16-byte aligned, in the accumulator’s own shared memory', () => {
    for (const n of [0, 1, 7, 9, 1000]) {
      const accumulator = createFloat64Accumulator(n, 'wasm-simd');
      const area = accumulator.receiveArea(3)!;
      expect(area.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(accumulator.sum.buffer).toBe(area.buffer);
      expect(area.bytesPerSlot).toBeGreaterThanOrEqual(4 * n);
      expect(area.bytesPerSlot % 16).toBe(0);
      expect(area.offsets).toHaveLength(3);
      // Past the sum (8n bytes) and the staging area (4n), each region ending before the next begins.
      expect(area.offsets[0]).toBeGreaterThanOrEqual(accumulator.sum.byteOffset + accumulator.sum.byteLength + 4 * n);
      area.offsets.forEach((offset, k) => {
        expect(offset % 16).toBe(0);
        if (k > 0) expect(offset).toBeGreaterThanOrEqual(area.offsets[k - 1]! + area.bytesPerSlot);
      });
      expect(area.offsets[2]! + area.bytesPerSlot).toBeLessThanOrEqual(area.buffer.byteLength);
      // Filling every region leaves the sum untouched.
      for (let k = 0; k < 3; k++) new Uint8Array(area.buffer, area.offsets[k], area.bytesPerSlot).fill(0xff);
      expect(accumulator.sum.every((v) => v === 0)).toBe(true);
    }
  });

  it('measures and folds bit-identically to the JS kernel and to the copying wasm path, mixed with uploads from elsewhere', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 0, max: 70 })
          .chain((n) =>
            fc
              .array(
                fc.tuple(fc.array(float32Value, { minLength: n, maxLength: n }), fc.double({ min: 0, max: 1e6, noNaN: true }), fc.integer({ min: -1, max: 2 })),
                { maxLength: 6 },
              )
              .map((updates) => ({ n, updates })),
          ),
        ({ n, updates }) => {
          const inPlace = createFloat64Accumulator(n, 'wasm-simd');
          const area = inPlace.receiveArea(3)!;
          const copying = createFloat64Accumulator(n, 'wasm-simd');
          const js = createFloat64Accumulator(n, 'js');
          for (const [list, scale, slot] of updates) {
            const values = Float32Array.from(list);
            // slot -1: an upload that is not in the area (a socket.io one), copied in as without an area.
            const received = slot < 0 ? values : receive(area, slot, values);
            if (scale > 3e5) {
              const squares = jsSumOfSquares(values);
              expect(sameValue(inPlace.sumOfSquares(received), squares)).toBe(true);
              expect(sameValue(copying.sumOfSquares(values), squares)).toBe(true);
            }
            inPlace.addScaled(received, scale);
            copying.addScaled(values, scale);
            js.addScaled(values, scale);
          }
          expect(sameValues(inPlace.sum, js.sum)).toBe(true);
          expect(sameValues(copying.sum, js.sum)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('reads the upload in the area, not a copy: a value changed after the measure is what the fold sees', () => {
    const accumulator = createFloat64Accumulator(9, 'wasm-simd');
    const area = accumulator.receiveArea(2)!;
    const view = receive(
      area,
      1,
      Float32Array.from({ length: 9 }, (_, i) => i + 1),
    );
    expect(accumulator.sumOfSquares(view)).toBe(285);
    view[0] = 100; // a staged copy would still hold 1
    accumulator.addScaled(view, 2);
    expect(Array.from(accumulator.sum)).toEqual([200, 4, 6, 8, 10, 12, 14, 16, 18]);
  });

  it('folds an int8 upload from its bytes in the area as from a copy of them', () => {
    const n = 2 * 16 + 5;
    const tensors = [Float32Array.from({ length: 30 }, (_, i) => Math.sin(i)), Float32Array.from({ length: n - 30 }, (_, i) => -i / 3)];
    const shapes = [[30], [n - 30]];
    const bytes = encodeInt8(tensors, null);
    const inPlace = createFloat64Accumulator(n, 'wasm-simd');
    const area = inPlace.receiveArea(1)!;
    expect(bytes.byteLength).toBeLessThanOrEqual(area.bytesPerSlot);
    const region = new Uint8Array(area.buffer, area.offsets[0], bytes.byteLength);
    region.set(bytes);
    const copying = createFloat64Accumulator(n, 'wasm-simd');
    const js = createFloat64Accumulator(n, 'js');
    inPlace.addCompressed(parseInt8(region, shapes), 3);
    copying.addCompressed(parseInt8(bytes, shapes), 3);
    js.addCompressed(parseInt8(bytes, shapes), 3);
    expect(sameValues(inPlace.sum, copying.sum)).toBe(true);
    expect(sameValues(inPlace.sum, js.sum)).toBe(true);
    expect(inPlace.sum.some((v) => v !== 0)).toBe(true);
  });

  it('is made once, before anything is folded (a measure alone is fine); the JS kernel has none', () => {
    const values = Float32Array.of(1, 2, 3);
    const measured = createFloat64Accumulator(3, 'wasm-simd');
    expect(measured.sumOfSquares(values)).toBe(14);
    const area = measured.receiveArea(1)!;
    expect(area).not.toBeNull();
    measured.addScaled(values, 1); // the measure's staged copy was dropped with the old memory: copied afresh
    expect(Array.from(measured.sum)).toEqual([1, 2, 3]);
    expect(() => measured.receiveArea(1)).toThrow(/once, before anything is folded/);
    const folded = createFloat64Accumulator(3, 'wasm-simd');
    folded.addScaled(values, 1);
    expect(() => folded.receiveArea(1)).toThrow(/before anything is folded/);
    expect(() => createFloat64Accumulator(3, 'wasm-simd').receiveArea(0)).toThrow(RangeError);
    expect(createFloat64Accumulator(3, 'js').receiveArea(2)).toBeNull();
  });

  it('is offered by the weighted means’ round aggregators, not by those that keep updates or transform them first', () => {
    const context = { globalWeights: new Float32Array(5), serverState: null };
    const fedavg: RoundAggregator = new FedAvg().begin(context);
    const area = fedavg.receiveArea?.(2);
    expect(area?.buffer).toBeInstanceOf(SharedArrayBuffer);
    const delta = receive(area!, 0, Float32Array.of(1, 2, 3, 4, 5));
    expect(fedavg.sumOfSquares!(delta)).toBe(55);
    fedavg.add({ delta, numExamples: 10 });
    expect(Array.from(fedavg.finish().weights)).toEqual([1, 2, 3, 4, 5]);
    for (const [name, options] of [
      ['median', {}],
      ['krum', { byzantineClients: 0 }],
      ['fedavg', { clipNorm: 1 }],
    ] as const) {
      expect('receiveArea' in createStrategy(name, options).begin(context)).toBe(false);
    }
    expect(createStrategy('fedadam', {}).begin(context).receiveArea?.(1)).not.toBeNull();
    expect(new WeightedMeanAccumulator(5, 'js').receiveArea(1)).toBeNull();
  });
});
