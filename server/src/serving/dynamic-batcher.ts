/**
 * Dynamic batching, as Triton's and TF Serving's batchers do it: requests queue; while a worker is
 * free, the queue's head is sent with the requests behind it for the same version, up to
 * `maxBatchSize` rows, once the batch is full or the head has waited `maxQueueDelayMs`. Under load
 * the workers are busy and batches fill while they wait; idle, a request waits at most the delay.
 * `maxBatchSize` 1 turns batching off: each request is its own `model.predict`.
 *
 * A batch that is not full also waits for the end of the event-loop turn it was queued in (a
 * setImmediate: microseconds, not a timer): one turn reads many sockets, and their requests go
 * together. Without it, a worker that is faster than the HTTP front is always free when a request
 * is queued, so every batch had one row and batching saved nothing (bench/results/serving.md).
 */

/** Where batches run: the worker pool. */
export interface BatchRunner {
  /** Workers free to take a batch now. */
  idleWorkers(): number;
  /** Runs `rows` rows of `version`; resolves one flat array per model output. */
  run(version: number, rows: number, input: Float32Array): Promise<Float32Array[]>;
  /** Called whenever a worker becomes free. */
  setIdleListener(listener: () => void): void;
}

export interface BatchOptions {
  maxBatchSize: number;
  maxQueueDelayMs: number;
  /** Requests waiting at most; submit() then refuses with QueueFullError. */
  maxQueue: number;
}

/** What one request gets back: its rows of each output, and the size of the batch it ran in. */
export interface BatchResult {
  outputs: Float32Array[];
  batchSize: number;
}

export class QueueFullError extends Error {
  override readonly name = 'QueueFullError';
}

interface Job {
  version: number;
  rows: number;
  input: Float32Array;
  enqueuedAt: number;
  /** The batcher's turn when it was queued (see endOfTurn). */
  turn: number;
  resolve: (result: BatchResult) => void;
  reject: (error: Error) => void;
}

export class DynamicBatcher {
  private readonly queue: Job[] = [];
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  /** Counts the event-loop turns the batcher saw end (its setImmediate and timer callbacks). */
  private turn = 0;

  constructor(
    private readonly runner: BatchRunner,
    private readonly options: BatchOptions,
  ) {
    runner.setIdleListener(() => this.schedule());
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Queues `rows` rows (row-major in `input`) for `version`. */
  submit(version: number, rows: number, input: Float32Array): Promise<BatchResult> {
    if (this.queue.length >= this.options.maxQueue) return Promise.reject(new QueueFullError(`more than ${this.options.maxQueue} requests waiting`));
    return new Promise<BatchResult>((resolve, reject) => {
      this.queue.push({ version, rows, input, enqueuedAt: performance.now(), turn: this.turn, resolve, reject });
      this.schedule();
    });
  }

  /** Refuses everything still waiting (shutdown). */
  drain(error: Error): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
    for (const job of this.queue.splice(0)) job.reject(error);
  }

  private schedule(): void {
    while (this.queue.length > 0 && this.runner.idleWorkers() > 0) {
      const head = this.queue[0]!;
      let rows = 0;
      let count = 0;
      // Consecutive jobs of the head's version, up to maxBatchSize rows (a larger job goes alone).
      while (count < this.queue.length) {
        const job = this.queue[count]!;
        if (job.version !== head.version || (count > 0 && rows + job.rows > this.options.maxBatchSize)) break;
        rows += job.rows;
        count++;
        if (rows >= this.options.maxBatchSize) break;
      }
      const full = rows >= this.options.maxBatchSize || count < this.queue.length;
      const waited = performance.now() - head.enqueuedAt;
      if (!full && waited < this.options.maxQueueDelayMs) {
        this.wake(this.options.maxQueueDelayMs - waited);
        return;
      }
      if (!full && head.turn === this.turn) {
        this.endOfTurn();
        return;
      }
      this.dispatch(this.queue.splice(0, count), rows);
    }
  }

  private wake(afterMs: number): void {
    if (this.timer) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.turn++;
        this.schedule();
      },
      Math.max(0, afterMs),
    );
  }

  /** Looks again once this turn of the event loop has read what it had to read. */
  private endOfTurn(): void {
    if (this.immediate) return;
    this.immediate = setImmediate(() => {
      this.immediate = null;
      this.turn++;
      this.schedule();
    });
  }

  private dispatch(jobs: Job[], rows: number): void {
    let input: Float32Array;
    if (jobs.length === 1) input = jobs[0]!.input;
    else {
      input = new Float32Array(jobs.reduce((sum, job) => sum + job.input.length, 0));
      let offset = 0;
      for (const job of jobs) {
        input.set(job.input, offset);
        offset += job.input.length;
      }
    }
    this.runner.run(jobs[0]!.version, rows, input).then(
      (outputs) => {
        let row = 0;
        for (const job of jobs) {
          const mine = outputs.map((output) => {
            const perRow = output.length / rows;
            return output.slice(row * perRow, (row + job.rows) * perRow);
          });
          row += job.rows;
          job.resolve({ outputs: mine, batchSize: rows });
        }
      },
      (error: Error) => {
        for (const job of jobs) job.reject(error);
      },
    );
  }
}
