import { Inject, Injectable, NotFoundException, ServiceUnavailableException, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import type { InferenceFeedbackResult, InferenceLogPage, InferenceLogQuery } from '../contract/index.js';
import { moduleLogger } from '../logging/logger.js';
import { createInferenceLogStore, type InferenceLogEntry, type InferenceLogStore } from '../storage/inference-log.js';
import { InferenceLogWriter } from './inference-log-writer.js';
import { ServingMetrics } from './serving-metrics.js';
import { ServingMonitor } from './serving-monitor.js';

const log = moduleLogger('serving');

const RETENTION_SWEEP_MS = 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The inference log: every request's record, buffered and written in batches (InferenceLogWriter),
 * kept `FLOCK_INFERENCE_LOG_RETENTION_DAYS` (swept hourly), read by `GET /api/inference-log`, and
 * labelled by feedback (which also feeds the monitor's accuracy).
 */
@Injectable()
export class InferenceLogService implements OnModuleInit, OnApplicationShutdown {
  private store: InferenceLogStore | null = null;
  private writer: InferenceLogWriter | null = null;
  private sweeper: NodeJS.Timeout | null = null;

  constructor(
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
    private readonly metrics: ServingMetrics,
    private readonly monitor: ServingMonitor,
  ) {}

  get enabled(): boolean {
    return this.config.serving.log;
  }

  async onModuleInit(): Promise<void> {
    if (!this.enabled) return;
    const store = await createInferenceLogStore(this.config);
    await store.init();
    this.store = store;
    this.writer = new InferenceLogWriter(store, this.config.serving.logFlushMs, {
      written: (count) => this.metrics.logRecords.inc({ result: 'written', reason: '' }, count),
      dropped: (count, reason) => this.metrics.logRecords.inc({ result: 'dropped', reason }, count),
    });
    // sweep() never rejects: failures are logged there.
    this.sweep().catch(() => undefined);
    this.sweeper = setInterval(() => {
      this.sweep().catch(() => undefined);
    }, RETENTION_SWEEP_MS);
    this.sweeper.unref();
  }

  /**
   * Buffers a record (written within FLOCK_INFERENCE_LOG_FLUSH_MS). Durable mode
   * (FLOCK_INFERENCE_LOG_DURABLE): resolves once it is committed; else null at once.
   */
  record(entry: InferenceLogEntry): Promise<boolean> | null {
    return this.writer?.add(entry, this.config.serving.logDurable) ?? null;
  }

  /** Writes what is buffered now (tests, shutdown). */
  async flush(): Promise<void> {
    await this.writer?.flush();
  }

  async query(query: InferenceLogQuery): Promise<InferenceLogPage> {
    return this.requireStore().query(query);
  }

  async feedback(requestId: string, label: number): Promise<InferenceFeedbackResult> {
    const store = this.requireStore();
    // A request answered a moment ago may still be in the buffer.
    if ((await store.get(requestId)) === null) await this.flush();
    const record = await store.setLabel(requestId, label);
    if (!record) throw new NotFoundException(`no inference request ${requestId} is logged`);
    const correct = record.topClass === null ? null : record.topClass === label;
    if (correct !== null && record.modelVersion !== null) this.monitor.observeFeedback(record.modelVersion, correct);
    return { requestId, modelVersion: record.modelVersion, topClass: record.topClass, correct };
  }

  private requireStore(): InferenceLogStore {
    if (!this.store) throw new ServiceUnavailableException('the inference log is off (FLOCK_INFERENCE_LOG=false)');
    return this.store;
  }

  private async sweep(): Promise<void> {
    try {
      const deleted = await this.store?.deleteBefore(new Date(Date.now() - this.config.serving.logRetentionDays * DAY_MS).toISOString());
      if (deleted) log.info({ deleted }, 'inference log records past retention deleted');
    } catch (error) {
      log.warn({ err: error }, 'deleting old inference log records failed');
    }
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    await this.writer?.close();
    await this.store?.close();
  }
}
