import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  ConflictException,
  Inject,
  Injectable,
  NotFoundException,
  ServiceUnavailableException,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import type { PrecomputeFormat, PrecomputeJob, PrecomputeJobListQuery, PrecomputeStartQuery, Prediction } from '../contract/index.js';
import { FlockEventBus } from '../events/event-bus.js';
import { moduleLogger } from '../logging/logger.js';
import { ModelsService } from '../models/models.service.js';
import { QueueFullError } from '../serving/dynamic-batcher.js';
import { ServedModels } from '../serving/served-models.js';
import { createPredictionStore, type PredictionStore, type StoredJob } from '../storage/predictions.js';
import { queuedProgress } from './job-progress.js';
import { runJob, type JobRunnerDeps } from './job-runner.js';
import { saveUpload, type UploadBody } from './upload.js';

const log = moduleLogger('precompute');

/** How long a batch waits before trying again when the inference queue is full. */
const QUEUE_FULL_RETRY_MS = 50;

/**
 * Precompute jobs: stores uploaded inputs in the data directory, runs the jobs one at a time on the
 * serving module's inference workers (job-runner.ts), resumes unfinished ones at start-up from their
 * checkpoint, re-runs followed datasets when a new version commits, and answers prediction look-ups.
 */
@Injectable()
export class PrecomputeService implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown {
  private store: PredictionStore | null = null;
  private readonly queue: string[] = [];
  private running: Promise<void> | null = null;
  private currentJob: string | null = null;
  private stopping = false;
  private readonly dir: string;

  constructor(
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
    private readonly served: ServedModels,
    private readonly models: ModelsService,
    private readonly bus: FlockEventBus,
  ) {
    this.dir = join(config.dataDir, 'precompute');
  }

  async onModuleInit(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    const store = await createPredictionStore(this.config);
    await store.init();
    this.store = store;
    this.bus.on('version.committed', ({ version }) => this.followVersion(version));
  }

  /** Jobs a crash or a shutdown left unfinished continue from their checkpoints. */
  async onApplicationBootstrap(): Promise<void> {
    // Only those whose input is here: another process's job (several processes on one database) is left to it.
    const unfinished = (await this.requireStore().unfinishedJobs()).filter(({ sourcePath }) => existsSync(sourcePath));
    if (unfinished.length > 0) log.info({ jobs: unfinished.length }, 'resuming unfinished precompute jobs');
    for (const { job } of unfinished) this.enqueue(job.id);
  }

  /** Stores the uploaded input, creates the job (queued) and starts it when the jobs before it are done. */
  async start(dataset: string, query: PrecomputeStartQuery, format: PrecomputeFormat, body: UploadBody, declaredBytes: number | null): Promise<PrecomputeJob> {
    const store = this.requireStore();
    const version = query.version ?? (await this.models.current())?.version;
    if (version === undefined) throw new ServiceUnavailableException('there is no model version yet');
    await this.models.get(version); // 404 for a version that does not exist
    const id = randomUUID();
    const sourcePath = join(this.dir, `${id}.${format}`);
    const sourceBytes = await saveUpload(body, sourcePath, this.config.precompute.maxUploadBytes, declaredBytes);
    const job: PrecomputeJob = {
      id,
      dataset,
      modelVersion: version,
      format,
      keyField: query.keyField,
      follow: query.follow ?? false,
      sourceBytes,
      ...queuedProgress(new Date().toISOString()),
    };
    try {
      await store.createJob(job, sourcePath);
    } catch (error) {
      rmSync(sourcePath, { force: true });
      throw error;
    }
    log.info({ job: id, dataset, version, bytes: sourceBytes }, 'precompute job created');
    this.enqueue(id);
    return job;
  }

  async getJob(id: string): Promise<PrecomputeJob> {
    const stored = await this.requireStore().getJob(id);
    if (!stored) throw new NotFoundException(`no precompute job ${id}`);
    return stored.job;
  }

  listJobs(query: PrecomputeJobListQuery): Promise<PrecomputeJob[]> {
    return this.requireStore().listJobs(query);
  }

  /** Runs a failed job again from its checkpoint (an unfinished one is already queued). */
  async resume(id: string): Promise<PrecomputeJob> {
    const store = this.requireStore();
    const stored = await store.getJob(id);
    if (!stored) throw new NotFoundException(`no precompute job ${id}`);
    const { job } = stored;
    if (job.status === 'completed') throw new ConflictException(`precompute job ${id} is completed`);
    if (job.status === 'failed') {
      const queued: PrecomputeJob = { ...job, status: 'queued', error: null, finishedAt: null, updatedAt: new Date().toISOString() };
      if (!(await store.updateJob(queued, job.bytesDone))) throw new ConflictException(`precompute job ${id} changed meanwhile; try again`);
      this.enqueue(id);
      return queued;
    }
    this.enqueue(id);
    return job;
  }

