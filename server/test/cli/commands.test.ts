import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ModelVersionMeta, RoundDetails, RoundRecord } from '../../src/contract/index.js';
import type { StatusView } from '../../src/cli/format.js';
import { ACTIVE_ROUND_ID, COMMITTED_ROUND_ID, FAILED_ROUND_ID, NEW_ROUND_ID, startContractServer, type ContractServer } from './contract-server.js';
import { runFlock } from './harness.js';

let server: ContractServer;

beforeEach(async () => {
  server = await startContractServer();
});
afterEach(async () => {
  await server.close();
});

/** The CLI pointed at the contract stand-in, token from the environment. */
function flock(...args: string[]) {
  return runFlock([...args, '--url', server.url], { env: { FLOCK_OPERATOR_TOKEN: server.token } });
}

function paths(): string[] {
  return server.requests.map((r) => `${r.method} ${r.path}`);
}

describe('flock status', () => {
  it('summarizes the coordinator, the model and its accuracy, clients and the active round', async () => {
    const { code, stdout, stderr } = await flock('status');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain(server.url);
    expect(stdout).toContain('up 1h 02m');
    expect(stdout).toContain('v3 (round, test accuracy 97.12%, test loss 0.0934)');
    expect(stdout).toContain('12 connected, 9 eligible');
    expect(stdout).toContain(`${ACTIVE_ROUND_ID} (reporting, 7/13 reported, 6 accepted`);
    expect(paths()).toEqual(['GET /api/status', 'GET /api/models/current', 'GET /api/rounds?limit=1']);
    // The token travels on the authenticated routes.
    expect(server.requests.every((r) => r.authorization === `Bearer ${server.token}`)).toBe(true);
  });

  it('shows the last round when none is active, and copes with no model yet', async () => {
    server.state.activeRound = false;
    server.state.noModel = true;
    const { code, stdout } = await flock('status');
    expect(code).toBe(0);
    expect(stdout).toMatch(/Model\s+none yet/);
    expect(stdout).toMatch(/Active round\s+none/);
    expect(stdout).toContain(`Last round    ${COMMITTED_ROUND_ID} (committed v3, ended 2026-05-04 10:12:41Z)`);
  });

  it('--json prints the raw responses', async () => {
    const { code, stdout } = await flock('--json', 'status');
    expect(code).toBe(0);
    const view = JSON.parse(stdout) as StatusView;
    expect(view.url).toBe(server.url);
    expect(view.status.connectedClients).toBe(12);
    expect(view.status.activeRound).toBe(ACTIVE_ROUND_ID);
    expect(view.model?.metrics.testAccuracy).toBe(0.9712);
    expect(view.latestRound?.id).toBe(ACTIVE_ROUND_ID);
  });
});

