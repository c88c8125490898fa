import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { moduleLogger } from '../logging/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { STORAGE, type Storage } from '../storage/storage.js';
import { startModuleWorker } from '../worker-thread.js';
import type { ModelArtifactsParts } from './tfjs-format.js';
import type { TestSetReply, TestSetRequest } from './test-set-worker.js';

const log = moduleLogger('test-set');

/** Versions waiting for the test-set thread at most; older ones are dropped first (logged). */
const MAX_PENDING = 64;

/**
 * Centralized evaluation: every new global version is tested on a held-out test set the coordinator
 * keeps (the 10,000 MNIST test images, `FLOCK_TEST_SET=mnist`, the default), in a worker thread, and
 * the result is stored with the version (`testAccuracy`, `testLoss`, `testExamples`, `testSet`).
 * That is the server half of the hybrid pattern's evaluation; devices test each version on their
 * own data too (EvaluationsService). Models that are not MNIST classifiers are skipped.
 */
@Injectable()
export class TestSetEvaluationService implements OnApplicationShutdown {
  /** 'evaluated' once a version's test-set metrics are stored (the dashboard pushes them). */
  readonly events = new EventEmitter<{ evaluated: [version: number] }>();
  private worker: Worker | null = null;
  private ready: Promise<void> | null = null;
  private readonly pending = new Map<number, (reply: TestSetReply) => void>();
  private closed = false;
  /** The version flock_model_test_accuracy shows: the newest with a known test accuracy. */
  private gaugeVersion = 0;

  constructor(
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
    @Inject(STORAGE) private readonly storage: Storage,
    private readonly metrics: MetricsService,
  ) {}

  get enabled(): boolean {
    return this.config.testSet !== 'none';
  }

  /**
   * Queues a version for testing and resolves once its metrics are stored (or it was skipped):
   * callers need not wait. Never rejects: a failure is logged and the version keeps no test metrics.
   */
  async evaluate(version: number, parts: ModelArtifactsParts): Promise<void> {
    if (!this.enabled || this.closed) return;
    try {
      if (this.pending.size >= MAX_PENDING) {
        const oldest = this.pending.keys().next().value!;
        log.warn({ version: oldest }, 'test-set queue full: not testing an older version');
        this.pending.get(oldest)?.({ type: 'skipped', version: oldest, reason: 'queue full' });
      }
      const reply = await this.request({ version, topology: parts.topology, weightSpecs: parts.weightSpecs, weights: parts.weights.slice() });
      if (reply.type === 'result') {
        await this.storage.updateModelMetrics(version, { testAccuracy: reply.accuracy, testLoss: reply.loss, testExamples: reply.numExamples, testSet: 'mnist-test' });
        this.record(version, reply.accuracy);
        log.info({ version, testAccuracy: reply.accuracy, testLoss: reply.loss, seconds: reply.seconds }, 'version tested on the test set');
        this.events.emit('evaluated', version);
      } else if (reply.type === 'skipped') {
        log.info({ version, reason: reply.reason }, 'version not tested on the test set');
      } else if (reply.type === 'failed') {
        log.warn({ version, error: reply.message }, 'testing a version on the test set failed');
      }
    } catch (error) {
      log.warn({ version, err: error }, 'testing a version on the test set failed');
    }
  }

  /** A version's known test accuracy (measured here, or carried by the version) for the Prometheus gauge. */
  record(version: number, accuracy: number): void {
    if (version < this.gaugeVersion) return;
    this.gaugeVersion = version;
    this.metrics.modelTestAccuracy.set(accuracy);
  }

  private async request(request: TestSetRequest): Promise<TestSetReply> {
    const worker = await this.start();
    return new Promise<TestSetReply>((resolve) => {
      this.pending.set(request.version, (reply) => {
        this.pending.delete(request.version);
        resolve(reply);
      });
      worker.postMessage(request, [request.weights.buffer as ArrayBuffer]);
    });
  }

  /** The worker starts with the first version to test (loading tfjs and the test set takes a second). */
  private start(): Promise<Worker> {
    if (!this.ready) {
      const worker = startModuleWorker(new URL('./test-set-worker.js', import.meta.url));
      this.worker = worker;
      this.ready = new Promise<void>((resolve, reject) => {
        worker.on('message', (reply: TestSetReply) => {
          if (reply.type === 'ready') {
            log.debug({ backend: reply.backend }, 'test-set thread ready');
            resolve();
          } else {
            this.pending.get(reply.version)?.(reply);
          }
        });
        worker.on('error', (error) => {
          log.error({ err: error }, 'test-set thread crashed');
          reject(error);
          this.failAll(error.message);
        });
        worker.on('exit', (code) => {
          if (!this.closed) this.failAll(`test-set thread exited with code ${code}`);
          // A later version starts a fresh thread.
          if (this.worker === worker) {
            this.worker = null;
            this.ready = null;
          }
        });
      });
      // Nothing may keep the process alive for the test set alone.
      worker.unref();
    }
    return this.ready.then(() => this.worker!);
  }

  private failAll(message: string): void {
    for (const [version, settle] of [...this.pending]) settle({ type: 'failed', version, message });
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    this.failAll('coordinator shutting down');
    await this.worker?.terminate();
  }
}
