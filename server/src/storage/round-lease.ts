/**
 * The right to drive rounds: exactly one coordinator process drives the round in flight. Taken
 * when a round starts and given back when it ends. The embedded default (one process, SQLite) holds
 * it in memory; with PostgreSQL it is a session-level advisory lock (postgres-round-lease.ts).
 */
export interface RoundLease {
  /**
   * The fencing token of this hold, checked inside the commit transaction: a process whose lease
   * was lost (and taken by another) cannot commit. null when there is nothing to fence (one process).
   */
  readonly fence: number | null;
  release(): Promise<void>;
}

export interface RoundLeases {
  /** Takes the lease, or answers null at once when another holder has it. */
  tryAcquire(): Promise<RoundLease | null>;
  close(): Promise<void>;
}

/** One process: the lease is a flag (the round engine already runs one round at a time). */
export class LocalRoundLeases implements RoundLeases {
  private held = false;

  async tryAcquire(): Promise<RoundLease | null> {
    if (this.held) return null;
    this.held = true;
    return {
      fence: null,
      release: async () => {
        this.held = false;
      },
    };
  }

  async close(): Promise<void> {}
}

/** A commit attempted without the lease that its fencing token names. */
export class FencedOffError extends Error {
  constructor(fence: number, current: number) {
    super(`this process's round lease (fencing token ${fence}) was taken over (token now ${current}); the commit is refused`);
  }
}

/** Nest injection token of the RoundLeases. */
export const ROUND_LEASES = Symbol('ROUND_LEASES');
