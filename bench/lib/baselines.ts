/**
 * Memory-bandwidth baselines for the aggregation benchmark, measured in the same process as the
 * workload so that ratios to them stay meaningful on a busier or faster machine.
 */
import { collect, fillRandom, GB, median, MiB, repeat, sink, timed } from './measure.js';

/** Bytes of each baseline's source buffer: far larger than the CPU caches. */
export const BASELINE_BYTES = 256 * MiB;

export interface BaselineResult {
  name: string;
  description: string;
  /** Bytes counted per pass (the float32 source bytes, to compare with aggregation GB/s). */
  bytesPerPass: number;
  /** Median over repetitions. */
  gbPerSecond: number;
  bestGbPerSecond: number;
  repetitions: number;
}

/** Tight JS loop: sum of a Float32Array (4 independent accumulators). */
function streamSum(values: Float32Array): number {
  let a = 0;
  let b = 0;
  let c = 0;
  let d = 0;
  const n = values.length - (values.length % 4);
  for (let i = 0; i < n; i += 4) {
    a += values[i]!;
    b += values[i + 1]!;
    c += values[i + 2]!;
    d += values[i + 3]!;
  }
  for (let i = n; i < values.length; i++) a += values[i]!;
  return a + b + c + d;
}

/** The FedAvg inner loop (same shape as vector-math addScaledInto), standalone. */
function addScaledLoop(target: Float64Array, source: Float32Array, scale: number): void {
  for (let i = 0; i < source.length; i++) target[i]! += scale * source[i]!;
}

/** The same kernel unrolled by 4: shows how much of the gap is JIT code quality, not memory. */
function addScaledLoopUnrolled(target: Float64Array, source: Float32Array, scale: number): void {
  const n = source.length;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    target[i]! += scale * source[i]!;
    target[i + 1]! += scale * source[i + 1]!;
    target[i + 2]! += scale * source[i + 2]!;
    target[i + 3]! += scale * source[i + 3]!;
  }
  for (; i < n; i++) target[i]! += scale * source[i]!;
}

/** Times `pass` (over `bytes` of source data) at least `minReps` times and for at least a second. */
function baseline(name: string, description: string, bytes: number, minReps: number, pass: () => void): BaselineResult {
  const times = repeat(() => timed(pass), minReps, 1);
  return {
    name,
    description,
    bytesPerPass: bytes,
    gbPerSecond: bytes / median(times) / GB,
    bestGbPerSecond: bytes / Math.min(...times) / GB,
    repetitions: times.length,
  };
}

/** Native copy and a read-only JS stream over BASELINE_BYTES. */
function streamingBaselines(minReps: number): BaselineResult[] {
  const src = new Float32Array(BASELINE_BYTES / 4);
  const dst = new Float32Array(BASELINE_BYTES / 4);
  fillRandom(src, 1, 1);
  dst.set(src); // fault in the pages
  const size = `${BASELINE_BYTES / MiB} MiB`;
  const results = [
    baseline('memcpy', `Float32Array.prototype.set, ${size} -> ${size} (native copy; DRAM traffic is read + write)`, BASELINE_BYTES, minReps, () =>
      dst.set(src),
    ),
    baseline('js-stream-sum', `JS loop summing a ${size} Float32Array into a scalar (read-only stream)`, BASELINE_BYTES, minReps, () => {
      sink.value += streamSum(src);
    }),
  ];
  sink.value += dst[12345]!;
  return results;
}

/** The FedAvg kernel (f64 += s * f32) over buffers far larger than the caches, plain and unrolled. */
function kernelBaselines(minReps: number): BaselineResult[] {
  const srcBytes = 128 * MiB;
  const src = new Float32Array(srcBytes / 4);
  const acc = new Float64Array(srcBytes / 4); // 256 MiB
  fillRandom(src, 2, 1);
  addScaledLoop(acc, src, 0.5); // fault in + warm up
  const plain = baseline(
    'js-add-f32-into-f64-dram',
    `the FedAvg kernel (f64[i] += s * f32[i]) over a ${srcBytes / MiB} MiB Float32Array into a ${(srcBytes * 2) / MiB} MiB Float64Array (both from DRAM)`,
    srcBytes,
    minReps,
    () => addScaledLoop(acc, src, 1.25),
  );
  sink.value += acc[999]!;
  addScaledLoopUnrolled(acc, src, 0.5); // warm up
  const unrolled = baseline('js-add-f32-into-f64-dram-unrolled4', 'the same kernel, loop unrolled by 4 (same buffers)', srcBytes, minReps, () =>
    addScaledLoopUnrolled(acc, src, 1.25),
  );
  sink.value += acc[998]!;
  return [plain, unrolled];
}

export function measureBaselines(minReps: number): BaselineResult[] {
  const results = streamingBaselines(minReps);
  collect();
  results.push(...kernelBaselines(minReps));
  collect();
  return results;
}
