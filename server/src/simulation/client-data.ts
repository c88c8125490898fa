/** The virtual clients' data: MNIST training partitions, local test sets, flipped labels for label-flip attackers. */
import { MNIST_PIXELS, type MnistData } from '../datasets/mnist.js';
import { flipLabels } from './byzantine.js';
import type { SimulationPlan } from './options.js';
import { partitionIidSizes, quantitySkewSizes, rotateImages, rotationCluster } from './heterogeneity.js';
import { hashInts, localTestIndices, partitionData } from './partition.js';
import type { SimulatedClientData } from './worker-protocol.js';

function gather(data: MnistData, indices: ArrayLike<number>): { images: Float32Array; labels: Uint8Array } {
  const images = new Float32Array(indices.length * MNIST_PIXELS);
  const labels = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const index = indices[i]!;
    images.set(data.images.subarray(index * MNIST_PIXELS, (index + 1) * MNIST_PIXELS), i * MNIST_PIXELS);
    labels[i] = data.labels[index]!;
  }
  return { images, labels };
}

/** Training example indices of each client (the plan's partition of the MNIST training set). */
export function partitionClients(plan: SimulationPlan, train: MnistData): Int32Array[] {
  const { options } = plan;
  if (options.quantitySkew > 0) {
    const sizes = quantitySkewSizes(options.clients, options.clients * plan.examplesPerClient, options.quantitySkew, options.seed);
    return partitionIidSizes(train.labels.length, sizes, options.seed);
  }
  return partitionData(options.partition, train.labels, {
    clients: options.clients,
    examplesPerClient: plan.examplesPerClient,
    seed: options.seed,
    alpha: options.alpha,
  });
}

/** The clients worker `w` hosts (k = w, w + workers, ...), each with its own copy of its examples. */
export function clientsOfWorker(w: number, plan: SimulationPlan, parts: readonly Int32Array[], train: MnistData, test: MnistData): SimulatedClientData[] {
  const { options, attacks } = plan;
  const clients: SimulatedClientData[] = [];
  for (let k = w; k < options.clients; k += plan.workers) {
    const own = gather(train, parts[k]!);
    if (attacks[k] === 'label-flip') flipLabels(own.labels);
    const testIdx =
      options.localTestExamples > 0
        ? localTestIndices(train.labels, parts[k]!, test.labels, options.localTestExamples, hashInts(options.seed, k, 7))
        : new Int32Array(0);
    const local = gather(test, testIdx);
    // Concept shift: the client's cluster sees every image (training and local test) rotated.
    const turns = rotationCluster(k, options.rotationClusters);
    if (turns > 0) {
      own.images = rotateImages(own.images, turns);
      local.images = rotateImages(local.images, turns);
    }
    clients.push({ index: k, trainImages: own.images, trainLabels: own.labels, testImages: local.images, testLabels: local.labels, attack: attacks[k]! });
  }
  return clients;
}
