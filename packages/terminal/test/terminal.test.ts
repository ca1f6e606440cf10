import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { adjustOddParity, kcvTdes, toHex } from '@openposp/crypto';
import { createLogger } from '@openposp/net';
import { openSqliteStore } from '@openposp/store';
import { encryptTrackDataBlock, parseCardInput, trackDataBlockRange } from '../src/card.js';
import { validateTerminalConfig } from '../src/config.js';
import { TERMINAL_MIGRATIONS } from '../src/migrations.js';
import { PINPAD_SCRYPT_N_MIN } from '../src/pinpad.js';
import { startTerminal, TERMINAL_SLOTS, type Terminal, type TerminalConfigInput } from '../src/index.js';
import { FakePosp, oddKey } from './fake-posp.js';
import { FaultProxy } from './fault-proxy.js';

const TRACK2 = '6222021234567890123=27121011234567890';
const PAN = '6222021234567890123';
const PIN = '123456';
const SECRET = new Uint8Array(32).fill(0x5a);
const dir = mkdtempSync(join(tmpdir(), 'terminal-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const logLines: string[] = [];
const logStream = new Writable({
  write(chunk, _enc, cb) {
    logLines.push(String(chunk));
    cb();
  },
});
const log = createLogger({ service: 'terminal', stream: logStream, level: 'debug' });
const NOW = () => new Date(2025, 10, 25, 10, 33, 1);

let seq = 0;
function configFor(posp: FakePosp, extra: Partial<TerminalConfigInput> = {}): TerminalConfigInput {
  seq += 1;
  return {
    terminalId: `POS${String(seq).padStart(5, '0')}`,
    merchantId: '898310012345678',
    merchantName: '测试商户 TEST SHOP',
    posp: { host: '127.0.0.1', port: posp.port },
    tpdu: { destination: '0003', source: '0000' },
    header: '603100311003',
    stateDir: join(dir, `t${seq}`),
    answerTimeoutMs: 2000,
    connectTimeoutMs: 1000,
    ...extra,
  };
}

const start = (config: TerminalConfigInput) =>
  startTerminal(config, { deviceSecret: SECRET, log, now: NOW, pinPadScryptN: PINPAD_SCRYPT_N_MIN });

/** Key injection ceremony: two custodians' components with check values. */
function injectTmk(t: Terminal, tmk: Uint8Array): void {
  const c1 = oddKey();
  const c2 = adjustOddParity(tmk.map((b, i) => b ^ c1[i]!));
  // c1 ^ c2 has the parity bits of tmk flipped back by adjustOddParity: same DES key.
  t.pinPad.injectKeyFromComponents(TERMINAL_SLOTS.tmk, 'kek', [c1, c2], { checkValue: kcvTdes(tmk, 3) });
}

async function signedIn(posp: FakePosp, extra: Partial<TerminalConfigInput> = {}): Promise<Terminal> {
  const t = await start(configFor(posp, extra));
  injectTmk(t, posp.tmk);
  posp.mode = 'approve';
  const r = await t.signIn();
  assert.equal(r.status, 'approved');
  return t;
}

describe('terminal against a cup-pos POSP', () => {
  const posp = new FakePosp(oddKey());
  before(() => posp.listen());
  after(() => posp.close());

  test('sign-in loads TPK, TAK and TDK after checking their check values; batch from 60.2', async () => {
    const t = await start(configFor(posp));
    await assert.rejects(t.purchase({ card: { track2: TRACK2 }, amountMinor: 100, pin: PIN }), {
      code: 'TERMINAL_NOT_SIGNED_IN',
      message: 'terminal: no working keys in the PIN pad: sign in first',
    });
    injectTmk(t, posp.tmk);
    posp.mode = 'approve';
    const r = await t.signIn();
    assert.equal(r.status, 'approved');
    assert.equal(r.batchNumber, '000007');
    const seen = posp.seen.at(-1)!;
    assert.equal(seen.mti, '0800');
    assert.equal(seen.fields[60], '00000001004');
    assert.deepEqual(
      r.slots?.map((s) => s.checkValueHex),
      [posp.pik!, posp.mak!, posp.tdk!].map((k) => toHex(kcvTdes(k, 4))),
    );
    const st = await t.status();
    assert.equal(st.signedIn, true);
    assert.equal(st.batchNumber, '000007');
    await t.close();
  });

  test('a wrong check value refuses the whole sign-in and keeps the old keys', async () => {
    const t = await signedIn(posp);
    const before = t.pinPad.listSlots();
    posp.mode = 'wrong-check-value';
    const r = await t.signIn();
    assert.deepEqual(r.status, 'refused');
    assert.equal(r.refusedReason, 'check-value');
    assert.deepEqual(t.pinPad.listSlots(), before);
    // The old keys still work with the POSP (which kept them too).
    posp.mode = 'approve';
    const p = await t.purchase({ card: { track2: TRACK2 }, amountMinor: 500, pin: PIN });
    assert.equal(p.status, 'approved');
    await t.close();
  });

  test('an 0810 that does not echo 41 is refused', async () => {
    const t = await signedIn(posp);
    const before = t.pinPad.listSlots();
    posp.mode = 'wrong-terminal-echo';
    const r = await t.signIn();
    assert.equal(r.status, 'refused');
    assert.equal(r.refusedReason, 'echo-mismatch');
    assert.deepEqual(t.pinPad.listSlots(), before);
    posp.mode = 'approve';
    await t.close();
  });

  test('purchase approved: PIN block under the PIK, track under the TDK, MAC under the MAK', async () => {
    const t = await signedIn(posp);
    const r = await t.purchase({ card: { track2: TRACK2 }, amountMinor: 12345, pin: PIN });
    assert.equal(r.status, 'approved');
    assert.equal(r.responseCode, '00');
    assert.equal(r.authCode, 'A1B2C3');
    assert.match(r.rrn!, /^[0-9]{12}$/);
    assert.equal(r.amountMinor, 12345);
    assert.equal(r.maskedPan, '622202*********0123');
    assert.equal(r.reversalPending, false);
    const seen = posp.seen.at(-1)!;
    assert.equal(seen.macOk, true);
    assert.equal(seen.pin, PIN);
    assert.equal(seen.track2, TRACK2.replace('=', 'D'));
    assert.equal(seen.fields[53], '2610000000000000');
    assert.equal(seen.fields[3], '000000');
    assert.equal(seen.fields[22], '021');
    assert.equal(seen.fields[25], '00');
    assert.equal(seen.fields[60], '22000007000');
    assert.equal(seen.fields[4], '000000012345');
    // The TDB went over the wire enciphered: the clear bytes are not there.
    const clearBcd = Buffer.from(`${TRACK2.replace('=', 'D')}F`, 'hex');
    const { start, end } = trackDataBlockRange(clearBcd.length);
    assert.notDeepEqual(seen.field35Raw!.subarray(start, end), new Uint8Array(clearBcd.subarray(start, end)));
    assert.deepEqual(seen.field35Raw!.subarray(0, start), new Uint8Array(clearBcd.subarray(0, start)));
    assert.equal(await t.pendingReversal(), undefined);
    const slips = t.slips(r);
    assert.ok(slips.merchant.includes('卡号 CARD NO: 622202*********0123'));
    assert.ok(slips.merchant.includes('金额 AMOUNT: RMB 123.45'));
    assert.ok(slips.merchant.includes(`参考号 REF NO: ${r.rrn}`));
    assert.ok(slips.cardholder.includes('持卡人存根 / CARDHOLDER COPY'));
    assert.equal(slips.merchant.includes(PAN) || slips.cardholder.includes(PAN), false);
    assert.deepEqual(
      (await t.batchEntries()).map((e) => [e.type, e.amountMinor, e.stan]),
      [['purchase', 12345, r.stan]],
    );
    await t.close();
  });

  test('purchase declined (51) is a value, leaves no reversal and no batch entry', async () => {
    const t = await signedIn(posp);
    posp.mode = 'decline-51';
    const r = await t.purchase({ card: { pan: PAN, expiry: '2712' }, amountMinor: 99, pin: PIN });
    assert.equal(r.status, 'declined');
    assert.equal(r.responseCode, '51');
    assert.equal(r.authCode, undefined);
    assert.equal(posp.seen.at(-1)!.fields[22], '011');
    assert.equal(await t.pendingReversal(), undefined);
    assert.deepEqual(await t.batchEntries(), []);
    posp.mode = 'approve';
    await t.close();
  });

  test('a bad response MAC is mac-failed, not an approval; the reversal record stays (A0)', async () => {
    const t = await signedIn(posp);
    posp.mode = 'bad-mac';
    const r = await t.purchase({ card: { track2: TRACK2 }, amountMinor: 700, pin: PIN });
    assert.equal(r.status, 'mac-failed');
    assert.equal(r.responseCode, undefined);
    assert.equal(r.reversalPending, true);
    const rev = await t.pendingReversal();
    assert.equal(rev?.reason, 'A0');
    assert.equal(rev?.stan, r.stan);
    assert.equal(rev?.amountMinor, 700);
    assert.equal(rev?.maskedPan, '622202*********0123');
    assert.deepEqual(await t.batchEntries(), []);
    // The next purchase sends the reversal (39 = A0) first (test/reversal.test.ts covers the rest).
    posp.mode = 'approve';
    const next = await t.purchase({ card: { track2: TRACK2 }, amountMinor: 1, pin: PIN });
    assert.equal(next.autoReversal?.status, 'reversed');
    assert.deepEqual(
      posp.seen.slice(-2).map((x) => [x.mti, x.fields[39]]),
      [
        ['0400', 'A0'],
        ['0200', undefined],
      ],
    );
    await t.close();
  });

  test('an answer without a MAC is mac-failed too', async () => {
    const t = await signedIn(posp);
    posp.mode = 'no-mac';
    const r = await t.purchase({ card: { track2: TRACK2 }, amountMinor: 700, pin: PIN });
    assert.equal(r.status, 'mac-failed');
    posp.mode = 'approve';
    await t.close();
  });

  test('no answer within the bounded time: no-answer, reversal reason 98', async () => {
    const t = await signedIn(posp, { answerTimeoutMs: 300 });
    posp.mode = 'silent';
    const r = await t.purchase({ card: { track2: TRACK2 }, amountMinor: 800, pin: PIN });
    assert.equal(r.status, 'no-answer');
    assert.equal((await t.pendingReversal())?.reason, '98');
    posp.mode = 'approve';
    await t.close();
  });

  test('balance inquiry, void and refund', async () => {
    const t = await signedIn(posp);
    const bal = await t.balanceInquiry({ card: { track2: TRACK2 }, pin: PIN });
    assert.equal(bal.status, 'approved');
    assert.equal(bal.balanceMinor, 1_234_567);
    assert.equal(posp.seen.at(-1)!.fields[3], '310000');
    assert.equal(posp.seen.at(-1)!.fields[4], undefined);
    const p = await t.purchase({ card: { track2: TRACK2 }, amountMinor: 2000, pin: PIN });
    const v = await t.voidPurchase({ card: { track2: TRACK2 }, originalStan: p.stan });
    assert.equal(v.status, 'approved');
    const seenVoid = posp.seen.at(-1)!;
    assert.equal(seenVoid.mti, '0200');
    assert.equal(seenVoid.fields[3], '200000');
    assert.equal(seenVoid.fields[4], '000000002000');
    assert.equal(seenVoid.fields[22], '022');
    assert.equal(seenVoid.fields[37], p.rrn);
    assert.equal(seenVoid.fields[38], 'A1B2C3');
    assert.equal(seenVoid.fields[60], '23000007000');
    assert.equal(seenVoid.fields[61], `000007${p.stan}`);
    assert.equal(seenVoid.macOk, true);
    await assert.rejects(t.voidPurchase({ card: { track2: TRACK2 }, originalStan: p.stan }), {
      code: 'TERMINAL_ORIGINAL_NOT_FOUND',
      message: 'originalStan: no purchase with this STAN in the current batch that is not already voided',
    });
    const f = await t.refund({
      card: { track2: TRACK2 },
      amountMinor: 500,
      original: { rrn: p.rrn!, date: p.localDate, batchNumber: p.batchNumber, stan: p.stan },
    });
    assert.equal(f.status, 'approved');
    const seenRefund = posp.seen.at(-1)!;
    assert.equal(seenRefund.mti, '0220');
    assert.equal(seenRefund.fields[60], '25000007000');
    assert.equal(seenRefund.fields[61], `000007${p.stan}1125`);
    assert.deepEqual(
      (await t.batchEntries()).map((e) => [e.type, e.amountMinor, e.voided]),
      [
        ['purchase', 2000, true],
        ['void', 2000, false],
        ['refund', 500, false],
      ],
    );
    await t.close();
  });

  test('a void with another card is refused before anything is sent', async () => {
    const t = await signedIn(posp);
    const p = await t.purchase({ card: { track2: TRACK2 }, amountMinor: 2000, pin: PIN });
    const sent = posp.seen.length;
    await assert.rejects(
      t.voidPurchase({ card: { pan: '6222020000000000001', expiry: '2712' }, originalStan: p.stan }),
      {
        code: 'TERMINAL_CARD_INVALID',
        message: 'card: is not the card of the original purchase',
      },
    );
    assert.equal(posp.seen.length, sent);
    await t.close();
  });

  test('one request at a time', async () => {
    const t = await signedIn(posp);
    const first = t.purchase({ card: { track2: TRACK2 }, amountMinor: 10, pin: PIN });
    await assert.rejects(t.balanceInquiry({ card: { track2: TRACK2 }, pin: PIN }), {
      code: 'TERMINAL_BUSY',
      message: 'terminal: a transaction is already running',
    });
    assert.equal((await first).status, 'approved');
    await t.close();
  });

  test('STAN, batch and keys survive a restart; the STAN wraps from 999999 to 1', async () => {
    const cfg = configFor(posp);
    let t = await start(cfg);
    injectTmk(t, posp.tmk);
    assert.equal((await t.signIn()).status, 'approved');
    const p = await t.purchase({ card: { track2: TRACK2 }, amountMinor: 300, pin: PIN });
    const st = await t.status();
    await t.close();
    t = await start(cfg);
    const st2 = await t.status();
    assert.equal(st2.lastStan, st.lastStan);
    assert.equal(st2.batchNumber, '000007');
    assert.equal(st2.signedIn, true);
    assert.deepEqual(st2.pinPad, st.pinPad);
    const p2 = await t.purchase({ card: { track2: TRACK2 }, amountMinor: 301, pin: PIN });
    assert.equal(p2.status, 'approved');
    assert.equal(Number(p2.stan), Number(p.stan) + 1);
    await t.close();
    const store = await openSqliteStore(join(cfg.stateDir, 'terminal.sqlite'), {
      migrations: TERMINAL_MIGRATIONS,
    });
    await store.run('UPDATE terminal_state SET last_stan = 999999 WHERE id = 1');
    await store.close();
    t = await start(cfg);
    const p3 = await t.purchase({ card: { track2: TRACK2 }, amountMinor: 302, pin: PIN });
    assert.equal(p3.stan, '000001');
    assert.equal(p3.status, 'approved');
    await t.close();
  });

  test('a clear-track terminal (trackEncryption none) sends 53 position 3 = 0', async () => {
    const t = await signedIn(posp, { trackEncryption: 'none' });
    const r = await t.purchase({ card: { track2: TRACK2 }, amountMinor: 10, pin: PIN });
    assert.equal(r.status, 'approved');
    assert.equal(posp.seen.at(-1)!.fields[53], '2600000000000000');
    await t.close();
  });

  test('no PAN, PIN or track data in the logs or the SQLite files', async () => {
    const cfg = configFor(posp);
    const t = await start(cfg);
    injectTmk(t, posp.tmk);
    await t.signIn();
    const p = await t.purchase({ card: { track2: TRACK2 }, amountMinor: 4242, pin: PIN });
    await t.voidPurchase({ card: { track2: TRACK2 }, originalStan: p.stan });
    posp.mode = 'bad-mac';
    await t.purchase({ card: { track2: TRACK2 }, amountMinor: 1, pin: PIN });
    posp.mode = 'approve';
    await t.close();
    const logs = logLines.join('');
    assert.ok(logs.includes('txn.result'));
    if (process.env.SHOW_LOGS === '1') console.log(logs);
    const files = ['terminal.sqlite', 'terminal.sqlite-wal', 'pinpad.sealed']
      .map((f) => join(cfg.stateDir, f))
      .filter((f) => existsSync(f))
      .map((f) => readFileSync(f));
    const trackBcd = Buffer.from(`${TRACK2.replace('=', 'D')}F`, 'hex');
    const panBcd = Buffer.from(`${PAN}F`, 'hex');
    for (const hay of [Buffer.from(logs), ...files]) {
      const text = hay.toString('latin1');
      for (const needle of [PAN, TRACK2, TRACK2.replace('=', 'D'), '27121011234567890'])
        assert.equal(text.includes(needle), false);
      assert.equal(hay.includes(trackBcd), false);
      assert.equal(hay.includes(panBcd), false);
      assert.equal(/"pin"\s*:\s*"\d/.test(text), false);
    }
    for (const k of [posp.tmk, posp.pik!, posp.mak!, posp.tdk!])
      for (const hay of [Buffer.from(logs), ...files]) {
        assert.equal(hay.includes(Buffer.from(k)), false);
        assert.equal(hay.toString('latin1').toUpperCase().includes(toHex(k)), false);
      }
  });
});

describe('POSP unreachable', () => {
  test('a purchase that cannot connect is no-answer with nothing sent and no reversal', async () => {
    const posp = new FakePosp(oddKey());
    await posp.listen();
    const t = await signedIn(posp);
    await posp.close();
    const r = await t.purchase({ card: { track2: TRACK2 }, amountMinor: 100, pin: PIN });
    assert.equal(r.status, 'no-answer');
    assert.equal(r.reversalPending, false);
    assert.equal(await t.pendingReversal(), undefined);
    await t.close();
  });
});

/** Waits (at most `limitMs`) until `cond` holds: the other side of a TCP close is seen a little later. */
async function waitFor(cond: () => boolean, limitMs = 2000): Promise<void> {
  const until = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
const sleepMs = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("connection setting: 'per-exchange' (default) or 'kept'", () => {
  const posp = new FakePosp(oddKey());
  before(() => posp.listen());
  after(() => posp.close());
  const card = { track2: TRACK2 };

  /** Runs `fn` on a signed-in terminal and closes it even when an assertion fails (no open socket left). */
  async function withTerminal(
    on: FakePosp,
    extra: Partial<TerminalConfigInput>,
    fn: (t: Terminal) => Promise<void>,
  ): Promise<void> {
    const t = await signedIn(on, extra);
    try {
      await fn(t);
    } finally {
      await t.close();
      on.mode = 'approve';
      on.answerDelayMs = 0;
    }
  }

  for (const [connection, accepted] of [
    [undefined, 4],
    ['per-exchange', 4],
    ['kept', 1],
  ] as const) {
    test(`${connection ?? 'default'}: a sign-in and three purchases open ${accepted} TCP connection(s)`, async () => {
      const from = posp.stats().accepted;
      await withTerminal(posp, connection ? { connection } : {}, async (t) => {
        for (const amountMinor of [101, 102, 103])
          assert.equal((await t.purchase({ card, amountMinor, pin: PIN })).status, 'approved');
        assert.equal(posp.stats().accepted - from, accepted);
      });
      // close() closed the kept connection too: nothing stays open on the POSP.
      await waitFor(() => posp.stats().connections === 0);
    });
  }

  test('kept: a connection the POSP closed between two purchases is opened again', async () => {
    const proxy = new FaultProxy(posp.port);
    await proxy.listen();
    try {
      const extra = { connection: 'kept', posp: { host: '127.0.0.1', port: proxy.port } } as const;
      await withTerminal(posp, extra, async (t) => {
        const from = posp.stats().accepted;
        assert.equal((await t.purchase({ card, amountMinor: 201, pin: PIN })).status, 'approved');
        proxy.dropConnections();
        await waitFor(() => posp.stats().connections === 0);
        await sleepMs(50);
        const r = await t.purchase({ card, amountMinor: 202, pin: PIN });
        assert.equal(r.status, 'approved');
        assert.equal(r.autoReversal, undefined);
        assert.equal(await t.pendingReversal(), undefined);
        assert.equal(posp.stats().accepted - from, 1);
      });
    } finally {
      await proxy.close();
    }
  });

  test('kept: after a timed-out exchange the next one is on a new connection; the late answer is not taken', async () => {
    await withTerminal(posp, { connection: 'kept', answerTimeoutMs: 1000 }, async (t) => {
      const from = posp.stats().accepted;
      // The first answer is made at once (balance 111) and sent at 1500 ms, after the 1000 ms timeout and
      // while the second inquiry (sent at about 1000 ms, answered at about 1800 ms) waits for its own.
      posp.balanceMinor = 111;
      posp.answerDelayMs = 1500;
      try {
        const first = await t.balanceInquiry({ card, pin: PIN });
        assert.equal(first.status, 'no-answer');
        posp.balanceMinor = 222;
        posp.answerDelayMs = 800;
        const second = await t.balanceInquiry({ card, pin: PIN });
        assert.equal(second.status, 'approved');
        assert.equal(second.balanceMinor, 222);
        assert.equal(Number(second.stan), Number(first.stan) + 1);
      } finally {
        posp.balanceMinor = 1_234_567;
      }
      assert.equal(posp.stats().accepted - from, 1);
      // The late answer went to the closed connection: the terminal never saw it, not even as unmatched.
      const unmatched = logLines.filter(
        (l) => l.includes('txn.unmatched-answer') && l.includes(t.config.terminalId),
      );
      assert.deepEqual(unmatched, []);
    });
  });

  test('kept: after a bad answer MAC the reversal and the next purchase go on a new connection', async () => {
    await withTerminal(posp, { connection: 'kept' }, async (t) => {
      const from = posp.stats().accepted;
      posp.mode = 'bad-mac';
      const bad = await t.purchase({ card, amountMinor: 301, pin: PIN });
      posp.mode = 'approve';
      assert.equal(bad.status, 'mac-failed');
      assert.equal(posp.stats().accepted - from, 0);
      const next = await t.purchase({ card, amountMinor: 302, pin: PIN });
      assert.equal(next.autoReversal?.status, 'reversed');
      assert.equal(next.status, 'approved');
      assert.equal(posp.stats().accepted - from, 1);
    });
  });

  test('a purchase that never left (no connection) does not use up its STAN: the next request carries it', async () => {
    const t = await signedIn(posp);
    const cfg = t.config;
    const r1 = await t.purchase({ card, amountMinor: 301, pin: PIN });
    assert.equal(r1.status, 'approved');
    await t.close();
    // Nothing listens on this port: the purchase is refused at connect, before any record is written.
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const deadPort = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const down = await start({ ...cfg, posp: { host: '127.0.0.1', port: deadPort } });
    const r2 = await down.purchase({ card, amountMinor: 302, pin: PIN });
    assert.equal(r2.status, 'no-answer');
    assert.equal(r2.reversalPending, false);
    assert.equal(Number(r2.stan), Number(r1.stan) + 1);
    assert.equal(await down.pendingReversal(), undefined);
    await down.close();
    const up = await start(cfg);
    try {
      const seenBefore = posp.seen.length;
      const r3 = await up.purchase({ card, amountMinor: 303, pin: PIN });
      assert.equal(r3.status, 'approved');
      assert.equal(r3.stan, r2.stan, 'the STAN that never reached the wire is the next one used');
      assert.deepEqual(
        posp.seen.slice(seenBefore).map((x) => x.fields[11]),
        [r3.stan],
        'one request, carrying that STAN',
      );
    } finally {
      await up.close();
    }
    // The state file: the last STAN used is the approved purchase's.
    const st = await openSqliteStore(cfg.databasePath, { migrations: TERMINAL_MIGRATIONS });
    try {
      const row = await st.get<{ last_stan: number }>('SELECT last_stan FROM terminal_state WHERE id = 1');
      assert.equal(row?.last_stan, Number(r2.stan));
    } finally {
      await st.close();
    }
  });

  test('kept: when the POSP is gone, the purchase is no-answer with nothing sent and no reversal', async () => {
    const gone = new FakePosp(oddKey());
    await gone.listen();
    await withTerminal(gone, { connection: 'kept' }, async (t) => {
      const sent = gone.seen.length;
      await gone.close();
      const r = await t.purchase({ card, amountMinor: 401, pin: PIN });
      assert.equal(r.status, 'no-answer');
      assert.equal(r.reversalPending, false);
      assert.equal(await t.pendingReversal(), undefined);
      assert.equal(gone.seen.length, sent);
    });
  });
});

describe('track data block (UnionPay TDK encryption)', () => {
  test('TDB = the 8 bytes ending one byte before the last (doc.xrtinfo.com §4.4.2 example)', () => {
    // 37 digits 1234567890123456789=0508201781999168302 pack to 20 bytes; TDB2 = 08 20 17 81 99 91 68 30.
    const packed = Buffer.from('1234567890123456789D05082017819991683020', 'hex');
    const { start, end } = trackDataBlockRange(packed.length);
    assert.equal(Buffer.from(packed.subarray(start, end)).toString('hex').toUpperCase(), '0820178199916830');
    const out = encryptTrackDataBlock(new Uint8Array(packed), (b) => b.map((x) => x ^ 0xff));
    assert.equal(Buffer.from(out).toString('hex').toUpperCase(), '1234567890123456789D05F7DFE87E666E97CF20');
  });

  test('property: only the TDB changes, and deciphering it restores the track', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 9, maxLength: 19 }),
        fc.uint8Array({ minLength: 8, maxLength: 8 }),
        (packed, mask) => {
          const out = encryptTrackDataBlock(packed.slice(), (b) => b.map((x, i) => x ^ mask[i]!));
          const { start, end } = trackDataBlockRange(packed.length);
          assert.deepEqual(out.subarray(0, start), packed.subarray(0, start));
          assert.deepEqual(out.subarray(end), packed.subarray(end));
          const back = encryptTrackDataBlock(out.slice(), (b) => b.map((x, i) => x ^ mask[i]!));
          assert.deepEqual(back, packed);
        },
      ),
    );
  });

  test('property: a track 2 built from PAN and expiry reads back', () => {
    const digits = (min: number, max: number) => fc.stringMatching(new RegExp(`^[0-9]{${min},${max}}$`));
    fc.assert(
      fc.property(
        digits(12, 19),
        fc.integer({ min: 0, max: 99 }),
        fc.integer({ min: 1, max: 12 }),
        digits(3, 14),
        (pan, yy, mm, rest) => {
          const expiry = `${String(yy).padStart(2, '0')}${String(mm).padStart(2, '0')}`;
          const track2 = `${pan}=${expiry}${rest}`.slice(0, 37);
          const card = parseCardInput({ track2: track2.replace('=', 'D') });
          assert.deepEqual(card, { pan, expiry, track2, entry: 'magstripe' });
        },
      ),
    );
  });

  test('card input errors', () => {
    for (const [input, message] of [
      [{ track2: '6222021234567890123' }, 'card.track2: must hold exactly one field separator (= or D)'],
      [{ track2: '62220212345=2712=1' }, 'card.track2: must hold exactly one field separator (= or D)'],
      [{ track2: '62220212=2712101' }, 'card.track2: the PAN must be 12 to 19 digits, got 8'],
      [
        { track2: '6222021234567890123=2713101' },
        'card.track2: the expiry must be YYMM with a month from 01 to 12',
      ],
      [
        { track2: '6222021234567890123=27121011234567890123' },
        'card.track2: must be at most 37 characters, got 40',
      ],
      [{ pan: '62220212345678A', expiry: '2712' }, 'card.pan: the PAN must be decimal digits'],
      [
        { pan: '6222021234567890', expiry: '271' },
        'card.expiry: the expiry must be YYMM with a month from 01 to 12',
      ],
    ] as const) {
      assert.throws(() => parseCardInput(input), { code: 'TERMINAL_CARD_INVALID', message });
    }
  });

  test('track data shorter than 9 bytes cannot be enciphered', () => {
    assert.throws(() => trackDataBlockRange(8), {
      code: 'TERMINAL_CARD_INVALID',
      message: 'card.track2: track data must pack to at least 9 bytes to be enciphered',
    });
  });
});

