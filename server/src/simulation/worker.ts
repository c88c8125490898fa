/**
 * A simulator worker thread: hosts some virtual devices, each a real SDK FederatedClient with its own
 * local data (ArrayDataSource over tensors), an in-memory store (so a new device key, and client id,
 * per run) and manual conditions set to 'yes', connected to the coordinator over socket.io. Each worker loads its own tfjs + wasm backend.
 *
 * Simulated dropout: when a selected client's (seed, round, client) hash falls below the dropout
 * probability, its 'idle' condition flips to 'no' after a random number of training batches; the SDK
 * then stops before the next batch and abandons the round. The condition returns to 'yes' once the
 * abandonment is reported.
 *
 * Byzantine clients (`--byzantine`) train like the others and poison what they upload through the
 * SDK's `transformDelta` hook (label flipping is done to their data before it reaches the worker).
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import {
  ArrayDataSource,
  ClientEvent,
  FederatedClient,
  ManualCondition,
  MemoryModelStore,
  ServerEvent,
  type FlockSocket,
  type SocketFactory,
} from '@flock/client-sdk';
import { initNodeBackend } from '@flock/client-sdk/node';
import { io } from 'socket.io-client';
import { mulberry32 } from '../datasets/seeded-random.js';
import { claimedExamples, poisonDelta, sourceAddress } from './byzantine.js';
import { hashInts } from './partition.js';
import { type MainToWorker, type SimulatedClientData, type WorkerInit, type WorkerToMain } from './worker-protocol.js';

const PIXELS = 784;
const CLASSES = 10;

interface SimClient {
  index: number;
  client: FederatedClient;
  idle: ManualCondition;
  tensors: tf.Tensor[];
}

const port = parentPort;
if (!port) throw new Error('simulation worker: must run in a worker thread');

function post(message: WorkerToMain): void {
  port!.postMessage(message);
}

let currentRound = 0;

function examples(images: Float32Array, labels: Uint8Array): { xs: tf.Tensor2D; ys: tf.Tensor2D } {
  const n = labels.length;
  const xs = tf.tensor2d(images, [n, PIXELS]);
  const ys = tf.tidy(() => tf.oneHot(tf.tensor1d(Int32Array.from(labels), 'int32'), CLASSES).toFloat() as tf.Tensor2D);
  return { xs, ys };
}

/**
 * The device's socket: from its own loopback source address (byzantine.ts sourceAddress) when the
 * coordinator is on this machine; a `scaling` attacker's uploads claim a huge example count (the
 * SDK reports its true count, capped by the plan); and publications reach only a sample of clients
 * (per version), so that not every device fetches, tests and adopts every version; the others
 * fetch a model only when selected.
 */
function simulatedSocket(init: WorkerInit, spec: SimulatedClientData): SocketFactory {
  const { index, attack } = spec;
  return (url, options) => {
    // engine.io-client passes `localAddress` on to ws in Node, though its option types omit it.
    const bound = init.sourceAddresses ? ({ ...options, localAddress: sourceAddress(index, attack) } as typeof options) : options;
    const socket = io(url, bound) as FlockSocket;
    const claim = claimedExamples(attack);
    if (claim !== null) {
      const emitWithAck = socket.emitWithAck.bind(socket) as (event: string, ...args: unknown[]) => Promise<unknown>;
      (socket as unknown as { emitWithAck: typeof emitWithAck }).emitWithAck = (event, ...args) =>
        event === ClientEvent.update ? emitWithAck(event, { ...(args[0] as object), numExamples: claim }) : emitWithAck(event, ...args);
    }
    if (init.localEvaluation >= 1) return socket;
    const on = socket.on.bind(socket) as (event: string, listener: (...args: unknown[]) => void) => FlockSocket;
    const sampled = (...args: unknown[]): boolean => {
      const version = (args[0] as { version?: unknown } | undefined)?.version;
      return typeof version === 'number' && hashInts(init.seed, version, index, 11) / 4294967296 < init.localEvaluation;
    };
    (socket as unknown as { on: typeof on }).on = (event, listener) =>
      event === ServerEvent.modelPublished ? on(event, (...args) => (sampled(...args) ? listener(...args) : undefined)) : on(event, listener);
    return socket;
  };
}

