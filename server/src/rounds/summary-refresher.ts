/**
 * Recomputes a version's local-evaluation summary after new reports, at a bounded rate: at once
 * after the first report of a quiet spell, then at most once per interval while reports keep
 * coming (each refresh covers all reports stored before it began). The interval grows with the
 * refresh's cost, so that refreshing never takes more than 1/DUTY_FACTOR of the time.
 */
import { performance } from 'node:perf_hooks';
import { moduleLogger } from '../logging/logger.js';

const log = moduleLogger('evaluations');

/** Shortest wait between two refreshes of one version. */
export const MIN_REFRESH_INTERVAL_MS = 500;
/** The wait is at least this many times the last refresh's duration. */
const DUTY_FACTOR = 10;

interface Pending {
  roundId: string;
  /** A report arrived since the running (or last) refresh began. */
  dirty: boolean;
  timer: NodeJS.Timeout | null;
  running: Promise<void> | null;
}

/** Only versions with a refresh running or due are held: the map empties when reports stop. */
export class SummaryRefresher {
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly refresh: (version: number, roundId: string) => Promise<void>) {}

  /** A report on the version was stored. O(1). */
  reportStored(version: number, roundId: string): void {
    const pending = this.pending.get(version);
    if (pending) {
      pending.dirty = true;
      return;
    }
    const fresh: Pending = { roundId, dirty: true, timer: null, running: null };
    this.pending.set(version, fresh);
    this.run(version, fresh);
  }

  /** Runs every due refresh now and resolves once none is left (shutdown, tests). */
  async flush(): Promise<void> {
    while (this.pending.size > 0) {
      for (const [version, pending] of this.pending) {
        if (pending.timer) {
          clearTimeout(pending.timer);
          this.run(version, pending);
        }
      }
      await Promise.all([...this.pending.values()].flatMap((pending) => (pending.running ? [pending.running] : [])));
    }
  }

  private run(version: number, pending: Pending): void {
    pending.timer = null;
    pending.dirty = false;
    const began = performance.now();
    pending.running = this.refresh(version, pending.roundId)
      .catch((error: unknown) => log.error({ version, err: error }, 'could not refresh the local-evaluation summary'))
      .then(() => {
        pending.running = null;
        if (!pending.dirty) {
          this.pending.delete(version);
          return;
        }
        const wait = Math.max(MIN_REFRESH_INTERVAL_MS, DUTY_FACTOR * (performance.now() - began));
        pending.timer = setTimeout(() => this.run(version, pending), wait);
        pending.timer.unref();
      });
  }
}
