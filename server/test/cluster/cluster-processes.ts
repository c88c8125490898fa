import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { createClient } from 'redis';
import { coordinatorStarted } from '../support/coordinator-child.js';
import { CLIENT_TOKEN, OPERATOR_TOKEN } from '../support/coordinator.js';

const MAIN = resolve(import.meta.dirname, '../../dist/main.js');
/** The server of the test databases (FLOCK_TEST_POSTGRES_URL's host; each run creates and drops its own database). */
const POSTGRES_URL = process.env.FLOCK_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.FLOCK_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** One coordinator process of the cluster: `node server/dist/main.js`, the real entry point. */
export interface CoordinatorProcess {
  name: string;
  url: string;
  child: ChildProcess;
  /** What it printed (logs at warn and above): shown when a test fails. */
  output(): string;
}

/**
 * A cluster for one test file: a fresh PostgreSQL database (`flock_cluster_<random>`, dropped
 * afterwards), a random Redis key prefix (deleted afterwards), and coordinator processes sharing
 * both. PostgreSQL or Redis being down fails (never skips): CI starts them.
 */
export class TestCluster {
  readonly database = `flock_cluster_${randomBytes(4).toString('hex')}`;
  readonly prefix = `${this.database}:`;
  readonly processes: CoordinatorProcess[] = [];
  private readonly dataDirs: string[] = [];

  get databaseUrl(): string {
    const url = new URL(POSTGRES_URL);
    url.pathname = `/${this.database}`;
    return url.toString();
  }

  async create(): Promise<void> {
    const redis = createClient({ url: REDIS_URL });
    await redis.connect().catch((error: unknown) => {
      throw new Error(`the cluster test needs Redis at ${REDIS_URL} (CI starts it): ${(error as Error).message}`);
    });
    await redis.quit();
    await this.admin(`CREATE DATABASE ${this.database}`);
  }

  /** Starts a coordinator process of the cluster and waits until it listens. */
  async start(name: string, env: Record<string, string> = {}): Promise<CoordinatorProcess> {
    const dataDir = mkdtempSync(join(tmpdir(), `flock-${name}-`));
    this.dataDirs.push(dataDir);
    const child = spawn(process.execPath, [MAIN], {
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        FLOCK_DATA_DIR: dataDir,
        FLOCK_DATABASE_URL: this.databaseUrl,
        FLOCK_REDIS_URL: REDIS_URL,
        FLOCK_REDIS_PREFIX: this.prefix,
        FLOCK_CLIENT_TOKEN: CLIENT_TOKEN,
        FLOCK_OPERATOR_TOKEN: OPERATOR_TOKEN,
        FLOCK_DEFAULT_MODEL_EXAMPLES: '600',
        FLOCK_TEST_SET: 'none',
        LOG_LEVEL: 'warn',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const { url, output } = await coordinatorStarted(child, name);
    const started: CoordinatorProcess = { name, url, child, output };
    this.processes.push(started);
    return started;
  }

  /** kill -9: no shutdown hook runs, nothing is cleaned up by the process itself. */
  async kill9(coordinator: CoordinatorProcess): Promise<void> {
    if (coordinator.child.exitCode !== null || coordinator.child.signalCode !== null) return;
    await new Promise<void>((exited) => {
      coordinator.child.once('exit', () => exited());
      coordinator.child.kill('SIGKILL');
    });
  }

  async dispose(): Promise<void> {
    await Promise.all(this.processes.map((p) => this.kill9(p)));
    for (const dir of this.dataDirs) rmSync(dir, { recursive: true, force: true });
    const redis = createClient({ url: REDIS_URL });
    await redis.connect();
    const keys = await redis.keys(`${this.prefix}*`);
    if (keys.length > 0) await redis.del(keys);
    await redis.quit();
    await this.admin(`DROP DATABASE IF EXISTS ${this.database} WITH (FORCE)`);
  }

  private async admin(sql: string): Promise<void> {
    const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 5000 });
    try {
      await client.connect();
      await client.query(sql);
    } catch (error) {
      throw new Error(`the cluster test needs PostgreSQL at ${POSTGRES_URL} (CI starts it): ${(error as Error).message}`);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}
