/**
 * Models as the SDK keeps them: Keras topology JSON + float32 weights in a fixed order (the
 * protocol's ModelPayload layout), and the conversions to and from live tf.LayersModel instances.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelPayload } from '../protocol/model-messages.js';
import { asFloat32, shapeSize, totalValues, type WeightSpec } from '../protocol/weights.js';

/** A model at rest (store, cache): what `predict()` and training are rebuilt from. */
export interface StoredModel {
  /** The global version this model is, or is fine-tuned from; null for a bundled model of unknown version. */
  version: number | null;
  /** `modelTopology` of the TensorFlow.js layers format. */
  topology: unknown;
  weightSpecs: WeightSpec[];
  /** All weights, float32 little-endian, concatenated in weightSpecs order (exact length). */
  weights: ArrayBuffer;
  /** Epochs of local fine-tuning applied on top of the global version (0: the global model as is). */
  fineTunedEpochs: number;
  /** Epoch milliseconds. */
  savedAt: number;
}

/** A model the app bundles so `predict()` works before (or without) any coordinator contact. */
export type InitialModel = tf.LayersModel | tf.io.ModelArtifacts | tf.io.IOHandler | string;

/** Copies a byte payload into an exactly sized ArrayBuffer (Node Buffers are views into a shared pool). */
export function toExactArrayBuffer(data: ArrayBuffer | ArrayBufferView): ArrayBuffer {
  if (data instanceof ArrayBuffer) return data;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice().buffer;
}

function checkSpecs(weightSpecs: readonly WeightSpec[], byteLength: number): void {
  for (const spec of weightSpecs) {
    if (spec.dtype !== 'float32') throw new Error(`weight '${spec.name}' is ${String(spec.dtype)}; Flock moves float32 weights only`);
  }
  const expected = totalValues(weightSpecs.map((spec) => spec.shape)) * Float32Array.BYTES_PER_ELEMENT;
  if (expected !== byteLength) throw new Error(`model weights have ${byteLength} bytes, the weight specs need ${expected}`);
}

/** Validates a fetched global model and copies it into a StoredModel. */
export function storedModelFromPayload(payload: ModelPayload, now = Date.now()): StoredModel {
  if (payload.deltaFrom !== undefined) throw new Error(`model version ${payload.version} came as a delta from ${payload.deltaFrom}, not whole`);
  const weights = toExactArrayBuffer(payload.weights);
  checkSpecs(payload.weightSpecs, weights.byteLength);
  return {
    version: payload.version,
    topology: payload.topology,
    weightSpecs: payload.weightSpecs.map((spec) => ({ name: spec.name, shape: [...spec.shape], dtype: 'float32' })),
    weights,
    fineTunedEpochs: 0,
    savedAt: now,
  };
}

/** Builds a fresh LayersModel (new variables) from a stored model. The caller disposes it. */
export async function instantiateModel(stored: StoredModel): Promise<tf.LayersModel> {
  if (typeof stored.topology !== 'object' || stored.topology === null) throw new Error('model topology is not a JSON object');
  checkSpecs(stored.weightSpecs, stored.weights.byteLength);
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: stored.topology, weightSpecs: stored.weightSpecs, weightData: stored.weights }));
}

/**
 * The model's weight variables in `specs` order, matched by the names tfjs saves weights under
 * (`originalName`), or by position when the names differ but shapes agree.
 */
export function weightsInSpecOrder(model: tf.LayersModel, specs: readonly WeightSpec[]): tf.Variable[] {
  const weights = model.weights;
  const byName = new Map(weights.map((weight) => [weight.originalName, weight]));
  const byNameOk = specs.every((spec) => byName.has(spec.name));
  if (specs.length !== weights.length) {
    throw new Error(`the model has ${weights.length} weights, the weight specs list ${specs.length}`);
  }
  return specs.map((spec, i) => {
    const weight = byNameOk ? byName.get(spec.name)! : weights[i]!;
    if (!tf.util.arraysEqual(concreteShape(weight.shape), spec.shape)) {
      throw new Error(`weight '${spec.name}' has shape [${weight.shape.join(', ')}], expected [${spec.shape.join(', ')}]`);
    }
    return weight.read() as tf.Variable;
  });
}

/** Reads the model's weights (a copy) in `specs` order. */
export function readWeights(model: tf.LayersModel, specs: readonly WeightSpec[]): Float32Array[] {
  return weightsInSpecOrder(model, specs).map((variable) => Float32Array.from(variable.dataSync() as Float32Array));
}

/** Concatenates per-tensor values into one exactly sized buffer. */
export function concatWeights(tensors: readonly Float32Array[]): ArrayBuffer {
  const flat = new Float32Array(tensors.reduce((sum, tensor) => sum + tensor.length, 0));
  let offset = 0;
  for (const tensor of tensors) {
    flat.set(tensor, offset);
    offset += tensor.length;
  }
  return flat.buffer;
}

