import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeWeights } from '@flock/client-sdk/protocol';
import { ClusterLink } from '../../src/cluster/cluster-link.js';
import { loadConfig } from '../../src/config/config.js';
import { RedisDeviceDirectory } from '../../src/devices/redis-device-directory.js';
import { FlockEventBus } from '../../src/events/event-bus.js';
import { MetricsService } from '../../src/metrics/metrics.service.js';
import type { LeaderMessage, RoundDescriptor } from '../../src/rounds/cluster-messages.js';
import { ClusterRounds } from '../../src/rounds/cluster-rounds.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { newRound } from '../storage/fixtures.js';
import { waitFor } from '../support/coordinator.js';

/** Two processes' ClusterRounds on real Redis (FLOCK_TEST_REDIS_URL; unreachable fails, CI starts it) and one SQLite file. */
const REDIS_URL = process.env.FLOCK_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `flock-test-${randomBytes(4).toString('hex')}:`;
const SHAPES = [[2, 2], [1]];
const dir = mkdtempSync(join(tmpdir(), 'flock-cluster-rounds-'));
const config = loadConfig({}, { dataDir: dir, operatorToken: 'operator-token-0123456789', clientToken: 'client-token-0123456789ab', testSet: 'none' });
const storage = new SqliteStorage(join(dir, 'flock.db'));
const descriptor: RoundDescriptor = {
  roundId: 'r1',
  leader: 'leader',
  baseVersion: 1,
  weightSpecs: SHAPES.map((shape, i) => ({ name: `w${i}`, shape, dtype: 'float32' as const })),
  maxUpdateNorm: null,
  differentialPrivacy: null,
  expectedUpdates: null,
  exampleCap: 100,
  updateBound: null,
  strategy: 'fedavg',
  strategyOptions: {},
};

function upload(values: number[], numExamples: number, roundId = 'r1') {
  return {
    roundId,
    modelVersion: 1,
    numExamples,
    trainLoss: 0.5,
    delta: encodeWeights([new Float32Array(values.slice(0, 4)), new Float32Array(values.slice(4))], SHAPES),
  };
}

async function processOf() {
  const link = await ClusterLink.connect({ redisUrl: REDIS_URL, prefix: PREFIX, processTtlMs: 60_000 });
  const rounds = new ClusterRounds(link, config, storage, new MetricsService());
  await rounds.start();
  const heard: LeaderMessage[] = [];
  rounds.onLeaderMessage((message) => heard.push(message));
  return { link, rounds, heard, directory: new RedisDeviceDirectory(link, new FlockEventBus(), new MetricsService()) };
}

let leader: Awaited<ReturnType<typeof processOf>>;
let other: Awaited<ReturnType<typeof processOf>>;

beforeAll(async () => {
  await storage.init();
  await storage.createRound(newRound('r1', { status: 'configuring' }));
  [leader, other] = await Promise.all([processOf(), processOf()]);
  for (const [id, p] of [
    ['c1', other],
    ['c2', leader],
    ['c3', other],
  ] as const)
    await p.directory.connect(id, `socket-${id}`, { address: '10.0.0.1', userKey: null });
  await leader.directory.assign(['c1', 'c2', 'c3'], 'r1');
});
afterAll(async () => {
  const keys = await leader.link.redis.keys(`${PREFIX}*`);
  if (keys.length > 0) await leader.link.redis.del(keys);
  await Promise.all([leader.link.close(), other.link.close()]);
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('ClusterRounds: uploads folded where they arrive, partials combined by the leader', () => {
  it('admits each participant once across processes, tells the leader every answer, and hands partials over at collect', async () => {
    expect(await other.rounds.handleUpload('c1', upload([1, 2, 3, 4, 5], 10))).toMatchObject({ accepted: false, reason: 'round_not_open' }); // not open yet
    await storage.updateRound('r1', { status: 'reporting' });
    await leader.rounds.open(descriptor, 60_000);
    // (a round not open used up nothing: c1 still has its one upload)
    expect(await other.rounds.handleUpload('c1', upload([1, 2, 3, 4, 5], 10))).toEqual({ accepted: true });
    expect(await leader.rounds.handleUpload('c1', upload([1, 2, 3, 4, 5], 10))).toMatchObject({ accepted: false, reason: 'duplicate_upload' });
    expect(await leader.rounds.handleUpload('stranger', upload([1, 2, 3, 4, 5], 10))).toMatchObject({ accepted: false, reason: 'not_selected' });
    expect(await leader.rounds.handleUpload('c2', upload([0, 0, 0, 0, 30], 30))).toEqual({ accepted: true });
    const wrongShape = { ...upload([1, 2, 3, 4, 5], 10), delta: encodeWeights([new Float32Array([1, 2, 3])], [[3]]) };
    expect(await other.rounds.handleUpload('c3', wrongShape)).toMatchObject({ accepted: false, reason: 'shape_mismatch' });

    await waitFor(
      () => leader.heard.length,
      (n) => n === 6,
      5000,
      'the answers at the leader',
    );
    expect(leader.heard.map((m) => [m.type, 'clientId' in m ? m.clientId : null, m.type === 'rejected' ? m.reason : null])).toEqual([
      ['rejected', 'c1', 'round_not_open'],
      ['accepted', 'c1', null],
      ['rejected', 'c1', 'duplicate_upload'],
      ['rejected', 'stranger', 'not_selected'],
      ['accepted', 'c2', null],
      ['rejected', 'c3', 'shape_mismatch'],
    ]);
    expect(leader.heard.filter((m) => m.type !== 'abandon' && m.admitted).map((m) => ('clientId' in m ? m.clientId : null))).toEqual(['c1', 'c2', 'c3']);

    const { partials, lost } = await leader.rounds.collect('r1', 5);
    expect(lost).toEqual([]);
    const sums = partials.map((p) => [p.count, p.totalWeight, Array.from(p.sum)]).sort((a, b) => Number(a[1]) - Number(b[1]));
    expect(sums).toEqual([
      [1, 10, [10, 20, 30, 40, 50]],
      [1, 30, [0, 0, 0, 0, 900]],
    ]);
    // sealed: the round takes no more uploads, on any process
    expect(await other.rounds.handleUpload('c3', upload([1, 2, 3, 4, 5], 10))).toMatchObject({ accepted: false, reason: 'round_closed' });
    await leader.rounds.close('r1');
    expect(
      await leader.link.redis.exists([
        leader.link.keys.roundOpen('r1'),
        leader.link.keys.roundAnswered('r1'),
        leader.link.keys.partial('r1', other.link.processId),
      ]),
    ).toBe(0);
  });
});
