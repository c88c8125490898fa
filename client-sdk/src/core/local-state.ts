/**
 * What a device keeps between sessions, and what `predict()` answers from: its identity (key pair),
 * its last evaluation, the personalized model, and the newest global model fetched (so a round or an
 * evaluation of that version needs no download). Everything persists through the ModelStore, so
 * predictions work offline and the device is the same device after a restart.
 */
import * as tf from '@tensorflow/tfjs';
import type { EvaluationReport, ModelPayload } from '../protocol/model-messages.js';
import { personalizationPlanSchema, type PersonalizationPlan } from '../protocol/personalization.js';
import type { ModelInfo } from './client-types.js';
import { toFeatureTensor, type ExampleValues } from './data.js';
import { errorMessage, FlockClientError } from './errors.js';
import { DeviceIdentity } from './identity.js';
import {
  instantiateModel,
  snapshotModel,
  storedModelFromInitial,
  storedModelFromLayersModel,
  storedModelFromPayload,
  type InitialModel,
  type StoredModel,
} from './model.js';
import { copyLayerWeights } from './personalization.js';
import type { ClientState, ModelStore } from './store.js';
import { storedResidual, usableResidual } from './compress-delta.js';
import { applyDownloadDelta } from '../protocol/compression.js';
import { asFloat32, sameShapes, type WeightSpec } from '../protocol/weights.js';

/** A live model with the global version it is based on. */
export interface PersonalModel {
  model: tf.LayersModel;
  version: number | null;
  fineTunedEpochs: number;
}

export interface LocalStateOptions {
  store: ModelStore;
  /** Used (and persisted as the personalized model) when the store has none. */
  initialModel: InitialModel | undefined;
  initialModelVersion: number | null;
  /** Fetch newer versions as int8 deltas from the exact one held (FederatedClientOptions.downloadDeltas). */
  downloadDeltas?: boolean;
  /** Failures that do not stop the caller (caching a global model). */
  reportError: (error: FlockClientError) => void;
}

export class LocalState {
  /** A bundled live model is copied at construction, so the app may dispose its own. */
  private readonly initialCopy: StoredModel | null;
  private loading: Promise<void> | null = null;
  private state: ClientState | null = null;
  private device: DeviceIdentity | null = null;
  private personal: PersonalModel | null = null;
  /** The stored form the personal model was built from (its topology and weight names, for snapshots). */
  private personalBase: StoredModel | null = null;
  /** predict()'s model before any personalized one exists: the cached global model, live. */
  private fallbackModel: PersonalModel | null = null;
  /** The newest global model on hand: received whole, or rebuilt from a download delta (memory only). */
  private globalCache: StoredModel | null = null;
  /** The newest global model received whole (the `global` slot): the base of download deltas. */
  private exactGlobal: StoredModel | null = null;

  constructor(private readonly options: LocalStateOptions) {
    const { initialModel, initialModelVersion } = options;
    this.initialCopy = initialModel instanceof tf.LayersModel ? storedModelFromLayersModel(initialModel, initialModelVersion) : null;
  }

  /** Reads the persisted state once (calling it again is harmless; a failed load can be retried). */
  load(): Promise<void> {
    this.loading ??= this.loadFromStore().catch((error: unknown) => {
      this.loading = null;
      throw error instanceof FlockClientError
        ? error
        : new FlockClientError('store_failed', `loading local state failed: ${errorMessage(error)}`, { cause: error });
    });
    return this.loading;
  }

  /** The device's key pair and the client id derived from it (null before `load()`). */
  get identity(): DeviceIdentity | null {
    return this.device;
  }

  /** The last global version tested locally (0 when none). */
  get lastEvaluatedVersion(): number {
    return this.state?.lastEvaluatedVersion ?? 0;
  }

  /** The model new global versions are tested against (null when the device has none). */
  get personalModel(): PersonalModel | null {
    return this.personal;
  }

  /** The personalization of the latest round's plan (null: none stated; the app's options apply). */
  get planPersonalization(): PersonalizationPlan | null {
    return this.state?.planPersonalization ?? null;
  }

