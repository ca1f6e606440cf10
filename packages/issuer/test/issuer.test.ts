/**
 * The issuer's side of the switch–issuer leg, message by message: real LocalHsm, real SQLite file,
 * frames through `answerFrame` (the TCP handler's function; tcp.test.ts drives the same over TCP).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodePinBlockIso0, encryptPinBlock, macX919, toHex } from '@openposp/crypto';
import { createLogger, type Logger } from '@openposp/net';
import type { Iso8583Message } from '@openposp/iso8583';
import type { Store } from '@openposp/store';
import { answerFrame } from '../src/service.js';
import type { Issuer } from '../src/issuer.js';
import { issuerSpec, unpack, verifyMessageMac } from '../src/wire.js';
import {
  buildRequest,
  CARD,
  CLEAR,
  frameOf,
  hsm,
  ibmCard,
  KEYS,
  type MsgOpts,
  openIssuer,
  packPlain,
  tempDir,
  testCards,
} from './fixture.js';

let dir: string;
let dbPath: string;
let logPath: string;
let store: Store;
let issuer: Issuer;
let log: Logger;
let stan = 100;
const nextStan = () => String(++stan).padStart(6, '0');

before(async () => {
  dir = tempDir();
  dbPath = join(dir, 'issuer.db');
  logPath = join(dir, 'issuer.log');
  ({ store, issuer } = await openIssuer(dbPath));
  log = createLogger({ service: 'issuer', path: logPath });
  await issuer.loadCards(testCards());
});
after(async () => {
  await store.close();
});

interface Reply {
  code: string;
  auth: string | undefined;
  f54: string | undefined;
  message: Iso8583Message;
}

async function sendFrame(frame: Uint8Array): Promise<Reply> {
  const out = await answerFrame(issuer, frame, log);
  assert.ok(out.response, 'an answer was sent');
  const message = unpack(issuerSpec(), out.response);
  assert.equal(await verifyMessageMac(hsm, KEYS.zak, message, out.response), true, 'answer MAC verifies');
  return {
    code: message.get(39) as string,
    auth: message.get(38) as string | undefined,
    f54: message.get(54) as string | undefined,
    message,
  };
}

async function send(o: Partial<MsgOpts> & { pan: string }): Promise<Reply> {
  return sendFrame(await frameOf(buildRequest({ stan: nextStan(), ...o })));
}

async function balanceOf(pan: string): Promise<number> {
  return (await issuer.card(pan))!.balance.availableMinor;
}

describe('purchase', () => {
  test('IBM 3624 card, right PIN: 00, 6-char authorization code, debit, notification', async () => {
    const before = await balanceOf(CARD.ibm.pan);
    const r = await send({ pan: CARD.ibm.pan, pin: CARD.ibm.pin, amountMinor: 1234 });
    assert.equal(r.code, '00');
    assert.match(r.auth!, /^\d{6}$/);
    assert.equal(r.message.mti, '0210');
    assert.equal(await balanceOf(CARD.ibm.pan), before - 1234);
    const notes = await issuer.notifications({ accountId: (await issuer.card(CARD.ibm.pan))!.accountId });
    const last = notes.at(-1)!;
    assert.equal(last.type, 'debit');
    assert.equal(last.amountMinor, 1234);
    assert.equal(last.maskedPan, '621234******0019');
    assert.equal(last.text, `您尾号0019的卡消费 12.34 元，可用余额 ${((before - 1234) / 100).toFixed(2)} 元`);
  });

  test('Visa PVV card, right PIN: 00', async () => {
    const r = await send({ pan: CARD.pvv.pan, pin: CARD.pvv.pin, amountMinor: 500 });
    assert.equal(r.code, '00');
  });

  const declines: [string, string, () => Partial<MsgOpts> & { pan: string }][] = [
    ['51 insufficient funds', '51', () => ({ pan: CARD.pvv.pan, pin: CARD.pvv.pin, amountMinor: 400_000 })],
    ['61 above the card limit', '61', () => ({ pan: CARD.ibm.pan, pin: CARD.ibm.pin, amountMinor: 500_001 })],
    ['54 expired card', '54', () => ({ pan: CARD.expired.pan, pin: CARD.expired.pin })],
    [
      '54 field 14 differs from the card',
      '54',
      () => ({ pan: CARD.ibm.pan, pin: CARD.ibm.pin, expiry: '2901' }),
    ],
    ['62 blocked card', '62', () => ({ pan: CARD.blocked.pan, pin: CARD.blocked.pin })],
    ['62 ATM-only service code', '62', () => ({ pan: CARD.atm.pan, pin: CARD.atm.pin })],
    ['14 no account', '14', () => ({ pan: CARD.unknown.pan, pin: CARD.unknown.pin })],
    ['13 zero amount', '13', () => ({ pan: CARD.ibm.pan, pin: CARD.ibm.pin, amountMinor: 0 })],
    ['30 no PIN block', '30', () => ({ pan: CARD.ibm.pan, pin: null })],
    [
      '12 unsupported processing code',
      '12',
      () => ({ pan: CARD.ibm.pan, pin: CARD.ibm.pin, processingCode: '010000' }),
    ],
  ];
  for (const [name, code, opts] of declines) {
    test(`${name}: no money moves`, async () => {
      const o = opts();
      const card = await issuer.card(o.pan);
      const r = await send(o);
      assert.equal(r.code, code);
      assert.equal(r.auth, undefined);
      if (card) assert.equal(await balanceOf(o.pan), card.balance.availableMinor);
    });
  }

  test('30 for a missing identity field; 25 for field 90 of zeros; an unreadable frame is dropped', async () => {
    const m = buildRequest({ stan: nextStan(), pan: CARD.ibm.pan, pin: CARD.ibm.pin });
    m.unset(41);
    assert.equal((await sendFrame(await frameOf(m))).code, '30');
    const r = buildRequest({ stan: nextStan(), pan: CARD.ibm.pan, processingCode: '200000' });
    r.set(90, '0'.repeat(42));
    assert.equal((await sendFrame(await frameOf(r))).code, '25');
    const noOriginal = buildRequest({ stan: nextStan(), pan: CARD.ibm.pan, processingCode: '020000' });
    assert.equal((await sendFrame(await frameOf(noOriginal))).code, '30');
    const garbage = await answerFrame(issuer, new Uint8Array([0x02, 0x00, 0xff]), log);
    assert.equal(garbage.response, null);
  });
});

describe('PIN tries', () => {
  test('55, 55, then 75 and PIN-blocked; the right PIN is then 75 too; enrolPin lifts the block', async () => {
    const pan = '6212340000000076';
    await issuer.addCard(ibmCard(pan, '1111'));
    assert.equal((await send({ pan, pin: '1112' })).code, '55');
    assert.equal((await issuer.card(pan))!.pinTries, 1);
    assert.equal((await send({ pan, pin: '1111' })).code, '00', 'a right PIN resets the counter');
    assert.equal((await issuer.card(pan))!.pinTries, 0);
    assert.equal((await send({ pan, pin: '1112' })).code, '55');
    assert.equal((await send({ pan, pin: '1113' })).code, '55');
    assert.equal((await send({ pan, pin: '1114' })).code, '75');
    assert.equal((await issuer.card(pan))!.status, 'pin-blocked');
    assert.equal((await send({ pan, pin: '1111' })).code, '75');
    assert.equal((await send({ pan, pin: '1111', processingCode: '310000', amountMinor: null })).code, '75');
    // PIN reset at the branch: the new PIN typed on the enrolment PIN pad, under its TPK.
    await issuer.enrolPin({ pan, pinBlock: encryptPinBlock(0, CLEAR.tpk, '2468', pan), pinKey: KEYS.tpk });
    assert.equal((await issuer.card(pan))!.status, 'active');
    assert.equal((await send({ pan, pin: '1111' })).code, '55');
    assert.equal((await send({ pan, pin: '2468' })).code, '00');
  });

  test('a card without an offset answers 55 until enrolPin; PVV enrolment through FW', async () => {
    const pan = '6212340000000084';
    const card = ibmCard(pan, '0000');
    if (card.pin.method === 'ibm3624') delete card.pin.offset;
    await issuer.addCard(card);
    assert.equal((await issuer.card(pan))!.pinEnrolled, false);
    assert.equal((await send({ pan, pin: '8642' })).code, '55');
    await issuer.enrolPin({ pan, pinBlock: encryptPinBlock(0, CLEAR.tpk, '8642', pan), pinKey: KEYS.tpk });
    assert.equal((await send({ pan, pin: '8642' })).code, '00');

    const pvvPan = '6212340000000092';
    await issuer.addCard({
      pan: pvvPan,
      expiry: '2812',
      serviceCode: '220',
      balanceMinor: 1000,
      pin: { method: 'pvv', pvk: KEYS.pvkVisa, pvki: '1' },
    });
    await issuer.enrolPin({
      pan: pvvPan,
      pinBlock: encryptPinBlock(0, CLEAR.tpk, '5555', pvvPan),
      pinKey: KEYS.tpk,
    });
    assert.equal((await send({ pan: pvvPan, pin: '5555', amountMinor: 100 })).code, '00');
    assert.equal((await send({ pan: pvvPan, pin: '5556', amountMinor: 100 })).code, '55');
  });
});

describe('balance inquiry', () => {
  test('00 with field 54 = available balance (type 02, currency 156, C, 12 digits)', async () => {
    const bal = await balanceOf(CARD.pvv.pan);
    const r = await send({
      pan: CARD.pvv.pan,
      pin: CARD.pvv.pin,
      processingCode: '310000',
      amountMinor: null,
    });
    assert.equal(r.code, '00');
    assert.equal(r.f54, `1002156C${String(bal).padStart(12, '0')}`);
    assert.equal(r.auth, undefined);
  });
  test('wrong PIN: 55 and no field 54', async () => {
    const r = await send({ pan: CARD.pvv.pan, pin: '0000', processingCode: '310000', amountMinor: null });
    assert.equal(r.code, '55');
    assert.equal(r.f54, undefined);
    await send({ pan: CARD.pvv.pan, pin: CARD.pvv.pin, processingCode: '310000', amountMinor: null });
  });
});

describe('duplicates (identity 32, 41, 11, 13)', () => {
  test('the same request twice: the first answer again (38, 39, 54), one debit', async () => {
    const before = await balanceOf(CARD.ibm.pan);
    const m = () => buildRequest({ stan: '555001', pan: CARD.ibm.pan, pin: CARD.ibm.pin, amountMinor: 700 });
    const a = await sendFrame(await frameOf(m()));
    const b = await sendFrame(await frameOf(m()));
    const repeat = m();
    repeat.mti = '0201';
    const c = await sendFrame(await frameOf(repeat));
    assert.equal(a.code, '00');
    assert.deepEqual([b.code, b.auth], [a.code, a.auth]);
    assert.deepEqual([c.code, c.auth], [a.code, a.auth]);
    assert.equal(await balanceOf(CARD.ibm.pan), before - 700);
    const inq = () =>
      buildRequest({
        stan: '555002',
        pan: CARD.ibm.pan,
        pin: CARD.ibm.pin,
        processingCode: '310000',
        amountMinor: null,
      });
    const i1 = await sendFrame(await frameOf(inq()));
    await send({ pan: CARD.ibm.pan, pin: CARD.ibm.pin, amountMinor: 1 });
    const i2 = await sendFrame(await frameOf(inq()));
    assert.equal(i2.f54, i1.f54, 'the recorded balance, not a new one');
  });
  test('the same identity with another amount or PAN: 94, no money moves', async () => {
    const before = await balanceOf(CARD.ibm.pan);
    const beforePvv = await balanceOf(CARD.pvv.pan);
    const amount = await sendFrame(
      await frameOf(buildRequest({ stan: '555001', pan: CARD.ibm.pan, pin: CARD.ibm.pin, amountMinor: 701 })),
    );
    const pan = await sendFrame(
      await frameOf(buildRequest({ stan: '555001', pan: CARD.pvv.pan, pin: CARD.pvv.pin, amountMinor: 700 })),
    );
    assert.equal(amount.code, '94');
    assert.equal(pan.code, '94');
    assert.equal(await balanceOf(CARD.ibm.pan), before);
    assert.equal(await balanceOf(CARD.pvv.pan), beforePvv);
  });
  test('a declined answer is replayed too (the PIN try is counted once)', async () => {
    const pan = '6212340000000100';
    await issuer.addCard(ibmCard(pan, '1234'));
    const m = () => buildRequest({ stan: '555003', pan, pin: '9999' });
    assert.equal((await sendFrame(await frameOf(m()))).code, '55');
    assert.equal((await sendFrame(await frameOf(m()))).code, '55');
    assert.equal((await issuer.card(pan))!.pinTries, 1);
  });
});

describe('void, refund, reversal', () => {
  async function purchase(pan: string, pin: string, amountMinor: number) {
    const s = nextStan();
    const dt = `1125${s}`.slice(0, 10);
    const r = await send({ pan, pin, amountMinor, stan: s, transmissionDt: dt });
    assert.equal(r.code, '00');
    return { stan: s, transmissionDt: dt };
  }

  test('void: 00 and the debit is released; a second void 12; unknown original 25; other amount 13', async () => {
    const bal = await balanceOf(CARD.ibm.pan);
    const p = await purchase(CARD.ibm.pan, CARD.ibm.pin, 2500);
    assert.equal(
      (await send({ pan: CARD.ibm.pan, processingCode: '020000', amountMinor: 2400, original: p })).code,
      '13',
    );
    const v = await send({ pan: CARD.ibm.pan, processingCode: '020000', amountMinor: 2500, original: p });
    assert.equal(v.code, '00');
    assert.match(v.auth!, /^\d{6}$/);
    assert.equal(await balanceOf(CARD.ibm.pan), bal);
    assert.equal(
      (await send({ pan: CARD.ibm.pan, processingCode: '020000', amountMinor: 2500, original: p })).code,
      '12',
    );
    assert.equal(
      (
        await send({
          pan: CARD.ibm.pan,
          processingCode: '020000',
          amountMinor: 2500,
          original: { stan: '999999', transmissionDt: '1125999999' },
        })
      ).code,
      '25',
    );
    assert.equal(
      (await send({ pan: CARD.pvv.pan, processingCode: '020000', amountMinor: 2500, original: p })).code,
      '25',
    );
    assert.equal(
      (await send({ pan: CARD.ibm.pan, processingCode: '200000', amountMinor: 100, original: p })).code,
      '12',
      'refund of a voided',
    );
    const notes = await issuer.notifications();
    assert.equal(notes.at(-1)!.type, 'void');
    assert.match(notes.at(-1)!.text, /^您尾号0019的卡消费撤销入账 25\.00 元/);
  });

  test('void with a PIN checks it; without one it is not asked', async () => {
    const p = await purchase(CARD.pvv.pan, CARD.pvv.pin, 300);
    assert.equal(
      (
        await send({
          pan: CARD.pvv.pan,
          pin: '0000',
          processingCode: '020000',
          amountMinor: 300,
          original: p,
        })
      ).code,
      '55',
    );
    assert.equal(
      (
        await send({
          pan: CARD.pvv.pan,
          pin: CARD.pvv.pin,
          processingCode: '020000',
          amountMinor: 300,
          original: p,
        })
      ).code,
      '00',
    );
  });

  test('refund: partial refunds up to the original amount; beyond it 13', async () => {
    const bal = await balanceOf(CARD.ibm.pan);
    const p = await purchase(CARD.ibm.pan, CARD.ibm.pin, 1000);
    assert.equal(
      (await send({ pan: CARD.ibm.pan, processingCode: '200000', amountMinor: 400, original: p })).code,
      '00',
    );
    assert.equal(
      (await send({ pan: CARD.ibm.pan, processingCode: '200000', amountMinor: 601, original: p })).code,
      '13',
    );
    assert.equal(
      (await send({ pan: CARD.ibm.pan, processingCode: '200000', amountMinor: 600, original: p })).code,
      '00',
    );
    assert.equal(
      (await send({ pan: CARD.ibm.pan, processingCode: '200000', amountMinor: 1, original: p })).code,
      '13',
    );
    assert.equal(
      (await send({ pan: CARD.ibm.pan, processingCode: '020000', amountMinor: 1000, original: p })).code,
      '12',
      'void of a refunded',
    );
    assert.equal(await balanceOf(CARD.ibm.pan), bal);
    const [view] = await issuer.inquire({
      acquirerId: '48020000',
      terminalId: 'TERM0001',
      stan: p.stan,
      localDate: '1125',
    });
    assert.equal(view!.state, 'refunded');
    assert.equal(view!.refundedMinor, 1000);
  });

  test('reversal: undoes the purchase once; a second reversal 00 without money; state shows reversed', async () => {
    const bal = await balanceOf(CARD.ibm.pan);
    const p = await purchase(CARD.ibm.pan, CARD.ibm.pin, 800);
    const rev = (s: string) =>
      send({ mti: '0400', pan: CARD.ibm.pan, amountMinor: 800, stan: s, original: p });
    assert.equal((await rev(nextStan())).code, '00');
    assert.equal(await balanceOf(CARD.ibm.pan), bal);
    assert.equal((await rev(nextStan())).code, '00');
    assert.equal(await balanceOf(CARD.ibm.pan), bal);
    const [view] = await issuer.inquire({ rrn: `000000${p.stan}` });
    assert.equal(view!.state, 'reversed');
    assert.equal(
      (await send({ pan: CARD.ibm.pan, processingCode: '020000', amountMinor: 800, original: p })).code,
      '12',
    );
  });

  test('reversal repeating the original identity (no field 90) finds it', async () => {
    const bal = await balanceOf(CARD.pvv.pan);
    const p = await purchase(CARD.pvv.pan, CARD.pvv.pin, 250);
    const r = await send({ mti: '0400', pan: CARD.pvv.pan, amountMinor: 250, stan: p.stan });
    assert.equal(r.code, '00');
    assert.equal(await balanceOf(CARD.pvv.pan), bal);
  });

  test('reversal before its original: 00 and recorded; the late original is declined 12, nothing debited', async () => {
    const bal = await balanceOf(CARD.ibm.pan);
    const s = nextStan();
    const dt = `1125${s}`.slice(0, 10);
    const r = await send({
      mti: '0400',
      pan: CARD.ibm.pan,
      amountMinor: 900,
      stan: nextStan(),
      original: { stan: s, transmissionDt: dt },
    });
    assert.equal(r.code, '00');
    const late = await send({
      pan: CARD.ibm.pan,
      pin: CARD.ibm.pin,
      amountMinor: 900,
      stan: s,
      transmissionDt: dt,
    });
    assert.equal(late.code, '12');
    assert.equal(await balanceOf(CARD.ibm.pan), bal);
    const views = await issuer.inquire({
      acquirerId: '48020000',
      terminalId: 'TERM0001',
      stan: s,
      localDate: '1125',
    });
    assert.equal(views[0]!.state, 'declined');
    assert.match(views[0]!.note!, /reversed before it arrived/);
  });

  test('reversal of a void restores the debit; reversal of a refund takes the refund back', async () => {
    const bal = await balanceOf(CARD.ibm.pan);
    const p = await purchase(CARD.ibm.pan, CARD.ibm.pin, 1500);
    const vs = nextStan();
    const vdt = `1125${vs}`.slice(0, 10);
    assert.equal(
      (
        await send({
          pan: CARD.ibm.pan,
          processingCode: '020000',
          amountMinor: 1500,
          original: p,
          stan: vs,
          transmissionDt: vdt,
        })
      ).code,
      '00',
    );
    assert.equal(await balanceOf(CARD.ibm.pan), bal);
    assert.equal(
      (
        await send({
          mti: '0400',
          pan: CARD.ibm.pan,
          processingCode: '020000',
          amountMinor: 1500,
          original: { stan: vs, transmissionDt: vdt },
        })
      ).code,
      '00',
    );
    assert.equal(await balanceOf(CARD.ibm.pan), bal - 1500);
    const fs = nextStan();
    const fdt = `1125${fs}`.slice(0, 10);
    assert.equal(
      (
        await send({
          pan: CARD.ibm.pan,
          processingCode: '200000',
          amountMinor: 500,
          original: p,
          stan: fs,
          transmissionDt: fdt,
        })
      ).code,
      '00',
    );
    assert.equal(await balanceOf(CARD.ibm.pan), bal - 1000);
    assert.equal(
      (
        await send({
          mti: '0400',
          pan: CARD.ibm.pan,
          processingCode: '200000',
          amountMinor: 500,
          original: { stan: fs, transmissionDt: fdt },
        })
      ).code,
      '00',
    );
    assert.equal(await balanceOf(CARD.ibm.pan), bal - 1500);
  });
});

describe('MAC', () => {
  test('a tampered request is answered A0, moves no money, and does not take the identity', async () => {
    const bal = await balanceOf(CARD.ibm.pan);
    const m = buildRequest({ stan: '777001', pan: CARD.ibm.pan, pin: CARD.ibm.pin, amountMinor: 100 });
    const frame = await frameOf(m);
    const tampered = frame.slice();
    // Field 4 (BCD) sits after MTI (2), bitmaps (16), field 2 (1 + 8) and field 3 (3): change the last digit.
    tampered[2 + 16 + 9 + 3 + 5] ^= 0x01;
    const a = await sendFrame(tampered);
    assert.equal(a.code, 'A0');
    assert.equal(await balanceOf(CARD.ibm.pan), bal);
    assert.equal((await sendFrame(await frameOf(m, KEYS.zakOther))).code, 'A0', 'MAC under another key');
    assert.equal((await sendFrame(packPlain(m.clone().unset(64)))).code, 'A0', 'no MAC');
    const ok = await sendFrame(await frameOf(m));
    assert.equal(ok.code, '00', 'the genuine request with that identity is processed');
    assert.equal(await balanceOf(CARD.ibm.pan), bal - 100);
  });

  test('a void (field 90): MAC in 128 both ways, X9.19 of the bytes minus the last 8; 64 beside 90 and a changed 90 are A0', async () => {
    const voidOf = (): Iso8583Message =>
      buildRequest({
        stan: nextStan(),
        pan: CARD.ibm.pan,
        processingCode: '020000',
        amountMinor: 100,
        original: { stan: '999997', transmissionDt: '1125999997' },
      });
    const m = voidOf();
    const frame = await frameOf(m);
    assert.equal((m.get(128) as Uint8Array).length, 8);
    assert.equal(m.has(64), false);
    assert.equal(frame[2]! & 0x80, 0x80, 'secondary bitmap');
    // Independent of the HSM and of @openposp/iso8583: X9.19 under the clear ZAK, the frame minus its MAC.
    const mab = frame.subarray(0, frame.length - 8);
    assert.equal(toHex(frame.subarray(frame.length - 8)), toHex(macX919(CLEAR.zak, mab, { padding: 1 })));
    const r = await sendFrame(frame);
    assert.equal(r.code, '25', 'no such original: the request itself was believed');
    assert.equal((r.message.get(128) as Uint8Array).length, 8, 'the answer echoes 90: MAC in 128');
    assert.equal(r.message.has(64), false);

    // The MAC in 64 beside field 90, over the message without it and bit 64 set (the reading before).
    const old = m.clone();
    old.set(11, nextStan());
    old.unset(128);
    const oldMab = packPlain(old).slice();
    oldMab[2 + 7]! |= 0x01;
    old.set(64, macX919(CLEAR.zak, oldMab, { padding: 1 }));
    assert.equal((await sendFrame(packPlain(old))).code, 'A0');

    // Field 90 (21 BCD bytes right before the MAC) changed after the MAC.
    const changed = (await frameOf(voidOf())).slice();
    changed[changed.length - 9]! ^= 0x01;
    assert.equal((await sendFrame(changed)).code, 'A0');
  });
});

describe('HSM failure', () => {
  test('96 when the HSM refuses (a ZPK that is not a PIN key), not recorded: the retry is processed', async () => {
    const bad = await openIssuer(join(dir, 'bad.db'));
    await bad.issuer.loadCards([ibmCard(CARD.ibm.pan, CARD.ibm.pin)]);
    // @ts-expect-error test: replace the zone ZPK with a MAC key (HSM_KEY_USAGE)
    bad.issuer.zpk = KEYS.zak;
    const req = {
      mti: '0200',
      identity: { acquirerId: '48020000', terminalId: 'T1', stan: '000001', localDate: '1125' },
      processingCode: '000000',
      amountMinor: 100,
      pan: CARD.ibm.pan,
      pinBlock: encryptPinBlock(0, CLEAR.zpk, CARD.ibm.pin, CARD.ibm.pan),
    };
    const a = await bad.issuer.authorize(req);
    assert.equal(a.responseCode, '96');
    assert.equal(a.txnId, undefined);
    // @ts-expect-error test: restore
    bad.issuer.zpk = KEYS.zpk;
    assert.equal((await bad.issuer.authorize(req)).responseCode, '00');
    await bad.store.close();
  });
});

describe('state, audit, secrets', () => {
  test('the ledger audits clean', async () => {
    const a = await issuer.auditLedger();
    assert.deepEqual(a.problems, []);
    assert.ok(a.postings > 10);
  });

  test('holds reduce the available balance, not the ledger balance; purchases respect them', async () => {
    const pan = '6212340000000118';
    const { accountId } = await issuer.addCard(ibmCard(pan, '1234', { balanceMinor: 1000 }));
    const h = await issuer.placeHold(accountId, 600, 'test hold');
    const b = (await issuer.balance(accountId))!;
    assert.deepEqual([b.ledgerMinor, b.heldMinor, b.availableMinor], [1000, 600, 400]);
    assert.equal((await send({ pan, pin: '1234', amountMinor: 500 })).code, '51');
    await issuer.releaseHold(h);
    assert.equal((await send({ pan, pin: '1234', amountMinor: 500 })).code, '00');
    await assert.rejects(issuer.releaseHold(h), {
      code: 'ISSUER_HOLD_UNKNOWN',
      message: 'holdId: not an active hold',
    });
    assert.deepEqual((await issuer.auditLedger()).problems, []);
  });

  test('no PAN, PIN, PIN block or clear PIN block in the database files or the log', async () => {
    const pan = '6212340000000126';
    const pin = '90817263';
    await issuer.addCard(ibmCard(pan, pin));
    const pinBlock = encryptPinBlock(0, CLEAR.zpk, pin, pan);
    assert.equal((await send({ pan, pin, amountMinor: 100 })).code, '00');
    assert.equal((await send({ pan, pin: '90817264', amountMinor: 100 })).code, '55');
    await store.run('PRAGMA wal_checkpoint(FULL)');
    const needles = [
      ...[...testCards().map((c) => c.pan), pan].map((p) => Buffer.from(p, 'ascii')),
      Buffer.from(pin, 'ascii'),
      Buffer.from(pinBlock),
      Buffer.from(toHex(pinBlock), 'ascii'),
      Buffer.from(toHex(pinBlock).toLowerCase(), 'ascii'),
      Buffer.from(encodePinBlockIso0(pin, pan)),
      Buffer.from(toHex(CLEAR.zpk), 'ascii'),
    ];
    for (const file of [dbPath, `${dbPath}-wal`, logPath]) {
      if (!existsSync(file)) continue;
      const bytes = readFileSync(file);
      assert.ok(bytes.length > 0);
      needles.forEach((n, i) => {
        assert.equal(bytes.indexOf(n), -1, `${file}: needle ${i} found`);
      });
    }
    const logText = readFileSync(logPath, 'utf8');
    assert.match(logText, /"pan":"621234\*\*\*\*\*\*0126"/);
  });
});
