/**
 * Aggregation throughput benchmark: how fast the coordinator folds client updates into a round's
 * aggregate (FedAvg: a float64 running weighted sum, see server/src/aggregation/fedavg.ts), measured
 * in GB/s of float32 update data folded in, beside a memory-bandwidth baseline taken in the same run.
 *
 *   pnpm build && pnpm bench:aggregation   # full run (~3-5 min on 2 cores)
 *   pnpm bench:aggregation --quick         # smoke run (10 and 100 updates, fewer repetitions)
 *
 * Each model and round size is folded four ways, same run: the wasm SIMD kernel and the JS one
 * (kernels/float64-accumulator.ts), each as add() alone and as the upload path does it,
 * sumOfSquares() (norm + finiteness) then add().
 *
 * Prints Markdown to stdout and writes JSON to bench/out/aggregation.json.
 *
 * Method
 * - Updates are not generated per add and not all held in memory: they are views into one fixed
 *   128 MiB pool of random float32 deltas (4x the 32 MiB L3 here), visited round-robin by a cursor
 *   that keeps moving across repetitions, so every update is read from DRAM like a fresh upload and
 *   the benchmark's own memory is the same for 10 or 1,000 updates.
 * - Each measurement is the median of several repetitions after a JIT warm-up; add() time and
 *   finish() time are measured separately (finish = weighted mean + new weights + norm, once per round).
 * - Memory is sampled (process.memoryUsage) every 50 updates with the clock stopped. The aggregator's
 *   footprint is the growth of ArrayBuffer memory when the round's aggregator is created.
 * - Baselines (same process, before and after the aggregation runs): Float32Array.prototype.set
 *   (native memcpy) and a tight JS loop summing a Float32Array into a scalar, both over 256 MiB, and the
 *   FedAvg kernel's own loop (f64 += s * f32) over buffers far larger than cache.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { freemem, loadavg } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FedAvg, WeightedMeanAccumulator } from '../server/src/aggregation/fedavg.js';
import { defaultKernel, type ReceiveArea } from '../server/src/aggregation/kernels/float64-accumulator.js';
import { ComposedStrategy } from '../server/src/aggregation/pipeline.js';
import { DirectUpdate } from '../server/src/aggregation/server-optimizers.js';
import type { RoundAggregator } from '../server/src/aggregation/strategy.js';
// The same module @flock/client-sdk/protocol re-exports (imported by path: the root package does not
// depend on the SDK, and this way no build is needed before benchmarking).
import { asFloat32 } from '../client-sdk/src/protocol/weights.js';
import { BASELINE_BYTES, measureBaselines, type BaselineResult } from './lib/baselines.js';
import {
  collect,
  fillRandom,
  GB,
  gcExposed,
  machineInfo,
  median,
  MiB,
  peakOf,
  repeat,
  sampleMemory,
  sink,
  type MachineInfo,
  type MemorySample,
} from './lib/measure.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    updates: { type: 'string' },
    out: { type: 'string' },
  },
});

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT_FILE = args.out ?? join(HERE, 'out', 'aggregation.json');
const QUICK = args.quick === true;
const UPDATE_COUNTS = (args.updates ?? (QUICK ? '10,100' : '10,100,1000')).split(',').map((s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--updates: bad count "${s}"`);
  return n;
});

const MODELS = [
  { name: '2NN', description: 'MNIST 2NN (784-200-200-10)', params: 199_210 },
  { name: 'CNN', description: 'FedAvg CNN (1.66M params)', params: 1_663_370 },
] as const;

const POOL_BYTES = 128 * MiB;
/** The upload listener's slots (FLOCK_UPLOAD_SLOTS' default). */
const SLOTS = 8;
const SAMPLE_EVERY = 50;

if (!gcExposed) {
  console.error('note: run with node --expose-gc (pnpm bench:aggregation does) for stable memory numbers');
}

// ---------------------------------------------------------------------------------------------
// Aggregation
// ---------------------------------------------------------------------------------------------

