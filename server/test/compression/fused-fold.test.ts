/**
 * Compressed uploads folded from their bytes (CompressedDeltaView): the norm and the fold must be
 * bit-identical to decoding densely and then running the kernels (js-kernels.ts / the wasm SIMD
 * kernel), for int8 and top-k, packed or widened (personal layers), including non-finite scales;
 * the upload intake must refuse and measure them exactly as it does the dense decode.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeInt8,
  decodeTopk,
  encodeInt8,
  encodeTopk,
  parseInt8,
  parseTopk,
  shapeSize,
  topkCount,
  totalValues,
  widenSharedDelta,
  type CompressedDeltaView,
} from '@flock/client-sdk/protocol';
import { WeightedMeanAccumulator } from '../../src/aggregation/fedavg.js';
import { createFloat64Accumulator } from '../../src/aggregation/kernels/float64-accumulator.js';
import { jsAddScaled, jsSumOfSquares } from '../../src/aggregation/kernels/js-kernels.js';
import { PartialAggregate } from '../../src/aggregation/partial-aggregate.js';
import { createStrategy } from '../../src/aggregation/strategies.js';
import { CompressedUpdate } from '../../src/aggregation/strategy.js';
import { checkUpdate, parseUpload, validateUpdate, type UpdateExpectation } from '../../src/rounds/upload-intake.js';
import { rejectionReasonOf } from '../support/rejection-reason.js';
import { seeded, tensorsArbitrary as tensorsArbitraryOf } from './fixtures.js';

/** Shapes of 1-4 tensors (up to 40 values each: the 8-lane sums and their tails), and values for them. */
const tensorsArbitrary = tensorsArbitraryOf({ maxDim: 40, minRank: 1, maxRank: 1 });

function sameBits(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!(Object.is(a[i], b[i]) || (Number.isNaN(a[i]) && Number.isNaN(b[i])))) return false;
  return true;
}

/** The view of each encoding, and the dense vector it must stand for. */
function encodings(shapes: number[][], tensors: Float32Array[], seed: number, fraction: number): { view: CompressedDeltaView; dense: Float32Array }[] {
  const random = seeded(seed);
  const int8 = encodeInt8(tensors, random);
  const topk = encodeTopk(tensors, fraction, random).data;
  const kept = topkCount(totalValues(shapes), fraction);
  return [
    { view: parseInt8(int8, shapes), dense: decodeInt8(int8, shapes) },
    { view: parseTopk(topk, shapes, kept), dense: decodeTopk(topk, shapes, kept) },
  ];
}

