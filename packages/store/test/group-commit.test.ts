/**
 * The SQLite store's group commit: operations queued in the same turn of the event loop share one
 * BEGIN … COMMIT and one fsync of the write-ahead log; each transaction sits in a savepoint of its
 * own; nothing settles before the fsync that makes it durable has returned.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import {
  isStoreError,
  type Migration,
  openSqliteStore,
  SQLITE_CHECKPOINT_EVERY_COMMITS,
  SQLITE_GROUP_COMMIT_MAX,
  sqliteStoreStats,
} from '../src/index.js';

const M: Migration[] = [
  {
    id: 1,
    name: 'accounts',
    sql: 'CREATE TABLE account (id TEXT PRIMARY KEY, balance_minor INTEGER NOT NULL CHECK (balance_minor >= 0))',
  },
];

const dir = mkdtempSync(join(tmpdir(), 'openposp-group-commit-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `db${++n}.sqlite`);

describe('group commit (SQLite)', () => {
  test('operations queued together share one commit and one fsync', async () => {
    const s = await openSqliteStore(fresh(), { migrations: M });
    const before = sqliteStoreStats(s)!;
    const ops = Array.from({ length: 50 }, (_, i) =>
      s.transaction(async (tx) => {
        await tx.run('INSERT INTO account VALUES (?, ?)', [`a${i}`, i]);
        return i;
      }),
    );
    assert.deepEqual(
      await Promise.all(ops),
      Array.from({ length: 50 }, (_, i) => i),
    );
    const st = sqliteStoreStats(s)!;
    assert.equal(st.operations - before.operations, 50);
    assert.equal(st.commits - before.commits, 1);
    assert.equal(st.fsyncs - before.fsyncs, 1);
    await s.close();
  });

  test('a batch holds at most SQLITE_GROUP_COMMIT_MAX operations', async () => {
    const s = await openSqliteStore(fresh(), { migrations: M });
    const before = sqliteStoreStats(s)!.commits;
    const count = SQLITE_GROUP_COMMIT_MAX * 2 + 1;
    await Promise.all(
      Array.from({ length: count }, (_, i) => s.run('INSERT INTO account VALUES (?, ?)', [`a${i}`, 1])),
    );
    assert.equal(sqliteStoreStats(s)!.commits - before, 3);
    assert.deepEqual(await s.get('SELECT COUNT(*) AS n FROM account'), { n: count });
    await s.close();
  });

  test('a transaction that throws in a batch undoes only itself; its neighbours commit', async () => {
    const path = fresh();
    const s = await openSqliteStore(path, { migrations: M });
    const results = await Promise.allSettled([
      s.transaction(async (tx) => tx.run('INSERT INTO account VALUES (?, ?)', ['a', 1])),
      s.transaction(async (tx) => {
        await tx.run('INSERT INTO account VALUES (?, ?)', ['b', 2]);
        throw new Error('line dropped');
      }),
      s.run('INSERT INTO account VALUES (?, ?)', ['a', 5]), // unique violation: this statement only
      s.transaction(async (tx) => {
        await tx.run('INSERT INTO account VALUES (?, ?)', ['c', 3]);
        await tx.run('UPDATE account SET balance_minor = balance_minor - 10 WHERE id = ?', ['c']); // CHECK fails
      }),
      s.run('INSERT INTO account VALUES (?, ?)', ['d', 4]),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'rejected', 'rejected', 'fulfilled'],
    );
    assert.match(String((results[1] as PromiseRejectedResult).reason), /line dropped/);
    const third = (results[2] as PromiseRejectedResult).reason;
    assert.ok(isStoreError(third) && third.code === 'STORE_QUERY_FAILED');
    assert.deepEqual(await s.all('SELECT id, balance_minor FROM account ORDER BY id'), [
      { id: 'a', balance_minor: 1 },
      { id: 'd', balance_minor: 4 },
    ]);
    await s.close();
  });

  test('what resolved is in the log another connection reads (committed, then synced)', async () => {
    const path = fresh();
    const s = await openSqliteStore(path, { migrations: M });
    await Promise.all([
      s.run('INSERT INTO account VALUES (?, ?)', ['a', 1]),
      s.transaction(async (tx) => tx.run('INSERT INTO account VALUES (?, ?)', ['b', 2])),
    ]);
    const other = new Database(path, { readonly: true });
    try {
      assert.deepEqual(other.prepare('SELECT COUNT(*) AS n FROM account').get(), { n: 2 });
    } finally {
      other.close();
    }
    await s.close();
  });

  test('a read queued behind writes sees them and settles with them; a quiet read runs at once', async () => {
    const s = await openSqliteStore(fresh(), { migrations: M });
    const w = s.run('INSERT INTO account VALUES (?, ?)', ['a', 7]);
    const r = s.get<{ b: number }>('SELECT balance_minor AS b FROM account WHERE id = ?', ['a']);
    let wrote = false;
    void w.then(() => {
      wrote = true;
    });
    assert.deepEqual(await r, { b: 7 });
    assert.equal(wrote, true, 'the read settled no earlier than the write it saw');
    const before = sqliteStoreStats(s)!.operations;
    assert.deepEqual(await s.get('SELECT COUNT(*) AS n FROM account'), { n: 1 });
    assert.equal(sqliteStoreStats(s)!.operations, before, 'a read with nothing pending is not queued');
    await s.close();
  });

  test('a read while a commit waits for its fsync runs at once and answers only after that fsync', async () => {
    const s = await openSqliteStore(fresh(), { migrations: M });
    const order: string[] = [];
    const w = s.run('INSERT INTO account VALUES (?, ?)', ['a', 7]).then(() => order.push('write'));
    // The batch runs after this turn's I/O; by the next turn it is committed and its fsync asked for.
    await new Promise((r) => setImmediate(r));
    const st0 = sqliteStoreStats(s)!;
    assert.equal(st0.commits, 1);
    // Its fsync returns on the libuv pool, in a later turn: the write has not settled yet.
    assert.equal(order.length, 0);
    const r = s
      .get<{ b: number }>('SELECT balance_minor AS b FROM account WHERE id = ?', ['a'])
      .then((v) => order.push(`read ${v?.b}`));
    const all = s.all<{ id: string }>('SELECT id FROM account').then((v) => order.push(`all ${v.length}`));
    await Promise.all([w, r, all]);
    const st1 = sqliteStoreStats(s)!;
    assert.equal(st1.operations, st0.operations, 'the reads were not queued');
    assert.equal(st1.commits, 1, 'no commit of their own');
    assert.equal(st1.fsyncs, 1, "no fsync of their own: they shared the write's");
    assert.deepEqual(
      order,
      ['write', 'read 7', 'all 1'],
      'each read answered no earlier than the write it saw',
    );
    await s.close();
  });

  test('a write carried by get or all (INSERT … RETURNING) waits for its commit and fsync like run', async () => {
    const s = await openSqliteStore(fresh(), { migrations: M });
    const before = sqliteStoreStats(s)!;
    assert.deepEqual(
      await s.get('INSERT INTO account VALUES (?, ?) RETURNING balance_minor AS b', ['a', 3]),
      { b: 3 },
    );
    assert.deepEqual(await s.all('UPDATE account SET balance_minor = 4 RETURNING id'), [{ id: 'a' }]);
    const after = sqliteStoreStats(s)!;
    assert.equal(after.operations - before.operations, 2, 'both went through a batch');
    assert.equal(after.fsyncs - before.fsyncs, 2, 'each settled after an fsync');
    await s.close();
  });

  test('a PRAGMA runs between batches, not inside one', async () => {
    const s = await openSqliteStore(fresh(), { migrations: M });
    const [, rows] = await Promise.all([
      s.run('INSERT INTO account VALUES (?, ?)', ['a', 1]),
      s.all<{ busy: number }>('PRAGMA wal_checkpoint(TRUNCATE)'),
      s.run('INSERT INTO account VALUES (?, ?)', ['b', 1]),
    ]);
    assert.equal(rows[0]?.busy, 0, 'a checkpoint inside a transaction could not run');
    assert.deepEqual(await s.get('SELECT COUNT(*) AS n FROM account'), { n: 2 });
    await s.close();
  });

  test('the log is checkpointed, so it stops growing', async () => {
    const path = fresh();
    const s = await openSqliteStore(path, { migrations: M });
    const big = 'x'.repeat(2000);
    const sizes: number[] = [];
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < SQLITE_CHECKPOINT_EVERY_COMMITS; i++) {
        await s.run('INSERT OR REPLACE INTO account VALUES (?, ?)', [`${big}${i % 10}`, i]);
      }
      sizes.push(statSync(`${path}-wal`).size);
    }
    // Without checkpoints each round adds ~500 commits x a few pages: the log would keep growing.
    assert.ok(sizes[3]! <= sizes[1]!, `log sizes ${sizes.join(', ')}`);
    await s.close();
  });

  test('close waits for queued work, then refuses more', async () => {
    const s = await openSqliteStore(fresh(), { migrations: M });
    const w = s.run('INSERT INTO account VALUES (?, ?)', ['a', 1]);
    await s.close();
    assert.deepEqual(await w, { changes: 1 });
    await assert.rejects(s.run('SELECT 1'), (e: unknown) => isStoreError(e) && e.code === 'STORE_CLOSED');
  });
});