/** Seeded dropout: a selected client whose (seed, round, client) hash is below the dropout probability turns busy mid-training. */
function simulateDropout(client: FederatedClient, idle: ManualCondition, init: WorkerInit, spec: SimulatedClientData): void {
  let dropAfterBatches: number | null = null;
  let activeRoundId: string | null = null;
  client.on('roundJoined', (configuration) => {
    activeRoundId = configuration.roundId;
    dropAfterBatches = null;
    if (init.dropout <= 0) return;
    const h = hashInts(init.seed, currentRound, spec.index);
    if (h / 4294967296 >= init.dropout) return;
    const batches =
      configuration.plan.epochs * Math.ceil(spec.trainLabels.length / Math.max(1, Math.min(configuration.plan.batchSize, spec.trainLabels.length)));
    // After 1..batches-1 completed batches (mid-training), or after the first when there is one batch.
    dropAfterBatches = batches <= 1 ? 1 : 1 + (hashInts(h, 1) % (batches - 1));
  });
  client.on('trainingProgress', (progress) => {
    if (progress.purpose !== 'round' || dropAfterBatches === null || progress.roundId !== activeRoundId) return;
    const done = progress.epoch * progress.batchesPerEpoch + progress.batch + 1;
    if (done >= dropAfterBatches) {
      dropAfterBatches = null;
      idle.set('no'); // the SDK stops before its next batch and abandons the round
    }
  });
}

/** Tells the main thread about a client's uploads, abandonments and errors. */
function reportEvents(client: FederatedClient, idle: ManualCondition, index: number): void {
  client.on('roundAbandoned', ({ reason }) => {
    post({ type: 'dropped', round: currentRound, client: index, reason });
    if (idle.current() === 'no') setTimeout(() => idle.set('yes'), 0);
  });
  client.on('uploaded', ({ bytes, result, timings }) => {
    post({ type: 'uploaded', round: currentRound, client: index, bytes, accepted: result.accepted, timings });
  });
  client.on('error', (error) => {
    post({ type: 'clientError', client: index, code: error.code, message: error.message });
  });
}

function createClient(init: WorkerInit, spec: SimulatedClientData): SimClient {
  const train = examples(spec.trainImages, spec.trainLabels);
  const test = spec.testLabels.length > 0 ? examples(spec.testImages, spec.testLabels) : null;
  const idle = new ManualCondition('idle', 'yes');
  const attack = spec.attack;
  const conditions = [idle, new ManualCondition('charging', 'yes'), new ManualCondition('unmetered', 'yes')];
  const client = new FederatedClient({
    serverUrl: init.serverUrl,
    clientToken: init.clientToken,
    dataSource: new ArrayDataSource({ train, test }),
    conditions,
    store: new MemoryModelStore(),
    // Test each published model on the held-out split and adopt it as is: the SDK's adoption flow at
    // the cost of one small evaluation (no fine-tuning epochs).
    // With --personalization: the method's local epoch on each tested version.
    personalization: init.personalization ?? { fineTuneEpochs: 0 },
    requestTimeoutMs: 300_000,
    downloadDeltas: init.downloadDeltas,
    socketOptions: { transports: ['websocket'] },
    // Byzantine clients: a valid upload carrying a poisoned delta (noise drawn per round and client).
    ...(attack ? { transformDelta: (delta: Float32Array[]) => poisonDelta(attack, delta, mulberry32(hashInts(init.seed, currentRound, spec.index, 13))) } : {}),
    socketFactory: simulatedSocket(init, spec),
  });
  simulateDropout(client, idle, init, spec);
  reportEvents(client, idle, spec.index);
  return { index: spec.index, client, idle, tensors: [train.xs, train.ys, ...(test ? [test.xs, test.ys] : [])] };
}

async function main(): Promise<void> {
  const init = workerData as WorkerInit;
  const backend = await initNodeBackend();
  const clients = init.clients.map((spec) => createClient(init, spec));
  // The pixel arrays now live in tensors: let the copies go.
  init.clients.length = 0;
  await Promise.all(clients.map((sim) => sim.client.start()));
  port!.on('message', (message: MainToWorker) => {
    if (message.type === 'round') {
      currentRound = message.round;
    } else if (message.type === 'stop') {
      Promise.all(clients.map((sim) => sim.client.dispose().catch(() => undefined)))
        .then(() => {
          for (const sim of clients) tf.dispose(sim.tensors);
          post({ type: 'stopped' });
        })
        .catch((error: unknown) => post({ type: 'fatal', message: String(error) }));
    }
  });
  post({ type: 'ready', clients: clients.length, backend });
}

main().catch((error: unknown) => {
  post({ type: 'fatal', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
});
