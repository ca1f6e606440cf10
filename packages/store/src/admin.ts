/**
 * PostgreSQL administration a tool needs before `openStore`: a database per host (the services'
 * migrations share the `schema_migrations` table, so the POSP, the switch and each issuer need a
 * database each), made by a connection to a server URL whose user may CREATE DATABASE.
 */
import pg from 'pg';
import { StoreError } from './errors.js';

/** A database name this module creates: lower-case letters, digits, `_`; at most 63 bytes. */
export const POSTGRES_DATABASE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** `url` with its database replaced by `database` (user, password, host, port and parameters kept). */
export function postgresUrlWithDatabase(url: string, database: string): string {
  if (!POSTGRES_DATABASE_NAME.test(database))
    throw new StoreError('STORE_OPEN_FAILED', `database name: must match ${POSTGRES_DATABASE_NAME}`);
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/**
 * Creates `database` on the server of `url` (connecting to `url` itself), first dropping one of that
 * name when `replace` is set (connections to it are ended). Returns the URL of the new database. The
 * URL (it holds the password) never appears in an error; the server's refusal is given by SQLSTATE.
 */
export async function createPostgresDatabase(
  url: string,
  database: string,
  opts: { replace?: boolean } = {},
): Promise<string> {
  const target = postgresUrlWithDatabase(url, database);
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (e) {
    throw new StoreError('STORE_OPEN_FAILED', `store: cannot connect to PostgreSQL (${sqlstate(e)})`);
  }
  try {
    if (opts.replace) await client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${database}`);
    return target;
  } catch (e) {
    throw new StoreError('STORE_QUERY_FAILED', `create database ${database}: ${sqlstate(e)}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function sqlstate(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$|^E[A-Z]+$/.test(code) ? code : 'error';
}