describe('compressed deltas folded from their bytes', () => {
  it('measure and fold bit-identically to the dense decode, in both kernels', () => {
    fc.assert(
      fc.property(
        tensorsArbitrary,
        fc.integer(),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1e4, noNaN: true }),
        ([shapes, tensors], seed, fraction, weight) => {
          for (const { view, dense } of encodings(shapes, tensors, seed, fraction)) {
            expect(view.length).toBe(dense.length);
            expect(sameBits(view.toDense(), dense)).toBe(true);
            expect(Object.is(view.sumOfSquares(), jsSumOfSquares(dense))).toBe(true);
            for (const kernel of ['js', 'wasm-simd'] as const) {
              const random = seeded(seed + 1);
              const start = Float64Array.from({ length: dense.length }, () => (random() - 0.5) * 100);
              const fused = createFloat64Accumulator(dense.length, kernel);
              fused.sum.set(start);
              fused.addCompressed(view, weight);
              const reference = Float64Array.from(start);
              jsAddScaled(reference, dense, weight);
              expect(sameBits(fused.sum, reference)).toBe(true);
              // And the wasm kernel's own measure of the dense decode agrees with the view's.
              expect(Object.is(createFloat64Accumulator(dense.length, kernel).sumOfSquares(dense), view.sumOfSquares())).toBe(true);
            }
          }
        },
      ),
    );
  });

  it('place the tensors at the model offsets a personal-layers round gives them (widened with zeros)', () => {
    fc.assert(
      fc.property(tensorsArbitrary, fc.integer(), ([shapes, tensors], seed) => {
        // Every other tensor of a model twice as long is personal; the upload carries the others.
        const model = shapes.flatMap((shape) => [shape, [3]]);
        const mask = model.map((_, t) => t % 2 === 1);
        const offsets: number[] = [];
        let offset = 0;
        model.forEach((shape, t) => {
          if (!mask[t]) offsets.push(offset);
          offset += shapeSize(shape);
        });
        const placement = { offsets, length: offset };
        const random = seeded(seed);
        const int8 = encodeInt8(tensors, random);
        const topk = encodeTopk(tensors, 0.3, random).data;
        const kept = topkCount(totalValues(shapes), 0.3);
        const pairs = [
          { view: parseInt8(int8, shapes, placement), dense: widenSharedDelta(decodeInt8(int8, shapes), model, mask) },
          { view: parseTopk(topk, shapes, kept, placement), dense: widenSharedDelta(decodeTopk(topk, shapes, kept), model, mask) },
        ];
        for (const { view, dense } of pairs) {
          expect(sameBits(view.toDense(), dense)).toBe(true);
          expect(Object.is(view.sumOfSquares(), jsSumOfSquares(dense))).toBe(true);
          const target = new Float64Array(dense.length);
          view.addScaledTo(target, 3);
          const reference = new Float64Array(dense.length);
          jsAddScaled(reference, dense, 3);
          expect(sameBits(target, reference)).toBe(true);
        }
      }),
    );
  });

  it('carry non-finite and overflowing scales through to the norm, as the dense decode does', () => {
    const shapes = [[9], [2]];
    for (const scale of [Number.NaN, Number.POSITIVE_INFINITY, 3.4e38]) {
      const bytes = encodeInt8([Float32Array.from({ length: 9 }, (_, i) => i - 4), Float32Array.of(1, 2)], null);
      new DataView(bytes.buffer).setFloat32(0, scale, true);
      const view = parseInt8(bytes, shapes);
      expect(Number.isFinite(view.sumOfSquares())).toBe(false);
      expect(Object.is(view.sumOfSquares(), jsSumOfSquares(decodeInt8(bytes, shapes))) || Number.isNaN(view.sumOfSquares())).toBe(true);
    }
  });

  it('fold into the weighted mean, a partial aggregate and DP-FedAvg as the dense updates do; robust strategies decode them on demand', () => {
    const random = seeded(5);
    const shapes = [[30], [7]];
    const uploads = Array.from({ length: 5 }, () => shapes.map((shape) => Float32Array.from({ length: shapeSize(shape) }, () => random() - 0.5)));
    const views = uploads.map((tensors, k) =>
      k % 2 === 0 ? parseInt8(encodeInt8(tensors, random), shapes) : parseTopk(encodeTopk(tensors, 0.2, random).data, shapes, 8),
    );
    const global = new Float32Array(37);
    for (const kernel of ['js', 'wasm-simd'] as const) {
      const fused = new WeightedMeanAccumulator(37, kernel);
      const dense = new WeightedMeanAccumulator(37, kernel);
      const partial = new PartialAggregate(37);
      const densePartial = new PartialAggregate(37);
      views.forEach((view, k) => {
        fused.add(new CompressedUpdate(view, 10 + k, k === 3 ? 0.5 : undefined));
        dense.add({ delta: view.toDense(), numExamples: 10 + k, scale: k === 3 ? 0.5 : 1 });
        partial.add(view, 10 + k, 0.1, k === 3 ? 0.5 : 1);
        densePartial.add(view.toDense(), 10 + k, 0.1, k === 3 ? 0.5 : 1);
      });
      expect(sameBits(fused.mean(), dense.mean())).toBe(true);
      expect(sameBits(partial.sum, densePartial.sum)).toBe(true);
    }
    for (const [name, options] of [
      ['median', {}],
      ['trimmed-mean', { trimFraction: 0.2 }],
      ['fedavg', { clipNorm: 0.5 }],
    ] as const) {
      const run = (compressed: boolean) => {
        const aggregator = createStrategy(name, options).begin({ globalWeights: global, serverState: null });
        views.forEach((view, k) => aggregator.add(compressed ? new CompressedUpdate(view, 10 + k) : { delta: view.toDense(), numExamples: 10 + k }));
        return aggregator.finish().weights;
      };
      expect(sameBits(run(true), run(false))).toBe(true);
    }
  });

  it('decodes a compressed update densely only when something reads its delta, and only once', () => {
    const view = parseInt8(encodeInt8([Float32Array.of(1, -2, 3)], null), [[3]]);
    let decoded = 0;
    const counting: CompressedDeltaView = {
      ...view,
      encoding: view.encoding,
      length: view.length,
      sumOfSquares: () => view.sumOfSquares(),
      addScaledTo: (t, w) => view.addScaledTo(t, w),
      toDense: () => (decoded++, view.toDense()),
      int8Runs: () => null,
    };
    const update = new CompressedUpdate(counting, 4);
    const accumulator = new WeightedMeanAccumulator(3, 'js');
    accumulator.add(update);
    expect(decoded).toBe(0);
    expect(Array.from(update.delta)).toEqual(Array.from(view.toDense()));
    expect(update.delta).toBe(update.delta);
    expect(decoded).toBe(1);
    // A copy is a plain update with the dense delta: never folded from the bytes again.
    const copy = { ...update };
    expect(copy.delta).toBeInstanceOf(Float32Array);
    expect(copy).not.toBeInstanceOf(CompressedUpdate);
  });
});

