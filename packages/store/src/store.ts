/**
 * One small asynchronous interface over the databases a host keeps its state in: embedded SQLite
 * (better-sqlite3) by default, PostgreSQL for scale (issue 7) behind the same interface.
 *
 * SQL is written once, portable: `?` placeholders, INTEGER/BIGINT/TEXT/BLOB columns, no
 * dialect-only functions. A migration may give a dialect-specific override where that is not
 * enough. Money is integer minor units; values beyond Number.MAX_SAFE_INTEGER are refused.
 */

export type SqlValue = string | number | bigint | Uint8Array | null;
export type Params = readonly SqlValue[];

export interface RunResult {
  /** Rows inserted, updated or deleted. */
  changes: number;
}

export interface Queryable {
  run(sql: string, params?: Params): Promise<RunResult>;
  get<T = Record<string, unknown>>(sql: string, params?: Params): Promise<T | undefined>;
  all<T = Record<string, unknown>>(sql: string, params?: Params): Promise<T[]>;
}

export interface Store extends Queryable {
  readonly dialect: 'sqlite' | 'postgres';
  /**
   * Runs `fn` in one transaction: committed when it resolves, rolled back when it throws.
   * The outcome is as if transactions ran one at a time. SQLite does run them one at a time (no
   * other statement of this store runs between its statements). PostgreSQL runs them at once,
   * SERIALIZABLE, and runs `fn` again when the server aborts it for a conflict: so `fn` must act
   * only through `tx`, and must not catch a failed statement and go on (PostgreSQL has then
   * aborted the transaction; the store rolls it back and throws).
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A schema step. `id`s run 1, 2, 3 ... and are never edited once released (a checksum guards that). */
export interface Migration {
  id: number;
  name: string;
  sql: string;
  /** Replaces `sql` on one dialect where portable SQL cannot say it. */
  dialects?: { sqlite?: string; postgres?: string };
}