describe('config', () => {
  const good = {
    terminalId: 'POS00001',
    merchantId: '898310012345678',
    merchantName: 'Shop',
    posp: { host: '127.0.0.1', port: 5000 },
    tpdu: { destination: '0003', source: 0 },
    header: '603100311003',
    stateDir: '/tmp/x',
  };

  test('defaults', () => {
    const c = validateTerminalConfig(good);
    assert.equal(c.answerTimeoutMs, 30_000);
    assert.equal(c.connectTimeoutMs, 5_000);
    assert.equal(c.trackEncryption, 'tdk');
    assert.equal(c.connection, 'per-exchange');
    assert.deepEqual(c.tpdu, { destination: 3, source: 0 });
    assert.equal(c.databasePath, join('/tmp/x', 'terminal.sqlite'));
    assert.equal(c.pinpadStatePath, join('/tmp/x', 'pinpad.sealed'));
  });

  for (const [patch, message] of [
    [{ terminalId: 'POS1' }, 'config.terminalId: must be exactly 8 printable ASCII characters'],
    [{ merchantId: 1 }, 'config.merchantId: must be a string'],
    [{ posp: { host: 'h', port: 70000 } }, 'config.posp.port: must be an integer from 1 to 65535'],
    [
      { tpdu: { destination: 'xyz', source: 0 } },
      'config.tpdu.destination: must be 4 hex digits or an integer from 0 to 65535',
    ],
    [{ header: '6031' }, 'config.header: must be 12 decimal digits'],
    [{ trackEncryption: 'aes' }, 'config.trackEncryption: must be tdk or none'],
    [{ connection: 'long' }, 'config.connection: must be per-exchange or kept'],
    [{ answerTimeoutMs: 0 }, 'config.answerTimeoutMs: must be an integer from 100 to 300000'],
    [{ colour: 'red' }, 'config.colour: is not a known setting'],
  ] as const) {
    test(`refuses ${message}`, () => {
      assert.throws(() => validateTerminalConfig({ ...good, ...patch }), {
        code: 'TERMINAL_CONFIG_INVALID',
        message,
      });
    });
  }
});
