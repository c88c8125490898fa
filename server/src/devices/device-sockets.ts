import { randomUUID } from 'node:crypto';
import type { Server } from 'socket.io';
import type { ClientToServerEvents, ServerToClientEvents } from '@flock/client-sdk/protocol';

export type FlockServer = Server<ClientToServerEvents, ServerToClientEvents>;

/** Each device gets a room named after its id, so emits reach it through the socket.io adapter too. */
export function clientRoom(clientId: string): string {
  return `client:${clientId}`;
}

/** Every device that proved its key joins this room: broadcasts reach no socket before its proof. */
export const DEVICES_ROOM = 'devices';

/**
 * This process's devices (also in DEVICES_ROOM): a broadcast reaches them in batches from here and
 * the other processes' devices through the adapter, except these.
 */
export const LOCAL_DEVICES_ROOM = `devices:${randomUUID()}`;
