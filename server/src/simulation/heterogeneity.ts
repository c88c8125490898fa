/**
 * Heterogeneity beyond label skew, for the simulator and bench/personalization (pure, seeded):
 *
 * - **Concept shift by rotation clusters** (IFCA, Ghosh et al. 2020, rotated MNIST): client k is in
 *   cluster k mod C and sees every image (training and local test) rotated by 90 * cluster degrees,
 *   so one global model cannot fit every cluster while each cluster's own model can.
 * - **Quantity skew**: client sizes drawn from a log-normal with spread sigma, scaled to the same
 *   total, so a few clients hold much of the data and many hold little.
 */
import { MNIST_IMAGE_SIZE } from '../datasets/mnist.js';
import { mulberry32, shuffleInPlace } from './partition.js';

/** The rotation cluster of client k with `clusters` clusters (0 when off): quarter turns of its images. */
export function rotationCluster(client: number, clusters: number): number {
  return clusters > 1 ? client % clusters : 0;
}

/**
 * Rotates each square image of `images` (n * size * size pixels, row-major) by `quarterTurns` * 90
 * degrees counter-clockwise, into a new array.
 */
export function rotateImages(images: Float32Array, quarterTurns: number, size: number = MNIST_IMAGE_SIZE): Float32Array {
  const turns = ((quarterTurns % 4) + 4) % 4;
  if (turns === 0) return images.slice();
  const pixels = size * size;
  if (images.length % pixels !== 0) throw new RangeError(`rotateImages: ${images.length} values are not whole ${size}x${size} images`);
  const out = new Float32Array(images.length);
  const last = size - 1;
  for (let base = 0; base < images.length; base += pixels) {
    for (let r = 0; r < size; r++) {
      for (let c = 0; c < size; c++) {
        // Counter-clockwise: (r, c) goes to (last - c, r); twice: (last - r, last - c); three times: (c, last - r).
        const [tr, tc] = turns === 1 ? [last - c, r] : turns === 2 ? [last - r, last - c] : [c, last - r];
        out[base + tr * size + tc] = images[base + r * size + c]!;
      }
    }
  }
  return out;
}

/**
 * Client sizes with quantity skew: log-normal weights exp(sigma * z), scaled so the sizes sum to
 * `total`, each at least `minExamples`. sigma 0: equal sizes.
 */
export function quantitySkewSizes(clients: number, total: number, sigma: number, seed: number, minExamples = 10): Int32Array {
  if (!(sigma >= 0)) throw new RangeError(`quantity skew sigma must be >= 0, got ${sigma}`);
  if (clients * minExamples > total)
    throw new RangeError(`${clients} clients of at least ${minExamples} examples need ${clients * minExamples}, have ${total}`);
  const random = mulberry32(seed);
  const weights = Float64Array.from({ length: clients }, () => {
    // Box-Muller standard normal.
    const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    return Math.exp(sigma * z);
  });
  const sum = weights.reduce((a, b) => a + b, 0);
  const spare = total - clients * minExamples;
  const sizes = Int32Array.from(weights, (w) => minExamples + Math.floor((spare * w) / sum));
  // Rounding leftovers go to the first clients, one each.
  let left = total - sizes.reduce((a, b) => a + b, 0);
  for (let k = 0; left > 0; k = (k + 1) % clients, left--) sizes[k]!++;
  return sizes;
}

/** IID examples in the given client sizes: one shuffle, then consecutive runs of each size. */
export function partitionIidSizes(count: number, sizes: ArrayLike<number>, seed: number): Int32Array[] {
  let total = 0;
  for (let k = 0; k < sizes.length; k++) total += sizes[k]!;
  if (total > count) throw new RangeError(`the sizes need ${total} examples, there are ${count}`);
  const order = shuffleInPlace(
    Int32Array.from({ length: count }, (_, i) => i),
    mulberry32(seed),
  );
  const parts: Int32Array[] = [];
  let offset = 0;
  for (let k = 0; k < sizes.length; k++) {
    parts.push(order.slice(offset, offset + sizes[k]!));
    offset += sizes[k]!;
  }
  return parts;
}
