/**
 * Issue 6 at the POSP: terminal reversals (0400) forwarded with field 90 and the MAC in 128, idempotent;
 * a reversal of an original never seen; the switch silent -> store and forward (0420 with back-off,
 * expiry into the operator queue, retry and drop); the POSP's own advice for an `unknown` request; a
 * crash and restart keeps the queue. Real HSM, SQLite, TCP; the switch is the harness's.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Iso8583Message } from '@openposp/iso8583';
import { openSqliteStore } from '@openposp/store';
import { NetError } from '@openposp/net';
import { ACQUIRER_MIGRATIONS, AcquirerError, backoffDelayMs } from '../src/index.js';
import { isNotSentError, SAF_OPTIONS_DEFAULT, SafQueue, SafWorker } from '../src/saf.js';
import {
  ACQUIRER_ID,
  CARD,
  cup,
  type Harness,
  MERCHANT_ID,
  net,
  startHarness,
  T0,
  TERMINAL_ID,
} from './harness.js';

let h: Harness;
const SAF = { enabled: false, baseDelayMs: 1000, maxDelayMs: 4000, maxAttempts: 4, maxAgeMs: 3600_000 };

before(async () => {
  h = await startHarness({ saf: SAF });
  await h.terminal.signIn();
});
after(async () => {
  await h.close();
});

const rc = (m: { get(p: number): unknown }): unknown => m.get(39);

/** The terminal's 0400 for an original it sent (cup-pos-dialect.md 2.7: the original's fields + 39 + 61). */
function reversalOf(o: {
  stan: string;
  amount: number;
  reason?: string;
  batch?: string;
  date?: string;
  kind?: string;
}): Iso8583Message {
  const m = new Iso8583Message(cup, '0400', {
    2: CARD.pan,
    3: '000000',
    4: String(o.amount).padStart(12, '0'),
    11: o.stan,
    14: CARD.expiry,
    22: '021',
    25: '00',
    39: o.reason ?? '98',
    41: TERMINAL_ID,
    42: MERCHANT_ID,
    49: '156',
    60: `22${o.batch ?? '000001'}000`,
    61: `${o.batch ?? '000001'}${o.stan}${o.date ?? '1125'}`,
  });
  return h.terminal.mac(m);
}

async function purchase(amount: number): Promise<{ stan: string; rrn: string; code: unknown }> {
  const t = h.terminal;
  const stan = t.nextStan();
  const { answer } = await t.send(t.mac(t.financial('purchase', { amount, stan })));
  return { stan, rrn: String(answer.get(37)), code: rc(answer) };
}

async function safRow(id: number): Promise<Record<string, unknown>> {
  const store = await openSqliteStore(h.dbPath, { migrations: ACQUIRER_MIGRATIONS });
  try {
    return (await store.get<Record<string, unknown>>('SELECT * FROM saf WHERE id = ?', [id]))!;
  } finally {
    await store.close();
  }
}

/** Moves the POSP's clock by `ms` and runs one worker pass. */
async function passAt(ms: number): Promise<number> {
  h.clock.now = new Date(h.clock.now.getTime() + ms);
  return h.posp.saf.runOnce();
}

