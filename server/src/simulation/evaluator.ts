/**
 * The simulator's evaluation thread: fetches a committed global version over the REST API with the
 * CLI's client (model.json + weights.bin) and tests it on the 10,000 MNIST test images, off the main
 * thread so that the next round (and the in-process coordinator) run meanwhile.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initNodeBackend } from '@flock/client-sdk/node';
import { FlockApiClient } from '../cli/api-client.js';
import { loadMnistTestSet } from '../models/mnist-test-set.js';
import { parseModelJson } from '../models/tfjs-format.js';
import { noKeepAliveFetch } from './http-fetch.js';

export interface EvaluatorInit {
  serverUrl: string;
  operatorToken: string;
}

export type EvaluatorRequest = { type: 'evaluate'; version: number } | { type: 'stop' };
export type EvaluatorReply =
  | { type: 'ready' }
  | { type: 'result'; version: number; accuracy: number; loss: number; seconds: number }
  | { type: 'failed'; version: number; message: string };

async function main(): Promise<void> {
  const port = parentPort!;
  const init = workerData as EvaluatorInit;
  // Generous: the in-process coordinator answers from the main thread, which may be busy with a commit.
  const api = new FlockApiClient({ baseUrl: init.serverUrl, token: init.operatorToken, timeoutMs: 300_000, fetch: noKeepAliveFetch });
  await initNodeBackend();
  const testSet = await loadMnistTestSet();
  let queue: Promise<void> = Promise.resolve();
  port.on('message', (message: EvaluatorRequest) => {
    if (message.type === 'stop') {
      queue = queue.then(() => {
        testSet.dispose();
        port.close();
      });
      return;
    }
    const { version } = message;
    queue = queue.then(async () => {
      const started = performance.now();
      try {
        const [modelJson, weights] = await Promise.all([api.modelJson(version), api.modelWeights(version)]);
        const { topology, weightSpecs } = parseModelJson(modelJson);
        const result = await testSet.evaluate({ topology, weightSpecs, weights });
        if ('skipped' in result) throw new Error(result.skipped);
        port.postMessage({
          type: 'result',
          version,
          accuracy: result.accuracy,
          loss: result.loss,
          seconds: (performance.now() - started) / 1000,
        } satisfies EvaluatorReply);
      } catch (error) {
        port.postMessage({ type: 'failed', version, message: error instanceof Error ? error.message : String(error) } satisfies EvaluatorReply);
      }
    });
  });
  port.postMessage({ type: 'ready' } satisfies EvaluatorReply);
}

main().catch((error: unknown) => {
  throw error;
});
