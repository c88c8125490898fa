import type { RejectionReason, RoundStatus, TrainingPlan } from '@flock/client-sdk/protocol';
import type { StrategyOptions } from '../aggregation/strategies.js';

// The statuses and their order are part of the protocol (one list for every side).
export { ROUND_STATUSES, type RoundStatus } from '@flock/client-sdk/protocol';

/** What an operator asks for when starting a round. */
export interface RoundParams {
  /** Valid updates needed to commit. */
  minClients: number;
  /** Updates wanted; the coordinator selects ceil(targetClients * overSelection) devices. */
  targetClients: number;
  /** Selection factor over the target (Bonawitz et al. use 1.3). */
  overSelection: number;
  /** How long to wait for minClients eligible devices before failing the round. */
  selectionTimeoutMs: number;
  /** Reporting deadline, measured from configuration. */
  deadlineMs: number;
  plan: TrainingPlan;
  /** Aggregation strategy name (see aggregation/). */
  strategy: string;
  /** Options of the strategy, as the operator gave them (defaults are documented per strategy). */
  strategyOptions: StrategyOptions;
  /** Optional L2 bound on each update; uploads above it are rejected with norm_exceeded. */
  maxUpdateNorm: number | null;
}

/** Aggregate numbers of devices' local tests of the version a round committed. */
export interface LocalEvaluationSummary {
  reports: number;
  numExamples: number;
  /** Example-weighted means. */
  globalAccuracy: number;
  globalLoss: number;
  personalAccuracy: number | null;
  personalLoss: number | null;
  /** Examples behind the personal-model means (reports that had a personal model). */
  personalNumExamples?: number;
  adopted: number;
}

export interface RoundMetrics {
  eligibleAtSelection: number;
  selected: number;
  reported: number;
  accepted: number;
  rejected: Partial<Record<RejectionReason, number>>;
  /** Selected clients that disconnected or abandoned before uploading, by cause. */
  dropped: Partial<Record<string, number>>;
  /** Sum of numExamples of accepted updates. */
  totalExamples: number;
  /** Example-weighted mean of the accepted updates' training losses. */
  meanTrainLoss: number | null;
  /** L2 norm of the change the strategy applied (aggregate delta, or x_new - x_old for server optimizers). */
  updateNorm: number | null;
  /** Bytes of weight data received in uploads, accepted or not. */
  bytesReceived: number;
  /** Milliseconds spent decoding and validating the accepted uploads (shapes, finiteness, norm). */
  validationMs: number;
  /** Milliseconds spent folding updates into the aggregate and finalizing it. */
  aggregationMs: number;
  durationMs: number | null;
  localEvaluation: LocalEvaluationSummary | null;
}

export interface RoundRecord {
  id: string;
  /** The global version clients train from. */
  baseVersion: number;
  status: RoundStatus;
  params: RoundParams;
  metrics: RoundMetrics;
  /** The version this round committed. */
  committedVersion: number | null;
  /** Why the round failed or was aborted. */
  error: string | null;
  createdAt: string;
  updatedAt: string;
  endedAt: string | null;
}

export interface RoundTransition {
  roundId: string;
  from: RoundStatus | null;
  to: RoundStatus;
  at: string;
  note: string | null;
}

export function emptyRoundMetrics(): RoundMetrics {
  return {
    eligibleAtSelection: 0,
    selected: 0,
    reported: 0,
    accepted: 0,
    rejected: {},
    dropped: {},
    totalExamples: 0,
    meanTrainLoss: null,
    updateNorm: null,
    bytesReceived: 0,
    validationMs: 0,
    aggregationMs: 0,
    durationMs: null,
    localEvaluation: null,
  };
}
