/**
 * The default global model: the "2NN" of McMahan et al. 2017 ("Communication-Efficient Learning of
 * Deep Networks from Decentralized Data"), a multilayer perceptron with two hidden layers of 200
 * ReLU units and a softmax output, 199,210 parameters. The coordinator pre-trains it on a small
 * slice of real MNIST at first start so that devices begin from a useful model.
 */
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '@flock/client-sdk/node';
import { MNIST_CLASSES, MNIST_PIXELS, mnistTensors, readMnist } from '../datasets/mnist.js';
import { mulberry32 } from '../datasets/seeded-random.js';
import { modelToParts, type ModelArtifactsParts } from './tfjs-format.js';

export const DEFAULT_MODEL_NAME = 'mnist_2nn';
export const DEFAULT_MODEL_PARAMETERS = 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10; // 199,210

export interface DefaultModelOptions {
  /** Examples from the start of the MNIST training split. */
  trainExamples: number;
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  /** Seeds the initializers and the per-epoch shuffles (training is deterministic on one backend). */
  seed?: number;
}

export interface TrainedDefaultModel extends ModelArtifactsParts {
  metrics: {
    testAccuracy: number;
    testLoss: number;
    trainExamples: number;
    testExamples: number;
    epochs: number;
    batchSize: number;
    trainSeconds: number;
    backend: string;
    architecture: string;
    dataset: string;
  };
}

let backend: Promise<string> | null = null;

/**
 * The TensorFlow.js backend to compute with: the one the process already chose (main.ts calls
 * initNodeBackend), else the best Node backend (native, else wasm, else cpu), chosen once.
 */
export function ensureTfBackend(): Promise<string> {
  if (!backend) {
    const chosen = tf.engine().backendName;
    backend = chosen ? tf.ready().then(() => chosen) : initNodeBackend();
    backend.catch(() => {
      backend = null;
    });
  }
  return backend;
}

/** The untrained 2NN with fixed layer names (stable weight names across processes). */
export function build2NN(seed = 1): tf.Sequential {
  return tf.sequential({
    name: DEFAULT_MODEL_NAME,
    layers: [
      tf.layers.dense({
        name: 'hidden1',
        inputShape: [MNIST_PIXELS],
        units: 200,
        activation: 'relu',
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
      }),
      tf.layers.dense({ name: 'hidden2', units: 200, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }),
      tf.layers.dense({
        name: 'output',
        units: MNIST_CLASSES,
        activation: 'softmax',
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }),
      }),
    ],
  });
}

function permutation(n: number, random: () => number): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/**
 * Trains the 2NN on the first `trainExamples` MNIST training images (Adam, cross-entropy) and
 * evaluates it on the 10,000 test images. Initialises the Node backend (native, wasm, cpu) if needed.
 */
export async function trainDefaultModel(options: DefaultModelOptions): Promise<TrainedDefaultModel> {
  const { trainExamples, epochs = 2, batchSize = 50, learningRate = 0.002, seed = 1 } = options;
  if (!Number.isInteger(trainExamples) || trainExamples < 1 || trainExamples > 60_000) {
    throw new RangeError(`trainExamples must be an integer in 1..60000, got ${trainExamples}`);
  }
  const backendName = await ensureTfBackend();
  const started = performance.now();
  const model = build2NN(seed);
  const optimizer = tf.train.adam(learningRate);
  model.compile({ optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  const random = mulberry32(seed);
  try {
    const train = mnistTensors(await readMnist('train', { count: trainExamples }));
    try {
      for (let epoch = 0; epoch < epochs; epoch++) {
        // fit's own shuffle uses Math.random; shuffle with the seeded PRNG instead.
        const order = tf.tensor1d(permutation(trainExamples, random), 'int32');
        const xs = tf.gather(train.xs, order);
        const ys = tf.gather(train.ys, order);
        try {
          await model.fit(xs, ys, { epochs: 1, batchSize, shuffle: false, verbose: 0 });
        } finally {
          tf.dispose([order, xs, ys]);
        }
      }
    } finally {
      tf.dispose([train.xs, train.ys]);
    }
    const trainSeconds = (performance.now() - started) / 1000;

    const testData = await readMnist('test');
    const test = mnistTensors(testData);
    let testLoss: number;
    let testAccuracy: number;
    try {
      const results = model.evaluate(test.xs, test.ys, { batchSize: 1000 }) as tf.Scalar[];
      [testLoss, testAccuracy] = (await Promise.all(results.map(async (scalar) => (await scalar.data())[0]!))) as [number, number];
      tf.dispose(results);
    } finally {
      tf.dispose([test.xs, test.ys]);
    }

    const parts = await modelToParts(model);
    return {
      ...parts,
      metrics: {
        testAccuracy,
        testLoss,
        trainExamples,
        testExamples: testData.count,
        epochs,
        batchSize,
        trainSeconds: Math.round(trainSeconds * 1000) / 1000,
        backend: backendName,
        architecture: '2nn-784-200-200-10',
        dataset: 'mnist',
      },
    };
  } finally {
    model.dispose();
    optimizer.dispose(); // a model does not dispose an optimizer instance it was given
  }
}
