/**
 * The embedded default: SQLite through better-sqlite3 (version 12 on Node 20), in WAL mode with
 * foreign keys on and full synchronous commits, so that an answer given is an answer kept.
 */
import { closeSync, fsync, fsyncSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
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

/** Runs one statement now, on the connection as it is. */
function runNow(db: Database.Database, sql: string, p: SqlValue[]): RunResult {
  try {
    return { changes: prepare(db, sql).run(...p).changes };
  } catch (e) {
    throw queryError(e);
  }
}

function getNow<T>(db: Database.Database, sql: string, p: SqlValue[]): T | undefined {
  let row: Record<string, unknown> | undefined;
  try {
    row = prepare(db, sql).get(...p) as Record<string, unknown> | undefined;
  } catch (e) {
    throw queryError(e);
  }
  return (row === undefined ? undefined : narrowRow(row)) as T | undefined;
}

function allNow<T>(db: Database.Database, sql: string, p: SqlValue[]): T[] {
  let rows: Record<string, unknown>[];
  try {
    rows = prepare(db, sql).all(...p) as Record<string, unknown>[];
  } catch (e) {
    throw queryError(e);
  }
  for (const r of rows) narrowRow(r);
  return rows as T[];
}

/** The `tx` a transaction function receives: statements run at once, inside the open transaction. */
class SqliteQueryable implements Queryable {
  constructor(protected readonly db: Database.Database) {}

  async run(sql: string, params: Params = []): Promise<RunResult> {
    return runNow(this.db, sql, checkParams(params));
  }

  async get<T>(sql: string, params: Params = []): Promise<T | undefined> {
    return getNow<T>(this.db, sql, checkParams(params));
  }

  async all<T>(sql: string, params: Params = []): Promise<T[]> {
    return allNow<T>(this.db, sql, checkParams(params));
  }
}

/**
 * Most operations one commit may carry (group commit): past it, the batch commits and the rest wait
 * for the next one.
 */
export const SQLITE_GROUP_COMMIT_MAX = 256;

type OpKind = 'run' | 'get' | 'all' | 'tx';

/** One queued operation of the store, settled only once the batch holding it is committed. */
interface Op {
  kind: OpKind;
  /** Runs outside any batch (see ALONE). */
  alone: boolean;
  sql: string;
  params: SqlValue[];
  fn: ((tx: Queryable) => Promise<unknown>) | undefined;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  ok: boolean;
  value: unknown;
}

/** Statements that cannot run inside a transaction (a checkpoint) run alone, between batches. */
const ALONE = /^\s*PRAGMA\b/i;

class SqliteStore implements Store {
  readonly dialect = 'sqlite' as const;
  readonly #db: Database.Database;
  readonly #tx: SqliteQueryable;
  #closed = false;
  /** Operations waiting for the next batch, in arrival order. */
  #pending: Op[] = [];
  #scheduled = false;
  /** A batch is open: new operations join the queue, reads included (they could see its uncommitted work). */
  #running = false;
  #idle: (() => void)[] = [];

  /** Flushes the write-ahead log to disk off the event loop; undefined for `:memory:`. */
  readonly #wal: WalSync | undefined;

  constructor(db: Database.Database, wal: WalSync | undefined) {
    this.#db = db;
    this.#tx = new SqliteQueryable(db);
    this.#wal = wal;
  }

  #check(): void {
    if (this.#closed) throw new StoreError('STORE_CLOSED', 'store: used after close()');
  }

  #enqueue(
    kind: OpKind,
    sql: string,
    params: Params,
    fn?: (tx: Queryable) => Promise<unknown>,
  ): Promise<never> {
    this.#check();
    const p = checkParams(params);
    return new Promise<never>((resolve, reject) => {
      this.#pending.push({
        kind,
        alone: kind !== 'tx' && ALONE.test(sql),
        sql,
        params: p,
        fn,
        resolve: resolve as (v: unknown) => void,
        reject,
        ok: false,
        value: undefined,
      });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#running) return;
    this.#scheduled = true;
    // After the I/O callbacks of this turn of the event loop, so that the work they queue shares a commit.
    setImmediate(() => {
      this.#scheduled = false;
      void this.#drain();
    });
  }

  /** Nothing queued, open or waiting for its fsync: what a read sees is on disk, so it can run at once. */
  #quiet(): boolean {
    return !this.#running && this.#pending.length === 0 && !(this.#wal?.busy ?? false);
  }

  async run(sql: string, params: Params = []): Promise<RunResult> {
    return this.#enqueue('run', sql, params);
  }

  /**
   * A statement that only reads, with no batch open and nothing queued, runs at once, outside any
   * batch: it sees only committed work, in the order it was asked. What it sees may still be waiting
   * for its fsync, so its answer is held until the fsync in flight (or the one already asked for)
   * has returned (`#afterSync`): never a new fsync, never a commit of its own. Anything that writes
   * (an `INSERT … RETURNING` through `get`, say) goes through a batch and its fsync like `run`,
   * whatever method carried it.
   */
  #readsNow(sql: string): boolean {
    if (this.#running || this.#pending.length > 0 || ALONE.test(sql)) return false;
    this.#check();
    try {
      return prepare(this.#db, sql).readonly;
    } catch {
      return false; // let the queued path report the error
    }
  }

  async get<T>(sql: string, params: Params = []): Promise<T | undefined> {
    if (this.#readsNow(sql)) return this.#afterSync(getNow<T>(this.#db, sql, checkParams(params)));
    return this.#enqueue('get', sql, params);
  }

  async all<T>(sql: string, params: Params = []): Promise<T[]> {
    if (this.#readsNow(sql)) return this.#afterSync(allNow<T>(this.#db, sql, checkParams(params)));
    return this.#enqueue('all', sql, params);
  }

  /** `value`, once every commit made so far is on disk (at once when none waits for its fsync). */
  #afterSync<V>(value: V): V | Promise<V> {
    const wal = this.#wal;
    if (!wal?.busy) return value;
    return wal.covered().then(() => value);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.#enqueue('tx', '', [], fn);
  }

  /** Runs one operation inside the open batch, recording its outcome on it. */
  async #one(op: Op): Promise<void> {
    const db = this.#db;
    try {
      if (op.kind === 'run') op.value = runNow(db, op.sql, op.params);
      else if (op.kind === 'get') op.value = getNow(db, op.sql, op.params);
      else if (op.kind === 'all') op.value = allNow(db, op.sql, op.params);
      else {
        db.exec('SAVEPOINT op');
        try {
          op.value = await op.fn!(this.#tx);
          db.exec('RELEASE op');
        } catch (e) {
          if (db.inTransaction) {
            db.exec('ROLLBACK TO op');
            db.exec('RELEASE op');
          }
          throw e;
        }
      }
      op.ok = true;
    } catch (e) {
      op.ok = false;
      op.value = e;
    }
  }

  /**
   * Group commit: one BEGIN IMMEDIATE … COMMIT carries every operation queued, each transaction in a
   * savepoint of its own so that one that throws undoes only itself. The connection runs with
   * `synchronous = OFF`, so COMMIT only hands the log to the OS; the store then fsyncs the write-ahead
   * log on the libuv thread pool and settles the batch's operations only when that fsync has returned.
   * So no answer depends on work not on disk (the guarantee of `synchronous = FULL`), one fsync covers
   * a whole batch, and the event loop never waits for the disk: the next batch runs while this one's
   * fsync is in flight.
   */
  async #drain(): Promise<void> {
    this.#running = true;
    const db = this.#db;
    const batch: Op[] = [];
    const settled: Promise<void>[] = [];
    /** Settles `ops` once what they saw or wrote is on disk (a failure at once: nothing of it is kept). */
    const settle = (ops: Op[], failure?: StoreError) => {
      const these = ops.splice(0);
      const go = (syncFailure?: StoreError) => {
        for (const op of these) {
          const f = failure ?? syncFailure;
          if (f) op.reject(f);
          else if (op.ok) op.resolve(op.value);
          else op.reject(op.value);
        }
      };
      if (failure || !this.#wal) go();
      else
        settled.push(
          this.#wal.sync().then(
            () => go(),
            (e: StoreError) => go(e),
          ),
        );
    };
    const commit = () => {
      if (!db.inTransaction) return settle(batch, lostBatch());
      try {
        db.exec('COMMIT');
      } catch (e) {
        if (db.inTransaction) db.exec('ROLLBACK');
        return settle(batch, new StoreError('STORE_QUERY_FAILED', `commit failed: ${queryError(e).message}`));
      }
      this.#commits++;
      this.#stats.commits++;
      this.#afterCommit();
      settle(batch);
    };
    try {
      let taken = 0;
      while (this.#pending.length > 0 && taken < SQLITE_GROUP_COMMIT_MAX) {
        const op = this.#pending.shift()!;
        taken++;
        this.#stats.operations++;
        if (op.alone) {
          if (batch.length > 0) commit();
          try {
            op.value =
              op.kind === 'run'
                ? runNow(db, op.sql, op.params)
                : op.kind === 'get'
                  ? getNow(db, op.sql, op.params)
                  : allNow(db, op.sql, op.params);
            op.ok = true;
          } catch (e) {
            op.value = e;
          }
          settle([op]);
          continue;
        }
        if (!db.inTransaction) {
          try {
            db.exec('BEGIN IMMEDIATE');
          } catch (e) {
            settle([op], new StoreError('STORE_QUERY_FAILED', `begin failed: ${queryError(e).message}`));
            continue;
          }
        }
        await this.#one(op);
        batch.push(op);
        // A statement that ends the whole transaction (disk full, I/O error) takes the batch with it.
        if (!db.inTransaction) settle(batch, lostBatch());
      }
      if (batch.length > 0) commit();
      if (this.#commits >= SQLITE_CHECKPOINT_EVERY_COMMITS) this.#checkpoint();
    } finally {
      this.#running = false;
      if (this.#pending.length > 0) this.#schedule();
      else if (settled.length > 0) void Promise.all(settled).then(() => this.#wakeIfIdle());
      else this.#wakeIfIdle();
    }
  }

  /** Commits since the last checkpoint. */
  #commits = 0;
  readonly #stats: SqliteStoreStats = { operations: 0, commits: 0, fsyncs: 0 };

  /** Counters since open (for benchmarks and tests). */
  stats(): SqliteStoreStats {
    return { ...this.#stats, fsyncs: this.#wal?.fsyncs ?? 0 };
  }

  /**
   * Copies the log into the database file. Automatic checkpoints are off: under `synchronous = OFF`
   * one would not fsync the database file before the log restarts over the frames it copied, and the
   * restarted log's new header would not be synced before its first frames. So the checkpoint runs
   * with `synchronous = FULL` (log synced, pages copied, database file synced), and FULL stays on for
   * the next commit, the one that restarts the log and writes (and syncs) its new header; only then
   * does the connection go back to OFF. A frame is never overwritten before its page is on disk, and
   * a stale frame is never behind a header that could make it look valid again.
   */
  #checkpoint(): void {
    this.#commits = 0;
    this.#db.pragma('synchronous = FULL');
    this.#fullUntilCommit = true;
    try {
      this.#db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      // Busy (another process reading): the next one copies it; the log only grows meanwhile.
    }
  }

  /** FULL is on until the next COMMIT (see #checkpoint). */
  #fullUntilCommit = false;

  #afterCommit(): void {
    if (this.#fullUntilCommit) {
      this.#fullUntilCommit = false;
      this.#db.pragma('synchronous = OFF');
    }
  }

  #wakeIfIdle(): void {
    if (this.#quiet() && !this.#scheduled) for (const w of this.#idle.splice(0)) w();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#quiet() || this.#scheduled) await new Promise<void>((r) => this.#idle.push(r));
    try {
      this.#db.pragma('synchronous = FULL');
      this.#db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      // The log stays; the next open recovers it.
    }
    this.#db.close();
    this.#wal?.close();
  }
}

export interface SqliteStoreStats {
  /** Queued operations (statements and transactions) run in batches. */
  operations: number;
  /** COMMITs: one per batch. */
  commits: number;
  /** fsyncs of the write-ahead log (one may cover several batches). */
  fsyncs: number;
}

/** The SQLite store's counters, or undefined for another store. */
export function sqliteStoreStats(store: Store): SqliteStoreStats | undefined {
  return store instanceof SqliteStore ? store.stats() : undefined;
}

/** Commits between two checkpoints of the write-ahead log into the database file. */
export const SQLITE_CHECKPOINT_EVERY_COMMITS = 500;

/**
 * fsync of the write-ahead log, off the event loop, coalesced: a caller waits for an fsync that
 * started after it asked, and while one runs every new caller shares the next one.
 */
class WalSync {
  readonly #path: string;
  #fd: number | undefined;
  /** Callers waiting for the next fsync (one that starts after they asked). */
  #queued: { resolve: () => void; reject: (e: StoreError) => void }[] = [];
  /** Callers of the fsync in flight. */
  #current: { resolve: () => void; reject: (e: StoreError) => void }[] = [];
  #running = false;
  fsyncs = 0;
  /** An fsync is running or asked for: committed work may not be on disk yet. */
  busy = false;

  constructor(dbPath: string) {
    this.#path = `${dbPath}-wal`;
  }

  sync(): Promise<void> {
    this.busy = true;
    return new Promise<void>((resolve, reject) => {
      this.#queued.push({ resolve, reject });
      if (!this.#running) this.#round();
    });
  }

  /**
   * Resolves once every commit made before the call is on disk, without asking for an fsync of its
   * own: every commit has asked for one (`sync`), so the newest is either queued for the next round or
   * covered by the round in flight.
   */
  covered(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      (this.#queued.length > 0 ? this.#queued : this.#current).push({ resolve, reject });
    });
  }

  #round(): void {
    const these = this.#queued.splice(0);
    this.#current = these;
    this.#running = true;
    this.fsyncs++;
    this.#fsyncOnce((err) => {
      this.#running = false;
      for (const w of these) {
        if (err) w.reject(err);
        else w.resolve();
      }
      if (this.#queued.length > 0) this.#round();
      else this.busy = false;
    });
  }

  /** Opens the log (created by the first write) and makes its directory entry durable, once. */
  #open(): number {
    if (this.#fd === undefined) {
      const fd = openSync(this.#path, 'r');
      const dir = openSync(dirname(this.#path), 'r');
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
      this.#fd = fd;
    }
    return this.#fd;
  }

  #fsyncOnce(done: (err?: StoreError) => void): void {
    let fd: number;
    try {
      fd = this.#open();
    } catch (e) {
      done(walError((e as NodeJS.ErrnoException).code));
      return;
    }
    // While this connection is open SQLite keeps the log file (it is removed only by the last
    // connection to close), so the descriptor stays the log's.
    fsync(fd, (err) => done(err ? walError(err.code) : undefined));
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

function walError(code: string | undefined): StoreError {
  return new StoreError('STORE_QUERY_FAILED', `fsync of the write-ahead log failed: ${code ?? 'error'}`);
}

function lostBatch(): StoreError {
  return new StoreError(
    'STORE_QUERY_FAILED',
    'transaction: SQLite rolled back the whole batch (a statement failed past its own undo); nothing of it was kept',
  );
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
    // Durability comes from the store's own fsync of the log before any operation settles (WalSync).
    db.pragma('synchronous = OFF');
    db.pragma('wal_autocheckpoint = 0');
    db.pragma('foreign_keys = ON');
    // Savepoint sub-journals and sort/temporary b-trees in memory, not in files under /var/tmp.
    db.pragma('temp_store = MEMORY');
    db.pragma(`busy_timeout = ${Math.trunc(opts.busyTimeoutMs ?? SQLITE_BUSY_TIMEOUT_MS_DEFAULT)}`);
    migrate(db, opts.migrations);
  } catch (e) {
    db.close();
    throw e;
  }
  const memory = path === ':memory:' || path === '' || db.memory;
  return new SqliteStore(db, memory ? undefined : new WalSync(db.name));
}
