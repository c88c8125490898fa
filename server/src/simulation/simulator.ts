/**
 * Federated learning simulation against the real coordinator: K virtual devices (real SDK
 * FederatedClients with their own MNIST partitions) spread over worker threads, an in-process
 * coordinator (or an existing one), rounds started through the operator REST API, and the global
 * model evaluated on the 10,000 MNIST test images after every round.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { initNodeBackend } from '@flock/client-sdk/node';
import { isRoundFinished } from '@flock/client-sdk/protocol';
import { FlockApiClient } from '../cli/api-client.js';
import type { RoundDetails, StartRoundRequest, StrategyOptions } from '../contract/index.js';
import { loadConfig } from '../config/config.js';
import { createCoordinator, type Coordinator } from '../coordinator.js';
import { MNIST_PIXELS, readMnist, type MnistData } from '../datasets/mnist.js';
import { build2NN } from '../models/default-model.js';
import { modelToParts } from '../models/tfjs-format.js';
import { assignAttacks, flipLabels, type AttackChoice } from './byzantine.js';
import { hashInts, localTestIndices, partitionData, type PartitionKind } from './partition.js';
import type { RoundRow, SimulationSummary } from './report.js';
import { noKeepAliveFetch } from './http-fetch.js';
import type { EvaluatorInit, EvaluatorReply, EvaluatorRequest } from './evaluator.js';
import type { MainToWorker, SimulatedClientData, WorkerInit, WorkerToMain } from './worker-protocol.js';
import { startModuleWorker } from '../worker-thread.js';

export type InitialModelKind = 'random' | 'pretrained';

export interface ExistingServer {
  url: string;
  clientToken: string;
  operatorToken: string;
}

export interface SimulationOptions {
  /** K, the number of virtual clients. */
  clients: number;
  /** C, the fraction of clients selected per round: m = max(round(C * K), 1). */
  fraction: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  rounds: number;
  /** Stop as soon as the global test accuracy reaches this (0-1); null: run all rounds. */
  targetAccuracy: number | null;
  strategy: string;
  strategyOptions: Record<string, unknown>;
  partition: PartitionKind;
  /** Dirichlet concentration. */
  alpha: number;
  /** Training examples per client (default floor(60000 / K), 600 for K = 100). */
  examplesPerClient: number | null;
  seed: number;
  /** Probability that a selected client's conditions flip to 'no' mid-training. */
  dropout: number;
  /** Fraction of clients that are Byzantine (poisoned but protocol-valid uploads). */
  byzantine: number;
  /** What the Byzantine clients do (see byzantine.ts); 'mixed': the three attacks in turn. */
  attack: AttackChoice;
  workers: number;
  /** 'random': an untrained 2NN (seeded) as version 1, like the paper; 'pretrained': the coordinator's default. */
  init: InitialModelKind;
  /** Examples the coordinator's default model trains on (init pretrained, in-process only). */
  pretrainExamples: number;
  /** Held-out local test examples per client (drawn from the MNIST test split with the client's label mix). */
  localTestExamples: number;
  /** Fraction of clients that test each published global model locally (the SDK's adoption flow); 0 = none. */
  localEvaluation: number;
  overSelection: number;
  /** Valid updates needed to commit; null: m without dropout, 1 with dropout. */
  minClients: number | null;
  deadlineSeconds: number;
  /** Run against this coordinator instead of an in-process one. */
  server: ExistingServer | null;
  onRound?: (row: RoundRow) => void;
  onLog?: (message: string) => void;
  /** Stops after the round in flight is cancelled; the rounds so far are returned (`stopped: true`). */
  signal?: AbortSignal;
}

export const DEFAULT_SIMULATION_OPTIONS: SimulationOptions = {
  clients: 100,
  fraction: 0.1,
  epochs: 1,
  batchSize: 10,
  learningRate: 0.1,
  rounds: 20,
  targetAccuracy: null,
  strategy: 'fedavg',
  strategyOptions: {},
  partition: 'iid',
  alpha: 0.5,
  examplesPerClient: null,
  seed: 1,
  dropout: 0,
  byzantine: 0,
  attack: 'mixed',
  workers: 2,
  init: 'random',
  pretrainExamples: 6000,
  localTestExamples: 20,
  localEvaluation: 0.1,
  overSelection: 1,
  minClients: null,
  deadlineSeconds: 600,
  server: null,
};

function startWorker(name: 'worker' | 'evaluator', options: { workerData: unknown; transferList?: ArrayBuffer[] }): Worker {
  return startModuleWorker(new URL(`./${name}.js`, import.meta.url), options);
}

