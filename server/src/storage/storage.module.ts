import { join } from 'node:path';
import { Global, Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { moduleLogger } from '../logging/logger.js';
import { PostgresRoundLeases } from './postgres-round-lease.js';
import { PostgresStorage, redactUrl } from './postgres-storage.js';
import { LocalRoundLeases, ROUND_LEASES, type RoundLeases } from './round-lease.js';
import { SqliteStorage } from './sqlite-storage.js';
import { STORAGE, type Storage } from './storage.js';

const log = moduleLogger('storage');

export function isPostgresUrl(url: string | null): url is string {
  return url !== null && /^postgres(ql)?:\/\//i.test(url);
}

/**
 * Splits an optional `schema` query parameter off a PostgreSQL URL
 * (`postgres://host/db?schema=flock`: keep Flock's tables in that schema, created if missing).
 */
export function splitSchemaParam(databaseUrl: string): { url: string; schema: string | undefined } {
  const url = new URL(databaseUrl);
  const schema = url.searchParams.get('schema') ?? undefined;
  url.searchParams.delete('schema');
  return { url: url.toString(), schema };
}

/** The Storage the configuration asks for, not yet initialised. */
export function createStorage(config: Pick<FlockConfig, 'databaseUrl' | 'dataDir'>): Storage {
  if (isPostgresUrl(config.databaseUrl)) {
    const { url, schema } = splitSchemaParam(config.databaseUrl);
    log.info({ database: redactUrl(url), schema: schema ?? null }, 'using PostgreSQL storage');
    return new PostgresStorage(url, { schema });
  }
  if (config.databaseUrl) {
    throw new Error('FLOCK_DATABASE_URL must start with postgres:// or postgresql:// (leave it unset for the embedded SQLite database)');
  }
  const path = join(config.dataDir, 'flock.db');
  log.info({ path }, 'using SQLite storage');
  return new SqliteStorage(path);
}

/** The round lease the storage asks for: an advisory lock on PostgreSQL (several processes), a flag on SQLite (one). */
export function createRoundLeases(config: Pick<FlockConfig, 'databaseUrl'>): RoundLeases {
  if (!isPostgresUrl(config.databaseUrl)) return new LocalRoundLeases();
  const { url, schema } = splitSchemaParam(config.databaseUrl);
  return new PostgresRoundLeases(url, schema);
}

/**
 * Provides STORAGE app-wide, initialised (tables created) before anything injects it and closed on
 * shutdown. Expects FLOCK_CONFIG to be provided by a global module.
 */
@Global()
@Module({
  providers: [
    {
      provide: STORAGE,
      inject: [FLOCK_CONFIG],
      useFactory: async (config: FlockConfig): Promise<Storage> => {
        const storage = createStorage(config);
        await storage.init();
        return storage;
      },
    },
    {
      provide: ROUND_LEASES,
      // After STORAGE: the lease's table is created with the others.
      inject: [FLOCK_CONFIG, STORAGE],
      useFactory: (config: FlockConfig): RoundLeases => createRoundLeases(config),
    },
  ],
  exports: [STORAGE, ROUND_LEASES],
})
export class StorageModule implements OnApplicationShutdown {
  constructor(
    @Inject(STORAGE) private readonly storage: Storage,
    @Inject(ROUND_LEASES) private readonly leases: RoundLeases,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await this.leases.close();
    await this.storage.close();
  }
}
