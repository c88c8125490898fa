/**
 * The deviation monitor end to end: version 1 serves live traffic; a deliberately degraded version
 * is registered through the models API (its output bias pushes every prediction to class 3, as a
 * round of label-flipping devices would skew it; registered rather than trained, to keep the test
 * short); on the same traffic its predicted-class PSI against version 1 crosses the threshold, and
 * the configured actions happen once: the webhook is called, and the model is rolled back (a new
 * version with version 1's weights, served at once, not judged again).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelVersionMeta, ServingStatus, V2InferResponse } from '../../src/contract/index.js';
import { waitFor, type TestCoordinator } from '../support/coordinator.js';
import {
  registerTinyModel,
  servingConfig,
  servingReady,
  startServingCoordinator,
  startWebhookRecorder,
  tinyRows,
  v2,
  type WebhookRecorder,
} from './serving-helpers.js';

/** Index of the tiny model's output bias for class 3 (after 16x16 + 16 + 16x10 values). */
const CLASS_3_BIAS = 16 * 16 + 16 + 16 * 10 + 3;

describe('serving monitor', () => {
  let coordinator: TestCoordinator;
  let webhook: WebhookRecorder;

  beforeAll(async () => {
    webhook = await startWebhookRecorder();
    const monitor = {
      ...servingConfig().monitor,
      minSamples: 100,
      psiThreshold: 0.5,
      actions: ['alert', 'rollback'] as const,
      webhookUrl: webhook.url,
    };
    coordinator = await startServingCoordinator({ monitor: { ...monitor, actions: [...monitor.actions] } });
    await servingReady(coordinator.url);
  }, 60_000);
  afterAll(async () => {
    await coordinator?.dispose();
    await webhook?.close();
  });

  const traffic = async (seed: number): Promise<string[]> => {
    const versions: string[] = [];
    for (let i = 0; i < 2; i++) {
      const { status, body } = await v2<V2InferResponse>(coordinator.url, '/v2/models/global/infer', {
        inputs: [{ name: 'input', shape: [100, 16], datatype: 'FP32', data: tinyRows(100, seed + i) }],
      });
      expect(status).toBe(200);
      versions.push(body.model_version);
    }
    return versions;
  };

  it('a degraded version trips the PSI threshold: alert to the webhook, rollback to the previous version', async () => {
    expect(await traffic(1)).toEqual(['1', '1']);
    const degraded = await registerTinyModel(coordinator, 1, (weights) => {
      weights[CLASS_3_BIAS] = 50;
    });
    expect(degraded).toBe(2);
    await waitFor(
      () => coordinator.api<ServingStatus>('/api/serving'),
      (r) => r.body.currentVersion === 2,
      20_000,
      'version 2 to be served',
    );
    expect(await traffic(1)).toEqual(['2', '2']);

    const status = await waitFor(
      () => coordinator.api<ServingStatus>('/api/serving'),
      (r) => r.body.actions.length === 2 && r.body.currentVersion === 3,
      20_000,
      'the actions',
    );
    // The deviation shown is now the restored version's (not measured yet); the actions carry version 2's.
    expect(status.body.deviation).toBeNull();
    for (const action of status.body.actions) expect(action.value).toBeGreaterThan(0.5);
    expect(status.body.actions.map((action) => [action.action, action.signal, action.version])).toEqual(
      expect.arrayContaining([
        ['alert', 'psi', 2],
        ['rollback', 'psi', 2],
      ]),
    );
    expect(status.body.actions.find((action) => action.action === 'rollback')!.outcome).toMatch(/rolled back: version 3 has version 1's weights/);
    const v2Stats = status.body.versions.find((stats) => stats.version === 2)!;
    expect(v2Stats.classCounts[3]).toBe(v2Stats.predictions);
    expect(webhook.received).toEqual([
      expect.objectContaining({ event: 'flock.serving.deviation', version: 2, previousVersion: 1, signal: 'psi', threshold: 0.5 }),
    ]);

    const { body: models } = await coordinator.api<ModelVersionMeta[]>('/api/models');
    expect(models[0]).toMatchObject({ version: 3, source: 'rollback', metrics: expect.objectContaining({ rolledBackFrom: 1 }) as unknown });

    // The restored version answers like version 1, and is not judged against the degraded one.
    expect(await traffic(1)).toEqual(['3', '3']);
    const after = await coordinator.api<ServingStatus>('/api/serving');
    expect(after.body.actions).toHaveLength(2);
    expect(after.body.versions.find((stats) => stats.version === 3)!.classCounts).toEqual(
      status.body.versions.find((stats) => stats.version === 1)!.classCounts,
    );

    const metrics = await coordinator.api<string>('/metrics');
    expect(metrics.body).toMatch(/flock_serving_actions_total\{action="rollback",signal="psi",result="ok"\} 1/);
    expect(metrics.body).toMatch(/flock_serving_actions_total\{action="alert",signal="psi",result="ok"\} 1/);
    // The gauges show the served version (3) against the one before it (the degraded 2): far apart too.
    expect(Number(/flock_serving_deviation\{signal="psi"\} ([\d.e+-]+)/.exec(metrics.body)?.[1])).toBeGreaterThan(0.5);
    expect(Number(/flock_serving_deviation\{signal="js"\} ([\d.e+-]+)/.exec(metrics.body)?.[1])).toBeGreaterThan(0.1);
    expect(metrics.body).toMatch(/flock_inference_requests_total\{status="ok"\} 6/);
    expect(metrics.body).toMatch(/flock_serving_model_version 3/);
  }, 90_000);
});