describe('flock round list / show / cancel', () => {
  it('lists rounds newest first with their key numbers', async () => {
    const { code, stdout } = await flock('round', 'list');
    expect(code).toBe(0);
    for (const id of [ACTIVE_ROUND_ID, COMMITTED_ROUND_ID, FAILED_ROUND_ID]) expect(stdout).toContain(id);
    expect(stdout.indexOf(ACTIVE_ROUND_ID)).toBeLessThan(stdout.indexOf(COMMITTED_ROUND_ID));
    expect(stdout).toContain('v2 -> v3'); // committed round: base -> committed version
    expect(stdout).toContain('10/13'); // accepted/selected
    expect(stdout).toContain('6,000'); // examples
    expect(stdout).toContain('0.2134'); // mean train loss
    expect(stdout).toContain('12m 34s'); // 754 s
    expect(stdout).toContain('30.0 s'); // the failed round
    expect(paths()).toEqual(['GET /api/rounds?limit=20']);
  });

  it('passes --limit and --offset, and --json parses', async () => {
    const { code, stdout } = await flock('round', 'list', '--limit', '2', '--offset', '1', '--json');
    expect(code).toBe(0);
    const rounds = JSON.parse(stdout) as RoundRecord[];
    expect(rounds.map((r) => r.id)).toEqual([COMMITTED_ROUND_ID, FAILED_ROUND_ID]);
    expect(paths()).toEqual(['GET /api/rounds?limit=2&offset=1']);
  });

  it('shows a round with rejected-by-reason, dropped, evaluation and transitions', async () => {
    const { code, stdout } = await flock('round', 'show', COMMITTED_ROUND_ID);
    expect(code).toBe(0);
    expect(stdout).toContain('committed');
    expect(stdout).toContain('v3');
    expect(stdout).toContain('3 (version_mismatch 2, non_finite 1)');
    expect(stdout).toContain('3 (conditions_changed 2, deadline 1)');
    expect(stdout).toContain('min 8, target 10, over-selection 1.3');
    expect(stdout).toContain('selection 30.0 s, reporting deadline 2m 00s');
    expect(stdout).toContain('1 epoch(s), batch 10, learning rate 0.05');
    expect(stdout).toContain('6,000');
    expect(stdout).toContain('1.873'); // update norm
    expect(stdout).toContain('9.9 MiB'); // bytes received
    expect(stdout).toContain('42 ms'); // aggregation time
    expect(stdout).toContain('global 96.55% (loss 0.1123), personalized 98.11% (loss 0.0712), 6 adopted');
    expect(stdout).toContain('global median 96.67% (IQR 95.00% to 98.00%), personalized median 98.33% (IQR 97.00% to 99.00%), better than global on 78% of 9');
    expect(stdout).toContain('Transitions');
    expect(stdout).toContain('all selected clients reported');
    expect(stdout).toMatch(/reporting\s+│\s+committing/);
    expect(paths()).toEqual([`GET /api/rounds/${COMMITTED_ROUND_ID}`]);
  });

  it('shows the time left and the norm bound of a live round, and the error of a failed one', async () => {
    const live = await flock('round', 'show', ACTIVE_ROUND_ID);
    expect(live.code).toBe(0);
    expect(live.stdout).toMatch(/Time left\s+│\s+1m 29s/);
    expect(live.stdout).toMatch(/Max update norm\s+│\s+25/);
    expect(live.stdout).toContain('1 (norm_exceeded 1)');
    const failed = await flock('round', 'show', FAILED_ROUND_ID, '--json');
    expect(failed.code).toBe(0);
    const details = JSON.parse(failed.stdout) as RoundDetails;
    expect(details.error).toContain('quorum not reached');
    expect(details.timeLeftMs).toBeNull();
  });

  it('cancels a round in flight', async () => {
    const { code, stdout } = await flock('round', 'cancel', ACTIVE_ROUND_ID);
    expect(code).toBe(0);
    expect(stdout).toContain(`Round ${ACTIVE_ROUND_ID} is now aborted.`);
    expect(stdout).toContain('cancelled by operator');
    expect(paths()).toEqual([`POST /api/rounds/${ACTIVE_ROUND_ID}/cancel`]);
  });

  it('exits 1 with the server message when the round already ended or does not exist', async () => {
    const ended = await flock('round', 'cancel', COMMITTED_ROUND_ID);
    expect(ended.code).toBe(1);
    expect(ended.stdout).toBe('');
    expect(ended.stderr).toContain(`error: round ${COMMITTED_ROUND_ID} already ended (committed) (HTTP 409`);
    const missing = await flock('round', 'show', '00000000-0000-4000-8000-000000000000');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('not found (HTTP 404');
    const malformed = await flock('round', 'show', 'not-a-uuid');
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toContain('round id must be a UUID (HTTP 400');
  });
});

