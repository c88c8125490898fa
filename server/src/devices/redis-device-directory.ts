import { z } from 'zod';
import type { ConditionsReport } from '@flock/client-sdk/protocol';
import type { ClusterLink } from '../cluster/cluster-link.js';
import { FlockEventBus } from '../events/event-bus.js';
import { moduleLogger, runDetached } from '../logging/logger.js';
import { MetricsService } from '../metrics/metrics.service.js';
import type { AvailableDevice, DeviceCounts, DeviceDirectory, DeviceInfo, DeviceMessage, DeviceMessageArgs, DevicePresence } from './device-directory.js';
import { clientRoom, DEVICES_ROOM, type FlockServer } from './device-sockets.js';
import { ASSIGN, CONNECT, DISCONNECT, PURGE_PROCESS, RELEASE, SET_CONDITIONS } from './redis-device-scripts.js';

const log = moduleLogger('devices');

/** What processes tell each other about devices (channel `events`): the bus events that must reach the round's leader. */
const deviceEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('available'), count: z.number().int().positive() }),
  z.object({ type: z.literal('disconnected'), clientId: z.string().min(1).max(200) }),
]);
type DeviceEvent = z.infer<typeof deviceEventSchema>;

/**
 * The devices of every coordinator process, in Redis (FLOCK_REDIS_URL): a hash per device and sets
 * of ids by state, so counts are SCARDs and every event is one atomic O(1) script
 * (redis-device-scripts.ts). Each device is tagged with the process holding its socket; when a
 * process stops beating (cluster-link.ts) the live ones purge its devices, announcing each as
 * disconnected. Availability and disconnections travel to every process over pub/sub and reach
 * its bus there (also in the process where they happened), so the round's leader hears of devices
 * held by others.
 */
export class RedisDeviceDirectory implements DeviceDirectory, DevicePresence {
  private server: FlockServer | null = null;
  private gauges: NodeJS.Timeout | null = null;

  constructor(
    private readonly link: ClusterLink,
    private readonly bus: FlockEventBus,
    private readonly metrics: MetricsService,
  ) {}

  /** Subscribes to device events and to deaths of processes (whose devices it purges). */
  async start(): Promise<void> {
    await this.link.subscribe(this.link.keys.eventsChannel, (message) => this.heard(message));
    this.link.onProcessLost((processId) => this.purge(processId));
    // Taken for dead, this process's devices were purged: closing their sockets makes them reconnect and register again.
    this.link.onEvicted(() => this.server?.local.disconnectSockets(true));
    // Gauges show the whole cluster; refreshed on a timer rather than on every event.
    this.gauges = setInterval(() => runDetached(log, 'device gauges', this.refreshGauges()), 2000);
  }

  stop(): void {
    if (this.gauges) clearInterval(this.gauges);
  }

  attach(server: FlockServer): void {
    this.server = server;
  }

  async connect(clientId: string, socketId: string, info: DeviceInfo): Promise<string | null> {
    const replaced = await this.script(CONNECT, clientId, socketId, this.link.processId, info.address, info.userKey ?? '');
    return typeof replaced === 'string' ? replaced : null;
  }

  async disconnect(clientId: string, socketId: string): Promise<boolean> {
    const forgotten = (await this.script(DISCONNECT, clientId, socketId)) === 1;
    if (forgotten) await this.announce({ type: 'disconnected', clientId });
    return forgotten;
  }

  disconnectSocket(socketId: string): void {
    this.server?.in(socketId).disconnectSockets(true);
  }

  async setConditions(clientId: string, report: Required<ConditionsReport>): Promise<void> {
    if ((await this.script(SET_CONDITIONS, clientId, report.eligible ? '1' : '0')) === 1) await this.announce({ type: 'available', count: 1 });
  }

  async availableCount(): Promise<number> {
    return this.link.redis.sCard(this.link.keys.available);
  }

  async available(): Promise<AvailableDevice[]> {
    const { redis, keys } = this.link;
    const ids = await redis.sMembers(keys.available);
    // One round trip in practice: node-redis pipelines the commands issued in the same tick.
    const fields = await Promise.all(ids.map((clientId) => redis.hmGet(keys.device(clientId), ['address', 'user'])));
    const devices: AvailableDevice[] = [];
    ids.forEach((clientId, i) => {
      const [address, user] = fields[i]!;
      if (address !== null && address !== undefined) devices.push({ clientId, address, userKey: user ? user : null });
    });
    return devices;
  }

  async assign(clientIds: readonly string[], roundId: string): Promise<void> {
    await this.script(ASSIGN, roundId, ...clientIds);
  }

  async release(roundId: string): Promise<void> {
    const released = Number(await this.script(RELEASE, roundId));
    if (released > 0) await this.announce({ type: 'available', count: released });
  }

  async counts(): Promise<DeviceCounts> {
    const { redis, keys } = this.link;
    const [connected, eligible, inRound] = await Promise.all([redis.sCard(keys.connected), redis.sCard(keys.eligible), redis.sCard(keys.inRound)]);
    return { connected, eligible, inRound };
  }

  async sendTo<E extends DeviceMessage>(clientId: string, event: E, ...args: DeviceMessageArgs<E>): Promise<void> {
    this.server?.to(clientRoom(clientId)).emit(event, ...args);
  }

  async broadcast<E extends DeviceMessage>(event: E, ...args: DeviceMessageArgs<E>): Promise<void> {
    this.server?.to(DEVICES_ROOM).emit(event, ...args);
  }

  /** Forgets every device a dead process held, each announced as disconnected. Idempotent. */
  async purge(processId: string): Promise<void> {
    const purged = (await this.script(PURGE_PROCESS, processId)) as string[];
    if (purged.length > 0) log.warn({ processId, devices: purged.length }, 'purged the devices of a dead coordinator process');
    for (const clientId of purged) await this.announce({ type: 'disconnected', clientId });
  }

  private async script(script: string, ...args: string[]): Promise<unknown> {
    return this.link.redis.eval(script, { arguments: [this.link.keys.prefix, ...args] });
  }

  private async announce(event: DeviceEvent): Promise<void> {
    await this.link.publish(this.link.keys.eventsChannel, event);
  }

  private heard(message: unknown): void {
    const event = deviceEventSchema.safeParse(message);
    if (!event.success) return log.warn('dropped a malformed device event');
    if (event.data.type === 'available') this.bus.emit('device.available', { count: event.data.count });
    else this.bus.emit('device.disconnected', { clientId: event.data.clientId });
  }

  private async refreshGauges(): Promise<void> {
    try {
      const { connected, eligible } = await this.counts();
      this.metrics.connectedClients.set(connected);
      this.metrics.eligibleClients.set(eligible);
    } catch (error) {
      log.warn({ err: error }, 'could not refresh the device gauges');
    }
  }
}
