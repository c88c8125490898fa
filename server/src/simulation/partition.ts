/**
 * Client data partitions of McMahan et al. 2017 ("Communication-Efficient Learning of Deep Networks
 * from Decentralized Data", section 3), plus the Dirichlet label skew of Hsu et al. 2019:
 *
 * - `iid`: shuffle, then `examplesPerClient` consecutive examples per client (600 for K = 100).
 * - `shards` (pathological non-IID): sort by label, cut into `shardsPerClient * K` shards of equal
 *   size (200 shards of 300 for K = 100), give each client `shardsPerClient` (2) random shards.
 * - `dirichlet`: for every class, split its examples over the clients in proportions drawn from
 *   Dir(alpha); small alpha = strong skew. Client sizes vary; redrawn until every client has at least
 *   `minExamples` examples.
 *
 * Everything is driven by one seeded PRNG: the same seed gives the same partition.
 */
import { mulberry32 } from '../datasets/seeded-random.js';

/** Re-exported: callers that partition also shuffle with the same generator. */
export { mulberry32 };

export const PARTITION_KINDS = ['iid', 'shards', 'dirichlet'] as const;
export type PartitionKind = (typeof PARTITION_KINDS)[number];

export interface PartitionOptions {
  /** K, the number of clients. */
  clients: number;
  /** Examples per client (iid and shards); dirichlet uses clients * examplesPerClient examples in all. */
  examplesPerClient: number;
  seed: number;
  /** Dirichlet concentration (dirichlet only, default 0.5). */
  alpha?: number;
  /** Shards per client (shards only, default 2 as in the paper). */
  shardsPerClient?: number;
  /** Dirichlet: smallest client size accepted (default 10). */
  minExamples?: number;
}

/** murmur3's 32-bit finalizer: a bijective avalanche mix. */
function fmix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A 32-bit hash of some integers, for per-(round, client) decisions that must not depend on order. */
export function hashInts(...values: number[]): number {
  let h = 0x811c9dc5;
  values.forEach((value, i) => {
    h = fmix32(h ^ fmix32((value >>> 0) + Math.imul(i + 1, 0x9e3779b1)));
  });
  return h;
}

/** Fisher-Yates shuffle in place. */
export function shuffleInPlace<T extends { length: number; [i: number]: number }>(items: T, random: () => number): T {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = items[i]!;
    items[i] = items[j]!;
    items[j] = tmp;
  }
  return items;
}

function permutation(n: number, random: () => number): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  return shuffleInPlace(order, random);
}

function checkOptions(labels: ArrayLike<number>, options: PartitionOptions): number {
  const { clients, examplesPerClient } = options;
  if (!Number.isInteger(clients) || clients < 1) throw new RangeError(`clients must be a positive integer, got ${clients}`);
  if (!Number.isInteger(examplesPerClient) || examplesPerClient < 1) {
    throw new RangeError(`examplesPerClient must be a positive integer, got ${examplesPerClient}`);
  }
  const total = clients * examplesPerClient;
  if (total > labels.length) {
    throw new RangeError(`${clients} clients x ${examplesPerClient} examples = ${total} examples, but the dataset has ${labels.length}`);
  }
  return total;
}

/** IID: a random permutation cut into equal consecutive pieces. */
export function partitionIid(labels: ArrayLike<number>, options: PartitionOptions): Int32Array[] {
  checkOptions(labels, options);
  const order = permutation(labels.length, mulberry32(options.seed));
  const n = options.examplesPerClient;
  return Array.from({ length: options.clients }, (_, k) => order.slice(k * n, (k + 1) * n));
}

/**
 * Pathological non-IID: a random subset of clients * examplesPerClient examples (all of them for
 * K = 100, 600 each) sorted by label (stable, so ties keep the random order), cut into
 * clients * shardsPerClient shards; each client gets shardsPerClient random shards.
 */
export function partitionShards(labels: ArrayLike<number>, options: PartitionOptions): Int32Array[] {
  const total = checkOptions(labels, options);
  const shardsPerClient = options.shardsPerClient ?? 2;
  if (!Number.isInteger(shardsPerClient) || shardsPerClient < 1) throw new RangeError(`shardsPerClient must be a positive integer, got ${shardsPerClient}`);
  if (options.examplesPerClient % shardsPerClient !== 0) {
    throw new RangeError(`examplesPerClient (${options.examplesPerClient}) must be a multiple of shardsPerClient (${shardsPerClient})`);
  }
  const random = mulberry32(options.seed);
  const chosen = Array.from(permutation(labels.length, random).subarray(0, total));
  chosen.sort((a, b) => labels[a]! - labels[b]! || 0); // Array.prototype.sort is stable
  const shardSize = options.examplesPerClient / shardsPerClient;
  const shardOrder = permutation(options.clients * shardsPerClient, random);
  return Array.from({ length: options.clients }, (_, k) => {
    const indices = new Int32Array(options.examplesPerClient);
    for (let s = 0; s < shardsPerClient; s++) {
      const shard = shardOrder[k * shardsPerClient + s]!;
      for (let i = 0; i < shardSize; i++) indices[s * shardSize + i] = chosen[shard * shardSize + i]!;
    }
    return indices;
  });
}

