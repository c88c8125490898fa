import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { storedModelFromInitial } from '../src/core/model.js';

describe('initial models', () => {
  it('takes a tf.LayersModel of its own TensorFlow.js copy', async () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2 })] });
    const stored = await storedModelFromInitial(model, null);
    expect(stored.weightSpecs.map((spec) => spec.shape)).toEqual([[3, 2], [2]]);
    model.dispose();
  });

  it('names a second copy of TensorFlow.js when the app passes a model built by it', async () => {
    // What a LayersModel of another tfjs copy looks like from here: the methods, not the class.
    const foreign = { getWeights: () => [], toJSON: () => ({}), predict: () => null } as unknown as tf.LayersModel;
    await expect(storedModelFromInitial(foreign, null)).rejects.toThrow(/another copy of @tensorflow\/tfjs .*npm ls @tensorflow\/tfjs/);
  });
});