describe('terminal reversal (0400)', () => {
  test('forwarded upstream as iso87-binary 0400: field 90, the MAC in 128, the original identity; 0410 MACed', async () => {
    const p = await purchase(1500);
    assert.equal(p.code, '00');
    const orig = await h.posp.inquire(p.rrn);
    const before = h.seen.length;
    const { answer, message } = await h.terminal.send(reversalOf({ stan: p.stan, amount: 1500 }));
    assert.equal(answer.mti, '0410');
    assert.equal(rc(answer), '00');
    assert.equal(answer.get(37), p.rrn);
    assert.ok(h.terminal.answerMacOk(message));
    assert.equal(h.seen.length, before + 1);
    const s = h.seen.at(-1)!;
    assert.equal(s.msg.mti, '0400');
    assert.equal(s.macField, 128);
    assert.equal(s.macOk, true, 'X9.19 under the ZAK over the bytes before 128');
    assert.equal(s.msg.get(64), undefined);
    assert.equal(s.msg.get(2), CARD.pan);
    assert.equal(s.msg.get(3), '000000');
    assert.equal(s.msg.get(4), '000000001500');
    assert.equal(s.msg.get(11), p.stan, 'the identity of the original: 32, 41, 11, 13');
    assert.equal(s.msg.get(13), '1125');
    assert.equal(s.msg.get(32), ACQUIRER_ID);
    assert.equal(s.msg.get(37), p.rrn);
    assert.equal(s.msg.get('90.1'), '0200');
    assert.equal(s.msg.get('90.2'), p.stan);
    assert.equal(s.msg.get('90.3'), orig?.transmissionDateTime);
    assert.equal(s.msg.get('90.4'), ACQUIRER_ID.padStart(11, '0'));
    assert.equal(s.msg.has(52), false);
    const e = await h.posp.inquire(p.rrn);
    assert.equal(e?.reversalState, 'reversed');
    assert.equal(e?.reversalCode, '00');
    const [item] = (await h.posp.saf.list('done')).filter((i) => i.originalRrn === p.rrn);
    assert.equal(item?.source, 'terminal');
    assert.equal(item?.panMasked, '622588******7890');
    assert.equal((await safRow(item!.id)).pan, null, 'a delivered reversal keeps no PAN');

    // The same 0400 again: the first answer, nothing upstream.
    const again = await h.terminal.send(reversalOf({ stan: p.stan, amount: 1500 }));
    assert.equal(rc(again.answer), '00');
    assert.equal(h.seen.length, before + 1);
    // A reversed purchase cannot be voided any more (its original is gone).
    const t = h.terminal;
    const v = await t.send(
      t.mac(t.financial('void', { amount: 1500, original: { batch: '000001', stan: p.stan } })),
    );
    assert.equal(rc(v.answer), '25');
  });

  test('a reversal of an original never seen: 00, remembered; the original arriving late is declined 12', async () => {
    const t = h.terminal;
    const stan = t.nextStan();
    const before = h.seen.length;
    const { answer, message } = await t.send(reversalOf({ stan, amount: 700 }));
    assert.equal(rc(answer), '00');
    assert.ok(t.answerMacOk(message));
    assert.equal(h.seen.length, before);
    const late = await t.send(t.mac(t.financial('purchase', { amount: 700, stan })));
    assert.equal(rc(late.answer), '12');
    assert.equal(h.seen.length, before, 'the late original moves nothing');
    const again = await t.send(reversalOf({ stan, amount: 700 }));
    assert.equal(rc(again.answer), '00');
  });

  test('a bad MAC is A0; a missing 61 or reason is 30; a declined original is answered 00 locally', async () => {
    const t = h.terminal;
    const m = reversalOf({ stan: '000777', amount: 1 });
    const bad = t.mac(m, new Uint8Array(16).fill(1));
    assert.equal(rc((await t.send(bad)).answer), 'A0');
    const noReason = reversalOf({ stan: '000778', amount: 1, reason: '00' });
    assert.equal(rc((await t.send(noReason)).answer), '30');
    const no61 = reversalOf({ stan: '000779', amount: 1 });
    no61.unset(61);
    assert.equal(rc((await t.send(t.mac(no61))).answer), '30');
    h.behaviour.fn = () => ({ code: '51' });
    const p = await purchase(900);
    h.behaviour.fn = () => ({ code: '00' });
    assert.equal(p.code, '51');
    const before = h.seen.length;
    assert.equal(rc((await t.send(reversalOf({ stan: p.stan, amount: 900 }))).answer), '00');
    assert.equal(h.seen.length, before, 'the issuer declined it: nothing to reverse upstream');
  });
});

