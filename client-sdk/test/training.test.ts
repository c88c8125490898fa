import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConditionMonitor,
  evaluateModel,
  l2Norm,
  manualConditions,
  readWeights,
  resolveLoss,
  storedModelFromLayersModel,
  computeDelta,
  splitStoredWeights,
  toExampleTensors,
  trainModel,
  type BatchProgress,
} from '../src/index.js';
import { CLASSES, FEATURES, makeModel, oneHot, seededShuffle, syntheticRows } from './support/fixtures.js';

const loss = resolveLoss('categoricalCrossentropy');
/** Identity order: makes two runs see the same batches. */
const inOrder = (count: number): Uint32Array => Uint32Array.from({ length: count }, (_, i) => i);

afterEach(() => {
  tf.disposeVariables();
});

describe('toExampleTensors', () => {
  it('packs rows, one-hot encodes class indices and reshapes to the model input', () => {
    const model = tf.sequential({ layers: [tf.layers.flatten({ inputShape: [2, 2, 1] }), tf.layers.dense({ units: 3, activation: 'softmax' })] });
    const examples = toExampleTensors({ xs: [Float32Array.of(1, 2, 3, 4), [5, 6, 7, 8]], ys: [2, 0] }, model);
    expect(examples.count).toBe(2);
    expect(examples.xs.shape).toEqual([2, 2, 2, 1]);
    expect(examples.ys.arraySync()).toEqual([
      [0, 0, 1],
      [1, 0, 0],
    ]);
    examples.dispose();
    model.dispose();
  });

  it('never disposes tensors it did not create', () => {
    const model = makeModel();
    const xs = tf.ones([4, FEATURES]);
    const ys = tf.oneHot(tf.tensor1d([0, 1, 2, 0], 'int32'), CLASSES);
    const examples = toExampleTensors({ xs, ys: ys }, model);
    expect(examples.xs).toBe(xs);
    examples.dispose();
    expect(xs.isDisposed).toBe(false);
    tf.dispose([xs, ys]);
    model.dispose();
  });

  it('rejects mismatched counts', () => {
    const model = makeModel();
    expect(() => toExampleTensors({ xs: [[1, 2, 3, 4, 5, 6, 7, 8]], ys: [0, 1] }, model)).toThrow(/1 feature rows but 2 labels/);
    model.dispose();
  });
});