  /** Remembers (and persists) a round plan's personalization, when it changed. */
  async rememberPlanPersonalization(plan: PersonalizationPlan | null): Promise<void> {
    const state = this.loadedState();
    if (JSON.stringify(state.planPersonalization ?? null) === JSON.stringify(plan)) return;
    this.state = { ...state, planPersonalization: plan };
    await this.options.store.saveState(this.state);
  }

  get info(): ModelInfo {
    return {
      personalVersion: this.personal?.version ?? null,
      fineTunedEpochs: this.personal?.fineTunedEpochs ?? 0,
      hasModel: this.personal !== null || this.globalCache !== null,
      lastEvaluatedVersion: this.state?.lastEvaluatedVersion ?? null,
      lastEvaluation: this.state?.lastEvaluation ?? null,
      cachedGlobalVersion: this.globalCache?.version ?? null,
    };
  }

  /**
   * The global model of `version`: from the cache when it is that version, else fetched (as a
   * download delta from the exact version held, when enabled and the coordinator offers one) and cached.
   */
  async globalModel(version: number, fetch: (version: number, deltaFrom?: number) => Promise<ModelPayload>): Promise<StoredModel> {
    if (this.globalCache?.version === version) return this.globalCache;
    const base = this.exactGlobal;
    const deltaFrom = this.options.downloadDeltas && base?.version != null && base.version < version ? base.version : undefined;
    const payload = await fetch(version, deltaFrom);
    if (payload.deltaFrom !== undefined) {
      // Rebuilt, so not exact: newest on hand, never persisted as the `global` slot (deltas stay against the exact base).
      const rebuilt = storedModelFromDelta(payload, base!);
      if ((this.globalCache?.version ?? 0) <= version) this.globalCache = rebuilt;
      return rebuilt;
    }
    const stored = storedModelFromPayload(payload);
    // Keep only the newest global version.
    if (this.globalCache === null || (this.globalCache.version ?? 0) <= version) {
      this.globalCache = stored;
      this.exactGlobal = stored;
      try {
        await this.options.store.saveModel('global', stored);
      } catch (error) {
        this.options.reportError(new FlockClientError('store_failed', `caching global model ${version} failed: ${errorMessage(error)}`, { cause: error }));
      }
    }
    return stored;
  }

  /** Top-k error feedback's residual for a round on `baseVersion` with these specs; null when there is none or it was reset (compress-delta.ts). */
  async residual(specs: readonly WeightSpec[], baseVersion: number): Promise<Float32Array[] | null> {
    return usableResidual(await this.options.store.loadModel('residual'), specs, baseVersion);
  }

  /** Keeps the residual left after an accepted top-k upload; durable when the promise resolves. */
  async saveResidual(residual: readonly Float32Array[], specs: readonly WeightSpec[], baseVersion: number): Promise<void> {
    await this.options.store.saveModel('residual', storedResidual(residual, specs, baseVersion));
  }

  /** Makes `model` (built from `global`, then fine-tuned) the personalized model; takes ownership once persisted. */
  async adopt(model: tf.LayersModel, global: StoredModel, fineTunedEpochs: number): Promise<void> {
    await this.options.store.saveModel('personal', snapshotModel(model, global, fineTunedEpochs));
    if (this.personal?.model !== model) this.personal?.model.dispose();
    this.personal = { model, version: global.version, fineTunedEpochs };
    this.personalBase = global;
  }

  /**
   * personal-layers after a round: the device's personal layers as trained in it (`trained` has
   * the personal model's topology), copied into the personal model and persisted.
   */
  async keepPersonalLayers(trained: tf.LayersModel, layers: readonly string[]): Promise<boolean> {
    const personal = this.personal;
    const base = this.personalBase;
    if (!personal || !base || !copyLayerWeights(trained, personal.model, layers)) return false;
    await this.options.store.saveModel('personal', snapshotModel(personal.model, base, personal.fineTunedEpochs));
    return true;
  }

  /** Remembers that `version` was tested (and what was reported, when something was). */
  async recordEvaluation(version: number, report: EvaluationReport | null): Promise<void> {
    const state = this.loadedState();
    this.state = { ...state, lastEvaluatedVersion: version, lastEvaluation: report ?? state.lastEvaluation };
    await this.options.store.saveState(this.state);
  }

