import { BadRequestException, ConflictException, Inject, Injectable, NotFoundException, type OnModuleInit } from '@nestjs/common';
import { asFloat32, encodeDownloadDelta, MAX_DOWNLOAD_DELTA_VERSIONS, sameShapes, type ModelPayload } from '@flock/client-sdk/protocol';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { moduleLogger } from '../logging/logger.js';
import { accountCarried } from '../privacy/ledger.js';
import type { ModelMetrics, ModelVersionMeta, ModelVersionSource } from '../contract/index.js';
import { STORAGE, type ModelVersionRecord, type Storage } from '../storage/storage.js';
import { ensureTfBackend, trainDefaultModel } from './default-model.js';
import { TestSetEvaluationService } from './test-set-evaluation.service.js';
import { assertLoadable, InvalidModelError, parseWeightSpecs, readModelFromDisk, validateWeightBytes, type ModelArtifactsParts } from './tfjs-format.js';

const log = moduleLogger('models');

/** The immutable, large parts of a version held in memory (metrics are always read fresh). */
interface CachedVersion {
  version: number;
  topology: unknown;
  weightSpecs: ModelVersionRecord['weightSpecs'];
  /** The stored bytes; `floats` views the same memory when it is 4-byte aligned. */
  bytes: Uint8Array;
  floats: Float32Array;
}

/** How many versions' weights stay in memory: the current one and the base of a round in flight. */
const CACHED_VERSIONS = 2;
/** How many download deltas (base, version pairs) stay in memory: about one int8 model each. */
const CACHED_DELTAS = 8;

/**
 * The global model registry: immutable versions in Storage, the current one being the highest
 * number. Rounds commit through `storage.commitRound` and then call `invalidateCache()`.
 *
 * Values returned here (records, Float32Array weights, payload bytes) are shared with the cache and
 * must be treated as read-only: copy before modifying.
 */
@Injectable()
export class ModelsService implements OnModuleInit {
  private readonly cache = new Map<number, Promise<CachedVersion>>();
  private readonly deltas = new Map<string, Promise<ModelPayload | null>>();
  private initial: Promise<ModelVersionMeta> | null = null;

  constructor(
    @Inject(STORAGE) private readonly storage: Storage,
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
    private readonly testSet: TestSetEvaluationService,
  ) {}

  async onModuleInit(): Promise<void> {
    // The current (latest) version. It may lack test-set metrics: a crash right after its commit,
    // or the test set switched on since.
    const current = await this.ensureInitialModel();
    const known = current.metrics.testAccuracy;
    if (typeof known === 'number') {
      this.testSet.record(current.version, known);
    } else if (this.testSet.enabled) {
      const { topology, weightSpecs, bytes } = await this.load(current.version);
      // evaluate() never rejects: failures are logged there.
      this.testSet.evaluate(current.version, { topology, weightSpecs, weights: bytes }).catch(() => undefined);
    }
  }

  /**
   * Makes sure version 1 exists: registers `config.initialModelPath` if set, else trains the
   * default 2NN on real MNIST. Idempotent; concurrent callers share one run.
   */
  ensureInitialModel(): Promise<ModelVersionMeta> {
    if (!this.initial) {
      this.initial = this.createInitialModel();
      this.initial.catch(() => {
        this.initial = null;
      });
    }
    return this.initial;
  }

  private async createInitialModel(): Promise<ModelVersionMeta> {
    const existing = await this.storage.latestModelVersion();
    if (existing) return existing;
    let parts: ModelArtifactsParts;
    let metrics: ModelMetrics;
    if (this.config.initialModelPath) {
      log.info({ path: this.config.initialModelPath }, 'registering the initial model');
      parts = await readModelFromDisk(this.config.initialModelPath);
      metrics = { initialModel: 'file' };
    } else {
      log.info({ trainExamples: this.config.defaultModelTrainExamples }, 'training the default 2NN on MNIST');
      const trained = await trainDefaultModel({ trainExamples: this.config.defaultModelTrainExamples });
      parts = trained;
      metrics = { initialModel: 'default-2nn', ...trained.metrics };
    }
    // Another coordinator sharing the database may have won the race while we trained.
    const raced = await this.storage.latestModelVersion();
    if (raced) return raced;
    const meta = await this.insert(parts, metrics, 'initial', null);
    log.info({ version: meta.version, numParameters: meta.numParameters, testAccuracy: metrics.testAccuracy ?? null }, 'initial model stored');
    return meta;
  }

