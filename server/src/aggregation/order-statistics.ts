/**
 * Order statistics over small runs of float32 values: the per-coordinate kernels of the robust
 * aggregators (coordinate-wise median, trimmed mean). n (the number of client updates) is small,
 * the model is large, so these run once per coordinate on a reused scratch buffer and never
 * allocate.
 */

/** Ranges this short are finished with an insertion sort. */
const INSERTION_SORT_MAX = 16;

function insertionSort(values: Float32Array, lo: number, hi: number): void {
  for (let i = lo + 1; i < hi; i++) {
    const value = values[i]!;
    let j = i - 1;
    while (j >= lo && values[j]! > value) {
      values[j + 1] = values[j]!;
      j--;
    }
    values[j + 1] = value;
  }
}

function medianOfThree(a: number, b: number, c: number): number {
  if (a < b) {
    if (b < c) return b;
    return a < c ? c : a;
  }
  if (a < c) return a;
  return b < c ? c : b;
}

/**
 * Introselect: rearranges `values[lo, hi)` so that `values[k]` holds the value of rank `k - lo`
 * in that range, everything in `[lo, k)` is <= it and everything in `(k, hi)` is >= it.
 * Average O(hi - lo). Quickselect with a median-of-three pivot, and a depth limit that falls back
 * to the engine's O(n log n) sort, so crafted inputs (clients choose the values) cannot make it
 * quadratic. Values must not be NaN.
 */
export function selectInPlace(values: Float32Array, lo: number, hi: number, k: number): void {
  if (!(lo <= k && k < hi)) throw new RangeError(`rank ${k} outside [${lo}, ${hi})`);
  let depth = 2 * (32 - Math.clz32(hi - lo));
  while (hi - lo > INSERTION_SORT_MAX) {
    if (depth-- === 0) {
      values.subarray(lo, hi).sort();
      return;
    }
    const pivot = medianOfThree(values[lo]!, values[lo + ((hi - lo) >> 1)]!, values[hi - 1]!);
    // Hoare partition. The pivot value occurs in the range, so both scans stop inside it, and the
    // first exchange always happens, so both sides shrink.
    let i = lo;
    let j = hi - 1;
    while (i <= j) {
      while (values[i]! < pivot) i++;
      while (values[j]! > pivot) j--;
      if (i <= j) {
        const swap = values[i]!;
        values[i] = values[j]!;
        values[j] = swap;
        i++;
        j--;
      }
    }
    // Now [lo, j] <= pivot, [i, hi) >= pivot, and anything strictly between equals the pivot.
    if (k <= j) hi = j + 1;
    else if (k >= i) lo = i;
    else return;
  }
  insertionSort(values, lo, hi);
}

/**
 * Median of `values[offset, offset + n)` (the mean of the two middle values when n is even).
 * Reorders that range.
 */
export function medianInPlace(values: Float32Array, offset: number, n: number): number {
  if (n < 1) throw new RangeError('median of no values');
  const half = offset + (n >> 1);
  selectInPlace(values, offset, offset + n, half);
  const upper = values[half]!;
  if (n & 1) return upper;
  // The lower middle value is the largest of the lower half, which selection left in [offset, half).
  let lower = values[offset]!;
  for (let i = offset + 1; i < half; i++) if (values[i]! > lower) lower = values[i]!;
  return (lower + upper) / 2;
}

/**
 * Mean of `values[offset, offset + n)` without its `trim` smallest and `trim` largest values.
 * Reorders that range. Requires 2 * trim < n.
 */
export function trimmedMeanInPlace(values: Float32Array, offset: number, n: number, trim: number): number {
  if (!(trim >= 0 && 2 * trim < n)) throw new RangeError(`cannot trim ${trim} per side from ${n} values`);
  const end = offset + n;
  if (trim > 0) {
    // After the first selection [offset, offset+trim) holds the `trim` smallest values; the second,
    // within the rest, moves the `trim` largest to the end. What lies between is the kept middle.
    selectInPlace(values, offset, end, offset + trim);
    if (n - trim - 1 > trim) selectInPlace(values, offset + trim + 1, end, end - trim - 1);
  }
  let sum = 0;
  for (let i = offset + trim; i < end - trim; i++) sum += values[i]!;
  return sum / (n - 2 * trim);
}
