import type { ConditionsReport, ServerToClientEvents } from '@flock/client-sdk/protocol';
import type { FlockServer } from './device-sockets.js';

/** Connected devices by state (GET /api/clients, /api/status and the dashboard show them). */
export interface DeviceCounts {
  connected: number;
  eligible: number;
  /** Connected devices selected for the round in flight. */
  inRound: number;
}

/** What the gateway tells the directory about a device when it connects. */
export interface DeviceInfo {
  /** The network address the connection comes from. */
  address: string;
  /** Keyed hash of the enrolled app user (enrolment), null without enrolment: never the user id itself. */
  userKey: string | null;
}

/** A device selection may pick, with what selection rules look at. */
export interface AvailableDevice extends DeviceInfo {
  clientId: string;
}

export type DeviceMessage = keyof ServerToClientEvents;
export type DeviceMessageArgs<E extends DeviceMessage> = Parameters<ServerToClientEvents[E]>;

/**
 * What the round engine and the operator views know of devices: which are available, which a
 * round holds, and how to reach them. The in-memory implementation serves one process; a shared
 * one (Redis) can take its place for several, which is why selection and sending are async.
 */
export interface DeviceDirectory {
  /** How many devices are available for selection (eligible, in no round); O(1). */
  availableCount(): Promise<number>;
  /** The available devices (a scan: once per selection, not per event). */
  available(): Promise<AvailableDevice[]>;
  /** Marks devices as taken by a round: they are not available until released. */
  assign(clientIds: readonly string[], roundId: string): Promise<void>;
  /** Frees every device a round holds. */
  release(roundId: string): Promise<void>;
  counts(): Promise<DeviceCounts>;
  sendTo<E extends DeviceMessage>(clientId: string, event: E, ...args: DeviceMessageArgs<E>): Promise<void>;
  broadcast<E extends DeviceMessage>(event: E, ...args: DeviceMessageArgs<E>): Promise<void>;
}

/** What the device gateway tells the directory about the sockets it holds. */
export interface DevicePresence {
  /** The socket.io server the directory sends through. */
  attach(server: FlockServer): void;
  /**
   * Registers a connection of a device that proved its key; returns the socket id it replaced (the
   * same device connected twice), if any.
   */
  connect(clientId: string, socketId: string, info: DeviceInfo): Promise<string | null>;
  /** Forgets a connection; false if the device has since reconnected on another socket. */
  disconnect(clientId: string, socketId: string): Promise<boolean>;
  /** Closes a device's older socket (works across processes with the socket.io adapter). */
  disconnectSocket(socketId: string): void;
  setConditions(clientId: string, report: Required<ConditionsReport>): Promise<void>;
}

/** DI token of the DeviceDirectory. */
export const DEVICE_DIRECTORY = Symbol('DEVICE_DIRECTORY');
/** DI token of the DevicePresence (the same object as the directory in memory). */
export const DEVICE_PRESENCE = Symbol('DEVICE_PRESENCE');
