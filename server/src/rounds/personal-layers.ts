/**
 * The round plan's personal layers (personal-layers personalization, client-sdk/src/protocol/personalization.ts):
 * which layers the coordinator leaves out of uploads and aggregation, and whether they fit the model.
 */
import { personalLayersProblem, type TrainingPlan, type WeightSpec } from '@flock/client-sdk/protocol';

/** The layers that stay on the devices in a round with this plan (empty: every tensor is shared). */
export function planPersonalLayers(plan: TrainingPlan): string[] {
  const personalization = plan.personalization;
  return personalization?.method === 'personal-layers' ? [...(personalization.personalLayers ?? [])] : [];
}

/** Why the plan's personal layers cannot split the model the round trains; null when they can (or there are none). */
export function personalLayersProblemOf(plan: TrainingPlan, weightSpecs: readonly WeightSpec[]): string | null {
  const layers = planPersonalLayers(plan);
  return layers.length > 0 ? personalLayersProblem(weightSpecs, layers) : null;
}