  /** Predicts with the personalized model, else the cached global one; the caller disposes the result. */
  async predict(input: tf.Tensor | ExampleValues): Promise<tf.Tensor> {
    await this.load();
    const model = await this.predictionModel();
    return tf.tidy(() => model.predict(featuresForModel(input, model)) as tf.Tensor);
  }

  /** Frees the models' memory and closes the store (waits for a load in progress). */
  async dispose(): Promise<void> {
    await this.loading?.catch(() => undefined);
    this.personal?.model.dispose();
    this.fallbackModel?.model.dispose();
    this.personal = null;
    this.personalBase = null;
    this.fallbackModel = null;
    await this.options.store.close?.();
  }

  private loadedState(): ClientState {
    if (!this.state) throw new Error('local state used before load()');
    return this.state;
  }

  private async loadFromStore(): Promise<void> {
    await tf.ready();
    const { store, initialModel, initialModelVersion } = this.options;
    this.device = await DeviceIdentity.load(store);
    const saved = await store.loadState();
    this.state = {
      lastEvaluatedVersion: saved?.lastEvaluatedVersion ?? null,
      lastEvaluation: saved?.lastEvaluation ?? null,
      // Read back from the device's own storage: checked like a plan from the wire, else forgotten.
      planPersonalization: personalizationPlanSchema
        .nullable()
        .catch(null)
        .parse(saved?.planPersonalization ?? null),
    };
    this.globalCache = await store.loadModel('global');
    this.exactGlobal = this.globalCache;
    let personal = await store.loadModel('personal');
    if (!personal && initialModel !== undefined) {
      personal = this.initialCopy ?? (await storedModelFromInitial(initialModel, initialModelVersion));
      await store.saveModel('personal', personal);
    }
    if (personal) {
      this.personal = { model: await instantiateModel(personal), version: personal.version, fineTunedEpochs: personal.fineTunedEpochs };
      this.personalBase = personal;
    }
  }

  private async predictionModel(): Promise<tf.LayersModel> {
    if (this.personal) return this.personal.model;
    const cached = this.globalCache;
    if (!cached) throw new FlockClientError('no_model', 'no model yet: pass an initialModel or wait for the first global model');
    if (this.fallbackModel?.version !== cached.version) {
      this.fallbackModel?.model.dispose();
      this.fallbackModel = { model: await instantiateModel(cached), version: cached.version, fineTunedEpochs: 0 };
    }
    return this.fallbackModel.model;
  }
}

/** A global version rebuilt from a download delta and the exact base it was computed against. */
function storedModelFromDelta(payload: ModelPayload, base: StoredModel): StoredModel {
  const shapes = payload.weightSpecs.map((spec) => spec.shape);
  if (
    !sameShapes(
      shapes,
      base.weightSpecs.map((spec) => spec.shape),
    )
  ) {
    throw new FlockClientError('protocol', `download delta for version ${payload.version} has other shapes than version ${base.version}`, {
      modelVersion: payload.version,
    });
  }
  let weights: Float32Array;
  try {
    weights = applyDownloadDelta(asFloat32(base.weights), payload.weights, shapes);
  } catch (error) {
    throw new FlockClientError('protocol', `malformed download delta for version ${payload.version}: ${errorMessage(error)}`, {
      modelVersion: payload.version,
    });
  }
  return storedModelFromPayload({
    version: payload.version,
    topology: payload.topology,
    weightSpecs: payload.weightSpecs,
    weights: weights.buffer as ArrayBuffer,
  });
}

/** Turns predict() input into a batch shaped for the model (a single example gets a batch axis). */
function featuresForModel(input: tf.Tensor | ExampleValues, model: tf.LayersModel): tf.Tensor {
  const inputShape = model.inputs[0]!.shape.slice(1);
  const exampleSize = inputShape.every((dim): dim is number => dim !== null) ? tf.util.sizeFromShape(inputShape) : null;
  const tensor = toFeatureTensor(input);
  if (exampleSize !== null && tensor.size === exampleSize) return tf.reshape(tensor, [1, ...(inputShape as number[])]);
  if (exampleSize !== null && tensor.shape[0] !== undefined && tensor.size === tensor.shape[0] * exampleSize) {
    return tf.reshape(tensor, [tensor.shape[0], ...(inputShape as number[])]);
  }
  return tensor;
}
