import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelVersionMeta } from '../../src/contract/index.js';
import { setUpCoordinator } from '../../src/simulation/coordinator-setup.js';
import { planSimulation, type ExistingServer } from '../../src/simulation/options.js';
import { CLIENT_TOKEN, OPERATOR_TOKEN, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';

const someServer: ExistingServer = { url: 'http://127.0.0.1:1', clientToken: CLIENT_TOKEN, operatorToken: OPERATOR_TOKEN };

describe('where a simulation starts training (planSimulation)', () => {
  it('defaults to a random 2NN in process and to the current version of an existing coordinator', () => {
    expect(planSimulation({}).options.init).toBe('random');
    expect(planSimulation({ server: someServer }).options.init).toBe('current');
  });

  it('refuses to replace a live model unless asked, and --replace-model anywhere else', () => {
    expect(() => planSimulation({ server: someServer, init: 'random' })).toThrow(
      /would register an untrained 2NN as the live model of http:\/\/127\.0\.0\.1:1; add --replace-model/,
    );
    expect(planSimulation({ server: someServer, init: 'random', replaceModel: true }).options.init).toBe('random');
    expect(() => planSimulation({ replaceModel: true })).toThrow(/--replace-model applies only with --server and --init random/);
    expect(() => planSimulation({ server: someServer, replaceModel: true })).toThrow(/--replace-model applies only/);
    expect(() => planSimulation({ server: someServer, init: 'pretrained' })).toThrow(/--init current/);
  });
});

describe('setUpCoordinator against an existing coordinator', () => {
  let coordinator: TestCoordinator;
  let server: ExistingServer;
  const versions = async (): Promise<ModelVersionMeta[]> => (await coordinator.api<ModelVersionMeta[]>('/api/models')).body;

  beforeAll(async () => {
    coordinator = await startTestCoordinator();
    server = { url: coordinator.url, clientToken: CLIENT_TOKEN, operatorToken: OPERATOR_TOKEN };
  }, 60_000);
  afterAll(() => coordinator.dispose());

  it('by default trains from the live model and registers nothing', async () => {
    const before = await versions();
    const log: string[] = [];
    const setUp = await setUpCoordinator(planSimulation({ server }).options, (message) => log.push(message));
    expect(setUp.initialVersion).toBe(before[0]!.version);
    expect(await versions()).toEqual(before);
    expect(log).toEqual([
      `training from version ${before[0]!.version}, the current model of ${coordinator.url} (it is not replaced; --init random --replace-model would)`,
    ]);
  });

  it('pnpm simulate --server URL --init random (no --replace-model) is a usage error that touches nothing', async () => {
    const before = await versions();
    const cli = resolve(import.meta.dirname, '../../dist/simulation/main.js');
    const run = spawnSync(
      process.execPath,
      [cli, '--server', coordinator.url, '--client-token', CLIENT_TOKEN, '--operator-token', OPERATOR_TOKEN, '--init', 'random', '--rounds', '1'],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`--init random with --server would register an untrained 2NN as the live model of ${coordinator.url}; add --replace-model`);
    expect(await versions()).toEqual(before);
  }, 60_000);

  it('with --init random --replace-model says what it will do, then registers the random 2NN as the current version', async () => {
    const before = await versions();
    const live = before[0]!.version;
    const log: string[] = [];
    const setUp = await setUpCoordinator(planSimulation({ server, init: 'random', replaceModel: true, seed: 7 }).options, (message) => log.push(message));
    const after = await versions();
    expect(after).toHaveLength(before.length + 1);
    expect(after[0]).toMatchObject({ version: setUp.initialVersion, source: 'registered', metrics: { initialModel: 'simulation-random-2nn', seed: 7 } });
    expect(setUp.initialVersion).toBeGreaterThan(live);
    expect(log).toHaveLength(2);
    expect(log[0]).toBe(
      `replacing the live model of ${coordinator.url}: an untrained 2NN (seed 7) becomes its current version, devices train from it, ` +
        `and version ${live} stays in the history (undo: pnpm flock model rollback ${live})`,
    );
    expect(log[1]).toBe(`registered the random 2NN as version ${setUp.initialVersion}`);
  });
});
