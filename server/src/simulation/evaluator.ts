/**
 * The simulator's evaluation thread: fetches a committed global version over the REST API
 * (model.json + weights.bin) and tests it on the 10,000 MNIST test images, off the main thread so
 * that the next round (and the in-process coordinator) run meanwhile.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initNodeBackend } from '@flock/client-sdk/node';
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

async function fetchOk(url: string, token: string): Promise<Response> {
  const response = await noKeepAliveFetch(url, { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status} ${await response.text()}`);
  return response;
}

async function main(): Promise<void> {
  const port = parentPort!;
  const init = workerData as EvaluatorInit;
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
        const [jsonResponse, weightsResponse] = await Promise.all([
          fetchOk(`${init.serverUrl}/api/models/${version}/model.json`, init.operatorToken),
          fetchOk(`${init.serverUrl}/api/models/${version}/weights.bin`, init.operatorToken),
        ]);
        const { topology, weightSpecs } = parseModelJson(await jsonResponse.json());
        const weights = new Uint8Array(await weightsResponse.arrayBuffer());
        const result = await testSet.evaluate({ topology, weightSpecs, weights });
        if ('skipped' in result) throw new Error(result.skipped);
        port.postMessage({ type: 'result', version, accuracy: result.accuracy, loss: result.loss, seconds: (performance.now() - started) / 1000 } satisfies EvaluatorReply);
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
