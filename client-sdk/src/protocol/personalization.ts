/**
 * Personalization on the wire: which method a device uses to keep its own model beside the global
 * one, as the app configures it or a round's plan states it. With `personal-layers` the plan names
 * the layers that stay on the device (FedPer, Arivazhagan et al. 2019; FedRep, Collins et al. 2021):
 * devices upload deltas of the shared tensors only, and the coordinator folds those alone, so every
 * device of the round sends the same tensor list and the personal tensors keep their global value.
 */
import { z } from 'zod';
import { shapeSize, type WeightSpec } from './weights.js';

/**
 * - `fine-tune`: adopt the global model (when it passes the local test) and fine-tune it (Wang et al. 2019).
 * - `ditto`: keep a personal model trained towards the current global one with a proximal term
 *   lambda/2 * ||v - w_global||^2 (Li et al. 2021).
 * - `personal-layers`: the named layers never leave the device; the rest is shared.
 */
export const PERSONALIZATION_METHODS = ['fine-tune', 'ditto', 'personal-layers'] as const;
export type PersonalizationMethod = (typeof PERSONALIZATION_METHODS)[number];

/** The most personal layers a plan may name, and the longest layer name. */
export const PERSONALIZATION_LIMITS = { maxPersonalLayers: 100, maxLayerNameLength: 200, maxDittoLambda: 100 } as const;

export const personalizationPlanSchema = z
  .object({
    method: z.enum(PERSONALIZATION_METHODS),
    /** Ditto's proximal weight lambda (default: the device's, DEFAULT_DITTO_LAMBDA). */
    dittoLambda: z.number().min(0).max(PERSONALIZATION_LIMITS.maxDittoLambda).optional(),
    /** Layer names (tfjs layer `name`s) whose weights stay on the device; required with `personal-layers`. */
    personalLayers: z.array(z.string().min(1).max(PERSONALIZATION_LIMITS.maxLayerNameLength)).max(PERSONALIZATION_LIMITS.maxPersonalLayers).optional(),
  })
  .refine((plan) => plan.method !== 'personal-layers' || (plan.personalLayers?.length ?? 0) > 0, {
    message: 'personal-layers needs at least one layer name in personalLayers',
    path: ['personalLayers'],
  });
export type PersonalizationPlan = z.infer<typeof personalizationPlanSchema>;

/** The layer a weight belongs to: tfjs names weights `<layer>/<weight>` (e.g. `dense_2/kernel`). */
export function layerOfWeight(weightName: string): string {
  const slash = weightName.lastIndexOf('/');
  return slash < 0 ? weightName : weightName.slice(0, slash);
}

/** Per tensor, whether it belongs to one of `personalLayers` (stays on the device). */
export function personalTensorMask(weightSpecs: readonly Pick<WeightSpec, 'name'>[], personalLayers: readonly string[]): boolean[] {
  const personal = new Set(personalLayers);
  return weightSpecs.map((spec) => personal.has(layerOfWeight(spec.name)));
}

/**
 * Why `personalLayers` cannot split this model (a name matches no layer, or nothing would be
 * shared); null when it can. The coordinator refuses such a round at its start.
 */
export function personalLayersProblem(weightSpecs: readonly Pick<WeightSpec, 'name'>[], personalLayers: readonly string[]): string | null {
  const layers = new Set(weightSpecs.map((spec) => layerOfWeight(spec.name)));
  const unknown = personalLayers.filter((name) => !layers.has(name));
  if (unknown.length > 0) return `personal layers not in the model: ${unknown.join(', ')} (its layers: ${[...layers].join(', ')})`;
  if (personalTensorMask(weightSpecs, personalLayers).every(Boolean)) return 'every layer is personal: nothing would be shared';
  return null;
}

/** The tensors of a list that are shared (not personal), in order. */
export function sharedTensors<T>(tensors: readonly T[], mask: readonly boolean[]): T[] {
  if (tensors.length !== mask.length) throw new Error(`sharedTensors: ${tensors.length} tensors but a mask of ${mask.length}`);
  return tensors.filter((_, i) => !mask[i]);
}

/**
 * The coordinator's side: a delta of the shared tensors only (flat, in order) widened to the whole
 * model, with zeros at the personal tensors (every upload of the round leaves them out, so their
 * aggregate is exactly zero: they keep the global value). One allocation of the model's size.
 */
export function widenSharedDelta(shared: Float32Array, shapes: readonly (readonly number[])[], mask: readonly boolean[]): Float32Array {
  if (shapes.length !== mask.length) throw new Error(`widenSharedDelta: ${shapes.length} shapes but a mask of ${mask.length}`);
  let total = 0;
  for (const shape of shapes) total += shapeSize(shape);
  const full = new Float32Array(total);
  let from = 0;
  let to = 0;
  shapes.forEach((shape, i) => {
    const size = shapeSize(shape);
    if (!mask[i]) {
      full.set(shared.subarray(from, from + size), to);
      from += size;
    }
    to += size;
  });
  if (from !== shared.length) throw new RangeError(`widenSharedDelta: the shared delta has ${shared.length} values, the shared shapes need ${from}`);
  return full;
}
