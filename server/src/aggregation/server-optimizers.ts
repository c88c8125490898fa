import type { ServerOptimizer } from './pipeline.js';
import { encodeServerState, loadServerState } from './server-state.js';
import { applyUpdate, l2Norm, normOfDifference } from './vector-math.js';

type StepResult = ReturnType<ServerOptimizer['step']>;

function checkLength(globalWeights: Float32Array, delta: Float64Array): void {
  if (globalWeights.length !== delta.length) throw new RangeError(`length mismatch: ${globalWeights.length} vs ${delta.length}`);
}

/**
 * x <- x + Δ: FedAvg's server step (and every strategy without a server optimizer). Stateless:
 * returns `serverState: null`, so a stateful strategy run after it starts fresh. updateNorm = ‖Δ‖.
 */
export class DirectUpdate implements ServerOptimizer {
  step(globalWeights: Float32Array, delta: Float64Array): StepResult {
    checkLength(globalWeights, delta);
    return { weights: applyUpdate(globalWeights, delta, 1), serverState: null, updateNorm: l2Norm(delta), warnings: [] };
  }
}

export interface ServerMomentumOptions {
  /** Tag of the persisted state (the strategy name). */
  stateTag: string;
  learningRate: number;
  momentum: number;
}

/**
 * Server SGD with momentum (FedAvgM, Hsu et al. 2019): v <- momentum·v + Δ; x <- x + lr·v.
 * v starts at 0 (so the first round moves lr·Δ) and is persisted as one float32 vector.
 * updateNorm = ‖x_new - x_old‖.
 */
export class ServerMomentum implements ServerOptimizer {
  constructor(private readonly options: ServerMomentumOptions) {}

  step(globalWeights: Float32Array, delta: Float64Array, serverState: Uint8Array | null): StepResult {
    checkLength(globalWeights, delta);
    const { stateTag, learningRate, momentum } = this.options;
    const size = globalWeights.length;
    const loaded = loadServerState(serverState, { tag: stateTag, vectors: 1, length: size });
    const previous = loaded.vectors?.[0] ?? null;
    const velocity = new Float32Array(size);
    const weights = new Float32Array(size);
    for (let i = 0; i < size; i++) {
      // The stored velocity is float32; computing with the float32 value keeps a restarted
      // coordinator bit-identical to one that never stopped.
      const v = Math.fround(momentum * (previous ? previous[i]! : 0) + delta[i]!);
      velocity[i] = v;
      weights[i] = globalWeights[i]! + learningRate * v;
    }
    return {
      weights,
      serverState: encodeServerState(stateTag, [velocity]),
      updateNorm: normOfDifference(weights, globalWeights),
      warnings: loaded.warning ? [loaded.warning] : [],
    };
  }
}

export type AdaptiveVariant = 'adagrad' | 'adam' | 'yogi';

export interface AdaptiveOptimizerOptions {
  /** Tag of the persisted state (the strategy name). */
  stateTag: string;
  variant: AdaptiveVariant;
  /** η */
  learningRate: number;
  beta1: number;
  /** Unused by adagrad. */
  beta2: number;
  /** τ, the adaptivity floor. */
  tau: number;
}

/**
 * Adaptive server optimizers of Reddi et al. 2021, "Adaptive Federated Optimization" (Algorithm 2),
 * applied to the pseudo-gradient Δ (the aggregate delta; it points downhill, hence x + η·...):
 *
 *   m <- β1·m + (1 - β1)·Δ
 *   v <- v + Δ²                                  (FedAdagrad)
 *   v <- β2·v + (1 - β2)·Δ²                      (FedAdam)
 *   v <- v - (1 - β2)·Δ²·sign(v - Δ²)             (FedYogi)
 *   x <- x + η·m / (√v + τ)
 *
 * No bias correction, as in the paper. Initial state: m = 0 and v = τ², the paper's requirement
 * v_{-1} >= τ² taken at its lower bound (Flower starts v at 0; the difference only matters in the
 * first rounds and only for coordinates with |Δ| ~ τ). m and v are persisted as float32.
 * updateNorm = ‖x_new - x_old‖.
 */
export class AdaptiveServerOptimizer implements ServerOptimizer {
  constructor(private readonly options: AdaptiveOptimizerOptions) {}

  step(globalWeights: Float32Array, delta: Float64Array, serverState: Uint8Array | null): StepResult {
    checkLength(globalWeights, delta);
    const { stateTag, variant, learningRate, beta1, beta2, tau } = this.options;
    const size = globalWeights.length;
    const loaded = loadServerState(serverState, { tag: stateTag, vectors: 2, length: size });
    const previousM = loaded.vectors?.[0] ?? null;
    const previousV = loaded.vectors?.[1] ?? null;
    const initialV = Math.fround(tau * tau);
    const m = new Float32Array(size);
    const v = new Float32Array(size);
    const weights = new Float32Array(size);
    for (let i = 0; i < size; i++) {
      const d = delta[i]!;
      const d2 = d * d;
      const mPrev = previousM ? previousM[i]! : 0;
      const vPrev = previousV ? previousV[i]! : initialV;
      const mNext = Math.fround(beta1 * mPrev + (1 - beta1) * d);
      let vNext: number;
      if (variant === 'adagrad') vNext = vPrev + d2;
      else if (variant === 'adam') vNext = beta2 * vPrev + (1 - beta2) * d2;
      else vNext = vPrev - (1 - beta2) * d2 * Math.sign(vPrev - d2);
      // Stored as float32; the step uses the stored values so a restart changes nothing.
      vNext = Math.fround(vNext);
      m[i] = mNext;
      v[i] = vNext;
      weights[i] = globalWeights[i]! + (learningRate * mNext) / (Math.sqrt(vNext) + tau);
    }
    return {
      weights,
      serverState: encodeServerState(stateTag, [m, v]),
      updateNorm: normOfDifference(weights, globalWeights),
      warnings: loaded.warning ? [loaded.warning] : [],
    };
  }
}
