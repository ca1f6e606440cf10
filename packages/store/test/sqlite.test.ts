import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isStoreError, type Migration, openSqliteStore, StoreError } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'openposp-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = () => join(dir, `db${++n}.sqlite`);

const M: Migration[] = [
  {
    id: 1,
    name: 'accounts',
    sql: 'CREATE TABLE account (id TEXT PRIMARY KEY, balance_minor INTEGER NOT NULL CHECK (balance_minor >= 0))',
  },
  {
    id: 2,
    name: 'holds',
    sql: 'CREATE TABLE hold (id INTEGER PRIMARY KEY, account_id TEXT NOT NULL REFERENCES account(id), amount_minor INTEGER NOT NULL)',
  },
];

function rejectsWith(code: string, message: string) {
  return (e: unknown) => isStoreError(e) && e.code === code && e.message === message;
}

describe('migrations', () => {
  test('apply once, in order; reopening applies nothing new', async () => {
    const f = file();
    const s = await openSqliteStore(f, { migrations: M });
    await s.run('INSERT INTO account VALUES (?, ?)', ['a1', 100]);
    await s.close();
    const again = await openSqliteStore(f, { migrations: M });
    assert.deepEqual(await again.all('SELECT id, name FROM schema_migrations ORDER BY id'), [
      { id: 1, name: 'accounts' },
      { id: 2, name: 'holds' },
    ]);
    assert.deepEqual(await again.get('SELECT balance_minor FROM account'), { balance_minor: 100 });
    await again.close();
  });
  test('a later program adds a migration; an older program refuses the newer schema', async () => {
    const f = file();
    await (await openSqliteStore(f, { migrations: M.slice(0, 1) })).close();
    await (await openSqliteStore(f, { migrations: M })).close();
    await assert.rejects(
      openSqliteStore(f, { migrations: M.slice(0, 1) }),
      rejectsWith('STORE_SCHEMA_NEWER', 'schema: database is at migration 2, this program knows 1'),
    );
  });
  test('an edited applied migration is refused', async () => {
    const f = file();
    await (await openSqliteStore(f, { migrations: M })).close();
    const edited = [M[0]!, { ...M[1]!, sql: `${M[1]!.sql} -- edited` }];
    await assert.rejects(
      openSqliteStore(f, { migrations: edited }),
      rejectsWith('STORE_MIGRATION_CHANGED', 'migration 2 (holds): SQL differs from the applied one'),
    );
  });
  test('a failing migration leaves the database at the previous one', async () => {
    const f = file();
    const bad = [
      M[0]!,
      { id: 2, name: 'broken', sql: 'CREATE TABLE x (a INTEGER); CREATE TABLE account (id TEXT)' },
    ];
    await assert.rejects(
      openSqliteStore(f, { migrations: bad }),
      (e: unknown) => isStoreError(e) && e.code === 'STORE_MIGRATION_FAILED',
    );
    const s = await openSqliteStore(f, { migrations: M.slice(0, 1) });
    assert.equal(await s.get("SELECT name FROM sqlite_master WHERE name = 'x'"), undefined);
    await s.close();
  });
  test('malformed migration lists are refused before the file is touched', async () => {
    await assert.rejects(
      openSqliteStore(file(), { migrations: [{ id: 2, name: 'a', sql: 'SELECT 1' }] }),
      rejectsWith('STORE_MIGRATION_INVALID', 'migrations[0].id: must be 1 (ids run 1, 2, 3 ...)'),
    );
    await assert.rejects(
      openSqliteStore(file(), { migrations: [{ id: 1, name: 'a', sql: '  ' }] }),
      rejectsWith('STORE_MIGRATION_INVALID', 'migrations[0].sql: must not be empty'),
    );
    await assert.rejects(
      openSqliteStore(file(), {
        migrations: [
          { id: 1, name: 'a', sql: 'SELECT 1' },
          { id: 2, name: 'a', sql: 'SELECT 1' },
        ],
      }),
      rejectsWith('STORE_MIGRATION_INVALID', 'migrations[1].name: must be a non-empty, unique name'),
    );
  });
  test('an unopenable path is a typed error', async () => {
    await assert.rejects(
      openSqliteStore(join(dir, 'no', 'such', 'dir', 'x.sqlite'), { migrations: M }),
      (e: unknown) => isStoreError(e) && e.code === 'STORE_OPEN_FAILED',
    );
  });
});

describe('statements and transactions', () => {
  test('commit on resolve, roll back on throw; nothing half-written', async () => {
    const s = await openSqliteStore(':memory:', { migrations: M });
    await s.run('INSERT INTO account VALUES (?, ?)', ['a', 100]);
    await s.transaction(async (tx) => {
      await tx.run('UPDATE account SET balance_minor = balance_minor - ? WHERE id = ?', [30, 'a']);
      await tx.run('INSERT INTO hold (account_id, amount_minor) VALUES (?, ?)', ['a', 30]);
    });
    await assert.rejects(
      s.transaction(async (tx) => {
        await tx.run('UPDATE account SET balance_minor = balance_minor - ? WHERE id = ?', [50, 'a']);
        throw new Error('line dropped');
      }),
      /line dropped/,
    );
    assert.deepEqual(await s.get('SELECT balance_minor FROM account'), { balance_minor: 70 });
    assert.equal((await s.all('SELECT * FROM hold')).length, 1);
    await s.close();
  });
  test('concurrent transactions are serialized: no lost update', async () => {
    const s = await openSqliteStore(':memory:', { migrations: M });
    await s.run('INSERT INTO account VALUES (?, ?)', ['a', 0]);
    await Promise.all(
      Array.from({ length: 50 }, () =>
        s.transaction(async (tx) => {
          const row = await tx.get<{ b: number }>('SELECT balance_minor AS b FROM account WHERE id = ?', [
            'a',
          ]);
          await new Promise((r) => setImmediate(r));
          await tx.run('UPDATE account SET balance_minor = ? WHERE id = ?', [row!.b + 1, 'a']);
        }),
      ),
    );
    assert.deepEqual(await s.get('SELECT balance_minor AS b FROM account'), { b: 50 });
    await s.close();
  });
  test('a constraint failure names the constraint, never the values', async () => {
    const s = await openSqliteStore(':memory:', { migrations: M });
    await s.run('INSERT INTO account VALUES (?, ?)', ['6222021234567890123', 1]);
    await assert.rejects(
      s.run('INSERT INTO account VALUES (?, ?)', ['6222021234567890123', 1]),
      (e: unknown) => {
        assert.ok(e instanceof StoreError);
        assert.equal(e.code, 'STORE_QUERY_FAILED');
        assert.equal(e.message, 'statement failed: UNIQUE constraint failed: account.id');
        return true;
      },
    );
    await assert.rejects(s.run('UPDATE account SET balance_minor = ?', [-1]), /CHECK constraint failed/);
    await s.close();
  });
  test('integers beyond 2^53 are refused; use after close is refused', async () => {
    const s = await openSqliteStore(':memory:', { migrations: M });
    await assert.rejects(
      s.run('INSERT INTO account VALUES (?, ?)', ['a', 2 ** 53]),
      rejectsWith('STORE_QUERY_FAILED', 'params[1]: integer beyond Number.MAX_SAFE_INTEGER'),
    );
    await s.close();
    await assert.rejects(
      async () => s.get('SELECT 1'),
      rejectsWith('STORE_CLOSED', 'store: used after close()'),
    );
  });
});
