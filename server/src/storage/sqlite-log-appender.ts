import type { Worker } from 'node:worker_threads';
import { startModuleWorker } from '../worker-thread.js';
import type { InferenceLogEntry } from './inference-log.js';

export interface AppendRequest {
  id: number;
  entries: readonly InferenceLogEntry[];
}

/** The thread's answers: `ready` once its connection is open, then one per AppendRequest. */
export type AppendReply = { ready: true } | AppendResult;

export interface AppendResult {
  id: number;
  /** Null once the batch is committed; else why its transaction failed (nothing of it was written). */
  error: string | null;
}

/**
 * Appends inference log records to the SQLite file on a thread of its own (sqlite-log-append-worker.ts).
 * better-sqlite3 is synchronous: on the event loop, a flush of thousands of records held it for
 * tens of milliseconds, a tenth of its time under inference load (bench/results/serving.md). Here
 * the event loop only hands the batch over (a structured clone, about 1 µs per record). The thread
 * starts with open() and again with the next append after it fails; it keeps the process alive
 * only while an append is in flight.
 */
export class SqliteLogAppender {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
  private nextId = 1;
  private ready: Promise<void> | null = null;

  constructor(private readonly path: string) {}

  /** Starts the thread; resolves once its connection is open. */
  open(): Promise<void> {
    if (!this.worker) this.start();
    return this.ready!;
  }

  /** Resolves once the records are committed (one transaction); rejects when it failed. */
  append(entries: readonly InferenceLogEntry[]): Promise<void> {
    const worker = this.worker ?? this.start();
    // Before the thread is ready the message waits in its port: nothing is lost.
    const id = this.nextId++;
    if (this.pending.size === 0) worker.ref();
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, entries } satisfies AppendRequest);
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    this.ready = null;
    await worker?.terminate();
    this.failPending(new Error('the inference log is closed'));
  }

  private start(): Worker {
    const worker = startModuleWorker(new URL('./sqlite-log-append-worker.js', import.meta.url), {
      workerData: { path: this.path },
      name: 'flock-inference-log',
    });
    let markReady!: () => void;
    let failStart!: (error: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failStart = reject;
    });
    // Referenced until it is ready: open() is awaited at startup.
    this.ready.then(
      () => (this.pending.size === 0 ? worker.unref() : undefined),
      () => undefined,
    );
    worker.on('message', (reply: AppendReply) => {
      if ('ready' in reply) {
        markReady();
        return;
      }
      const { id, error } = reply;
      const waiter = this.pending.get(id);
      this.pending.delete(id);
      if (this.pending.size === 0) worker.unref();
      if (error === null) waiter?.resolve();
      else waiter?.reject(new Error(error));
    });
    // An error is followed by 'exit': the batches in flight fail there (the writer retries them).
    worker.on('error', () => undefined);
    worker.on('exit', (code) => {
      if (this.worker === worker) this.worker = null;
      const error = new Error(`the inference log's append thread exited (code ${code})`);
      failStart(error);
      this.failPending(error);
    });
    this.worker = worker;
    return worker;
  }

  private failPending(error: Error): void {
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
  }
}
