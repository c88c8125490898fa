/**
 * Federated learning simulation against the real coordinator: K virtual devices (real SDK
 * FederatedClients with their own MNIST partitions) spread over worker threads, an in-process
 * coordinator (or an existing one), rounds started through the operator REST API, and the global
 * model evaluated on the 10,000 MNIST test images after every round.
 */
import { initNodeBackend } from '@flock/client-sdk/node';
import { readMnist } from '../datasets/mnist.js';
import { clientsOfWorker, partitionClients } from './client-data.js';
import { setUpCoordinator } from './coordinator-setup.js';
import { EvaluationThread } from './evaluation-thread.js';
import { FirstFailure, waitUntil } from './failure.js';
import { planSimulation, type SimulationOptions } from './options.js';
import type { SimulationSummary } from './report.js';
import { RoundLoop } from './round-loop.js';
import { summarize } from './statistics.js';
import { WorkerPool } from './worker-pool.js';

export type { SimulationOptions } from './options.js';

/** Runs a simulation; resolves with the per-round results (the caller writes them out). */
export async function runSimulation(partial: Partial<SimulationOptions> = {}): Promise<SimulationSummary> {
  const plan = planSimulation(partial);
  const { options } = plan;
  const log = options.onLog ?? (() => undefined);
  const started = performance.now();
  const backend = await initNodeBackend();
  const [train, test] = await Promise.all([readMnist('train'), readMnist('test')]);
  const parts = partitionClients(plan, train);
  log(`partition ${options.partition}: ${options.clients} clients, ${parts.reduce((n, p) => n + p.length, 0)} training examples`);
  const byzantineCount = plan.attacks.filter((attack) => attack !== null).length;
  if (byzantineCount > 0) log(`${byzantineCount} Byzantine client(s), attack ${options.attack}`);

  const failure = new FirstFailure();
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    const coordinator = await setUpCoordinator(options, log);
    cleanups.push(() => coordinator.close());
    const { server, api, initialVersion } = coordinator;

    const pool = new WorkerPool({
      workers: plan.workers,
      init: {
        serverUrl: server.url,
        clientToken: server.clientToken,
        seed: options.seed,
        dropout: options.dropout,
        localEvaluation: options.localEvaluation,
        personalization: options.personalization
          ? { ...options.personalization, fineTuneEpochs: 1, batchSize: options.batchSize, learningRate: options.learningRate }
          : null,
        sourceAddresses: options.server === null,
        downloadDeltas: options.compression.kind !== 'none',
      },
      clientsOf: (w) => clientsOfWorker(w, plan, parts, train, test),
      attacks: plan.attacks,
      failure,
      log,
    });
    cleanups.push(() => pool.stop());
    await waitUntil('the workers to start their clients', 300_000, failure, async () => pool.ready);
    // Thousands of clients handshake slowly on a loaded machine (the proof times out, the SDK retries): 0.3 s each at worst.
    await waitUntil(
      `${options.clients} eligible clients`,
      Math.max(120_000, 300 * options.clients),
      failure,
      async () => (await api.status()).eligibleClients >= options.clients,
    );

    const evaluator = new EvaluationThread({ serverUrl: server.url, operatorToken: server.operatorToken }, failure);
    cleanups.push(() => evaluator.terminate());
    await waitUntil('the evaluation thread', 120_000, failure, async () => evaluator.ready);
    const initial = await evaluator.evaluate(initialVersion);
    log(`version ${initialVersion}: test accuracy ${(initial.accuracy * 100).toFixed(2)}%`);
    const setupSeconds = (performance.now() - started) / 1000;

    const rounds = new RoundLoop({ plan, api, pool, evaluator, failure, log, initial });
    await rounds.run();
    evaluator.stop();
    const { rows, roundsToTarget } = rounds;
    return summarize({ plan, initialVersion, initial, rows, roundsToTarget, started, setupSeconds, clientErrors: pool.clientErrors, backend });
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
