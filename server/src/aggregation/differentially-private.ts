import type { TrainingPlan } from '@flock/client-sdk/protocol';
import { cryptoUniform, fillGaussian, type UniformSource } from '../privacy/gaussian.js';
import { createFloat64Accumulator } from './kernels/float64-accumulator.js';
import type { ClientUpdate, RoundAggregator, RoundContext, SplitAggregation, Strategy } from './strategy.js';
import { l2Norm } from './vector-math.js';

/** What the DP wrapper needs of a round. */
export interface DpAggregationSettings {
  /** C: the L2 norm every update is clipped to. */
  clipNorm: number;
  /** z: the noise on the sum has standard deviation z · C. */
  noiseMultiplier: number;
  /** q · N: the expected number of updates, the fixed denominator of the noisy mean (> 0). */
  expectedUpdates: number;
}

/**
 * DP-FedAvg around any weighted-mean strategy (McMahan et al. 2018, "Learning Differentially Private
 * Recurrent Language Models", the fixed-denominator estimator):
 *
 *   Δ = (Σ_k clip_C(Δ_k) + N(0, z²C²·I)) / (q·N)      then the inner strategy's server step on Δ
 *
 * Each update counts once whatever its example count (user-level DP: one device, one vote, so the
 * sum's sensitivity to adding or removing a device is C). The denominator is the expected number of
 * updates, not the number that arrived, so that it reveals nothing about who took part. Works on one
 * process (begin) and over several (split: each process clips and folds with weight 1; the leader
 * turns the combined mean back into the sum and adds the noise once).
 *
 * Pure but for the uniform source (the CSPRNG by default; tests pass a seeded one).
 */
export class DifferentiallyPrivate implements Strategy {
  readonly name: string;
  private readonly inner: SplitAggregation;

  constructor(
    inner: Strategy,
    readonly settings: DpAggregationSettings,
    private readonly uniform: () => UniformSource = cryptoUniform,
  ) {
    const split = inner.split?.() ?? null;
    if (!split)
      throw new RangeError(`differential privacy needs a weighted-mean strategy (fedavg, fedavgm, fedprox, fedadagrad, fedadam, fedyogi), not ${inner.name}`);
    const { clipNorm, noiseMultiplier, expectedUpdates } = settings;
    if (!(clipNorm > 0 && Number.isFinite(clipNorm))) throw new RangeError(`clipNorm must be positive and finite, got ${clipNorm}`);
    if (!(noiseMultiplier >= 0 && Number.isFinite(noiseMultiplier)))
      throw new RangeError(`noiseMultiplier must be finite and non-negative, got ${noiseMultiplier}`);
    if (!(expectedUpdates > 0 && Number.isFinite(expectedUpdates))) throw new RangeError(`expectedUpdates must be positive, got ${expectedUpdates}`);
    this.name = inner.name;
    this.inner = split;
    this.configurePlanOf = (plan) => ({ ...inner.configurePlan(plan), clipNorm });
  }

  private readonly configurePlanOf: (plan: TrainingPlan) => TrainingPlan;

  /** The inner strategy's plan, with the clip bound the SDK applies before upload. */
  configurePlan(plan: TrainingPlan): TrainingPlan {
    return this.configurePlanOf(plan);
  }

  /** The scale that brings scale · delta within C (1 when it already is), and whether it clipped. */
  private clipScale(update: ClientUpdate): { scale: number; clipped: boolean } {
    const given = update.scale ?? 1;
    const norm = given * (update.norm ?? l2Norm(update.delta));
    if (norm <= this.settings.clipNorm) return { scale: given, clipped: false };
    return { scale: given * (this.settings.clipNorm / norm), clipped: true };
  }

  /** (sum + noise) / expected updates, in place. */
  private noisyMean(sum: Float64Array): Float64Array {
    const { clipNorm, noiseMultiplier, expectedUpdates } = this.settings;
    const noisy = fillGaussian(new Float64Array(sum.length), noiseMultiplier * clipNorm, this.uniform());
    for (let i = 0; i < noisy.length; i++) noisy[i] = (sum[i]! + noisy[i]!) / expectedUpdates;
    return noisy;
  }

  /** The returned aggregator also counts the updates it scaled down to C (`clipped`). */
  begin(context: RoundContext): RoundAggregator & { readonly clipped: number } {
    const accumulator = createFloat64Accumulator(context.globalWeights.length);
    let count = 0;
    let clipped = 0;
    return {
      sumOfSquares: (delta) => accumulator.sumOfSquares(delta),
      add: (update) => {
        if (update.delta.length !== accumulator.length) throw new RangeError(`length mismatch: ${accumulator.length} vs ${update.delta.length}`);
        const clip = this.clipScale(update);
        accumulator.addScaled(update.delta, clip.scale);
        count++;
        if (clip.clipped) clipped++;
      },
      get count() {
        return count;
      },
      get clipped() {
        return clipped;
      },
      finish: () => {
        if (count === 0) throw new Error('no updates to aggregate');
        return this.inner.finish(context, this.noisyMean(accumulator.sum), count);
      },
    };
  }

  split(): SplitAggregation {
    return {
      prepare: (update) => {
        const prepared = this.inner.prepare(update);
        return { delta: prepared.delta, numExamples: 1, scale: this.clipScale(prepared).scale };
      },
      // The combined mean is Σ clip(Δ_k) / updates (every weight 1): back to the sum, then noise once.
      finish: (context, mean, updates) => {
        const sum = new Float64Array(mean.length);
        for (let i = 0; i < sum.length; i++) sum[i] = mean[i]! * updates;
        return this.inner.finish(context, this.noisyMean(sum), updates);
      },
    };
  }
}
