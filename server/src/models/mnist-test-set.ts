/**
 * The 10,000 MNIST test images as tensors, and the test of one model on them: what the
 * coordinator's test-set thread and the simulator's evaluation thread both run.
 */
import * as tf from '@tensorflow/tfjs';
import { evaluateModel, resolveLoss } from '@flock/client-sdk';
import { MNIST_CLASSES, MNIST_PIXELS, mnistTensors, readMnist } from '../datasets/mnist.js';
import { loadLayersModelFromParts, type ModelArtifactsParts } from './tfjs-format.js';

export type MnistTestResult = { accuracy: number; loss: number; numExamples: number } | { skipped: string };

export interface MnistTestSet {
  /** Tests a model given as parts; models that are not MNIST classifiers are skipped, with the reason. */
  evaluate(parts: ModelArtifactsParts): Promise<MnistTestResult>;
  dispose(): void;
}

const sameShape = (a: readonly (number | null)[], b: readonly (number | null)[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/** Loads the test split (call after the tfjs backend is set). */
export async function loadMnistTestSet(): Promise<MnistTestSet> {
  const { xs, ys } = mnistTensors(await readMnist('test'));
  const loss = resolveLoss('categoricalCrossentropy');
  return {
    async evaluate(parts) {
      const model = await loadLayersModelFromParts(parts);
      try {
        const input = model.inputs[0]!.shape;
        const output = model.outputs[0]!.shape;
        // Flat 784-value inputs, or 28x28x1 images (a CNN).
        const images = sameShape(input, [null, MNIST_PIXELS]) ? xs : sameShape(input, [null, 28, 28, 1]) ? xs.reshape([-1, 28, 28, 1]) : null;
        if (!images || model.inputs.length !== 1 || !sameShape(output, [null, MNIST_CLASSES])) {
          return { skipped: `input ${JSON.stringify(input)} / output ${JSON.stringify(output)} is not an MNIST classifier` };
        }
        try {
          return await evaluateModel(model, images, ys, loss, 1000);
        } finally {
          if (images !== xs) images.dispose();
        }
      } finally {
        model.dispose();
      }
    },
    dispose() {
      tf.dispose([xs, ys]);
    },
  };
}
