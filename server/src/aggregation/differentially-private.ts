import type { TrainingPlan } from '@flock/client-sdk/protocol';
import { cryptoUniform, fillGaussian, type UniformSource } from '@flock/client-sdk/secagg';
import { createFloat64Accumulator, foldInto } from './kernels/float64-accumulator.js';
import { foldSource, type ClientUpdate, type RoundAggregator, type RoundContext, type SplitAggregation, type Strategy } from './strategy.js';
import { l2Norm } from './vector-math.js';

/** What the DP wrapper needs of a round. */
export interface DpAggregationSettings {
  /** C: the L2 norm every update is clipped to. */
  clipNorm: number;
  /** z: the noise on the sum has standard deviation z · C. */
  noiseMultiplier: number;
  /** q · N: the expected number of updates, the fixed denominator of the noisy mean (> 0). */
  expectedUpdates: number;
  /** Adaptive clipping: estimate where C should be next round (noiseMultiplier is then the sum's share, see adaptiveNoise). */
  adaptive?: AdaptiveClipping;
  /**
   * 'distributed': the devices added the noise before secure aggregation masked their inputs
   * (secagg/distributed-noise.ts), so the sum arrives noised and only the fixed denominator is
   * applied here. Default 'central': the noise is added here.
   */
  noise?: 'central' | 'distributed';
}

/** Andrew et al. 2021, "Differentially Private Learning with Adaptive Clipping". */
export interface AdaptiveClipping {
  /** γ: the share of updates that should be within C. */
  targetQuantile: number;
  /** η: the geometric step of C. */
  learningRate: number;
  /** σ_b: standard deviation of the noise on the count of updates within C. */
  countNoiseStd: number;
}

/** Updates with a norm within C by this relative margin were not clipped (a clipped one has norm C up to rounding). */
const UNCLIPPED_MARGIN = 1e-6;

/**
 * Splits a round's noise multiplier z between the sum and the count of unclipped updates so that
 * both together are as private as the Gaussian mechanism with z alone (Andrew et al. 2021,
 * Theorem 1): z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2). Needs σ_b > z / 2.
 */
export function sumNoiseMultiplier(noiseMultiplier: number, countNoiseStd: number): number {
  const rest = noiseMultiplier ** -2 - (2 * countNoiseStd) ** -2;
  if (!(rest > 0)) throw new RangeError(`the count's noise σ_b = ${countNoiseStd} must exceed z / 2 = ${noiseMultiplier / 2}`);
  return rest ** -0.5;
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
    /** The weighted-mean strategy whose plan and server step the round uses. */
    private readonly base: Strategy,
    readonly settings: DpAggregationSettings,
    private readonly uniform: () => UniformSource = cryptoUniform,
  ) {
    const split = base.split?.() ?? null;
    if (!split)
      throw new RangeError(`differential privacy needs a weighted-mean strategy (fedavg, fedavgm, fedprox, fedadagrad, fedadam, fedyogi), not ${base.name}`);
    const { clipNorm, noiseMultiplier, expectedUpdates } = settings;
    if (!(clipNorm > 0 && Number.isFinite(clipNorm))) throw new RangeError(`clipNorm must be positive and finite, got ${clipNorm}`);
    if (!(noiseMultiplier >= 0 && Number.isFinite(noiseMultiplier)))
      throw new RangeError(`noiseMultiplier must be finite and non-negative, got ${noiseMultiplier}`);
    if (!(expectedUpdates > 0 && Number.isFinite(expectedUpdates))) throw new RangeError(`expectedUpdates must be positive, got ${expectedUpdates}`);
    this.name = base.name;
    this.inner = split;
  }

  /** The inner strategy's plan, with the clip bound the SDK applies before upload. */
  configurePlan(plan: TrainingPlan): TrainingPlan {
    return { ...this.base.configurePlan(plan), clipNorm: this.settings.clipNorm };
  }

  /**
   * The scale that brings scale · delta within C (1 when it already is), whether this clipped it,
   * and whether the update was within C as it arrived (`update.norm`, before the intake's scale):
   * what adaptive clipping counts. An SDK clips to C before upload, so an update that arrives with
   * norm C was clipped on the device.
   */
  private clipScale(update: ClientUpdate): { scale: number; clipped: boolean; unclipped: boolean } {
    const { clipNorm } = this.settings;
    const given = update.scale ?? 1;
    const raw = update.norm ?? l2Norm(update.delta);
    const norm = given * raw;
    const unclipped = raw < clipNorm * (1 - UNCLIPPED_MARGIN);
    if (norm <= clipNorm) return { scale: given, clipped: false, unclipped };
    return { scale: given * (clipNorm / norm), clipped: true, unclipped };
  }

  /**
   * The next C: C · exp(−η (b̃ − γ)) with b̃ = (unclipped + N(0, σ_b²)) / expected updates, the
   * noisy share of updates that were within C. Undefined without adaptive clipping.
   */
  private nextClipNorm(unclipped: number): number | undefined {
    const { adaptive, clipNorm, expectedUpdates } = this.settings;
    if (!adaptive) return undefined;
    const noise = fillGaussian(new Float64Array(1), adaptive.countNoiseStd, this.uniform())[0]!;
    const share = (unclipped + noise) / expectedUpdates;
    return clipNorm * Math.exp(-adaptive.learningRate * (share - adaptive.targetQuantile));
  }

  /** (sum + noise) / expected updates; with distributed noise the sum already holds it. */
  private noisyMean(sum: Float64Array): Float64Array {
    const { clipNorm, noiseMultiplier, expectedUpdates, noise = 'central' } = this.settings;
    const noisy = noise === 'central' ? fillGaussian(new Float64Array(sum.length), noiseMultiplier * clipNorm, this.uniform()) : new Float64Array(sum.length);
    for (let i = 0; i < noisy.length; i++) noisy[i] = (sum[i]! + noisy[i]!) / expectedUpdates;
    return noisy;
  }

  /** The returned aggregator also counts the updates it scaled down to C (`clipped`). */
  begin(context: RoundContext): RoundAggregator & { readonly clipped: number } {
    const accumulator = createFloat64Accumulator(context.globalWeights.length);
    let count = 0;
    let clipped = 0;
    let unclipped = 0;
    return {
      sumOfSquares: (delta) => accumulator.sumOfSquares(delta),
      add: (update) => {
        const clip = this.clipScale(update);
        // A compressed upload is folded from its bytes (clipScale reads its measured norm, not the delta).
        foldInto(accumulator, foldSource(update), clip.scale);
        count++;
        if (clip.clipped) clipped++;
        if (clip.unclipped) unclipped++;
      },
      get count() {
        return count;
      },
      get clipped() {
        return clipped;
      },
      finish: () => {
        if (count === 0) throw new Error('no updates to aggregate');
        const result = this.inner.finish(context, this.noisyMean(accumulator.sum), count);
        const nextClipNorm = this.nextClipNorm(unclipped);
        return nextClipNorm === undefined ? result : { ...result, nextClipNorm };
      },
    };
  }

  /** Null with adaptive clipping: the partials do not carry the count of unclipped updates. */
  split(): SplitAggregation | null {
    if (this.settings.adaptive) return null;
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
