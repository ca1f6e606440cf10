/**
 * The databases the store tests run against: see src/testing.ts (`@openposp/store/testing`), shared by
 * every package's tests.
 */
export { DIALECTS, type DialectName, postgresTarget, sqliteTarget, type Target } from '../src/testing.js';
