/**
 * The snapshot the operator dashboard receives over the `/operators` socket.io namespace.
 *
 * Self-contained on purpose: the browser modules (public/*.js) type-check against this file
 * through JSDoc, without pulling in the server's modules. The shapes are structural subsets of the
 * server's records (RoundDetails, RoundRecord, ModelVersionMeta, DeviceCounts); dashboard.service.ts
 * assigns the real records to them, so a drift fails the server's type-check.
 */

export const DASHBOARD_NAMESPACE = '/operators';
export const DASHBOARD_STATE_EVENT = 'dashboard:state';

export interface DashboardClientCounts {
  connected: number;
  eligible: number;
  /** Connected clients selected for the round in flight. */
  inRound: number;
}

/** One number across devices (IQR = q3 - q1). */
export interface DashboardQuartiles {
  q1: number;
  median: number;
  q3: number;
  /** 10th percentile (absent in summaries stored by an older coordinator). */
  p10?: number;
}

/** Devices' local tests of the version a round committed (one report per device). */
export interface DashboardLocalEvaluation {
  reports: number;
  numExamples: number;
  /** Means with each device's weight capped (older summaries: example-weighted). */
  globalAccuracy: number;
  globalLoss: number;
  personalAccuracy: number | null;
  personalLoss: number | null;
  adopted: number;
  /** Across devices; null in summaries stored by an older coordinator (the page then shows the means). */
  spread: {
    globalAccuracy: DashboardQuartiles;
    personalAccuracy: DashboardQuartiles | null;
    personalReports: number;
    personalBetterShare: number | null;
  } | null;
}

export interface DashboardRoundMetrics {
  eligibleAtSelection: number;
  selected: number;
  reported: number;
  accepted: number;
  /** Rejected uploads by reason code. */
  rejected: Partial<Record<string, number>>;
  /** Participants that left before uploading, by cause. */
  dropped: Partial<Record<string, number>>;
  totalExamples: number;
  meanTrainLoss: number | null;
  updateNorm: number | null;
  bytesReceived: number;
  /** Weight bytes of the accepted uploads as sent (compressed when the plan says so), and of the base version sent to devices. */
  bytesUp: number;
  bytesDown: number;
  aggregationMs: number;
  /** Bounded influence: the round's L2 bound (null: off) and example cap, and the updates they held back. */
  updateBound: number | null;
  exampleCap: number | null;
  clippedUpdates: number;
  clampedExamples: number;
  durationMs: number | null;
  localEvaluation: DashboardLocalEvaluation | null;
}

export interface DashboardRound {
  id: string;
  baseVersion: number;
  status: string;
  params: {
    minClients: number;
    targetClients: number;
    overSelection: number;
    selectionTimeoutMs: number;
    deadlineMs: number;
    plan: { epochs: number; batchSize: number; learningRate: number; compression?: { kind: string; topkFraction?: number } };
    strategy: string;
    strategyOptions: Partial<Record<string, number>>;
    /** DP-FedAvg parameters; null for a round without DP. */
    differentialPrivacy: { noiseMultiplier: number; clipNorm: number; samplingRate: number } | null;
    /** Secure aggregation's settings; null or absent: a plain round. */
    secureAggregation?: { clipNorm: number; thresholdFraction: number } | null;
  };
  metrics: DashboardRoundMetrics;
  committedVersion: number | null;
  error: string | null;
  createdAt: string;
  updatedAt: string;
  endedAt: string | null;
}

export interface DashboardActiveRound extends DashboardRound {
  transitions: { from: string | null; to: string; at: string; note: string | null }[];
  /** Milliseconds to the reporting deadline at `serverTime`; null before configuration. */
  timeLeftMs: number | null;
}

export interface DashboardModelVersion {
  version: number;
  parentVersion: number | null;
  /** The round that produced the version (null for initial, registered and rollback versions). */
  roundId: string | null;
  source: string;
  createdAt: string;
  numParameters: number;
  metrics: Record<string, number | string | null>;
  /** The privacy ledger as of this version (docs/PRIVACY.md), without its RDP curve; null before accounts existed. */
  privacy: { protected: boolean; dpRounds: number; epsilon: number; delta: number } | null;
}

/** Everything the dashboard shows, pushed on connect and after every change (throttled). */
export interface DashboardState {
  /** Server clock (ms since epoch) when the snapshot was taken. */
  serverTime: number;
  clients: DashboardClientCounts;
  /** The round in flight with live metrics; null when none. */
  activeRound: DashboardActiveRound | null;
  /** Recent rounds, newest first (the one in flight included, with live metrics). */
  rounds: DashboardRound[];
  /** Recent global model versions, newest first: the first is the current one. */
  models: DashboardModelVersion[];
  /** The δ ε is reported at, and the operator's ε budget (FLOCK_DP_EPSILON_BUDGET; null: none). */
  privacy: { delta: number; budgetEpsilon: number | null };
  /** Aggregation strategies the start-round form offers. */
  strategies: readonly DashboardStrategy[];
  defaultStrategy: string;
}

export interface DashboardStrategy {
  name: string;
  summary: string;
  /** Options it accepts, and the defaults of those that have one. */
  options: readonly string[];
  defaults: Readonly<Record<string, number>>;
}

export interface DashboardServerToClientEvents {
  [DASHBOARD_STATE_EVENT]: (state: DashboardState) => void;
}

/** The page sends nothing over the socket: actions go through the REST API with the token. */
export type DashboardClientToServerEvents = Record<string, never>;
