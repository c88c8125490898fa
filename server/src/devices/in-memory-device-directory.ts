import { Injectable } from '@nestjs/common';
import type { ConditionsReport } from '@flock/client-sdk/protocol';
import { FlockEventBus } from '../events/event-bus.js';
import { MetricsService } from '../metrics/metrics.service.js';
import type { AvailableDevice, DeviceCounts, DeviceDirectory, DeviceInfo, DeviceMessage, DeviceMessageArgs, DevicePresence } from './device-directory.js';
import { clientRoom, DEVICES_ROOM, LOCAL_DEVICES_ROOM, type FlockServer } from './device-sockets.js';

/** Devices a broadcast writes to per turn of the event loop (one write per socket: 10,000 at once held it for seconds). */
const BROADCAST_BATCH = 100;

/**
 * What the coordinator knows about a connected device: its id (a key thumbprint), where it connects
 * from, the hashed app user when enrolled, and its eligibility; no personal data.
 */
interface ConnectedDevice {
  socketId: string;
  info: DeviceInfo;
  eligible: boolean;
  /** The round the device was selected for, while it lasts. */
  roundId: string | null;
}

/**
 * The devices connected to this process, in memory. Every per-event operation (connect,
 * conditions, disconnect, counts) is O(1): the counters are kept as devices change, and each
 * round's devices are indexed so that releasing them costs the round's size, not the directory's.
 */
@Injectable()
export class InMemoryDeviceDirectory implements DeviceDirectory, DevicePresence {
  private readonly devices = new Map<string, ConnectedDevice>();
  private readonly byRound = new Map<string, Set<string>>();
  private server: FlockServer | null = null;
  private eligible = 0;
  private inRound = 0;
  private availableNow = 0;

  constructor(
    private readonly bus: FlockEventBus,
    private readonly metrics: MetricsService,
  ) {}

  attach(server: FlockServer): void {
    this.server = server;
  }

  connect(clientId: string, socketId: string, info: DeviceInfo): string | null {
    const previous = this.devices.get(clientId);
    if (previous) this.tally(previous, -1);
    const device: ConnectedDevice = { socketId, info: { ...info }, eligible: false, roundId: previous?.roundId ?? null };
    this.devices.set(clientId, device);
    this.tally(device, 1);
    this.updateGauges();
    return previous && previous.socketId !== socketId ? previous.socketId : null;
  }

  disconnect(clientId: string, socketId: string): boolean {
    const device = this.devices.get(clientId);
    if (!device || device.socketId !== socketId) return false;
    this.tally(device, -1);
    this.devices.delete(clientId);
    if (device.roundId !== null) this.byRound.get(device.roundId)?.delete(clientId);
    this.updateGauges();
    this.bus.emit('device.disconnected', { clientId });
    return true;
  }

  disconnectSocket(socketId: string): void {
    this.server?.in(socketId).disconnectSockets(true);
  }

  setConditions(clientId: string, report: Required<ConditionsReport>): void {
    const device = this.devices.get(clientId);
    if (!device) return;
    const becameAvailable = report.eligible && !device.eligible && device.roundId === null;
    this.tally(device, -1);
    device.eligible = report.eligible;
    this.tally(device, 1);
    this.updateGauges();
    if (becameAvailable) this.bus.emit('device.available', { count: 1 });
  }

  async availableCount(): Promise<number> {
    return this.availableNow;
  }

  async available(): Promise<AvailableDevice[]> {
    const available: AvailableDevice[] = [];
    for (const [clientId, device] of this.devices) if (device.eligible && device.roundId === null) available.push({ clientId, ...device.info });
    return available;
  }

  async assign(clientIds: readonly string[], roundId: string): Promise<void> {
    let members = this.byRound.get(roundId);
    if (!members) {
      members = new Set();
      this.byRound.set(roundId, members);
    }
    for (const clientId of clientIds) {
      const device = this.devices.get(clientId);
      if (!device) continue;
      if (device.roundId !== null && device.roundId !== roundId) this.byRound.get(device.roundId)?.delete(clientId);
      this.tally(device, -1);
      device.roundId = roundId;
      this.tally(device, 1);
      members.add(clientId);
    }
  }

  async release(roundId: string): Promise<void> {
    const members = this.byRound.get(roundId);
    this.byRound.delete(roundId);
    let released = 0;
    for (const clientId of members ?? []) {
      const device = this.devices.get(clientId);
      if (device?.roundId !== roundId) continue;
      this.tally(device, -1);
      device.roundId = null;
      this.tally(device, 1);
      if (device.eligible) released++;
    }
    if (released > 0) this.bus.emit('device.available', { count: released });
  }

  async counts(): Promise<DeviceCounts> {
    return { connected: this.devices.size, eligible: this.eligible, inRound: this.inRound };
  }

  async sendTo<E extends DeviceMessage>(clientId: string, event: E, ...args: DeviceMessageArgs<E>): Promise<void> {
    this.server?.to(clientRoom(clientId)).emit(event, ...args);
  }

  async broadcast<E extends DeviceMessage>(event: E, ...args: DeviceMessageArgs<E>): Promise<void> {
    const server = this.server;
    if (!server) return;
    // Other processes' devices (socket.io Redis adapter): their own processes write to them.
    server
      .to(DEVICES_ROOM)
      .except(LOCAL_DEVICES_ROOM)
      .emit(event, ...args);
    const rooms = Array.from(this.devices.keys(), clientRoom);
    for (let start = 0; start < rooms.length; start += BROADCAST_BATCH) {
      if (start > 0) await new Promise((next) => setImmediate(next));
      server.local.to(rooms.slice(start, start + BROADCAST_BATCH)).emit(event, ...args);
    }
  }

  /** Adds (sign 1) or removes (sign -1) a device's share of the counters, around each change of it. */
  private tally(device: ConnectedDevice, sign: 1 | -1): void {
    if (device.eligible) this.eligible += sign;
    if (device.roundId !== null) this.inRound += sign;
    else if (device.eligible) this.availableNow += sign;
  }

  private updateGauges(): void {
    this.metrics.connectedClients.set(this.devices.size);
    this.metrics.eligibleClients.set(this.eligible);
  }
}
