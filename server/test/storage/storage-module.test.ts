/** StorageModule: picks the implementation from the configuration, initialises it, closes it on shutdown. */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigModule } from '../../src/config/config.module.js';
import { loadConfig, type FlockConfig } from '../../src/config/config.js';
import { PostgresStorage } from '../../src/storage/postgres-storage.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { StorageModule, createStorage, splitSchemaParam } from '../../src/storage/storage.module.js';
import { STORAGE, type Storage } from '../../src/storage/storage.js';
import { newVersion, weightsFor } from './fixtures.js';

const POSTGRES_URL = process.env.FLOCK_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

// Decorators are applied by hand: test files are outside the tsconfig that enables experimentalDecorators.
class RootModule {}
Module({})(RootModule);

const dataDir = mkdtempSync(join(tmpdir(), 'flock-storage-module-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function config(databaseUrl: string | null): FlockConfig {
  return loadConfig({}, { dataDir, databaseUrl, operatorToken: 'operator-token-0123456789', clientToken: 'client-token-0123456789ab' });
}

async function withApp<T>(cfg: FlockConfig, fn: (storage: Storage) => Promise<T>): Promise<{ result: T; storage: Storage }> {
  const app = await NestFactory.createApplicationContext({ module: RootModule, imports: [ConfigModule.forRoot(cfg), StorageModule] }, { logger: false });
  const storage = app.get<Storage>(STORAGE);
  try {
    return { result: await fn(storage), storage };
  } finally {
    await app.close();
  }
}

describe('StorageModule', () => {
  it('chooses the implementation from databaseUrl', () => {
    expect(createStorage({ dataDir, databaseUrl: null })).toBeInstanceOf(SqliteStorage);
    expect(createStorage({ dataDir, databaseUrl: 'postgres://u@h/db' })).toBeInstanceOf(PostgresStorage);
    expect(createStorage({ dataDir, databaseUrl: 'postgresql://u@h/db?schema=flock' })).toBeInstanceOf(PostgresStorage);
    expect(() => createStorage({ dataDir, databaseUrl: 'mysql://u@h/db' })).toThrow(/postgres:\/\/ or postgresql:\/\//);
    expect(splitSchemaParam('postgres://u:pw@h:5432/db?schema=flock&sslmode=require')).toEqual({
      url: 'postgres://u:pw@h:5432/db?sslmode=require',
      schema: 'flock',
    });
  });

  it('opens <dataDir>/flock.db, initialised, and closes it on shutdown', async () => {
    const { result, storage } = await withApp(config(null), (storage) => storage.insertModelVersion(newVersion(), weightsFor(newVersion())));
    expect(result.version).toBe(1);
    expect(existsSync(join(dataDir, 'flock.db'))).toBe(true);
    await expect(storage.latestModelVersion()).rejects.toThrow(/not initialised/);
  });

  it('uses PostgreSQL for a postgres:// URL, in the schema the URL names', async () => {
    const schema = `flock_test_module_${process.pid}_${randomBytes(3).toString('hex')}`;
    try {
      const { result } = await withApp(config(`${POSTGRES_URL}${POSTGRES_URL.includes('?') ? '&' : '?'}schema=${schema}`), async (storage) => {
        expect(storage).toBeInstanceOf(PostgresStorage);
        return storage.insertModelVersion(newVersion(), weightsFor(newVersion()));
      });
      expect(result.version).toBe(1);
      const client = new pg.Client(POSTGRES_URL);
      await client.connect();
      try {
        const { rows } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.model_versions`);
        expect(rows[0]!.n).toBe(1);
      } finally {
        await client.end();
      }
    } finally {
      const client = new pg.Client(POSTGRES_URL);
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    }
  });
});
