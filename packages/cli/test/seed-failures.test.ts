/**
 * The seed's two failures (DOMAIN.md "The two failures the seed is about"), reproduced on an in-process
 * network (real HSM over TCP, issuers, switch, POSP, terminals; loopback) with a @openposp/testkit
 * FaultProxy on one leg, and healed without a person:
 * (a) the issuer debits, the answer is lost before the terminal (drop after forwarding, terminal->POSP
 *     leg): the terminal's automatic reversal before its next transaction releases it (自動沖正成功);
 * (b) the debit is posted at the issuer, the answer is lost between switch and POSP (drop after
 *     forwarding, POSP->switch leg): the terminal gets 91 and no slip, the POSP's own advice (store and
 *     forward) reverses it;
 * (c) a refund (0220, not reversible) whose answer is lost: the terminal repeats its advice as 0221 and
 *     is told the first answer (its slip then), never a second credit.
 * `posp txn show` (showTransaction) tells the true state at each party along the way; each case ends with
 * the card's balance restored and `reconcile --apply` leaving nothing unexplained.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PINPAD_SCRYPT_N_MIN, type Terminal } from '@openposp/terminal';
import type { FaultPlan } from '@openposp/testkit';
import { type ChaosNetwork, type LegName, startChaosNetwork } from '../src/chaos/network.js';
import { demoCard, track2Of } from '../src/network/cards.js';
import type { NetworkManifest } from '../src/network/layout.js';
import { setupNetwork } from '../src/network/setup.js';
import { showTransaction } from '../src/network/txn.js';
import { runReconcile } from '../src/reconcile.js';

const CARD = demoCard('ok');
const INPUT = { track2: track2Of(CARD) };
/** How long the test waits for the POSP's store and forward to deliver its advice. */
const SAF_WAIT_MS_MAX = 10_000;