  /** The latest version (highest number), or null before the first one exists. */
  current(): Promise<ModelVersionMeta | null> {
    return this.storage.latestModelVersion();
  }

  /** All versions, newest first. */
  async list(): Promise<ModelVersionMeta[]> {
    const versions = await this.storage.listModelVersions();
    return versions.sort((a, b) => b.version - a.version);
  }

  /** Resolves 'current' to a number; 404 when there is no such version (yet). */
  async resolveVersion(version: number | 'current'): Promise<number> {
    if (version !== 'current') return version;
    const current = await this.current();
    if (!current) throw new NotFoundException('no global model version exists yet');
    return current.version;
  }

  /** A version's record (topology, weight specs, strategy state, current metrics); 404 when unknown. */
  async get(version: number): Promise<ModelVersionRecord> {
    assertVersionNumber(version);
    const record = await this.storage.getModelVersion(version);
    if (!record) throw new NotFoundException(`model version ${version} does not exist`);
    return record;
  }

  /** A version's weights as float32 values, in weightSpecs order (read-only, shared). */
  async getWeights(version: number): Promise<Float32Array> {
    return (await this.load(version)).floats;
  }

  /** A version's weights as stored: concatenated float32 little-endian bytes (read-only, shared). */
  async getWeightBytes(version: number): Promise<Uint8Array> {
    return (await this.load(version)).bytes;
  }

  /** What a device gets for `model:fetch`. */
  async getModelPayload(version: number): Promise<ModelPayload> {
    const { topology, weightSpecs, bytes } = await this.load(version);
    // Every stored version loaded in TensorFlow.js before it was stored: its topology is a JSON object.
    return { version, topology: topology as ModelPayload['topology'], weightSpecs, weights: bytes };
  }

  /**
   * What a device holding `deltaFrom` exactly gets for `version`: the int8 download delta
   * (compression.ts), or null when none applies (no such or a newer base, too far back, other
   * shapes). Deltas are cached per (base, version) pair, so many devices fetching the same pair
   * cost one computation; bases are read from storage, not through the version cache.
   */
  async getDeltaPayload(version: number, deltaFrom: number): Promise<ModelPayload | null> {
    if (!(deltaFrom < version && version - deltaFrom <= MAX_DOWNLOAD_DELTA_VERSIONS)) return null;
    const key = `${deltaFrom}:${version}`;
    let entry = this.deltas.get(key);
    if (!entry) {
      entry = this.computeDelta(version, deltaFrom);
      this.deltas.set(key, entry);
      entry.catch(() => this.deltas.delete(key));
      while (this.deltas.size > CACHED_DELTAS) this.deltas.delete(this.deltas.keys().next().value!);
    }
    return entry;
  }

  private async computeDelta(version: number, deltaFrom: number): Promise<ModelPayload | null> {
    const current = await this.load(version);
    const [record, baseBytes] = await Promise.all([this.storage.getModelVersion(deltaFrom), this.storage.getModelWeights(deltaFrom)]);
    if (!record || !baseBytes) return null;
    const shapes = current.weightSpecs.map((spec) => spec.shape);
    if (
      !sameShapes(
        record.weightSpecs.map((spec) => spec.shape),
        shapes,
      )
    )
      return null;
    const weights = encodeDownloadDelta(current.floats, asFloat32(baseBytes), shapes);
    return { version, topology: current.topology as ModelPayload['topology'], weightSpecs: current.weightSpecs, weights, deltaFrom };
  }

  /**
   * Makes an old version current again by copying it into a NEW version (source 'rollback',
   * parent = the current version); history is never rewritten.
   */
  async rollback(version: number): Promise<ModelVersionMeta> {
    const target = await this.get(version);
    const { bytes } = await this.load(version);
    const current = await this.current();
    if (current?.version === version) throw new ConflictException(`version ${version} is already the current version`);
    const meta = await this.storage.insertModelVersion(
      {
        parentVersion: current?.version ?? null,
        roundId: null,
        source: 'rollback',
        numParameters: target.numParameters,
        metrics: { ...target.metrics, rolledBackFrom: version },
        topology: target.topology,
        weightSpecs: target.weightSpecs,
        strategyState: target.strategyState,
        // The ledger carries on (what the rounds after `version` revealed stays revealed); the lineage is the copied version's.
        privacy: accountCarried(current?.privacy ?? null, target.privacy?.protected ?? false, this.config.privacy.delta),
      },
      bytes,
    );
    this.invalidateCache();
    this.testNewVersion(meta, { topology: target.topology, weightSpecs: target.weightSpecs, weights: bytes });
    log.info({ version: meta.version, rolledBackFrom: version, parentVersion: meta.parentVersion }, 'model rolled back');
    return meta;
  }

