/**
 * The coordinator's own code on one upload, without the network: the intake's schema check,
 * validation (norm and finiteness through the round aggregator's kernel), bounding and the FedAvg
 * fold, called as RoundsService.handleUpload calls them, on 2NN uploads that arrive as fresh
 * Buffers (a pool of 64 distinct ones, 51 MB: more than the L3 cache, like uploads off the wire).
 */
import { decodeCompressedDelta, DEFAULT_TOPK_FRACTION, encodeInt8, encodeTopk, totalValues, type Compression } from '../../client-sdk/src/protocol/index.js';
import { WeightedMeanAccumulator } from '../../server/src/aggregation/fedavg.js';
import type { KernelChoice } from '../../server/src/aggregation/kernels/float64-accumulator.js';
import { clientUpdate } from '../../server/src/aggregation/strategy.js';
import { boundInfluence, checkUpdate, parseUpload, validateUpdate, type UpdateExpectation } from '../../server/src/rounds/upload-intake.js';
import { fillRandom, median, repeat } from './measure.js';

const SHAPES = [[784, 200], [200], [200, 200], [200], [200, 10], [10]];
const VALUES = totalValues(SHAPES);
const POOL = 64;
/** Bytes of one 2NN upload's weights. */
export const UPLOAD_BYTES = 4 * VALUES;

const expectation: UpdateExpectation = {
  roundId: 'round-1',
  baseVersion: 1,
  weightSpecs: SHAPES.map((shape, i) => ({ name: `w${i}`, shape, dtype: 'float32' as const })),
  maxUpdateNorm: null,
};

const boundLimits = (bound: number | null) => ({
  maxExamples: 1000,
  bound,
  config: { mode: 'clip' as const, ceiling: 100, initial: 1, quantile: 0.5, learningRate: 0.2 },
});

/** A pool of POOL fresh 2NN upload payloads, their weights encoded by `encode`. */
function uploadPool(encode: (delta: Float32Array) => { data: Uint8Array; encoding?: string }): unknown[] {
  return Array.from({ length: POOL }, (_, k) => {
    const delta = new Float32Array(VALUES);
    fillRandom(delta, k + 1, 1e-3);
    const { data, encoding } = encode(delta);
    return {
      roundId: 'round-1',
      modelVersion: 1,
      numExamples: 100,
      trainLoss: 0.5,
      delta: { shapes: SHAPES, data: Buffer.from(data), ...(encoding ? { encoding } : {}) },
    };
  });
}

/** Median milliseconds per upload of `intake` over the pool (parsed first), each repetition on a fresh aggregator. */
function medianMsPerUpload(
  payloads: unknown[],
  kernel: Exclude<KernelChoice, 'auto'>,
  repetitions: number,
  intake: (upload: ReturnType<typeof parseUpload>, aggregator: WeightedMeanAccumulator) => void,
): number {
  let cursor = 0;
  const perUpload = repeat(
    () => {
      const aggregator = new WeightedMeanAccumulator(VALUES, kernel);
      const started = performance.now();
      for (let i = 0; i < POOL; i++) {
        intake(parseUpload(payloads[cursor], 10 * 2 ** 20), aggregator);
        cursor = (cursor + 1) % POOL;
      }
      return (performance.now() - started) / POOL;
    },
    repetitions,
    1,
  );
  return median(perUpload);
}

/** Median milliseconds the intake spends on one 2NN upload with this kernel (the bound clips about half of them, as the adaptive bound aims to). */
export function intakeMsPerUpload(kernel: Exclude<KernelChoice, 'auto'>): number {
  const limits = boundLimits(0.5);
  return medianMsPerUpload(
    uploadPool((delta) => ({ data: new Uint8Array(delta.buffer) })),
    kernel,
    30,
    (upload, aggregator) => {
      const { delta, norm } = validateUpdate(upload, expectation, (values) => aggregator.sumOfSquares(values));
      const bounded = boundInfluence(delta, norm, upload.numExamples, limits);
      aggregator.add({ delta: bounded.delta, numExamples: bounded.numExamples, scale: bounded.scale });
    },
  );
}

/** The top-k fraction of the compressed intake measurement: the protocol's default. */
export const TOPK_FRACTION = DEFAULT_TOPK_FRACTION;

/**
 * Median milliseconds the intake spends on one compressed 2NN upload (int8, or top-k at
 * TOPK_FRACTION), by `path`: `dense` decodes it into a Float32Array (decodeCompressedDelta), then
 * measures (kernel copy + norm) and folds it as a float32 upload (what the intake did before the
 * fused fold; the version and shape checks, a few microseconds, left out); `fused`
 * validates and measures it from its bytes and folds it from them (checkUpdate + clientUpdate,
 * what RoundsService.handleUpload does now). Same uploads (a pool of 64 fresh Buffers), same kernel.
 */
export function compressedIntakeMsPerUpload(kind: 'int8' | 'topk', path: 'dense' | 'fused', kernel: Exclude<KernelChoice, 'auto'>): number {
  const compression: Compression = kind === 'int8' ? { kind } : { kind, topkFraction: TOPK_FRACTION };
  const round: UpdateExpectation = { ...expectation, compression };
  const payloads = uploadPool((delta) => {
    const tensors: Float32Array[] = [];
    let offset = 0;
    for (const shape of SHAPES) {
      const size = shape.reduce((a, b) => a * b, 1);
      tensors.push(delta.subarray(offset, offset + size));
      offset += size;
    }
    return { data: kind === 'int8' ? encodeInt8(tensors) : encodeTopk(tensors, TOPK_FRACTION).data, encoding: kind };
  });
  const limits = boundLimits(null);
  return medianMsPerUpload(payloads, kernel, 20, (upload, aggregator) => {
    if (path === 'dense') {
      // The intake before the fused fold: decode, then the float32 path (kernel copy + norm, fold from the copy).
      const delta = decodeCompressedDelta(kind, upload.data, upload.shapes, compression);
      const squares = aggregator.sumOfSquares(delta);
      if (!Number.isFinite(squares)) throw new Error('non-finite');
      const bounded = boundInfluence(delta, Math.sqrt(squares), upload.numExamples, limits);
      aggregator.add({ delta: bounded.delta, numExamples: bounded.numExamples, scale: bounded.scale });
    } else {
      const { delta, norm } = checkUpdate(upload, round, (values) => aggregator.sumOfSquares(values));
      const bounded = boundInfluence(delta, norm, upload.numExamples, limits);
      aggregator.add(clientUpdate(bounded.delta, bounded.numExamples, bounded.scale));
    }
  });
}
