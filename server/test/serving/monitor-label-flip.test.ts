/**
 * The deviation monitor against a real attack: the default MNIST 2NN (version 1) serves live
 * traffic over /v2; three real SDK devices then train a round over socket.io with flipped labels
 * (label -> 9 - label) at a high learning rate, and the coordinator commits their update as
 * version 2. On the same live traffic, version 2's predicted classes move away from version 1's:
 * PSI crosses the threshold and the configured actions happen once, the webhook is called and the
 * model is rolled back (version 3 has version 1's weights and answers as it did).
 *
 * The live traffic is skewed, real test images of digits 0-4 only, as an application's traffic
 * usually is: a class permutation such as 9 - label keeps a uniform histogram of predictions
 * uniform, so on perfectly balanced traffic a histogram-based signal (PSI, Jensen-Shannon) could
 * not see it; shadow mode's disagreement would.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FederatedClient, ManualCondition } from '@flock/client-sdk';
import type { ModelVersionMeta, ServingStatus, V2InferResponse } from '../../src/contract/index.js';
import { readMnist } from '../../src/datasets/mnist.js';
import { CLIENT_TOKEN, EXACT_AVERAGES, startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { mnistSlice, recordingTransport } from '../support/sdk-device.js';
import { servingConfig, servingReady, startWebhookRecorder, v2, type WebhookRecorder } from './serving-helpers.js';

const DEVICES = 3;
const TRAIN_PER_DEVICE = 200;
const ROWS_PER_REQUEST = 100;
const flip = (label: number): number => 9 - label;

describe('serving monitor against label-flipping devices', () => {
  let coordinator: TestCoordinator;
  let webhook: WebhookRecorder;
  const devices: FederatedClient[] = [];
  /** Live traffic: real test images of digits 0-4, with their labels. */
  const traffic = { rows: [] as number[][][], labels: [] as number[][] };

  beforeAll(async () => {
    webhook = await startWebhookRecorder();
    const monitor = {
      ...servingConfig().monitor,
      minSamples: 200,
      psiThreshold: 1,
      actions: ['alert' as const, 'rollback' as const],
      webhookUrl: webhook.url,
    };
    // Bounded influence off: on by default it clips this round's update to norm 1 (a trial: 5% of the
    // rows flipped), a defence with its own tests (security/influence.test.ts); here the attack must
    // get through, so that the monitor is the last line.
    coordinator = await startTestCoordinator({ ...EXACT_AVERAGES, serving: servingConfig({ monitor }) });
    await servingReady(coordinator.url);

    const test = await readMnist('test', { start: 0, count: 1000 });
    const rows: number[][] = [];
    const labels: number[] = [];
    for (let i = 0; i < test.count && rows.length < 2 * ROWS_PER_REQUEST; i++) {
      if (test.labels[i]! > 4) continue;
      rows.push(Array.from(test.images.subarray(i * 784, (i + 1) * 784)));
      labels.push(test.labels[i]!);
    }
    for (let r = 0; r < 2; r++) {
      traffic.rows.push(rows.slice(r * ROWS_PER_REQUEST, (r + 1) * ROWS_PER_REQUEST));
      traffic.labels.push(labels.slice(r * ROWS_PER_REQUEST, (r + 1) * ROWS_PER_REQUEST));
    }
  }, 60_000);
  afterAll(async () => {
    await Promise.all(devices.map((device) => device.dispose()));
    await coordinator?.dispose();
    await webhook?.close();
  });

  /** The live traffic once (two requests of 100 rows); the versions that answered and each row's predicted class. */
  const serve = async (): Promise<{ versions: string[]; classes: number[] }> => {
    const versions: string[] = [];
    const classes: number[] = [];
    for (const rows of traffic.rows) {
      const { status, body } = await v2<V2InferResponse>(coordinator.url, '/v2/models/global/infer', {
        inputs: [{ name: 'input', shape: [rows.length, 784], datatype: 'FP32', data: rows }],
      });
      expect(status).toBe(200);
      versions.push(body.model_version);
      const probabilities = body.outputs[0]!.data!;
      for (let row = 0; row < rows.length; row++) {
        const scores = probabilities.slice(row * 10, (row + 1) * 10);
        classes.push(scores.indexOf(Math.max(...scores)));
      }
    }
    return { versions, classes };
  };
  const share = (classes: number[], expected: (label: number) => number): number =>
    classes.filter((c, i) => c === expected(traffic.labels.flat()[i]!)).length / classes.length;

  it('a round of label-flipping devices trips PSI: webhook alert, then rollback to the previous weights', async () => {
    const before = await serve();
    expect(before.versions).toEqual(['1', '1']);
    // Version 1 (the default model, trained on 600 examples) mostly gets these digits right.
    expect(share(before.classes, (label) => label)).toBeGreaterThan(0.6);

    const mnist = await readMnist('train', { start: 0, count: DEVICES * TRAIN_PER_DEVICE });
    for (let k = 0; k < DEVICES; k++) {
      devices.push(
        new FederatedClient({
          serverUrl: coordinator.url,
          clientToken: CLIENT_TOKEN,
          dataSource: mnistSlice(mnist, k, TRAIN_PER_DEVICE, 0, flip),
          conditions: [new ManualCondition('idle', 'yes'), new ManualCondition('charging', 'yes'), new ManualCondition('unmetered', 'yes')],
          socketOptions: { transports: ['websocket'] },
          // Each device from its own loopback address, as phones would connect; what they send is not checked here.
          ...recordingTransport(() => undefined),
        }),
      );
    }
    await Promise.all(devices.map((device) => device.start()));
    await coordinator.eligible(DEVICES);
    const roundId = await coordinator.startRound({
      minClients: DEVICES,
      targetClients: DEVICES,
      overSelection: 1,
      epochs: 2,
      batchSize: 10,
      learningRate: 0.1,
    });
    const round = await coordinator.roundEnded(roundId, 45_000);
    expect(round).toMatchObject({ status: 'committed', committedVersion: 2 });
    expect(round.metrics).toMatchObject({ accepted: DEVICES });
    await waitFor(
      () => coordinator.api<ServingStatus>('/api/serving'),
      (r) => r.body.currentVersion === 2,
      20_000,
      'version 2 to be served',
    );

    // The poisoned version answers the same traffic with the flipped classes.
    const poisoned = await serve();
    expect(poisoned.versions).toEqual(['2', '2']);
    expect(share(poisoned.classes, flip)).toBeGreaterThan(0.5);

    const status = await waitFor(
      () => coordinator.api<ServingStatus>('/api/serving'),
      (r) => r.body.actions.length === 2 && r.body.currentVersion === 3,
      20_000,
      'the actions',
    );
    expect(status.body.actions.map((action) => [action.action, action.signal, action.version])).toEqual(
      expect.arrayContaining([
        ['alert', 'psi', 2],
        ['rollback', 'psi', 2],
      ]),
    );
    for (const action of status.body.actions) expect(action.value).toBeGreaterThan(1);
    expect(status.body.actions.find((action) => action.action === 'rollback')!.outcome).toMatch(/rolled back: version 3 has version 1's weights/);
    expect(webhook.received).toEqual([
      expect.objectContaining({ event: 'flock.serving.deviation', version: 2, previousVersion: 1, signal: 'psi', threshold: 1 }),
    ]);
    const { body: models } = await coordinator.api<ModelVersionMeta[]>('/api/models');
    expect(models[0]).toMatchObject({ version: 3, source: 'rollback', metrics: expect.objectContaining({ rolledBackFrom: 1 }) as unknown });

    // The restored version answers the traffic exactly as version 1 did.
    const after = await serve();
    expect(after.versions).toEqual(['3', '3']);
    expect(after.classes).toEqual(before.classes);
  }, 90_000);
});