const KERNELS = ['wasm-simd', 'js'] as const;
type Kernel = (typeof KERNELS)[number];
/**
 * add: the fold of an update read from DRAM; measure+add: sumOfSquares then add, as the upload
 * intake does, same source; received add / received measure+add: the same on an update as the
 * upload listener leaves it: just written (untimed, by this thread) into one of 8 slots
 * (FLOCK_UPLOAD_SLOTS), so read from cache. The slots are the regions of the round's receive area
 * (the accumulator's own shared wasm memory, where the kernels read it in place) when the aggregator
 * offers one (the wasm kernel), else the listener's own reused shared buffers (the JS kernel).
 */
const PATHS = ['add', 'measure+add', 'received add', 'received measure+add'] as const;
type FoldPath = (typeof PATHS)[number];

/** The upload listener's slots, as server/src/uploads/ingress-worker.ts reuses them: a round's receive area, or its own buffers. */
class ReceivedSlots {
  private readonly slots: Float32Array[];
  private next = 0;
  constructor(params: number, area: ReceiveArea | null = null) {
    this.slots = area
      ? area.offsets.map((offset) => new Float32Array(area.buffer, offset, params))
      : Array.from({ length: SLOTS }, () => new Float32Array(new SharedArrayBuffer(4 * params)));
  }
  receive(delta: Float32Array): Float32Array {
    const slot = this.slots[this.next]!;
    this.next = (this.next + 1) % this.slots.length;
    slot.set(delta); // aligned alike: a word copy
    return slot;
  }
}

/** FedAvg with its accumulator's kernel chosen (FedAvg itself takes the wasm one where it loads). */
function fedAvgWith(kernel: Kernel): ComposedStrategy {
  return new ComposedStrategy({ name: 'fedavg', createAggregator: (size) => new WeightedMeanAccumulator(size, kernel), optimizer: new DirectUpdate() });
}

interface AggregationResult {
  model: string;
  kernel: Kernel;
  /** See PATHS. */
  path: FoldPath;
  params: number;
  updates: number;
  bytesFolded: number;
  repetitions: number;
  /** Median seconds of the N add() calls. */
  addSeconds: number;
  /** Median seconds of finish(). */
  finishSeconds: number;
  addGbPerSecond: number;
  /** Fastest repetition (least disturbed by other processes on a shared machine). */
  bestAddGbPerSecond: number;
  /** Including finish(). */
  roundGbPerSecond: number;
  /** Bytes of ArrayBuffers the aggregator allocated at begin() (its accumulator). */
  aggregatorBytes: number;
  /** Extra ArrayBuffer bytes alive right after finish() (mean + new weights), over the accumulator. */
  finishExtraBytes: number;
  rssBefore: number;
  peakRss: number;
  peakHeapUsed: number;
  peakArrayBuffers: number;
  /** Peak RSS minus RSS just before begin(), worst repetition. */
  rssGrowth: number;
  updateNorm: number;
}

class UpdatePool {
  readonly deltas: Float32Array[];
  private cursor = 0;
  constructor(pool: Float32Array, params: number) {
    const count = Math.floor(pool.length / params);
    this.deltas = Array.from({ length: count }, (_, k) => pool.subarray(k * params, (k + 1) * params));
  }
  next(): Float32Array {
    const delta = this.deltas[this.cursor]!;
    this.cursor = (this.cursor + 1) % this.deltas.length;
    return delta;
  }
}

