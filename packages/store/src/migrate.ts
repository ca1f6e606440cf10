/** The one migration mechanism: numbered steps, each applied once in its own transaction, with checksums. */
import { createHash } from 'node:crypto';
import { StoreError } from './errors.js';
import type { Migration } from './store.js';

export const MIGRATIONS_TABLE = 'schema_migrations';

export function migrationSql(m: Migration, dialect: 'sqlite' | 'postgres'): string {
  return m.dialects?.[dialect] ?? m.sql;
}

export function migrationChecksum(m: Migration, dialect: 'sqlite' | 'postgres'): string {
  return createHash('sha256').update(migrationSql(m, dialect)).digest('hex');
}

/** Refuses a malformed list before anything touches the database. */
export function validateMigrations(list: readonly Migration[]): void {
  const names = new Set<string>();
  list.forEach((m, i) => {
    if (m.id !== i + 1) {
      throw new StoreError(
        'STORE_MIGRATION_INVALID',
        `migrations[${i}].id: must be ${i + 1} (ids run 1, 2, 3 ...)`,
      );
    }
    if (typeof m.name !== 'string' || m.name.length === 0 || names.has(m.name)) {
      throw new StoreError(
        'STORE_MIGRATION_INVALID',
        `migrations[${i}].name: must be a non-empty, unique name`,
      );
    }
    names.add(m.name);
    if (typeof m.sql !== 'string' || m.sql.trim().length === 0) {
      throw new StoreError('STORE_MIGRATION_INVALID', `migrations[${i}].sql: must not be empty`);
    }
  });
}
