import { describe, expect, it } from 'vitest';
import { partitionIidSizes, quantitySkewSizes, rotateImages, rotationCluster } from '../../src/simulation/heterogeneity.js';
import { planSimulation } from '../../src/simulation/options.js';

describe('rotation clusters (concept shift)', () => {
  it('rotates each square image a quarter turn counter-clockwise per turn; four turns are the identity', () => {
    // Two 2x2 images: [a b; c d] turns into [b d; a c].
    const images = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(Array.from(rotateImages(images, 1, 2))).toEqual([2, 4, 1, 3, 6, 8, 5, 7]);
    expect(Array.from(rotateImages(images, 2, 2))).toEqual([4, 3, 2, 1, 8, 7, 6, 5]);
    expect(Array.from(rotateImages(rotateImages(images, 1, 2), 3, 2))).toEqual(Array.from(images));
    const mnistLike = Float32Array.from({ length: 2 * 784 }, (_, i) => i);
    let turned: Float32Array = mnistLike;
    for (let t = 0; t < 4; t++) turned = rotateImages(turned, 1);
    expect(turned).toEqual(mnistLike);
    expect(() => rotateImages(Float32Array.of(1, 2, 3), 1, 2)).toThrow(RangeError);
  });

  it('puts client k in cluster k mod n', () => {
    expect([0, 1, 2, 3, 4, 5].map((k) => rotationCluster(k, 4))).toEqual([0, 1, 2, 3, 0, 1]);
    expect(rotationCluster(7, 0)).toBe(0);
  });
});

describe('quantity skew', () => {
  it('draws sizes that sum to the total, none below the minimum, more unequal as sigma grows', () => {
    const spread = (sizes: Int32Array) => Math.max(...sizes) / Math.min(...sizes);
    const even = quantitySkewSizes(100, 60_000, 0, 1);
    expect(new Set(even).size).toBeLessThanOrEqual(2);
    const skewed = quantitySkewSizes(100, 60_000, 1.5, 1);
    expect(skewed.reduce((a, b) => a + b, 0)).toBe(60_000);
    expect(Math.min(...skewed)).toBeGreaterThanOrEqual(10);
    expect(spread(skewed)).toBeGreaterThan(10 * spread(even));
    const parts = partitionIidSizes(60_000, skewed, 1);
    expect(parts.map((p) => p.length)).toEqual(Array.from(skewed));
    expect(new Set(parts.flatMap((p) => Array.from(p))).size).toBe(60_000);
  });

  it('is refused with a partition whose sizes are fixed or already vary', () => {
    expect(() => planSimulation({ partition: 'shards', quantitySkew: 1 })).toThrow(/quantitySkew/);
    expect(() => planSimulation({ rotationClusters: 5 })).toThrow(/rotationClusters/);
  });
});
