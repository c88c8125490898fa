/** A loaded model's inputs and outputs as the inference API names them (pure; shared by the inference worker and the serverless handler). */
import type { LayersModel } from '@tensorflow/tfjs';
import type { ModelSignature } from './worker-messages.js';

/**
 * Tensor names are positional (`input`, `output`; `output_1`, ... when there are more), not tfjs's
 * layer names: tfjs renames a model's input layer when a second version with the same topology is
 * loaded in the same thread (`dense_input_1`), and clients must not see names change across versions.
 */
export function signatureOf(model: Pick<LayersModel, 'inputs' | 'outputs'>): ModelSignature {
  const dims = (shape: (number | null)[]): number[] => shape.map((d) => (d === null ? -1 : d));
  const name = (base: string, i: number, count: number): string => (count === 1 || i === 0 ? base : `${base}_${i}`);
  return {
    inputs: model.inputs.map((input, i) => ({ name: name('input', i, model.inputs.length), shape: dims(input.shape) })),
    outputs: model.outputs.map((output, i) => ({ name: name('output', i, model.outputs.length), shape: dims(output.shape) })),
  };
}
