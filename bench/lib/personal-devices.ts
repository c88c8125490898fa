/**
 * The devices of bench/personalization: real MNIST, partitioned as the simulator partitions it
 * (Dirichlet label skew, shards, or IID with rotation clusters), each device with its training
 * examples and a held-out local test set it never trains on (drawn from the MNIST test split with
 * the device's own label mix, and rotated like its training images).
 */
import * as tf from '@tensorflow/tfjs';
import { MNIST_PIXELS, readMnist, type MnistData } from '../../server/src/datasets/mnist.js';
import { rotateImages, rotationCluster } from '../../server/src/simulation/heterogeneity.js';
import { hashInts, localTestIndices, partitionData } from '../../server/src/simulation/partition.js';

export const HETEROGENEITIES = ['dirichlet', 'shards', 'rotated'] as const;
export type Heterogeneity = (typeof HETEROGENEITIES)[number];

export interface DeviceExamples {
  xs: tf.Tensor2D;
  ys: tf.Tensor2D;
  count: number;
}

export interface BenchDevice {
  index: number;
  /** Rotation cluster (0 unless rotated). */
  cluster: number;
  train: DeviceExamples;
  test: DeviceExamples;
}

export interface DeviceSetup {
  heterogeneity: Heterogeneity;
  clients: number;
  examplesPerClient: number;
  alpha: number;
  clusters: number;
  localTest: number;
  seed: number;
}

function examples(data: MnistData, indices: ArrayLike<number>, quarterTurns: number): DeviceExamples {
  const images = new Float32Array(indices.length * MNIST_PIXELS);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    images.set(data.images.subarray(indices[i]! * MNIST_PIXELS, (indices[i]! + 1) * MNIST_PIXELS), i * MNIST_PIXELS);
    labels[i] = data.labels[indices[i]!]!;
  }
  const pixels = quarterTurns > 0 ? rotateImages(images, quarterTurns) : images;
  return {
    xs: tf.tensor2d(pixels, [indices.length, MNIST_PIXELS]),
    ys: tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), 10).toFloat() as tf.Tensor2D),
    count: indices.length,
  };
}

/** K devices for one heterogeneity (`examplesPerClient` training examples each on average). */
export async function benchDevices(setup: DeviceSetup): Promise<BenchDevice[]> {
  const [train, test] = await Promise.all([readMnist('train'), readMnist('test')]);
  const { clients, seed } = setup;
  const kind = setup.heterogeneity === 'rotated' ? 'iid' : setup.heterogeneity;
  const parts = partitionData(kind, train.labels, { clients, examplesPerClient: setup.examplesPerClient, seed, alpha: setup.alpha });
  const clusters = setup.heterogeneity === 'rotated' ? setup.clusters : 0;
  return parts.map((part, k) => {
    const cluster = rotationCluster(k, clusters);
    const testIdx = localTestIndices(train.labels, part, test.labels, setup.localTest, hashInts(seed, k, 7));
    return { index: k, cluster, train: examples(train, part, cluster), test: examples(test, testIdx, cluster) };
  });
}
