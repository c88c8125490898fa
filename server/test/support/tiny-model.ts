/**
 * A tiny layers model (16 -> 16 -> 10 dense, 442 parameters) written as a model.json with its
 * weight file, for `FLOCK_INITIAL_MODEL`: uploads cost the coordinator almost nothing, so a test
 * or the load test (bench/loadtest) measures the round engine and the sockets, not the fold.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mulberry32 } from '../../src/datasets/seeded-random.js';

const INPUTS = 16;
const HIDDEN = 16;
const CLASSES = 10;

function dense(name: string, units: number, activation: string, inputs?: number): unknown {
  return {
    class_name: 'Dense',
    config: {
      name,
      units,
      activation,
      use_bias: true,
      kernel_initializer: { class_name: 'VarianceScaling', config: { scale: 1, mode: 'fan_avg', distribution: 'normal', seed: null } },
      bias_initializer: { class_name: 'Zeros', config: {} },
      kernel_regularizer: null,
      bias_regularizer: null,
      activity_regularizer: null,
      kernel_constraint: null,
      bias_constraint: null,
      trainable: true,
      ...(inputs === undefined ? {} : { batch_input_shape: [null, inputs], dtype: 'float32' }),
    },
  };
}

/** The shapes of the tiny model's weights, in manifest order. */
export const TINY_MODEL_SHAPES: readonly number[][] = [[INPUTS, HIDDEN], [HIDDEN], [HIDDEN, CLASSES], [CLASSES]];
export const TINY_MODEL_PARAMETERS = TINY_MODEL_SHAPES.reduce((sum, shape) => sum + shape.reduce((a, b) => a * b, 1), 0);

/** Writes model.json and weights.bin into `dir` (created if missing) and returns the model.json's path. */
export function writeTinyModel(dir: string, seed = 1): string {
  mkdirSync(dir, { recursive: true });
  const topology = {
    class_name: 'Sequential',
    config: { name: 'tiny', layers: [dense('tiny_hidden', HIDDEN, 'relu', INPUTS), dense('tiny_out', CLASSES, 'softmax')] },
    keras_version: 'tfjs-layers 4.22.0',
    backend: 'tensor_flow.js',
  };
  const names = ['tiny_hidden/kernel', 'tiny_hidden/bias', 'tiny_out/kernel', 'tiny_out/bias'];
  const weightSpecs = TINY_MODEL_SHAPES.map((shape, i) => ({ name: names[i]!, shape, dtype: 'float32' }));
  const random = mulberry32(seed);
  const weights = Float32Array.from({ length: TINY_MODEL_PARAMETERS }, () => (random() - 0.5) * 0.2);
  writeFileSync(join(dir, 'weights.bin'), new Uint8Array(weights.buffer));
  writeFileSync(
    join(dir, 'model.json'),
    JSON.stringify({ format: 'layers-model', modelTopology: topology, weightsManifest: [{ paths: ['weights.bin'], weights: weightSpecs }] }),
  );
  return join(dir, 'model.json');
}
