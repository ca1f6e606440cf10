/** Typed errors of the store. Messages name the store, the migration or the rule; never row data. */
export const STORE_ERROR_CODES = {
  STORE_OPEN_FAILED: 'the database file could not be opened or created, or the PostgreSQL server not reached',
  STORE_MIGRATION_INVALID:
    'the migration list is malformed (ids not strictly increasing from 1, empty SQL, duplicate name)',
  STORE_MIGRATION_CHANGED:
    'a migration already applied to this database has different SQL now (checksum mismatch)',
  STORE_SCHEMA_NEWER:
    'the database has migrations this program does not know (it was written by a newer version)',
  STORE_MIGRATION_FAILED: 'a migration failed to apply; the database is left at the previous migration',
  STORE_CLOSED: 'the store was used after close()',
  STORE_QUERY_FAILED:
    'a statement failed (constraint, syntax, busy); the message names the constraint, never the values',
  STORE_TX_CONFLICT:
    'a transaction kept conflicting with concurrent ones (PostgreSQL serialization failure) past its retry limit',
  STORE_INTEGER_UNSAFE:
    'a column holds an integer beyond Number.MAX_SAFE_INTEGER, which a number cannot carry exactly',
} as const;

export type StoreErrorCode = keyof typeof STORE_ERROR_CODES;

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}

export function isStoreError(e: unknown): e is StoreError {
  return e instanceof StoreError;
}
