/** Property-test inputs shared by the compression tests. */
import fc from 'fast-check';
import { shapeSize } from '@flock/client-sdk/protocol';

/** A seeded uniform [0, 1) source (xorshift32), so that failures replay. */
export function seeded(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

/** Shapes of 1-4 tensors (each dimension 1..maxDim, minRank..maxRank of them) and finite float32 values for them, within ±maxAbs when given. */
export function tensorsArbitrary(options: { maxDim: number; minRank: number; maxRank: number; maxAbs?: number }): fc.Arbitrary<[number[][], Float32Array[]]> {
  const { maxDim, minRank, maxRank, maxAbs } = options;
  const range = maxAbs === undefined ? {} : { min: -maxAbs, max: maxAbs };
  return fc
    .array(fc.array(fc.integer({ min: 1, max: maxDim }), { minLength: minRank, maxLength: maxRank }), { minLength: 1, maxLength: 4 })
    .chain((shapes) =>
      fc.tuple(
        fc.constant(shapes),
        fc.tuple(
          ...shapes.map((shape) =>
            fc.float32Array({ minLength: shapeSize(shape), maxLength: shapeSize(shape), noNaN: true, noDefaultInfinity: true, ...range }),
          ),
        ),
      ),
    );
}
