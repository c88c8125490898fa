import { describe, expect, it } from 'vitest';
import { InMemoryDeviceDirectory } from '../../src/devices/in-memory-device-directory.js';
import { FlockEventBus } from '../../src/events/event-bus.js';
import type { FlockEvents } from '../../src/events/flock-events.js';
import { MetricsService } from '../../src/metrics/metrics.service.js';

const ELIGIBLE = { eligible: true, reasons: [] };
const ON_BATTERY = { eligible: false, reasons: ['not_charging' as const] };
const INFO = { address: '127.0.0.1', userKey: null };

function directory() {
  const bus = new FlockEventBus();
  const metrics = new MetricsService();
  const available: number[] = [];
  const disconnected: string[] = [];
  bus.on('device.available', ({ count }: FlockEvents['device.available']) => void available.push(count));
  bus.on('device.disconnected', ({ clientId }) => void disconnected.push(clientId));
  return { devices: new InMemoryDeviceDirectory(bus, metrics), metrics, available, disconnected };
}

describe('InMemoryDeviceDirectory', () => {
  it('counts connected, eligible and in-round devices as they change, and announces availability', async () => {
    const { devices, metrics, available, disconnected } = directory();
    await devices.connect('a', 's1', INFO);
    await devices.connect('b', 's2', INFO);
    await devices.connect('c', 's3', INFO);
    expect(await devices.counts()).toEqual({ connected: 3, eligible: 0, inRound: 0 });
    await devices.setConditions('a', ELIGIBLE);
    await devices.setConditions('b', ELIGIBLE);
    await devices.setConditions('b', ELIGIBLE); // no change: announced once
    await devices.setConditions('c', ON_BATTERY);
    expect(available).toEqual([1, 1]);
    expect(await devices.counts()).toEqual({ connected: 3, eligible: 2, inRound: 0 });
    expect(await devices.availableCount()).toBe(2);
    expect((await devices.available()).map((device) => device.clientId).sort()).toEqual(['a', 'b']);
    expect((await metrics.registry.getSingleMetric('flock_eligible_clients')?.get())?.values[0]?.value).toBe(2);

    await devices.assign(['a', 'b'], 'r1');
    expect(await devices.counts()).toEqual({ connected: 3, eligible: 2, inRound: 2 });
    expect(await devices.availableCount()).toBe(0);
    await devices.setConditions('a', ON_BATTERY);
    await devices.setConditions('a', ELIGIBLE); // eligible again, but still in the round: not available
    expect(available).toEqual([1, 1]);

    expect(await devices.disconnect('b', 's2')).toBe(true);
    expect(disconnected).toEqual(['b']);
    await devices.release('r1');
    expect(available).toEqual([1, 1, 1]); // only a came back
    expect(await devices.counts()).toEqual({ connected: 2, eligible: 1, inRound: 0 });
    expect(await devices.available()).toEqual([{ clientId: 'a', address: '127.0.0.1', userKey: null }]);
  });

  it('keeps a device in its round when it reconnects on a new socket, and ignores the old socket closing', async () => {
    const { devices, disconnected } = directory();
    await devices.connect('a', 's1', INFO);
    await devices.setConditions('a', ELIGIBLE);
    await devices.assign(['a'], 'r1');
    expect(await devices.connect('a', 's2', INFO)).toBe('s1');
    expect(await devices.disconnect('a', 's1')).toBe(false);
    expect(disconnected).toEqual([]);
    // conditions are unknown again on the new socket
    expect(await devices.counts()).toEqual({ connected: 1, eligible: 0, inRound: 1 });
    await devices.setConditions('a', ELIGIBLE);
    expect(await devices.availableCount()).toBe(0);
    await devices.release('r1');
    expect(await devices.availableCount()).toBe(1);
  });

  it('lists available devices with what they connected with (address, hashed app user)', async () => {
    const { devices } = directory();
    await devices.connect('a', 's1', { address: '10.0.0.1', userKey: 'user-1' });
    await devices.connect('b', 's2', { address: '10.0.0.2', userKey: null });
    await devices.setConditions('a', ELIGIBLE);
    await devices.setConditions('b', ELIGIBLE);
    expect((await devices.available()).sort((x, y) => x.clientId.localeCompare(y.clientId))).toEqual([
      { clientId: 'a', address: '10.0.0.1', userKey: 'user-1' },
      { clientId: 'b', address: '10.0.0.2', userKey: null },
    ]);
    // A reconnection brings its own info.
    await devices.connect('a', 's3', { address: '10.0.0.9', userKey: 'user-1' });
    await devices.setConditions('a', ELIGIBLE);
    expect((await devices.available()).find((device) => device.clientId === 'a')).toEqual({ clientId: 'a', address: '10.0.0.9', userKey: 'user-1' });
  });
});
