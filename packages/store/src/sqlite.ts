/**
 * The embedded default: SQLite through better-sqlite3 (version 12 on Node 20), in WAL mode with
 * foreign keys on and full synchronous commits, so that an answer given is an answer kept.
 */
import Database from 'better-sqlite3';
import { StoreError } from './errors.js';
import { MIGRATIONS_TABLE, migrationChecksum, migrationSql, validateMigrations } from './migrate.js';
import type { Migration, Params, Queryable, RunResult, SqlValue, Store } from './store.js';

export interface SqliteOptions {
  migrations: readonly Migration[];
  /** Milliseconds to wait on a lock held by another process before failing. */
  busyTimeoutMs?: number;
}

export const SQLITE_BUSY_TIMEOUT_MS_DEFAULT = 5000;

function checkParams(params: Params): SqlValue[] {
  return params.map((p, i) => {
    if (typeof p === 'number' && Number.isInteger(p) && !Number.isSafeInteger(p)) {
      throw new StoreError('STORE_QUERY_FAILED', `params[${i}]: integer beyond Number.MAX_SAFE_INTEGER`);
    }
    return p;
  });
}

/** A driver error, reduced to its kind: SQLite messages may quote values, so they are not passed on. */
function queryError(e: unknown): StoreError {
  const code = (e as { code?: string }).code ?? 'unknown';
  const msg = e instanceof Error ? e.message : '';
  // Constraint messages name the table and column ("UNIQUE constraint failed: t.c"), never values.
  const detail =
    /(UNIQUE|NOT NULL|CHECK|FOREIGN KEY|PRIMARY KEY) constraint failed(: [\w.]+(, [\w.]+)*)?/.exec(
      msg,
    )?.[0] ?? code;
  return new StoreError('STORE_QUERY_FAILED', `statement failed: ${detail}`);
}

/** Distinct SQL texts whose compiled statement is kept per database; cleared whole when full. */
export const SQLITE_STATEMENT_CACHE_MAX = 1000;
const statementCaches = new WeakMap<Database.Database, Map<string, Database.Statement>>();

function prepare(db: Database.Database, sql: string): Database.Statement {
  let cache = statementCaches.get(db);
  if (!cache) {
    cache = new Map();
    statementCaches.set(db, cache);
  }
  let st = cache.get(sql);
  if (!st) {
    st = db.prepare(sql);
    // Integers are read as bigint and narrowed below: a plain read would round a value past 2^53.
    if (st.reader) st.safeIntegers(true);
    if (cache.size >= SQLITE_STATEMENT_CACHE_MAX) cache.clear();
    cache.set(sql, st);
  }
  return st;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);

/** Integers come back as numbers when exact, as PostgreSQL's BIGINT do; past 2^53 they are refused. */
function narrowRow(row: Record<string, unknown>): Record<string, unknown> {
  for (const k in row) {
    const v = row[k];
    if (typeof v === 'bigint') {
      if (v > MAX_SAFE || v < MIN_SAFE) {
        throw new StoreError('STORE_INTEGER_UNSAFE', `column ${k}: integer beyond Number.MAX_SAFE_INTEGER`);
      }
      row[k] = Number(v);
    }
  }
  return row;
}

class SqliteQueryable implements Queryable {
  constructor(protected readonly db: Database.Database) {}

  async run(sql: string, params: Params = []): Promise<RunResult> {
    const p = checkParams(params);
    try {
      return { changes: prepare(this.db, sql).run(...p).changes };
    } catch (e) {
      throw queryError(e);
    }
  }

  async get<T>(sql: string, params: Params = []): Promise<T | undefined> {
    const p = checkParams(params);
    let row: Record<string, unknown> | undefined;
    try {
      row = prepare(this.db, sql).get(...p) as Record<string, unknown> | undefined;
    } catch (e) {
      throw queryError(e);
    }
    return (row === undefined ? undefined : narrowRow(row)) as T | undefined;
  }

  async all<T>(sql: string, params: Params = []): Promise<T[]> {
    const p = checkParams(params);
    let rows: Record<string, unknown>[];
    try {
      rows = prepare(this.db, sql).all(...p) as Record<string, unknown>[];
    } catch (e) {
      throw queryError(e);
    }
    for (const r of rows) narrowRow(r);
    return rows as T[];
  }
}

class SqliteStore extends SqliteQueryable implements Store {
  readonly dialect = 'sqlite' as const;
  #closed = false;
  #queue: Promise<unknown> = Promise.resolve();

  #check(): void {
    if (this.#closed) throw new StoreError('STORE_CLOSED', 'store: used after close()');
  }

  /** Every statement and transaction of this store runs in order, one at a time. */
  #enqueue<T>(fn: () => Promise<T>): Promise<T> {
    this.#check();
    const next = this.#queue.then(fn);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  override run(sql: string, params?: Params): Promise<RunResult> {
    return this.#enqueue(() => super.run(sql, params));
  }

  override get<T>(sql: string, params?: Params): Promise<T | undefined> {
    return this.#enqueue(() => super.get<T>(sql, params));
  }

  override all<T>(sql: string, params?: Params): Promise<T[]> {
    return this.#enqueue(() => super.all<T>(sql, params));
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const tx = new SqliteQueryable(this.db);
    return this.#enqueue(async () => {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const out = await fn(tx);
        this.db.exec('COMMIT');
        return out;
      } catch (e) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw e;
      }
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#queue;
    this.#closed = true;
    this.db.close();
  }
}

function migrate(db: Database.Database, migrations: readonly Migration[]): void {
  db.exec(
    `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)`,
  );
  const applied = db.prepare(`SELECT id, name, checksum FROM ${MIGRATIONS_TABLE} ORDER BY id`).all() as {
    id: number;
    name: string;
    checksum: string;
  }[];
  if (applied.length > migrations.length) {
    throw new StoreError(
      'STORE_SCHEMA_NEWER',
      `schema: database is at migration ${applied.length}, this program knows ${migrations.length}`,
    );
  }
  for (const row of applied) {
    const m = migrations[row.id - 1]!;
    if (migrationChecksum(m, 'sqlite') !== row.checksum) {
      throw new StoreError(
        'STORE_MIGRATION_CHANGED',
        `migration ${row.id} (${row.name}): SQL differs from the applied one`,
      );
    }
  }
  const insert = db.prepare(
    `INSERT INTO ${MIGRATIONS_TABLE} (id, name, checksum, applied_at) VALUES (?, ?, ?, ?)`,
  );
  for (const m of migrations.slice(applied.length)) {
    const step = db.transaction(() => {
      db.exec(migrationSql(m, 'sqlite'));
      insert.run(m.id, m.name, migrationChecksum(m, 'sqlite'), new Date().toISOString());
    });
    try {
      step();
    } catch (e) {
      throw new StoreError(
        'STORE_MIGRATION_FAILED',
        `migration ${m.id} (${m.name}): ${queryError(e).message}`,
        {
          cause: e,
        },
      );
    }
  }
}

/** Opens (creating if needed) a SQLite database file, or `:memory:`, and brings it to the latest migration. */
export async function openSqliteStore(path: string, opts: SqliteOptions): Promise<Store> {
  validateMigrations(opts.migrations);
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (e) {
    throw new StoreError('STORE_OPEN_FAILED', `store: cannot open ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma(`busy_timeout = ${Math.trunc(opts.busyTimeoutMs ?? SQLITE_BUSY_TIMEOUT_MS_DEFAULT)}`);
    migrate(db, opts.migrations);
  } catch (e) {
    db.close();
    throw e;
  }
  return new SqliteStore(db);
}
