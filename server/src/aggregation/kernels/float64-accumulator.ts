import type { CompressedDeltaView } from '@flock/client-sdk/protocol';
import { jsAddScaled, jsSumOfSquares } from './js-kernels.js';
import { webAssembly, type WasmMemory, type WasmModule } from './wasm-api.js';
import { sharedVectorKernelModule, vectorKernelModule, type VectorKernelExports } from './wasm-module.js';

/**
 * Regions of an accumulator's own (shared) wasm memory where another thread may write uploads, one
 * region per upload slot, so that the kernels measure and fold them where they lie: no copy on the
 * thread that folds (the HTTP upload listener's worker writes them; docs/ARCHITECTURE.md, "Uploads
 * over HTTP"). A region must not be written while the folding thread reads it.
 */
export interface ReceiveArea {
  /** The accumulator's memory (it never grows, so this buffer stays its memory). */
  readonly buffer: SharedArrayBuffer;
  /** Byte offset in `buffer` of each slot's region: 16-byte aligned, past the running sum and the staging area. */
  readonly offsets: readonly number[];
  /** Bytes each region holds: the model's float32 delta (4 per value, rounded up to 16), so any smaller encoding of it too. */
  readonly bytesPerSlot: number;
}

/**
 * A float64 running sum of scaled float32 vectors (the FedAvg fold) that can also measure an
 * update first: `sumOfSquares(x)` then `addScaled(x, s)` is the upload path's validate-then-fold.
 * The wasm version copies x into its memory once, in sumOfSquares, and folds from that copy, so an
 * upload is read from the caller's buffer once and then twice from cache by SIMD loops; an x that
 * lies in its receive area (receiveArea) is measured and folded there, without a copy.
 */
export interface Float64Accumulator {
  readonly kernel: 'wasm-simd' | 'js';
  readonly length: number;
  /** Σ x[i]² in float64: NaN or Infinity exactly when some value is not finite. */
  sumOfSquares(values: Float32Array): number;
  /** sum[i] += scale * values[i]. Reuses the copy sumOfSquares made when given the same, unchanged array right after it. */
  addScaled(values: Float32Array, scale: number): void;
  /**
   * sum[i] += scale * v[i] for a compressed upload, read from its bytes: int8 by the wasm SIMD
   * kernel (addInt8, from a copy of its bytes, or where they lie in the receive area) or in JS
   * through a 256-entry table of its values, top-k as a JS scatter-add of its kept values.
   * Bit-identical to addScaled(view.toDense(), scale) in either kernel
   * (server/test/compression/fused-fold.test.ts).
   */
  addCompressed(view: CompressedDeltaView, scale: number): void;
  /**
   * Moves the accumulator into a shared wasm memory with `slots` receive regions after its staging
   * area, and returns them: views of them are measured and folded in place. Null where this kernel
   * cannot (the JS one; no shared wasm memories; past the memory limit). Only before anything was
   * folded, and once (throws otherwise): the move starts from an empty sum. Without an area the
   * memory stays unshared, because copying into shared memory is slower (V8 copies word by word).
   */
  receiveArea(slots: number): ReceiveArea | null;
  /** The running sum: a view (not a copy) that stays valid while the accumulator lives (after receiveArea, if any). */
  readonly sum: Float64Array;
}

/** sum += scale · values for float32 values or a compressed upload's view, after checking the length. */
export function foldInto(accumulator: Float64Accumulator, values: Float32Array | CompressedDeltaView, scale: number): void {
  if (values.length !== accumulator.length) throw new RangeError(`length mismatch: ${accumulator.length} vs ${values.length}`);
  if (values instanceof Float32Array) accumulator.addScaled(values, scale);
  else accumulator.addCompressed(values, scale);
}

export type KernelChoice = 'auto' | 'wasm-simd' | 'js';

