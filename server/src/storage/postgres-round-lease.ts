import { createHash } from 'node:crypto';
import pg from 'pg';
import { moduleLogger } from '../logging/logger.js';
import type { RoundLease, RoundLeases } from './round-lease.js';

const log = moduleLogger('storage');

/** The advisory lock's first key: "flok". The second is derived from the schema, so that schemas of one database are separate clusters. */
const LOCK_CLASS = 0x666c6f6b;

function schemaKey(schema: string | undefined): number {
  return createHash('sha256')
    .update(schema ?? '')
    .digest()
    .readInt32BE(0);
}

/**
 * The round lease as a PostgreSQL session-level advisory lock, each hold on its own connection:
 * PostgreSQL releases it when that connection ends, so a process killed with -9 gives it up as soon
 * as its socket closes (no TTL to tune, no renewal that a paused process could miss). Taking it
 * increments `round_lease.epoch`, the fencing token that the commit transaction checks under
 * FOR SHARE (postgres-storage.ts): a process that lost its connection, and with it the lock, cannot
 * commit once another took the lease.
 */
export class PostgresRoundLeases implements RoundLeases {
  private readonly key: number;

  constructor(
    private readonly url: string,
    private readonly schema: string | undefined,
  ) {
    this.key = schemaKey(schema);
  }

  async tryAcquire(): Promise<RoundLease | null> {
    const client = new pg.Client({ connectionString: this.url, ...(this.schema ? { options: `-c search_path=${this.schema}` } : {}) });
    client.on('error', (error) => log.error({ err: error.message }, 'the round lease connection failed: this process no longer holds the lease'));
    await client.connect();
    try {
      const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS locked', [LOCK_CLASS, this.key]);
      if (!rows[0]?.locked) {
        await client.end();
        return null;
      }
      const epoch = await client.query<{ epoch: string }>('UPDATE round_lease SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch');
      const fence = Number(epoch.rows[0]!.epoch);
      return {
        fence,
        release: async () => {
          // Ending the session releases the lock.
          await client.end().catch((error: unknown) => log.warn({ err: error }, 'closing the round lease connection failed'));
        },
      };
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
  }

  async close(): Promise<void> {}
}
