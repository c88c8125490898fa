import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createClient } from 'redis';
import { afterAll, describe, expect, it } from 'vitest';
import type { RoundDetails } from '../../src/contract/index.js';
import { startTestCoordinator, waitFor, type TestCoordinator } from '../support/coordinator.js';
import { makeDelta, ProtocolClient } from '../support/protocol-client.js';

const POSTGRES_URL = process.env.FLOCK_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.FLOCK_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const schema = `flock_scale_${randomBytes(4).toString('hex')}`;
const redisPrefix = `${schema}:`;

let coordinator: TestCoordinator | undefined;
const redisSpy = createClient({ url: REDIS_URL });

afterAll(async () => {
  await coordinator?.dispose();
  await redisSpy.quit().catch(() => undefined);
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
});

describe('the scale path: the same coordinator on PostgreSQL and the socket.io Redis adapter', () => {
  it('runs a round with state in PostgreSQL and broadcasts through Redis', async () => {
    const channels: string[] = [];
    await redisSpy.connect().catch((error: unknown) => {
      throw new Error(`Redis at ${REDIS_URL} is required for this test (CI starts it): ${(error as Error).message}`);
    });
    await redisSpy.pSubscribe(`${redisPrefix}socket.io#*`, (_message, channel) => channels.push(channel));

    coordinator = await startTestCoordinator({ databaseUrl: `${POSTGRES_URL}?schema=${schema}`, redisUrl: REDIS_URL, redisPrefix });
    const devices = await Promise.all([0, 1].map(() => ProtocolClient.connect(coordinator!.url)));
    await waitFor(
      () => coordinator!.api<{ eligible: number }>('/api/clients'),
      (r) => r.body.eligible === 2,
      5000,
    );
    const started = await coordinator.api<{ id: string }>('/api/rounds', {
      method: 'POST',
      body: JSON.stringify({ minClients: 2, targetClients: 2, overSelection: 1 }),
    });
    await Promise.all(
      devices.map(async (device, k) => {
        const configuration = await device.configurations.next();
        const model = await device.fetchModel(configuration.modelVersion);
        expect((await device.upload(configuration, model, makeDelta(model, k), 25)).accepted).toBe(true);
      }),
    );
    const round = await waitFor(
      () => coordinator!.api<RoundDetails>(`/api/rounds/${started.body.id}`),
      (r) => r.body.status === 'committed',
      20_000,
    );
    for (const device of devices) expect((await device.published.next()).version).toBe(round.body.committedVersion);

    // the state is in PostgreSQL: the committed version and the round's transitions
    const db = new pg.Client({ connectionString: POSTGRES_URL });
    await db.connect();
    const versions = await db.query(`SELECT version FROM ${schema}.model_versions ORDER BY version`);
    const transitions = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.round_transitions WHERE round_id = $1`, [started.body.id]);
    await db.end();
    expect(versions.rows.map((r: { version: number }) => Number(r.version))).toEqual([1, 2]);
    expect(transitions.rows[0]?.n).toBe(5);
    // emits went through Redis pub/sub (the adapter's channels), so other coordinator nodes would see them
    expect(channels.some((channel) => channel.startsWith(`${redisPrefix}socket.io#/#`))).toBe(true);
    devices.forEach((d) => d.disconnect());
  });
});
