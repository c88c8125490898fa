import type { TrainingPlan } from '@flock/client-sdk/protocol';
import { scaledDelta, type ClientUpdate, type RoundAggregator, type RoundContext, type SplitAggregation, type Strategy } from './strategy.js';
import { l2Norm } from './vector-math.js';

/**
 * delta · min(1, S / ‖delta‖): the same array (bit-identical, no copy) when ‖delta‖ <= S, else a
 * scaled copy whose norm is S up to float32 rounding (relative error ~1e-7). Never mutates `delta`.
 */
export function clipToNorm(delta: Float32Array, clipNorm: number): Float32Array {
  const norm = l2Norm(delta);
  if (norm <= clipNorm) return delta;
  const factor = clipNorm / norm;
  const clipped = new Float32Array(delta.length);
  for (let i = 0; i < delta.length; i++) clipped[i] = delta[i]! * factor;
  return clipped;
}

/**
 * Wraps any strategy so that every update is clipped to L2 norm S before the inner strategy sees it
 * (norm bounding, Sun et al. 2019 "Can You Really Backdoor Federated Learning?"; also the first half
 * of DP-FedAvg, McMahan et al. 2018). Selected by adding `clipNorm` to any strategy's options.
 *
 * Transparent otherwise: same name, same plan, same server state, so it can be switched on and off
 * between rounds without losing optimizer state. Clipping costs one norm pass per update and a copy
 * only for the updates it actually scales; streaming strategies stay O(model size).
 *
 * Differential privacy (a later issue) composes here: NormBounded supplies the sensitivity bound S,
 * and the noise belongs in an AggregateTransform (pipeline.ts) between aggregation and the server
 * optimizer.
 */
export class NormBounded implements Strategy {
  readonly name: string;

  constructor(
    readonly inner: Strategy,
    readonly clipNorm: number,
  ) {
    if (!(Number.isFinite(clipNorm) && clipNorm > 0)) throw new RangeError(`clipNorm must be a positive finite number, got ${clipNorm}`);
    this.name = inner.name;
  }

  configurePlan(plan: TrainingPlan): TrainingPlan {
    return this.inner.configurePlan(plan);
  }

  /** The returned aggregator also counts the updates it scaled (`clipped`), e.g. to tune S. */
  begin(context: RoundContext): RoundAggregator & { readonly clipped: number } {
    const inner = this.inner.begin(context);
    const { clipNorm } = this;
    let clipped = 0;
    return {
      add(update: ClientUpdate): void {
        const given = scaledDelta(update);
        const delta = clipToNorm(given, clipNorm);
        inner.add(delta === update.delta ? update : { delta, numExamples: update.numExamples });
        if (delta !== given) clipped++;
      },
      get count() {
        return inner.count;
      },
      get clipped() {
        return clipped;
      },
      finish: () => inner.finish(),
    };
  }

  /** Split like the inner strategy, each process clipping the updates it folds. */
  split(): SplitAggregation | null {
    const inner = this.inner.split?.() ?? null;
    if (!inner) return null;
    const { clipNorm } = this;
    return {
      prepare(update: ClientUpdate): ClientUpdate {
        const prepared = inner.prepare(update);
        const given = scaledDelta(prepared);
        const delta = clipToNorm(given, clipNorm);
        return delta === prepared.delta ? prepared : { delta, numExamples: prepared.numExamples };
      },
      finish: (context, mean, updates) => inner.finish(context, mean, updates),
    };
  }
}
