/**
 * Centralized evaluation: a real coordinator with FLOCK_TEST_SET=mnist tests every new version on
 * the 10,000 MNIST test images in its worker thread and stores the numbers with the version. The
 * test recomputes them independently: it loads the version over the REST API with tfjs and
 * evaluates it in this process.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateModel, resolveLoss } from '@flock/client-sdk';
import type { RoundConfiguration } from '@flock/client-sdk/protocol';
import { testSetMetricsSchema, type ModelVersionMeta, type RoundDetails } from '../../src/contract/index.js';
import { mnistTensors, readMnist } from '../../src/datasets/mnist.js';
import { build2NN } from '../../src/models/default-model.js';
import { modelToParts } from '../../src/models/tfjs-format.js';
import { OPERATOR_TOKEN, startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { makeDelta, ProtocolClient } from '../support/protocol-client.js';

let coordinator: TestCoordinator;
let test: { xs: tf.Tensor2D; ys: tf.Tensor2D };
const auth = { Authorization: `Bearer ${OPERATOR_TOKEN}` };

/** flock_model_test_accuracy as /metrics exports it. */
async function gauge(): Promise<number> {
  const text = (await coordinator.api<string>('/metrics')).body;
  return Number(/^flock_model_test_accuracy (\S+)$/m.exec(text)?.[1]);
}

const version = async (v: number): Promise<ModelVersionMeta> => (await coordinator.api<ModelVersionMeta>(`/api/models/${v}`)).body;
const tested = (v: number): Promise<ModelVersionMeta> =>
  waitFor(
    () => version(v),
    (meta) => typeof meta.metrics.testAccuracy === 'number',
    30_000,
    `version ${v} to be tested`,
  );

/** The version's test accuracy and loss, computed here from what the REST API serves. */
async function evaluateHere(v: number): Promise<{ accuracy: number; loss: number }> {
  const model = await tf.loadLayersModel(`${coordinator.url}/api/models/${v}/model.json`, { requestInit: { headers: auth } });
  try {
    return await evaluateModel(model, test.xs, test.ys, resolveLoss('categoricalCrossentropy'), 1000);
  } finally {
    model.dispose();
  }
}

async function register(model: tf.LayersModel): Promise<number> {
  const result = await model.save(tf.io.http(`${coordinator.url}/api/models`, { requestInit: { headers: auth } }));
  model.dispose();
  const response = result.responses![0]!;
  expect(response.status).toBe(201);
  return ((await response.json()) as ModelVersionMeta).version;
}

beforeAll(async () => {
  coordinator = await startTestCoordinator({ testSet: 'mnist' });
  test = mnistTensors(await readMnist('test'));
}, 120_000);
afterAll(async () => {
  await coordinator?.dispose();
  tf.dispose([test?.xs, test?.ys]);
});

describe('the coordinator tests every new version on its test set', () => {
  it("stores the committed version's test accuracy and loss, equal to an independent evaluation, and exports it", async () => {
    // Version 1 was tested when the coordinator trained it: the gauge shows it from the start.
    expect(await gauge()).toBe((await version(1)).metrics.testAccuracy);
    const devices = await Promise.all([0, 1].map(() => ProtocolClient.connect(coordinator.url)));
    try {
      await waitFor(
        () => coordinator.api<{ eligible: number }>('/api/clients'),
        (r) => r.body.eligible === 2,
        10_000,
        'eligible devices',
      );
      const { body: round } = await coordinator.api<RoundDetails>('/api/rounds', {
        method: 'POST',
        body: JSON.stringify({ minClients: 2, targetClients: 2, overSelection: 1, deadlineSeconds: 30, epochs: 1, batchSize: 10, learningRate: 0.1 }),
      });
      await Promise.all(
        devices.map(async (device, i) => {
          const configuration: RoundConfiguration = await device.configurations.next(0);
          const model = await device.fetchModel(configuration.modelVersion);
          expect((await device.upload(configuration, model, makeDelta(model, i + 1, 0.002), 600)).accepted).toBe(true);
        }),
      );
      const ended = await waitFor(
        () => coordinator.api<RoundDetails>(`/api/rounds/${round.id}`),
        (r) => r.body.status === 'committed',
        20_000,
        'the commit',
      );
      const committed = ended.body.committedVersion!;

      const meta = await tested(committed);
      expect(meta.metrics).toMatchObject({ testExamples: 10_000, testSet: 'mnist-test' });
      expect(testSetMetricsSchema.safeParse(meta.metrics).success).toBe(true); // the contract's shape of the test-set numbers
      const here = await evaluateHere(committed);
      expect(meta.metrics.testAccuracy).toBeCloseTo(here.accuracy, 6);
      expect(meta.metrics.testLoss).toBeCloseTo(here.loss, 4);
      // The first version keeps the numbers it was trained with; the perturbed one scores differently.
      expect((await version(1)).metrics.testAccuracy).not.toBe(meta.metrics.testAccuracy);

      expect(await gauge()).toBe(meta.metrics.testAccuracy);
    } finally {
      devices.forEach((device) => device.disconnect());
    }
  });

  it('tests registered models, skips those that are not MNIST classifiers, and keeps the numbers of a rolled-back version', async () => {
    const small = tf.sequential({ layers: [tf.layers.dense({ inputShape: [8], units: 3, activation: 'softmax' })] });
    const notMnist = await register(small);
    const untrained = await register(build2NN(7));
    // The thread works in order: once the untrained 2NN is tested, the small model was handled.
    const meta = await tested(untrained);
    expect(meta.metrics.testAccuracy).toBeCloseTo((await evaluateHere(untrained)).accuracy, 6);
    expect(meta.metrics.testAccuracy).toBeLessThan(0.3); // an untrained classifier: about chance
    expect((await version(notMnist)).metrics.testAccuracy).toBeUndefined();

    const { body: rolledBack } = await coordinator.api<ModelVersionMeta>('/api/models/1/rollback', { method: 'POST' });
    expect(rolledBack.metrics).toMatchObject({ rolledBackFrom: 1, testAccuracy: (await version(1)).metrics.testAccuracy });
    expect(await gauge()).toBe(rolledBack.metrics.testAccuracy);
  });

  it('tests a first version registered from a file (FLOCK_INITIAL_MODEL) once the coordinator starts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flock-initial-'));
    const parts = await modelToParts(build2NN(11));
    writeFileSync(join(dir, 'weights.bin'), parts.weights);
    writeFileSync(
      join(dir, 'model.json'),
      JSON.stringify({ format: 'layers-model', modelTopology: parts.topology, weightsManifest: [{ paths: ['weights.bin'], weights: parts.weightSpecs }] }),
    );
    const other = await startTestCoordinator({ testSet: 'mnist', initialModelPath: join(dir, 'model.json') });
    try {
      const { body } = await waitFor(
        () => other.api<ModelVersionMeta>('/api/models/1'),
        (r) => typeof r.body.metrics.testAccuracy === 'number',
        30_000,
        'version 1 to be tested',
      );
      expect(body.metrics).toMatchObject({ initialModel: 'file', testExamples: 10_000, testSet: 'mnist-test' });
    } finally {
      await other.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
