/** One entry point for a host's `--db` option: a PostgreSQL URL, or else a SQLite file path (or `:memory:`). */
import { openPostgresStore } from './postgres.js';
import { openSqliteStore } from './sqlite.js';
import type { Migration, Store } from './store.js';

export interface StoreOptions {
  migrations: readonly Migration[];
  /** PostgreSQL only: connections kept open at most. */
  poolSize?: number;
  /** SQLite only: milliseconds to wait on a lock held by another process. */
  busyTimeoutMs?: number;
}

/** True for `postgres://` and `postgresql://` URLs (the two schemes libpq accepts, 32.1.1.2). */
export function isPostgresUrl(target: string): boolean {
  return /^postgres(ql)?:\/\//i.test(target);
}

export function openStore(target: string, opts: StoreOptions): Promise<Store> {
  if (isPostgresUrl(target)) {
    return openPostgresStore(target, {
      migrations: opts.migrations,
      ...(opts.poolSize === undefined ? {} : { poolSize: opts.poolSize }),
    });
  }
  return openSqliteStore(target, {
    migrations: opts.migrations,
    ...(opts.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: opts.busyTimeoutMs }),
  });
}
