/**
 * PostgreSQL (issue 7 §1) through node-postgres (`pg` 8.x), behind the same `Store` interface as
 * SQLite: `?` placeholders, the same migrations and checksums, the same typed errors.
 *
 * Isolation: every `transaction()` runs at SERIALIZABLE on a dedicated pooled client, and is run
 * again (up to `serializationRetries` times, with a short random backoff) when PostgreSQL aborts it
 * with a serialization failure (SQLSTATE 40001) or a deadlock (40P01). Serializable snapshot
 * isolation (PostgreSQL 18 docs, 13.2.3) guarantees that the committed transactions have the effect
 * of some serial order, so a read-modify-write written for SQLite (where transactions run one at a
 * time) cannot lose an update here either, without `SELECT ... FOR UPDATE` (which SQLite lacks).
 * The cost: `fn` may run more than once, so it must act only through `tx` (no side effects outside
 * the database before it resolves).
 */
import pg from 'pg';
import { StoreError } from './errors.js';
import { MIGRATIONS_TABLE, migrationChecksum, migrationSql, validateMigrations } from './migrate.js';
import { numberPlaceholders } from './placeholders.js';
import type { Migration, Params, Queryable, RunResult, SqlValue, Store } from './store.js';

export interface PostgresOptions {
  migrations: readonly Migration[];
  /** Connections kept open at most (each transaction holds one for its duration). */
  poolSize?: number;
  /** Times a transaction is run again after a serialization failure or deadlock before giving up. */
  serializationRetries?: number;
  /** Milliseconds to wait for a connection (to the server, or a free one in the pool). */
  connectTimeoutMs?: number;
}

export const POSTGRES_POOL_SIZE_DEFAULT = 10;
export const POSTGRES_SERIALIZATION_RETRIES_DEFAULT = 30;
export const POSTGRES_CONNECT_TIMEOUT_MS_DEFAULT = 10_000;
/** Upper bound of the random wait before a retry; it doubles per attempt from 1 ms up to this. */
export const POSTGRES_RETRY_BACKOFF_MS_MAX = 50;
/** Distinct SQL texts whose `$n` translation and prepared-statement name are remembered. */
export const POSTGRES_STATEMENT_CACHE_MAX = 1000;
/** Key of the advisory lock that keeps two processes from migrating one database at once. */
const MIGRATION_LOCK_KEY = 7_000_001;

/** SQLSTATE values (PostgreSQL 18 docs, Appendix A) named in messages; others are given as the bare code. */
const SQLSTATE_NAMES: Record<string, string> = {
  '08006': 'connection_failure',
  '08P01': 'protocol_violation',
  '22003': 'numeric_value_out_of_range',
  '22P02': 'invalid_text_representation',
  '23502': 'not_null_violation',
  '23503': 'foreign_key_violation',
  '23505': 'unique_violation',
  '23514': 'check_violation',
  '25P02': 'in_failed_sql_transaction',
  '28P01': 'invalid_password',
  '3D000': 'invalid_catalog_name',
  '40001': 'serialization_failure',
  '40P01': 'deadlock_detected',
  '42601': 'syntax_error',
  '42703': 'undefined_column',
  '42P01': 'undefined_table',
  '42P07': 'duplicate_table',
  '57014': 'query_canceled',
  '57P01': 'admin_shutdown',
};

const RETRYABLE = new Set(['40001', '40P01']);
/** Errors of this module that a transaction retry may cure (their SQLSTATE is in RETRYABLE). */
const retryable = new WeakSet<StoreError>();

interface PgError {
  code?: string;
  constraint?: string;
  table?: string;
  column?: string;
}

/**
 * A driver error, reduced to its kind. PostgreSQL puts the offending values in `detail` (and in the
 * message of some errors, such as invalid input syntax), so neither is passed on: only the SQLSTATE,
 * and for a constraint its name (or table.column for NOT NULL), as SQLite's messages do.
 */
function queryError(e: unknown): StoreError {
  if (e instanceof StoreError) return e;
  const pe = (e ?? {}) as PgError;
  const code = typeof pe.code === 'string' ? pe.code : 'unknown';
  const name = (s: string | undefined) => (s && /^[\w.$]+$/.test(s) ? s : '?');
  let detail: string;
  if (code === '23505') detail = `UNIQUE constraint failed: ${name(pe.constraint)}`;
  else if (code === '23514') detail = `CHECK constraint failed: ${name(pe.constraint)}`;
  else if (code === '23503') detail = `FOREIGN KEY constraint failed: ${name(pe.constraint)}`;
  else if (code === '23502') detail = `NOT NULL constraint failed: ${name(pe.table)}.${name(pe.column)}`;
  else if (/^[0-9A-Z]{5}$/.test(code))
    detail = `${code}${SQLSTATE_NAMES[code] ? ` ${SQLSTATE_NAMES[code]}` : ''}`;
  else detail = /^E[A-Z]+$/.test(code) ? code : 'driver error';
  const err = new StoreError('STORE_QUERY_FAILED', `statement failed: ${detail}`);
  if (RETRYABLE.has(code)) retryable.add(err);
  return err;
}

