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
 * A failed write is retried with the next flush; the buffer is bounded.
 */
export class InferenceLogWriter {
  private buffer: InferenceLogEntry[] = [];
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

  add(entry: InferenceLogEntry): void {
    if (this.buffer.length >= MAX_BUFFERED) {
      this.counters.dropped(1, 'buffer_full');
      return;
    }
    this.buffer.push(entry);
    if (this.buffer.length >= MAX_RECORDS_PER_FLUSH) this.flushSoon();
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flushSoon();
      }, this.flushMs);
    }
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
    if (batch === this.buffer) this.buffer = [];
    this.flushing = this.store
      .append(batch)
      .then(
        () => this.counters.written(batch.length),
        (error: unknown) => {
          log.warn({ err: error, records: batch.length }, 'writing the inference log failed; retrying with the next flush');
          const merged = batch.concat(this.buffer);
          if (merged.length > MAX_BUFFERED) this.counters.dropped(merged.length - MAX_BUFFERED, 'buffer_full');
          this.buffer = merged.slice(0, MAX_BUFFERED);
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
  }
}
