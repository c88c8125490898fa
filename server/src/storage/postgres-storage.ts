import pg from 'pg';
import type { RoundStatus } from '@flock/client-sdk/protocol';
import type { ModelVersionMeta, RoundRecord, RoundTransition } from '../contract/index.js';
import { moduleLogger } from '../logging/logger.js';
import {
  EVALUATION_NUMBER_COLUMNS,
  EVALUATION_REPORT_COLUMNS,
  MODEL_INSERT_COLUMNS,
  MODEL_META_COLUMNS,
  MODEL_RECORD_COLUMNS,
  RecordNotFoundError,
  REPORTS_PER_READ,
  ROUND_COLUMNS,
  SOURCE_LIST,
  STATUS_LIST,
  alreadyParsed,
  applyRoundPatch,
  asUint8,
  commitPatch,
  commitVersion,
  evaluationReportValues,
  modelInsertValues,
  nowIso,
  roundValues,
  rowToEvaluationNumbers,
  rowToModelMeta,
  rowToModelRecord,
  rowToRound,
  rowToTransition,
  transitionValues,
  validateNewVersion,
  type EvaluationReportRow,
  type ModelMetaRow,
  type ModelRecordRow,
  type RoundRow,
  type TransitionRow,
} from './rows.js';
import { FencedOffError } from './round-lease.js';
import type { EvaluationNumbers, EvaluationReportRecord, ModelVersionRecord, NewModelVersion, RoundPatch, Storage } from './storage.js';

/** PostgreSQL's SQLSTATE for a foreign key violation. */
const FOREIGN_KEY_VIOLATION = '23503';

const log = moduleLogger('storage');

const SCHEMA = `
CREATE TABLE IF NOT EXISTS model_versions (
  version        INTEGER PRIMARY KEY CHECK (version > 0),
  parent_version INTEGER REFERENCES model_versions (version),
  round_id       TEXT,
  source         TEXT NOT NULL CHECK (source IN (${SOURCE_LIST})),
  created_at     TEXT NOT NULL,
  num_parameters INTEGER NOT NULL,
  metrics        JSONB NOT NULL,
  topology       JSONB NOT NULL,
  weight_specs   JSONB NOT NULL,
  strategy_state BYTEA,
  weights        BYTEA NOT NULL
);
-- Float weights barely compress: store them out of line without trying (saves time on every insert).
ALTER TABLE model_versions ALTER COLUMN weights SET STORAGE EXTERNAL;
ALTER TABLE model_versions ALTER COLUMN strategy_state SET STORAGE EXTERNAL;
-- Versions are immutable: only their metrics (evaluations arriving later) may change.
CREATE OR REPLACE FUNCTION flock_model_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN RAISE EXCEPTION 'model versions are immutable'; END $$;
DROP TRIGGER IF EXISTS model_versions_immutable ON model_versions;
CREATE TRIGGER model_versions_immutable
  BEFORE UPDATE OF version, parent_version, round_id, source, created_at, num_parameters,
                   topology, weight_specs, strategy_state, weights OR DELETE ON model_versions
  FOR EACH ROW EXECUTE FUNCTION flock_model_versions_immutable();

-- One privacy account per version (privacy/ledger.ts), written with it; immutable like it.
CREATE TABLE IF NOT EXISTS privacy_accounts (
  version INTEGER PRIMARY KEY REFERENCES model_versions (version),
  account JSONB NOT NULL
);
CREATE OR REPLACE FUNCTION flock_privacy_accounts_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN RAISE EXCEPTION 'privacy accounts are immutable'; END $$;
DROP TRIGGER IF EXISTS privacy_accounts_immutable ON privacy_accounts;
CREATE TRIGGER privacy_accounts_immutable BEFORE UPDATE OR DELETE ON privacy_accounts
  FOR EACH ROW EXECUTE FUNCTION flock_privacy_accounts_immutable();

CREATE TABLE IF NOT EXISTS rounds (
  seq               BIGSERIAL PRIMARY KEY,
  id                TEXT NOT NULL UNIQUE,
  base_version      INTEGER NOT NULL,
  status            TEXT NOT NULL CHECK (status IN (${STATUS_LIST})),
  params            JSONB NOT NULL,
  metrics           JSONB NOT NULL,
  committed_version INTEGER,
  error             TEXT,
  created_at        TEXT NOT NULL,
  updated_at        TEXT NOT NULL,
  ended_at          TEXT
);
CREATE INDEX IF NOT EXISTS rounds_status ON rounds (status);

CREATE TABLE IF NOT EXISTS round_transitions (
  seq         BIGSERIAL PRIMARY KEY,
  round_id    TEXT NOT NULL REFERENCES rounds (id),
  from_status TEXT CHECK (from_status IN (${STATUS_LIST})),
  to_status   TEXT NOT NULL CHECK (to_status IN (${STATUS_LIST})),
  at          TEXT NOT NULL,
  note        TEXT
);
CREATE INDEX IF NOT EXISTS round_transitions_round ON round_transitions (round_id, seq);

-- The round lease's fencing token (postgres-round-lease.ts): incremented by each process that takes the lease.
CREATE TABLE IF NOT EXISTS round_lease (
  id    INTEGER PRIMARY KEY CHECK (id = 1),
  epoch BIGINT NOT NULL
);
INSERT INTO round_lease (id, epoch) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

-- One row per device and version: the key refuses a second report, whatever the coordinator remembers.
-- Only the numbers a report carries and the device's pseudonymous id. (Created on existing databases too.)
CREATE TABLE IF NOT EXISTS evaluation_reports (
  model_version     INTEGER NOT NULL REFERENCES model_versions (version),
  client_id         TEXT NOT NULL,
  num_examples      INTEGER NOT NULL CHECK (num_examples > 0),
  global_loss       DOUBLE PRECISION NOT NULL CHECK (global_loss >= 0),
  global_accuracy   DOUBLE PRECISION NOT NULL CHECK (global_accuracy BETWEEN 0 AND 1),
  personal_loss     DOUBLE PRECISION CHECK (personal_loss >= 0),
  personal_accuracy DOUBLE PRECISION CHECK (personal_accuracy BETWEEN 0 AND 1),
  adopted           BOOLEAN NOT NULL,
  PRIMARY KEY (model_version, client_id)
);
`;

