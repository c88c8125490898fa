/**
 * Backpressure on arrivals: while the coordinator's event loop is slow, new device sessions are
 * refused with `coordinator_busy` and a time to come back, spread at random so that the refused
 * devices do not all return together. Sessions already open are untouched; a handshake (a
 * signature verification) is the dearest thing a device asks for outside a round. Pure.
 */
export interface BusyConfig {
  /** Refuse new sessions while the event-loop delay p99 (metrics/event-loop-delay.ts) is above this. */
  eventLoopDelayMs: number;
  /** Refused devices come back after this plus up to as much again, at random. */
  retryAfterMs: number;
}

/** When a device arriving now should come back, or null to admit it. */
export function busyRetryAfterMs(eventLoopDelayP99Ms: number, config: BusyConfig, random: number): number | null {
  if (eventLoopDelayP99Ms <= config.eventLoopDelayMs) return null;
  return Math.round(config.retryAfterMs * (1 + random));
}
