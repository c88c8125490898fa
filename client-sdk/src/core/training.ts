/**
 * The local training loop: plain mini-batch SGD over a model's trainable weights, with an optional
 * FedProx proximal term, a stop check before every batch, and a yield to the event loop after
 * every batch (so condition changes and socket heartbeats are handled while training).
 *
 * A custom loop rather than `model.fit`: fit has no per-batch stop that takes effect before the next
 * batch, and no hook for the proximal gradient. It also reads no value back from the backend
 * inside an epoch (the loss is summed on the backend and read once per epoch), so it keeps pace
 * with fit (see bench/train-throughput.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_EVALUATION_BATCH_SIZE } from './defaults.js';
import type { LossSpec } from './losses.js';
import { yieldToEventLoop } from './runtime.js';

export interface LocalTrainingPlan {
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** FedProx mu: adds mu/2 * ||w - w_start||^2 to the objective. 0 or absent: plain SGD. */
  proximalMu?: number;
}

export interface BatchProgress {
  epoch: number;
  epochs: number;
  /** Batch index within the epoch, 0-based. */
  batch: number;
  batchesPerEpoch: number;
  /** Examples processed so far in this training run (over all epochs). */
  examplesSeen: number;
  /** Mean loss of the epoch, set on an epoch's last batch only (reading it syncs the backend). */
  epochLoss?: number;
}

export interface TrainOptions {
  loss: LossSpec;
  /** Checked before every batch: returning true stops training with no further batch. */
  shouldStop?: () => boolean;
  /** Called after every batch. */
  onBatchEnd?: (progress: BatchProgress) => void;
  /**
   * Where the proximal term pulls (one tensor per trainable weight, in `model.trainableWeights`
   * order; read only): Ditto's global model. Default: the weights training starts from (FedProx).
   */
  proximalAnchors?: readonly tf.Tensor[];
  /** Shuffle order source, for reproducible tests (default: tf's shuffled indices). */
  shuffle?: (count: number) => Uint32Array;
}

export interface TrainResult {
  /** False when `shouldStop` ended training early. */
  completed: boolean;
  epochsCompleted: number;
  batchesCompleted: number;
  examplesSeen: number;
  /** Example-weighted mean loss of the last completed epoch (null if none completed). */
  lastEpochLoss: number | null;
}

/**
 * Trains `model` in place on (xs, ys). The caller owns the model and the example tensors; every
 * tensor this function creates is disposed before it returns, also on error or stop.
 */
