import pg from 'pg';
import { moduleLogger } from '../logging/logger.js';

const log = moduleLogger('storage');

/**
 * A side store's own small PostgreSQL pool (the inference log, the predictions), in `schema` when
 * given (checked: it is spliced into search_path and CREATE SCHEMA).
 */
export function sideStorePool(url: string, schema: string | undefined, store: string): pg.Pool {
  if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`invalid PostgreSQL schema name "${schema}"`);
  const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 10_000, ...(schema ? { options: `-c search_path=${schema}` } : {}) });
  pool.on('error', (error) => log.warn({ err: error.message }, `idle PostgreSQL connection of the ${store} failed`));
  return pool;
}
