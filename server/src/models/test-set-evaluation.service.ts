import type { Worker } from 'node:worker_threads';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import type { TestSetMetrics } from '../contract/index.js';
import { FlockEventBus } from '../events/event-bus.js';
import { moduleLogger } from '../logging/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { STORAGE, type Storage } from '../storage/storage.js';
import { startModuleWorker } from '../worker-thread.js';
import type { ModelArtifactsParts } from './tfjs-format.js';
import type { TestSetReply, TestSetRequest } from './test-set-worker.js';

const log = moduleLogger('test-set');

/** Versions waiting for the test-set thread at most; beyond, the oldest waiting one is not tested (logged). */
const MAX_WAITING = 64;

interface Job {
  request: TestSetRequest;
  settle: (reply: TestSetReply) => void;
}

/**
 * Centralized evaluation: every new global version is tested on a held-out test set the coordinator
 * keeps (the 10,000 MNIST test images, `FLOCK_TEST_SET=mnist`, the default), in a worker thread, and
 * the result is stored with the version (`testAccuracy`, `testLoss`, `testExamples`, `testSet`).
 * That is the server half of the hybrid pattern's evaluation; devices test each version on their
 * own data too (EvaluationsService). Models that are not MNIST classifiers are skipped.
 *
 * One version is in the thread at a time; the others wait here (their weights too), at most
 * MAX_WAITING of them, so a burst of versions costs bounded memory.
 */
@Injectable()
export class TestSetEvaluationService implements OnApplicationShutdown {
  private worker: Worker | null = null;
  private ready: Promise<Worker> | null = null;
  private readonly waiting: Job[] = [];
  /** Versions waiting or in the thread, by version. */
  private readonly evaluations = new Map<number, Promise<void>>();
  private running: Job | null = null;
  private closed = false;
  /** The version flock_model_test_accuracy shows: the newest with a known test accuracy. */
  private gaugeVersion = 0;

  constructor(
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
    @Inject(STORAGE) private readonly storage: Storage,
    private readonly metrics: MetricsService,
    private readonly bus: FlockEventBus,
  ) {}

  get enabled(): boolean {
    return this.config.testSet !== 'none';
  }

  /**
   * Queues a version for testing and resolves once its metrics are stored (or it was skipped):
   * callers need not wait. Never rejects: a failure is logged and the version keeps no test metrics.
   */
  evaluate(version: number, parts: ModelArtifactsParts): Promise<void> {
    if (!this.enabled || this.closed) return Promise.resolve();
    // A version asked for twice (say, created at start-up, then found untested) is tested once.
    let evaluation = this.evaluations.get(version);
    if (!evaluation) {
      evaluation = this.test(version, parts).finally(() => this.evaluations.delete(version));
      this.evaluations.set(version, evaluation);
    }
    return evaluation;
  }

  private async test(version: number, parts: ModelArtifactsParts): Promise<void> {
    const reply = await new Promise<TestSetReply>((settle) => {
      this.waiting.push({ request: { version, topology: parts.topology, weightSpecs: parts.weightSpecs, weights: parts.weights.slice() }, settle });
      if (this.waiting.length > MAX_WAITING) {
        const dropped = this.waiting.shift()!;
        dropped.settle({ type: 'skipped', version: dropped.request.version, reason: `more than ${MAX_WAITING} versions waiting` });
      }
      this.next();
    });
    try {
      if (reply.type === 'result') {
        const tested: TestSetMetrics = { testAccuracy: reply.accuracy, testLoss: reply.loss, testExamples: reply.numExamples, testSet: 'mnist-test' };
        await this.storage.updateModelMetrics(version, tested);
        this.record(version, reply.accuracy);
        log.info({ version, testAccuracy: reply.accuracy, testLoss: reply.loss, seconds: reply.seconds }, 'version tested on the test set');
        this.bus.emit('version.evaluated', { version });
      } else if (reply.type === 'skipped') {
        log.info({ version, reason: reply.reason }, 'version not tested on the test set');
      } else if (reply.type === 'failed') {
        log.warn({ version, error: reply.message }, 'testing a version on the test set failed');
      }
    } catch (error) {
      log.warn({ version, err: error }, 'storing the test-set metrics of a version failed');
    }
  }

  /** A version's known test accuracy (measured here, or carried by the version) for the Prometheus gauge. */
  record(version: number, accuracy: number): void {
    if (version < this.gaugeVersion) return;
    this.gaugeVersion = version;
    this.metrics.modelTestAccuracy.set(accuracy);
  }

  /** Hands the oldest waiting version to the thread when it is free. */
  private next(): void {
    if (this.running || this.closed) return;
    const job = this.waiting.shift();
    if (!job) return;
    this.running = job;
    this.start().then(
      (worker) => worker.postMessage(job.request, [job.request.weights.buffer as ArrayBuffer]),
      (error: Error) => this.done({ type: 'failed', version: job.request.version, message: error.message }),
    );
  }

  private done(reply: TestSetReply & { version: number }): void {
    const job = this.running;
    if (!job || job.request.version !== reply.version) return;
    this.running = null;
    job.settle(reply);
    this.next();
  }

  /** The thread starts with the first version to test (loading tfjs and the test set takes a second). */
  private start(): Promise<Worker> {
    if (!this.ready) {
      const worker = startModuleWorker(new URL('./test-set-worker.js', import.meta.url));
      this.worker = worker;
      this.ready = new Promise<Worker>((resolve, reject) => {
        worker.on('message', (reply: TestSetReply) => {
          if (reply.type === 'ready') {
            log.debug({ backend: reply.backend }, 'test-set thread ready');
            resolve(worker);
          } else {
            this.done(reply);
          }
        });
        worker.on('error', (error) => {
          log.error({ err: error }, 'test-set thread crashed');
          reject(error);
        });
        worker.on('exit', (code) => {
          reject(new Error(`test-set thread exited with code ${code}`));
          // The version it had fails; a later one starts a fresh thread.
          if (this.worker === worker) {
            this.worker = null;
            this.ready = null;
          }
          const running = this.running;
          if (running && !this.closed) this.done({ type: 'failed', version: running.request.version, message: `test-set thread exited with code ${code}` });
        });
      });
      // Nothing may keep the process alive for the test set alone.
      worker.unref();
    }
    return this.ready;
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    for (const job of [...(this.running ? [this.running] : []), ...this.waiting.splice(0)]) {
      job.settle({ type: 'failed', version: job.request.version, message: 'coordinator shutting down' });
    }
    this.running = null;
    await this.worker?.terminate();
  }
}
