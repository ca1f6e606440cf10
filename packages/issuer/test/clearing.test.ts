/**
 * Issue 6 at the issuer: the 0420 reversal advice handled exactly like 0400 (answered 0430, idempotent,
 * a never-seen original remembered and its late arrival declined 12), reconciliation's
 * `reverseByIdentity`, and the clearing file. Real LocalHsm, real SQLite file, frames through
 * `answerFrame` (the TCP handler's function).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Store } from '@openposp/store';
import { clearingDateMs, type IssuerClearingRecord, issuerClearingRecords } from '../src/clearing.js';
import { IssuerError } from '../src/errors.js';
import type { Issuer } from '../src/issuer.js';
import { answerFrame } from '../src/service.js';
import { issuerSpec, unpack, verifyMessageMac } from '../src/wire.js';
import {
  ACQ,
  buildRequest,
  CARD,
  frameOf,
  hsm,
  KEYS,
  type MsgOpts,
  openIssuer,
  tempDir,
  testCards,
} from './fixture.js';

let dir: string;
let store: Store;
let issuer: Issuer;
let stan = 500;
const nextStan = () => String(++stan).padStart(6, '0');

before(async () => {
  dir = tempDir('issuer-clearing-');
  ({ store, issuer } = await openIssuer(join(dir, 'issuer.db')));
  await issuer.loadCards(testCards());
});
after(async () => {
  await store.close();
});

async function send(o: Partial<MsgOpts> & { pan: string }): Promise<{ code: string; mti: string }> {
  const out = await answerFrame(issuer, await frameOf(buildRequest({ stan: nextStan(), ...o })));
  assert.ok(out.response, 'an answer was sent');
  const m = unpack(issuerSpec(), out.response);
  assert.equal(await verifyMessageMac(hsm, KEYS.zak, m, out.response), true, 'answer MAC verifies');
  return { code: m.get(39) as string, mti: m.mti };
}

const balanceOf = async (pan: string) => (await issuer.card(pan))!.balance.availableMinor;
const idOf = (s: string) => ({ acquirerId: ACQ, terminalId: 'TERM0001', stan: s, localDate: '1125' });

async function purchase(amountMinor: number): Promise<{ stan: string; transmissionDt: string }> {
  const s = nextStan();
  const transmissionDt = `1125${s}`.slice(0, 10);
  const r = await send({ pan: CARD.ibm.pan, pin: CARD.ibm.pin, amountMinor, stan: s, transmissionDt });
  assert.equal(r.code, '00');
  return { stan: s, transmissionDt };
}

describe('0420 reversal advice', () => {
  test('of a purchase: 0430 00, the debit undone; again (0420, 0421, 0400 of the same identity): first answer, nothing moves', async () => {
    const bal = await balanceOf(CARD.ibm.pan);
    const p = await purchase(700);
    assert.equal(await balanceOf(CARD.ibm.pan), bal - 700);
    const advice = (mti: string) =>
      send({ mti, pan: CARD.ibm.pan, amountMinor: 700, stan: p.stan, original: p });
    assert.deepEqual(await advice('0420'), { code: '00', mti: '0430' });
    assert.equal(await balanceOf(CARD.ibm.pan), bal);
    assert.deepEqual(await advice('0420'), { code: '00', mti: '0430' });
    assert.deepEqual(await advice('0421'), { code: '00', mti: '0430' });
    assert.deepEqual(await advice('0400'), { code: '00', mti: '0410' });
    assert.equal(await balanceOf(CARD.ibm.pan), bal);
    const views = await issuer.inquire(idOf(p.stan));
    assert.deepEqual(
      views.map((v) => v.state),
      ['reversed', 'reversal-applied'],
    );
    assert.deepEqual((await issuer.auditLedger()).problems, []);
  });

  test('after a 0400 of the same identity (the store and forward resending it): first answer, not 94', async () => {
    const bal = await balanceOf(CARD.ibm.pan);
    const p = await purchase(300);
    const rev = (mti: string) =>
      send({ mti, pan: CARD.ibm.pan, amountMinor: 300, stan: p.stan, original: p });
    assert.equal((await rev('0400')).code, '00');
    assert.deepEqual(await rev('0420'), { code: '00', mti: '0430' });
    assert.equal(await balanceOf(CARD.ibm.pan), bal);
  });

  test('of a transaction never seen: 00 and remembered; the late original is declined 12 and debits nothing', async () => {
    const bal = await balanceOf(CARD.ibm.pan);
    const s = nextStan();
    const dt = `1125${s}`.slice(0, 10);
    const r = await send({
      mti: '0420',
      pan: CARD.ibm.pan,
      amountMinor: 900,
      stan: s,
      original: { stan: s, transmissionDt: dt },
    });
    assert.deepEqual(r, { code: '00', mti: '0430' });
    const late = await send({
      pan: CARD.ibm.pan,
      pin: CARD.ibm.pin,
      amountMinor: 900,
      stan: s,
      transmissionDt: dt,
    });
    assert.equal(late.code, '12');
    assert.equal(await balanceOf(CARD.ibm.pan), bal);
  });

  test('a 0420 of another amount than the original: 13, nothing moves', async () => {
    const bal = await balanceOf(CARD.ibm.pan);
    const p = await purchase(450);
    const r = await send({ mti: '0420', pan: CARD.ibm.pan, amountMinor: 451, stan: p.stan, original: p });
    assert.equal(r.code, '13');
    assert.equal(await balanceOf(CARD.ibm.pan), bal - 450);
  });
});

describe('reverseByIdentity (reconciliation refund)', () => {
  test('reverses an approved purchase once, without the PAN; later calls and a wire 0420 change nothing', async () => {
    const bal = await balanceOf(CARD.ibm.pan);
    const p = await purchase(1250);
    const a = await issuer.reverseByIdentity(idOf(p.stan), { note: 'reconcile 20261125' });
    assert.equal(a.responseCode, '00');
    assert.equal(a.replay, false);
    assert.equal(await balanceOf(CARD.ibm.pan), bal);
    const b = await issuer.reverseByIdentity(idOf(p.stan));
    assert.equal(b.responseCode, '00');
    assert.equal(b.replay, true);
    const wire = await send({ mti: '0420', pan: CARD.ibm.pan, amountMinor: 1250, stan: p.stan, original: p });
    assert.equal(wire.code, '00');
    assert.equal(await balanceOf(CARD.ibm.pan), bal);
    const views = await issuer.inquire(idOf(p.stan));
    assert.equal(views[0]!.state, 'reversed');
    assert.equal(views[1]!.maskedPan, '621234******0019');
    assert.match(views[1]!.note!, /reconcile 20261125/);
    const notes = await issuer.notifications({ accountId: (await issuer.card(CARD.ibm.pan))!.accountId });
    assert.equal(notes.at(-1)!.type, 'reversal');
    assert.deepEqual((await issuer.auditLedger()).problems, []);
  });

  test('after the terminal reversal already reversed it: 00, first answer, nothing moves', async () => {
    const bal = await balanceOf(CARD.ibm.pan);
    const p = await purchase(60);
    assert.equal(
      (await send({ mti: '0400', pan: CARD.ibm.pan, amountMinor: 60, stan: p.stan, original: p })).code,
      '00',
    );
    const a = await issuer.reverseByIdentity(idOf(p.stan));
    assert.equal(a.responseCode, '00');
    assert.equal(a.replay, true);
    assert.equal(await balanceOf(CARD.ibm.pan), bal);
  });

  test('no original here: 25, nothing recorded', async () => {
    const s = nextStan();
    const a = await issuer.reverseByIdentity(idOf(s));
    assert.equal(a.responseCode, '25');
    assert.equal(a.txnId, undefined);
    assert.deepEqual(await issuer.inquire(idOf(s)), []);
  });
});

describe('clearing file', () => {
  test('one line per purchase, void, refund and reversal of the date, with its state; inquiries left out', async () => {
    const d = tempDir('issuer-clearing-file-');
    const { store: st, issuer: iss } = await openIssuer(join(d, 'issuer.db'));
    try {
      await iss.loadCards(testCards());
      const go = async (o: Partial<MsgOpts> & { pan: string }) => {
        const out = await answerFrame(iss, await frameOf(buildRequest({ stan: nextStan(), ...o })));
        return unpack(issuerSpec(), out.response!).get(39) as string;
      };
      const s1 = nextStan();
      const t1 = `1125${s1}`.slice(0, 10);
      assert.equal(
        await go({ pan: CARD.ibm.pan, pin: CARD.ibm.pin, amountMinor: 1000, stan: s1, transmissionDt: t1 }),
        '00',
      );
      const s2 = nextStan();
      assert.equal(await go({ pan: CARD.ibm.pan, pin: '0000', amountMinor: 200, stan: s2 }), '55');
      const s3 = nextStan();
      const t3 = `1125${s3}`.slice(0, 10);
      assert.equal(
        await go({ pan: CARD.pvv.pan, pin: CARD.pvv.pin, amountMinor: 300, stan: s3, transmissionDt: t3 }),
        '00',
      );
      assert.equal(
        await go({
          mti: '0400',
          pan: CARD.pvv.pan,
          amountMinor: 300,
          stan: s3,
          original: { stan: s3, transmissionDt: t3 },
        }),
        '00',
      );
      const s5 = nextStan();
      assert.equal(
        await go({
          pan: CARD.ibm.pan,
          processingCode: '200000',
          amountMinor: 400,
          stan: s5,
          original: { stan: s1, transmissionDt: t1 },
        }),
        '00',
      );
      assert.equal(
        await go({ pan: CARD.ibm.pan, pin: CARD.ibm.pin, processingCode: '310000', amountMinor: null }),
        '00',
      );
      assert.equal(
        await go({ pan: CARD.ibm.pan, pin: CARD.ibm.pin, amountMinor: 5, localDate: '1124' }),
        '00',
      );

      const out = await iss.writeClearingFile(join(d, 'clearing'), '20261125', 'bank-a');
      assert.equal(out.path, join(d, 'clearing', 'clearing-bank-a-20261125.jsonl'));
      assert.equal(out.records, 5);
      const lines = readFileSync(out.path, 'utf8').trimEnd().split('\n');
      const recs = lines.map((l) => JSON.parse(l) as IssuerClearingRecord);
      const base = {
        party: 'bank-a',
        acquirerId: ACQ,
        terminalId: 'TERM0001',
        localDate: '1125',
        currency: '156',
      };
      assert.deepEqual(recs[0], {
        ...base,
        stan: s1,
        transmissionTime: t1,
        rrn: `000000${s1}`,
        type: 'purchase',
        amountMinor: 1000,
        responseCode: '00',
        state: 'approved',
        pan: '621234******0019',
      });
      assert.deepEqual(
        recs.map((r) => [r.stan, r.type, r.responseCode, r.state, r.amountMinor]),
        [
          [s1, 'purchase', '00', 'approved', 1000],
          [s2, 'purchase', '55', 'declined', 200],
          [s3, 'purchase', '00', 'reversed', 300],
          [s3, 'reversal', '00', 'approved', 300],
          [s5, 'refund', '00', 'approved', 400],
        ],
      );
      // Another date: none of these (the MMDD differs, or the year does).
      assert.equal(
        (await issuerClearingRecords(st, { date: '20251125', party: 'bank-a', currency: '156' })).length,
        0,
      );
      assert.equal(
        (await issuerClearingRecords(st, { date: '20261124', party: 'bank-a', currency: '156' })).length,
        1,
      );
    } finally {
      await st.close();
    }
  });

  test('a malformed date or party is ISSUER_CLEARING_INVALID naming it', async () => {
    for (const date of ['2026112', '20261131', '2026-11-25', '20261325']) {
      assert.throws(
        () => clearingDateMs(date),
        (e: unknown) =>
          e instanceof IssuerError &&
          e.code === 'ISSUER_CLEARING_INVALID' &&
          e.message === 'date: must be a date YYYYMMDD',
      );
    }
    await assert.rejects(
      issuer.writeClearingFile(dir, '20261125', '../x'),
      (e: unknown) =>
        e instanceof IssuerError &&
        e.code === 'ISSUER_CLEARING_INVALID' &&
        e.message === 'party: must be 1 to 64 of A-Z a-z 0-9 . _ -',
    );
  });
});
