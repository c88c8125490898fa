import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  allFinite,
  applyDelta,
  computeDelta,
  decodeWeights,
  encodeDelta,
  instantiateModel,
  l2Norm,
  readWeights,
  resolveLoss,
  splitStoredWeights,
  storedModelFromLayersModel,
  toExampleTensors,
  trainModel,
} from '../src/index.js';
import { makeModel, syntheticRows } from './support/fixtures.js';

describe('delta computation', () => {
  it('is trained minus base, element-wise, and applying it restores the trained weights', () => {
    const base = [Float32Array.of(1, 2, 3), Float32Array.of(-1.5)];
    const trained = [Float32Array.of(1.5, 2, 2), Float32Array.of(0.5)];
    const delta = computeDelta(trained, base);
    expect(delta.map((tensor) => Array.from(tensor))).toEqual([[0.5, 0, -1], [2]]);
    expect(applyDelta(base, delta)).toEqual(trained);
    // Inputs are not modified.
    expect(Array.from(base[0]!)).toEqual([1, 2, 3]);
  });

  it('rejects mismatched tensor counts and sizes', () => {
    expect(() => computeDelta([Float32Array.of(1)], [])).toThrow(/1 trained tensors but 0/);
    expect(() => computeDelta([Float32Array.of(1, 2)], [Float32Array.of(1)])).toThrow(/2 values/);
  });

  it('encodes into one float32 buffer that decodes to the same values', () => {
    const base = [new Float32Array([0, 0, 0, 0, 0, 0]), new Float32Array([1, 1])];
    const trained = [new Float32Array([1, 2, 3, 4, 5, 6]), new Float32Array([0, 3])];
    const { encoded, delta } = encodeDelta(trained, base, [[2, 3], [2]]);
    expect(encoded.shapes).toEqual([[2, 3], [2]]);
    expect(encoded.data.byteLength).toBe(8 * 4);
    expect(decodeWeights(encoded)).toEqual(delta);
    expect(l2Norm(delta)).toBeCloseTo(Math.sqrt(1 + 4 + 9 + 16 + 25 + 36 + 1 + 4));
  });

  it('detects non-finite values', () => {
    expect(allFinite([Float32Array.of(1, 2)])).toBe(true);
    expect(allFinite([Float32Array.of(1, NaN)])).toBe(false);
    expect(allFinite([Float32Array.of(Infinity)])).toBe(false);
  });

  it('for a real model: received weights + uploaded delta = locally trained weights', async () => {
    const source = makeModel(3);
    const received = storedModelFromLayersModel(source, 1);
    source.dispose();
    const model = await instantiateModel(received);
    const rows = syntheticRows(64, 5);
    const examples = toExampleTensors({ xs: rows.xs, ys: rows.labels }, model);
    await trainModel(model, examples.xs, examples.ys, { epochs: 1, batchSize: 16, learningRate: 0.5 }, { loss: resolveLoss() });
    const trained = readWeights(model, received.weightSpecs);
    const base = splitStoredWeights(received);
    const { encoded } = encodeDelta(
      trained,
      base,
      received.weightSpecs.map((spec) => spec.shape),
    );
    const restored = applyDelta(base, decodeWeights(encoded));
    // Exact up to float32 rounding of (t - b) + b.
    restored.forEach((tensor, i) => tensor.forEach((value, j) => expect(Math.abs(value - trained[i]![j]!)).toBeLessThan(1e-6)));
    expect(l2Norm(decodeWeights(encoded))).toBeGreaterThan(0);
    // The delta is exactly the size of the model's weights: nothing else rides along.
    expect(encoded.data.byteLength).toBe(received.weights.byteLength);
    examples.dispose();
    model.dispose();
    tf.disposeVariables();
  });
});