/** The wasm SIMD accumulator where the runtime has it (else the JS one); `kernel` forces one (tests, benches). */
export function createFloat64Accumulator(length: number, kernel: KernelChoice = 'auto'): Float64Accumulator {
  if (!(Number.isInteger(length) && length >= 0)) throw new RangeError(`length must be a non-negative integer, got ${length}`);
  if (kernel === 'js') return new JsAccumulator(length);
  const { module, reason } = vectorKernelModule();
  if (module && 12 * length + 16 <= MAX_WASM_BYTES) {
    try {
      return new WasmAccumulator(module, length);
    } catch (error) {
      // The engine refused the memory (address space or memory limits): the JS kernel needs less.
      if (kernel === 'wasm-simd') throw error;
      return new JsAccumulator(length);
    }
  }
  if (kernel === 'wasm-simd') throw new Error(`wasm SIMD kernel unavailable: ${reason ?? `${length} values do not fit one wasm memory`}`);
  return new JsAccumulator(length);
}

/** Whether createFloat64Accumulator's default is the wasm kernel here, and if not why. */
export function defaultKernel(): { kernel: 'wasm-simd' | 'js'; reason: string | null } {
  const { module, reason } = vectorKernelModule();
  return module ? { kernel: 'wasm-simd', reason: null } : { kernel: 'js', reason };
}

const PAGE = 65_536;
/** Values copied and folded at a time by an add() that was not measured first (64 KiB of float32). */
const FOLD_CHUNK = 16_384;
/** 2 GiB: what every 64-bit V8 since Node 16 grants a wasm32 memory (4 GiB on newer ones). */
const MAX_WASM_BYTES = 2 ** 31;

class JsAccumulator implements Float64Accumulator {
  readonly kernel = 'js';
  readonly sum: Float64Array;

  constructor(readonly length: number) {
    this.sum = new Float64Array(length);
  }

  sumOfSquares(values: Float32Array): number {
    return jsSumOfSquares(values);
  }

  addScaled(values: Float32Array, scale: number): void {
    jsAddScaled(this.sum, values, scale);
  }

  addCompressed(view: CompressedDeltaView, scale: number): void {
    view.addScaledTo(this.sum, scale);
  }

  receiveArea(): null {
    return null; // a wasm memory is what the listener's thread writes into
  }
}

/**
 * One instance (own memory) per accumulator: [sum: float64 × n][staging: float32 × n], and with a
 * receive area [slot 0: float32 × n]...[slot k-1] after them, each region 16-byte aligned.
 */
class WasmAccumulator implements Float64Accumulator {
  readonly kernel = 'wasm-simd';
  private kernels!: VectorKernelExports;
  private bytes!: Uint8Array;
  private sumView!: Float64Array;
  private readonly stagingOffset: number;
  /** The array whose values sit in the staging area, until the next addScaled consumes them. */
  private staged: Float32Array | null = null;
  private folded = false;
  private area: ReceiveArea | null = null;
  /** Where the receive area's regions begin (views from there on are folded in place). */
  private readonly areaStart: number;

  constructor(
    module: WasmModule,
    readonly length: number,
  ) {
    this.stagingOffset = align16(8 * length);
    this.areaStart = align16(this.stagingOffset + 4 * length);
    const wasm = webAssembly!; // a module was compiled, so the API exists
    this.attach(module, new wasm.Memory({ initial: Math.max(1, Math.ceil((this.stagingOffset + 4 * length) / PAGE)) }));
  }

  get sum(): Float64Array {
    return this.sumView;
  }

  private attach(module: WasmModule, memory: WasmMemory): void {
    this.kernels = new webAssembly!.Instance(module, { env: { memory } }).exports as unknown as VectorKernelExports;
    this.bytes = new Uint8Array(memory.buffer);
    this.sumView = new Float64Array(memory.buffer, 0, this.length);
  }