export async function trainModel(model: tf.LayersModel, xs: tf.Tensor, ys: tf.Tensor, plan: LocalTrainingPlan, options: TrainOptions): Promise<TrainResult> {
  const count = xs.shape[0] ?? 0;
  const batchSize = Math.max(1, Math.min(plan.batchSize, count));
  const batchesPerEpoch = Math.ceil(count / batchSize);
  const mu = plan.proximalMu ?? 0;
  const result: TrainResult = { completed: false, epochsCompleted: 0, batchesCompleted: 0, examplesSeen: 0, lastEpochLoss: null };
  if (count === 0) return { ...result, completed: true };

  const variables = model.trainableWeights.map((weight) => weight.read() as tf.Variable);
  const optimizer = tf.train.sgd(plan.learningRate);
  // FedProx anchors: the weights training started from (the received global model); Ditto's: given.
  const given = options.proximalAnchors;
  if (given && given.length !== variables.length) throw new Error(`trainModel: ${given.length} proximal anchors for ${variables.length} trainable weights`);
  const anchors: tf.Tensor[] = mu > 0 && !given ? variables.map((variable) => tf.keep(variable.clone())) : [];
  const pullTowards: readonly tf.Tensor[] = given ?? anchors;
  const muScalar = mu > 0 ? tf.keep(tf.scalar(mu)) : null;
  const shouldStop = options.shouldStop ?? (() => false);
  const shuffle = options.shuffle ?? ((n: number) => tf.util.createShuffledIndices(n));
  const objective = (xBatch: tf.Tensor, yBatch: tf.Tensor): tf.Scalar => options.loss.loss(yBatch, model.apply(xBatch, { training: true }) as tf.Tensor);

  // Example-weighted loss sum of the current epoch, kept on the backend until the epoch ends.
  let lossSum: tf.Scalar | null = null;
  try {
    for (let epoch = 0; epoch < plan.epochs; epoch++) {
      const order = shuffle(count);
      lossSum = tf.keep(tf.scalar(0));
      for (let batch = 0; batch < batchesPerEpoch; batch++) {
        if (shouldStop()) return result;
        const start = batch * batchSize;
        const size = Math.min(batchSize, count - start);
        const previousSum: tf.Scalar = lossSum!;
        lossSum = tf.tidy(() => {
          const indices = tf.tensor1d(Int32Array.from(order.subarray(start, start + size)), 'int32');
          const xBatch = tf.gather(xs, indices);
          const yBatch = tf.gather(ys, indices);
          let batchLoss: tf.Scalar;
          if (muScalar) {
            // Gradient of mu/2 * ||w - w0||^2 is mu * (w - w0): added to the data-loss gradient.
            const { value, grads } = tf.variableGrads(() => objective(xBatch, yBatch), variables);
            variables.forEach((variable, i) => {
              grads[variable.name] = tf.add(grads[variable.name]!, tf.mul(muScalar, tf.sub(variable, pullTowards[i]!)));
            });
            optimizer.applyGradients(grads);
            batchLoss = value;
          } else {
            batchLoss = optimizer.minimize(() => objective(xBatch, yBatch), true, variables)!;
          }
          return tf.add<tf.Scalar>(previousSum, tf.mul(batchLoss, size));
        });
        previousSum.dispose();
        result.batchesCompleted++;
        result.examplesSeen += size;
        const lastBatch = batch === batchesPerEpoch - 1;
        if (lastBatch) {
          const epochSum: tf.Scalar = lossSum;
          lossSum = null;
          result.lastEpochLoss = (await epochSum.data())[0]! / count;
          epochSum.dispose();
          result.epochsCompleted++;
        }
        options.onBatchEnd?.({
          epoch,
          epochs: plan.epochs,
          batch,
          batchesPerEpoch,
          examplesSeen: result.examplesSeen,
          ...(lastBatch ? { epochLoss: result.lastEpochLoss! } : {}),
        });
        await yieldToEventLoop();
      }
    }
    result.completed = true;
    return result;
  } finally {
    lossSum?.dispose();
    tf.dispose(anchors);
    muScalar?.dispose();
    optimizer.dispose();
  }
}

export interface EvaluationResult {
  loss: number;
  /** Fraction of examples predicted correctly. */
  accuracy: number;
  numExamples: number;
}

/** Mean loss and accuracy of `model` on (xs, ys), in batches, with one read-back at the end. */
export async function evaluateModel(
  model: tf.LayersModel,
  xs: tf.Tensor,
  ys: tf.Tensor,
  loss: LossSpec,
  batchSize = DEFAULT_EVALUATION_BATCH_SIZE,
): Promise<EvaluationResult> {
  const count = xs.shape[0] ?? 0;
  if (count === 0) return { loss: NaN, accuracy: NaN, numExamples: 0 };
  let totals = tf.keep(tf.zeros([2]));
  try {
    for (let start = 0; start < count; start += batchSize) {
      const size = Math.min(batchSize, count - start);
      const previous = totals;
      totals = tf.tidy(() => {
        const xBatch = tf.slice(xs, start, size);
        const yBatch = tf.slice(ys, start, size);
        const predictions = model.predict(xBatch) as tf.Tensor;
        const batchLoss = tf.mul(loss.loss(yBatch, predictions), size);
        const batchCorrect = tf.sum(loss.correct(yBatch, predictions));
        return tf.add(previous, tf.stack([batchLoss, batchCorrect]));
      });
      previous.dispose();
    }
    const [lossSum, correct] = await totals.data();
    return { loss: lossSum! / count, accuracy: correct! / count, numExamples: count };
  } finally {
    totals.dispose();
  }
}
