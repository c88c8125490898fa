/**
 * Shadow mode and the retrain action: with every request also run on the previous version
 * (FLOCK_SERVING_SHADOW_FRACTION=1), a new version that disagrees with it on more than the
 * threshold's share of rows gets the `retrain` action: a round starts (with the default settings;
 * no device is connected here, so it waits in selection).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoundDetails, ServingStatus, V2InferResponse } from '../../src/contract/index.js';
import { waitFor, type TestCoordinator } from '../support/coordinator.js';
import { registerTinyModel, servingConfig, servingReady, startServingCoordinator, tinyRows, v2 } from './serving-helpers.js';

describe('shadow mode', () => {
  let coordinator: TestCoordinator;

  beforeAll(async () => {
    const monitor = { ...servingConfig().monitor, minSamples: 50, disagreementThreshold: 0.3, shadowFraction: 1, actions: ['retrain' as const] };
    coordinator = await startServingCoordinator({ monitor });
    await servingReady(coordinator.url);
  }, 60_000);
  afterAll(() => coordinator?.dispose());

  const infer = async (seed: number): Promise<string> => {
    const { status, body } = await v2<V2InferResponse>(coordinator.url, '/v2/models/global/infer', {
      inputs: [{ name: 'input', shape: [50, 16], datatype: 'FP32', data: tinyRows(50, seed) }],
    });
    expect(status).toBe(200);
    return body.model_version;
  };

  it('measures the new version against the previous one on the same requests, and starts a round past the threshold', async () => {
    expect(await infer(1)).toBe('1');
    // Another random initialisation: its predictions have nothing to do with version 1's.
    expect(await registerTinyModel(coordinator, 99)).toBe(2);
    await waitFor(
      () => coordinator.api<ServingStatus>('/api/serving'),
      (r) => r.body.currentVersion === 2,
      20_000,
      'version 2 to be served',
    );
    for (let i = 0; i < 6; i++) expect(await infer(10 + i)).toBe('2');

    const status = await waitFor(
      () => coordinator.api<ServingStatus>('/api/serving'),
      (r) => r.body.actions.length > 0,
      20_000,
      'the retrain action',
    );
    const stats = status.body.versions.find((v) => v.version === 2)!;
    expect(stats.shadowCompared).toBeGreaterThanOrEqual(100);
    // No device has tested it (no device is connected).
    expect(stats).toMatchObject({ deviceEvaluations: 0, deviceAccuracy: null });
    expect(stats.shadowDisagreed / stats.shadowCompared).toBeGreaterThan(0.3);
    // Shadow rows are not counted as version 1's predictions.
    expect(status.body.versions.find((v) => v.version === 1)!.predictions).toBe(50);
    const [action] = status.body.actions;
    expect(action).toMatchObject({ version: 2, signal: 'disagreement', threshold: 0.3, action: 'retrain' });
    const roundId = /started round ([0-9a-f-]{36})/.exec(action!.outcome)?.[1];
    expect(roundId, action!.outcome).toBeDefined();
    const round = await coordinator.api<RoundDetails>(`/api/rounds/${roundId}`);
    expect(round.status).toBe(200);
    expect(round.body.baseVersion).toBe(2);
    await coordinator.api(`/api/rounds/${roundId}/cancel`, { method: 'POST' });
  }, 60_000);
});
