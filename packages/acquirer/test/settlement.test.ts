/**
 * Issue 6 at the POSP: settlement (0500 field 48 against the journal), batch upload (0320) reconciled
 * item by item, the batch closing (the next request must carry the new batch), merchant settlement with
 * a fee in basis points, the acquirer's clearing file, and a refund naming its original by RRN only.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Iso8583Message } from '@openposp/iso8583';
import fc from 'fast-check';
import { openSqliteStore } from '@openposp/store';
import {
  ACQUIRER_MIGRATIONS,
  AcquirerError,
  feeMinorOf,
  localDayBoundsIso,
  markReconciled,
  parseField48,
  totalsField48,
} from '../src/index.js';
import { ACQUIRER_ID, CARD, cup, type Harness, MERCHANT_ID, startHarness, TERMINAL_ID } from './harness.js';

let h: Harness;
const FEE_BPS = 60; // 0.60 %

before(async () => {
  h = await startHarness({ feeBasisPoints: FEE_BPS });
  await h.terminal.signIn();
});
after(async () => {
  await h.close();
});

const rc = (m: { get(p: number): unknown }): unknown => m.get(39);
let tenInBatch2: { stan: string; rrn: string; code: unknown } | undefined;

type Kind = 'purchase' | 'void' | 'refund';
async function send(
  kind: Kind,
  amount: number,
  o: { batch?: string; original?: { batch: string; stan: string; date?: string; rrn?: string } } = {},
): Promise<{ stan: string; rrn: string; code: unknown }> {
  const t = h.terminal;
  const stan = t.nextStan();
  const m = t.financial(kind, { amount, stan, ...(o.original ? { original: o.original } : {}) });
  if (o.batch) m.set('60.2', o.batch);
  const { answer } = await t.send(t.mac(m));
  return { stan, rrn: String(answer.get(37)), code: rc(answer) };
}

function settlementMessage(batch: string, totals: string): Iso8583Message {
  const t = h.terminal;
  return t.mac(
    new Iso8583Message(cup, '0500', {
      11: t.nextStan(),
      12: '180000',
      13: '1125',
      41: TERMINAL_ID,
      42: MERCHANT_ID,
      48: totals,
      49: '156',
      60: `00${batch}201`,
      63: '001',
    }),
  );
}

function uploadMessage(
  batch: string,
  item: { stan: string; amount: number; pc?: string; rrn?: string },
): Iso8583Message {
  const t = h.terminal;
  const m = new Iso8583Message(cup, '0320', {
    2: CARD.pan,
    3: item.pc ?? '000000',
    4: String(item.amount).padStart(12, '0'),
    11: item.stan,
    12: '100102',
    13: '1125',
    25: '00',
    39: '00',
    41: TERMINAL_ID,
    42: MERCHANT_ID,
    49: '156',
    60: `22${batch}201`,
  });
  if (item.rrn) m.set(37, item.rrn);
  return t.mac(m);
}

function endOfBatch(batch: string, count: number, code = '202'): Iso8583Message {
  const t = h.terminal;
  return t.mac(
    new Iso8583Message(cup, '0320', {
      11: t.nextStan(),
      41: TERMINAL_ID,
      42: MERCHANT_ID,
      48: String(count).padStart(4, '0'),
      60: `00${batch}${code}`,
    }),
  );
}

const totals = (debitCount: number, debitMinor: number, creditCount: number, creditMinor: number) =>
  totalsField48({ debitCount, debitMinor, creditCount, creditMinor }, '1', '1');

describe('field 48', () => {
  test('totalsField48 / parseField48 round trip (property); 62 digits', () => {
    fc.assert(
      fc.property(
        fc.record({
          debitCount: fc.integer({ min: 0, max: 999 }),
          debitMinor: fc.integer({ min: 0, max: 999_999_999_999 }),
          creditCount: fc.integer({ min: 0, max: 999 }),
          creditMinor: fc.integer({ min: 0, max: 999_999_999_999 }),
        }),
        (t) => {
          const f = totalsField48(t, '2', '1');
          const d = parseField48(f)!.domestic;
          return (
            f.length === 62 &&
            f[30] === '2' &&
            f[61] === '1' &&
            d.debitCount === t.debitCount &&
            d.debitMinor === t.debitMinor &&
            d.creditCount === t.creditCount &&
            d.creditMinor === t.creditMinor
          );
        },
      ),
    );
    assert.equal(parseField48('123'), undefined);
  });
});

describe('settlement (0500) and batch upload (0320)', () => {
  test('balanced: flag 1, the batch closes, the next request must carry the new batch', async () => {
    const p1 = await send('purchase', 1000);
    const p2 = await send('purchase', 2000);
    assert.equal(p1.code, '00');
    const v = await send('void', 2000, { original: { batch: '000001', stan: p2.stan } });
    assert.equal(v.code, '00');
    const r = await send('refund', 300, {
      original: { batch: '000001', stan: p1.stan, date: '1125', rrn: p1.rrn },
    });
    assert.equal(r.code, '00');
    h.behaviour.fn = () => ({ code: '51' });
    assert.equal((await send('purchase', 99)).code, '51');
    h.behaviour.fn = () => ({ code: '00' });
    // Reversed: out of the totals.
    const rev = await send('purchase', 444);
    const t = h.terminal;
    const m = new Iso8583Message(cup, '0400', {
      2: CARD.pan,
      3: '000000',
      4: '000000000444',
      11: rev.stan,
      22: '021',
      25: '00',
      39: '98',
      41: TERMINAL_ID,
      42: MERCHANT_ID,
      49: '156',
      60: '22000001000',
      61: `000001${rev.stan}1125`,
    });
    assert.equal(rc((await t.send(t.mac(m))).answer), '00');

    // Debits: the two purchases (the voided one stays a debit, its void is a credit); credits: void + refund.
    const { answer, message } = await t.send(settlementMessage('000001', totals(2, 3000, 2, 2300)));
    assert.equal(answer.mti, '0510');
    assert.equal(rc(answer), '00');
    assert.ok(t.answerMacOk(message));
    assert.equal(answer.get('48.5'), '1');
    assert.equal(answer.get('48.10'), '1');
    assert.equal(answer.get('60.2'), '000002', 'the next batch');
    assert.equal((await h.posp.getTerminal(TERMINAL_ID))?.batchNo, '000002');
    const rec = await h.posp.batches.get(TERMINAL_ID, '000001');
    assert.equal(rec?.balanced, true);
    assert.ok(rec?.closedAt);
    // The old batch is closed: 77 (sign in to learn the open batch); the new one works.
    assert.equal((await send('purchase', 10)).code, '77');
    tenInBatch2 = await send('purchase', 10, { batch: '000002' });
    assert.equal(tenInBatch2.code, '00');
    // The same 0500 again (a repeat): the recorded answer.
    const again = await t.send(settlementMessage('000001', totals(2, 3000, 2, 2300)));
    assert.equal(rc(again.answer), '00');
    assert.equal(again.answer.get('48.5'), '1');
  });

  test('unbalanced: flag 2 with the POSP totals; upload reconciled item by item; end of batch closes it', async () => {
    // Batch 000002 holds one purchase of 10 (above) and now these.
    const a = await send('purchase', 500, { batch: '000002' });
    const b = await send('purchase', 600, { batch: '000002' });
    const first = await h.posp.inquire(tenInBatch2!.rrn);
    assert.equal(first?.amountMinor, 10);
    const t = h.terminal;
    // The terminal believes: 10, 500 at 550 (amount differs), 777 (a purchase the POSP never approved); not b.
    const { answer } = await t.send(settlementMessage('000002', totals(3, 1337, 0, 0)));
    assert.equal(rc(answer), '00');
    assert.equal(answer.get('48.5'), '2');
    assert.equal(answer.get('48.1'), '000000001110');
    assert.equal(answer.get('48.2'), '003');
    assert.equal(answer.get('48.3'), '000000000000');
    assert.equal(answer.get('60.2'), '000002', 'still open until the upload ends');
    assert.equal((await h.posp.getTerminal(TERMINAL_ID))?.batchNo, '000002');
    for (const item of [
      { stan: first!.stan, amount: 10 },
      { stan: a.stan, amount: 550 },
      { stan: '000999', amount: 777 },
    ]) {
      const u = await t.send(uploadMessage('000002', item));
      assert.equal(u.answer.mti, '0330');
      assert.equal(rc(u.answer), '00');
      assert.ok(t.answerMacOk(u.message));
    }
    const end = await t.send(endOfBatch('000002', 3));
    assert.equal(rc(end.answer), '00');
    assert.equal(end.answer.get('60.2'), '000003');
    assert.equal((await h.posp.getTerminal(TERMINAL_ID))?.batchNo, '000003');
    const d = await h.posp.batches.discrepancies(TERMINAL_ID, '000002');
    assert.deepEqual(
      d.map((x) => [x.kind, x.stan, x.terminalAmountMinor, x.pospAmountMinor]),
      [
        ['amount-differs', a.stan, 550, 500],
        ['missing-at-posp', '000999', 777, undefined],
        ['missing-at-terminal', b.stan, undefined, 600],
      ],
    );
    const rec = await h.posp.batches.get(TERMINAL_ID, '000002');
    assert.equal(rec?.balanced, false);
    assert.equal(rec?.uploaded, 3);
    assert.ok(rec?.closedAt);
  });

  test('a 0500 with a bad MAC is A0, without 48 is 30, for a batch never opened 12', async () => {
    const t = h.terminal;
    const bad = t.mac(settlementMessage('000003', totals(0, 0, 0, 0)), new Uint8Array(16).fill(3));
    assert.equal(rc((await t.send(bad)).answer), 'A0');
    const no48 = settlementMessage('000003', totals(0, 0, 0, 0));
    no48.unset(48);
    assert.equal(rc((await t.send(t.mac(no48))).answer), '30');
    assert.equal(rc((await t.send(settlementMessage('000009', totals(0, 0, 0, 0)))).answer), '12');
  });
});

describe('refund by RRN', () => {
  test('61.1/61.2 zeros: the original is found by its RRN (37) and date (61.3); another RRN is 25', async () => {
    const p = await send('purchase', 800, { batch: '000003' });
    assert.equal(p.code, '00');
    const r = await send('refund', 200, {
      batch: '000003',
      original: { batch: '000000', stan: '000000', date: '1125', rrn: p.rrn },
    });
    assert.equal(r.code, '00');
    assert.equal(h.seen.at(-1)!.msg.get('90.2'), p.stan);
    assert.equal((await h.posp.inquire(r.rrn))?.originalRrn, p.rrn);
    const wrongDate = await send('refund', 100, {
      batch: '000003',
      original: { batch: '000000', stan: '000000', date: '1124', rrn: p.rrn },
    });
    assert.equal(wrongDate.code, '25');
    const unknown = await send('refund', 100, {
      batch: '000003',
      original: { batch: '000000', stan: '000000', date: '1125', rrn: '000000999999' },
    });
    assert.equal(unknown.code, '25');
  });
});

describe('merchant settlement and the clearing file', () => {
  test('fee in basis points, integer, round half up; none on a net of zero or less', () => {
    assert.equal(feeMinorOf(10_000, 60), 60);
    assert.equal(feeMinorOf(1, 5000), 1, '0.5 rounds up');
    assert.equal(feeMinorOf(1, 4999), 0);
    assert.equal(feeMinorOf(0, 60), 0);
    assert.equal(feeMinorOf(-500, 60), 0);
    assert.equal(feeMinorOf(Number.MAX_SAFE_INTEGER, 10_000), Number.MAX_SAFE_INTEGER);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e12 }), fc.integer({ min: 0, max: 10_000 }), (net, bps) => {
        const fee = feeMinorOf(net, bps);
        // |fee − net·bps/10000| ≤ 1/2, and ties go up: 10000·fee − net·bps in (−5000, 5000].
        const diff = 10_000 * fee - net * bps;
        return Number.isInteger(fee) && diff > -5000 && diff <= 5000;
      }),
    );
    assert.deepEqual(localDayBoundsIso('20261125', 480), [
      '2026-11-24T16:00:00.000Z',
      '2026-11-25T16:00:00.000Z',
    ]);
  });

  test('merchantSettlement(date): approved unreversed purchases − voids − refunds, less the fee', async () => {
    const s = await h.posp.merchantSettlement('20261125');
    assert.equal(s.feeBasisPoints, FEE_BPS);
    assert.equal(s.merchants.length, 1);
    const m = s.merchants[0]!;
    assert.equal(m.merchantId, MERCHANT_ID);
    // Purchases: 1000 2000 10 500 600 800 (99 declined, 444 reversed); void 2000; refunds 300 + 200.
    assert.deepEqual(m.purchases, { count: 6, amountMinor: 4910 });
    assert.deepEqual(m.voids, { count: 1, amountMinor: 2000 });
    assert.deepEqual(m.refunds, { count: 2, amountMinor: 500 });
    assert.equal(m.netMinor, 2410);
    assert.equal(m.feeMinor, 14, '2410 × 0.60 % = 14.46 -> 14');
    assert.equal(m.payableMinor, 2396);
    assert.deepEqual(s.totals, { netMinor: 2410, feeMinor: 14, payableMinor: 2396 });
    assert.deepEqual((await h.posp.merchantSettlement('20261126')).merchants, []);
    await assert.rejects(
      () => h.posp.merchantSettlement('20261131'),
      (e: unknown) =>
        e instanceof AcquirerError &&
        e.code === 'ACQUIRER_DATE_INVALID' &&
        e.message === 'date: must be YYYYMMDD, a calendar day',
    );
  });

  test('writeClearingFile: clearing-acquirer-<date>.jsonl, one record per financial transaction and reversal', async () => {
    h.behaviour.fn = () => 'silent';
    const lost = await send('purchase', 1234, { batch: '000003' });
    h.behaviour.fn = () => ({ code: '00', balance: '1002156C000000012345' });
    const t = h.terminal;
    const inq = t.financial('inquiry');
    inq.set('60.2', '000003');
    assert.equal(rc((await t.send(t.mac(inq))).answer), '00');
    h.behaviour.fn = () => ({ code: '00' });
    const { path, records } = await h.posp.writeClearingFile(h.dir, '20261125');
    assert.equal(path, join(h.dir, 'clearing-acquirer-20261125.jsonl'));
    const lines = readFileSync(path, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(lines, records);
    assert.equal(readFileSync(path, 'utf8').includes(CARD.pan), false, 'masked PANs only');
    const keys = [
      'party',
      'acquirerId',
      'terminalId',
      'stan',
      'localDate',
      'transmissionTime',
      'rrn',
      'type',
      'amountMinor',
      'currency',
      'responseCode',
      'state',
      'pan',
    ];
    for (const l of lines) assert.deepEqual(Object.keys(l).sort(), [...keys].sort());
    const first = lines.find((l) => l.type === 'purchase' && l.amountMinor === 1000)!;
    assert.equal(first.party, 'acquirer');
    assert.equal(first.acquirerId, ACQUIRER_ID);
    assert.equal(first.terminalId, TERMINAL_ID);
    assert.equal(first.localDate, '1125');
    assert.match(first.transmissionTime, /^\d{10}$/);
    assert.equal(first.currency, '156');
    assert.equal(first.responseCode, '00');
    assert.equal(first.state, 'approved');
    assert.equal(first.pan, '622588******7890');
    assert.equal(lines.find((l) => l.amountMinor === 99)?.state, 'declined');
    const reversed = lines.filter((l) => l.amountMinor === 444);
    assert.deepEqual(
      reversed.map((l) => [l.type, l.state, l.responseCode]),
      [
        ['purchase', 'reversed', '00'],
        ['reversal', 'approved', '00'],
      ],
    );
    assert.equal(reversed[1].rrn, reversed[0].rrn);
    assert.equal(reversed[1].stan, reversed[0].stan, 'the identity of the original');
    const unknown = lines.filter((l) => l.rrn === lost.rrn);
    assert.deepEqual(
      unknown.map((l) => [l.type, l.state, l.responseCode]),
      [
        ['purchase', 'unknown', ''],
        ['reversal', 'unknown', ''],
      ],
    );
    assert.equal(
      lines.some((l) => (l.type as string) === 'inquiry' || l.amountMinor === 0),
      false,
    );
    assert.ok(lines.some((l) => l.type === 'void') && lines.some((l) => l.type === 'refund'));
  });

  test('markReconciled: exclude leaves merchant settlement and is not approved in the clearing file; confirm settles at its amount', async () => {
    const a = await send('purchase', 7001, { batch: '000003' });
    const b = await send('purchase', 7002, { batch: '000003' });
    assert.deepEqual([a.code, b.code], ['00', '00']);
    const net0 = (await h.posp.merchantSettlement('20261125')).merchants[0]!.netMinor;
    const id = (stan: string) => ({
      acquirerId: ACQUIRER_ID,
      terminalId: TERMINAL_ID,
      stan,
      localDate: '1125',
    });
    const store = await openSqliteStore(h.dbPath, { migrations: ACQUIRER_MIGRATIONS });
    try {
      const ex = { class: 'acquirer-approved-issuer-missing', action: 'exclude' } as const;
      assert.equal(await markReconciled(store, id(a.stan), ex), 'marked');
      assert.equal(await markReconciled(store, id(a.stan), ex), 'already', 'idempotent');
      const cf = { class: 'amount-mismatch', action: 'confirm', amountMinor: 7000 } as const;
      assert.equal(await markReconciled(store, id(b.stan), cf), 'marked');
      assert.equal(await markReconciled(store, id('999999'), ex), 'not-found');
      await assert.rejects(
        () => markReconciled(store, id(b.stan), { class: 'amount-mismatch', action: 'confirm' }),
        TypeError,
      );
      const row = await store.get<Record<string, unknown>>(
        'SELECT recon_action, recon_class, recon_amount_minor FROM journal WHERE rrn = ?',
        [b.rrn],
      );
      assert.deepEqual(
        { ...row },
        { recon_action: 'confirm', recon_class: 'amount-mismatch', recon_amount_minor: 7000 },
      );
    } finally {
      await store.close();
    }
    const m = (await h.posp.merchantSettlement('20261125')).merchants[0]!;
    assert.equal(m.netMinor, net0 - 7001 - 2, 'the excluded one is not settled, the confirmed one at 7000');
    const { records } = await h.posp.writeClearingFile(h.dir, '20261125');
    const of = (rrn: string) =>
      records.filter((r) => r.rrn === rrn).map((r) => [r.type, r.state, r.amountMinor]);
    assert.deepEqual(of(a.rrn), [['purchase', 'declined', 7001]]);
    assert.deepEqual(of(b.rrn), [['purchase', 'approved', 7000]]);
  });
});
