import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresRoundLeases } from '../../src/storage/postgres-round-lease.js';
import { PostgresStorage } from '../../src/storage/postgres-storage.js';
import { FencedOffError, LocalRoundLeases } from '../../src/storage/round-lease.js';
import { newRound, newVersion, weightsFor } from './fixtures.js';

/** Real PostgreSQL (FLOCK_TEST_POSTGRES_URL): unreachable fails the suite, CI starts it. */
const POSTGRES_URL = process.env.FLOCK_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `flock_lease_${randomBytes(4).toString('hex')}`;
let storage: PostgresStorage;

beforeAll(async () => {
  storage = new PostgresStorage(POSTGRES_URL, { schema });
  await storage.init();
});
afterAll(async () => {
  await storage?.close();
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
});

function commit(roundId: string, fence: number) {
  return storage.commitRound(
    roundId,
    newVersion([[3, 2], [2]], { source: 'round', parentVersion: 1 }),
    weightsFor(newVersion(), 3),
    {},
    { roundId, from: 'committing', at: '2025-01-01T00:10:00.000Z', note: null },
    fence,
  );
}

describe('the round lease', () => {
  it('on PostgreSQL: one holder across processes (connections), a growing fencing token, and a fenced commit', async () => {
    const processA = new PostgresRoundLeases(POSTGRES_URL, schema);
    const processB = new PostgresRoundLeases(POSTGRES_URL, schema);
    const otherCluster = new PostgresRoundLeases(POSTGRES_URL, `${schema}_other`);
    const held = await processA.tryAcquire();
    expect(held?.fence).toBe(1);
    expect(await processB.tryAcquire()).toBeNull();
    expect(await processA.tryAcquire()).toBeNull(); // not re-entrant: each hold is its own session
    const elsewhere = await otherCluster.tryAcquire().catch((error: Error) => error);
    expect(elsewhere).toBeInstanceOf(Error); // another schema is another lock (its table does not exist here)

    await storage.insertModelVersion(newVersion(), weightsFor(newVersion()));
    await storage.createRound(newRound('r1', { status: 'committing' }));
    await storage.createRound(newRound('r2', { status: 'committing' }));
    // A's session ends (as when its process is killed): B takes over with a newer token, A's commit is fenced off.
    await held!.release();
    const taken = await processB.tryAcquire();
    expect(taken?.fence).toBe(2);
    await expect(commit('r1', 1)).rejects.toBeInstanceOf(FencedOffError);
    expect((await storage.getRound('r1'))?.status).toBe('committing');
    expect((await storage.latestModelVersion())?.version).toBe(1);
    // The holder commits.
    expect((await commit('r2', 2)).round.status).toBe('committed');
    await taken!.release();
  });

  it('in one process (SQLite): a flag, nothing to fence', async () => {
    const leases = new LocalRoundLeases();
    const held = await leases.tryAcquire();
    expect(held?.fence).toBeNull();
    expect(await leases.tryAcquire()).toBeNull();
    await held!.release();
    expect(await leases.tryAcquire()).not.toBeNull();
  });
});
