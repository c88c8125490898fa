import { describe, expect, it } from 'vitest';
import { FlockEventBus } from '../../src/events/event-bus.js';

describe('FlockEventBus', () => {
  it('delivers typed payloads to the listeners of an event until they are removed', () => {
    const bus = new FlockEventBus();
    const seen: string[] = [];
    const listener = ({ clientId }: { clientId: string }) => void seen.push(clientId);
    bus.on('device.disconnected', listener);
    bus.emit('device.disconnected', { clientId: 'a' });
    bus.emit('version.evaluated', { version: 3 }); // another event: not delivered to it
    bus.off('device.disconnected', listener);
    bus.emit('device.disconnected', { clientId: 'b' });
    expect(seen).toEqual(['a']);
  });

  it('runs every listener even when one throws or rejects, and never throws to the emitter', async () => {
    const bus = new FlockEventBus();
    const seen: number[] = [];
    bus.on('version.committed', () => {
      throw new Error('listener bug');
    });
    bus.on('version.committed', async () => {
      throw new Error('async listener bug');
    });
    bus.on('version.committed', ({ version }) => void seen.push(version));
    expect(() => bus.emit('version.committed', { version: 2, parentVersion: 1, roundId: 'r' })).not.toThrow();
    await new Promise((resolve) => setImmediate(resolve)); // the rejection is handled, not left unhandled
    expect(seen).toEqual([2]);
  });

  it('lets a listener remove itself while the event is being delivered', () => {
    const bus = new FlockEventBus();
    let calls = 0;
    const once = () => {
      calls++;
      bus.off('device.available', once);
    };
    bus.on('device.available', once);
    bus.emit('device.available', { count: 1 });
    bus.emit('device.available', { count: 1 });
    expect(calls).toBe(1);
  });
});
