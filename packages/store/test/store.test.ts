/**
 * One set of cases for every dialect: each case states its expected result for SQLite and for
 * PostgreSQL in one table (equal where the dialects agree), and runs once per dialect.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isStoreError, type Migration, migrationChecksum, type Store } from '../src/index.js';
import { isPostgresUrl, openStore } from '../src/open.js';
import { numberPlaceholders } from '../src/placeholders.js';
import { openPostgresStore } from '../src/postgres.js';
import { DIALECTS, type DialectName, postgresTarget, sqliteTarget, type Target } from './dialects.js';

const M: Migration[] = [
  {
    id: 1,
    name: 'accounts',
    sql: 'CREATE TABLE account (id TEXT PRIMARY KEY, balance_minor BIGINT NOT NULL CHECK (balance_minor >= 0))',
  },
  {
    id: 2,
    name: 'holds',
    sql: 'CREATE TABLE hold (id INTEGER PRIMARY KEY, account_id TEXT NOT NULL REFERENCES account(id), amount_minor INTEGER NOT NULL)',
  },
  {
    id: 3,
    name: 'blobs',
    sql: 'CREATE TABLE blob_t (id INTEGER PRIMARY KEY, data BLOB NOT NULL)',
    dialects: { postgres: 'CREATE TABLE blob_t (id INTEGER PRIMARY KEY, data BYTEA NOT NULL)' },
  },
];

const targets = {} as Record<DialectName, Target>;
before(async () => {
  targets.sqlite = sqliteTarget();
  targets.postgres = await postgresTarget();
});
after(async () => {
  await Promise.all(Object.values(targets).map((t) => t.stop()));
});

/** Registers one test per dialect; `fn` gets the dialect's name and a fresh database. */
function each(title: string, fn: (d: DialectName, target: string, t: Target) => Promise<void>): void {
  for (const d of DIALECTS) {
    test(`${title} [${d}]`, async () => fn(d, await targets[d].fresh(), targets[d]));
  }
}

function rejectsWith(code: string, message: string) {
  return (e: unknown) => {
    assert.ok(isStoreError(e), `not a StoreError: ${e}`);
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    return true;
  };
}

const open = (target: string, migrations: readonly Migration[] = M) => openStore(target, { migrations });

