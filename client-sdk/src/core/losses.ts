/**
 * Loss and accuracy functions for local training and evaluation. Global models travel as Keras
 * topology without a training config, so the app names the loss (default: categorical
 * cross-entropy over softmax outputs, as for MNIST-style classifiers).
 */
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_LOSS } from './defaults.js';

export type LossName = 'categoricalCrossentropy' | 'binaryCrossentropy' | 'meanSquaredError';

export interface LossSpec {
  readonly name: string;
  /** Mean loss over the batch (a scalar). */
  loss(yTrue: tf.Tensor, yPred: tf.Tensor): tf.Scalar;
  /** Per-example correctness in [0, 1] (shape [batch]). */
  correct(yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor;
}

function classOrThreshold(yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor {
  const units = yPred.shape[yPred.shape.length - 1] ?? 1;
  return units > 1 ? tf.metrics.categoricalAccuracy(yTrue, yPred) : tf.metrics.binaryAccuracy(yTrue, yPred);
}

const LOSSES: Record<LossName, LossSpec> = {
  categoricalCrossentropy: {
    name: 'categoricalCrossentropy',
    loss: (yTrue, yPred) => tf.mean(tf.metrics.categoricalCrossentropy(yTrue, yPred)),
    correct: (yTrue, yPred) => tf.metrics.categoricalAccuracy(yTrue, yPred),
  },
  binaryCrossentropy: {
    name: 'binaryCrossentropy',
    loss: (yTrue, yPred) => tf.mean(tf.metrics.binaryCrossentropy(yTrue, yPred)),
    correct: (yTrue, yPred) => tf.metrics.binaryAccuracy(yTrue, yPred),
  },
  meanSquaredError: {
    name: 'meanSquaredError',
    loss: (yTrue, yPred) => tf.mean(tf.metrics.meanSquaredError(yTrue, yPred)),
    correct: classOrThreshold,
  },
};

export function resolveLoss(loss: LossName | LossSpec = DEFAULT_LOSS): LossSpec {
  if (typeof loss !== 'string') return loss;
  const spec = LOSSES[loss];
  if (!spec) throw new Error(`unknown loss '${String(loss)}' (expected one of ${Object.keys(LOSSES).join(', ')})`);
  return spec;
}
