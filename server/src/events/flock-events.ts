import type { RoundStatus } from '@flock/client-sdk/protocol';

/**
 * Every in-process event of the coordinator, with its payload: one map, so that emitters and
 * listeners agree by type. Payloads carry ids and small values only (never weights), so that a
 * bus spanning processes could carry them as they are.
 */
export interface FlockEvents {
  /** The round in flight changed: it started, moved state, took an upload or lost a participant. */
  'round.changed': { roundId: string; status: RoundStatus };
  /** Devices became available for selection (connected eligible, or released by a round). */
  'device.available': { count: number };
  /** A device's socket closed (not fired when the same device replaced its socket). */
  'device.disconnected': { clientId: string };
  /** A round committed a new global version. */
  'version.committed': { version: number; parentVersion: number; roundId: string };
  /** A version's test-set metrics were stored. */
  'version.evaluated': { version: number };
}

export type FlockEventName = keyof FlockEvents;
export type FlockListener<E extends FlockEventName> = (payload: FlockEvents[E]) => void | Promise<void>;