describe('checkUpdate on compressed uploads', () => {
  const weightSpecs = [
    { name: 'w/kernel', shape: [4, 5], dtype: 'float32' as const },
    { name: 'b/bias', shape: [5], dtype: 'float32' as const },
  ];
  const base: UpdateExpectation = { roundId: 'r', baseVersion: 2, weightSpecs, maxUpdateNorm: 100 };
  const upload = (data: Uint8Array, encoding: 'int8' | 'topk', shapes = [[4, 5], [5]]) =>
    parseUpload({ roundId: 'r', modelVersion: 2, numExamples: 10, trainLoss: 0.5, delta: { shapes, data, encoding } }, 1 << 20);

  it('returns a view (no dense vector) with the dense path norm, and refuses what the dense path refuses', () => {
    const random = seeded(3);
    const tensors = [Float32Array.from({ length: 20 }, () => random() - 0.5), Float32Array.from({ length: 5 }, () => random() - 0.5)];
    const int8: UpdateExpectation = { ...base, compression: { kind: 'int8' } };
    const topk: UpdateExpectation = { ...base, compression: { kind: 'topk', topkFraction: 0.2 } };
    for (const [expectation, data, encoding] of [
      [int8, encodeInt8(tensors, random), 'int8'],
      [topk, encodeTopk(tensors, 0.2, random).data, 'topk'],
    ] as const) {
      const checked = checkUpdate(upload(data, encoding), expectation);
      expect(checked.delta).not.toBeInstanceOf(Float32Array);
      const dense = validateUpdate(upload(data, encoding), expectation);
      expect(checked.norm).toBe(dense.norm);
      expect(Object.is(checked.norm, Math.sqrt(jsSumOfSquares(dense.delta)))).toBe(true);
      expect(rejectionReasonOf(() => checkUpdate(upload(data, encoding), { ...expectation, maxUpdateNorm: checked.norm / 2 }))).toBe('norm_exceeded');
      expect(rejectionReasonOf(() => checkUpdate(upload(data.subarray(0, data.length - 1), encoding), expectation))).toBe('malformed');
    }
    expect(rejectionReasonOf(() => checkUpdate(upload(encodeTopk(tensors, 0.3, random).data, 'topk'), topk))).toBe('compression_mismatch');
    const nan = encodeInt8(tensors, random);
    new DataView(nan.buffer).setFloat32(4, Number.NaN, true);
    expect(rejectionReasonOf(() => checkUpdate(upload(nan, 'int8'), int8))).toBe('non_finite');
  });

  it('widens a personal-layers upload to the model, at the shared tensors offsets', () => {
    const personal: UpdateExpectation = { ...base, personalLayers: ['b'], compression: { kind: 'int8' } };
    const data = encodeInt8([Float32Array.from({ length: 20 }, (_, i) => i / 20)], null);
    const checked = checkUpdate(upload(data, 'int8', [[4, 5]]), personal);
    expect(checked.delta.length).toBe(25);
    const dense = validateUpdate(upload(data, 'int8', [[4, 5]]), personal);
    expect(Array.from(dense.delta.subarray(20))).toEqual([0, 0, 0, 0, 0]);
    expect(checked.norm).toBe(dense.norm);
    const target = new Float64Array(25);
    (checked.delta as CompressedDeltaView).addScaledTo(target, 1);
    expect(Array.from(target)).toEqual(Array.from(dense.delta));
  });
});
