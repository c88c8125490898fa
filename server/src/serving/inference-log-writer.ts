import { moduleLogger } from '../logging/logger.js';
import type { InferenceLogEntry, InferenceLogStore } from '../storage/inference-log.js';

const log = moduleLogger('serving');

/** A flush writes at most this many records in one transaction; more wait for the next. */
const MAX_RECORDS_PER_FLUSH = 2000;
/** Records waiting at most: beyond (the database is down or far behind), new ones are dropped and counted. */
const MAX_BUFFERED = 100_000;

export interface LogWriterCounters {
  written(count: number): void;
  dropped(count: number, reason: string): void;
}

/**
 * Writes the inference log in batches, off the request path: `add` only buffers; every `flushMs`
 * (or as soon as a batch is full) the buffer goes to the store in one transaction. The loss window
 * of a kill -9 is what is buffered: at most `flushMs` of answered requests (docs/SECURITY.md).
 * A failed write is retried with the next flush; the buffer is bounded. In durable mode
 * (FLOCK_INFERENCE_LOG_DURABLE) each answer waits for the commit of the batch holding its record:
 * no answered request without its record, at the price of up to `flushMs` of latency.
 */
export class InferenceLogWriter {
  private buffer: InferenceLogEntry[] = [];
  /** Callers waiting for their record to be committed (durable mode), parallel to `buffer`. */
  private waiters: (((written: boolean) => void) | null)[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly store: InferenceLogStore,
    private readonly flushMs: number,
    private readonly counters: LogWriterCounters,
  ) {}

  get pending(): number {
    return this.buffer.length;
  }

  /**
   * Buffers a record. With `durable`, resolves once the transaction holding it has committed (true),
   * or the record was dropped (false): group commit, so the answer can wait for its record.
   */
  add(entry: InferenceLogEntry, durable = false): Promise<boolean> | null {
    if (this.buffer.length >= MAX_BUFFERED) {
      this.counters.dropped(1, 'buffer_full');
      return durable ? Promise.resolve(false) : null;
    }
    this.buffer.push(entry);
    let committed: Promise<boolean> | null = null;
    if (durable) committed = new Promise<boolean>((resolve) => this.waiters.push(resolve));
    else this.waiters.push(null);
    if (this.buffer.length >= MAX_RECORDS_PER_FLUSH) this.flushSoon();
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flushSoon();
      }, this.flushMs);
    }
    return committed;
  }

  /** A flush in the background (flush() never rejects: a failed write is logged and retried). */
  private flushSoon(): void {
    this.flush().catch(() => undefined);
  }

  /** Writes everything buffered (waits for a flush in progress first). */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.buffer.length === 0) return;
    const batch = this.buffer.length > MAX_RECORDS_PER_FLUSH ? this.buffer.splice(0, MAX_RECORDS_PER_FLUSH) : this.buffer;
    const waiters = batch === this.buffer ? this.waiters : this.waiters.splice(0, batch.length);
    if (batch === this.buffer) {
      this.buffer = [];
      this.waiters = [];
    }
    this.flushing = this.store
      .append(batch)
      .then(
        () => {
          this.counters.written(batch.length);
          for (const waiter of waiters) waiter?.(true);
        },
        (error: unknown) => {
          log.warn({ err: error, records: batch.length }, 'writing the inference log failed; retrying with the next flush');
          const merged = batch.concat(this.buffer);
          const mergedWaiters = waiters.concat(this.waiters);
          if (merged.length > MAX_BUFFERED) {
            this.counters.dropped(merged.length - MAX_BUFFERED, 'buffer_full');
            for (const waiter of mergedWaiters.slice(MAX_BUFFERED)) waiter?.(false);
          }
          this.buffer = merged.slice(0, MAX_BUFFERED);
          this.waiters = mergedWaiters.slice(0, MAX_BUFFERED);
        },
      )
      .finally(() => {
        this.flushing = null;
        if (this.buffer.length > 0 && !this.timer && !this.closed) {
          this.timer = setTimeout(() => {
            this.timer = null;
            this.flushSoon();
          }, this.flushMs);
        }
      });
    await this.flushing;
  }

  /** Final flush at shutdown. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // Large buffers take several flushes; a store that fails keeps the rest (logged, lost at exit).
    for (let attempt = 0; attempt < 100 && this.buffer.length > 0; attempt++) {
      const before = this.buffer.length;
      await this.flush();
      if (this.buffer.length >= before) break;
    }
    for (const waiter of this.waiters.splice(0)) waiter?.(false);
  }
}