export interface PostgresStorageOptions {
  /** Keep Flock's tables in this schema (created if missing) instead of the connection's default. */
  schema?: string;
  /** Connections in the pool (default 10). */
  maxConnections?: number;
}

/** postgres://user:secret@host/db -> postgres://user:***@host/db, for error messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable database URL)';
  }
}

/**
 * PostgreSQL storage for deployments with several coordinator processes or managed databases.
 * Same tables and semantics as SqliteStorage; weights in BYTEA, JSON in JSONB. Version numbers are
 * assigned max+1 under a table lock (SHARE ROW EXCLUSIVE: concurrent inserts wait, readers do not),
 * with the primary key as a backstop.
 */
export class PostgresStorage implements Storage {
  private readonly pool: pg.Pool;
  private readonly schema: string | undefined;

  constructor(
    private readonly url: string,
    options: PostgresStorageOptions = {},
  ) {
    if (options.schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(options.schema)) {
      throw new Error(`invalid PostgreSQL schema name "${options.schema}" (lower-case letters, digits, _)`);
    }
    this.schema = options.schema;
    this.pool = new pg.Pool({
      connectionString: url,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: 10_000,
      ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
    });
    // An idle connection dropped by the server must not crash the process; the pool replaces it.
    this.pool.on('error', (error) => log.warn({ err: error.message }, 'idle PostgreSQL connection failed'));
  }

