/**
 * The coordinator's test-set thread: tests global model versions on the 10,000 MNIST test images,
 * off the main thread so that a second of tensor work never stalls device traffic. Models whose
 * input is not 784 values (or 28x28x1) or whose output is not 10 classes are skipped, with the reason.
 */
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { evaluateModel, resolveLoss } from '@flock/client-sdk';
import { initNodeBackend } from '@flock/client-sdk/node';
import { MNIST_CLASSES, MNIST_PIXELS, mnistTensors, readMnist } from '../datasets/mnist.js';
import { loadLayersModelFromParts, type ModelArtifactsParts } from './tfjs-format.js';

export interface TestSetRequest extends ModelArtifactsParts {
  version: number;
}

export type TestSetReply =
  | { type: 'ready'; backend: string }
  | { type: 'result'; version: number; accuracy: number; loss: number; numExamples: number; seconds: number }
  | { type: 'skipped'; version: number; reason: string }
  | { type: 'failed'; version: number; message: string };

const port = parentPort;
if (!port) throw new Error('test-set worker: must run in a worker thread');

const sameShape = (a: readonly (number | null)[], b: readonly (number | null)[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

async function main(): Promise<void> {
  const backend = await initNodeBackend();
  const { xs, ys } = mnistTensors(await readMnist('test'));
  const loss = resolveLoss('categoricalCrossentropy');
  let queue: Promise<void> = Promise.resolve();
  port!.on('message', (request: TestSetRequest) => {
    queue = queue.then(async () => {
      const started = performance.now();
      let model: tf.LayersModel | null = null;
      try {
        model = await loadLayersModelFromParts(request);
        const input = model.inputs[0]!.shape;
        const output = model.outputs[0]!.shape;
        const images = sameShape(input, [null, MNIST_PIXELS]) ? xs : sameShape(input, [null, 28, 28, 1]) ? xs.reshape([-1, 28, 28, 1]) : null;
        if (!images || model.inputs.length !== 1 || !sameShape(output, [null, MNIST_CLASSES])) {
          port!.postMessage({ type: 'skipped', version: request.version, reason: `input ${JSON.stringify(input)} / output ${JSON.stringify(output)} is not an MNIST classifier` } satisfies TestSetReply);
          return;
        }
        try {
          const result = await evaluateModel(model, images, ys, loss, 1000);
          const seconds = (performance.now() - started) / 1000;
          port!.postMessage({ type: 'result', version: request.version, accuracy: result.accuracy, loss: result.loss, numExamples: result.numExamples, seconds } satisfies TestSetReply);
        } finally {
          if (images !== xs) images.dispose();
        }
      } catch (error) {
        port!.postMessage({ type: 'failed', version: request.version, message: error instanceof Error ? error.message : String(error) } satisfies TestSetReply);
      } finally {
        model?.dispose();
      }
    });
  });
  port!.postMessage({ type: 'ready', backend } satisfies TestSetReply);
}

main().catch((error: unknown) => {
  throw error;
});
