import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { RoundStatus } from '@flock/client-sdk/protocol';
import type { ModelVersionMeta, RoundRecord, RoundTransition } from '../contract/index.js';
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
  applyRoundPatch,
  asUint8,
  commitPatch,
  commitVersion,
  evaluationReportValues,
  modelInsertValues,
  nowIso,
  parseJsonText,
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
import type { EvaluationNumbers, EvaluationReportRecord, ModelVersionRecord, NewModelVersion, RoundPatch, Storage } from './storage.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS model_versions (
  version        INTEGER PRIMARY KEY CHECK (version > 0),
  parent_version INTEGER REFERENCES model_versions (version),
  round_id       TEXT,
  source         TEXT NOT NULL CHECK (source IN (${SOURCE_LIST})),
  created_at     TEXT NOT NULL,
  num_parameters INTEGER NOT NULL,
  metrics        TEXT NOT NULL,
  topology       TEXT NOT NULL,
  weight_specs   TEXT NOT NULL,
  strategy_state BLOB,
  weights        BLOB NOT NULL
);
-- Versions are immutable: only their metrics (evaluations arriving later) may change.
CREATE TRIGGER IF NOT EXISTS model_versions_immutable
  BEFORE UPDATE OF version, parent_version, round_id, source, created_at, num_parameters,
                   topology, weight_specs, strategy_state, weights ON model_versions
  BEGIN SELECT RAISE(ABORT, 'model versions are immutable'); END;
CREATE TRIGGER IF NOT EXISTS model_versions_no_delete
  BEFORE DELETE ON model_versions
  BEGIN SELECT RAISE(ABORT, 'model versions are never deleted'); END;