function checkParams(params: Params): SqlValue[] {
  return params.map((p, i) => {
    if (typeof p === 'number' && Number.isInteger(p) && !Number.isSafeInteger(p)) {
      throw new StoreError('STORE_QUERY_FAILED', `params[${i}]: integer beyond Number.MAX_SAFE_INTEGER`);
    }
    return p;
  });
}

/** OIDs (pg_type) whose text form pg returns as a string: int8 (BIGINT, COUNT) and numeric (SUM of BIGINT). */
const INT8_OID = 20;
const NUMERIC_OID = 1700;
const INTEGER_TEXT = /^-?\d+$/;

/**
 * pg returns BIGINT and NUMERIC as strings, SQLite returns numbers: both become numbers here when
 * they fit exactly, and a value that does not is refused rather than rounded (money is exact).
 */
function convertRows(result: pg.QueryResult): Record<string, unknown>[] {
  const wide = result.fields.filter((f) => f.dataTypeID === INT8_OID || f.dataTypeID === NUMERIC_OID);
  if (wide.length === 0) return result.rows;
  for (const row of result.rows as Record<string, unknown>[]) {
    for (const f of wide) {
      const v = row[f.name];
      if (typeof v !== 'string') continue;
      if (INTEGER_TEXT.test(v)) {
        const num = Number(v);
        if (!Number.isSafeInteger(num)) {
          throw new StoreError(
            'STORE_INTEGER_UNSAFE',
            `column ${f.name}: integer beyond Number.MAX_SAFE_INTEGER`,
          );
        }
        row[f.name] = num;
      } else {
        // A fractional NUMERIC (AVG, division): a double, as SQLite's REAL would be.
        row[f.name] = Number(v);
      }
    }
  }
  return result.rows;
}

/** Translations and prepared-statement names, per SQL text; cleared whole when full (a bound, not an LRU). */
class StatementCache {
  #map = new Map<string, { text: string; name: string }>();
  #next = 0;
  get(sql: string): { text: string; name: string } {
    let hit = this.#map.get(sql);
    if (!hit) {
      if (this.#map.size >= POSTGRES_STATEMENT_CACHE_MAX) this.#map.clear();
      hit = { text: numberPlaceholders(sql).text, name: `openposp_${++this.#next}` };
      this.#map.set(sql, hit);
    }
    return hit;
  }
}

type Runner = Pick<pg.PoolClient, 'query'>;

class PostgresQueryable implements Queryable {
  constructor(
    protected readonly runner: Runner,
    protected readonly statements: StatementCache,
  ) {}

  protected async query(sql: string, params: Params = []): Promise<pg.QueryResult> {
    const values = checkParams(params);
    const st = this.statements.get(sql);
    try {
      // A named statement is parsed once per connection and then only bound and executed.
      return await this.runner.query({ name: st.name, text: st.text, values });
    } catch (e) {
      throw queryError(e);
    }
  }

  async run(sql: string, params?: Params): Promise<RunResult> {
    const r = await this.query(sql, params);
    return { changes: r.rowCount ?? 0 };
  }

  async get<T>(sql: string, params?: Params): Promise<T | undefined> {
    return convertRows(await this.query(sql, params))[0] as T | undefined;
  }

  async all<T>(sql: string, params?: Params): Promise<T[]> {
    return convertRows(await this.query(sql, params)) as T[];
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

class PostgresStore extends PostgresQueryable implements Store {
  readonly dialect = 'postgres' as const;
  #closed = false;
  #inFlight = new Set<Promise<unknown>>();

  constructor(
    private readonly pool: pg.Pool,
    statements: StatementCache,
    private readonly retries: number,
  ) {
    super(pool, statements);
  }

  #track<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreError('STORE_CLOSED', 'store: used after close()'));
    const p = fn();
    this.#inFlight.add(p);
    const done = () => this.#inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  override run(sql: string, params?: Params): Promise<RunResult> {
    return this.#track(() => super.run(sql, params));
  }

  override get<T>(sql: string, params?: Params): Promise<T | undefined> {
    return this.#track(() => super.get<T>(sql, params));
  }

  override all<T>(sql: string, params?: Params): Promise<T[]> {
    return this.#track(() => super.all<T>(sql, params));
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.#track(async () => {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (e) {
        throw queryError(e);
      }
      let broken = false;
      try {
        for (let attempt = 0; ; attempt++) {
          try {
            return await this.#attempt(client, fn);
          } catch (e) {
            broken = await rollback(client);
            if (broken || !(e instanceof StoreError && retryable.has(e))) throw e;
            if (attempt >= this.retries) {
              throw new StoreError(
                'STORE_TX_CONFLICT',
                `transaction: serialization failure, still after ${this.retries} retries`,
              );
            }
            await sleep(Math.random() * Math.min(POSTGRES_RETRY_BACKOFF_MS_MAX, 2 ** attempt));
          }
        }
      } finally {
        // A client whose ROLLBACK failed is in an unknown state: destroyed, not returned to the pool.
        client.release(broken || undefined);
      }
    });
  }

  async #attempt<T>(client: pg.PoolClient, fn: (tx: Queryable) => Promise<T>): Promise<T> {
    try {
      await client.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
    } catch (e) {
      throw queryError(e);
    }
    const out = await fn(new PostgresQueryable(client, this.statements));
    let commit: pg.QueryResult;
    try {
      commit = await client.query('COMMIT');
    } catch (e) {
      throw queryError(e); // SSI may refuse the commit itself with 40001
    }
    // After a failed statement PostgreSQL aborts the whole transaction and answers COMMIT with
    // ROLLBACK; `fn` caught that error and went on, but nothing it wrote was kept.
    if (commit.command === 'ROLLBACK') {
      throw new StoreError(
        'STORE_QUERY_FAILED',
        'transaction: a statement failed inside it, so PostgreSQL rolled it back (catching the error does not undo that)',
      );
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#inFlight]);
    await this.pool.end();
  }
}