/** Standard normal (Box-Muller). */
function normal(random: () => number): number {
  let u = 0;
  while (u === 0) u = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** Gamma(shape, 1) by Marsaglia & Tsang (2000); shape < 1 via the Gamma(shape + 1) * U^(1/shape) boost. */
export function sampleGamma(shape: number, random: () => number): number {
  if (shape < 1) {
    let u = 0;
    while (u === 0) u = random();
    return sampleGamma(shape + 1, random) * Math.pow(u, 1 / shape);
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(random);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = random();
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** One draw from a symmetric Dirichlet(alpha) over n categories. */
export function sampleDirichlet(n: number, alpha: number, random: () => number): Float64Array {
  const out = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    out[i] = sampleGamma(alpha, random);
    sum += out[i]!;
  }
  if (sum === 0) {
    // Every gamma underflowed (tiny alpha): put the whole mass on one random category.
    out[Math.floor(random() * n)] = 1;
    return out;
  }
  for (let i = 0; i < n; i++) out[i]! /= sum;
  return out;
}

/**
 * Dirichlet label skew (Hsu et al. 2019, as in NIID-Bench): per class, proportions over clients
 * from Dir(alpha), applied to the class's examples within a random subset of
 * clients * examplesPerClient examples. Redrawn (same PRNG stream) until every client has at least
 * `minExamples`.
 */
export function partitionDirichlet(labels: ArrayLike<number>, options: PartitionOptions): Int32Array[] {
  const total = checkOptions(labels, options);
  const alpha = options.alpha ?? 0.5;
  if (!(alpha > 0) || !Number.isFinite(alpha)) throw new RangeError(`alpha must be a positive number, got ${alpha}`);
  const minExamples = Math.min(options.minExamples ?? 10, Math.floor(total / options.clients));
  const random = mulberry32(options.seed);
  const chosen = permutation(labels.length, random).subarray(0, total);
  const byClass = new Map<number, number[]>();
  for (const index of chosen) {
    const label = labels[index]!;
    let list = byClass.get(label);
    if (!list) byClass.set(label, (list = []));
    list.push(index);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const K = options.clients;
  for (let attempt = 0; attempt < 1000; attempt++) {
    const parts: number[][] = Array.from({ length: K }, () => []);
    for (const label of classes) {
      const members = byClass.get(label)!;
      const proportions = sampleDirichlet(K, alpha, random);
      let start = 0;
      let cumulative = 0;
      for (let k = 0; k < K; k++) {
        cumulative += proportions[k]!;
        const end = k === K - 1 ? members.length : Math.min(members.length, Math.round(cumulative * members.length));
        for (let i = start; i < end; i++) parts[k]!.push(members[i]!);
        start = Math.max(start, end);
      }
    }
    if (parts.every((part) => part.length >= minExamples)) {
      return parts.map((part) => shuffleInPlace(Int32Array.from(part), random));
    }
  }
  throw new Error(
    `dirichlet partition: no draw in 1000 gave every one of ${K} clients at least ${minExamples} examples (alpha ${alpha}); raise alpha or examples`,
  );
}

export function partitionData(kind: PartitionKind, labels: ArrayLike<number>, options: PartitionOptions): Int32Array[] {
  switch (kind) {
    case 'iid':
      return partitionIid(labels, options);
    case 'shards':
      return partitionShards(labels, options);
    case 'dirichlet':
      return partitionDirichlet(labels, options);
  }
}

/** Number of distinct labels among some examples. */
export function distinctLabels(labels: ArrayLike<number>, indices: ArrayLike<number>): number {
  const seen = new Set<number>();
  for (let i = 0; i < indices.length; i++) seen.add(labels[indices[i]!]!);
  return seen.size;
}

/**
 * A client's held-out local test set, drawn from a separate pool (the MNIST test split) with the
 * client's own label mix: for each slot, a random one of the client's labels (weighted by its
 * counts), then a random pool example of that label. The client's training partition stays exactly
 * as in the paper; the global test accuracy is unaffected (nothing is trained on these).
 */
export function localTestIndices(
  trainLabels: ArrayLike<number>,
  clientIndices: ArrayLike<number>,
  poolLabels: ArrayLike<number>,
  count: number,
  seed: number,
): Int32Array {
  const random = mulberry32(seed);
  const byLabel = new Map<number, number[]>();
  for (let i = 0; i < poolLabels.length; i++) {
    const label = poolLabels[i]!;
    let list = byLabel.get(label);
    if (!list) byLabel.set(label, (list = []));
    list.push(i);
  }
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const label = trainLabels[clientIndices[Math.floor(random() * clientIndices.length)]!]!;
    const pool = byLabel.get(label) ?? [];
    if (pool.length === 0) throw new Error(`no pool example has label ${label}`);
    out[i] = pool[Math.floor(random() * pool.length)]!;
  }
  return out;
}