  /**
   * Registers a model as a new version (source 'registered', parent = the current version). Checks
   * float32-only specs, exact byte length, finite values, and that TensorFlow.js can load it.
   * Invalid input is a 400.
   */
  async register(topology: unknown, weightSpecs: unknown, weights: Uint8Array | Float32Array, metrics: ModelMetrics = {}): Promise<ModelVersionMeta> {
    const bytes = new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength);
    try {
      const specs = parseWeightSpecs(weightSpecs);
      validateWeightBytes(specs, bytes);
      const parts = { topology, weightSpecs: specs, weights: bytes };
      await ensureTfBackend();
      await assertLoadable(parts);
      const current = await this.current();
      const meta = await this.insert(parts, metrics, 'registered', current?.version ?? null);
      log.info({ version: meta.version, numParameters: meta.numParameters }, 'model registered');
      return meta;
    } catch (error) {
      if (error instanceof InvalidModelError) throw new BadRequestException(error.message);
      throw error;
    }
  }

  /**
   * Drops cached weights. Versions are immutable, so cached entries never go stale; this only frees
   * memory. Safe to call after committing a version through Storage directly.
   */
  invalidateCache(): void {
    this.cache.clear();
  }

  /** For the rounds engine after `storage.commitRound`: frees the cache and tests the new version. */
  onVersionCommitted(meta: ModelVersionMeta, parts: ModelArtifactsParts): void {
    this.invalidateCache();
    this.testNewVersion(meta, parts);
  }

  /** Centralized evaluation of a new version, in the background, unless it already has test metrics. */
  private testNewVersion(meta: ModelVersionMeta, parts: ModelArtifactsParts): void {
    const known = meta.metrics.testAccuracy;
    if (typeof known === 'number') this.testSet.record(meta.version, known);
    else this.testSet.evaluate(meta.version, parts).catch(() => undefined); // never rejects: failures are logged there
  }

  private async insert(parts: ModelArtifactsParts, metrics: ModelMetrics, source: ModelVersionSource, parentVersion: number | null): Promise<ModelVersionMeta> {
    const ledger = (await this.current())?.privacy ?? null;
    const meta = await this.storage.insertModelVersion(
      {
        parentVersion,
        roundId: null,
        source,
        numParameters: parts.weights.byteLength / Float32Array.BYTES_PER_ELEMENT,
        metrics,
        topology: parts.topology,
        weightSpecs: parts.weightSpecs,
        strategyState: null,
        // No device data in it; the ledger of earlier rounds carries on.
        privacy: accountCarried(ledger, true, this.config.privacy.delta),
      },
      parts.weights,
    );
    this.invalidateCache();
    this.testNewVersion(meta, parts);
    return meta;
  }

  /** Loads a version through the cache; concurrent callers share one read. */
  private load(version: number): Promise<CachedVersion> {
    try {
      assertVersionNumber(version);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    let entry = this.cache.get(version);
    if (entry) {
      // Most recently used last.
      this.cache.delete(version);
      this.cache.set(version, entry);
      return entry;
    }
    entry = this.read(version);
    this.cache.set(version, entry);
    entry.catch(() => {
      if (this.cache.get(version) === entry) this.cache.delete(version);
    });
    while (this.cache.size > CACHED_VERSIONS) this.cache.delete(this.cache.keys().next().value!);
    return entry;
  }

  private async read(version: number): Promise<CachedVersion> {
    const [record, bytes] = await Promise.all([this.storage.getModelVersion(version), this.storage.getModelWeights(version)]);
    if (!record || !bytes) throw new NotFoundException(`model version ${version} does not exist`);
    return { version, topology: record.topology, weightSpecs: record.weightSpecs, bytes, floats: asFloat32(bytes) };
  }
}

function assertVersionNumber(version: number): void {
  if (!Number.isInteger(version) || version < 1) {
    throw new BadRequestException(`model version must be a positive integer, got ${version}`);
  }
}