/** Returns true when the client is unusable (the ROLLBACK itself failed). */
async function rollback(client: pg.PoolClient): Promise<boolean> {
  try {
    await client.query('ROLLBACK');
    return false;
  } catch {
    return true;
  }
}

async function migrate(client: pg.PoolClient, migrations: readonly Migration[]): Promise<void> {
  // Two nodes starting at once: the second waits here, then finds everything applied.
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
  try {
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)`,
    );
    const applied = (
      await client.query<{ id: number; name: string; checksum: string }>(
        `SELECT id, name, checksum FROM ${MIGRATIONS_TABLE} ORDER BY id`,
      )
    ).rows;
    if (applied.length > migrations.length) {
      throw new StoreError(
        'STORE_SCHEMA_NEWER',
        `schema: database is at migration ${applied.length}, this program knows ${migrations.length}`,
      );
    }
    for (const row of applied) {
      const m = migrations[row.id - 1]!;
      if (migrationChecksum(m, 'postgres') !== row.checksum) {
        throw new StoreError(
          'STORE_MIGRATION_CHANGED',
          `migration ${row.id} (${row.name}): SQL differs from the applied one`,
        );
      }
    }
    for (const m of migrations.slice(applied.length)) {
      // DDL is transactional in PostgreSQL: a failing step leaves nothing of itself behind.
      try {
        await client.query('BEGIN');
        await client.query(migrationSql(m, 'postgres')); // simple protocol: several statements allowed
        await client.query(
          `INSERT INTO ${MIGRATIONS_TABLE} (id, name, checksum, applied_at) VALUES ($1, $2, $3, $4)`,
          [m.id, m.name, migrationChecksum(m, 'postgres'), new Date().toISOString()],
        );
        await client.query('COMMIT');
      } catch (e) {
        await rollback(client);
        throw new StoreError(
          'STORE_MIGRATION_FAILED',
          `migration ${m.id} (${m.name}): ${queryError(e).message}`,
        );
      }
    }
  } catch (e) {
    throw e instanceof StoreError ? e : queryError(e);
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
  }
}

function positiveInt(v: number | undefined, fallback: number, field: string, min: number): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${field}: must be an integer >= ${min}`);
  return v;
}

/**
 * Connects to `url` (postgres://user:password@host:port/database), checks the connection, and brings
 * the database to the latest migration. The URL (it holds the password) never appears in an error.
 */
export async function openPostgresStore(url: string, opts: PostgresOptions): Promise<Store> {
  validateMigrations(opts.migrations);
  const poolSize = positiveInt(opts.poolSize, POSTGRES_POOL_SIZE_DEFAULT, 'poolSize', 1);
  const retries = positiveInt(
    opts.serializationRetries,
    POSTGRES_SERIALIZATION_RETRIES_DEFAULT,
    'serializationRetries',
    0,
  );
  const connectTimeoutMs = positiveInt(
    opts.connectTimeoutMs,
    POSTGRES_CONNECT_TIMEOUT_MS_DEFAULT,
    'connectTimeoutMs',
    1,
  );
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: connectTimeoutMs,
  });
  // An idle connection the server drops (restart, idle timeout) must not crash the process: the
  // pool discards it and the next statement opens a new one.
  pool.on('error', () => undefined);
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw new StoreError(
      'STORE_OPEN_FAILED',
      `store: cannot connect to PostgreSQL (${queryError(e).message.replace('statement failed: ', '')})`,
    );
  }
  try {
    await migrate(client, opts.migrations);
  } catch (e) {
    client.release(true);
    await pool.end().catch(() => undefined);
    throw e;
  }
  client.release();
  return new PostgresStore(pool, new StatementCache(), retries);
}