  async prediction(dataset: string, key: string, version: number | null): Promise<Prediction> {
    const found = await this.requireStore().getPrediction(dataset, key, version);
    if (!found) throw new NotFoundException(`no prediction for key "${key}" in dataset "${dataset}"${version === null ? '' : ` at version ${version}`}`);
    return found;
  }

  /** The stored prediction, or null when there is none or the store is not open (the REST route says which). */
  async findPrediction(dataset: string, key: string, version: number | null): Promise<Prediction | null> {
    return this.store ? this.store.getPrediction(dataset, key, version) : null;
  }

  private requireStore(): PredictionStore {
    if (!this.store) throw new ServiceUnavailableException('the prediction store is not open');
    return this.store;
  }

  private enqueue(id: string): void {
    if (this.stopping || this.currentJob === id || this.queue.includes(id)) return;
    this.queue.push(id);
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
  }

  private async drain(): Promise<void> {
    for (let id = this.queue.shift(); id !== undefined && !this.stopping; id = this.queue.shift()) {
      this.currentJob = id;
      try {
        await this.runOne(id);
      } catch (error) {
        log.error({ err: error, job: id }, 'precompute job failed to run');
      } finally {
        this.currentJob = null;
      }
    }
  }

  private async runOne(id: string): Promise<void> {
    const store = this.requireStore();
    const stored = await store.getJob(id);
    if (!stored || stored.job.status === 'completed' || stored.job.status === 'failed') return;
    const version = stored.job.modelVersion;
    log.info({ job: id, dataset: stored.job.dataset, version, from: stored.job.bytesDone }, 'precompute job running');
    await this.served.warmUp();
    // Keeps the version loaded in the workers for the whole job.
    this.served.acquire(version);
    try {
      const outcome = await runJob(stored, this.runnerDeps(store));
      if (outcome.kind === 'finished') {
        const { job } = outcome;
        log.info(
          { job: id, status: job.status, stored: job.rowsStored, rejected: job.rowsRejected, rowsPerSecond: job.rowsPerSecond, error: job.error },
          'precompute job finished',
        );
        if (job.status === 'completed' && !job.follow) this.removeSource(stored);
      } else log.info({ job: id, outcome: outcome.kind }, 'precompute job left to resume');
    } finally {
      this.served.release(version);
    }
  }

  private runnerDeps(store: PredictionStore): JobRunnerDeps {
    return {
      store,
      batchRows: this.config.precompute.batchRows,
      maxLineBytes: this.config.precompute.maxLineBytes,
      window: this.config.serving.workers + 1,
      stopping: () => this.stopping,
      inputWidth: async (version) => {
        const signature = await this.served.signature(version);
        const input = signature.inputs[0];
        if (signature.inputs.length !== 1 || !input) throw new Error(`model version ${version} has ${signature.inputs.length} inputs; precompute takes one`);
        const dims = input.shape.slice(1);
        if (dims.some((d) => d < 1)) throw new Error(`model version ${version} has a variable input shape [${input.shape.join(', ')}]`);
        return dims.reduce((a, b) => a * b, 1);
      },
      predict: async (version, rows, input) => {
        for (;;) {
          try {
            const result = await this.served.batcher.submit(version, rows, input);
            return result.outputs[0]!;
          } catch (error) {
            if (!(error instanceof QueueFullError) || this.stopping) throw error;
            await new Promise((resolve) => setTimeout(resolve, QUEUE_FULL_RETRY_MS));
          }
        }
      },
    };
  }

  /** A new version: each followed dataset (its newest job follows) is precomputed again with it. */
  private async followVersion(version: number): Promise<void> {
    const store = this.store;
    if (!store || this.stopping) return;
    for (const { job, sourcePath } of await store.followedJobs()) {
      if (job.modelVersion >= version) continue;
      const next: PrecomputeJob = { ...job, id: randomUUID(), modelVersion: version, ...queuedProgress(new Date().toISOString()) };
      await store.createJob(next, sourcePath);
      log.info({ job: next.id, dataset: job.dataset, version }, 'precomputing a followed dataset with the new version');
      this.enqueue(next.id);
    }
  }

  private removeSource(stored: StoredJob): void {
    try {
      rmSync(stored.sourcePath, { force: true });
    } catch (error) {
      log.warn({ err: error, job: stored.job.id }, 'removing a precompute input failed');
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    this.queue.length = 0;
    await this.running;
    await this.store?.close();
    this.store = null;
  }
}