function runRound(globalWeights: Float32Array, updates: UpdatePool, n: number, track: boolean, kernel: Kernel, path: FoldPath, ownSlots: ReceivedSlots) {
  collect();
  const before = sampleMemory();
  let peak = { ...before };
  const note = (s: MemorySample): void => {
    peak = peakOf(peak, s);
  };
  let t0 = performance.now();
  const aggregator: RoundAggregator = fedAvgWith(kernel).begin({ globalWeights, serverState: null });
  const measure = path.endsWith('measure+add');
  const received = path.startsWith('received');
  // As the round engine does when its uploads go to the listener: the area is made at begin (timed with it).
  const area = received ? (aggregator.receiveArea?.(SLOTS) ?? null) : null;
  const slots = area ? new ReceivedSlots(globalWeights.length, area) : ownSlots;
  let addMs = performance.now() - t0;
  const afterBegin = sampleMemory();
  note(afterBegin);
  for (let i = 0; i < n;) {
    const end = Math.min(n, i + SAMPLE_EVERY);
    if (received) {
      // Each update lands in a slot first, with the clock stopped: the listener's thread does that.
      for (; i < end; i++) {
        const delta = slots.receive(updates.next());
        t0 = performance.now();
        if (measure && !Number.isFinite(aggregator.sumOfSquares!(delta))) throw new Error('non-finite update');
        aggregator.add({ delta, numExamples: 50 + (i % 600) });
        addMs += performance.now() - t0;
      }
    } else {
      t0 = performance.now();
      for (; i < end; i++) {
        const delta = updates.next();
        if (measure && !Number.isFinite(aggregator.sumOfSquares!(delta))) throw new Error('non-finite update');
        aggregator.add({ delta, numExamples: 50 + (i % 600) });
      }
      addMs += performance.now() - t0;
    }
    if (track) note(sampleMemory());
  }
  t0 = performance.now();
  const result = aggregator.finish();
  const finishMs = performance.now() - t0;
  const afterFinish = sampleMemory();
  note(afterFinish);
  if (aggregator.count !== n || !Number.isFinite(result.updateNorm)) throw new Error('aggregation produced a wrong result');
  sink.value += result.weights[7]!;
  return {
    addSeconds: addMs / 1000,
    finishSeconds: finishMs / 1000,
    aggregatorBytes: afterBegin.arrayBuffers - before.arrayBuffers,
    finishExtraBytes: afterFinish.arrayBuffers - afterBegin.arrayBuffers,
    before,
    peak,
    updateNorm: result.updateNorm,
  };
}

function measureAggregation(model: (typeof MODELS)[number], pool: Float32Array): AggregationResult[] {
  const params = model.params;
  const updates = new UpdatePool(pool, params);
  const globalWeights = new Float32Array(params);
  fillRandom(globalWeights, 7, 0.1);
  // JIT (and wasm tier-up) warm-up on this shape.
  const slots = new ReceivedSlots(params);
  for (const kernel of KERNELS) for (const path of PATHS) for (let w = 0; w < 3; w++) runRound(globalWeights, updates, 20, false, kernel, path, slots);
  const results: AggregationResult[] = [];
  for (const n of UPDATE_COUNTS)
    for (const kernel of KERNELS)
      for (const path of PATHS) {
        const bytes = n * params * 4;
        // Enough repetitions for a stable median without letting the big cases dominate the run time.
        const minReps = QUICK ? 2 : bytes > 2 * GB ? 3 : 5;
        const minSeconds = QUICK ? 0.2 : 1;
        const runs: ReturnType<typeof runRound>[] = [];
        repeat(
          () => {
            const run = runRound(globalWeights, updates, n, true, kernel, path, slots);
            runs.push(run);
            return run.addSeconds + run.finishSeconds;
          },
          minReps,
          minSeconds,
        );
        const addSeconds = median(runs.map((r) => r.addSeconds));
        const finishSeconds = median(runs.map((r) => r.finishSeconds));
        results.push({
          model: model.name,
          kernel,
          path,
          params,
          updates: n,
          bytesFolded: bytes,
          repetitions: runs.length,
          addSeconds,
          finishSeconds,
          addGbPerSecond: bytes / addSeconds / GB,
          bestAddGbPerSecond: bytes / Math.min(...runs.map((r) => r.addSeconds)) / GB,
          roundGbPerSecond: bytes / (addSeconds + finishSeconds) / GB,
          aggregatorBytes: median(runs.map((r) => r.aggregatorBytes)),
          finishExtraBytes: median(runs.map((r) => r.finishExtraBytes)),
          rssBefore: median(runs.map((r) => r.before.rss)),
          peakRss: Math.max(...runs.map((r) => r.peak.rss)),
          peakHeapUsed: Math.max(...runs.map((r) => r.peak.heapUsed)),
          peakArrayBuffers: Math.max(...runs.map((r) => r.peak.arrayBuffers)),
          rssGrowth: Math.max(...runs.map((r) => r.peak.rss - r.before.rss)),
          updateNorm: runs[0]!.updateNorm,
        });
      }
  return results;
}