describe('migrations', () => {
  each('apply once, in order; reopening applies nothing new', async (_d, f) => {
    const s = await open(f);
    await s.run('INSERT INTO account VALUES (?, ?)', ['a1', 100]);
    await s.close();
    const again = await open(f);
    assert.deepEqual(await again.all('SELECT id, name FROM schema_migrations ORDER BY id'), [
      { id: 1, name: 'accounts' },
      { id: 2, name: 'holds' },
      { id: 3, name: 'blobs' },
    ]);
    assert.deepEqual(await again.get('SELECT balance_minor FROM account'), { balance_minor: 100 });
    await again.close();
  });

  const CHECKSUM_SQL: Record<DialectName, string> = {
    sqlite: M[2]!.sql,
    postgres: M[2]!.dialects!.postgres!,
  };
  each('a dialect override is applied, and its checksum is the one kept', async (d, f) => {
    const s = await open(f);
    const row = await s.get<{ checksum: string }>('SELECT checksum FROM schema_migrations WHERE id = ?', [3]);
    assert.equal(row?.checksum, migrationChecksum({ ...M[2]!, sql: CHECKSUM_SQL[d], dialects: {} }, d));
    const bytes = new Uint8Array([0, 1, 0xfe, 0xff]);
    await s.run('INSERT INTO blob_t (id, data) VALUES (?, ?)', [1, bytes]);
    const back = await s.get<{ data: Uint8Array }>('SELECT data FROM blob_t WHERE id = ?', [1]);
    assert.deepEqual(new Uint8Array(back!.data), bytes);
    await s.close();
  });

  each('a later program adds a migration; an older program refuses the newer schema', async (_d, f) => {
    await (await open(f, M.slice(0, 1))).close();
    await (await open(f)).close();
    await assert.rejects(
      open(f, M.slice(0, 1)),
      rejectsWith('STORE_SCHEMA_NEWER', 'schema: database is at migration 3, this program knows 1'),
    );
  });

  each('an edited applied migration is refused', async (_d, f) => {
    await (await open(f)).close();
    const edited = [M[0]!, { ...M[1]!, sql: `${M[1]!.sql} -- edited` }, M[2]!];
    await assert.rejects(
      open(f, edited),
      rejectsWith('STORE_MIGRATION_CHANGED', 'migration 2 (holds): SQL differs from the applied one'),
    );
  });

  const FAILED: Record<DialectName, { message: string; tableQuery: string }> = {
    sqlite: {
      message: 'migration 2 (broken): statement failed: SQLITE_ERROR',
      tableQuery: "SELECT name FROM sqlite_master WHERE name = 'x'",
    },
    postgres: {
      message: 'migration 2 (broken): statement failed: 42P07 duplicate_table',
      tableQuery: "SELECT table_name FROM information_schema.tables WHERE table_name = 'x'",
    },
  };
  each('a failing migration leaves the database at the previous one', async (d, f) => {
    const bad = [
      M[0]!,
      { id: 2, name: 'broken', sql: 'CREATE TABLE x (a INTEGER); CREATE TABLE account (id TEXT)' },
    ];
    await assert.rejects(open(f, bad), rejectsWith('STORE_MIGRATION_FAILED', FAILED[d].message));
    const s = await open(f, M.slice(0, 1));
    assert.equal(await s.get(FAILED[d].tableQuery), undefined);
    await s.close();
  });

  each('two processes opening one new database at once migrate it once', async (_d, f) => {
    const [a, b] = await Promise.all([open(f), open(f)]);
    assert.deepEqual(await a.get('SELECT COUNT(*) AS n FROM schema_migrations'), { n: 3 });
    await Promise.all([a.close(), b.close()]);
  });

  each('malformed migration lists are refused before the database is touched', async (_d, f) => {
    await assert.rejects(
      open(f, [{ id: 2, name: 'a', sql: 'SELECT 1' }]),
      rejectsWith('STORE_MIGRATION_INVALID', 'migrations[0].id: must be 1 (ids run 1, 2, 3 ...)'),
    );
    await assert.rejects(
      open(f, [{ id: 1, name: 'a', sql: '  ' }]),
      rejectsWith('STORE_MIGRATION_INVALID', 'migrations[0].sql: must not be empty'),
    );
    await assert.rejects(
      open(f, [
        { id: 1, name: 'a', sql: 'SELECT 1' },
        { id: 2, name: 'a', sql: 'SELECT 1' },
      ]),
      rejectsWith('STORE_MIGRATION_INVALID', 'migrations[1].name: must be a non-empty, unique name'),
    );
  });

  const UNOPENABLE: Record<DialectName, RegExp> = {
    sqlite: /^store: cannot open .*x\.sqlite: /,
    postgres: /^store: cannot connect to PostgreSQL \(3D000 invalid_catalog_name\)$/,
  };
  each(
    'an unopenable database is a typed error (a URL, with its password, is never quoted)',
    async (d, _f, t) => {
      await assert.rejects(open(t.unopenable()), (e: unknown) => {
        assert.ok(isStoreError(e));
        assert.equal(e.code, 'STORE_OPEN_FAILED');
        assert.match(e.message, UNOPENABLE[d]);
        return true;
      });
    },
  );

  each('openStore picks the dialect by the target', async (d, f) => {
    assert.equal(isPostgresUrl(f), d === 'postgres');
    const s = await open(f);
    assert.equal(s.dialect, d);
    await s.close();
  });
});

