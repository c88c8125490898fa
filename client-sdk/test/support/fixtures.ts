/** Small models and synthetic, learnable data for the SDK's tests. */
import * as tf from '@tensorflow/tfjs';
import { mulberry32 } from '../../src/protocol/seeded-random.js';

export const FEATURES = 8;
export const CLASSES = 3;

/** Deterministic PRNG: the protocol's mulberry32. */
export const prng = mulberry32;

/** A shuffle for `trainModel` that is the same on every run (Fisher-Yates over the seeded PRNG). */
export function seededShuffle(seed: number): (count: number) => Uint32Array {
  const random = prng(seed);
  return (count) => {
    const order = Uint32Array.from({ length: count }, (_, i) => i);
    for (let i = count - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    return order;
  };
}

/** 8 -> 16 relu -> 3 softmax, seeded. */
export function makeModel(seed = 1, hidden = 16): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [FEATURES], units: hidden, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed }) }),
      tf.layers.dense({ units: CLASSES, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }),
    ],
  });
}

export interface Rows {
  xs: number[][];
  /** Class indices. */
  labels: number[];
}

/**
 * The class is the feature group (0-2, 3-5, 6-7) with the largest mean, so a small MLP learns it.
 * `bias` favours one class (a device's local distribution).
 */
export function syntheticRows(count: number, seed: number, bias: number | null = null): Rows {
  const random = prng(seed);
  const groups = [
    [0, 1, 2],
    [3, 4, 5],
    [6, 7],
  ];
  const xs: number[][] = [];
  const labels: number[] = [];
  for (let i = 0; i < count; i++) {
    const row = Array.from({ length: FEATURES }, () => random());
    if (bias !== null && random() < 0.6) for (const j of groups[bias]!) row[j]! += 0.5;
    const means = groups.map((group) => group.reduce((sum, j) => sum + row[j]!, 0) / group.length);
    xs.push(row);
    labels.push(means.indexOf(Math.max(...means)));
  }
  return { xs, labels };
}

export function oneHot(labels: readonly number[], classes = CLASSES): number[][] {
  return labels.map((label) => Array.from({ length: classes }, (_, c) => (c === label ? 1 : 0)));
}
