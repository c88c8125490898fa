import Database from 'better-sqlite3';

/**
 * A store's own connection to the embedded SQLite file, its tables created on init (WAL: readers
 * never wait; writers take turns with the coordinator's other connections under busy_timeout).
 */
export abstract class SqliteConnection {
  private db: Database.Database | null = null;

  constructor(
    private readonly path: string,
    private readonly schema: string,
  ) {}

  async init(): Promise<void> {
    if (this.db) return;
    const db = new Database(this.path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    db.exec(this.schema);
    this.db = db;
  }

  async close(): Promise<void> {
    this.db?.close();
    this.db = null;
  }

  protected get isOpen(): boolean {
    return this.db !== null;
  }

  protected get conn(): Database.Database {
    if (!this.db) throw new Error(`${this.constructor.name} is not initialised`);
    return this.db;
  }
}