describe('statements and transactions', () => {
  each('commit on resolve, roll back on throw; nothing half-written', async (_d, f) => {
    const s = await open(f);
    await s.run('INSERT INTO account VALUES (?, ?)', ['a', 100]);
    await s.transaction(async (tx) => {
      await tx.run('UPDATE account SET balance_minor = balance_minor - ? WHERE id = ?', [30, 'a']);
      await tx.run('INSERT INTO hold (id, account_id, amount_minor) VALUES (?, ?, ?)', [1, 'a', 30]);
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

  const INCREMENTS = 40;
  /** Read, wait for `ready` (so other transactions interleave), write the value read plus one. */
  const incrementAfter = (ready: () => Promise<unknown>) => async (q: Pick<Store, 'get' | 'run'>) => {
    const row = await q.get<{ b: number }>('SELECT balance_minor AS b FROM account WHERE id = ?', ['a']);
    await ready();
    await q.run('UPDATE account SET balance_minor = ? WHERE id = ?', [row!.b + 1, 'a']);
  };
  const increment = incrementAfter(() => new Promise((r) => setImmediate(r)));
  /** Resolves once `n` callers have arrived: every read is done before any write. */
  const barrier = (n: number) => {
    let arrived = 0;
    let open!: () => void;
    const all = new Promise<void>((r) => {
      open = r;
    });
    return () => {
      if (++arrived === n) open();
      return all;
    };
  };

  each(`${INCREMENTS} concurrent read-modify-write transactions on one row lose no update`, async (_d, f) => {
    const s = await open(f);
    await s.run('INSERT INTO account VALUES (?, ?)', ['a', 0]);
    await Promise.all(Array.from({ length: INCREMENTS }, () => s.transaction(increment)));
    assert.deepEqual(await s.get('SELECT balance_minor AS b FROM account'), { b: INCREMENTS });
    await s.close();
  });
  each(
    'the same increments outside a transaction lose updates (so the check above can fail)',
    async (_d, f) => {
      const s = await open(f);
      await s.run('INSERT INTO account VALUES (?, ?)', ['a', 0]);
      const inc = incrementAfter(barrier(INCREMENTS));
      await Promise.all(Array.from({ length: INCREMENTS }, () => inc(s)));
      assert.deepEqual(await s.get('SELECT balance_minor AS b FROM account'), { b: 1 });
      await s.close();
    },
  );

  /** Four transactions that all read before any writes: PostgreSQL lets one commit; SQLite runs them in turn. */
  const CONFLICT: Record<DialectName, { committed: number }> = {
    sqlite: { committed: 4 },
    postgres: { committed: 1 },
  };
  each('a conflict past the retry limit is a typed error, and nothing of it is kept', async (d, f) => {
    const s =
      d === 'postgres'
        ? await openPostgresStore(f, { migrations: M, serializationRetries: 0, poolSize: 4 })
        : await open(f);
    await s.run('INSERT INTO account VALUES (?, ?)', ['a', 0]);
    // SQLite runs one transaction at a time, so a barrier across them would never open.
    const inc = d === 'postgres' ? incrementAfter(barrier(4)) : increment;
    const results = await Promise.allSettled(Array.from({ length: 4 }, () => s.transaction(inc)));
    const failed = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    assert.equal(4 - failed.length, CONFLICT[d].committed);
    for (const e of failed) {
      rejectsWith('STORE_TX_CONFLICT', 'transaction: serialization failure, still after 0 retries')(e);
    }
    assert.deepEqual(await s.get('SELECT balance_minor AS b FROM account'), { b: CONFLICT[d].committed });
    await s.close();
  });

  /** SQLite undoes only the failed statement; PostgreSQL aborts the whole transaction (portable code must not rely on either). */
  const CAUGHT: Record<DialectName, { committed: boolean }> = {
    sqlite: { committed: true },
    postgres: { committed: false },
  };
  each('a statement error caught inside a transaction', async (d, f) => {
    const s = await open(f);
    await s.run('INSERT INTO account VALUES (?, ?)', ['a', 1]);
    const p = s.transaction(async (tx) => {
      await tx.run('INSERT INTO account VALUES (?, ?)', ['b', 2]);
      await tx.run('INSERT INTO account VALUES (?, ?)', ['a', 1]).catch(() => undefined);
    });
    if (CAUGHT[d].committed) await p;
    else {
      await assert.rejects(
        p,
        rejectsWith(
          'STORE_QUERY_FAILED',
          'transaction: a statement failed inside it, so PostgreSQL rolled it back (catching the error does not undo that)',
        ),
      );
    }
    assert.deepEqual(await s.get('SELECT COUNT(*) AS n FROM account'), { n: CAUGHT[d].committed ? 2 : 1 });
    await s.close();
  });

  const CONSTRAINTS: Record<DialectName, Record<'unique' | 'check' | 'notNull' | 'foreignKey', string>> = {
    sqlite: {
      unique: 'statement failed: UNIQUE constraint failed: account.id',
      // SQLite's message quotes the CHECK expression; the store keeps its leading column name only.
      check: 'statement failed: CHECK constraint failed: balance_minor',
      notNull: 'statement failed: NOT NULL constraint failed: account.balance_minor',
      foreignKey: 'statement failed: FOREIGN KEY constraint failed',
    },
    postgres: {
      unique: 'statement failed: UNIQUE constraint failed: account_pkey',
      check: 'statement failed: CHECK constraint failed: account_balance_minor_check',
      notNull: 'statement failed: NOT NULL constraint failed: account.balance_minor',
      foreignKey: 'statement failed: FOREIGN KEY constraint failed: hold_account_id_fkey',
    },
  };
  each('a constraint failure names the constraint, never the values', async (d, f) => {
    const s = await open(f);
    const pan = '6222021234567890123';
    await s.run('INSERT INTO account VALUES (?, ?)', [pan, 1]);
    const cases: [keyof (typeof CONSTRAINTS)['sqlite'], string, (string | number | null)[]][] = [
      ['unique', 'INSERT INTO account VALUES (?, ?)', [pan, 1]],
      ['check', 'UPDATE account SET balance_minor = ?', [-1]],
      ['notNull', 'INSERT INTO account VALUES (?, ?)', ['x', null]],
      [
        'foreignKey',
        'INSERT INTO hold (id, account_id, amount_minor) VALUES (?, ?, ?)',
        [1, '4111111111111111', 5],
      ],
    ];
    for (const [kind, sql, params] of cases) {
      await assert.rejects(s.run(sql, params), (e: unknown) => {
        rejectsWith('STORE_QUERY_FAILED', CONSTRAINTS[d][kind])(e);
        assert.ok(!(e as Error).message.includes(pan) && !(e as Error).message.includes('4111'));
        assert.equal((e as Error).cause, undefined, 'no driver error (with its detail) attached');
        return true;
      });
    }
    await s.close();
  });

  const BAD_INPUT: Record<DialectName, string> = {
    sqlite: 'statement failed: SQLITE_ERROR',
    postgres: 'statement failed: 22P02 invalid_text_representation',
  };
  each(
    'other statement errors give the error kind, not the message (which may quote a value)',
    async (d, f) => {
      const s = await open(f);
      const sql: Record<DialectName, string> = {
        sqlite: 'SELECT * FROM no_such_table WHERE id = ?',
        postgres: 'SELECT CAST(? AS INTEGER) AS n',
      };
      // PostgreSQL's own message here is: invalid input syntax for type integer: "x4111111111111111"
      await assert.rejects(
        s.get(sql[d], ['x4111111111111111']),
        rejectsWith('STORE_QUERY_FAILED', BAD_INPUT[d]),
      );
      await s.close();
    },
  );

  each('BIGINT, COUNT and SUM come back as numbers; beyond 2^53 refused both ways', async (_d, f) => {
    const s = await open(f);
    await s.run('INSERT INTO account VALUES (?, ?), (?, ?)', ['a', 2 ** 53 - 1, 'b', 5]);
    assert.deepEqual(await s.get('SELECT COUNT(*) AS n, MAX(balance_minor) AS m FROM account'), {
      n: 2,
      m: 2 ** 53 - 1,
    });
    assert.deepEqual(await s.get('SELECT SUM(balance_minor) AS total FROM account WHERE id = ?', ['b']), {
      total: 5,
    });
    await assert.rejects(
      s.run('INSERT INTO account VALUES (?, ?)', ['c', 2 ** 53]),
      rejectsWith('STORE_QUERY_FAILED', 'params[1]: integer beyond Number.MAX_SAFE_INTEGER'),
    );
    await s.run('INSERT INTO account VALUES (?, ?)', ['big', 2n ** 60n]);
    await assert.rejects(
      s.get('SELECT balance_minor AS b FROM account WHERE id = ?', ['big']),
      rejectsWith('STORE_INTEGER_UNSAFE', 'column b: integer beyond Number.MAX_SAFE_INTEGER'),
    );
    await assert.rejects(
      s.all('SELECT SUM(balance_minor) AS total FROM account'),
      rejectsWith('STORE_INTEGER_UNSAFE', 'column total: integer beyond Number.MAX_SAFE_INTEGER'),
    );
    await s.close();
  });

  each('portable SQL: ? inside literals, ON CONFLICT DO NOTHING, RETURNING', async (_d, f) => {
    const s = await open(f);
    assert.deepEqual(
      await s.get("SELECT 'is it? yes' AS q, CAST(? AS INTEGER) AS n /* a ? here */ -- and ? here\n", [7]),
      { q: 'is it? yes', n: 7 },
    );
    await s.run('INSERT INTO account VALUES (?, ?)', ['a', 1]);
    assert.deepEqual(await s.run('INSERT INTO account VALUES (?, ?) ON CONFLICT (id) DO NOTHING', ['a', 9]), {
      changes: 0,
    });
    assert.deepEqual(
      await s.get(
        'UPDATE account SET balance_minor = balance_minor + ? WHERE id = ? RETURNING balance_minor',
        [4, 'a'],
      ),
      { balance_minor: 5 },
    );
    await s.close();
  });

  each('use after close is refused', async (_d, f) => {
    const s = await open(f);
    await s.close();
    for (const call of [() => s.get('SELECT 1'), () => s.transaction(async () => 1)]) {
      await assert.rejects(async () => call(), rejectsWith('STORE_CLOSED', 'store: used after close()'));
    }
  });
});

describe('placeholders', () => {
  const CASES: [string, string, number][] = [
    ['SELECT ? , ?', 'SELECT $1 , $2', 2],
    ["SELECT 'a?b', ?", "SELECT 'a?b', $1", 1],
    ["SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1", 1],
    ["SELECT E'\\' ?', ?", "SELECT E'\\' ?', $1", 1],
    ['SELECT "col?" FROM t WHERE a = ?', 'SELECT "col?" FROM t WHERE a = $1', 1],
    ['SELECT 1 -- what?\n, ?', 'SELECT 1 -- what?\n, $1', 1],
    ['SELECT /* ? */ ?', 'SELECT /* ? */ $1', 1],
    ['SELECT $$ ? $$, $q$ ? $q$, ?', 'SELECT $$ ? $$, $q$ ? $q$, $1', 1],
    ['SELECT a$b, ?', 'SELECT a$b, $1', 1],
    ["SELECT 'unterminated ?", "SELECT 'unterminated ?", 0],
  ];
  for (const [sql, text, count] of CASES) {
    test(JSON.stringify(sql), () => assert.deepEqual(numberPlaceholders(sql), { text, count }));
  }
});
