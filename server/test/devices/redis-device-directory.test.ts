import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterLink } from '../../src/cluster/cluster-link.js';
import { RedisDeviceDirectory } from '../../src/devices/redis-device-directory.js';
import { CONNECT } from '../../src/devices/redis-device-scripts.js';
import { FlockEventBus } from '../../src/events/event-bus.js';
import { MetricsService } from '../../src/metrics/metrics.service.js';
import { waitFor } from '../support/coordinator.js';

/** Real Redis (FLOCK_TEST_REDIS_URL, default 127.0.0.1:6379): unreachable fails the suite, CI starts it. */
const REDIS_URL = process.env.FLOCK_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `flock-test-${randomBytes(4).toString('hex')}:`;
const ELIGIBLE = { eligible: true, reasons: [] };
const ON_BATTERY = { eligible: false, reasons: ['not_charging' as const] };

/** One coordinator process's view: its link, directory and bus, with what the bus heard. */
async function process_(ttlMs = 60_000) {
  const link = await ClusterLink.connect({ redisUrl: REDIS_URL, prefix: PREFIX, processTtlMs: ttlMs });
  const bus = new FlockEventBus();
  const directory = new RedisDeviceDirectory(link, bus, new MetricsService());
  await directory.start();
  const available: number[] = [];
  const disconnected: string[] = [];
  bus.on('device.available', ({ count }) => void available.push(count));
  bus.on('device.disconnected', ({ clientId }) => void disconnected.push(clientId));
  return { link, directory, available, disconnected };
}

let a: Awaited<ReturnType<typeof process_>>;
let b: Awaited<ReturnType<typeof process_>>;

beforeAll(async () => {
  a = await process_();
  b = await process_(600);
});
afterAll(async () => {
  const leftovers = await a.link.redis.keys(`${PREFIX}*`);
  if (leftovers.length > 0) await a.link.redis.del(leftovers);
  for (const p of [a, b]) {
    p?.directory.stop();
    await p?.link.close();
  }
});

describe('RedisDeviceDirectory: the devices of several coordinator processes in one Redis', () => {
  it('counts devices of every process, selects from all of them and tells every process of availability and disconnections', async () => {
    expect(await a.directory.connect('d1', 's1', { address: '10.0.0.1', userKey: 'u1' })).toBeNull();
    await b.directory.connect('d2', 's2', { address: '10.0.0.2', userKey: null });
    await b.directory.connect('d3', 's3', { address: '10.0.0.3', userKey: null });
    expect(await a.directory.counts()).toEqual({ connected: 3, eligible: 0, inRound: 0 });
    await a.directory.setConditions('d1', ELIGIBLE);
    await b.directory.setConditions('d2', ELIGIBLE);
    await b.directory.setConditions('d2', ELIGIBLE); // no change: announced once
    await b.directory.setConditions('d3', ON_BATTERY);
    // both processes hear both availabilities (the leader may be either)
    await waitFor(
      () => [a.available.length, b.available.length],
      ([x, y]) => x === 2 && y === 2,
      5000,
      'availability events',
    );
    expect(await b.directory.counts()).toEqual({ connected: 3, eligible: 2, inRound: 0 });
    expect(await b.directory.availableCount()).toBe(2);
    expect((await a.directory.available()).sort((x, y) => x.clientId.localeCompare(y.clientId))).toEqual([
      { clientId: 'd1', address: '10.0.0.1', userKey: 'u1' },
      { clientId: 'd2', address: '10.0.0.2', userKey: null },
    ]);

    await a.directory.assign(['d1', 'd2'], 'r1');
    expect(await b.directory.counts()).toEqual({ connected: 3, eligible: 2, inRound: 2 });
    expect(await b.directory.availableCount()).toBe(0);
    await a.directory.setConditions('d1', ON_BATTERY);
    await a.directory.setConditions('d1', ELIGIBLE); // eligible again but in the round: not available
    expect(await a.directory.availableCount()).toBe(0);

    expect(await b.directory.disconnect('d2', 'other-socket')).toBe(false); // an older socket closing
    expect(await b.directory.disconnect('d2', 's2')).toBe(true);
    await waitFor(
      () => a.disconnected,
      (d) => d.includes('d2'),
      5000,
      'the disconnection to reach the other process',
    );
    await a.directory.release('r1');
    await waitFor(
      () => b.available,
      (av) => av.length === 3 && av[2] === 1,
      5000,
      'the release to announce d1',
    );
    expect(await a.directory.counts()).toEqual({ connected: 2, eligible: 1, inRound: 0 });
    expect((await a.directory.available()).map((d) => d.clientId)).toEqual(['d1']);
  });

  it('keeps a device in its round when it reconnects through another process, and answers the replaced socket', async () => {
    await a.directory.connect('d4', 's4', { address: '10.0.0.4', userKey: null });
    await a.directory.setConditions('d4', ELIGIBLE);
    await a.directory.assign(['d4'], 'r2');
    expect(await b.directory.connect('d4', 's4b', { address: '10.0.0.4', userKey: null })).toBe('s4');
    expect(await a.directory.disconnect('d4', 's4')).toBe(false);
    expect((await b.directory.counts()).inRound).toBe(1);
    await b.directory.disconnect('d4', 's4b');
    await a.directory.release('r2');
  });

  it('purges the devices of a process that stopped beating, announcing each as disconnected', async () => {
    // A process that registered devices and died (kill -9): its heartbeat key is gone, its devices remain.
    const dead = 'dead-process';
    await a.link.redis.sAdd(a.link.keys.processes, dead);
    for (const id of ['g1', 'g2']) await a.link.redis.eval(CONNECT, { arguments: [PREFIX, id, `socket-${id}`, dead, '10.9.9.9', ''] });
    await a.directory.setConditions('g1', ELIGIBLE);
    const before = (await a.directory.counts()).connected;
    // b beats every 200 ms and purges the dead process's devices
    await waitFor(
      () => a.directory.counts(),
      (c) => c.connected === before - 2,
      5000,
      'the ghosts to be purged',
    );
    await waitFor(
      () => a.disconnected,
      (d) => d.includes('g1') && d.includes('g2'),
      5000,
      'ghost disconnections',
    );
    expect(await a.directory.availableCount()).toBe(1); // d1 alone
    expect(await a.link.redis.sIsMember(a.link.keys.processes, dead)).toBe(0);
  });

  it('tells a process taken for dead (its heartbeat lapsed) so that its devices reconnect', async () => {
    let evicted = 0;
    b.link.onEvicted(() => evicted++);
    await b.link.redis.del(b.link.keys.processAlive(b.link.processId)); // as if it had stalled past its TTL
    await waitFor(
      () => evicted,
      (n) => n === 1,
      5000,
      'the eviction to be noticed',
    );
    expect(await b.link.isAlive(b.link.processId)).toBe(true); // and it beats again
  });
});
