import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFlock } from '../cli/harness.js';
import { startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { makeDelta, ProtocolClient } from '../support/protocol-client.js';

let coordinator: TestCoordinator;

beforeAll(async () => {
  coordinator = await startTestCoordinator();
});
afterAll(async () => {
  await coordinator?.dispose();
});

describe('the flock CLI against the real coordinator', () => {
  it('reads the token file in the data dir, runs a round with --wait, lists and rolls back models', async () => {
    // As an operator would: FLOCK_DATA_DIR points at the coordinator's data dir; no token in env.
    const env = { FLOCK_URL: coordinator.url, FLOCK_DATA_DIR: coordinator.dataDir };
    const { writeFileSync } = await import('node:fs');
    writeFileSync(`${coordinator.dataDir}/operator-token`, `${coordinator.config.operatorToken}\n`);

    const status = await runFlock(['status'], { env });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/Model\s+v1 \(initial, test accuracy \d+\.\d+%/);
    expect(status.stdout).not.toContain(coordinator.config.operatorToken);

    const devices = await Promise.all([0, 1].map(() => ProtocolClient.connect(coordinator.url)));
    await waitFor(
      () => coordinator.api<{ eligible: number }>('/api/clients'),
      (r) => r.body.eligible === 2,
      5000,
    );
    const uploads = Promise.all(
      devices.map(async (device, k) => {
        const configuration = await device.configurations.next();
        const model = await device.fetchModel(configuration.modelVersion);
        await device.upload(configuration, model, makeDelta(model, k), 40);
      }),
    );
    const round = await runFlock(['round', 'start', '--min-clients', '2', '--target-clients', '2', '--over-selection', '1', '--wait'], { env });
    await uploads;
    expect(round.code, round.stderr).toBe(0);
    expect(round.stdout).toMatch(/committed/);

    const models = await runFlock(['model', 'list', '--json'], { env });
    expect(models.code).toBe(0);
    expect((JSON.parse(models.stdout) as { version: number }[]).map((m) => m.version)).toEqual([2, 1]);

    const rollback = await runFlock(['model', 'rollback', '1'], { env });
    expect(rollback.code, rollback.stderr).toBe(0);
    const current = await coordinator.api<{ version: number; source: string; parentVersion: number }>('/api/models/current');
    expect(current.body).toMatchObject({ version: 3, source: 'rollback', parentVersion: 2 });

    const failed = await runFlock(['round', 'start', '--min-clients', '3', '--selection-timeout', '0.5', '--wait'], { env });
    expect(failed.code).toBe(1);
    expect(failed.stdout + failed.stderr).toMatch(/selection timed out/);
    devices.forEach((d) => d.disconnect());
  });

  it('runs a DP round (round start --dp-*) and reads the ledger (dp status)', async () => {
    const env = { FLOCK_URL: coordinator.url, FLOCK_OPERATOR_TOKEN: coordinator.config.operatorToken };
    const partial = await runFlock(['round', 'start', '--dp-noise-multiplier', '1'], { env });
    expect(partial.code).toBe(2);
    expect(partial.stderr).toMatch(/a DP round needs all of --dp-noise-multiplier, --dp-clip-norm, --dp-sampling-rate/);
    const noiseAlone = await runFlock(['round', 'start', '--dp-noise', 'distributed'], { env });
    expect(noiseAlone.code).toBe(2);
    expect(noiseAlone.stderr).toMatch(/--dp-noise needs a DP round/);
    expect((await runFlock(['round', 'start', '--dp-noise', 'local'], { env })).stderr).toMatch(/Allowed choices are central, distributed/);
    const dpFlags = ['--dp-noise-multiplier', '1', '--dp-clip-norm', '1', '--dp-sampling-rate', '1'];
    const notSecure = await runFlock(['round', 'start', ...dpFlags, '--dp-noise', 'distributed'], { env });
    expect(notSecure.code).toBe(1);
    expect(notSecure.stderr).toMatch(/turn secureAggregation on/);

    const device = await ProtocolClient.connect(coordinator.url);
    await waitFor(
      () => coordinator.api<{ eligible: number }>('/api/clients'),
      (r) => r.body.eligible === 1,
      5000,
    );
    const upload = (async () => {
      const configuration = await device.configurations.next();
      expect(configuration.plan.clipNorm).toBe(0.5);
      const model = await device.fetchModel(configuration.modelVersion);
      await device.upload(configuration, model, makeDelta(model, 3), 40);
    })();
    const args = ['round', 'start', '--min-clients', '1', '--dp-noise-multiplier', '1.5', '--dp-clip-norm', '0.5', '--dp-sampling-rate', '1', '--wait'];
    const round = await runFlock(args, { env });
    await upload;
    expect(round.code, round.stderr).toBe(0);
    expect(round.stdout).toMatch(/committed/);

    const ledger = await runFlock(['dp', 'status', '--json'], { env });
    expect(ledger.code, ledger.stderr).toBe(0);
    const expected = await runFlock(['dp', 'epsilon', '--noise-multiplier', '1.5', '--sampling-rate', '1', '--rounds', '1', '--delta', '1e-5', '--json']);
    const status = JSON.parse(ledger.stdout) as { spent: { epsilon: number; dpRounds: number }; currentProtected: boolean };
    expect(status.spent.dpRounds).toBe(1);
    expect(status.spent.epsilon).toBeCloseTo((JSON.parse(expected.stdout) as { epsilon: number }).epsilon, 10);
    // The first test rolled back to version 1 (no device data), which took its plain round out of the lineage.
    expect(status.currentProtected).toBe(true);
    const text = await runFlock(['dp', 'status'], { env });
    expect(text.stdout).toMatch(/spent: ε = [\d.]+ at δ = 0\.00001 over 1 DP round\(s\)\nno budget/);
    device.disconnect();
  });
});
