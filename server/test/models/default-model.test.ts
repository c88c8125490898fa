import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MODEL_PARAMETERS, build2NN, ensureTfBackend, trainDefaultModel } from '../../src/models/default-model.js';
import { loadLayersModelFromParts } from '../../src/models/tfjs-format.js';

beforeAll(async () => {
  await ensureTfBackend();
});

describe('default model (2NN of McMahan et al. 2017)', () => {
  it('has the 784-200-200-10 shape and 199,210 parameters', () => {
    const model = build2NN();
    try {
      expect(model.countParams()).toBe(199_210);
      expect(DEFAULT_MODEL_PARAMETERS).toBe(199_210);
      expect(model.layers.map((layer) => layer.outputShape)).toEqual([
        [null, 200],
        [null, 200],
        [null, 10],
      ]);
    } finally {
      model.dispose();
    }
  });

  it('trains on a slice of real MNIST, records its test accuracy, and leaks no tensors', async () => {
    const tensorsBefore = tf.memory().numTensors;
    const trained = await trainDefaultModel({ trainExamples: 2000 });
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    console.info(`[default model] 2000 examples: ${JSON.stringify(trained.metrics)}`);
    expect(trained.weights.byteLength).toBe(199_210 * 4);
    expect(trained.weightSpecs.map((spec) => [spec.name, spec.shape])).toEqual([
      ['hidden1/kernel', [784, 200]],
      ['hidden1/bias', [200]],
      ['hidden2/kernel', [200, 200]],
      ['hidden2/bias', [200]],
      ['output/kernel', [200, 10]],
      ['output/bias', [10]],
    ]);
    expect(trained.metrics).toMatchObject({ trainExamples: 2000, testExamples: 10_000, backend: tf.getBackend() });
    expect(trained.metrics.testAccuracy).toBeGreaterThan(0.85);
    expect(trained.metrics.testLoss).toBeGreaterThan(0);
    expect(trained.metrics.testLoss).toBeLessThan(0.6);

    // The serialized parts load back into an equivalent model.
    const model = await loadLayersModelFromParts(trained);
    try {
      expect(model.countParams()).toBe(199_210);
    } finally {
      model.dispose();
    }
  });

  it('is deterministic for a given seed', async () => {
    const a = await trainDefaultModel({ trainExamples: 200, epochs: 1, seed: 5 });
    const b = await trainDefaultModel({ trainExamples: 200, epochs: 1, seed: 5 });
    expect(Buffer.from(a.weights).equals(Buffer.from(b.weights))).toBe(true);
    expect(a.metrics.testAccuracy).toBe(b.metrics.testAccuracy);
  });

  it('rejects a nonsensical number of training examples', async () => {
    await expect(trainDefaultModel({ trainExamples: 0 })).rejects.toThrow(RangeError);
    await expect(trainDefaultModel({ trainExamples: 70_000 })).rejects.toThrow(RangeError);
  });
});