// ---------------------------------------------------------------------------------------------
// Decode (uploads arrive as Node Buffers, at any byte offset)
// ---------------------------------------------------------------------------------------------

interface DecodeResult {
  model: string;
  input: string;
  updates: number;
  microsecondsPerUpdate: number;
  gbPerSecond: number;
  copies: boolean;
}

function measureDecode(model: (typeof MODELS)[number], pool: Float32Array, wire: Uint8Array): DecodeResult[] {
  const params = model.params;
  const bytesPerUpdate = params * 4;
  // Aligned inputs are Buffer views of the pool at multiples of 4; odd ones are views of `wire` (the
  // same bytes shifted by one) at 1 + k * size, so both decode to the same valid deltas.
  const count = Math.floor(pool.byteLength / bytesPerUpdate);
  const aligned = Array.from({ length: count }, (_, k) => Buffer.from(pool.buffer, pool.byteOffset + k * bytesPerUpdate, bytesPerUpdate));
  const odd = Array.from({ length: count }, (_, k) => Buffer.from(wire.buffer, wire.byteOffset + 1 + k * bytesPerUpdate, bytesPerUpdate));
  const n = 100;
  const results: DecodeResult[] = [];
  // Reference point, not an SDK function: copying an odd-offset upload into one reused aligned buffer
  // (what a decode-into-scratch API would cost), to separate the copy from the allocation of a new one.
  const scratch = new Float32Array(params);
  const scratchBytes = new Uint8Array(scratch.buffer);
  const copyIntoScratch = (buffer: Buffer): Float32Array => {
    scratchBytes.set(buffer);
    return scratch;
  };
  const cases: { input: string; buffers: Buffer[]; decode: (buffer: Buffer) => Float32Array; thenAdd: boolean }[] = [
    { input: 'Buffer, 4-byte aligned (zero-copy view)', buffers: aligned, decode: asFloat32, thenAdd: false },
    { input: 'Buffer at an odd offset (copied into a new buffer)', buffers: odd, decode: asFloat32, thenAdd: false },
    { input: 'odd offset: decode + add() (the upload path)', buffers: odd, decode: asFloat32, thenAdd: true },
    { input: 'reference: odd offset copied into a reused buffer (no asFloat32)', buffers: odd, decode: copyIntoScratch, thenAdd: false },
  ];
  let cursor = 0;
  for (const c of cases) {
    const once = (): number => {
      const accumulator = c.thenAdd ? new FedAvg().begin({ globalWeights: new Float32Array(params), serverState: null }) : null;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const decoded = c.decode(c.buffers[cursor]!);
        cursor = (cursor + 1) % c.buffers.length;
        if (accumulator) accumulator.add({ delta: decoded, numExamples: 100 });
        else sink.value += decoded[i]!;
      }
      return (performance.now() - t0) / 1000;
    };
    once(); // warm-up
    collect();
    const times = repeat(once, QUICK ? 2 : 5, QUICK ? 0.1 : 0.5);
    const seconds = median(times);
    results.push({
      model: model.name,
      input: c.input,
      updates: n,
      microsecondsPerUpdate: (seconds / n) * 1e6,
      gbPerSecond: (n * bytesPerUpdate) / seconds / GB,
      copies: c.buffers === odd,
    });
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

const fmt = (value: number, digits = 2): string => value.toFixed(digits);
const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;
const signedMib = (bytes: number): string => `${bytes >= 0 ? '+' : ''}${(bytes / MiB).toFixed(1)} MiB`;
const int = (n: number): string => n.toLocaleString('en-US');

function markdown(report: Report): string {
  const lines: string[] = [];
  const m = report.machine;
  lines.push(`# Aggregation benchmark (${report.quick ? 'quick' : 'full'} run)`);
  lines.push('');
  lines.push(
    `Machine: ${m.cpus} x ${m.cpuModel}, ${mib(m.totalMemory)} RAM, Node ${m.node} (V8 ${m.v8}), ${m.platform}. ` +
      `Load average at start/end: ${m.loadStart.map((l) => fmt(l)).join(' ')} / ${m.loadEnd.map((l) => fmt(l)).join(' ')}. ` +
      `Run time ${fmt(report.totalSeconds, 1)} s.`,
  );
  lines.push('');
  lines.push('## Baselines (same process; GB = 1e9 bytes of float32 source data per second; medians of repetitions)');
  lines.push('');
  lines.push('| Baseline | What | GB/s before | GB/s after | GB/s mean | GB/s best |');
  lines.push('|---|---|---:|---:|---:|---:|');
  for (const b of report.baselines.before) {
    const after = report.baselines.after.find((a) => a.name === b.name);
    const mean = after ? (b.gbPerSecond + after.gbPerSecond) / 2 : b.gbPerSecond;
    const best = Math.max(b.bestGbPerSecond, after?.bestGbPerSecond ?? 0);
    lines.push(`| ${b.name} | ${b.description} | ${fmt(b.gbPerSecond)} | ${after ? fmt(after.gbPerSecond) : '-'} | ${fmt(mean)} | ${fmt(best)} |`);
  }
  lines.push('');
  lines.push(`## FedAvg aggregation (WeightedMeanAccumulator: float64 running weighted sum; default kernel here: ${report.defaultKernel})`);
  lines.push('');
  lines.push(
    '"add" is the fold alone; "measure+add" is the upload path: sumOfSquares() (norm and finiteness) then add(), both on updates read from DRAM; "received ..." the same on an update just written into one of the upload listener\'s 8 slots (untimed: the listener\'s thread does it), so read from cache: with the wasm kernel the slots are the round\'s receive area in the accumulator\'s own memory, measured and folded in place (counted in its footprint); with the JS kernel the listener\'s own reused shared buffers. "vs memcpy" is add() median GB/s over the memcpy baseline\'s mean; "vs JS" is the wasm row over the JS row of the same case.',
  );
  lines.push('');
  lines.push(
    '| Model | Params | Updates | Kernel | Path | Data folded | add() total | add() GB/s median (best) | vs memcpy | vs JS | finish() | Round GB/s (incl. finish) | Aggregator footprint | finish() extra | Peak RSS | RSS growth |',
  );
  lines.push('|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of report.aggregation) {
    const js = report.aggregation.find((o) => o.model === r.model && o.updates === r.updates && o.path === r.path && o.kernel === 'js');
    lines.push(
      `| ${r.model} | ${int(r.params)} | ${int(r.updates)} | ${r.kernel} | ${r.path} | ${mib(r.bytesFolded)} | ${fmt(r.addSeconds * 1000, 1)} ms | ${fmt(r.addGbPerSecond)} (${fmt(r.bestAddGbPerSecond)}) | **${fmt(r.addGbPerSecond / report.ratios.memcpyGbPerSecond)}** | ${js && r.kernel !== 'js' ? `${fmt(r.addGbPerSecond / js.addGbPerSecond, 1)}x` : '-'} | ${fmt(r.finishSeconds * 1000, 1)} ms | ${fmt(r.roundGbPerSecond)} | ${mib(r.aggregatorBytes)} | ${mib(r.finishExtraBytes)} | ${mib(r.peakRss)} | ${signedMib(r.rssGrowth)} |`,
    );
  }
  lines.push('');
  lines.push('## Decode (`asFloat32` from `@flock/client-sdk/protocol` on an upload Buffer), 100 updates');
  lines.push('');
  lines.push('| Model | Input | µs per update | GB/s |');
  lines.push('|---|---|---:|---:|');
  for (const d of report.decode) {
    lines.push(
      `| ${d.model} | ${d.input} | ${fmt(d.microsecondsPerUpdate, d.microsecondsPerUpdate < 10 ? 2 : 0)} | ${d.copies ? fmt(d.gbPerSecond) : `${fmt(d.gbPerSecond, 0)} (no copy)`} |`,
    );
  }
  lines.push('');
  lines.push(
    `Pool of update data: ${mib(report.config.poolBytes)} (${report.config.poolUpdates.map((p) => `${p.model}: ${p.count} distinct updates`).join(', ')}), ` +
      `shared by every case, so the benchmark's own memory does not depend on the number of updates.`,
  );
  return lines.join('\n');
}

interface Report {
  quick: boolean;
  defaultKernel: string;
  machine: MachineInfo & { freeMemoryAtStart: number; loadStart: number[]; loadEnd: number[] };
  config: { updateCounts: number[]; poolBytes: number; poolUpdates: { model: string; count: number }[]; baselineBytes: number; gcExposed: boolean };
  baselines: { before: BaselineResult[]; after: BaselineResult[] };
  ratios: { memcpyGbPerSecond: number; jsStreamGbPerSecond: number; kernelDramGbPerSecond: number };
  aggregation: AggregationResult[];
  decode: DecodeResult[];
  totalSeconds: number;
}

const log = (text: string): void => void process.stderr.write(`${text}\n`);

/** Aggregation and decoding of every model, over one shared pool of update data. */
function measureWorkload(pool: Float32Array): Pick<Report, 'aggregation' | 'decode'> {
  const aggregation: AggregationResult[] = [];
  const decode: DecodeResult[] = [];
  for (const model of MODELS) {
    log(`aggregation ${model.name}...`);
    aggregation.push(...measureAggregation(model, pool));
  }
  // Upload bytes as they may sit in a received Buffer: the pool's bytes one byte later.
  let wire: Uint8Array | null = new Uint8Array(pool.byteLength + 1);
  wire.set(new Uint8Array(pool.buffer, pool.byteOffset, pool.byteLength), 1);
  for (const model of MODELS) {
    log(`decode ${model.name}...`);
    decode.push(...measureDecode(model, pool, wire));
  }
  wire = null;
  collect();
  return { aggregation, decode };
}

function main(): void {
  const started = performance.now();
  const loadStart = loadavg();
  const freeMemoryAtStart = freemem();

  log('baselines (before)...');
  const before = measureBaselines(QUICK ? 2 : 5);
  log('filling the update pool...');
  const pool = new Float32Array(POOL_BYTES / 4);
  fillRandom(pool, 42, 0.01);
  const workload = measureWorkload(pool);
  log('baselines (after)...');
  const after = measureBaselines(QUICK ? 2 : 3);
  const meanOf = (name: string): number => {
    const values = [...before, ...after].filter((b) => b.name === name).map((b) => b.gbPerSecond);
    return values.reduce((a, b) => a + b, 0) / values.length;
  };

  const kernel = defaultKernel();
  const report: Report = {
    quick: QUICK,
    defaultKernel: kernel.reason ? `${kernel.kernel} (${kernel.reason})` : kernel.kernel,
    machine: { ...machineInfo(), freeMemoryAtStart, loadStart, loadEnd: loadavg() },
    config: {
      updateCounts: UPDATE_COUNTS,
      poolBytes: POOL_BYTES,
      poolUpdates: MODELS.map((m) => ({ model: m.name, count: Math.floor(pool.length / m.params) })),
      baselineBytes: BASELINE_BYTES,
      gcExposed,
    },
    baselines: { before, after },
    ratios: { memcpyGbPerSecond: meanOf('memcpy'), jsStreamGbPerSecond: meanOf('js-stream-sum'), kernelDramGbPerSecond: meanOf('js-add-f32-into-f64-dram') },
    ...workload,
    totalSeconds: (performance.now() - started) / 1000,
  };
  mkdirSync(dirname(OUT_FILE), { recursive: true });
  writeFileSync(OUT_FILE, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`${markdown(report)}\n`);
  log(`wrote ${relative(process.cwd(), OUT_FILE) || OUT_FILE} (checksum ${sink.value.toExponential(3)})`);
}

main();
