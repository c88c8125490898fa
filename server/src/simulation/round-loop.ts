/**
 * The rounds of a simulation: each is started through the REST API and polled until it ends; the
 * evaluation thread tests each committed version while the next round already trains, and rows are
 * recorded in round order.
 */
import { isRoundFinished } from '@flock/client-sdk/protocol';
import type { FlockApiClient } from '../cli/api-client.js';
import type { RoundDetails, StartRoundRequest } from '../contract/index.js';
import type { Evaluation, EvaluationThread } from './evaluation-thread.js';
import { waitUntil, type FirstFailure } from './failure.js';
import type { SimulationPlan } from './options.js';
import type { RoundRow } from './report.js';
import { roundRow, type TestResult } from './statistics.js';
import type { WorkerPool } from './worker-pool.js';

export interface RoundLoopParts {
  plan: SimulationPlan;
  api: FlockApiClient;
  pool: WorkerPool;
  evaluator: EvaluationThread;
  failure: FirstFailure;
  log: (message: string) => void;
  /** The initial version's test result. */
  initial: TestResult;
}

export class RoundLoop {
  readonly rows: RoundRow[] = [];
  /** First round whose accuracy reached the target. */
  roundsToTarget: number | null = null;
  /** The latest committed version's test result. */
  private current: TestResult;
  private consecutiveFailures = 0;
  private readonly started = performance.now();
  // rows[] are completed in round order by this chain; `recorded[r]` settles when round r's row is in.
  private chain: Promise<void> = Promise.resolve();
  private readonly recorded: Promise<void>[] = [];

  constructor(private readonly parts: RoundLoopParts) {
    this.current = parts.initial;
  }

  /** Runs the rounds until the last one, the target accuracy, or the abort signal; resolves once every row is recorded. */
  async run(): Promise<void> {
    const { options } = this.parts.plan;
    for (let round = 1; round <= options.rounds; round++) {
      // At most one evaluation in flight behind the training: round r starts once round r-2 is recorded.
      if (round >= 3) await this.recorded[round - 3];
      this.parts.failure.throwIfAny();
      if (this.roundsToTarget !== null || options.signal?.aborted) break;
      this.parts.pool.broadcast({ type: 'round', round });
      const roundStarted = performance.now();
      const ended = await this.play(round);
      const seconds = (performance.now() - roundStarted) / 1000;
      this.countFailure(round, ended);
      const evaluation = ended.status === 'committed' && ended.committedVersion !== null ? this.parts.evaluator.evaluate(ended.committedVersion) : null;
      evaluation?.catch(() => undefined); // awaited in the chain
      this.chain = this.chain.then(() => this.record(round, ended, seconds, evaluation));
      this.recorded.push(this.chain);
    }
    await this.chain;
  }

  /** What the simulator asks for each round. */
  private request(): StartRoundRequest {
    const { plan } = this.parts;
    const { options } = plan;
    return {
      minClients: plan.minClients,
      targetClients: Math.max(plan.clientsPerRound, plan.minClients),
      overSelection: options.overSelection,
      selectionTimeoutSeconds: 120,
      deadlineSeconds: options.deadlineSeconds,
      epochs: options.epochs,
      batchSize: options.batchSize,
      learningRate: options.learningRate,
      strategy: options.strategy,
      strategyOptions: options.strategyOptions,
      ...(options.differentialPrivacy ? { differentialPrivacy: options.differentialPrivacy } : {}),
      ...(options.personalization ? { personalization: options.personalization } : {}),
      ...(options.compression.kind !== 'none' ? { compression: options.compression } : {}),
      // Secure rounds encode weights in fixed point below maxExamplesPerUpdate: a tight cap keeps the sum precise.
      ...(options.secureAggregation
        ? {
            // Every simulated device shares this machine's cores, so a phase takes n devices' masking work in sequence: 1 s per device, at least the default 30.
            secureAggregation: { keyAgreement: options.secureAggregation, phaseSeconds: Math.max(30, options.clients) },
            maxExamplesPerUpdate: plan.examplesPerClient,
          }
        : {}),
    };
  }

  /** Starts a round and polls it until it ends; cancels it if the run is aborted meanwhile. */
  private async play(round: number): Promise<RoundDetails> {
    const { api, failure, log, plan } = this.parts;
    const { options } = plan;
    const record = await api.startRound(this.request());
    let latest: RoundDetails | null = null;
    let cancelled = false;
    await waitUntil(`round ${round} to end`, (options.deadlineSeconds + 180) * 1000, failure, async () => {
      const details = await api.getRound(record.id);
      latest = details;
      if (isRoundFinished(details.status)) return true;
      if (options.signal?.aborted && !cancelled) {
        cancelled = true;
        log(`stopping: cancelling round ${round}`);
        await api.cancelRound(record.id).catch(() => undefined);
      }
      return false;
    });
    return latest!;
  }

  /** Three rounds in a row that do not commit end the run. */
  private countFailure(round: number, ended: RoundDetails): void {
    if (ended.status === 'committed') {
      this.consecutiveFailures = 0;
      return;
    }
    this.consecutiveFailures++;
    this.parts.log(`round ${round} ${ended.status}: ${ended.error ?? ''}`);
    if (this.consecutiveFailures >= 3) throw new Error(`3 rounds in a row did not commit; last: ${ended.error ?? ended.status}`);
  }

  private async record(round: number, ended: RoundDetails, seconds: number, evaluation: Promise<Evaluation> | null): Promise<void> {
    let evalSeconds = 0;
    if (evaluation) {
      const result = await evaluation;
      this.current = result;
      evalSeconds = result.seconds;
    }
    const elapsed = (performance.now() - this.started) / 1000;
    const row = roundRow({ round, ended, seconds, test: this.current, evalSeconds, elapsed }, this.parts.pool.takeTally(round));
    this.rows.push(row);
    this.parts.plan.options.onRound?.(row);
    const target = this.parts.plan.options.targetAccuracy;
    if (target !== null && this.roundsToTarget === null && this.current.accuracy >= target) this.roundsToTarget = round;
  }
}
