import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  copyLayerWeights,
  dittoUpdate,
  evaluateModel,
  l2Norm,
  layerOfWeight,
  personalizationPlanSchema,
  personalizationSettings,
  personalLayersProblem,
  personalTensorMask,
  readWeights,
  resolveLoss,
  sharedTensors,
  storedModelFromLayersModel,
  computeDelta,
  trainOnlyLayers,
  widenSharedDelta,
  MemoryModelStore,
} from '../src/index.js';
import { LocalState } from '../src/core/local-state.js';
import { makeModel, oneHot, seededShuffle, syntheticRows } from './support/fixtures.js';

const loss = resolveLoss('categoricalCrossentropy');

afterEach(() => {
  tf.disposeVariables();
});

const specs = [
  { name: 'body/kernel', shape: [2, 3] },
  { name: 'body/bias', shape: [3] },
  { name: 'head/kernel', shape: [3, 1] },
  { name: 'head/bias', shape: [1] },
];

describe('personal layers on the wire (protocol)', () => {
  it('masks the tensors of the named layers and widens a shared-only delta with zeros there', () => {
    expect(layerOfWeight('dense_Dense1/kernel')).toBe('dense_Dense1');
    const mask = personalTensorMask(specs, ['head']);
    expect(mask).toEqual([false, false, true, true]);
    expect(sharedTensors(['a', 'b', 'c', 'd'], mask)).toEqual(['a', 'b']);
    const shared = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const full = widenSharedDelta(
      shared,
      specs.map((s) => s.shape),
      mask,
    );
    expect(Array.from(full)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0, 0]);
    expect(() =>
      widenSharedDelta(
        shared.subarray(1),
        specs.map((s) => s.shape),
        mask,
      ),
    ).toThrow(RangeError);
  });

  it('refuses layer names the model lacks, and a split that shares nothing', () => {
    expect(personalLayersProblem(specs, ['head'])).toBeNull();
    expect(personalLayersProblem(specs, ['tail'])).toMatch(/not in the model: tail/);
    expect(personalLayersProblem(specs, ['body', 'head'])).toMatch(/nothing would be shared/);
    expect(personalizationPlanSchema.safeParse({ method: 'personal-layers' }).success).toBe(false);
    expect(personalizationPlanSchema.safeParse({ method: 'ditto', dittoLambda: -1 }).success).toBe(false);
    expect(personalizationPlanSchema.safeParse({ method: 'ditto', dittoLambda: 0.5 }).success).toBe(true);
  });

  it("the plan's choice overrides the app's, field by field", () => {
    expect(personalizationSettings(undefined, null)).toMatchObject({ method: 'fine-tune', personalLayers: [] });
    expect(personalizationSettings({ method: 'ditto', dittoLambda: 2 }, null)).toMatchObject({ method: 'ditto', dittoLambda: 2 });
    expect(personalizationSettings({ method: 'ditto', dittoLambda: 2 }, { method: 'personal-layers', personalLayers: ['x'] })).toMatchObject({
      method: 'personal-layers',
      personalLayers: ['x'],
    });
    expect(() => personalizationSettings({ method: 'personal-layers' }, null)).toThrow(/personalLayers/);
  });
});