describe('trainModel', () => {
  it('learns: SGD lowers the loss and raises accuracy on held-out data', async () => {
    const model = makeModel(11);
    const train = syntheticRows(600, 1);
    const test = syntheticRows(300, 2);
    const trainTensors = toExampleTensors({ xs: train.xs, ys: oneHot(train.labels) }, model);
    const testTensors = toExampleTensors({ xs: test.xs, ys: test.labels }, model);
    const before = await evaluateModel(model, testTensors.xs, testTensors.ys, loss);
    const epochLosses: number[] = [];
    const result = await trainModel(
      model,
      trainTensors.xs,
      trainTensors.ys,
      { epochs: 8, batchSize: 10, learningRate: 0.3 },
      {
        loss,
        // Seeded: with tf's random order this check failed once in many runs (accuracy 0.783).
        shuffle: seededShuffle(3),
        onBatchEnd: (progress) => {
          if (progress.epochLoss !== undefined) epochLosses.push(progress.epochLoss);
        },
      },
    );
    const after = await evaluateModel(model, testTensors.xs, testTensors.ys, loss);
    expect(result).toMatchObject({ completed: true, epochsCompleted: 8, batchesCompleted: 8 * 60, examplesSeen: 8 * 600 });
    expect(result.lastEpochLoss).toBe(epochLosses.at(-1));
    expect(epochLosses.at(-1)!).toBeLessThan(epochLosses[0]! * 0.7);
    expect(after.loss).toBeLessThan(before.loss);
    expect(after.accuracy).toBeGreaterThan(0.8);
    expect(after.numExamples).toBe(300);
    trainTensors.dispose();
    testTensors.dispose();
    model.dispose();
  });

  it('reports the last epoch loss as the example-weighted mean loss of its batches', async () => {
    const model = makeModel(4);
    const rows = syntheticRows(25, 9); // batches of 10, 10, 5
    const examples = toExampleTensors({ xs: rows.xs, ys: rows.labels }, model);
    // learning rate ~0: weights do not move, so the epoch loss equals the model's loss on all rows.
    const result = await trainModel(model, examples.xs, examples.ys, { epochs: 1, batchSize: 10, learningRate: 1e-12 }, { loss });
    const full = await evaluateModel(model, examples.xs, examples.ys, loss);
    expect(result.lastEpochLoss!).toBeCloseTo(full.loss, 5);
    examples.dispose();
    model.dispose();
  });

  it('stops within one batch when a condition changes mid-training', async () => {
    const conditions = manualConditions('yes');
    const monitor = new ConditionMonitor(Object.values(conditions));
    let stop = false;
    monitor.subscribe((eligibility) => {
      if (!eligibility.eligible) stop = true;
    });
    const model = makeModel(5);
    const rows = syntheticRows(200, 3);
    const examples = toExampleTensors({ xs: rows.xs, ys: rows.labels }, model);
    const progress: BatchProgress[] = [];
    const result = await trainModel(
      model,
      examples.xs,
      examples.ys,
      { epochs: 3, batchSize: 10, learningRate: 0.1 },
      {
        loss,
        shouldStop: () => stop,
        onBatchEnd: (batch) => {
          progress.push(batch);
          // Unplugged after the 7th batch (of 60 planned).
          if (progress.length === 7) conditions.charging.set('no');
        },
      },
    );
    expect(result.completed).toBe(false);
    expect(result.batchesCompleted).toBe(7); // not a single batch after the change
    expect(progress).toHaveLength(7);
    expect(result.epochsCompleted).toBe(0);
    examples.dispose();
    model.dispose();
  });

  it('stops within one batch when the change arrives asynchronously (event loop) during training', async () => {
    const conditions = manualConditions('yes');
    const monitor = new ConditionMonitor(Object.values(conditions));
    let stop = false;
    let batchesAtChange = -1;
    let batches = 0;
    monitor.subscribe((eligibility) => {
      if (!eligibility.eligible) {
        stop = true;
        batchesAtChange = batches;
      }
    });
    const model = makeModel(6);
    const rows = syntheticRows(2000, 4);
    const examples = toExampleTensors({ xs: rows.xs, ys: rows.labels }, model);
    setTimeout(() => conditions.idle.set('no'), 20); // e.g. the user touched the device
    const result = await trainModel(
      model,
      examples.xs,
      examples.ys,
      { epochs: 5, batchSize: 10, learningRate: 0.1 },
      {
        loss,
        shouldStop: () => stop,
        onBatchEnd: () => batches++,
      },
    );
    expect(result.completed).toBe(false);
    expect(batchesAtChange).toBeGreaterThan(0);
    expect(result.batchesCompleted).toBe(batchesAtChange);
    examples.dispose();
    model.dispose();
  });

  it('FedProx: the proximal term keeps the trained weights closer to the received ones', async () => {
    const rows = syntheticRows(300, 8, 0);
    const runs: number[] = [];
    for (const proximalMu of [0, 1]) {
      const model = makeModel(21);
      const received = storedModelFromLayersModel(model, 1);
      const examples = toExampleTensors({ xs: rows.xs, ys: rows.labels }, model);
      await trainModel(model, examples.xs, examples.ys, { epochs: 3, batchSize: 10, learningRate: 0.2, proximalMu }, { loss, shuffle: inOrder });
      runs.push(l2Norm(computeDelta(readWeights(model, received.weightSpecs), splitStoredWeights(received))));
      examples.dispose();
      model.dispose();
    }
    const [plain, prox] = runs as [number, number];
    expect(prox).toBeGreaterThan(0);
    expect(prox).toBeLessThan(plain * 0.9);
  });

  it('FedProx with mu = 0 is plain SGD (same batches, same result)', async () => {
    const rows = syntheticRows(50, 12);
    const results: Float32Array[][] = [];
    for (const proximalMu of [undefined, 0]) {
      const model = makeModel(30);
      const examples = toExampleTensors({ xs: rows.xs, ys: rows.labels }, model);
      const plan = { epochs: 2, batchSize: 10, learningRate: 0.1, ...(proximalMu === undefined ? {} : { proximalMu }) };
      await trainModel(model, examples.xs, examples.ys, plan, { loss, shuffle: inOrder });
      results.push(
        model
          .getWeights()
          .map((weight) => weight.dataSync() as Float32Array)
          .map((values) => Float32Array.from(values)),
      );
      examples.dispose();
      model.dispose();
    }
    expect(results[0]).toEqual(results[1]);
  });

  it('disposes every tensor it creates, also when stopped', async () => {
    const model = makeModel(2);
    const rows = syntheticRows(100, 7);
    const examples = toExampleTensors({ xs: rows.xs, ys: rows.labels }, model);
    const before = tf.memory().numTensors;
    await trainModel(model, examples.xs, examples.ys, { epochs: 2, batchSize: 10, learningRate: 0.1, proximalMu: 0.5 }, { loss });
    expect(tf.memory().numTensors).toBe(before);
    let batches = 0;
    await trainModel(
      model,
      examples.xs,
      examples.ys,
      { epochs: 2, batchSize: 10, learningRate: 0.1 },
      { loss, shouldStop: () => batches >= 3, onBatchEnd: () => batches++ },
    );
    expect(tf.memory().numTensors).toBe(before);
    await evaluateModel(model, examples.xs, examples.ys, loss, 16);
    expect(tf.memory().numTensors).toBe(before);
    examples.dispose();
    model.dispose();
  });
});