describe('flock round start', () => {
  it('maps every option onto the POST /api/rounds body', async () => {
    server.state.activeRound = false;
    const { code, stdout } = await flock(
      'round',
      'start',
      '--min-clients',
      '8',
      '--target-clients',
      '10',
      '--over-selection',
      '1.3',
      '--deadline',
      '90',
      '--selection-timeout',
      '20',
      '--epochs',
      '5',
      '--batch-size',
      '50',
      '--learning-rate',
      '0.1',
      '--proximal-mu',
      '0.01',
      '--strategy',
      'fedprox',
      '--strategy-options',
      '{"proximalMu": 0.5, "clipNorm": 4}',
      '--max-update-norm',
      '12.5',
      '--personalization',
      '{"method": "personal-layers", "personalLayers": ["output"]}',
    );
    expect(code).toBe(0);
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]!.body).toEqual({
      minClients: 8,
      targetClients: 10,
      overSelection: 1.3,
      deadlineSeconds: 90,
      selectionTimeoutSeconds: 20,
      epochs: 5,
      batchSize: 50,
      learningRate: 0.1,
      proximalMu: 0.01,
      strategy: 'fedprox',
      strategyOptions: { proximalMu: 0.5, clipNorm: 4 },
      maxUpdateNorm: 12.5,
      personalization: { method: 'personal-layers', personalLayers: ['output'] },
    });
    expect(stdout).toContain(`Started round ${NEW_ROUND_ID} (selecting).`);
    expect(stdout).toContain('5 epoch(s), batch 50, learning rate 0.1, proximal mu 0.01');
    expect(stdout).toContain('selection 20.0 s, reporting deadline 1m 30s');
  });

  it('--secure-aggregation alone asks for the defaults, with JSON for its settings', async () => {
    server.state.activeRound = false;
    expect((await flock('round', 'start', '--secure-aggregation')).code).toBe(0);
    expect((await flock('round', 'start', '--secure-aggregation', '{"clipNorm": 5, "phaseSeconds": 20}')).code).toBe(0);
    expect(server.requests.map((request) => request.body)).toEqual([{ secureAggregation: true }, { secureAggregation: { clipNorm: 5, phaseSeconds: 20 } }]);
  });

  it('refuses --strategy-options that are not a JSON object before calling the coordinator', async () => {
    for (const bad of ['{"serverLearningRate": 0.1', '[1, 2]', '0.1']) {
      const { code, stderr } = await flock('round', 'start', '--strategy', 'fedyogi', '--strategy-options', bad);
      expect(code).not.toBe(0);
      expect(stderr).toContain('expected a JSON object');
    }
    expect(server.requests).toHaveLength(0);
  });

  it('sends an empty body when no option is given (server defaults)', async () => {
    server.state.activeRound = false;
    const { code, stdout } = await flock('round', 'start', '--json');
    expect(code).toBe(0);
    expect(server.requests[0]!.body).toEqual({});
    expect((JSON.parse(stdout) as RoundRecord).params.minClients).toBe(2);
  });

  it('exits 1 with the message on 409 (a round is running) and 400 (invalid parameters)', async () => {
    const conflict = await flock('round', 'start');
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toContain(`error: round ${ACTIVE_ROUND_ID} is already in flight (reporting) (HTTP 409 from POST /api/rounds)`);
    server.state.activeRound = false;
    const invalid = await flock('round', 'start', '--min-clients', '10', '--target-clients', '5');
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain('error: targetClients: targetClients must be at least minClients (HTTP 400');
  });

  it('--wait polls until the round commits and prints the result', async () => {
    server.state.activeRound = false;
    const { code, stdout, stderr } = await flock('round', 'start', '--min-clients', '8', '--wait');
    expect(code).toBe(0);
    expect(stderr).toContain(`Started round ${NEW_ROUND_ID} (selecting); waiting`);
    expect(stderr).not.toContain('warning');
    expect(stderr).toContain('selecting -> configuring');
    expect(stderr).toContain('committing -> committed (12/13 reported, 11 accepted)');
    expect(stdout).toContain(`Round ${NEW_ROUND_ID} committed model v4.`);
    expect(stdout).toContain('1 (norm_exceeded 1)');
    expect(stdout).toContain('6,600');
    const polls = paths().filter((p) => p === `GET /api/rounds/${NEW_ROUND_ID}`);
    expect(polls).toHaveLength(5);
  });

  it('--wait warns at once when fewer devices are eligible than the round needs', async () => {
    server.state.activeRound = false;
    const { code, stderr } = await flock('round', 'start', '--min-clients', '10', '--wait');
    expect(code).toBe(0);
    // the fake coordinator has 9 eligible devices; the warning comes before the first poll's news
    expect(stderr).toMatch(
      /warning: 9 eligible device\(s\) connected, the round needs 10 \(minClients\); it waits up to \d+ s for more, then fails\n.*selecting -> configuring/s,
    );
  });

  it('--wait exits 1 when the round fails', async () => {
    server.state.activeRound = false;
    server.state.newRoundScript = ['selecting', 'reporting', 'failed'];
    const { code, stdout, stderr } = await flock('round', 'start', '--wait');
    expect(code).toBe(1);
    expect(stdout).toContain('failed');
    expect(stderr).toContain(`error: round ${NEW_ROUND_ID} failed: quorum not reached before the deadline: 5 valid updates, 8 needed`);
  });

  it('--wait --json prints only the final record on stdout', async () => {
    server.state.activeRound = false;
    server.state.newRoundScript = ['configuring', 'aborted'];
    const { code, stdout } = await flock('round', 'start', '--wait', '--json');
    expect(code).toBe(1);
    const finished = JSON.parse(stdout) as RoundDetails;
    expect(finished.status).toBe('aborted');
    expect(finished.transitions.length).toBeGreaterThan(0);
  });
});

describe('flock model', () => {
  it('lists versions with source, parameters and test accuracy', async () => {
    const { code, stdout } = await flock('model', 'list');
    expect(code).toBe(0);
    expect(stdout).toContain('v3 (current)');
    for (const text of ['97.12%', '95.81%', '91.23%', '199,210', 'initial', 'round', COMMITTED_ROUND_ID]) expect(stdout).toContain(text);
    const json = await flock('model', 'list', '--json');
    expect((JSON.parse(json.stdout) as ModelVersionMeta[]).map((m) => m.version)).toEqual([3, 2, 1]);
  });

  it('shows one version with all its metrics', async () => {
    const { code, stdout } = await flock('model', 'show', '1');
    expect(code).toBe(0);
    expect(stdout).toMatch(/metrics\.testAccuracy\s+│\s+91\.23%/);
    expect(stdout).toMatch(/metrics\.testLoss\s+│\s+0\.3011/);
    expect(stdout).toContain('trained on 2,000 MNIST examples');
    expect(paths()).toEqual(['GET /api/models/1']);
    const missing = await flock('model', 'show', '9');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('model version 9 not found (HTTP 404');
  });

  it('rolls back to an older version', async () => {
    const { code, stdout } = await flock('model', 'rollback', '2');
    expect(code).toBe(0);
    expect(stdout).toContain('Rolled back to v2: the current version is now v4.');
    expect(stdout).toMatch(/Source\s+│\s+rollback/);
    expect(paths()).toEqual(['POST /api/models/2/rollback']);
    const json = await flock('--json', 'model', 'rollback', '2');
    expect(JSON.parse(json.stdout) as ModelVersionMeta).toMatchObject({ version: 4, parentVersion: 2, source: 'rollback' });
  });
});