let dir: string;
let m: NetworkManifest;
let net: ChaosNetwork;
let t: Terminal;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'seed-failures-'));
  m = await setupNetwork(dir, { pinPadScryptN: PINPAD_SCRYPT_N_MIN });
  net = await startChaosNetwork(m, 1);
  t = await net.openTerminal(m.terminals[0]!.terminalId);
  assert.equal((await t.signIn()).status, 'approved');
});
after(async () => {
  await t?.close().catch(() => {});
  await net?.close().catch(() => {});
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Arms a one-shot `drop-after` on the next request crossing `leg`; returns how many it dropped. */
function dropNextRequestAfterForwarding(leg: LegName): { dropped: number } {
  const proxy = net.proxies.get(leg)!;
  const state = { dropped: 0 };
  const plan: FaultPlan = ({ direction }) => {
    if (direction !== 'request' || state.dropped > 0) return { kind: 'pass' };
    state.dropped++;
    return { kind: 'drop-after' };
  };
  proxy.plan = plan;
  return state;
}

function lineClean(): void {
  for (const p of net.proxies.values()) p.plan = () => ({ kind: 'pass' });
}

async function balance(): Promise<number> {
  const r = await t.balanceInquiry({ card: INPUT, pin: CARD.pin });
  assert.equal(r.status, 'approved');
  return r.balanceMinor!;
}

/** How long the test waits for the POSP to finish a request whose terminal connection was cut. */
const POSP_FINISH_MS_MAX = 5_000;

const show = (stan: string, date: string) =>
  showTransaction(m, { terminalId: t.config.terminalId, stan, date });

/**
 * `txn show` once the POSP has finished with the request: a drop after forwarding cuts the terminal off
 * while the POSP is still waiting for the switch, so its journal says `received`/`sent` for a moment.
 */
async function showFinished(stan: string, date: string): ReturnType<typeof show> {
  const deadline = Date.now() + POSP_FINISH_MS_MAX;
  for (;;) {
    const r = await show(stan, date);
    const state = r.posp?.state;
    if ((state !== undefined && state !== 'received' && state !== 'sent') || Date.now() > deadline) return r;
    await new Promise((res) => setTimeout(res, 50));
  }
}

type Row = Record<string, unknown>;
/** The issuer's view of the purchase: its transactions of that type that moved money. */
const debits = (r: { issuer: { transactions: Row[] } | null }) =>
  (r.issuer?.transactions ?? []).filter((x) => x.type === 'purchase' && x.moneyMoved === true);
const issuerState = (r: { issuer: { transactions: Row[] } | null }) =>
  (r.issuer?.transactions ?? []).find((x) => x.type === 'purchase')?.state;

test('(a) answer lost before the terminal: debited at the issuer, no slip; the automatic reversal releases it (自動沖正成功)', async () => {
  lineClean();
  const opening = await balance();
  const cut = dropNextRequestAfterForwarding('terminal-posp');
  const lost = await t.purchase({ card: INPUT, amountMinor: 1234, pin: CARD.pin });
  lineClean();
  assert.equal(cut.dropped, 1);
  assert.equal(lost.status, 'no-answer');
  assert.equal(lost.reversalPending, true);
  // The true state, party by party: approved at the POSP and the issuer, nothing on the terminal's slips.
  const mid = await showFinished(lost.stan, lost.localDate);
  assert.equal(mid.posp?.state, 'answered');
  assert.equal(mid.posp?.responseCode, '00', 'approved at the POSP');
  assert.equal(mid.terminal?.batchEntry, null, 'no slip');
  assert.notEqual(mid.terminal?.pendingReversal, null, 'the terminal owes a reversal');
  assert.equal(debits(mid).length, 1, 'the issuer debited once');
  assert.equal(issuerState(mid), 'approved');
  // The next transaction sends the reversal first.
  const next = await t.balanceInquiry({ card: INPUT, pin: CARD.pin });
  assert.equal(next.autoReversal?.status, 'reversed');
  assert.equal(next.autoReversal?.message, '自動沖正成功');
  assert.equal(next.balanceMinor, opening, 'balance restored');
  const end = await show(lost.stan, lost.localDate);
  assert.equal(end.terminal?.pendingReversal, null);
  assert.equal(end.posp?.reversalState, 'reversed');
  assert.equal(issuerState(end), 'reversed', 'released at the issuer');
});

test("(b) answer lost between switch and POSP: the terminal gets 91 and no slip; the POSP's own advice reverses the debit", async () => {
  lineClean();
  const opening = await balance();
  const cut = dropNextRequestAfterForwarding('posp-switch');
  const r = await t.purchase({ card: INPUT, amountMinor: 4321, pin: CARD.pin });
  lineClean();
  assert.equal(cut.dropped, 1);
  assert.equal(r.status, 'declined');
  assert.equal(r.responseCode, '91');
  assert.equal(r.reversalPending, false, 'a valid answer: the terminal does not reverse');
  assert.ok(!(await t.batchEntries()).some((e) => e.stan === r.stan), 'no approval slip');
  const mid = await showFinished(r.stan, r.localDate);
  assert.equal(mid.posp?.state, 'unknown');
  assert.ok(['owed', 'reversed'].includes(String(mid.posp?.reversalState)), String(mid.posp?.reversalState));
  // The POSP's store and forward delivers its 0420 (the link reconnects by itself).
  const deadline = Date.now() + SAF_WAIT_MS_MAX;
  while ((await net.posp.saf.list('pending')).length > 0 && Date.now() < deadline)
    await new Promise((res) => setTimeout(res, 100));
  assert.equal((await net.posp.saf.list('pending')).length, 0, 'the advice was delivered');
  assert.equal((await net.posp.saf.list('operator')).length, 0);
  const end = await show(r.stan, r.localDate);
  // The issuer posted the debit (its posting stays) and the POSP's advice reversed it.
  const posted = (end.issuer?.postings ?? []).filter((x) => x.accountId !== 'clearing-switch');
  assert.deepEqual(
    posted.map((x) => [x.kind, x.amountMinor]),
    [
      ['purchase', -4321],
      ['reversal', 4321],
    ],
  );
  assert.equal(end.posp?.reversalState, 'reversed');
  assert.equal(issuerState(end), 'reversed', "reversed at the issuer by the POSP's advice");
  assert.equal(await balance(), opening, 'balance restored');
});

test('(c) a refund whose answer is lost: repeated as 0221 before the next transaction, told the first answer, credited once', async () => {
  lineClean();
  const opening = await balance();
  const p = await t.purchase({ card: INPUT, amountMinor: 900, pin: CARD.pin });
  assert.equal(p.status, 'approved');
  const cut = dropNextRequestAfterForwarding('terminal-posp');
  const lost = await t.refund({
    card: INPUT,
    amountMinor: 300,
    original: { rrn: p.rrn!, date: p.localDate, stan: p.stan, batchNumber: p.batchNumber },
  });
  lineClean();
  assert.equal(cut.dropped, 1);
  assert.equal(lost.status, 'no-answer');
  assert.equal(lost.refundAdvicePending, true);
  const mid = await showFinished(lost.stan, lost.localDate);
  assert.equal(mid.posp?.state, 'answered');
  assert.equal(mid.posp?.responseCode, '00', 'credited upstream');
  assert.equal(mid.terminal?.batchEntry, null, 'no slip yet');
  const next = await t.balanceInquiry({ card: INPUT, pin: CARD.pin });
  assert.equal(next.refundAdvice?.status, 'answered');
  assert.equal(next.refundAdvice?.result?.status, 'approved');
  assert.equal(next.refundAdvice?.result?.rrn, mid.rrn, 'the first answer again');
  assert.equal(next.balanceMinor, opening - 900 + 300, 'credited once');
  const end = await show(lost.stan, lost.localDate);
  assert.notEqual(end.terminal?.batchEntry, null, 'the slip now');
  // Leave the card as found: void the rest is not possible after a refund; refund the remainder.
  const rest = await t.refund({
    card: INPUT,
    amountMinor: 600,
    original: { rrn: p.rrn!, date: p.localDate, stan: p.stan, batchNumber: p.batchNumber },
  });
  assert.equal(rest.status, 'approved');
  assert.equal(await balance(), opening, 'balance restored');
});

test('reconciliation of the day: nothing unexplained', async () => {
  await t.close();
  await net.close();
  const d = new Date();
  const date = `${d.getFullYear()}${String(d.getMonth() + 1).padStart(2, '0')}${String(d.getDate()).padStart(2, '0')}`;
  const r = await runReconcile({ dir, date, apply: true });
  assert.deepEqual(r.unexplained, []);
});
