/**
 * An inference thread: holds loaded global model versions and runs `model.predict` on the batches
 * the pool sends, so that predictions never run on the event loop that runs rounds.
 */
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '@flock/client-sdk/node';
import { loadLayersModelFromParts } from '../models/tfjs-format.js';
import { signatureOf } from './model-signature.js';
import type { WorkerReply, WorkerRequest } from './worker-messages.js';

const port = parentPort;
if (!port) throw new Error('inference worker: must run in a worker thread');

const models = new Map<number, tf.LayersModel>();

function post(reply: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(reply, transfer);
}

async function load(request: Extract<WorkerRequest, { type: 'load' }>): Promise<void> {
  try {
    const existing = models.get(request.version);
    const model = existing ?? (await loadLayersModelFromParts(request));
    models.set(request.version, model);
    post({ type: 'loaded', version: request.version, signature: signatureOf(model) });
  } catch (error) {
    post({ type: 'load-failed', version: request.version, message: error instanceof Error ? error.message : String(error) });
  }
}

function predict(request: Extract<WorkerRequest, { type: 'predict' }>): void {
  const model = models.get(request.version);
  if (!model) {
    post({ type: 'predict-failed', id: request.id, message: `version ${request.version} is not loaded` });
    return;
  }
  try {
    const shape = [request.rows, ...model.inputs[0]!.shape.slice(1).map((d) => d ?? 1)];
    const input = tf.tensor(request.input, shape, 'float32');
    const result = model.predict(input);
    const tensors = Array.isArray(result) ? result : [result];
    const outputs = tensors.map((tensor) => tensor.dataSync() as Float32Array);
    input.dispose();
    for (const tensor of tensors) tensor.dispose();
    post(
      { type: 'predicted', id: request.id, outputs },
      outputs.map((o) => o.buffer as ArrayBuffer),
    );
  } catch (error) {
    post({ type: 'predict-failed', id: request.id, message: error instanceof Error ? error.message : String(error) });
  }
}

async function main(): Promise<void> {
  const backend = await initNodeBackend();
  // Loads are async (weights into the backend); predictions are synchronous and follow in order.
  let loading: Promise<void> = Promise.resolve();
  port!.on('message', (request: WorkerRequest) => {
    if (request.type === 'load') loading = loading.then(() => load(request));
    else if (request.type === 'unload') {
      loading = loading.then(() => {
        models.get(request.version)?.dispose();
        models.delete(request.version);
      });
    } else {
      // load() and predict() answer their own failures; the chain never rejects.
      loading.then(() => predict(request)).catch(() => undefined);
    }
  });
  post({ type: 'ready', backend });
}

main().catch((error: unknown) => {
  throw error;
});