  receiveArea(slots: number): ReceiveArea | null {
    if (!(Number.isInteger(slots) && slots >= 1)) throw new RangeError(`slots must be a positive integer, got ${slots}`);
    if (this.folded || this.area) throw new Error('a receive area is made once, before anything is folded');
    const { module } = sharedVectorKernelModule();
    const bytesPerSlot = align16(4 * this.length);
    const end = this.areaStart + slots * bytesPerSlot;
    if (!module || end > MAX_WASM_BYTES) return null;
    // initial = maximum: the memory never grows, so its buffer (the one the other thread holds) stays valid.
    const pages = Math.max(1, Math.ceil(end / PAGE));
    let memory: WasmMemory;
    try {
      memory = new webAssembly!.Memory({ initial: pages, maximum: pages, shared: true });
    } catch {
      return null; // refused by the engine (address space or memory limits): the unshared memory stays
    }
    this.attach(module, memory);
    this.staged = null;
    const offsets = Array.from({ length: slots }, (_, k) => this.areaStart + k * bytesPerSlot);
    this.area = { buffer: memory.buffer as SharedArrayBuffer, offsets, bytesPerSlot };
    return this.area;
  }

  sumOfSquares(values: Float32Array): number {
    if (values.length > this.length) throw new RangeError(`${values.length} values do not fit an accumulator of ${this.length}`);
    const at = this.inArea(values);
    if (at >= 0) {
      this.staged = null;
      return this.kernels.sumOfSquares(at, values.length);
    }
    this.stage(values);
    this.staged = values;
    return this.kernels.sumOfSquares(this.stagingOffset, values.length);
  }

  addScaled(values: Float32Array, scale: number): void {
    if (values.length !== this.length) throw new RangeError(`length mismatch: ${this.length} vs ${values.length}`);
    this.folded = true;
    const at = this.inArea(values);
    if (at >= 0) {
      this.staged = null;
      this.kernels.addScaled(0, at, values.length, scale);
      return;
    }
    if (values === this.staged) {
      this.staged = null;
      this.kernels.addScaled(0, this.stagingOffset, values.length, scale);
      return;
    }
    // Not measured first: copy and fold a chunk at a time, so that the copy is still in L1/L2 when
    // folded (measured 25-30% faster than copying a CNN-sized upload whole, then folding).
    this.staged = null;
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    for (let start = 0; start < values.length; start += FOLD_CHUNK) {
      const count = Math.min(FOLD_CHUNK, values.length - start);
      this.bytes.set(bytes.subarray(4 * start, 4 * (start + count)), this.stagingOffset);
      this.kernels.addScaled(8 * start, this.stagingOffset, count, scale);
    }
  }

  addCompressed(view: CompressedDeltaView, scale: number): void {
    this.staged = null;
    this.folded = true;
    const int8 = view.int8Runs();
    if (!int8 || int8.quantized.length > 4 * this.length) {
      // top-k: a scatter-add of its few kept values, in JS on the sum in the instance's memory.
      view.addScaledTo(this.sum, scale);
      return;
    }
    // int8: its bytes where they lie in the receive area, else copied into the staging area (a
    // quarter of a float32 upload), then the SIMD kernel per tensor (float32 scale · q, widened,
    // times the weight, added: as the JS fold).
    const { quantized, runs } = int8;
    let source = this.inArea(quantized);
    if (source < 0) {
      this.bytes.set(new Uint8Array(quantized.buffer, quantized.byteOffset, quantized.byteLength), this.stagingOffset);
      source = this.stagingOffset;
    }
    for (const run of runs) {
      if (run.end > this.length) throw new RangeError(`int8 run ends at ${run.end}, past ${this.length} values`);
      this.kernels.addInt8(8 * run.start, source + run.source, run.end - run.start, run.scale, scale);
    }
  }

  /** The byte offset of `view` in this memory when it lies in the receive area (read it there), else -1. */
  private inArea(view: ArrayBufferView): number {
    return this.area && view.buffer === this.area.buffer && view.byteOffset >= this.areaStart ? view.byteOffset : -1;
  }

  private stage(values: Float32Array): void {
    this.bytes.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), this.stagingOffset);
  }
}

function align16(bytes: number): number {
  return Math.ceil(bytes / 16) * 16;
}
