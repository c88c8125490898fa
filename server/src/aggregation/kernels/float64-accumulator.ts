import type { CompressedDeltaView } from '@flock/client-sdk/protocol';
import { jsAddScaled, jsSumOfSquares } from './js-kernels.js';
import { webAssembly, type WasmModule } from './wasm-api.js';
import { vectorKernelModule, type VectorKernelExports } from './wasm-module.js';

/**
 * A float64 running sum of scaled float32 vectors (the FedAvg fold) that can also measure an
 * update first: `sumOfSquares(x)` then `addScaled(x, s)` is the upload path's validate-then-fold.
 * The wasm version copies x into its memory once, in sumOfSquares, and folds from that copy, so an
 * upload is read from the caller's buffer once and then twice from cache by SIMD loops.
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
   * kernel (addInt8, from a copy of its bytes) or in JS through a 256-entry table of its values,
   * top-k as a JS scatter-add of its kept values. Bit-identical to addScaled(view.toDense(), scale)
   * in either kernel (server/test/compression/fused-fold.test.ts).
   */
  addCompressed(view: CompressedDeltaView, scale: number): void;
  /** The running sum: a view (not a copy) that stays valid while the accumulator lives. */
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
}

/** One instance (own memory) per accumulator: [sum: float64 × n][staging: float32 × n]. */
class WasmAccumulator implements Float64Accumulator {
  readonly kernel = 'wasm-simd';
  readonly sum: Float64Array;
  private readonly kernels: VectorKernelExports;
  private readonly bytes: Uint8Array;
  private readonly stagingOffset: number;
  /** The array whose values sit in the staging area, until the next addScaled consumes them. */
  private staged: Float32Array | null = null;

  constructor(
    module: WasmModule,
    readonly length: number,
  ) {
    this.stagingOffset = Math.ceil((8 * length) / 16) * 16;
    const wasm = webAssembly!; // a module was compiled, so the API exists
    const memory = new wasm.Memory({ initial: Math.max(1, Math.ceil((this.stagingOffset + 4 * length) / PAGE)) });
    this.kernels = new wasm.Instance(module, { env: { memory } }).exports as unknown as VectorKernelExports;
    this.bytes = new Uint8Array(memory.buffer);
    this.sum = new Float64Array(memory.buffer, 0, length);
  }

  sumOfSquares(values: Float32Array): number {
    this.stage(values);
    this.staged = values;
    return this.kernels.sumOfSquares(this.stagingOffset, values.length);
  }

  addScaled(values: Float32Array, scale: number): void {
    if (values.length !== this.length) throw new RangeError(`length mismatch: ${this.length} vs ${values.length}`);
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
    const int8 = view.int8Runs();
    if (!int8 || int8.quantized.length > 4 * this.length) {
      // top-k: a scatter-add of its few kept values, in JS on the sum in the instance's memory.
      view.addScaledTo(this.sum, scale);
      return;
    }
    // int8: its bytes copied into the staging area (a quarter of a float32 upload), then the SIMD
    // kernel per tensor (float32 scale · q, widened, times the weight, added: as the JS fold).
    const { quantized, runs } = int8;
    this.bytes.set(new Uint8Array(quantized.buffer, quantized.byteOffset, quantized.byteLength), this.stagingOffset);
    for (const run of runs) {
      if (run.end > this.length) throw new RangeError(`int8 run ends at ${run.end}, past ${this.length} values`);
      this.kernels.addInt8(8 * run.start, this.stagingOffset + run.source, run.end - run.start, run.scale, scale);
    }
  }

  private stage(values: Float32Array): void {
    if (values.length > this.length) throw new RangeError(`${values.length} values do not fit an accumulator of ${this.length}`);
    this.bytes.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), this.stagingOffset);
  }
}
