import { describe, expect, it } from 'vitest';
import { l2Norm as sdkL2Norm } from '../src/index.js';
import { l2Norm, sumOfSquares } from '../src/protocol/index.js';

describe('protocol vector math (shared by the SDK and the coordinator)', () => {
  it('sumOfSquares accumulates in float64 and is non-finite exactly when a value is NaN or infinite', () => {
    expect(sumOfSquares(new Float32Array([1, -2, 3]))).toBe(14);
    expect(sumOfSquares(new Float32Array(0))).toBe(0);
    // 3e20² overflows float32 but not the float64 accumulator.
    expect(sumOfSquares(new Float32Array([3e20, 4e20])) / 25e40).toBeCloseTo(1, 6);
    expect(sumOfSquares(new Float32Array([1, Number.NaN, 2]))).toBeNaN();
    expect(sumOfSquares(new Float32Array([1, Number.POSITIVE_INFINITY]))).toBe(Number.POSITIVE_INFINITY);
  });

  it('l2Norm of a flat vector equals the norm of the same values split into tensors', () => {
    const flat = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
    const tensors = [flat.subarray(0, 10), flat.subarray(10, 10), flat.subarray(10, 600), flat.subarray(600)];
    expect(l2Norm(new Float32Array([3, 4]))).toBe(5);
    expect(l2Norm(new Float64Array([3, 4]))).toBe(5);
    expect(l2Norm(tensors)).toBeCloseTo(l2Norm(flat), 10);
    expect(l2Norm([])).toBe(0);
    expect(l2Norm([new Float32Array(0), new Float32Array([3, 4])])).toBe(5);
  });

  it("is the SDK's l2Norm too (one implementation)", () => {
    expect(sdkL2Norm).toBe(l2Norm);
  });
});