function gather(data: MnistData, indices: ArrayLike<number>): { images: Float32Array; labels: Uint8Array } {
  const images = new Float32Array(indices.length * MNIST_PIXELS);
  const labels = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const index = indices[i]!;
    images.set(data.images.subarray(index * MNIST_PIXELS, (index + 1) * MNIST_PIXELS), i * MNIST_PIXELS);
    labels[i] = data.labels[index]!;
  }
  return { images, labels };
}

/** Registers a model with the coordinator's REST API (multipart, as tf.io.http sends it). */
async function registerModel(url: string, token: string, topology: unknown, weightSpecs: unknown, weights: Uint8Array, metrics: Record<string, unknown>): Promise<number> {
  const form = new FormData();
  const modelJson = { modelTopology: topology, format: 'layers-model', weightsManifest: [{ paths: ['./model.weights.bin'], weights: weightSpecs }] };
  form.append('model.json', new Blob([JSON.stringify(modelJson)], { type: 'application/json' }), 'model.json');
  form.append('model.weights.bin', new Blob([weights.slice()], { type: 'application/octet-stream' }), 'model.weights.bin');
  form.append('metrics', JSON.stringify(metrics));
  const response = await fetch(`${url}/api/models`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
  const body = (await response.json()) as { version?: number; message?: unknown };
  if (!response.ok || typeof body.version !== 'number') throw new Error(`registering the initial model failed: HTTP ${response.status} ${JSON.stringify(body)}`);
  return body.version;
}

interface UploadTally {
  uploads: number;
  /** Uploads from Byzantine clients. */
  poisoned: number;
  downloadMs: number;
  trainingMs: number;
  encodeMs: number;
  uploadMs: number;
}

function emptyTally(): UploadTally {
  return { uploads: 0, poisoned: 0, downloadMs: 0, trainingMs: 0, encodeMs: 0, uploadMs: 0 };
}

/** Milliseconds a round spent selecting and configuring, reporting, and committing (from its transitions). */
function phaseDurations(round: RoundDetails): Pick<RoundRow, 'selectionMs' | 'reportingMs' | 'commitMs'> {
  const at = (status: string): number | null => {
    const transition = round.transitions.find((t) => t.to === status);
    return transition ? Date.parse(transition.at) : null;
  };
  const span = (from: number | null, to: number | null): number | null => (from !== null && to !== null ? to - from : null);
  const [selecting, reporting, committing, committed] = [at('selecting'), at('reporting'), at('committing'), at('committed')];
  return { selectionMs: span(selecting, reporting), reportingMs: span(reporting, committing), commitMs: span(committing, committed) };
}

interface WorkerHandle {
  worker: Worker;
  ready: Promise<void>;
  stopped: Promise<void>;
}

/** Runs a simulation; resolves with the per-round results (the caller writes them out). */
export async function runSimulation(partial: Partial<SimulationOptions> = {}): Promise<SimulationSummary> {
  const options: SimulationOptions = { ...DEFAULT_SIMULATION_OPTIONS, ...partial };
  const log = options.onLog ?? (() => undefined);
  const started = performance.now();
  const K = options.clients;
  if (!Number.isInteger(K) || K < 1) throw new RangeError(`clients must be a positive integer, got ${K}`);
  if (!(options.fraction >= 0 && options.fraction <= 1)) throw new RangeError(`fraction must be in [0, 1], got ${options.fraction}`);
  if (!(options.localEvaluation >= 0 && options.localEvaluation <= 1)) throw new RangeError(`localEvaluation must be in [0, 1], got ${options.localEvaluation}`);
  if (!(options.dropout >= 0 && options.dropout < 1)) throw new RangeError(`dropout must be in [0, 1), got ${options.dropout}`);
  const attacks = assignAttacks(K, options.byzantine, options.attack, options.seed);
  const workers = Math.max(1, Math.min(options.workers, K));
  const perClient = options.examplesPerClient ?? Math.floor(60_000 / K);
  const m = Math.max(Math.round(options.fraction * K), 1);
  const minClients = options.minClients ?? (options.dropout > 0 ? 1 : m);

  const backend = await initNodeBackend();
  const [train, test] = await Promise.all([readMnist('train'), readMnist('test')]);
  const parts = partitionData(options.partition, train.labels, { clients: K, examplesPerClient: perClient, seed: options.seed, alpha: options.alpha });
  log(`partition ${options.partition}: ${K} clients, ${parts.reduce((n, p) => n + p.length, 0)} training examples`);
  const byzantineCount = attacks.filter((attack) => attack !== null).length;
  if (byzantineCount > 0) log(`${byzantineCount} Byzantine client(s), attack ${options.attack}`);

  const cleanups: (() => Promise<void> | void)[] = [];
  const handles: WorkerHandle[] = [];
  let fatal: Error | null = null;
  const clientErrors: Record<string, number> = {};
  // Per round: the uploads the clients reported and how long their phases took.
  const uploadsByRound = new Map<number, UploadTally>();

  try {
    // ------------------------------------------------------------ coordinator and version 1
    let server: ExistingServer;
    let initialVersion: number | null = null;
    let randomModel: { topology: unknown; weightSpecs: unknown; weights: Uint8Array } | null = null;
    if (options.init === 'random') {
      const model = build2NN(options.seed);
      try {
        randomModel = await modelToParts(model);
      } finally {
        model.dispose();
      }
    }
    if (options.server) {
      server = options.server;
      if (randomModel) {
        initialVersion = await registerModel(server.url, server.operatorToken, randomModel.topology, randomModel.weightSpecs, randomModel.weights, {
          initialModel: 'simulation-random-2nn',
          seed: options.seed,
        });
        log(`registered a random 2NN as version ${initialVersion}`);
      }
    } else {
      const dataDir = mkdtempSync(join(tmpdir(), 'flock-sim-'));
      cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
      let initialModelPath: string | null = null;
      if (randomModel) {
        initialModelPath = join(dataDir, 'initial-model.json');
        writeFileSync(join(dataDir, 'initial-weights.bin'), randomModel.weights);
        writeFileSync(
          initialModelPath,
          JSON.stringify({ format: 'layers-model', modelTopology: randomModel.topology, weightsManifest: [{ paths: ['initial-weights.bin'], weights: randomModel.weightSpecs }] }),
        );
      }
      const config = loadConfig(
        {},
        {
          port: 0,
          host: '127.0.0.1',
          dataDir,
          clientToken: randomBytes(18).toString('base64url'),
          operatorToken: randomBytes(18).toString('base64url'),
          initialModelPath,
          defaultModelTrainExamples: options.pretrainExamples,
          // The simulator's own evaluation thread tests every version (an existing --server too).
          testSet: 'none',
        },
      );
      const coordinator: Coordinator = await createCoordinator(config);
      cleanups.push(() => coordinator.close());
      server = { url: coordinator.url, clientToken: config.clientToken, operatorToken: config.operatorToken };
      log(`in-process coordinator at ${coordinator.url}`);
    }
    const api = new FlockApiClient({ baseUrl: server.url, token: server.operatorToken, timeoutMs: 60_000, fetch: noKeepAliveFetch });
    initialVersion ??= (await api.currentModel()).version;

    // ------------------------------------------------------------ workers and their clients
    const runTag = randomBytes(4).toString('hex');
    for (let w = 0; w < workers; w++) {
      const clients: SimulatedClientData[] = [];
      for (let k = w; k < K; k += workers) {
        const own = gather(train, parts[k]!);
        if (attacks[k] === 'label-flip') flipLabels(own.labels);
        const testIdx = options.localTestExamples > 0 ? localTestIndices(train.labels, parts[k]!, test.labels, options.localTestExamples, hashInts(options.seed, k, 7)) : new Int32Array(0);
        const local = gather(test, testIdx);
        clients.push({ index: k, trainImages: own.images, trainLabels: own.labels, testImages: local.images, testLabels: local.labels, attack: attacks[k]! });
      }
      const init: WorkerInit = {
        serverUrl: server.url,
        clientToken: server.clientToken,
        runTag,
        seed: options.seed,
        dropout: options.dropout,
        localEvaluation: options.localEvaluation,
        clients,
      };
      const transfer = clients.flatMap((c) => [c.trainImages.buffer, c.trainLabels.buffer, c.testImages.buffer, c.testLabels.buffer]) as ArrayBuffer[];
      const worker = startWorker('worker', { workerData: init, transferList: transfer });
      let resolveReady!: () => void;
      let resolveStopped!: () => void;
      const ready = new Promise<void>((resolve) => (resolveReady = resolve));
      const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
      worker.on('message', (message: WorkerToMain) => {
        switch (message.type) {
          case 'ready':
            log(`worker ${w}: ${message.clients} clients on ${message.backend}`);
            resolveReady();
            break;
          case 'stopped':
            resolveStopped();
            break;
          case 'uploaded': {
            const tally = uploadsByRound.get(message.round) ?? emptyTally();
            uploadsByRound.set(message.round, tally);
            tally.uploads++;
            if (attacks[message.client]) tally.poisoned++;
            tally.downloadMs += message.timings.downloadMs;
            tally.trainingMs += message.timings.trainingMs;
            tally.encodeMs += message.timings.encodeMs;
            tally.uploadMs += message.timings.uploadMs;
            break;
          }
          case 'fatal':
            fatal ??= new Error(`simulation worker ${w} failed: ${message.message}`);
            break;
          case 'clientError':
            clientErrors[message.code] = (clientErrors[message.code] ?? 0) + 1;
            if (clientErrors[message.code]! <= 3) log(`client ${message.client}: ${message.code}: ${message.message}`);
            break;
          default:
            break;
        }
      });
      worker.on('error', (error) => {
        fatal ??= new Error(`simulation worker ${w} crashed: ${error.stack ?? error.message}`);
      });
      worker.on('exit', (code) => {
        resolveStopped();
        if (code !== 0) fatal ??= new Error(`simulation worker ${w} exited with code ${code}`);
      });
      handles.push({ worker, ready, stopped });
    }
    const post = (message: MainToWorker): void => handles.forEach((h) => h.worker.postMessage(message));
    cleanups.push(async () => {
      post({ type: 'stop' });
      await Promise.race([Promise.all(handles.map((h) => h.stopped)), new Promise((resolve) => setTimeout(resolve, 10_000))]);
      await Promise.all(handles.map((h) => h.worker.terminate()));
    });

    const waitUntil = async (what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (fatal) throw fatal;
        if (await check()) return;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    let allReady = false;
    void Promise.all(handles.map((h) => h.ready)).then(() => (allReady = true));
    await waitUntil('the workers to start their clients', 300_000, async () => allReady);
    await waitUntil(`${K} eligible clients`, 120_000, async () => (await api.health()).eligibleClients >= K);

    // ------------------------------------------------------------ rounds
    // The evaluation thread tests each committed version while the next round already trains.
    const evaluator = startWorker('evaluator', { workerData: { serverUrl: server.url, operatorToken: server.operatorToken } satisfies EvaluatorInit });
    const pendingEvaluations = new Map<number, { resolve: (r: { accuracy: number; loss: number; seconds: number }) => void; reject: (e: Error) => void }>();
    let evaluatorReady = false;
    evaluator.on('message', (reply: EvaluatorReply) => {
      if (reply.type === 'ready') {
        evaluatorReady = true;
        return;
      }
      const pending = pendingEvaluations.get(reply.version);
      pendingEvaluations.delete(reply.version);
      if (reply.type === 'result') pending?.resolve(reply);
      else pending?.reject(new Error(`evaluating version ${reply.version} failed: ${reply.message}`));
    });
    evaluator.on('error', (error) => {
      fatal ??= new Error(`evaluation thread crashed: ${error.stack ?? error.message}`);
      for (const pending of pendingEvaluations.values()) pending.reject(fatal);
    });
    cleanups.push(async () => {
      await evaluator.terminate();
    });
    const evaluateVersion = (version: number): Promise<{ accuracy: number; loss: number; seconds: number }> =>
      new Promise((resolve, reject) => {
        pendingEvaluations.set(version, { resolve, reject });
        evaluator.postMessage({ type: 'evaluate', version } satisfies EvaluatorRequest);
      });
    await waitUntil('the evaluation thread', 120_000, async () => evaluatorReady);

    const initial = await evaluateVersion(initialVersion);
    log(`version ${initialVersion}: test accuracy ${(initial.accuracy * 100).toFixed(2)}%`);
    const setupSeconds = (performance.now() - started) / 1000;
    const roundsStarted = performance.now();
    const rows: RoundRow[] = [];
    let current: { accuracy: number; loss: number } = initial;
    let roundsToTarget: number | null = null;
    let consecutiveFailures = 0;
    // rows[] are completed in round order by this chain; `recorded[r]` settles when round r's row is in.
    let chain: Promise<void> = Promise.resolve();
    const recorded: Promise<void>[] = [];
    for (let round = 1; round <= options.rounds; round++) {
      // At most one evaluation in flight behind the training: round r starts once round r-2 is recorded.
      if (round >= 3) await recorded[round - 3];
      if (fatal) throw fatal;
      if (roundsToTarget !== null || options.signal?.aborted) break;
      post({ type: 'round', round });
      const roundStarted = performance.now();
      const request: StartRoundRequest = {
        minClients,
        targetClients: Math.max(m, minClients),
        overSelection: options.overSelection,
        selectionTimeoutSeconds: 120,
        deadlineSeconds: options.deadlineSeconds,
        epochs: options.epochs,
        batchSize: options.batchSize,
        learningRate: options.learningRate,
        strategy: options.strategy,
        strategyOptions: options.strategyOptions as StrategyOptions, // checked by the coordinator
      };
      const record = await api.startRound(request);
      const holder: { details: RoundDetails | null } = { details: null };
      let cancelled = false;
      await waitUntil(`round ${round} to end`, (options.deadlineSeconds + 180) * 1000, async () => {
        holder.details = await api.getRound(record.id);
        if (isRoundFinished(holder.details.status)) return true;
        if (options.signal?.aborted && !cancelled) {
          cancelled = true;
          log(`stopping: cancelling round ${round}`);
          await api.cancelRound(record.id).catch(() => undefined);
        }
        return false;
      });
      const ended = holder.details!;
      const seconds = (performance.now() - roundStarted) / 1000;
      if (ended.status !== 'committed') {
        consecutiveFailures++;
        log(`round ${round} ${ended.status}: ${ended.error ?? ''}`);
        if (consecutiveFailures >= 3) throw new Error(`3 rounds in a row did not commit; last: ${ended.error ?? ended.status}`);
      } else {
        consecutiveFailures = 0;
      }
      const evaluation = ended.status === 'committed' && ended.committedVersion !== null ? evaluateVersion(ended.committedVersion) : null;
      evaluation?.catch(() => undefined); // awaited in the chain below
      chain = chain.then(async () => {
        let evalSeconds = 0;
        if (evaluation) {
          const result = await evaluation;
          current = result;
          evalSeconds = result.seconds;
        }
        const metrics = ended.metrics;
        const tally = uploadsByRound.get(round) ?? emptyTally();
        uploadsByRound.delete(round);
        const mean = (total: number): number | null => (tally.uploads > 0 ? total / tally.uploads : null);
        const row: RoundRow = {
          round,
          status: ended.status,
          version: ended.committedVersion,
          accuracy: current.accuracy,
          loss: current.loss,
          clients: metrics.selected,
          accepted: metrics.accepted,
          rejected: Object.values(metrics.rejected).reduce<number>((sum, n) => sum + (n ?? 0), 0),
          dropped: Object.values(metrics.dropped).reduce<number>((sum, n) => sum + (n ?? 0), 0),
          trainLoss: metrics.meanTrainLoss,
          bytes: metrics.bytesReceived,
          poisoned: tally.poisoned,
          seconds,
          ...phaseDurations(ended),
          validationMs: metrics.validationMs,
          aggregationMs: metrics.aggregationMs,
          clientDownloadMs: mean(tally.downloadMs),
          clientTrainingMs: mean(tally.trainingMs),
          clientEncodeMs: mean(tally.encodeMs),
          clientUploadMs: mean(tally.uploadMs),
          evalSeconds,
          elapsed: (performance.now() - roundsStarted) / 1000,
        };
        rows.push(row);
        options.onRound?.(row);
        if (options.targetAccuracy !== null && roundsToTarget === null && current.accuracy >= options.targetAccuracy) roundsToTarget = round;
      });
      recorded.push(chain);
    }
    await chain;
    evaluator.postMessage({ type: 'stop' } satisfies EvaluatorRequest);

    const accuracies = rows.map((row) => row.accuracy);
    return {
      config: {
        ...Object.fromEntries(Object.entries(options).filter(([key]) => !['onRound', 'onLog', 'server'].includes(key))),
        server: options.server ? options.server.url : 'in-process',
        examplesPerClient: perClient,
        clientsPerRound: m,
        minClients,
        workers,
        initialVersion,
      },
      initialAccuracy: initial.accuracy,
      initialLoss: initial.loss,
      rounds: rows,
      finalAccuracy: rows.at(-1)?.accuracy ?? initial.accuracy,
      bestAccuracy: Math.max(initial.accuracy, ...accuracies),
      roundsToTarget,
      stopped: options.signal?.aborted ?? false,
      totalSeconds: (performance.now() - started) / 1000,
      setupSeconds,
      clientErrors,
      backend,
    };
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        log(`cleanup failed: ${(error as Error).message}`);
      }
    }
  }
}
