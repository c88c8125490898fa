import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WeightedMeanAccumulator } from '../../src/aggregation/fedavg.js';
import { PartialAggregate } from '../../src/aggregation/partial-aggregate.js';

const LENGTH = 7;
const update = fc.record({
  delta: fc.float32Array({ minLength: LENGTH, maxLength: LENGTH, noNaN: true, noDefaultInfinity: true, min: -10, max: 10 }),
  numExamples: fc.integer({ min: 1, max: 1000 }),
  trainLoss: fc.double({ min: 0, max: 5, noNaN: true }),
});

describe('PartialAggregate', () => {
  it('split over processes and combined, gives the weighted mean of one accumulator fed every update', () => {
    fc.assert(
      fc.property(fc.array(update, { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 4 }), (updates, processes) => {
        const single = new WeightedMeanAccumulator(LENGTH);
        const parts = Array.from({ length: processes }, () => new PartialAggregate(LENGTH));
        updates.forEach((u, k) => {
          single.add({ delta: u.delta, numExamples: u.numExamples });
          parts[k % processes]!.add(u.delta, u.numExamples, u.trainLoss);
        });
        // through the wire format, as the leader reads them from Redis
        const combined = PartialAggregate.combine(
          parts.map((part) => PartialAggregate.decode(part.encode(), LENGTH)),
          LENGTH,
        );
        expect(combined.count).toBe(updates.length);
        expect(combined.totalWeight).toBe(updates.reduce((n, u) => n + u.numExamples, 0));
        const expected = single.mean();
        const mean = combined.mean();
        for (let i = 0; i < LENGTH; i++) expect(Math.abs(mean[i]! - expected[i]!)).toBeLessThanOrEqual(1e-12 * (1 + Math.abs(expected[i]!)));
        const loss = updates.reduce((s, u) => s + u.trainLoss * u.numExamples, 0);
        expect(combined.lossSum).toBeCloseTo(loss, 6);
      }),
    );
  });

  it('round-trips its binary form exactly, from any byte offset', () => {
    const partial = new PartialAggregate(3);
    partial.add(new Float32Array([1.5, -2, 1e-30]), 3, 0.25);
    const encoded = partial.encode();
    const shifted = new Uint8Array(encoded.byteLength + 1);
    shifted.set(encoded, 1);
    const decoded = PartialAggregate.decode(shifted.subarray(1), 3);
    expect(Array.from(decoded.sum)).toEqual([4.5, -6, 3 * Math.fround(1e-30)]);
    expect(decoded).toMatchObject({ count: 1, totalWeight: 3, lossSum: 0.75 });
    // as Redis answers it: a Node Buffer, possibly a view into a larger pool
    const pooled = Buffer.concat([Buffer.alloc(5), Buffer.from(encoded), Buffer.alloc(7)]).subarray(5, 5 + encoded.byteLength);
    expect(Array.from(PartialAggregate.decode(pooled, 3).sum)).toEqual([4.5, -6, 3 * Math.fround(1e-30)]);
  });

  it('refuses bytes that are not a partial of this model', () => {
    const encoded = new PartialAggregate(3).encode();
    expect(() => PartialAggregate.decode(encoded, 4)).toThrow(RangeError);
    expect(() => PartialAggregate.decode(encoded.subarray(0, 40), 3)).toThrow(/bytes/);
    const corrupt = encoded.slice();
    corrupt[0] = 0;
    expect(() => PartialAggregate.decode(corrupt, 3)).toThrow(/magic/);
    expect(() => new PartialAggregate(3).mean()).toThrow(/no updates/);
  });
});
