import { isRoundFinished, type RejectionReason, type RoundStatus, type TrainingPlan, type WeightSpec } from '@flock/client-sdk/protocol';
import type { RoundAggregator } from '../aggregation/strategy.js';
import { moduleLogger } from '../logging/logger.js';
import type { AggregationSink } from './aggregation-sink.js';
import type { RoundLease } from '../storage/round-lease.js';
import type { Storage } from '../storage/storage.js';
import type { RoundState } from './round-machine.js';
import { RoundRoster } from './round-roster.js';
import type { SecureRound } from './secure/secure-round.js';
import type { RoundRecord } from '../contract/index.js';

const log = moduleLogger('rounds');

function nowIso(): string {
  return new Date().toISOString();
}

/**
 * The round in flight, in memory: the machine's state, who takes part, the running aggregate, and
 * the record that is its durable projection. Its writes to storage are queued so that they land in
 * order. Every method is O(1).
 */
export class ActiveRound {
  readonly roster = new RoundRoster();
  readonly startedAt = Date.now();
  aggregator: RoundAggregator | null = null;
  /** Whether the aggregator holds uploads' deltas until the round's end (robust strategies), so an upload's bytes must outlive its intake. */
  keepsUploads = false;
  /** Where the aggregate is finished at commit: this process's aggregator, or the processes' partials (cluster mode). */
  sink: AggregationSink | null = null;
  plan: TrainingPlan | null = null;
  /** A secure round's protocol (secure/secure-round.ts); null in a plain round. */
  secure: SecureRound | null = null;
  deadlineAt: number | null = null;
  /** The selection timer, then the deadline timer. */
  timer: NodeJS.Timeout | null = null;
  /** The commit, once its transaction has begun: a cancel or shutdown waits for it (it never rejects). */
  commitInFlight: Promise<void> | null = null;
  /** The round lease this process holds while it drives the round (storage/round-lease.ts): given back when the round closes. */
  lease: RoundLease | null = null;
  /** Norms of the updates that passed every other check (clipped or refused by the bound included): what the next bound adapts to. */
  readonly norms: number[] = [];
  /** The example counts the accepted updates claimed: what the next example cap adapts to. */
  readonly claims: number[] = [];
  private weightedLossSum = 0;
  private persistence: Promise<void> = Promise.resolve();

  constructor(
    public record: RoundRecord,
    public state: RoundState,
    readonly weightSpecs: readonly WeightSpec[],
    private readonly storage: Storage,
  ) {}

  get id(): string {
    return this.record.id;
  }

  /** Resolves once every queued write is stored (failures are logged, never thrown). */
  stored(): Promise<void> {
    return this.persistence;
  }

  /** Moves the record and queues the move (for failed/aborted also the round's end, `note` being its error) for storage. */
  recordTransition(from: RoundStatus, to: RoundStatus, note: string | null): void {
    const at = nowIso();
    const ended = isRoundFinished(to);
    if (ended) this.record.metrics.durationMs = Date.now() - this.startedAt;
    this.record = { ...this.record, status: to, updatedAt: at, ...(ended ? { error: note, endedAt: at } : {}) };
    const { id, metrics } = this.record;
    this.persistence = this.persistence
      .then(async () => {
        await this.storage.updateRound(id, ended ? { status: to, error: note, endedAt: at, metrics } : { status: to, metrics });
        await this.storage.appendTransition({ roundId: id, from, to, at, note });
      })
      .catch((error: unknown) => log.error({ roundId: id, err: error }, 'failed to persist round state'));
  }

  /** The commit transaction stored the round's end: show it on the record. */
  recordCommit(version: number, at: string): void {
    this.record = { ...this.record, status: 'committed', committedVersion: version, endedAt: at, updatedAt: at };
  }

  /** An upload that passed the size and schema checks. */
  countReceived(bytes: number): void {
    this.record.metrics.reported++;
    this.record.metrics.bytesReceived += bytes;
  }

  /** An accepted upload's weight bytes, as sent. */
  countBytesUp(bytes: number): void {
    this.record.metrics.bytesUp += bytes;
  }

  /** Weight bytes sent to a device fetching this round's base version. */
  countBytesDown(bytes: number): void {
    this.record.metrics.bytesDown += bytes;
  }

  countAccepted(
    numExamples: number,
    trainLoss: number,
    { decodeMs, validationMs, foldMs }: { decodeMs: number; validationMs: number; foldMs: number },
    bounded: { clipped: boolean; clamped: boolean },
  ): void {
    const { metrics } = this.record;
    if (bounded.clipped) metrics.clippedUpdates++;
    if (bounded.clamped) metrics.clampedExamples++;
    metrics.decodeMs += decodeMs;
    metrics.validationMs += validationMs;
    metrics.aggregationMs += foldMs;
    metrics.accepted++;
    metrics.totalExamples += numExamples;
    this.weightedLossSum += trainLoss * numExamples;
    metrics.meanTrainLoss = this.weightedLossSum / metrics.totalExamples;
  }

  countRejected(reason: RejectionReason): void {
    const { rejected } = this.record.metrics;
    rejected[reason] = (rejected[reason] ?? 0) + 1;
  }

  countDropped(reason: string): void {
    const { dropped } = this.record.metrics;
    dropped[reason] = (dropped[reason] ?? 0) + 1;
  }

  clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
