/**
 * Measurement helpers shared by the micro-benchmarks: repetitions and medians, garbage collection
 * between measurements, memory samples, seeded data, and the machine a run happened on.
 */
import { cpus, totalmem } from 'node:os';
import { mulberry32 } from '../../server/src/datasets/seeded-random.js';

export const MiB = 1024 * 1024;
export const GB = 1e9;

const gc = (globalThis as { gc?: () => void }).gc;

/** Whether the run can collect garbage before measurements (node --expose-gc). */
export const gcExposed = gc !== undefined;

/** Collects garbage (twice: finalizers can free more) so memory numbers are comparable. */
export function collect(): void {
  gc?.();
  gc?.();
}

/** Deterministic fill from the project's seeded PRNG, values in [-scale, scale). */
export function fillRandom(target: Float32Array, seed: number, scale: number): void {
  const random = mulberry32(seed);
  for (let i = 0; i < target.length; i++) target[i] = (random() - 0.5) * 2 * scale;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The median of the finite numbers among `values` (missing measurements left out), or null when there are none. */
export function medianOfMeasured(values: readonly (number | null | undefined)[]): number | null {
  const measured = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  return measured.length === 0 ? null : median(measured);
}

/** Repeats `once` (returning seconds) at least `minReps` times and until `minSeconds` have been spent (at most 200 times). */
export function repeat(once: () => number, minReps: number, minSeconds: number): number[] {
  const times: number[] = [];
  let spent = 0;
  while (times.length < minReps || spent < minSeconds) {
    const t = once();
    times.push(t);
    spent += t;
    if (times.length >= 200) break;
  }
  return times;
}

/** Seconds `work` takes. */
export function timed(work: () => void): number {
  const t0 = performance.now();
  work();
  return (performance.now() - t0) / 1000;
}

export interface MemorySample {
  rss: number;
  heapUsed: number;
  arrayBuffers: number;
}

export function sampleMemory(): MemorySample {
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers };
}

/** The larger of each field. */
export function peakOf(a: MemorySample, b: MemorySample): MemorySample {
  return { rss: Math.max(a.rss, b.rss), heapUsed: Math.max(a.heapUsed, b.heapUsed), arrayBuffers: Math.max(a.arrayBuffers, b.arrayBuffers) };
}

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  totalMemory: number;
  node: string;
  v8: string;
  platform: string;
}

export function machineInfo(): MachineInfo {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    totalMemory: totalmem(),
    node: process.versions.node,
    v8: process.versions.v8,
    platform: `${process.platform}-${process.arch}`,
  };
}

/** Keeps results alive so the JIT cannot drop the work that produced them; printed at the end as a checksum. */
export const sink = { value: 0 };
