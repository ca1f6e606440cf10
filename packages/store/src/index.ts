export { isStoreError, STORE_ERROR_CODES, StoreError, type StoreErrorCode } from './errors.js';
export { MIGRATIONS_TABLE, migrationChecksum, validateMigrations } from './migrate.js';
export {
  openSqliteStore,
  SQLITE_BUSY_TIMEOUT_MS_DEFAULT,
  SQLITE_CHECKPOINT_EVERY_COMMITS,
  SQLITE_GROUP_COMMIT_MAX,
  type SqliteOptions,
  type SqliteStoreStats,
  sqliteStoreStats,
} from './sqlite.js';
export type { Migration, Params, Queryable, RunResult, SqlValue, Store } from './store.js';
export { isPostgresUrl, openStore, type StoreOptions } from './open.js';
export {
  openPostgresStore,
  POSTGRES_POOL_SIZE_DEFAULT,
  POSTGRES_SERIALIZATION_RETRIES_DEFAULT,
  type PostgresOptions,
} from './postgres.js';
export { numberPlaceholders } from './placeholders.js';
export { postgresDdl } from './ddl.js';
export { createPostgresDatabase, POSTGRES_DATABASE_NAME, postgresUrlWithDatabase } from './admin.js';
