/**
 * The pure-JS versions of the float32-upload kernels: the fallback where WebAssembly SIMD is
 * unavailable, and the reference the wasm kernels (vector-kernels.wat) are tested against. They do
 * the same float64 operations in the same order as the wasm ones, so results are bit-identical.
 */

/**
 * Sum of squares in float64, in the wasm kernel's order: eight partial sums (value i to sum i mod 8),
 * combined as ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)), then the last n mod 8 values in
 * order. NaN or Infinity exactly when a value is NaN or infinite (finite float32 squares cannot
 * overflow a float64 sum).
 */
export function jsSumOfSquares(values: Float32Array): number {
  const n = values.length;
  const eights = n - (n % 8);
  // Eight scalars, not an array: V8 keeps them in registers.
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let s4 = 0;
  let s5 = 0;
  let s6 = 0;
  let s7 = 0;
  let i = 0;
  for (; i < eights; i += 8) {
    s0 += values[i]! * values[i]!;
    s1 += values[i + 1]! * values[i + 1]!;
    s2 += values[i + 2]! * values[i + 2]!;
    s3 += values[i + 3]! * values[i + 3]!;
    s4 += values[i + 4]! * values[i + 4]!;
    s5 += values[i + 5]! * values[i + 5]!;
    s6 += values[i + 6]! * values[i + 6]!;
    s7 += values[i + 7]! * values[i + 7]!;
  }
  let total = s0 + s1 + (s2 + s3) + (s4 + s5 + (s6 + s7));
  for (; i < n; i++) total += values[i]! * values[i]!;
  return total;
}

/** target[i] += scale * source[i] */
export function jsAddScaled(target: Float64Array | Float32Array, source: Float32Array, scale: number): void {
  if (target.length !== source.length) throw new RangeError(`length mismatch: ${target.length} vs ${source.length}`);
  // Unrolled by 4: V8 does not vectorize this loop, and the unrolled form measured 30-60% faster
  // in bench/aggregation.ts (the fold is loop-bound, not memory-bound).
  const n = source.length;
  const tail = n - (n % 4);
  let i = 0;
  for (; i < tail; i += 4) {
    target[i]! += scale * source[i]!;
    target[i + 1]! += scale * source[i + 1]!;
    target[i + 2]! += scale * source[i + 2]!;
    target[i + 3]! += scale * source[i + 3]!;
  }
  for (; i < n; i++) target[i]! += scale * source[i]!;
}
