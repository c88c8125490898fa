/** Per-round rows and the run's summary, from the coordinator's round records and what the clients measured. */
import type { RoundDetails } from '../contract/index.js';
import type { SimulationPlan } from './options.js';
import type { RoundRow, SimulationSummary } from './report.js';

/** What the clients reported about their uploads in one round. */
export interface UploadTally {
  uploads: number;
  /** Uploads from Byzantine clients. */
  poisoned: number;
  downloadMs: number;
  trainingMs: number;
  encodeMs: number;
  uploadMs: number;
}

export function emptyTally(): UploadTally {
  return { uploads: 0, poisoned: 0, downloadMs: 0, trainingMs: 0, encodeMs: 0, uploadMs: 0 };
}

/** A global version's result on the MNIST test set. */
export interface TestResult {
  accuracy: number;
  loss: number;
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

const total = (counts: Partial<Record<string, number>>): number => Object.values(counts).reduce<number>((sum, n) => sum + (n ?? 0), 0);

export interface RoundOutcome {
  round: number;
  /** The round as it ended. */
  ended: RoundDetails;
  /** Wall-clock seconds from the start request to the end. */
  seconds: number;
  /** The global model's test result after the round (the previous one when the round did not commit). */
  test: TestResult;
  /** Seconds the evaluation thread spent on the committed version (0 without one). */
  evalSeconds: number;
  /** Seconds since the first round started. */
  elapsed: number;
}

export function roundRow({ round, ended, seconds, test, evalSeconds, elapsed }: RoundOutcome, tally: UploadTally): RoundRow {
  const metrics = ended.metrics;
  const mean = (sum: number): number | null => (tally.uploads > 0 ? sum / tally.uploads : null);
  return {
    round,
    status: ended.status,
    version: ended.committedVersion,
    accuracy: test.accuracy,
    loss: test.loss,
    clients: metrics.selected,
    accepted: metrics.accepted,
    rejected: total(metrics.rejected),
    dropped: total(metrics.dropped),
    trainLoss: metrics.meanTrainLoss,
    bytes: metrics.bytesReceived,
    bytesUp: metrics.bytesUp,
    bytesDown: metrics.bytesDown,
    poisoned: tally.poisoned,
    updateBound: metrics.updateBound,
    clipped: metrics.clippedUpdates,
    clamped: metrics.clampedExamples,
    updateNorm: metrics.updateNorm,
    seconds,
    ...phaseDurations(ended),
    validationMs: metrics.validationMs,
    aggregationMs: metrics.aggregationMs,
    clientDownloadMs: mean(tally.downloadMs),
    clientTrainingMs: mean(tally.trainingMs),
    clientEncodeMs: mean(tally.encodeMs),
    clientUploadMs: mean(tally.uploadMs),
    evalSeconds,
    elapsed,
  };
}

export interface RunRecord {
  plan: SimulationPlan;
  initialVersion: number;
  initial: TestResult;
  rows: RoundRow[];
  roundsToTarget: number | null;
  /** performance.now() when the run started. */
  started: number;
  setupSeconds: number;
  clientErrors: Record<string, number>;
  backend: string;
}

export function summarize({ plan, initialVersion, initial, rows, roundsToTarget, started, setupSeconds, clientErrors, backend }: RunRecord): SimulationSummary {
  const { options } = plan;
  const accuracies = rows.map((row) => row.accuracy);
  return {
    config: {
      ...Object.fromEntries(Object.entries(options).filter(([key]) => !['onRound', 'onLog', 'server'].includes(key))),
      server: options.server ? options.server.url : 'in-process',
      examplesPerClient: plan.examplesPerClient,
      clientsPerRound: plan.clientsPerRound,
      minClients: plan.minClients,
      workers: plan.workers,
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
}