/** Splits a stored model's weight buffer into per-tensor views (no copy). */
export function splitStoredWeights(stored: StoredModel): Float32Array[] {
  const flat = asFloat32(stored.weights);
  const tensors: Float32Array[] = [];
  let offset = 0;
  for (const spec of stored.weightSpecs) {
    const size = shapeSize(spec.shape);
    tensors.push(flat.subarray(offset, offset + size));
    offset += size;
  }
  return tensors;
}

/** Snapshots a live model that shares `base`'s topology (e.g. after fine-tuning it). */
export function snapshotModel(model: tf.LayersModel, base: StoredModel, fineTunedEpochs: number, now = Date.now()): StoredModel {
  return {
    version: base.version,
    topology: base.topology,
    weightSpecs: base.weightSpecs,
    weights: concatWeights(readWeights(model, base.weightSpecs)),
    fineTunedEpochs,
    savedAt: now,
  };
}

/** A weight variable's shape (always fully known, unlike layer input shapes). */
function concreteShape(shape: readonly (number | null)[]): number[] {
  return shape.map((dim) => {
    if (dim === null) throw new Error('a weight has an undefined dimension');
    return dim;
  });
}

function isLayersModel(value: InitialModel): value is tf.LayersModel {
  if (value instanceof tf.LayersModel) return true;
  if (looksLikeLayersModel(value)) throw new Error(SECOND_TFJS_COPY);
  return false;
}

/**
 * A model built by another copy of TensorFlow.js fails `instanceof` and would otherwise reach
 * `tf.loadLayersModel`, whose error ("IOHandler ... does not have the `load` method") hides the cause.
 */
function looksLikeLayersModel(value: InitialModel): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Partial<Record<'getWeights' | 'toJSON' | 'predict', unknown>>;
  return typeof candidate.getWeights === 'function' && typeof candidate.toJSON === 'function' && typeof candidate.predict === 'function';
}

const SECOND_TFJS_COPY =
  `initialModel is a tf.LayersModel from another copy of @tensorflow/tfjs than the one @flock/client-sdk uses (${tf.version.tfjs}). ` +
  "The app has two copies installed: give it one version within the SDK's peer range (npm ls @tensorflow/tfjs shows them), " +
  'or pass the model as tf.io.ModelArtifacts or a URL instead.';

function isArtifacts(value: InitialModel): value is tf.io.ModelArtifacts {
  return typeof value === 'object' && 'modelTopology' in value && !('load' in value);
}

/** Converts a live model into a StoredModel (topology from `toJSON`, weights under their saved names). */
export function storedModelFromLayersModel(model: tf.LayersModel, version: number | null, now = Date.now()): StoredModel {
  const weightSpecs: WeightSpec[] = model.weights.map((weight) => {
    if (weight.dtype !== 'float32') throw new Error(`weight '${weight.originalName}' is ${weight.dtype}; Flock moves float32 weights only`);
    return { name: weight.originalName, shape: concreteShape(weight.shape), dtype: 'float32' };
  });
  return {
    version,
    topology: model.toJSON(null, false),
    weightSpecs,
    weights: concatWeights(readWeights(model, weightSpecs)),
    fineTunedEpochs: 0,
    savedAt: now,
  };
}

/** Turns a bundled initial model (live model, artifacts, URL or IO handler) into a StoredModel. */
export async function storedModelFromInitial(initial: InitialModel, version: number | null): Promise<StoredModel> {
  if (isLayersModel(initial)) return storedModelFromLayersModel(initial, version);
  if (isArtifacts(initial)) {
    const specs = (initial.weightSpecs ?? []).filter((spec) => spec.group !== 'optimizer');
    const weights = tf.io.CompositeArrayBuffer.join(initial.weightData ?? new ArrayBuffer(0));
    const weightSpecs: WeightSpec[] = specs.map((spec) => ({ name: spec.name, shape: [...spec.shape], dtype: spec.dtype as 'float32' }));
    const modelBytes = totalValues(weightSpecs.map((spec) => spec.shape)) * Float32Array.BYTES_PER_ELEMENT;
    const stored: StoredModel = {
      version,
      topology: initial.modelTopology,
      weightSpecs,
      weights: weights.byteLength === modelBytes ? weights : weights.slice(0, modelBytes),
      fineTunedEpochs: 0,
      savedAt: Date.now(),
    };
    checkSpecs(stored.weightSpecs, stored.weights.byteLength);
    return stored;
  }
  const model = await tf.loadLayersModel(initial);
  try {
    return storedModelFromLayersModel(model, version);
  } finally {
    model.dispose();
  }
}
