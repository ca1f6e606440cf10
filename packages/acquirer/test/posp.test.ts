/**
 * The POSP over real TCP on 127.0.0.1, with the real in-process HSM and SQLite: sign-in, each pipeline
 * stop, the switch leg, replay, void and refund, and a scan of the log and database for card data.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { toHex } from '@openposp/crypto';
import { ACQUIRER_ID, CARD, type Harness, MERCHANT_ID, startHarness, T0, TERMINAL_ID } from './harness.js';

let h: Harness;

before(async () => {
  h = await startHarness();
});
after(async () => {
  await h.close();
});

const rc = (m: { get(p: number): unknown }): unknown => m.get(39);

describe('sign-in (0800 / 0810, 60.3 = 004)', () => {
  test('a terminal that never signed in gets 77, without a MAC (it has no keys)', async () => {
    const t = h.terminal;
    const { answer } = await t.send(t.mac(t.financial('purchase', { pin: '' }), new Uint8Array(16)));
    assert.equal(rc(answer), '77');
    assert.equal(answer.has(64), false);
    assert.equal(h.seen.length, 0);
  });

  test('0810: 39 = 00, 62 = three keys under the TMK whose check values verify, 60.2 batch, echo of 11/41/42', async () => {
    const req = h.terminal.signInMessage('000900');
    const { answer } = await h.terminal.send(req);
    assert.equal(answer.mti, '0810');
    assert.equal(rc(answer), '00');
    assert.equal(answer.get(11), '000900');
    assert.equal(answer.get(41), TERMINAL_ID);
    assert.equal(answer.get(42), MERCHANT_ID);
    assert.equal(answer.get('60.2'), '000001');
    assert.equal(answer.get('60.3'), '004');
    assert.equal(answer.has(64), false);
    const f62 = answer.get(62) as Uint8Array;
    assert.equal(f62.length, 60);
    const { keys } = await h.terminal.signIn();
    // A second sign-in gives new keys (keys change at every sign-in).
    const first = toHex(keys.tak);
    const { keys: again } = await h.terminal.signIn();
    assert.notEqual(toHex(again.tak), first);
    assert.notEqual(toHex(again.tpk), toHex(again.tak));
    const rec = await h.posp.getTerminal(TERMINAL_ID);
    assert.equal(rec?.signedInDate, '20261125');
    assert.match(rec!.tak!, /^S/);
  });

  test('an unknown terminal is answered 97; a wrong merchant 03; 60.3 other than 004 is 30', async () => {
    const t = h.terminal;
    const unknown = t.signInMessage();
    unknown.set(41, '99999999');
    assert.equal(rc((await t.send(unknown)).answer), '97');
    const wrongMerchant = t.signInMessage();
    wrongMerchant.set(42, '898100000000000');
    assert.equal(rc((await t.send(wrongMerchant)).answer), '03');
    const single = t.signInMessage();
    single.set('60.3', '001');
    assert.equal(rc((await t.send(single)).answer), '30');
  });
});

describe('purchase through the switch', () => {
  test('approved: the switch gets the PIN under its ZPK, a valid X9.19 MAC, 32/37/7, no track data', async () => {
    const t = h.terminal;
    h.seen.length = 0;
    const { answer, message } = await t.send(t.mac(t.financial('purchase', { amount: 1234 })));
    assert.equal(answer.mti, '0210');
    assert.equal(rc(answer), '00');
    assert.match(String(answer.get(37)), /^\d{12}$/);
    assert.match(String(answer.get(38)), /^\d{6}$/);
    assert.equal(answer.get(4), '000000001234');
    assert.equal(answer.get(15), '1125');
    assert.ok(t.answerMacOk(message), 'the answer is MACed under the TAK');
    assert.equal(h.seen.length, 1);
    const s = h.seen[0]!;
    assert.equal(s.macOk, true);
    assert.equal(s.macField, 64, 'a purchase has no secondary bitmap: MAC in 64');
    assert.equal(s.pin, CARD.pin);
    assert.equal(s.msg.mti, '0200');
    assert.equal(s.msg.get(2), CARD.pan);
    assert.equal(s.msg.get(3), '000000');
    assert.equal(s.msg.get(32), ACQUIRER_ID);
    assert.equal(s.msg.get(37), answer.get(37));
    assert.equal(s.msg.get(53), '2600000000000000');
    assert.match(String(s.msg.get(7)), /^\d{10}$/);
    assert.equal(s.msg.has(35), false);
    const e = await h.posp.inquire(String(answer.get(37)));
    assert.equal(e?.state, 'answered');
    assert.equal(e?.responseCode, '00');
    assert.equal(e?.panMasked, '622588******7890');
    assert.equal(e?.amountMinor, 1234);
    const byId = await h.posp.inquire({ terminalId: TERMINAL_ID, stan: e!.stan, date: '1125' });
    assert.equal(byId?.rrn, e?.rrn);
  });

  test('track data enciphered under the TDK (53 pos. 3 = 1) is accepted, MAC-checked as received, not forwarded', async () => {
    const t = h.terminal;
    const before = h.seen.length;
    const raw = t.packWithEncryptedTrack(t.financial('purchase', { amount: 321 }));
    const { answer, message } = await t.sendRaw(raw);
    assert.equal(rc(answer), '00');
    assert.ok(t.answerMacOk(message));
    assert.equal(h.seen.length, before + 1);
    assert.equal(h.seen.at(-1)!.msg.has(35), false);
    assert.equal(h.seen.at(-1)!.pin, CARD.pin);
    // One bit changed inside the enciphered track: the MAC (over the bytes as received) fails.
    const bad = t.packWithEncryptedTrack(t.financial('purchase', { amount: 322 }));
    const at = bad.indexOf(0x37) + 12;
    bad[at]! ^= 0x10;
    assert.equal(rc((await t.sendRaw(bad)).answer), 'A0');
  });

  test('a decline of the issuer (51) reaches the terminal, MACed, without 38', async () => {
    const t = h.terminal;
    h.behaviour.fn = () => ({ code: '51' });
    const { answer, message } = await t.send(t.mac(t.financial('purchase', { amount: 999999 })));
    h.behaviour.fn = () => ({ code: '00' });
    assert.equal(rc(answer), '51');
    assert.equal(answer.has(38), false);
    assert.ok(t.answerMacOk(message));
  });

  test('balance inquiry: 54 from the switch reaches the terminal', async () => {
    const t = h.terminal;
    h.behaviour.fn = () => ({ code: '00', balance: '1002156C000000012345' });
    const { answer } = await t.send(t.mac(t.financial('inquiry')));
    h.behaviour.fn = () => ({ code: '00' });
    assert.equal(rc(answer), '00');
    assert.equal(answer.get(54), '1002156C000000012345');
    assert.equal(h.seen.at(-1)!.msg.get(3), '310000');
  });

  test('a tampered MAC is answered A0 (MACed) and nothing goes to the switch', async () => {
    const t = h.terminal;
    const before = h.seen.length;
    const m = t.mac(t.financial('purchase'));
    const mac = (m.get(64) as Uint8Array).slice();
    mac[0] = mac[0] === 0x41 ? 0x42 : 0x41;
    m.set(64, mac);
    const { answer, message } = await t.send(m);
    assert.equal(rc(answer), 'A0');
    assert.ok(t.answerMacOk(message));
    assert.equal(h.seen.length, before);
  });

  test('a missing expiry date (14) is answered 30', async () => {
    const t = h.terminal;
    const m = t.financial('purchase');
    m.unset(14);
    const { answer } = await t.send(t.mac(m));
    assert.equal(rc(answer), '30');
  });

  test('the switch silent: 91 within the bound, and the journal keeps the request as unknown', async () => {
    const t = h.terminal;
    h.behaviour.fn = () => 'silent';
    const started = Date.now();
    const { answer, message } = await t.send(t.mac(t.financial('purchase', { amount: 500 })));
    const ms = Date.now() - started;
    h.behaviour.fn = () => ({ code: '00' });
    assert.equal(rc(answer), '91');
    assert.ok(ms < 2000, `answered in ${ms} ms`);
    assert.ok(t.answerMacOk(message));
    const e = await h.posp.inquire(String(answer.get(37)));
    assert.equal(e?.state, 'unknown');
    assert.match(String(e?.transmissionDateTime), /^\d{10}$/);
  });

  test('a switch answer whose MAC fails counts as no answer: 91, unknown', async () => {
    const t = h.terminal;
    h.behaviour.fn = () => 'bad-mac';
    const { answer } = await t.send(t.mac(t.financial('purchase', { amount: 501 })));
    h.behaviour.fn = () => ({ code: '00' });
    assert.equal(rc(answer), '91');
    assert.equal((await h.posp.inquire(String(answer.get(37))))?.state, 'unknown');
  });
});

describe('replay (same terminal, STAN and date)', () => {
  test('the same request again gets the same answer, with one switch request', async () => {
    const t = h.terminal;
    const m = t.mac(t.financial('purchase', { amount: 700 }));
    const before = h.seen.length;
    const first = await t.send(m);
    const second = await t.send(m);
    assert.equal(h.seen.length, before + 1);
    assert.equal(rc(first.answer), '00');
    assert.deepEqual(second.message, first.message);
  });

  test('the same identity with other content is answered 94 and does not touch the first', async () => {
    const t = h.terminal;
    const stan = t.nextStan();
    const first = await t.send(t.mac(t.financial('purchase', { amount: 800, stan })));
    const before = h.seen.length;
    const other = await t.send(t.mac(t.financial('purchase', { amount: 801, stan })));
    assert.equal(rc(other.answer), '94');
    assert.equal(h.seen.length, before);
    const e = await h.posp.inquire(String(first.answer.get(37)));
    assert.equal(e?.amountMinor, 800);
    assert.equal(e?.responseCode, '00');
  });

  test('a replay of a request the switch never answered gets 91 again, without a second send', async () => {
    const t = h.terminal;
    h.behaviour.fn = () => 'silent';
    const m = t.mac(t.financial('purchase', { amount: 900 }));
    const first = await t.send(m);
    h.behaviour.fn = () => ({ code: '00' });
    const before = h.seen.length;
    const second = await t.send(m);
    assert.equal(rc(first.answer), '91');
    assert.equal(rc(second.answer), '91');
    assert.equal(second.answer.get(37), first.answer.get(37));
    assert.equal(h.seen.length, before);
  });
});

describe('void and refund find their original', () => {
  test('void (60.1 = 23, 61 = batch + STAN): field 90 on the network leg, the original marked voided', async () => {
    const t = h.terminal;
    const stan = t.nextStan();
    const p = await t.send(t.mac(t.financial('purchase', { amount: 4321, stan })));
    assert.equal(rc(p.answer), '00');
    const orig = await h.posp.inquire(String(p.answer.get(37)));
    const v = await t.send(t.mac(t.financial('void', { amount: 4321, original: { batch: '000001', stan } })));
    assert.equal(rc(v.answer), '00');
    const sent = h.seen.at(-1)!.msg;
    assert.equal(sent.get(3), '020000');
    assert.equal(sent.get('90.1'), '0200');
    assert.equal(sent.get('90.2'), stan);
    assert.equal(sent.get('90.3'), orig?.transmissionDateTime);
    assert.equal(sent.get('90.4'), ACQUIRER_ID.padStart(11, '0'));
    assert.equal(sent.get('90.5'), '00000010000');
    assert.equal(h.seen.at(-1)!.macOk, true, 'the MAC covers field 90 as the switch computes it');
    assert.equal(h.seen.at(-1)!.macField, 128, 'field 90 means a secondary bitmap: the MAC is in 128');
    assert.equal(sent.get(64), undefined);
    assert.ok(t.answerMacOk(v.message), 'the answer (MAC in 128 from the switch) was believed and MACed');
    const after = await h.posp.inquire(String(p.answer.get(37)));
    assert.equal(after?.voidedByRrn, v.answer.get(37));
    // The same purchase cannot be voided twice.
    const again = await t.send(
      t.mac(t.financial('void', { amount: 4321, original: { batch: '000001', stan } })),
    );
    assert.equal(rc(again.answer), '12');
  });

  test('void of an unknown original is 25, of another amount 13; nothing goes to the switch', async () => {
    const t = h.terminal;
    const before = h.seen.length;
    const v = await t.send(
      t.mac(t.financial('void', { amount: 1, original: { batch: '000001', stan: '999990' } })),
    );
    assert.equal(rc(v.answer), '25');
    const stan = t.nextStan();
    await t.send(t.mac(t.financial('purchase', { amount: 2000, stan })));
    const w = await t.send(t.mac(t.financial('void', { amount: 1999, original: { batch: '000001', stan } })));
    assert.equal(rc(w.answer), '13');
    assert.equal(h.seen.length, before + 1);
  });

  test('refund (0220, 60.1 = 25): 0230, network 200000 with 90; above the original amount is 13', async () => {
    const t = h.terminal;
    const stan = t.nextStan();
    const p = await t.send(t.mac(t.financial('purchase', { amount: 3000, stan })));
    const orig = { batch: '000001', stan, date: '1125', rrn: String(p.answer.get(37)) };
    const r = await t.send(t.mac(t.financial('refund', { amount: 1000, original: orig })));
    assert.equal(r.answer.mti, '0230');
    assert.equal(rc(r.answer), '00');
    assert.ok(t.answerMacOk(r.message));
    const sent = h.seen.at(-1)!.msg;
    assert.equal(sent.mti, '0200');
    assert.equal(sent.get(3), '200000');
    assert.equal(sent.get('90.2'), stan);
    assert.equal(h.seen.at(-1)!.macOk, true);
    assert.equal(h.seen.at(-1)!.macField, 128);
    assert.equal((sent.get(128) as Uint8Array).length, 8);
    assert.equal(sent.get(64), undefined);
    const over = await t.send(t.mac(t.financial('refund', { amount: 2001, original: orig })));
    assert.equal(rc(over.answer), '13', 'refunds together stay within the original');
    const rest = await t.send(t.mac(t.financial('refund', { amount: 2000, original: orig })));
    assert.equal(rc(rest.answer), '00');
    assert.equal((await h.posp.inquire(String(rest.answer.get(37))))?.originalRrn, orig.rrn);
    const wrongRrn = await t.send(
      t.mac(t.financial('refund', { amount: 10, original: { ...orig, rrn: '000000000000' } })),
    );
    assert.equal(rc(wrongRrn.answer), '25');
  });

  test('0221 (repeat of a refund advice, same identity, no PIN block or track): the first answer again, 0230, nothing upstream; unseen, it is processed as the 0220', async () => {
    const t = h.terminal;
    const stan = t.nextStan();
    const p = await t.send(t.mac(t.financial('purchase', { amount: 3000, stan })));
    const orig = { batch: '000001', stan, date: '1125', rrn: String(p.answer.get(37)) };
    const refundStan = t.nextStan();
    const first = await t.send(
      t.mac(t.financial('refund', { amount: 700, original: orig, stan: refundStan })),
    );
    assert.equal(rc(first.answer), '00');
    const repeatOf = (s: string) => {
      const m = t.financial('refund', { amount: 700, original: orig, stan: s, pin: '' });
      m.mti = '0221';
      m.unset(35);
      m.unset(53);
      return t.mac(m);
    };
    const before = h.seen.length;
    const again = await t.send(repeatOf(refundStan));
    assert.equal(again.answer.mti, '0230');
    assert.equal(rc(again.answer), '00', 'a repeat, not 94');
    assert.equal(again.answer.get(37), first.answer.get(37), 'the first answer again');
    assert.ok(t.answerMacOk(again.message));
    assert.equal(h.seen.length, before, 'no second refund upstream');
    // A repeat whose 0220 never arrived: the refund itself.
    const unseen = await t.send(repeatOf(t.nextStan()));
    assert.equal(unseen.answer.mti, '0230');
    assert.equal(rc(unseen.answer), '00');
    assert.equal(h.seen.length, before + 1);
    assert.notEqual(unseen.answer.get(37), first.answer.get(37));
    // A repeat with other content than its 0220 is still 94.
    const other = t.financial('refund', { amount: 701, original: orig, stan: refundStan, pin: '' });
    other.mti = '0221';
    assert.equal(rc((await t.send(t.mac(other))).answer), '94');
  });
});

describe('keys change daily', () => {
  test('a terminal signed in yesterday gets 77 (MACed under its old TAK), and is served again after sign-in', async () => {
    const t = h.terminal;
    h.clock.now = new Date(T0.getTime() + 24 * 3600_000);
    try {
      const { answer, message } = await t.send(t.mac(t.financial('purchase', { date: '1126' })));
      assert.equal(rc(answer), '77');
      assert.ok(t.answerMacOk(message));
      await t.signIn();
      const ok = await t.send(t.mac(t.financial('purchase', { date: '1126' })));
      assert.equal(rc(ok.answer), '00');
    } finally {
      h.clock.now = T0;
    }
  });
});

describe('no card data at rest', () => {
  test('neither the log nor the SQLite files hold the PAN, PIN block, PIN or track data', async () => {
    // The reversal advices owed for the switch's silences above hold the PAN until delivered (README,
    // store and forward): delivered now, their PAN erased and the WAL emptied, nothing may remain.
    h.behaviour.fn = () => ({ code: '00' });
    h.clock.now = new Date(T0.getTime() + 3600_000);
    try {
      await h.posp.saf.runOnce();
    } finally {
      h.clock.now = T0;
    }
    assert.deepEqual(await h.posp.saf.list('pending'), []);
    assert.ok((await h.posp.saf.list('done')).length > 0, 'the silences above left advices, now delivered');
    const panBcd = Buffer.from(CARD.pan, 'hex');
    const files = [h.dbPath, `${h.dbPath}-wal`].map((p) => {
      try {
        return readFileSync(p);
      } catch {
        return Buffer.alloc(0);
      }
    });
    const log = Buffer.from(h.logLines.join('\n'));
    assert.ok(h.logLines.length > 10, 'the log has the transactions');
    assert.ok(h.logLines.some((l) => l.includes('622588******7890')));
    const pinBlocks = h.seen
      .filter((s) => s.msg.has(52))
      .map((s) => Buffer.from(s.msg.get(52) as Uint8Array));
    assert.ok(pinBlocks.length > 0);
    for (const [name, buf] of [
      ['log', log],
      ['db', files[0]!],
      ['wal', files[1]!],
    ] as const) {
      const text = buf.toString('latin1');
      assert.equal(text.includes(CARD.pan), false, `${name}: PAN`);
      assert.equal(text.includes(CARD.track2), false, `${name}: track 2`);
      assert.equal(
        text.includes(`${CARD.pan.slice(6, 12)}`) && text.includes(CARD.pan),
        false,
        `${name}: PAN digits`,
      );
      assert.equal(buf.indexOf(panBcd), -1, `${name}: PAN in BCD`);
      for (const pb of pinBlocks) {
        assert.equal(buf.indexOf(pb), -1, `${name}: PIN block bytes`);
        assert.equal(text.includes(pb.toString('hex').toUpperCase()), false, `${name}: PIN block hex`);
      }
      for (const k of Object.values(h.terminal.keys!)) {
        assert.equal(text.includes(toHex(k)), false, `${name}: clear working key`);
      }
    }
  });
});
