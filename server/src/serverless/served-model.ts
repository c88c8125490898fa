/** The model a serverless package serves: one version, loaded once per instance (cold start), predicting in-process. */
import * as tf from '@tensorflow/tfjs';
import { loadLayersModelFromParts, readModelFromDisk } from '../models/tfjs-format.js';
import { signatureOf } from '../serving/model-signature.js';
import type { ModelSignature } from '../serving/worker-messages.js';

export interface ServedModel {
  version: number;
  signature: ModelSignature;
  /** `rows` rows of the model's single input, row-major; one flat array per output. */
  predict(rows: number, input: Float32Array): Float32Array[];
}

/** Loads a model.json and its weights from disk (validated as the coordinator validates a registration). */
export async function loadServedModel(modelJsonPath: string, version: number): Promise<ServedModel> {
  const model = await loadLayersModelFromParts(await readModelFromDisk(modelJsonPath));
  const signature = signatureOf(model);
  const inputShape = model.inputs[0]!.shape.slice(1).map((d) => d ?? 1);
  return {
    version,
    signature,
    predict(rows, input) {
      return tf.tidy(() => {
        const result = model.predict(tf.tensor(input, [rows, ...inputShape], 'float32'));
        return (Array.isArray(result) ? result : [result]).map((tensor) => tensor.dataSync() as Float32Array);
      });
    },
  };
}