describe('a reversal the issuer refuses', () => {
  test('its code goes to the terminal, the original stands (voidable), a repeat gets the same code', async () => {
    const p = await purchase(1700);
    h.behaviour.fn = (m) => (m.mti === '0400' ? { code: '13' } : { code: '00' });
    const { answer } = await h.terminal.send(reversalOf({ stan: p.stan, amount: 1700 }));
    h.behaviour.fn = () => ({ code: '00' });
    assert.equal(rc(answer), '13');
    const e = await h.posp.inquire(p.rrn);
    assert.equal(e?.reversalState, 'refused');
    assert.equal(e?.reversalCode, '13');
    const before = h.seen.length;
    assert.equal(rc((await h.terminal.send(reversalOf({ stan: p.stan, amount: 1700 }))).answer), '13');
    assert.equal(h.seen.length, before);
    const t = h.terminal;
    const v = await t.send(
      t.mac(t.financial('void', { amount: 1700, original: { batch: '000001', stan: p.stan } })),
    );
    assert.equal(rc(v.answer), '00', 'the original still stands');
  });
});

describe('store and forward', () => {
  test('back-off doubles from the base up to the maximum', () => {
    const o = { baseDelayMs: 1000, maxDelayMs: 4000 };
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((a) => backoffDelayMs(o, a)),
      [1000, 2000, 4000, 4000, 4000],
    );
  });

  test('the switch silent: the terminal gets 00 once queued; 0420 with back-off until the switch is back', async () => {
    const p = await purchase(2500);
    h.behaviour.fn = () => 'silent';
    const { answer } = await h.terminal.send(reversalOf({ stan: p.stan, amount: 2500 }));
    assert.equal(rc(answer), '00', 'queued: the POSP owes it now');
    const [item] = (await h.posp.saf.list('pending')).filter((i) => i.originalRrn === p.rrn);
    assert.ok(item);
    assert.equal(item.source, 'terminal');
    assert.equal((await h.posp.inquire(p.rrn))?.reversalState, 'owed');
    {
      const row = await safRow(item.id);
      assert.equal(row.pan, null, 'owed: the PAN is never kept in clear');
      assert.equal(await h.vault.open(String(row.pan_sealed)), CARD.pan, 'owed: kept sealed to deliver it');
      assert.equal(JSON.stringify(row).includes(CARD.pan), false, 'no column holds the PAN');
    }
    // First pass: due at once, the switch still silent -> attempt 1, next in base delay.
    let sent = h.seen.length;
    assert.equal(await passAt(0), 0);
    assert.equal(h.seen.length, sent + 1);
    assert.equal(h.seen.at(-1)!.msg.mti, '0420');
    let it = (await h.posp.saf.list('pending')).find((i) => i.id === item.id)!;
    assert.equal(it.attempts, 1);
    assert.equal(it.nextAt, new Date(h.clock.now.getTime() + 1000).toISOString());
    // Not due yet: nothing sent.
    sent = h.seen.length;
    await passAt(500);
    assert.equal(h.seen.length, sent);
    // Due: attempt 2, then 2 s.
    await passAt(500);
    it = (await h.posp.saf.list('pending')).find((i) => i.id === item.id)!;
    assert.equal(it.attempts, 2);
    assert.equal(it.nextAt, new Date(h.clock.now.getTime() + 2000).toISOString());
    // The switch is back.
    h.behaviour.fn = () => ({ code: '00' });
    sent = h.seen.length;
    assert.equal(await passAt(2000), 1);
    const s = h.seen.at(-1)!;
    assert.equal(h.seen.length, sent + 1);
    assert.equal(s.msg.mti, '0420');
    assert.equal(s.macField, 128);
    assert.equal(s.macOk, true);
    assert.equal(s.msg.get(2), CARD.pan);
    assert.equal(s.msg.get(11), p.stan);
    assert.equal(s.msg.get('90.2'), p.stan);
    const done = (await h.posp.saf.list('done')).find((i) => i.id === item.id)!;
    assert.equal(done.attempts, 3);
    assert.equal(done.responseCode, '00');
    assert.equal((await safRow(item.id)).pan_sealed, null, 'acknowledged: the sealed PAN is erased');
    assert.equal((await h.posp.inquire(p.rrn))?.reversalState, 'reversed');
    // A second 0400 now: the first answer (00), nothing more upstream.
    sent = h.seen.length;
    assert.equal(rc((await h.terminal.send(reversalOf({ stan: p.stan, amount: 2500 }))).answer), '00');
    assert.equal(h.seen.length, sent);
  });

  test('an unknown financial request (no answer, or an answer whose MAC fails): the POSP queues its own advice', async () => {
    h.behaviour.fn = () => 'silent';
    const silent = await purchase(3100);
    h.behaviour.fn = () => 'bad-mac';
    const badMac = await purchase(3200);
    h.behaviour.fn = () => ({ code: '00' });
    assert.equal(silent.code, '91');
    assert.equal(badMac.code, '91');
    const pending = await h.posp.saf.list('pending');
    const a = pending.find((i) => i.originalRrn === silent.rrn)!;
    const b = pending.find((i) => i.originalRrn === badMac.rrn)!;
    assert.equal(a.source, 'posp');
    assert.equal(a.reason, '98');
    assert.equal(b.reason, 'A0');
    assert.equal((await h.posp.inquire(silent.rrn))?.state, 'unknown');
    const sent = h.seen.length;
    assert.equal(await passAt(0), 2);
    const advices = h.seen.slice(sent).map((s) => s.msg);
    assert.deepEqual(
      advices.map((m) => [m.mti, m.get(37), m.get(4)]),
      [
        ['0420', silent.rrn, '000000003100'],
        ['0420', badMac.rrn, '000000003200'],
      ],
    );
    assert.ok(h.seen.slice(sent).every((s) => s.macOk && s.macField === 128));
    assert.equal((await h.posp.inquire(silent.rrn))?.reversalState, 'reversed');
    // The terminal reversing it as well changes nothing.
    const before = h.seen.length;
    assert.equal(rc((await h.terminal.send(reversalOf({ stan: silent.stan, amount: 3100 }))).answer), '00');
    assert.equal(h.seen.length, before);
  });

  test('a switch 91 to a purchase is "sent, outcome unknown": journalled unknown, the POSP owes its advice', async () => {
    h.behaviour.fn = () => ({ code: '91' });
    const p = await purchase(3300);
    h.behaviour.fn = () => ({ code: '00' });
    assert.equal(p.code, '91');
    const e = await h.posp.inquire(p.rrn);
    assert.equal(e?.state, 'unknown');
    assert.equal(e?.reversalState, 'owed');
    const item = (await h.posp.saf.list('pending')).find((i) => i.originalRrn === p.rrn);
    assert.equal(item?.source, 'posp');
    assert.equal(await passAt(0), 1);
    assert.equal((await h.posp.inquire(p.rrn))?.reversalState, 'reversed');
  });

  test('15, 91, 96, A0 to an advice are retried (not final); 25 (nothing to undo) completes it', async () => {
    h.behaviour.fn = () => 'silent';
    const p = await purchase(3400);
    const id = (await h.posp.saf.list('pending')).find((i) => i.originalRrn === p.rrn)!.id;
    const codes = ['15', '91', '96', 'A0'];
    let delay = 0;
    for (const [n, code] of codes.entries()) {
      h.behaviour.fn = (m) => (m.mti === '0420' ? { code } : { code: '00' });
      await passAt(delay);
      const it = (await h.posp.saf.list()).find((i) => i.id === id);
      if (n < 3) {
        assert.equal(it?.state, 'pending', `after ${code}`);
        assert.equal(it?.lastError, `answered-${code}`);
      }
      delay = backoffDelayMs(SAF, n + 1);
    }
    // maxAttempts (4) reached on the last retryable answer: the operator queue, never 'answered-15' early.
    assert.equal((await h.posp.saf.list()).find((i) => i.id === id)?.state, 'operator');
    await h.posp.saf.retry(id);
    h.behaviour.fn = (m) => (m.mti === '0420' ? { code: '25' } : { code: '00' });
    assert.equal(await passAt(0), 1);
    assert.equal((await h.posp.saf.list()).find((i) => i.id === id)?.state, 'done');
    assert.equal((await h.posp.inquire(p.rrn))?.reversalState, 'reversed');
    h.behaviour.fn = () => ({ code: '00' });
  });

  test('a terminal 0400 the switch answers 15 or 91: queued, the terminal gets 00 (its record clears)', async () => {
    for (const code of ['15', '91']) {
      const p = await purchase(3500);
      h.behaviour.fn = (m) => (m.mti === '0400' ? { code } : { code: '00' });
      const { answer } = await h.terminal.send(reversalOf({ stan: p.stan, amount: 3500 }));
      h.behaviour.fn = () => ({ code: '00' });
      assert.equal(rc(answer), '00', `upstream ${code}`);
      assert.equal((await h.posp.inquire(p.rrn))?.reversalState, 'owed');
      const item = (await h.posp.saf.list('pending')).find((i) => i.originalRrn === p.rrn);
      assert.equal(item?.source, 'terminal');
      // A repeat of the 0400 gets 00 again, nothing more upstream.
      const before = h.seen.length;
      assert.equal(rc((await h.terminal.send(reversalOf({ stan: p.stan, amount: 3500 }))).answer), '00');
      assert.equal(h.seen.length, before);
      assert.equal(await passAt(0), 1);
      assert.equal((await h.posp.inquire(p.rrn))?.reversalState, 'reversed');
    }
  });

  test('a void reversed (its answer lost to the terminal): the purchase stands again at the POSP, voidable', async () => {
    const p = await purchase(3600);
    const t = h.terminal;
    const vStan = t.nextStan();
    const v = await t.send(
      t.mac(t.financial('void', { amount: 3600, stan: vStan, original: { batch: '000001', stan: p.stan } })),
    );
    assert.equal(rc(v.answer), '00');
    assert.equal((await h.posp.inquire(p.rrn))?.voidedByRrn, String(v.answer.get(37)));
    const r = await t.send(reversalOf({ stan: vStan, amount: 3600 }));
    assert.equal(rc(r.answer), '00');
    assert.equal((await h.posp.inquire(String(v.answer.get(37))))?.reversalState, 'reversed');
    assert.equal((await h.posp.inquire(p.rrn))?.voidedByRrn, undefined, 'the void was undone');
    const again = await t.send(
      t.mac(t.financial('void', { amount: 3600, original: { batch: '000001', stan: p.stan } })),
    );
    assert.equal(rc(again.answer), '00', 'the purchase can be voided again');
  });

  test('expiry: after maxAttempts the advice goes to the operator queue; retry delivers it, drop gives it up', async () => {
    h.behaviour.fn = () => 'silent';
    const one = await purchase(4100);
    const two = await purchase(4200);
    const ids = (await h.posp.saf.list('pending'))
      .filter((i) => [one.rrn, two.rrn].includes(i.originalRrn))
      .map((i) => i.id);
    assert.equal(ids.length, 2);
    await passAt(0);
    await passAt(1000);
    await passAt(2000);
    await passAt(4000);
    const op = (await h.posp.saf.list('operator')).filter((i) => ids.includes(i.id));
    assert.equal(op.length, 2);
    assert.ok(op.every((i) => i.attempts === 4 && i.lastError?.startsWith('no-answer')));
    // No longer sent by the worker.
    const sent = h.seen.length;
    await passAt(60_000);
    assert.equal(h.seen.length, sent);
    h.behaviour.fn = () => ({ code: '00' });
    const retried = await h.posp.saf.retry(ids[0]!);
    assert.equal(retried.state, 'pending');
    assert.equal(retried.attempts, 0);
    assert.equal(await passAt(0), 1);
    assert.equal(
      (await h.posp.saf.list('done')).some((i) => i.id === ids[0]),
      true,
    );
    const dropped = await h.posp.saf.drop(ids[1]!);
    assert.equal(dropped.state, 'dropped');
    assert.equal((await safRow(ids[1]!)).pan, null);
    await assert.rejects(
      () => h.posp.saf.retry(ids[1]!),
      (e: unknown) =>
        e instanceof AcquirerError &&
        e.code === 'ACQUIRER_SAF_ITEM_UNKNOWN' &&
        e.message === 'id: no operator or pending advice with this id',
    );
  });

  test('a crash (closed without draining) and a restart keep the queue; the new worker delivers it', async () => {
    h.behaviour.fn = () => 'silent';
    const p = await purchase(5100);
    const [item] = (await h.posp.saf.list('pending')).filter((i) => i.originalRrn === p.rrn);
    assert.ok(item);
    await h.restart();
    h.behaviour.fn = () => ({ code: '00' });
    const still = (await h.posp.saf.list('pending')).find((i) => i.id === item.id);
    assert.ok(still, 'the advice survived the restart');
    assert.equal(await passAt(0), 1);
    assert.equal((await h.posp.inquire(p.rrn))?.reversalState, 'reversed');
  });

  test('the polling worker (enabled by config) delivers an advice by itself', async () => {
    h.config.saf = { ...SAF, enabled: true, pollMs: 20 };
    await h.restart();
    h.behaviour.fn = () => 'silent';
    const p = await purchase(6100);
    h.behaviour.fn = () => ({ code: '00' });
    const until = Date.now() + 3000;
    while ((await h.posp.inquire(p.rrn))?.reversalState !== 'reversed' && Date.now() < until)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal((await h.posp.inquire(p.rrn))?.reversalState, 'reversed');
    h.clock.now = T0;
    // The POSP's own worker off again: the next tests drive a worker of their own on the same queue.
    h.config.saf = { ...SAF };
    await h.restart();
  });
});

