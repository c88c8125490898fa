/**
 * Whether a device adopts a new global model: it tests the model on its held-out local data
 * against the personalized model it uses (Wang et al. 2019) and keeps its own when the global one
 * is worse by more than a tolerance.
 */
import { DEFAULT_ADOPTION_METRIC, DEFAULT_ADOPTION_TOLERANCE } from './defaults.js';
import type { EvaluationResult } from './training.js';

export interface AdoptionInput {
  /** The new global model on local held-out data. */
  global: EvaluationResult;
  /** The personalized model in use on the same data; null when the device has none. */
  personal: EvaluationResult | null;
}

export interface AdoptionDecision {
  adopt: boolean;
  /** Short explanation for logs and events. */
  reason: string;
}

export type AdoptionPolicy = (input: AdoptionInput) => AdoptionDecision;

export interface ToleranceAdoptionOptions {
  /** Largest allowed drop of the metric from the personal model to the global one (default DEFAULT_ADOPTION_TOLERANCE, 0.02). */
  tolerance?: number;
  /** 'accuracy' (higher is better, default) or 'loss' (lower is better). */
  metric?: 'accuracy' | 'loss';
}

/** Adopt unless the global model is worse than the personal one by more than `tolerance`. */
export function toleranceAdoption(options: ToleranceAdoptionOptions = {}): AdoptionPolicy {
  const tolerance = options.tolerance ?? DEFAULT_ADOPTION_TOLERANCE;
  const metric = options.metric ?? DEFAULT_ADOPTION_METRIC;
  if (!(tolerance >= 0)) throw new RangeError('adoption tolerance must be >= 0');
  return ({ global, personal }) => {
    if (!personal) return { adopt: true, reason: 'no personalized model yet' };
    if (!Number.isFinite(global[metric])) return { adopt: false, reason: `global ${metric} is not finite` };
    if (!Number.isFinite(personal[metric])) return { adopt: true, reason: `personal ${metric} is not finite` };
    // Positive drop = the global model is worse.
    const drop = metric === 'accuracy' ? personal.accuracy - global.accuracy : global.loss - personal.loss;
    const adopt = drop <= tolerance + 1e-12;
    const fmt = (value: number): string => value.toFixed(4);
    return {
      adopt,
      reason: adopt
        ? `global ${metric} ${fmt(global[metric])} within ${tolerance} of personal ${fmt(personal[metric])}`
        : `global ${metric} ${fmt(global[metric])} worse than personal ${fmt(personal[metric])} by more than ${tolerance}`,
    };
  };
}
