/** What an event processor counts: requests in, replies out, batches, dead letters by reason. */
import type { DeadLetterReason } from '../contract/index.js';

export interface ProcessorMetricsSnapshot {
  received: number;
  /** Requests the broker had delivered before (a processor died or disconnected holding them). */
  redelivered: number;
  replied: number;
  deadLettered: number;
  deadLetterReasons: Partial<Record<DeadLetterReason, number>>;
  /** Requests handed back to the queue (a failed prediction or an unconfirmed reply). */
  requeued: number;
  batches: number;
  batchedRows: number;
  /** Mean rows per batch. */
  meanBatchSize: number;
  versionSwitches: number;
  currentVersion: number | null;
}

export class ProcessorMetrics {
  received = 0;
  redelivered = 0;
  replied = 0;
  requeued = 0;
  batches = 0;
  batchedRows = 0;
  versionSwitches = 0;
  currentVersion: number | null = null;
  private readonly reasons = new Map<DeadLetterReason, number>();

  deadLetter(reason: DeadLetterReason): void {
    this.reasons.set(reason, (this.reasons.get(reason) ?? 0) + 1);
  }

  batch(rows: number): void {
    this.batches++;
    this.batchedRows += rows;
  }

  /** Requests taken and not yet settled (answered and acknowledged, dead-lettered or requeued). */
  get inFlight(): number {
    let dead = 0;
    for (const count of this.reasons.values()) dead += count;
    return this.received - this.replied - dead - this.requeued;
  }

  snapshot(): ProcessorMetricsSnapshot {
    const deadLetterReasons = Object.fromEntries(this.reasons) as Partial<Record<DeadLetterReason, number>>;
    return {
      received: this.received,
      redelivered: this.redelivered,
      replied: this.replied,
      deadLettered: Object.values(deadLetterReasons).reduce((sum, n) => sum + n, 0),
      deadLetterReasons,
      requeued: this.requeued,
      batches: this.batches,
      batchedRows: this.batchedRows,
      meanBatchSize: this.batches === 0 ? 0 : this.batchedRows / this.batches,
      versionSwitches: this.versionSwitches,
      currentVersion: this.currentVersion,
    };
  }
}
