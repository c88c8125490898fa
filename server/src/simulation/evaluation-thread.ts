/** The main thread's side of the evaluation thread (evaluator.ts): one test-set evaluation per committed version. */
import type { Worker } from 'node:worker_threads';
import { startModuleWorker } from '../worker-thread.js';
import type { EvaluatorInit, EvaluatorReply, EvaluatorRequest } from './evaluator.js';
import type { FirstFailure } from './failure.js';
import type { TestResult } from './statistics.js';

export interface Evaluation extends TestResult {
  /** Seconds the thread spent fetching and testing the version. */
  seconds: number;
}

interface Pending {
  resolve: (result: Evaluation) => void;
  reject: (error: Error) => void;
}

export class EvaluationThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private started = false;

  constructor(init: EvaluatorInit, failure: FirstFailure) {
    this.worker = startModuleWorker(new URL('./evaluator.js', import.meta.url), { workerData: init });
    this.worker.on('message', (reply: EvaluatorReply) => this.onReply(reply));
    this.worker.on('error', (error) => {
      failure.record(new Error(`evaluation thread crashed: ${error.stack ?? error.message}`));
      for (const pending of this.pending.values()) pending.reject(failure.error!);
    });
  }

  /** The thread has loaded the test set. */
  get ready(): boolean {
    return this.started;
  }

  /** Tests a version; evaluations run one after the other, in the order asked. */
  evaluate(version: number): Promise<Evaluation> {
    return new Promise((resolve, reject) => {
      this.pending.set(version, { resolve, reject });
      this.worker.postMessage({ type: 'evaluate', version } satisfies EvaluatorRequest);
    });
  }

  /** Lets the thread finish what it was asked, then end. */
  stop(): void {
    this.worker.postMessage({ type: 'stop' } satisfies EvaluatorRequest);
  }

  async terminate(): Promise<void> {
    await this.worker.terminate();
  }

  private onReply(reply: EvaluatorReply): void {
    if (reply.type === 'ready') {
      this.started = true;
      return;
    }
    const pending = this.pending.get(reply.version);
    this.pending.delete(reply.version);
    if (reply.type === 'result') pending?.resolve(reply);
    else pending?.reject(new Error(`evaluating version ${reply.version} failed: ${reply.message}`));
  }
}