describe('Ditto and personal layers (local training)', () => {
  const rows = syntheticRows(60, 3, 0);
  const xs = () => tf.tensor2d(rows.xs);
  const ys = () => tf.tensor2d(oneHot(rows.labels));

  /** Ditto from v = w for 5 full-batch epochs with `lambda`; returns ||v - w|| and F(w). */
  async function dittoDistance(lambda: number): Promise<{ distance: number; globalLoss: number }> {
    const global = makeModel(7);
    const personal = makeModel(7);
    const [x, y] = [xs(), ys()];
    const globalLoss = (await evaluateModel(global, x, y, loss)).loss;
    const spec = storedModelFromLayersModel(global, 1).weightSpecs;
    await dittoUpdate(personal, global, lambda, x, y, { epochs: 20, batchSize: 60, learningRate: 0.2 }, { loss, shuffle: seededShuffle(1) });
    const distance = l2Norm(computeDelta(readWeights(personal, spec), readWeights(global, spec)));
    tf.dispose([x, y]);
    global.dispose();
    personal.dispose();
    return { distance, globalLoss };
  }

  it('keeps the personal model within the proximal bound sqrt(2 F(w) / lambda), closer as lambda grows', async () => {
    const free = await dittoDistance(0);
    const loose = await dittoDistance(0.5);
    const tight = await dittoDistance(5);
    expect(loose.distance).toBeLessThanOrEqual(Math.sqrt((2 * loose.globalLoss) / 0.5));
    expect(tight.distance).toBeLessThanOrEqual(Math.sqrt((2 * tight.globalLoss) / 5));
    expect(free.distance).toBeGreaterThan(loose.distance);
    expect(loose.distance).toBeGreaterThan(tight.distance);
    expect(tight.distance).toBeGreaterThan(0);
  });

  it('trains only the personal layers, and copies them onto another model of the same shapes', async () => {
    const model = makeModel(3);
    const [x, y] = [xs(), ys()];
    const spec = storedModelFromLayersModel(model, 1).weightSpecs;
    const before = readWeights(model, spec);
    const head = model.layers[1]!.name;
    await trainOnlyLayers(model, [head], x, y, { epochs: 2, batchSize: 20, learningRate: 0.1 }, { loss });
    const after = readWeights(model, spec);
    expect(after[0]).toEqual(before[0]); // the shared body did not move
    expect(after[1]).toEqual(before[1]);
    expect(after[2]).not.toEqual(before[2]);
    expect(model.layers.every((layer) => layer.trainable)).toBe(true); // restored
    // Models built from one topology share layer names (as every device's do); here: a model with the same names.
    const other = tf.sequential({
      layers: model.layers.map((layer, i) =>
        tf.layers.dense({
          name: layer.name,
          units: (layer as unknown as { units: number }).units,
          activation: i === 0 ? 'relu' : 'softmax',
          ...(i === 0 ? { inputShape: [8] } : {}),
        }),
      ),
    });
    expect(copyLayerWeights(model, other, [head])).toBe(true);
    const copied = readWeights(other, storedModelFromLayersModel(other, 1).weightSpecs);
    expect(copied[2]).toEqual(after[2]);
    expect(copied[0]).not.toEqual(after[0]);
    expect(copyLayerWeights(model, makeModel(9, 8), [head])).toBe(false); // other shapes (and names): nothing copied
    tf.dispose([x, y]);
    model.dispose();
    other.dispose();
  });
});

describe("the round plan's personalization on the device", () => {
  it('is remembered across restarts, and a malformed stored value is forgotten rather than trusted', async () => {
    const store = new MemoryModelStore();
    const state = new LocalState({ store, initialModel: undefined, initialModelVersion: null, reportError: () => undefined });
    await state.load();
    expect(state.planPersonalization).toBeNull();
    await state.rememberPlanPersonalization({ method: 'personal-layers', personalLayers: ['output'] });
    const restarted = new LocalState({ store, initialModel: undefined, initialModelVersion: null, reportError: () => undefined });
    await restarted.load();
    expect(restarted.planPersonalization).toEqual({ method: 'personal-layers', personalLayers: ['output'] });
    await store.saveState({ lastEvaluatedVersion: null, lastEvaluation: null, planPersonalization: { method: 'steal-weights' } as never });
    const tampered = new LocalState({ store, initialModel: undefined, initialModelVersion: null, reportError: () => undefined });
    await tampered.load();
    expect(tampered.planPersonalization).toBeNull();
    await Promise.all([state.dispose(), restarted.dispose(), tampered.dispose()]);
  });
});
