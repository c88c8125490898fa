/**
 * SecAgg+'s sparse communication graph (Bell et al. 2020): each device masks with and shares its
 * secrets among k = O(log n) neighbours instead of all n - 1 others. Here a Harary graph H(k, n)
 * (a ring where each node links to the k/2 nearest on either side) over a permutation of the
 * devices drawn from a public seed: every node has degree k, the graph is k-connected, and which
 * devices are neighbours is random, so a coalition cannot choose to surround a victim.
 */
import { mulberry32 } from '../protocol/seeded-random.js';

/** The neighbour count for n devices: 2·ceil(1.5·log2 n), at most n - 1 (then the graph is complete). */
export function defaultNeighbourCount(devices: number): number {
  if (devices <= 1) return 0;
  return Math.min(devices - 1, 2 * Math.ceil(1.5 * Math.log2(devices)));
}

/**
 * The share threshold among a device's k neighbours plus itself: floor(fraction · (k + 1)) + 1, at
 * most k + 1. A fraction of 0.5 gives the smallest strict majority; devices refuse less.
 */
export function shareThreshold(neighbours: number, fraction: number): number {
  const holders = neighbours + 1;
  return Math.min(holders, Math.floor(fraction * holders) + 1);
}

/**
 * The neighbours of every device index 1..n: a symmetric relation, no self loops, degree
 * min(k rounded up to even, n - 1) for every node.
 */
export function neighbourGraph(devices: number, neighbours: number, seed: number): Map<number, number[]> {
  if (!Number.isInteger(devices) || devices < 1) throw new RangeError(`devices ${devices} must be a positive integer`);
  const graph = new Map<number, number[]>();
  const complete = neighbours >= devices - 1;
  if (complete) {
    for (let i = 1; i <= devices; i++)
      graph.set(
        i,
        Array.from({ length: devices - 1 }, (_, j) => (j + 1 < i ? j + 1 : j + 2)),
      );
    return graph;
  }
  const half = Math.ceil(neighbours / 2);
  const order = Array.from({ length: devices }, (_, i) => i + 1);
  // The permutation is public: it only needs to be well spread and the same on every side.
  const random = mulberry32(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  for (let position = 0; position < devices; position++) {
    const linked: number[] = [];
    for (let step = 1; step <= half; step++) {
      linked.push(order[(position + step) % devices]!, order[(position - step + devices) % devices]!);
    }
    graph.set(
      order[position]!,
      [...new Set(linked)].sort((a, b) => a - b),
    );
  }
  return graph;
}
