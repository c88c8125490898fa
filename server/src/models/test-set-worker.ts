/**
 * The coordinator's test-set thread: tests global model versions on the 10,000 MNIST test images,
 * off the main thread so that a second of tensor work never stalls device traffic. Models whose
 * input is not 784 values (or 28x28x1) or whose output is not 10 classes are skipped, with the reason.
 */
import { parentPort } from 'node:worker_threads';
import { initNodeBackend } from '@flock/client-sdk/node';
import { loadMnistTestSet } from './mnist-test-set.js';
import type { ModelArtifactsParts } from './tfjs-format.js';

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

async function main(): Promise<void> {
  const backend = await initNodeBackend();
  const testSet = await loadMnistTestSet();
  let queue: Promise<void> = Promise.resolve();
  port!.on('message', (request: TestSetRequest) => {
    queue = queue.then(async () => {
      const started = performance.now();
      const { version } = request;
      try {
        const result = await testSet.evaluate(request);
        const seconds = (performance.now() - started) / 1000;
        port!.postMessage(
          ('skipped' in result ? { type: 'skipped', version, reason: result.skipped } : { type: 'result', version, ...result, seconds }) satisfies TestSetReply,
        );
      } catch (error) {
        port!.postMessage({ type: 'failed', version, message: error instanceof Error ? error.message : String(error) } satisfies TestSetReply);
      }
    });
  });
  port!.postMessage({ type: 'ready', backend } satisfies TestSetReply);
}

// A failed start (no backend, no test set) reaches the coordinator as the worker's 'error'.
main().catch((error: unknown) => {
  throw error;
});
