import type { DeviceDirectory } from '../devices/device-directory.js';
import { moduleLogger } from '../logging/logger.js';
import type { RoundLeases } from '../storage/round-lease.js';
import type { Storage } from '../storage/storage.js';
import type { ClusterRounds } from './cluster-rounds.js';

const log = moduleLogger('rounds');

/**
 * Rounds left in flight by a coordinator process that stopped (a restart, a kill -9): their
 * aggregate was in that process's memory, so they cannot resume. Whoever holds the round lease
 * knows nobody drives them, and marks them aborted and frees their devices.
 */
export class StaleRounds {
  constructor(
    private readonly storage: Storage,
    private readonly devices: DeviceDirectory,
    private readonly leases: RoundLeases,
    private readonly cluster: ClusterRounds | null,
  ) {}

  /** Aborts them if no process drives a round now (this one can take the lease); false when another does. */
  async abortIfUndriven(error: string): Promise<boolean> {
    const lease = await this.leases.tryAcquire();
    if (!lease) return false;
    try {
      await this.abort(error);
    } finally {
      await lease.release();
    }
    return true;
  }

  /** Aborts them. Only with the round lease held: then nobody drives them. */
  async abort(error: string): Promise<void> {
    const stale = await this.storage.findRoundsByStatus(['selecting', 'configuring', 'reporting', 'committing']);
    for (const round of stale) {
      const at = new Date().toISOString();
      await this.storage.updateRound(round.id, { status: 'aborted', error, endedAt: at });
      await this.storage.appendTransition({ roundId: round.id, from: round.status, to: 'aborted', at, note: error });
      await this.devices.release(round.id);
      await this.cluster?.close(round.id);
      log.warn({ roundId: round.id, from: round.status, error }, 'aborted a round left in flight by a coordinator process that stopped');
    }
  }
}
