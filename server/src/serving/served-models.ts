import { Inject, Injectable, NotFoundException, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { FlockEventBus } from '../events/event-bus.js';
import { moduleLogger } from '../logging/logger.js';
import { ModelsService } from '../models/models.service.js';
import { DynamicBatcher } from './dynamic-batcher.js';
import { InferencePool } from './inference-pool.js';
import type { ModelSignature } from './worker-messages.js';
import { InFlightCounts } from './in-flight-counts.js';

const log = moduleLogger('serving');

/** How often the newest version is looked up in storage (rollbacks, registrations, other processes' commits). */
const POLL_MS = 2000;
/** Versions kept loaded in the workers at most (the current one, the previous one for shadow mode, pinned ones). */
const MAX_LOADED = 4;

export type VersionSwitchListener = (next: number, previous: number | null) => void;

/**
 * Which versions the inference workers hold, and which one `global` means now. The worker pool
 * starts on the first inference or readiness request (each thread loads TensorFlow.js, about a
 * second), not with the coordinator. A new version (a round's commit on the event bus; rollbacks,
 * registrations and other processes' commits by polling) is loaded into every worker before it
 * becomes current: requests already queued finish on the version they were given, so a hot swap
 * drops nothing.
 */
@Injectable()
export class ServedModels implements OnModuleInit, OnApplicationShutdown {
  private pool: InferencePool | null = null;
  private started: Promise<void> | null = null;
  private current: number | null = null;
  private poller: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> | null = null;
  /** Requests queued or running, by version: a version is unloaded only when it has none. */
  private readonly inFlight = new InFlightCounts();
  /** Loaded versions, least recently used first. */
  private readonly recent: number[] = [];
  private readonly listeners: VersionSwitchListener[] = [];
  /** Signatures of the versions loaded in the workers. */
  private readonly signatures = new Map<number, Promise<ModelSignature>>();
  private batcherInstance: DynamicBatcher | null = null;
  private closed = false;

  constructor(
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
    private readonly models: ModelsService,
    private readonly bus: FlockEventBus,
  ) {}

  onModuleInit(): void {
    this.bus.on('version.committed', () => this.refresh());
  }

  onVersionSwitch(listener: VersionSwitchListener): void {
    this.listeners.push(listener);
  }

  /** Whether the workers run and the current version is loaded. */
  get ready(): boolean {
    return this.current !== null;
  }

  get currentVersion(): number | null {
    return this.current;
  }

  get batcher(): DynamicBatcher {
    if (!this.batcherInstance) throw new Error('serving has not started');
    return this.batcherInstance;
  }

  /** Starts the workers and loads the current version (once; later calls share it). */
  warmUp(): Promise<void> {
    if (!this.started) {
      this.started = this.start();
      this.started.catch((error: unknown) => {
        log.error({ err: error }, 'starting the inference workers failed');
        this.started = null;
      });
    }
    return this.started;
  }

  private async start(): Promise<void> {
    const pool = new InferencePool(this.config.serving.workers);
    await pool.start();
    if (this.closed) {
      await pool.close();
      throw new Error('coordinator shutting down');
    }
    this.pool = pool;
    const { maxBatchSize, maxQueueDelayMs, maxQueue } = this.config.serving;
    this.batcherInstance = new DynamicBatcher(pool, { maxBatchSize, maxQueueDelayMs, maxQueue });
    await this.refresh();
    // refresh() never rejects: a failed switch is logged and the previous version served.
    this.poller = setInterval(() => {
      this.refresh().catch(() => undefined);
    }, POLL_MS);
    this.poller.unref();
  }

  /** The signature of a version, loading it into the workers if needed; 404 when it does not exist. */
  async signature(version: number): Promise<ModelSignature> {
    await this.warmUp();
    return this.load(version);
  }

  /** Loads a version into the started pool (the signature of a loaded one is answered from memory). */
  private load(version: number): Promise<ModelSignature> {
    const known = this.signatures.get(version);
    if (known) {
      this.touch(version);
      return known;
    }
    const loading = this.loadFromStorage(version);
    this.signatures.set(version, loading);
    loading.catch(() => this.signatures.delete(version));
    return loading;
  }

  private async loadFromStorage(version: number): Promise<ModelSignature> {
    const record = await this.models.get(version).catch((error: unknown) => {
      if (error instanceof NotFoundException) throw error;
      throw new NotFoundException(`model version ${version} does not exist`);
    });
    const signature = this.pool!.load(version, {
      topology: record.topology,
      weightSpecs: record.weightSpecs,
      weights: await this.models.getWeightBytes(version),
    });
    this.touch(version);
    return signature;
  }

  /** Marks a request for `version` as queued (release it when answered). */
  acquire(version: number): void {
    this.inFlight.acquire(version);
  }

  release(version: number): void {
    this.inFlight.release(version);
  }

  /** Looks for a newer version and switches to it once every worker has loaded it. */
  refresh(): Promise<void> {
    if (!this.pool || this.closed) return Promise.resolve();
    this.refreshing ??= this.switchToLatest().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async switchToLatest(): Promise<void> {
    try {
      const latest = await this.models.current();
      if (!latest || latest.version === this.current) return;
      await this.load(latest.version);
      const previous = this.current;
      this.current = latest.version;
      log.info({ version: latest.version, previous }, 'serving a new version');
      for (const listener of this.listeners) listener(latest.version, previous);
      this.evict();
    } catch (error) {
      log.warn({ err: error }, 'switching to the newest version failed; serving the previous one');
    }
  }

  private touch(version: number): void {
    const index = this.recent.indexOf(version);
    if (index >= 0) this.recent.splice(index, 1);
    this.recent.push(version);
    this.evict();
  }

  /** Unloads the least recently used versions beyond MAX_LOADED that are neither current nor busy. */
  private evict(): void {
    for (let i = 0; this.recent.length > MAX_LOADED && i < this.recent.length;) {
      const version = this.recent[i]!;
      if (version === this.current || this.inFlight.has(version)) {
        i++;
        continue;
      }
      this.recent.splice(i, 1);
      this.signatures.delete(version);
      this.pool?.unload(version);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    if (this.poller) clearInterval(this.poller);
    this.batcherInstance?.drain(new Error('coordinator shutting down'));
    await this.pool?.close();
  }
}