describe('store and forward while the link to the switch is down', () => {
  test('a request the link refused before writing (switch down) is declined 91: nothing owed, no advice', async () => {
    const switchConfig = h.config.switch;
    const { createServer } = await import('node:net');
    const dead = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const port = (srv.address() as { port: number }).port;
        srv.close(() => resolve(port));
      });
    });
    h.config.switch = { ...switchConfig, port: dead };
    await h.restart();
    try {
      const before = h.seen.length;
      const p = await purchase(4700);
      assert.equal(p.code, '91');
      assert.equal(h.seen.length, before, 'nothing reached the switch');
      const e = await h.posp.inquire(p.rrn);
      assert.equal(e?.state, 'declined', 'never left the POSP: a decline, not an unknown outcome');
      assert.equal(e?.reversalState, undefined, 'no reversal owed');
      assert.equal(
        (await h.posp.saf.list()).some((i) => i.originalRrn === p.rrn),
        false,
        'no advice queued',
      );
    } finally {
      h.config.switch = switchConfig;
      await h.restart();
    }
  });

  test('a send refused before writing (NET_CLOSED not connected, NET_BUSY) costs no attempt; maxAgeMs still expires it', async () => {
    h.behaviour.fn = () => 'silent';
    const p = await purchase(3600);
    h.behaviour.fn = () => ({ code: '00' });
    const item = (await h.posp.saf.list('pending')).find((i) => i.originalRrn === p.rrn)!;
    assert.ok(item, 'the POSP owes its advice');
    const store = await openSqliteStore(h.dbPath, { migrations: ACQUIRER_MIGRATIONS });
    const clock = { now: new Date(h.clock.now.getTime()) };
    let calls = 0;
    const refusals = [
      new NetError('NET_CLOSED', 'link 127.0.0.1:1: not connected'),
      new NetError('NET_BUSY', 'link 127.0.0.1:1: 256 requests already in flight'),
    ];
    const link = {
      connected: true,
      request: () => Promise.reject(refusals[calls++ % refusals.length]),
    };
    const opts = { ...SAF_OPTIONS_DEFAULT, ...SAF };
    const worker = new SafWorker({
      queue: new SafQueue(store),
      vault: h.vault,
      hsm: h.hsm,
      switchLink: link,
      netSpec: net,
      zak: h.zak.block,
      switchMs: 400,
      hsmMs: 2000,
      clock: () => clock.now,
      options: opts,
    });
    try {
      const stateOf = async () => (await new SafQueue(store).get(item.id))!;
      // Far more passes than maxAttempts (4), each after its back-off: none counts.
      for (let i = 0; i < opts.maxAttempts * 3; i++) {
        if (i === opts.maxAttempts) link.connected = false;
        await worker.runOnce();
        const it = await stateOf();
        assert.equal(it.state, 'pending', `pass ${i + 1}`);
        assert.equal(it.attempts, item.attempts, 'a send that never left is not an attempt');
        clock.now = new Date(clock.now.getTime() + opts.maxDelayMs);
      }
      assert.match(
        (await stateOf()).lastError ?? '',
        /^not-sent-NET_(CLOSED|BUSY)$/,
        (await stateOf()).lastError,
      );
      assert.ok(calls >= opts.maxAttempts, `the link was asked while it said connected (${calls} calls)`);
      // The other bound: older than maxAgeMs -> the operator queue.
      clock.now = new Date(Date.parse(item.createdAt) + opts.maxAgeMs + 1);
      await worker.runOnce();
      const it = await stateOf();
      assert.equal(it.state, 'operator');
      assert.equal(it.lastError, 'expired-max-age');
      // A NET_CLOSED while in flight (may have reached the switch) counts as an attempt.
      assert.equal(
        isNotSentError(new NetError('NET_CLOSED', 'link 127.0.0.1:1: connection closed', { sent: true })),
        false,
      );
      assert.equal(
        isNotSentError(
          new NetError('NET_TIMEOUT', 'link 127.0.0.1:1: no response within 1 ms', { sent: true }),
        ),
        false,
      );
      assert.equal(isNotSentError(new NetError('NET_CLOSED', 'link 127.0.0.1:1: not connected')), true);
      await h.posp.saf.retry(item.id);
      assert.equal(await passAt(0), 1, 'the link back: delivered');
    } finally {
      await worker.stop();
      await store.close();
    }
  });

  test('one pass sends up to `concurrency` advices at once: a send waiting for its answer holds up no other', async () => {
    // The harness POSP's own worker off (an earlier test enabled it): only this worker sends.
    h.config.saf = { ...SAF };
    await h.restart();
    const store = await openSqliteStore(h.dbPath, { migrations: ACQUIRER_MIGRATIONS });
    const queue = new SafQueue(store);
    const nowIso = h.clock.now.toISOString();
    const ids: number[] = [];
    for (let i = 0; i < 6; i++) {
      const rrn = `99000000000${i}`;
      await queue.enqueue(
        {
          originalRrn: rrn,
          source: 'posp',
          reason: '98',
          panSealed: await h.vault.seal('6222020000000015'),
          panMasked: '622202******0015',
          fields: {
            3: '000000',
            4: '000000000100',
            11: `99000${i}`,
            37: rrn,
            41: 'POS00001',
            42: '123456789012345',
            49: '156',
          },
        },
        nowIso,
      );
      ids.push((await queue.byOriginal(rrn))!.id);
    }
    let inFlight = 0;
    let most = 0;
    const link = {
      connected: true,
      // Every send waits 100 ms and then gets no answer (a timeout after the frame left).
      request: async () => {
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setTimeout(r, 100));
        inFlight--;
        throw new NetError('NET_TIMEOUT', 'link 127.0.0.1:1: no response within 100 ms', { sent: true });
      },
    };
    const worker = new SafWorker({
      queue,
      vault: h.vault,
      hsm: h.hsm,
      switchLink: link,
      netSpec: net,
      zak: h.zak.block,
      switchMs: 400,
      hsmMs: 2000,
      clock: () => h.clock.now,
      options: { ...SAF_OPTIONS_DEFAULT, ...SAF, concurrency: 3 },
    });
    try {
      const t0 = Date.now();
      await worker.runOnce();
      const took = Date.now() - t0;
      assert.equal(most, 3, 'three sends in flight at once, never more');
      assert.ok(took < 6 * 100, `six 100 ms sends took ${took} ms: not one after the other`);
      for (const id of ids) {
        const it = (await queue.get(id))!;
        assert.equal(it.state, 'pending');
        assert.equal(it.attempts, 1, 'each advice sent once in the pass');
      }
    } finally {
      await worker.stop();
      for (const id of ids) await queue.drop(id, h.clock.now.toISOString()).catch(() => undefined);
      await store.close();
    }
  });
});
