/**
 * The personalization methods (which model a device keeps for its user beside the global one) and
 * how each treats a new global version:
 *
 * - `fine-tune` (Wang et al. 2019): the adopted global model, fine-tuned on local data; a new
 *   version replaces it when it passes the local test (evaluation-job.ts).
 * - `ditto` (Li et al. 2021): a personal model v of its own, persisted across versions; each new
 *   global version w moves it by local SGD on F(v) + lambda/2 * ||v - w||^2.
 * - `personal-layers` (FedPer / FedRep): the named layers never leave the device. A new version
 *   brings its shared layers; the device keeps its own personal layers and trains them (only them)
 *   on local data. Rounds train the shared layers on top of the device's personal ones and upload
 *   the shared tensors' delta only.
 *
 * The app chooses with `personalization.method`; a round's plan may override it (the operator's
 * choice, remembered until the next plan). Pure choices here; the jobs do the I/O.
 */
import * as tf from '@tensorflow/tfjs';
import { type PersonalizationMethod, type PersonalizationPlan } from '../protocol/personalization.js';
import type { PersonalizationOptions } from './client-types.js';
import {
  DEFAULT_DITTO_LAMBDA,
  DEFAULT_FINE_TUNE_BATCH_SIZE,
  DEFAULT_FINE_TUNE_EPOCHS,
  DEFAULT_FINE_TUNE_LEARNING_RATE,
  DEFAULT_PERSONALIZATION_METHOD,
} from './defaults.js';
import { trainModel, type LocalTrainingPlan, type TrainOptions, type TrainResult } from './training.js';

/** The method in force, with every parameter resolved. */
export interface PersonalizationSettings {
  method: PersonalizationMethod;
  /** Local training of the personal model per new global version (`epochs` 0: none). */
  training: LocalTrainingPlan;
  dittoLambda: number;
  /** Layer names that stay on the device (`personal-layers` only; empty otherwise). */
  personalLayers: readonly string[];
}

/** The app's options, overridden field by field by the latest round plan's personalization (when it has one). */
export function personalizationSettings(options: PersonalizationOptions | undefined, plan: PersonalizationPlan | null): PersonalizationSettings {
  const method = plan?.method ?? options?.method ?? DEFAULT_PERSONALIZATION_METHOD;
  const dittoLambda = plan?.dittoLambda ?? options?.dittoLambda ?? DEFAULT_DITTO_LAMBDA;
  if (!(dittoLambda >= 0)) throw new RangeError('personalization.dittoLambda must be >= 0');
  const personalLayers = method === 'personal-layers' ? (plan?.personalLayers ?? options?.personalLayers ?? []) : [];
  if (method === 'personal-layers' && personalLayers.length === 0) {
    throw new RangeError("personalization method 'personal-layers' needs personalLayers (the layer names that stay on the device)");
  }
  return {
    method,
    training: {
      epochs: options?.fineTuneEpochs ?? DEFAULT_FINE_TUNE_EPOCHS,
      batchSize: options?.batchSize ?? DEFAULT_FINE_TUNE_BATCH_SIZE,
      learningRate: options?.learningRate ?? DEFAULT_FINE_TUNE_LEARNING_RATE,
    },
    dittoLambda,
    personalLayers: [...personalLayers],
  };
}

/** True when both models have the same weight shapes in the same order: one's weights fit the other. */
export function sameWeightShapes(a: tf.LayersModel, b: tf.LayersModel): boolean {
  const aw = a.weights;
  const bw = b.weights;
  return (
    aw.length === bw.length && aw.every((weight, i) => weight.shape.length === bw[i]!.shape.length && weight.shape.every((dim, j) => dim === bw[i]!.shape[j]))
  );
}

/**
 * Copies the weights of the named layers from `from` into `to` (personal-layers: the device's own
 * head onto a new global body). Returns false, copying nothing, when the models do not fit each other.
 */
export function copyLayerWeights(from: tf.LayersModel, to: tf.LayersModel, layers: readonly string[]): boolean {
  if (!sameWeightShapes(from, to)) return false;
  const pairs = layers.map((name) => [layerOrNull(from, name), layerOrNull(to, name)] as const);
  if (pairs.some(([source, target]) => !source || !target)) return false;
  for (const [source, target] of pairs) target!.setWeights(source!.getWeights());
  return true;
}

function layerOrNull(model: tf.LayersModel, name: string): tf.layers.Layer | null {
  return model.layers.find((layer) => layer.name === name) ?? null;
}

/**
 * Trains only the layers named in `layers` (the others frozen for the run, then restored): the
 * personal head of personal-layers, on top of the shared body.
 */
export async function trainOnlyLayers(
  model: tf.LayersModel,
  layers: readonly string[],
  xs: tf.Tensor,
  ys: tf.Tensor,
  plan: LocalTrainingPlan,
  options: TrainOptions,
): Promise<TrainResult> {
  const personal = new Set(layers);
  const frozen = model.layers.filter((layer) => layer.trainable && !personal.has(layer.name));
  for (const layer of frozen) layer.trainable = false;
  try {
    return await trainModel(model, xs, ys, plan, options);
  } finally {
    for (const layer of frozen) layer.trainable = true;
  }
}

/**
 * Ditto's personal update: trains `personal` in place on local data with the proximal term
 * lambda/2 * ||v - w||^2 towards `global` (a live model of the same topology, read only).
 * Starting from v = w, it keeps ||v - w|| <= sqrt(2 * F(w) / lambda) while it lowers the objective.
 */
export async function dittoUpdate(
  personal: tf.LayersModel,
  global: tf.LayersModel,
  lambda: number,
  xs: tf.Tensor,
  ys: tf.Tensor,
  plan: LocalTrainingPlan,
  options: TrainOptions,
): Promise<TrainResult> {
  const anchors = global.trainableWeights.map((weight) => weight.read());
  return trainModel(personal, xs, ys, { ...plan, proximalMu: lambda }, { ...options, proximalAnchors: anchors });
}