-- One privacy account per version (privacy/ledger.ts), written with it; immutable like it.
CREATE TABLE IF NOT EXISTS privacy_accounts (
  version INTEGER PRIMARY KEY REFERENCES model_versions (version),
  account TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS privacy_accounts_immutable
  BEFORE UPDATE ON privacy_accounts
  BEGIN SELECT RAISE(ABORT, 'privacy accounts are immutable'); END;

CREATE TABLE IF NOT EXISTS rounds (
  seq               INTEGER PRIMARY KEY AUTOINCREMENT,
  id                TEXT NOT NULL UNIQUE,
  base_version      INTEGER NOT NULL,
  status            TEXT NOT NULL CHECK (status IN (${STATUS_LIST})),
  params            TEXT NOT NULL,
  metrics           TEXT NOT NULL,
  committed_version INTEGER,
  error             TEXT,
  created_at        TEXT NOT NULL,
  updated_at        TEXT NOT NULL,
  ended_at          TEXT
);
CREATE INDEX IF NOT EXISTS rounds_status ON rounds (status);

CREATE TABLE IF NOT EXISTS round_transitions (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,
  round_id    TEXT NOT NULL REFERENCES rounds (id),
  from_status TEXT CHECK (from_status IN (${STATUS_LIST})),
  to_status   TEXT NOT NULL CHECK (to_status IN (${STATUS_LIST})),
  at          TEXT NOT NULL,
  note        TEXT
);
CREATE INDEX IF NOT EXISTS round_transitions_round ON round_transitions (round_id, seq);

-- One row per device and version: the key refuses a second report, whatever the coordinator remembers.
-- Only the numbers a report carries and the device's pseudonymous id. (Created on existing databases too.)
CREATE TABLE IF NOT EXISTS evaluation_reports (
  model_version     INTEGER NOT NULL REFERENCES model_versions (version),
  client_id         TEXT NOT NULL,
  num_examples      INTEGER NOT NULL CHECK (num_examples > 0),
  global_loss       REAL NOT NULL CHECK (global_loss >= 0),
  global_accuracy   REAL NOT NULL CHECK (global_accuracy BETWEEN 0 AND 1),
  personal_loss     REAL CHECK (personal_loss >= 0),
  personal_accuracy REAL CHECK (personal_accuracy BETWEEN 0 AND 1),
  adopted           INTEGER NOT NULL CHECK (adopted IN (0, 1)),
  PRIMARY KEY (model_version, client_id)
) WITHOUT ROWID;
`;

/**
 * The embedded default: one SQLite file. WAL journal with synchronous=FULL, so every committed
 * transaction is fsynced before the call returns (a kill -9 or power loss right after never loses
 * it). better-sqlite3 is synchronous; the async signatures only satisfy the Storage interface.
 */
export class SqliteStorage implements Storage {
  private db: Database.Database | null = null;

  constructor(private readonly path: string) {}

  async init(): Promise<void> {
    if (this.db) return;
    if (this.path !== ':memory:') mkdirSync(dirname(this.path), { recursive: true });
    const db = new Database(this.path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      // Another coordinator process (or the CLI) may hold the write lock briefly.
      db.pragma('busy_timeout = 5000');
      db.exec(SCHEMA);
    } catch (error) {
      db.close();
      throw error;
    }
    this.db = db;
  }

  async close(): Promise<void> {
    this.db?.close();
    this.db = null;
  }

  private get conn(): Database.Database {
    if (!this.db) throw new Error('SqliteStorage is not initialised (call init())');
    return this.db;
  }

  /** Runs fn in a BEGIN IMMEDIATE transaction: the write lock is taken up front, so max+1 is race-free across processes. */
  private write<T>(fn: () => T): T {
    return this.conn.transaction(fn).immediate();
  }

  // Must run inside write(): numbers the version max+1 under the write lock.
  private insertVersion(record: NewModelVersion, weights: Uint8Array): ModelVersionMeta {
    validateNewVersion(record, weights);
    const { next } = this.conn.prepare('SELECT COALESCE(MAX(version), 0) + 1 AS next FROM model_versions').get() as { next: number };
    this.conn
      .prepare(`INSERT INTO model_versions (${MODEL_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(...modelInsertValues(next, record, weights, nowIso()));
    if (record.privacy) this.conn.prepare('INSERT INTO privacy_accounts (version, account) VALUES (?, ?)').run(next, JSON.stringify(record.privacy));
    return this.metaOf(next)!;
  }

  private metaOf(version: number): ModelVersionMeta | null {
    const row = this.conn.prepare(`SELECT ${MODEL_META_COLUMNS} FROM model_versions WHERE version = ?`).get(version) as ModelMetaRow | undefined;
    return row ? rowToModelMeta(row, parseJsonText) : null;
  }

  async insertModelVersion(version: NewModelVersion, weights: Uint8Array): Promise<ModelVersionMeta> {
    return this.write(() => this.insertVersion(version, weights));
  }

  async latestModelVersion(): Promise<ModelVersionMeta | null> {
    const row = this.conn.prepare(`SELECT ${MODEL_META_COLUMNS} FROM model_versions ORDER BY version DESC LIMIT 1`).get() as ModelMetaRow | undefined;
    return row ? rowToModelMeta(row, parseJsonText) : null;
  }

  /** Newest first. */
  async listModelVersions(): Promise<ModelVersionMeta[]> {
    const rows = this.conn.prepare(`SELECT ${MODEL_META_COLUMNS} FROM model_versions ORDER BY version DESC`).all() as ModelMetaRow[];
    return rows.map((row) => rowToModelMeta(row, parseJsonText));
  }

  async getModelVersion(version: number): Promise<ModelVersionRecord | null> {
    const row = this.conn.prepare(`SELECT ${MODEL_RECORD_COLUMNS} FROM model_versions WHERE version = ?`).get(version) as ModelRecordRow | undefined;
    return row ? rowToModelRecord(row, parseJsonText) : null;
  }

  async getModelVersionMeta(version: number): Promise<ModelVersionMeta | null> {
    return this.metaOf(version);
  }

  async getModelWeights(version: number): Promise<Uint8Array | null> {
    const row = this.conn.prepare('SELECT weights FROM model_versions WHERE version = ?').get(version) as { weights: Buffer } | undefined;
    return row ? asUint8(row.weights) : null;
  }

  async updateModelMetrics(version: number, metrics: Record<string, number | string | null>): Promise<void> {
    this.write(() => {
      const meta = this.metaOf(version);
      if (!meta) throw new RecordNotFoundError(`model version ${version}`);
      this.conn.prepare('UPDATE model_versions SET metrics = ? WHERE version = ?').run(JSON.stringify({ ...meta.metrics, ...metrics }), version);
    });
  }

  async createRound(round: RoundRecord): Promise<void> {
    this.write(() => {
      this.conn.prepare(`INSERT INTO rounds (${ROUND_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(...roundValues(round));
    });
  }

  // Must run inside write().
  private patchRound(id: string, patch: RoundPatch): RoundRecord {
    const row = this.conn.prepare(`SELECT ${ROUND_COLUMNS} FROM rounds WHERE id = ?`).get(id) as RoundRow | undefined;
    if (!row) throw new RecordNotFoundError(`round ${id}`);
    const next = applyRoundPatch(rowToRound(row, parseJsonText), patch, nowIso());
    const [, , status, , metrics, committedVersion, error, , updatedAt, endedAt] = roundValues(next);
    this.conn
      .prepare('UPDATE rounds SET status = ?, metrics = ?, committed_version = ?, error = ?, updated_at = ?, ended_at = ? WHERE id = ?')
      .run(status, metrics, committedVersion, error, updatedAt, endedAt, id);
    return next;
  }

  async updateRound(id: string, patch: RoundPatch): Promise<RoundRecord> {
    return this.write(() => this.patchRound(id, patch));
  }

  async getRound(id: string): Promise<RoundRecord | null> {
    const row = this.conn.prepare(`SELECT ${ROUND_COLUMNS} FROM rounds WHERE id = ?`).get(id) as RoundRow | undefined;
    return row ? rowToRound(row, parseJsonText) : null;
  }

  async listRounds(options: { limit?: number; offset?: number } = {}): Promise<RoundRecord[]> {
    const rows = this.conn
      .prepare(`SELECT ${ROUND_COLUMNS} FROM rounds ORDER BY created_at DESC, seq DESC LIMIT ? OFFSET ?`)
      .all(options.limit ?? -1, options.offset ?? 0) as RoundRow[];
    return rows.map((row) => rowToRound(row, parseJsonText));
  }

  async findRoundsByStatus(statuses: readonly RoundStatus[]): Promise<RoundRecord[]> {
    if (statuses.length === 0) return [];
    const rows = this.conn
      .prepare(`SELECT ${ROUND_COLUMNS} FROM rounds WHERE status IN (${statuses.map(() => '?').join(', ')}) ORDER BY seq`)
      .all(...statuses) as RoundRow[];
    return rows.map((row) => rowToRound(row, parseJsonText));
  }

  private insertTransition(transition: RoundTransition): void {
    this.conn.prepare('INSERT INTO round_transitions (round_id, from_status, to_status, at, note) VALUES (?, ?, ?, ?, ?)').run(...transitionValues(transition));
  }

  async appendTransition(transition: RoundTransition): Promise<void> {
    this.write(() => this.insertTransition(transition));
  }

  async listTransitions(roundId: string): Promise<RoundTransition[]> {
    const rows = this.conn
      .prepare('SELECT round_id, from_status, to_status, at, note FROM round_transitions WHERE round_id = ? ORDER BY seq')
      .all(roundId) as TransitionRow[];
    return rows.map(rowToTransition);
  }

  async insertEvaluationReport(report: EvaluationReportRecord): Promise<boolean> {
    return this.write(() => {
      if (!this.metaOf(report.modelVersion)) throw new RecordNotFoundError(`model version ${report.modelVersion}`);
      const { changes } = this.conn
        .prepare(`INSERT INTO evaluation_reports (${EVALUATION_REPORT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
        .run(...evaluationReportValues(report));
      return changes === 1;
    });
  }

  async listEvaluationReports(version: number): Promise<EvaluationNumbers[]> {
    // better-sqlite3 blocks the event loop while it reads: read a large version in steps along the key, yielding between them.
    const step = this.conn.prepare(
      `SELECT client_id, ${EVALUATION_NUMBER_COLUMNS} FROM evaluation_reports WHERE model_version = ? AND client_id > ? ORDER BY client_id LIMIT ?`,
    );
    const reports: EvaluationNumbers[] = [];
    let after = '';
    for (;;) {
      const rows = step.all(version, after, REPORTS_PER_READ) as (EvaluationReportRow & { client_id: string })[];
      for (const row of rows) reports.push(rowToEvaluationNumbers(row));
      if (rows.length < REPORTS_PER_READ) return reports;
      after = rows[rows.length - 1]!.client_id;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  async commitRound(
    roundId: string,
    version: NewModelVersion,
    weights: Uint8Array,
    patch: RoundPatch,
    transition: Omit<RoundTransition, 'to'>,
  ): Promise<{ model: ModelVersionMeta; round: RoundRecord }> {
    return this.write(() => {
      const model = this.insertVersion(commitVersion(roundId, version), weights);
      const round = this.patchRound(roundId, commitPatch(patch, model.version));
      this.insertTransition({ ...transition, to: round.status });
      return { model, round };
    });
  }
}
