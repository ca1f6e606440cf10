/**
 * Automatic reversal (沖正, 0400/0410) and settlement (結算, 0500/0510, batch upload 0320/0330)
 * against a fake POSP speaking the real cup-pos protocol, with a fault proxy on the line.
 */
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
import {
  AUTO_REVERSAL_OK_MESSAGE,
  computeSettlementTotals,
  formatSettlementField48,
  PINPAD_SCRYPT_N_MIN,
  parseSettlementField48,
  startTerminal,
  TERMINAL_MIGRATIONS,
  TERMINAL_SLOTS,
  type Terminal,
  type TerminalConfigInput,
} from '../src/index.js';
import { FaultProxy } from './fault-proxy.js';
import { FakePosp, oddKey } from './fake-posp.js';

const TRACK2 = '6222021234567890123=27121011234567890';
const PAN = '6222021234567890123';
const PIN = '123456';
const CARD = { track2: TRACK2 };
const SECRET = new Uint8Array(32).fill(0x5a);
const dir = mkdtempSync(join(tmpdir(), 'terminal-rev-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const logLines: string[] = [];
const log = createLogger({
  service: 'terminal',
  level: 'debug',
  stream: new Writable({
    write(chunk, _enc, cb) {
      logLines.push(String(chunk));
      cb();
    },
  }),
});
const NOW = () => new Date(2025, 10, 25, 10, 33, 1);

const posp = new FakePosp(oddKey());
let proxy: FaultProxy;
before(async () => {
  await posp.listen();
  proxy = new FaultProxy(posp.port);
  await proxy.listen();
});
after(async () => {
  await proxy.close();
  await posp.close();
});

let seq = 0;
function configFor(extra: Partial<TerminalConfigInput> = {}): TerminalConfigInput {
  seq += 1;
  return {
    terminalId: `REV${String(seq).padStart(5, '0')}`,
    merchantId: '898310012345678',
    merchantName: '测试商户 TEST SHOP',
    posp: { host: '127.0.0.1', port: proxy.port },
    tpdu: { destination: '0003', source: '0000' },
    header: '603100311003',
    stateDir: join(dir, `t${seq}`),
    answerTimeoutMs: 400,
    connectTimeoutMs: 1000,
    reversalAnswerTimeoutMs: 250,
    retryDelayMs: 5,
    ...extra,
  };
}

const open = (config: TerminalConfigInput) =>
  startTerminal(config, { deviceSecret: SECRET, log, now: NOW, pinPadScryptN: PINPAD_SCRYPT_N_MIN });

async function signedIn(extra: Partial<TerminalConfigInput> = {}) {
  const config = configFor(extra);
  const t = await open(config);
  const c1 = oddKey();
  const c2 = adjustOddParity(posp.tmk.map((b, i) => b ^ c1[i]!));
  t.pinPad.injectKeyFromComponents(TERMINAL_SLOTS.tmk, 'kek', [c1, c2], { checkValue: kcvTdes(posp.tmk, 3) });
  assert.equal((await t.signIn()).status, 'approved');
  return { t, config };
}

/** Resets the shared POSP and proxy to a clean line. */
function cleanLine(): void {
  posp.mode = 'approve';
  posp.modes = {};
  proxy.mode = 'pass';
}

const seenOf = (t: Terminal) => posp.seen.filter((s) => s.fields[41] === t.config.terminalId);
const identity = (t: Terminal, stan: string) => `${t.config.terminalId}|${stan}|1125`;

describe('automatic reversal (沖正)', () => {
  test('after a timeout: the next purchase sends the 0400 (39 = 98) first, then goes', async () => {
    cleanLine();
    const { t } = await signedIn();
    posp.mode = 'silent';
    const lost = await t.purchase({ card: CARD, amountMinor: 800, pin: PIN });
    assert.equal(lost.status, 'no-answer');
    assert.equal(lost.reversalPending, true);
    cleanLine();
    const next = await t.purchase({ card: CARD, amountMinor: 900, pin: PIN });
    assert.equal(next.status, 'approved');
    const ar = next.autoReversal!;
    assert.equal(ar.status, 'reversed');
    assert.equal(ar.message, AUTO_REVERSAL_OK_MESSAGE);
    assert.equal(ar.message, '自動沖正成功');
    assert.equal(ar.responseCode, '00');
    assert.equal(ar.attempts, 1);
    assert.equal(ar.reversal?.stan, lost.stan);
    assert.equal(ar.reversal?.attempts, 1);
    const [rev, purchase] = seenOf(t).slice(-2);
    assert.equal(rev!.mti, '0400');
    assert.equal(rev!.macOk, true);
    assert.equal(rev!.fields[39], '98');
    assert.equal(rev!.fields[2], PAN);
    assert.equal(rev!.fields[3], '000000');
    assert.equal(rev!.fields[4], '000000000800');
    assert.equal(rev!.fields[11], lost.stan);
    assert.equal(rev!.fields[13], '1125');
    assert.equal(rev!.fields[22], '021');
    assert.equal(rev!.fields[25], '00');
    assert.equal(rev!.fields[49], '156');
    assert.equal(rev!.fields[60], '22000007000');
    assert.equal(rev!.fields[61], `000007${lost.stan}1125`);
    assert.equal(rev!.fields[35], undefined);
    assert.equal(rev!.fields[52], undefined);
    assert.equal(purchase!.mti, '0200');
    assert.equal(purchase!.fields[4], '000000000900');
    assert.equal(await t.pendingReversal(), undefined);
    assert.ok(logLines.some((l) => l.includes('"reversal.result"') && l.includes('自動沖正成功')));
    const slips = t.reversalSlips(ar);
    assert.ok(slips.merchant.includes('沖正 / REVERSAL'));
    assert.ok(slips.merchant.includes(`原凭证号 ORIG TRACE NO: ${lost.stan}`));
    assert.ok(slips.cardholder.includes('自動沖正成功'));
    assert.equal(slips.merchant.includes(PAN) || slips.cardholder.includes(PAN), false);
    // The lost purchase is in neither batch: the terminal never believed it.
    assert.deepEqual(
      (await t.batchEntries()).map((e) => e.amountMinor),
      [900],
    );
    await t.close();
  });

  test('after a bad answer MAC: sendPendingReversal() sends 39 = A0 and clears the record', async () => {
    cleanLine();
    const { t } = await signedIn();
    posp.mode = 'bad-mac';
    const r = await t.purchase({ card: CARD, amountMinor: 700, pin: PIN });
    assert.equal(r.status, 'mac-failed');
    cleanLine();
    const ar = await t.sendPendingReversal();
    assert.equal(ar.status, 'reversed');
    assert.equal(seenOf(t).at(-1)!.fields[39], 'A0');
    assert.equal(posp.journal.get(identity(t, r.stan))?.reversed, true);
    assert.equal((await t.sendPendingReversal()).status, 'none');
    await t.close();
  });

  test('retries exhausted: the record stays, the purchase is refused; later it goes through', async () => {
    cleanLine();
    const { t, config } = await signedIn({ reversalMaxAttempts: 3 });
    posp.mode = 'silent';
    const lost = await t.purchase({ card: CARD, amountMinor: 1200, pin: PIN });
    cleanLine();
    posp.modes['0400'] = 'silent';
    const before = seenOf(t).length;
    await assert.rejects(t.purchase({ card: CARD, amountMinor: 5, pin: PIN }), {
      code: 'TERMINAL_REVERSAL_PENDING',
      message:
        'terminal: the pending reversal was not acknowledged after 3 attempts: it is tried again before the next online transaction',
    });
    assert.deepEqual(
      seenOf(t)
        .slice(before)
        .map((s) => s.mti),
      ['0400', '0400', '0400'],
    );
    assert.equal((await t.pendingReversal())?.attempts, 3);
    // A bad 0410 MAC and a 96 answer are not acknowledgements either.
    posp.modes['0400'] = 'bad-mac';
    const bad = await t.sendPendingReversal();
    assert.equal(bad.status, 'failed');
    assert.equal(bad.reversal?.attempts, 6);
    posp.modes['0400'] = 'malfunction-96';
    assert.equal((await t.sendPendingReversal()).status, 'failed');
    // The attempt counter survives a restart.
    await t.close();
    const t2 = await open(config);
    const rec = await t2.pendingReversal();
    assert.equal(rec?.attempts, 9);
    assert.equal(rec?.stan, lost.stan);
    cleanLine();
    const next = await t2.purchase({ card: CARD, amountMinor: 5, pin: PIN });
    assert.equal(next.status, 'approved');
    assert.equal(next.autoReversal?.status, 'reversed');
    assert.equal(next.autoReversal?.reversal?.attempts, 10);
    assert.equal(posp.reversals.get(identity(t2, lost.stan))?.applied, true);
    await t2.close();
  });

  test('survives a restart: answer lost after the POSP debited, terminal closed, reopened, reversal first', async () => {
    cleanLine();
    const { t, config } = await signedIn();
    proxy.mode = 'drop-answer'; // delivered and approved at the POSP; the line drops before the answer
    const lost = await t.purchase({ card: CARD, amountMinor: 4200, pin: PIN });
    assert.equal(lost.status, 'no-answer');
    assert.equal(posp.journal.get(identity(t, lost.stan))?.reversed, false); // the seed's failure (a)
    await t.close();
    const t2 = await open(config);
    assert.equal((await t2.status()).reversalPending, true);
    cleanLine();
    const before = seenOf(t2).length;
    const next = await t2.purchase({ card: CARD, amountMinor: 100, pin: PIN });
    assert.equal(next.status, 'approved');
    assert.deepEqual(
      seenOf(t2)
        .slice(before)
        .map((s) => [s.mti, s.fields[11]]),
      [
        ['0400', lost.stan],
        ['0200', next.stan],
      ],
    );
    assert.equal(posp.journal.get(identity(t2, lost.stan))?.reversed, true); // healed
    await t2.close();
  });

  test('sign-in sends a pending reversal first', async () => {
    cleanLine();
    const { t } = await signedIn();
    posp.mode = 'silent';
    await t.purchase({ card: CARD, amountMinor: 300, pin: PIN });
    cleanLine();
    const before = seenOf(t).length;
    const s = await t.signIn();
    assert.equal(s.status, 'approved');
    assert.equal(s.autoReversal?.status, 'reversed');
    assert.deepEqual(
      seenOf(t)
        .slice(before)
        .map((x) => x.mti),
      ['0400', '0800'],
    );
    await t.close();
  });

  test('sign-in goes ahead when the reversal still fails (new keys may be what it needs)', async () => {
    cleanLine();
    const { t } = await signedIn({ reversalMaxAttempts: 1 });
    posp.mode = 'silent';
    await t.purchase({ card: CARD, amountMinor: 300, pin: PIN });
    cleanLine();
    posp.modes['0400'] = 'silent';
    const s = await t.signIn();
    assert.equal(s.status, 'approved');
    assert.equal(s.autoReversal?.status, 'failed');
    assert.equal((await t.pendingReversal())?.attempts, 1);
    cleanLine();
    assert.equal((await t.sendPendingReversal()).status, 'reversed'); // under the new MAK
    await t.close();
  });

  test('idempotent: a duplicated 0410 and a 0400 sent twice change nothing more', async () => {
    cleanLine();
    const { t } = await signedIn();
    posp.mode = 'silent';
    const lost = await t.purchase({ card: CARD, amountMinor: 650, pin: PIN });
    cleanLine();
    // First try: the 0400 reaches the POSP (which reverses), the 0410 is lost; the second try is
    // answered 00 again and the POSP changes nothing.
    posp.modes['0400'] = 'approve';
    proxy.mode = 'drop-answer';
    assert.equal((await t.sendPendingReversal()).status, 'failed');
    proxy.mode = 'duplicate-answer';
    const ar = await t.sendPendingReversal();
    assert.equal(ar.status, 'reversed');
    // The second 0410 arrived too (written right behind the first) and matched nothing.
    assert.ok(
      logLines.some((l) => l.includes('txn.unmatched-answer') && l.includes(`"stan":"${lost.stan}"`)),
    );
    // 3 tries with the answer dropped, then 1 answered (twice): 4 received, applied once.
    assert.deepEqual(posp.reversals.get(identity(t, lost.stan)), { received: 4, applied: true });
    // Nothing left to send: no 0400 goes out again.
    proxy.mode = 'pass';
    const before = seenOf(t).length;
    assert.equal((await t.sendPendingReversal()).status, 'none');
    assert.equal(seenOf(t).length, before);
    await t.close();
    const store = await openSqliteStore(join(dir, `t${seq}`, 'terminal.sqlite'), {
      migrations: TERMINAL_MIGRATIONS,
    });
    const done = await store.all<{ stan: number; response_code: string }>('SELECT * FROM reversals_done');
    await store.close();
    assert.deepEqual(
      done.map((d) => [d.stan, d.response_code]),
      [[Number(lost.stan), '00']],
    );
  });

  test('an 0410 that does not echo the amount is not believed', async () => {
    cleanLine();
    const { t } = await signedIn({ reversalMaxAttempts: 1 });
    posp.mode = 'silent';
    await t.purchase({ card: CARD, amountMinor: 300, pin: PIN });
    cleanLine();
    posp.echoOverride = { 4: '000000000001' };
    assert.equal((await t.sendPendingReversal()).status, 'failed');
    posp.echoOverride = undefined;
    assert.equal((await t.sendPendingReversal()).status, 'reversed');
    await t.close();
  });
});

describe('settlement (結算)', () => {
  test('balanced: 0500 with the batch totals, flag 1, the batch closes and the next opens', async () => {
    cleanLine();
    const { t } = await signedIn();
    const p1 = await t.purchase({ card: CARD, amountMinor: 10000, pin: PIN });
    await t.purchase({ card: CARD, amountMinor: 2345, pin: PIN });
    await t.voidPurchase({ card: CARD, originalStan: p1.stan });
    await t.refund({ card: CARD, amountMinor: 500, original: { rrn: p1.rrn!, date: '1125' } });
    // A reversed purchase is in no total.
    posp.mode = 'silent';
    await t.purchase({ card: CARD, amountMinor: 777, pin: PIN });
    cleanLine();
    const r = await t.settle();
    assert.equal(r.status, 'balanced');
    assert.equal(r.autoReversal?.status, 'reversed');
    assert.deepEqual(r.totals, {
      debitTotalMinor: 12345,
      debitCount: 2,
      creditTotalMinor: 10500,
      creditCount: 2,
    });
    const sent = seenOf(t).at(-1)!;
    assert.equal(sent.mti, '0500');
    assert.equal(sent.macOk, true);
    assert.equal(sent.fields[48], `000000012345002000000010500002${'0'.repeat(32)}`);
    assert.equal(sent.fields[60], '00000007201');
    assert.equal(r.batchNumber, '000007');
    assert.equal(r.nextBatchNumber, '000008');
    assert.equal((await t.status()).batchNumber, '000008');
    assert.deepEqual(await t.batchEntries(), []);
    assert.ok(t.settlementSlip(r).includes('对账平 / BALANCED'));
    const p = await t.purchase({ card: CARD, amountMinor: 1, pin: PIN });
    assert.equal(p.batchNumber, '000008');
    await t.close();
  });

  test('not balanced: flag 2, every entry uploaded (0320 201), end of batch (202, 48 = count), closed', async () => {
    cleanLine();
    const { t } = await signedIn();
    const p1 = await t.purchase({ card: CARD, amountMinor: 3000, pin: PIN });
    const p2 = await t.purchase({ card: CARD, amountMinor: 4000, pin: PIN });
    const v = await t.voidPurchase({ card: CARD, originalStan: p2.stan });
    posp.journal.delete(identity(t, p1.stan)); // the POSP lost one: its totals differ
    const before = seenOf(t).length;
    const r = await t.settle();
    assert.equal(r.status, 'uploaded');
    assert.equal(r.hostFlag, '2');
    assert.deepEqual(r.hostTotals, {
      debitTotalMinor: 4000,
      debitCount: 1,
      creditTotalMinor: 4000,
      creditCount: 1,
    });
    assert.equal(r.uploadedCount, 3);
    const sent = seenOf(t).slice(before);
    assert.deepEqual(
      sent.map((s) => [s.mti, s.fields[60], s.fields[11]]),
      [
        ['0500', '00000007201', r.stan],
        ['0320', '22000007201', p1.stan],
        ['0320', '22000007201', p2.stan],
        ['0320', '23000007201', v.stan],
        ['0320', '00000007202', sent.at(-1)!.fields[11]],
      ],
    );
    assert.ok(sent.every((s) => s.macOk === true));
    const up = sent[1]!;
    assert.equal(up.fields[2], PAN);
    assert.equal(up.fields[4], '000000003000');
    assert.equal(up.fields[37], p1.rrn);
    assert.equal(up.fields[38], 'A1B2C3');
    assert.equal(up.fields[39], '00');
    assert.equal(sent[3]!.fields[61], undefined); // 11 is the uploaded STAN; 61 would name the purchase
    assert.equal(sent[3]!.fields[3], '200000');
    assert.equal(sent[4]!.fields[48], '0003');
    assert.deepEqual(posp.endOfBatch.at(-1), 3);
    assert.equal(r.nextBatchNumber, '000008');
    assert.deepEqual(await t.batchEntries(), []);
    await t.close();
  });

  test('the POSP may name the next batch in 60.2 of the 0510', async () => {
    cleanLine();
    const { t } = await signedIn();
    await t.purchase({ card: CARD, amountMinor: 100, pin: PIN });
    posp.nextBatchOnClose = '000042';
    const r = await t.settle();
    posp.nextBatchOnClose = undefined;
    assert.equal(r.status, 'balanced');
    assert.equal(r.nextBatchNumber, '000042');
    assert.equal((await t.status()).batchNumber, '000042');
    await t.close();
  });

  test('a batch the 0500 could not carry (999 debits) refuses the next purchase', async () => {
    cleanLine();
    const { t, config } = await signedIn();
    await t.close();
    const store = await openSqliteStore(join(config.stateDir, 'terminal.sqlite'), {
      migrations: TERMINAL_MIGRATIONS,
    });
    await store.transaction(async (tx) => {
      for (let i = 1; i <= 999; i++)
        await tx.run(
          `INSERT INTO batch_entries (batch_number, stan, txn_type, mti, processing_code, amount_minor, pan_masked,
             card_sealed, local_year, local_date, local_time, rrn, response_code, created_at)
           VALUES (7, ?, 'purchase', '0200', '000000', 1, 'x', x'00', 2025, '1125', '103301', '', '00', '')`,
          [i],
        );
    });
    await store.close();
    const t2 = await open(config);
    const before = seenOf(t2).length;
    await assert.rejects(t2.purchase({ card: CARD, amountMinor: 1, pin: PIN }), {
      code: 'TERMINAL_BATCH_FULL',
      message:
        'batch: a batch holds at most 999 debits totalling at most 999999999999 minor units: settle first',
    });
    assert.equal(seenOf(t2).length, before);
    await t2.close();
  });

  test('no answer to the 0500: bounded tries, the batch stays open; a later settle() closes it', async () => {
    cleanLine();
    const { t } = await signedIn({ settlementMaxAttempts: 2, answerTimeoutMs: 200 });
    await t.purchase({ card: CARD, amountMinor: 100, pin: PIN });
    posp.modes['0500'] = 'silent';
    const before = seenOf(t).length;
    const r = await t.settle();
    assert.equal(r.status, 'failed');
    assert.equal(r.failure, 'no-answer');
    assert.equal(seenOf(t).length - before, 2);
    assert.equal((await t.status()).batchNumber, '000007');
    assert.equal((await t.batchEntries()).length, 1);
    assert.ok(t.settlementSlip(r).includes('BATCH STILL OPEN'));
    cleanLine();
    assert.equal((await t.settle()).status, 'balanced');
    await t.close();
  });

  test('an upload whose 0330 never comes leaves the batch open', async () => {
    cleanLine();
    const { t } = await signedIn({ settlementMaxAttempts: 1, answerTimeoutMs: 200 });
    const p = await t.purchase({ card: CARD, amountMinor: 100, pin: PIN });
    posp.journal.delete(identity(t, p.stan));
    posp.modes['0320'] = 'silent';
    const r = await t.settle();
    assert.equal(r.status, 'failed');
    assert.equal(r.failure, 'upload-failed');
    assert.equal((await t.batchEntries()).length, 1);
    await t.close();
  });

  test('a pending reversal that cannot be sent blocks settlement', async () => {
    cleanLine();
    const { t } = await signedIn({ reversalMaxAttempts: 1 });
    posp.mode = 'silent';
    await t.purchase({ card: CARD, amountMinor: 100, pin: PIN });
    cleanLine();
    posp.modes['0400'] = 'silent';
    await assert.rejects(t.settle(), { code: 'TERMINAL_REVERSAL_PENDING' });
    cleanLine();
    await t.close();
  });
});

describe('settlement field 48', () => {
  test('62 digits: domestic totals and flag, then a zero foreign block', () => {
    const v = formatSettlementField48({
      debitTotalMinor: 12345,
      debitCount: 2,
      creditTotalMinor: 500,
      creditCount: 1,
    });
    assert.equal(v, '0000000123450020000000005000010' + '0'.repeat(31));
    assert.equal(v.length, 62);
  });

  test('property: format then parse gives the totals back', () => {
    const amount = fc.integer({ min: 0, max: 999_999_999_999 });
    const count = fc.integer({ min: 0, max: 999 });
    fc.assert(
      fc.property(amount, count, amount, count, fc.constantFrom('0', '1', '2', '3'), (a, b, c, d, flag) => {
        const totals = { debitTotalMinor: a, debitCount: b, creditTotalMinor: c, creditCount: d };
        const f = flag as '0' | '1' | '2' | '3';
        assert.deepEqual(parseSettlementField48(formatSettlementField48(totals, f)), { totals, flag });
      }),
    );
  });

  test('totals above n3 / n12 are refused', () => {
    assert.throws(
      () =>
        formatSettlementField48({
          debitTotalMinor: 1,
          debitCount: 1000,
          creditTotalMinor: 0,
          creditCount: 0,
        }),
      { code: 'TERMINAL_BATCH_FULL', message: 'totals.debitCount: must be an integer from 0 to 999' },
    );
    assert.throws(
      () =>
        formatSettlementField48({
          debitTotalMinor: 1_000_000_000_000,
          debitCount: 1,
          creditTotalMinor: 0,
          creditCount: 0,
        }),
      {
        code: 'TERMINAL_BATCH_FULL',
        message: 'totals.debitTotalMinor: must be an integer from 0 to 999999999999',
      },
    );
  });

  test('purchases are debits; voids and refunds are credits', () => {
    assert.deepEqual(
      computeSettlementTotals([
        { type: 'purchase', amountMinor: 10 },
        { type: 'void', amountMinor: 10 },
        { type: 'refund', amountMinor: 3 },
        { type: 'purchase', amountMinor: 7 },
      ]),
      { debitTotalMinor: 17, debitCount: 2, creditTotalMinor: 13, creditCount: 2 },
    );
    assert.equal(parseSettlementField48('123'), undefined);
  });
});

describe('secrets after reversals and settlement', () => {
  test('no PAN, PIN, track data or key in the logs or the SQLite files', async () => {
    cleanLine();
    const { t, config } = await signedIn();
    const p = await t.purchase({ card: CARD, amountMinor: 4242, pin: PIN });
    posp.mode = 'silent';
    await t.purchase({ card: CARD, amountMinor: 1, pin: PIN });
    cleanLine();
    await t.voidPurchase({ card: CARD, originalStan: p.stan, pin: PIN });
    posp.journal.delete(identity(t, p.stan));
    assert.equal((await t.settle()).status, 'uploaded');
    await t.close();
    const logs = logLines.join('');
    assert.ok(logs.includes('settle.result') && logs.includes('reversal.result'));
    const files = ['terminal.sqlite', 'terminal.sqlite-wal', 'pinpad.sealed']
      .map((f) => join(config.stateDir, f))
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
      for (const k of [posp.tmk, posp.pik!, posp.mak!, posp.tdk!]) {
        assert.equal(hay.includes(Buffer.from(k)), false);
        assert.equal(text.toUpperCase().includes(toHex(k)), false);
      }
    }
  });
});

describe('refund advice (0220 repeated as 0221)', () => {
  const ORIGINAL = { rrn: '000000000777', date: '1125', batchNumber: 7, stan: 1 };

  test('answer MAC failed: the advice is kept and repeated as 0221 (same 11, 12, 13) before the next purchase; the refund is recorded approved with the first RRN', async () => {
    cleanLine();
    const { t } = await signedIn();
    posp.modes = { '0220': 'bad-mac' };
    const lost = await t.refund({ card: CARD, amountMinor: 300, pin: PIN, original: ORIGINAL });
    assert.equal(lost.status, 'mac-failed');
    assert.equal(lost.refundAdvicePending, true);
    assert.equal(lost.reversalPending, false, 'a refund is not reversible');
    const owed = await t.pendingRefundAdvice();
    assert.equal(owed?.stan, lost.stan);
    assert.equal(owed?.amountMinor, 300);
    assert.equal(JSON.stringify(owed).includes(PAN), false, 'no PAN in the record');
    const credited = posp.adviceRrns.get(identity(t, lost.stan));
    assert.ok(credited, 'the POSP (issuer side) did the refund');
    cleanLine();
    const next = await t.purchase({ card: CARD, amountMinor: 900, pin: PIN });
    assert.equal(next.status, 'approved');
    const adv = next.refundAdvice!;
    assert.equal(adv.status, 'answered');
    assert.equal(adv.attempts, 1);
    assert.equal(adv.result?.status, 'approved');
    assert.equal(adv.result?.rrn, credited, 'the first answer again, not a second refund');
    assert.equal(adv.result?.stan, lost.stan);
    const [first, repeat, purchase] = seenOf(t).slice(-3);
    assert.equal(first!.mti, '0220');
    assert.equal(repeat!.mti, '0221');
    assert.equal(repeat!.macOk, true);
    for (const f of [2, 3, 4, 11, 12, 13, 22, 25, 37, 41, 42, 49, 60, 61])
      assert.equal(repeat!.fields[f], first!.fields[f], `field ${f} repeated`);
    assert.equal(repeat!.fields[35], undefined, 'no track data kept');
    assert.equal(repeat!.fields[52], undefined, 'no PIN block kept');
    assert.equal(purchase!.mti, '0200');
    assert.equal(await t.pendingRefundAdvice(), undefined);
    assert.deepEqual(
      (await t.batchEntries()).map((e) => [e.type, e.amountMinor]),
      [
        ['refund', 300],
        ['purchase', 900],
      ],
    );
    const slips = t.slips(adv.result!);
    assert.equal(slips.merchant.includes(PAN) || slips.cardholder.includes(PAN), false);
    assert.equal([...posp.journal.keys()].filter((k) => k === identity(t, lost.stan)).length, 1);
    await t.close();
  });

  test('no answer to the 0220 nor to its repeats: the next purchase is refused after reversalMaxAttempts tries; later the repeat is answered; settlement counts it', async () => {
    cleanLine();
    const { t } = await signedIn({ reversalMaxAttempts: 2 });
    posp.modes = { '0220': 'silent', '0221': 'silent' };
    const lost = await t.refund({ card: CARD, amountMinor: 250, original: ORIGINAL });
    assert.equal(lost.status, 'no-answer');
    assert.equal(lost.refundAdvicePending, true);
    await assert.rejects(t.purchase({ card: CARD, amountMinor: 5, pin: PIN }), {
      code: 'TERMINAL_REVERSAL_PENDING',
      message:
        'terminal: the pending refund advice was not answered after 2 attempts: it is repeated before the next online transaction',
    });
    assert.equal((await t.pendingRefundAdvice())?.attempts, 2);
    assert.equal(seenOf(t).filter((s) => s.mti === '0221').length, 2);
    cleanLine();
    const st = await t.settle();
    assert.equal(st.refundAdvice?.status, 'answered');
    assert.equal(st.refundAdvice?.result?.status, 'approved');
    assert.equal(st.totals.creditCount, 1, 'the refund learned by the repeat is in the totals');
    assert.equal(st.totals.creditTotalMinor, 250);
    assert.equal(await t.pendingRefundAdvice(), undefined);
    await t.close();
  });

  test('a refund the line refused before sending (POSP down) leaves no advice', async () => {
    cleanLine();
    const { t } = await signedIn();
    const port = t.config.posp.port;
    (t.config.posp as { port: number }).port = 1;
    const r = await t.refund({ card: CARD, amountMinor: 100, original: ORIGINAL }).catch((e) => e);
    (t.config.posp as { port: number }).port = port;
    assert.equal(r.status, 'no-answer');
    assert.equal(r.refundAdvicePending, undefined);
    assert.equal(await t.pendingRefundAdvice(), undefined);
    await t.close();
  });
});
