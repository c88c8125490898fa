/**
 * When a round may select, how many devices it takes, and when reporting ends: pure functions of
 * the round's parameters and its counters, shared by the round machine and its tests.
 */

/** The parameters of a round that its state machine needs (a subset of RoundParams). */
export interface RoundPolicy {
  /** Valid updates needed to commit; also the eligible devices needed to start. */
  minClients: number;
  /** Updates wanted: reporting ends once this many are accepted. */
  targetClients: number;
  /** Selection factor over the target. */
  overSelection: number;
  selectionTimeoutMs: number;
  deadlineMs: number;
  /**
   * DP rounds: Poisson sampling at this rate replaces the target and over-selection (selection.ts),
   * and reporting runs until every participant has answered or the deadline.
   */
  differentialPrivacy?: { samplingRate: number } | null;
}

/** Why reporting ended; the note of the reporting -> committing transition. */
export type ReportingEnd = 'target reached' | 'all participants answered' | 'deadline reached';

/** What the completion policy looks at while reporting. */
export interface ReportingTally {
  /** Updates accepted so far. */
  accepted: number;
  /** Participants that have neither uploaded nor dropped out. */
  pending: number;
}

/** Selection starts as soon as minClients devices are available (for DP rounds: expected to be sampled). */
export function canSelect(policy: RoundPolicy, available: number): boolean {
  return available * (policy.differentialPrivacy?.samplingRate ?? 1) >= policy.minClients;
}

/** Devices to select out of `available`: the target times the over-selection factor, rounded up, if there are that many. */
export function selectionSize(policy: RoundPolicy, available: number): number {
  return Math.min(Math.ceil(policy.targetClients * policy.overSelection), available);
}

/** Reporting ends early when the target is reached or every participant has answered; null while it goes on. */
export function reportingEnd(policy: RoundPolicy, tally: ReportingTally): ReportingEnd | null {
  if (!policy.differentialPrivacy && tally.accepted >= policy.targetClients) return 'target reached';
  if (tally.pending === 0) return 'all participants answered';
  return null;
}

/** A round commits only with at least minClients accepted updates. */
export function quorumReached(policy: RoundPolicy, accepted: number): boolean {
  return accepted >= policy.minClients;
}