  async init(): Promise<void> {
    try {
      await this.tx(async (client) => {
        // Serialises concurrent start-ups (CREATE ... IF NOT EXISTS is not race-free in PostgreSQL).
        await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`flock-schema:${this.schema ?? ''}`]);
        if (this.schema) await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`);
        await client.query(SCHEMA);
      });
    } catch (error) {
      throw new Error(`PostgreSQL at ${redactUrl(this.url)}: ${(error as Error).message}`, { cause: error });
    }
  }

  async close(): Promise<void> {
    if (!this.pool.ended) await this.pool.end();
  }

  private async tx<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: Error) => {
        broken = rollbackError; // the connection is unusable: destroy it instead of returning it to the pool
      });
      throw error;
    } finally {
      client.release(broken);
    }
  }

  private async insertVersion(client: pg.PoolClient, record: NewModelVersion, weights: Uint8Array): Promise<ModelVersionMeta> {
    validateNewVersion(record, weights);
    await client.query('LOCK TABLE model_versions IN SHARE ROW EXCLUSIVE MODE');
    const { rows } = await client.query<{ next: number }>('SELECT COALESCE(MAX(version), 0) + 1 AS next FROM model_versions');
    const next = rows[0]!.next;
    await client.query(
      `INSERT INTO model_versions (${MODEL_INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      modelInsertValues(next, record, weights, nowIso()),
    );
    if (record.privacy) await client.query('INSERT INTO privacy_accounts (version, account) VALUES ($1, $2)', [next, JSON.stringify(record.privacy)]);
    const inserted = await client.query<ModelMetaRow>(`SELECT ${MODEL_META_COLUMNS} FROM model_versions WHERE version = $1`, [next]);
    return rowToModelMeta(inserted.rows[0]!, alreadyParsed);
  }

  async insertModelVersion(version: NewModelVersion, weights: Uint8Array): Promise<ModelVersionMeta> {
    return this.tx((client) => this.insertVersion(client, version, weights));
  }

  async latestModelVersion(): Promise<ModelVersionMeta | null> {
    const { rows } = await this.pool.query<ModelMetaRow>(`SELECT ${MODEL_META_COLUMNS} FROM model_versions ORDER BY version DESC LIMIT 1`);
    return rows[0] ? rowToModelMeta(rows[0], alreadyParsed) : null;
  }

  /** Newest first. */
  async listModelVersions(): Promise<ModelVersionMeta[]> {
    const { rows } = await this.pool.query<ModelMetaRow>(`SELECT ${MODEL_META_COLUMNS} FROM model_versions ORDER BY version DESC`);
    return rows.map((row) => rowToModelMeta(row, alreadyParsed));
  }

  async getModelVersion(version: number): Promise<ModelVersionRecord | null> {
    const { rows } = await this.pool.query<ModelRecordRow>(`SELECT ${MODEL_RECORD_COLUMNS} FROM model_versions WHERE version = $1`, [version]);
    return rows[0] ? rowToModelRecord(rows[0], alreadyParsed) : null;
  }

  async getModelVersionMeta(version: number): Promise<ModelVersionMeta | null> {
    const { rows } = await this.pool.query<ModelMetaRow>(`SELECT ${MODEL_META_COLUMNS} FROM model_versions WHERE version = $1`, [version]);
    return rows[0] ? rowToModelMeta(rows[0], alreadyParsed) : null;
  }

  async getModelWeights(version: number): Promise<Uint8Array | null> {
    const { rows } = await this.pool.query<{ weights: Buffer }>('SELECT weights FROM model_versions WHERE version = $1', [version]);
    return rows[0] ? asUint8(rows[0].weights) : null;
  }

  async updateModelMetrics(version: number, metrics: Record<string, number | string | null>): Promise<void> {
    // jsonb || jsonb is a shallow merge in which the right side wins (null values are kept).
    const result = await this.pool.query('UPDATE model_versions SET metrics = metrics || $2::jsonb WHERE version = $1', [version, JSON.stringify(metrics)]);
    if (result.rowCount === 0) throw new RecordNotFoundError(`model version ${version}`);
  }

  async createRound(round: RoundRecord): Promise<void> {
    await this.pool.query(`INSERT INTO rounds (${ROUND_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, roundValues(round));
  }

  private async patchRound(client: pg.PoolClient, id: string, patch: RoundPatch): Promise<RoundRecord> {
    const { rows } = await client.query<RoundRow>(`SELECT ${ROUND_COLUMNS} FROM rounds WHERE id = $1 FOR UPDATE`, [id]);
    if (!rows[0]) throw new RecordNotFoundError(`round ${id}`);
    const next = applyRoundPatch(rowToRound(rows[0], alreadyParsed), patch, nowIso());
    const [, , status, , metrics, committedVersion, error, , updatedAt, endedAt] = roundValues(next);
    await client.query('UPDATE rounds SET status = $1, metrics = $2, committed_version = $3, error = $4, updated_at = $5, ended_at = $6 WHERE id = $7', [
      status,
      metrics,
      committedVersion,
      error,
      updatedAt,
      endedAt,
      id,
    ]);
    return next;
  }

  async updateRound(id: string, patch: RoundPatch): Promise<RoundRecord> {
    return this.tx((client) => this.patchRound(client, id, patch));
  }

  async getRound(id: string): Promise<RoundRecord | null> {
    const { rows } = await this.pool.query<RoundRow>(`SELECT ${ROUND_COLUMNS} FROM rounds WHERE id = $1`, [id]);
    return rows[0] ? rowToRound(rows[0], alreadyParsed) : null;
  }

  async listRounds(options: { limit?: number; offset?: number } = {}): Promise<RoundRecord[]> {
    const { rows } = await this.pool.query<RoundRow>(`SELECT ${ROUND_COLUMNS} FROM rounds ORDER BY created_at DESC, seq DESC LIMIT $1 OFFSET $2`, [
      options.limit ?? null,
      options.offset ?? 0,
    ]);
    return rows.map((row) => rowToRound(row, alreadyParsed));
  }

  async findRoundsByStatus(statuses: readonly RoundStatus[]): Promise<RoundRecord[]> {
    if (statuses.length === 0) return [];
    const { rows } = await this.pool.query<RoundRow>(`SELECT ${ROUND_COLUMNS} FROM rounds WHERE status = ANY($1) ORDER BY seq`, [[...statuses]]);
    return rows.map((row) => rowToRound(row, alreadyParsed));
  }

  private async insertTransition(client: pg.Pool | pg.PoolClient, transition: RoundTransition): Promise<void> {
    await client.query('INSERT INTO round_transitions (round_id, from_status, to_status, at, note) VALUES ($1, $2, $3, $4, $5)', transitionValues(transition));
  }

  async appendTransition(transition: RoundTransition): Promise<void> {
    await this.insertTransition(this.pool, transition);
  }

  async listTransitions(roundId: string): Promise<RoundTransition[]> {
    const { rows } = await this.pool.query<TransitionRow>(
      'SELECT round_id, from_status, to_status, at, note FROM round_transitions WHERE round_id = $1 ORDER BY seq',
      [roundId],
    );
    return rows.map(rowToTransition);
  }

  async insertEvaluationReport(report: EvaluationReportRecord): Promise<boolean> {
    try {
      const result = await this.pool.query(
        `INSERT INTO evaluation_reports (${EVALUATION_REPORT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
        evaluationReportValues(report),
      );
      return result.rowCount === 1;
    } catch (error) {
      if ((error as { code?: unknown }).code === FOREIGN_KEY_VIOLATION) throw new RecordNotFoundError(`model version ${report.modelVersion}`);
      throw error;
    }
  }

  async listEvaluationReports(version: number): Promise<EvaluationNumbers[]> {
    // In steps along the key, as SqliteStorage: the driver parses a whole answer in one go.
    const reports: EvaluationNumbers[] = [];
    let after = '';
    for (;;) {
      const { rows } = await this.pool.query<EvaluationReportRow & { client_id: string }>(
        `SELECT client_id, ${EVALUATION_NUMBER_COLUMNS} FROM evaluation_reports WHERE model_version = $1 AND client_id > $2 ORDER BY client_id LIMIT $3`,
        [version, after, REPORTS_PER_READ],
      );
      for (const row of rows) reports.push(rowToEvaluationNumbers(row));
      if (rows.length < REPORTS_PER_READ) return reports;
      after = rows[rows.length - 1]!.client_id;
    }
  }

  async commitRound(
    roundId: string,
    version: NewModelVersion,
    weights: Uint8Array,
    patch: RoundPatch,
    transition: Omit<RoundTransition, 'to'>,
    fence: number | null = null,
  ): Promise<{ model: ModelVersionMeta; round: RoundRecord }> {
    return this.tx(async (client) => {
      if (fence !== null) {
        // FOR SHARE: a process taking the lease meanwhile waits for this transaction before moving the token.
        const { rows } = await client.query<{ epoch: string }>('SELECT epoch FROM round_lease WHERE id = 1 FOR SHARE');
        const current = Number(rows[0]?.epoch);
        if (current !== fence) throw new FencedOffError(fence, current);
      }
      const model = await this.insertVersion(client, commitVersion(roundId, version), weights);
      const round = await this.patchRound(client, roundId, commitPatch(patch, model.version));
      await this.insertTransition(client, { ...transition, to: round.status });
      return { model, round };
    });
  }
}
