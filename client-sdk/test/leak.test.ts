/**
 * Tensor hygiene over the client's whole cycle: fetch, train, upload, then test, adopt and fine-tune
 * the published result, 100 times. Every round commits a new version (received + delta) and
 * publishes it, so each cycle allocates and must free models, optimizers, examples and gradients.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ClientEvent, type EvaluationReport, type UpdateUpload } from '../src/index.js';
import { makeModel } from './support/fixtures.js';
import { testClient, until } from './support/clients.js';
import { TestCoordinator } from './support/test-coordinator.js';

let coordinator: TestCoordinator;

beforeAll(async () => {
  coordinator = await TestCoordinator.start();
  const model = makeModel(7);
  await coordinator.addModel(model);
  model.dispose();
});

afterAll(async () => {
  await coordinator.close();
});

it('tf.memory().numTensors after 100 rounds equals the count after 1', { timeout: 240_000 }, async () => {
  const test = testClient(coordinator, { examples: 60, seed: 9, personalization: { fineTuneEpochs: 1, batchSize: 10 } });
  await test.client.start();
  const clientId = test.client.clientId!;
  await coordinator.waitForConnection(clientId);
  // The welcome's version is tested first; wait for that to settle.
  await coordinator.waitFor(ClientEvent.evaluation, (_, id) => id === clientId);
  await until(() => test.client.status === 'waiting');

  const counts: number[] = [];
  const bytes = tf.memory().numBytes;
  let lastBytes = bytes;
  for (let round = 1; round <= 100; round++) {
    const version = coordinator.currentVersion!;
    const roundId = `leak-${round}`;
    coordinator.configure(clientId, {
      roundId,
      modelVersion: version,
      plan: { epochs: 1, batchSize: 10, learningRate: 0.05, proximalMu: round % 2 ? 0.1 : 0 },
      deadlineAt: Date.now() + 60_000,
    });
    const update = await coordinator.waitFor(ClientEvent.update, (payload) => (payload as UpdateUpload).roundId === roundId);
    const next = coordinator.commitDelta(version, update.payload as UpdateUpload);
    coordinator.closeRound(roundId, 'committed', next);
    coordinator.publish(next);
    await coordinator.waitFor(ClientEvent.evaluation, (payload, id) => id === clientId && (payload as EvaluationReport).modelVersion === next);
    await until(() => test.client.status === 'waiting');
    counts.push(tf.memory().numTensors);
    lastBytes = tf.memory().numBytes;
  }
  expect(test.errors).toEqual([]);
  expect(counts).toHaveLength(100);
  expect(counts[99]).toBe(counts[0]);
  expect(new Set(counts).size).toBe(1);
  expect(lastBytes).toBe(bytes);
  await test.client.dispose();
});
