/** The worker threads that host the virtual clients, and what they report back to the main thread. */
import type { Worker } from 'node:worker_threads';
import { startModuleWorker } from '../worker-thread.js';
import type { Attack } from './byzantine.js';
import type { FirstFailure } from './failure.js';
import { emptyTally, type UploadTally } from './statistics.js';
import type { MainToWorker, SimulatedClientData, WorkerInit, WorkerToMain } from './worker-protocol.js';

interface WorkerHandle {
  worker: Worker;
  ready: Promise<void>;
  stopped: Promise<void>;
}

export interface WorkerPoolOptions {
  workers: number;
  /** Everything a worker needs but its clients. */
  init: Omit<WorkerInit, 'clients'>;
  /** The clients worker `w` hosts (their buffers move to that thread). */
  clientsOf: (w: number) => SimulatedClientData[];
  /** Per client: its attack, or null (to count poisoned uploads). */
  attacks: readonly (Attack | null)[];
  failure: FirstFailure;
  log: (message: string) => void;
}

export class WorkerPool {
  /** SDK errors the clients reported, by code. */
  readonly clientErrors: Record<string, number> = {};
  private readonly handles: WorkerHandle[] = [];
  private readonly uploadsByRound = new Map<number, UploadTally>();
  private allReady = false;

  constructor(private readonly options: WorkerPoolOptions) {
    for (let w = 0; w < options.workers; w++) this.handles.push(this.startWorker(w));
    // Never rejects: a worker that fails reports `fatal` instead of `ready`.
    Promise.all(this.handles.map((h) => h.ready))
      .then(() => (this.allReady = true))
      .catch(() => undefined);
  }

  /** Every worker has started its clients. */
  get ready(): boolean {
    return this.allReady;
  }

  broadcast(message: MainToWorker): void {
    this.handles.forEach((h) => h.worker.postMessage(message));
  }

  /** The uploads reported for a round so far (and forgets them). */
  takeTally(round: number): UploadTally {
    const tally = this.uploadsByRound.get(round) ?? emptyTally();
    this.uploadsByRound.delete(round);
    return tally;
  }

  /** Asks the workers to dispose of their clients, waits up to 10 s, then terminates them. */
  async stop(): Promise<void> {
    this.broadcast({ type: 'stop' });
    await Promise.race([Promise.all(this.handles.map((h) => h.stopped)), new Promise((resolve) => setTimeout(resolve, 10_000))]);
    await Promise.all(this.handles.map((h) => h.worker.terminate()));
  }

  private startWorker(w: number): WorkerHandle {
    const clients = this.options.clientsOf(w);
    const init: WorkerInit = { ...this.options.init, clients };
    const transfer = clients.flatMap((c) => [c.trainImages.buffer, c.trainLabels.buffer, c.testImages.buffer, c.testLabels.buffer]) as ArrayBuffer[];
    const worker = startModuleWorker(new URL('./worker.js', import.meta.url), { workerData: init, transferList: transfer });
    let resolveReady!: () => void;
    let resolveStopped!: () => void;
    const ready = new Promise<void>((resolve) => (resolveReady = resolve));
    const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
    const { failure, log } = this.options;
    worker.on('message', (message: WorkerToMain) => {
      if (message.type === 'ready') {
        log(`worker ${w}: ${message.clients} clients on ${message.backend}`);
        resolveReady();
      } else if (message.type === 'stopped') {
        resolveStopped();
      } else {
        this.onReport(w, message);
      }
    });
    worker.on('error', (error) => failure.record(new Error(`simulation worker ${w} crashed: ${error.stack ?? error.message}`)));
    worker.on('exit', (code) => {
      resolveStopped();
      if (code !== 0) failure.record(new Error(`simulation worker ${w} exited with code ${code}`));
    });
    return { worker, ready, stopped };
  }

  private onReport(w: number, message: WorkerToMain): void {
    switch (message.type) {
      case 'uploaded': {
        const tally = this.uploadsByRound.get(message.round) ?? emptyTally();
        this.uploadsByRound.set(message.round, tally);
        tally.uploads++;
        if (this.options.attacks[message.client]) tally.poisoned++;
        tally.downloadMs += message.timings.downloadMs;
        tally.trainingMs += message.timings.trainingMs;
        tally.encodeMs += message.timings.encodeMs;
        tally.uploadMs += message.timings.uploadMs;
        break;
      }
      case 'fatal':
        this.options.failure.record(new Error(`simulation worker ${w} failed: ${message.message}`));
        break;
      case 'clientError':
        this.clientErrors[message.code] = (this.clientErrors[message.code] ?? 0) + 1;
        if (this.clientErrors[message.code]! <= 3) this.options.log(`client ${message.client}: ${message.code}: ${message.message}`);
        break;
      default:
        break;
    }
  }
}
