/**
 * A chaos run (issue 6 §6): a fresh network in a directory, a FaultProxy on every leg, N seeded
 * transactions over the demo terminals and cards with faults at rate R at every stage and occasional
 * kills of the POSP or an issuer, then the healing phases with the faults off (the terminals' pending
 * reversals, the POSP's store and forward, settlement, reconciliation), then the auditor.
 *
 * Fault rate: R is the probability that one transaction meets a fault somewhere on its path. A
 * financial transaction is 6 messages (3 legs, request and response), so each message is faulted with
 * probability p = 1 - (1 - R)^(1/6).
 *
 * Replay: the workload (which terminal, card, type and amount the i-th transaction is, where the kills
 * fall) and each proxy's decision stream are functions of the seed. Three terminals run at once, so on
 * the shared legs the order of messages, and therefore which message gets which decision, depends on
 * timing: a replay is the same workload under the same fault mix, not a byte-identical rerun.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  PINPAD_SCRYPT_N_MIN,
  type RefundAdviceResult,
  type Terminal,
  type TerminalConnection,
  type TransactionResult,
} from '@openposp/terminal';
import { createPrng, FAULT_KINDS, type Prng, randomFaultPlan } from '@openposp/testkit';
import { type DemoCard, demoCard, track2Of } from '../network/cards.js';
import { setupNetwork } from '../network/setup.js';
import { audit, type CardExpectation, cardKey, type InvariantResult } from './auditor.js';
import { CHAOS_TIMEOUTS_MS, type ChaosNetwork, type LegName, startChaosNetwork } from './network.js';

/** Bounds of the options. */
export const CHAOS_TRANSACTIONS_MAX = 1_000_000;
/** Rounds of sending pending reversals at the end (faults off) before the auditor looks. */
export const CHAOS_REVERSAL_ROUNDS_MAX = 5;
/** How long the end waits for the POSP's store and forward queue to drain. */
export const CHAOS_SAF_DRAIN_MS_MAX = 15_000;
/** How long a killed service stays down. */
export const CHAOS_DOWN_MS = 300;
/** One kill per this many faulted transactions (at least one when R > 0 and N >= 50). */
export const CHAOS_TRANSACTIONS_PER_KILL = 30;

export interface ChaosOptions {
  seed: number;
  transactions: number;
  faultRate: number;
  /** The network's directory (default: a new one under the OS temp dir). */
  dir?: string;
  /** How the terminals hold their connection to the POSP (terminal config `connection`). */
  connection?: TerminalConnection;
  /** Called after each transaction (progress bar). */
  onProgress?: (done: number, total: number, faults: number) => void;
  /** Phase lines (stderr). */
  say?: (line: string) => void;
}

export interface ChaosReport {
  seed: number;
  transactions: number;
  faultsInjected: number;
  reversals: number;
  singleSided: { found: number; resolved: number };
  invariants: { id: string; ok: boolean }[];
  ok: boolean;
  /** Not in --json: details for the human summary. */
  details: {
    dir: string;
    outcomes: Record<string, number>;
    faultsByKind: Record<string, number>;
    kills: string[];
    phases: string[];
    failures: InvariantResult[];
    durationMs: number;
  };
}

type Kind = 'purchase' | 'balance-inquiry' | 'void' | 'refund';

interface Approved {
  rrn: string;
  stan: string;
  batchNumber: string;
  localDate: string;
  amountMinor: number;
  refundedMinor: number;
  card: DemoCard;
  merchantId: string;
  /** Its batch was settled: a refund is still possible, a void no longer. */
  settled?: boolean;
}

/** YYYYMMDD of the local clock (the POSP's settlement date of a transaction made now). */
const localDate = (d: Date): string =>
  `${d.getFullYear()}${String(d.getMonth() + 1).padStart(2, '0')}${String(d.getDate()).padStart(2, '0')}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The cards the workload uses: both issuers, a limit and a low-funds card. */
const CHAOS_CARD_ROLES = ['ok', 'pvv', 'limit', 'low-funds'] as const;

export function delayFor(leg: LegName): number {
  const wait =
    leg === 'terminal-posp'
      ? CHAOS_TIMEOUTS_MS.terminalAnswer
      : leg === 'posp-switch'
        ? CHAOS_TIMEOUTS_MS.pospToSwitch
        : CHAOS_TIMEOUTS_MS.switchToIssuer;
  return wait + CHAOS_TIMEOUTS_MS.delayBeyond;
}

/** Per-message fault probability for a per-transaction rate over 6 messages. */
export function perMessageRate(faultRate: number): number {
  return faultRate <= 0 ? 0 : 1 - (1 - faultRate) ** (1 / 6);
}

type DuckTerminal = Terminal & {
  sendPendingReversal?: () => Promise<{ status: string }>;
  settle?: () => Promise<{ status: string; refundAdvice?: RefundAdviceResult }>;
};

/** A refund whose answer was lost: its advice is repeated (0221) by the terminal until answered. */
interface LostRefund {
  orig: Approved;
  amountMinor: number;
  merchantId: string;
}

/**
 * What a repeated refund advice finally told the terminal: approved, the slip is printed now (it counts as
 * told approved); declined, nothing moved. `lost` is the terminal's one refund awaiting its answer.
 */
function noteRefundAdvice(
  adv: RefundAdviceResult | undefined,
  lost: Map<string, LostRefund>,
  terminalId: string,
  approvedRefunds: Map<string, { amountMinor: number; merchantId: string }>,
): void {
  if (adv?.status !== 'answered' || !adv.result) return;
  const l = lost.get(terminalId);
  lost.delete(terminalId);
  const x = adv.result;
  if (x.status !== 'approved' || x.responseCode !== '00' || !x.rrn || !l) return;
  l.orig.refundedMinor += l.amountMinor;
  approvedRefunds.set(x.rrn, { amountMinor: l.amountMinor, merchantId: l.merchantId });
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const t0 = Date.now();
  const say = opts.say ?? (() => {});
  const phases: string[] = [];
  const phase = (line: string) => {
    phases.push(line);
    say(line);
  };
  const rng = createPrng(opts.seed);
  const dates = new Set<string>([localDate(new Date())]);
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'posp-chaos-'));
  phase(`setting up a network in ${dir}`);
  const m = await setupNetwork(dir, { pinPadScryptN: PINPAD_SCRYPT_N_MIN });
  const net = await startChaosNetwork(m, opts.seed);
  const terminals = new Map<string, DuckTerminal>();
  const outcomes: Record<string, number> = {};
  const kills: string[] = [];
  try {
    for (const t of m.terminals)
      terminals.set(t.terminalId, await net.openTerminal(t.terminalId, opts.connection));
    for (const [id, t] of terminals) {
      const r = await t.signIn();
      if (r.status !== 'approved') throw new Error(`${id}: sign-in ${r.status} before the run`);
    }
    // Opening balances (faults off, nothing moved yet).
    const cards: CardExpectation[] = [];
    const cardOf = new Map<string, CardExpectation>();
    for (const role of CHAOS_CARD_ROLES) {
      const c = demoCard(role);
      const v = await net.issuers.get(c.issuer!)!.issuer.card(c.pan);
      if (!v) throw new Error(`card ${role} missing at ${c.issuer}`);
      const e: CardExpectation = {
        issuer: c.issuer!,
        accountId: v.accountId,
        maskedPan: v.maskedPan,
        openingLedgerMinor: v.balance.ledgerMinor,
        toldPurchasesMinor: 0,
        toldRefundsMinor: 0,
      };
      cards.push(e);
      cardOf.set(c.pan, e);
    }

    // Faults on.
    const p = perMessageRate(opts.faultRate);
    net.setPlans((leg) => randomFaultPlan({ rate: p, kinds: FAULT_KINDS, delayMs: delayFor(leg) }));

    // Kills at seeded transaction indexes.
    const killCount =
      opts.faultRate > 0 && opts.transactions >= 50
        ? Math.max(1, Math.floor((opts.transactions * opts.faultRate) / CHAOS_TRANSACTIONS_PER_KILL))
        : 0;
    const killRng = rng.fork('kills');
    const killAt = new Map<number, string>();
    for (let k = 0; k < killCount; k++) {
      const at = killRng.int(opts.transactions);
      const what = killRng.chance(0.5) ? 'posp' : killRng.pick(m.issuers.map((i) => i.id));
      killAt.set(at, what);
    }

    const approvedByTerminal = new Map<string, Approved[]>();
    const told = {
      approvedPurchases: new Map<string, { amountMinor: number; merchantId: string; accountId: string }>(),
      approvedRefunds: new Map<string, { amountMinor: number; merchantId: string }>(),
      pendingReversals: [] as string[],
      lostRefunds: new Map<string, LostRefund>(),
    };
    let next = 0;
    let done = 0;
    const kill = async (what: string) => {
      kills.push(what);
      if (what === 'posp') await net.killPosp(CHAOS_DOWN_MS);
      else await net.killIssuer(what, CHAOS_DOWN_MS);
    };
    let killChain: Promise<void> = Promise.resolve();
    const faults = () => [...net.proxies.values()].reduce((s, x) => s + x.counters.injected, 0);

    const lane = async (terminalId: string) => {
      const t = terminals.get(terminalId)!;
      const merchantId = m.terminals.find((x) => x.terminalId === terminalId)!.merchantId;
      const mine: Approved[] = [];
      approvedByTerminal.set(terminalId, mine);
      for (;;) {
        const i = next++;
        if (i >= opts.transactions) return;
        const k = killAt.get(i);
        // Kills run one after another (two kills of one service at once would race for its port).
        if (k !== undefined)
          killChain = killChain.then(() =>
            kill(k).catch((e) => void kills.push(`${k} restart failed: ${String(e)}`)),
          );
        const r = rng.fork(`txn:${i}`);
        let key: string;
        try {
          const res = await oneTransaction(t, r, mine, merchantId, cardOf, told, terminalId);
          key = `${res.type} ${res.status}${res.responseCode ? ` ${res.responseCode}` : ''}`;
        } catch (e) {
          // The terminal refusing to start (e.g. TERMINAL_REVERSAL_PENDING: its reversal is not yet
          // acknowledged) is an outcome of the run, not a failure of it.
          const code = (e as { code?: unknown }).code;
          if (typeof code !== 'string' || !code.startsWith('TERMINAL_')) throw e;
          key = `refused by the terminal ${code}`;
          if (code === 'TERMINAL_BATCH_FULL' && t.settle) {
            // End of the merchant's batch: settle it as the cashier would, and the next one opens. Voids
            // are of the current batch only, so the settled purchases can still be refunded, not voided.
            const st = await t.settle().catch(() => undefined);
            noteRefundAdvice(st?.refundAdvice, told.lostRefunds, terminalId, told.approvedRefunds);
            if (st && (st.status === 'balanced' || st.status === 'uploaded'))
              for (const a of mine) a.settled = true;
            const sk = `settlement ${st?.status ?? 'refused'}`;
            outcomes[sk] = (outcomes[sk] ?? 0) + 1;
          }
        }
        outcomes[key] = (outcomes[key] ?? 0) + 1;
        done++;
        opts.onProgress?.(done, opts.transactions, faults());
      }
    };
    phase(
      `running ${opts.transactions} transactions on ${terminals.size} terminals, fault rate ${opts.faultRate} (${(p * 100).toFixed(2)}% per message), ${killCount} kills`,
    );
    await Promise.all([...terminals.keys()].map((id) => lane(id)));
    await killChain;

    dates.add(localDate(new Date()));
    // Healing, faults off.
    net.setPlans(undefined);
    const faultsInjected = faults();
    phase(`workload done: ${faultsInjected} faults injected; healing with faults off`);
    let reversalsSent = 0;
    for (let round = 0; round < CHAOS_REVERSAL_ROUNDS_MAX; round++) {
      let pending = 0;
      for (const [id, t] of terminals) {
        if (!(await t.pendingReversal())) continue;
        pending++;
        try {
          if (t.sendPendingReversal) {
            const r = await t.sendPendingReversal();
            if (r.status === 'reversed') reversalsSent++;
          } else {
            // Before the terminal sends reversals itself, a sign-in is where it would (docs/network.md).
            await t.signIn();
          }
        } catch (e) {
          phase(`${id}: reversal refused: ${(e as { code?: string }).code ?? String(e)}`);
        }
        if (await t.pendingReversal()) phase(`${id}: reversal still pending after round ${round + 1}`);
      }
      if (pending === 0) break;
    }
    // Refund advices whose answer was lost: repeated (0221) until answered, like the reversals.
    for (let round = 0; round < CHAOS_REVERSAL_ROUNDS_MAX; round++) {
      let pending = 0;
      for (const [id, t] of terminals) {
        if (!(await t.pendingRefundAdvice())) continue;
        pending++;
        const adv = await t.sendPendingRefundAdvice().catch((e) => {
          phase(`${id}: refund advice refused: ${(e as { code?: string }).code ?? String(e)}`);
          return undefined;
        });
        noteRefundAdvice(adv, told.lostRefunds, id, told.approvedRefunds);
      }
      if (pending === 0) break;
    }
    for (const [id, t] of terminals) if (await t.pendingReversal()) told.pendingReversals.push(id);
    for (const [id, t] of terminals)
      if (await t.pendingRefundAdvice()) told.pendingReversals.push(`${id} (refund advice)`);
    phase(
      `terminal reversals: ${reversalsSent} sent at the end, ${told.pendingReversals.length} terminals still pending`,
    );

    const safPending = await drainStoreAndForward(net);
    phase(
      safPending === undefined
        ? 'POSP store and forward: not available'
        : `POSP store and forward: ${safPending} advices still owed`,
    );

    const settlement = await pospSettlement(net, [...dates]);
    for (const [id, t] of terminals) {
      if (!t.settle) {
        phase('settlement: the terminal has no settle() yet');
        break;
      }
      try {
        const s = await t.settle();
        phase(`${id} settlement: ${s.status}`);
      } catch (e) {
        phase(`${id} settlement refused by the terminal: ${(e as { code?: string }).code ?? String(e)}`);
      }
    }
    for (const t of terminals.values()) await t.close();
    terminals.clear();

    // Expected balances from what the terminals were told.
    for (const [, pch] of told.approvedPurchases) {
      const c = cards.find((x) => cardKey(x) === pch.accountId)!;
      c.toldPurchasesMinor += pch.amountMinor;
    }
    for (const list of approvedByTerminal.values())
      for (const a of list) {
        const c = cardOf.get(a.card.pan)!;
        c.toldRefundsMinor += a.refundedMinor;
      }

    await net.close();
    const recon = await reconcile(dir, [...dates], phase);
    const { invariants, singleSidedFound } = await audit({
      m,
      cards,
      told,
      ...(recon ? { reconUnexplained: recon.unexplained } : {}),
      ...(safPending !== undefined ? { safPending } : {}),
      ...(settlement ? { settlement } : {}),
    });
    const reversals = await countIssuerReversals(m);
    const ok = invariants.every((x) => x.ok);
    const faultsByKind: Record<string, number> = {};
    for (const [leg, px] of net.proxies)
      for (const kind of FAULT_KINDS)
        for (const d of ['request', 'response'] as const) {
          const n = px.counters.faults[kind][d];
          if (n) faultsByKind[`${leg} ${d} ${kind}`] = n;
        }
    return {
      seed: opts.seed,
      transactions: opts.transactions,
      faultsInjected,
      reversals,
      singleSided: { found: recon?.found ?? singleSidedFound, resolved: recon?.resolved ?? 0 },
      invariants: invariants.map((x) => ({ id: x.id, ok: x.ok })),
      ok,
      details: {
        dir,
        outcomes,
        faultsByKind,
        kills,
        phases,
        failures: invariants.filter((x) => !x.ok),
        durationMs: Date.now() - t0,
      },
    };
  } catch (e) {
    for (const t of terminals.values()) await t.close().catch(() => {});
    await net.close().catch(() => {});
    throw e;
  }
}

/** One seeded transaction on terminal `t`; updates what the terminal was told. */
async function oneTransaction(
  t: Terminal,
  r: Prng,
  mine: Approved[],
  merchantId: string,
  cardOf: Map<string, CardExpectation>,
  told: {
    approvedPurchases: Map<string, { amountMinor: number; merchantId: string; accountId: string }>;
    approvedRefunds: Map<string, { amountMinor: number; merchantId: string }>;
    lostRefunds: Map<string, LostRefund>;
  },
  terminalId: string,
): Promise<TransactionResult> {
  const x = await oneTransactionOf(t, r, mine, merchantId, cardOf, told, terminalId);
  // A refund advice repeated before this transaction (its answer had been lost) may now be approved.
  noteRefundAdvice(x.refundAdvice, told.lostRefunds, terminalId, told.approvedRefunds);
  return x;
}

async function oneTransactionOf(
  t: Terminal,
  r: Prng,
  mine: Approved[],
  merchantId: string,
  cardOf: Map<string, CardExpectation>,
  told: {
    approvedPurchases: Map<string, { amountMinor: number; merchantId: string; accountId: string }>;
    approvedRefunds: Map<string, { amountMinor: number; merchantId: string }>;
    lostRefunds: Map<string, LostRefund>;
  },
  terminalId: string,
): Promise<TransactionResult> {
  const roll = r.float();
  const kind: Kind =
    roll < 0.08 && mine.length > 0
      ? 'void'
      : roll < 0.14 && mine.length > 0
        ? 'refund'
        : roll < 0.22
          ? 'balance-inquiry'
          : 'purchase';
  const card = demoCard(r.pick(CHAOS_CARD_ROLES));
  const input = { track2: track2Of(card) };
  const approvedOk = (x: TransactionResult) => x.status === 'approved' && x.responseCode === '00';
  if (kind === 'purchase') {
    const amountMinor = r.between(1, 2_000);
    const x = await t.purchase({ card: input, amountMinor, pin: card.pin });
    if (approvedOk(x) && x.rrn) {
      mine.push({
        rrn: x.rrn,
        stan: x.stan,
        batchNumber: x.batchNumber,
        localDate: x.localDate,
        amountMinor,
        refundedMinor: 0,
        card,
        merchantId,
      });
      told.approvedPurchases.set(x.rrn, {
        amountMinor,
        merchantId,
        accountId: cardKey(cardOf.get(card.pan)!),
      });
    }
    return x;
  }
  if (kind === 'balance-inquiry') return t.balanceInquiry({ card: input, pin: card.pin });
  const idx = r.int(mine.length);
  const orig = mine[idx]!;
  const origInput = { track2: track2Of(orig.card) };
  if (kind === 'void') {
    // A void only of a purchase not refunded (the issuer declines 12 otherwise), in the current batch.
    if (orig.refundedMinor > 0 || orig.settled)
      return t.balanceInquiry({ card: origInput, pin: orig.card.pin });
    const x = await t.voidPurchase({ card: origInput, originalStan: orig.stan, pin: orig.card.pin });
    if (approvedOk(x)) {
      mine.splice(idx, 1);
      told.approvedPurchases.delete(orig.rrn);
    }
    return x;
  }
  const left = orig.amountMinor - orig.refundedMinor;
  if (left <= 0) return t.balanceInquiry({ card: origInput, pin: orig.card.pin });
  const amountMinor = r.between(1, left);
  const x = await t.refund({
    card: origInput,
    amountMinor,
    pin: orig.card.pin,
    original: { rrn: orig.rrn, date: orig.localDate, stan: orig.stan, batchNumber: orig.batchNumber },
  });
  if (approvedOk(x)) {
    orig.refundedMinor += amountMinor;
    if (x.rrn) told.approvedRefunds.set(x.rrn, { amountMinor, merchantId });
  }
  if (x.refundAdvicePending) told.lostRefunds.set(terminalId, { orig, amountMinor, merchantId });
  return x;
}

/** Waits for the POSP's store and forward queue to empty; the count left, or undefined without one. */
async function drainStoreAndForward(net: ChaosNetwork): Promise<number | undefined> {
  const saf = (net.posp as { saf?: { list(state?: string): Promise<unknown[]>; runOnce(): Promise<number> } })
    .saf;
  if (!saf) return undefined;
  const deadline = Date.now() + CHAOS_SAF_DRAIN_MS_MAX;
  let n = (await saf.list('pending')).length;
  while (n > 0 && Date.now() < deadline) {
    await saf.runOnce().catch(() => 0);
    await sleep(200);
    n = (await saf.list('pending')).length;
  }
  return n + (await saf.list('operator')).length;
}

/** Net per merchant (purchases − voids − refunds) from the POSP's own settlement of each date. */
async function pospSettlement(net: ChaosNetwork, dates: string[]): Promise<Map<string, number> | undefined> {
  const posp = net.posp as {
    merchantSettlement?: (d: string) => Promise<{ merchants: { merchantId: string; netMinor: number }[] }>;
  };
  if (typeof posp.merchantSettlement !== 'function') return undefined;
  const out = new Map<string, number>();
  for (const d of dates) {
    const s = await posp.merchantSettlement(d);
    for (const x of s.merchants) out.set(x.merchantId, (out.get(x.merchantId) ?? 0) + x.netMinor);
  }
  return out;
}

/** Reversals the issuers recorded (0400s that reached them, first arrivals). */
async function countIssuerReversals(m: ChaosNetwork['m']): Promise<number> {
  const { openStore } = await import('@openposp/store');
  const { ISSUER_MIGRATIONS } = await import('@openposp/issuer');
  let n = 0;
  for (const i of m.issuers) {
    const s = await openStore(i.database, { migrations: ISSUER_MIGRATIONS });
    try {
      n +=
        (await s.get<{ n: number }>("SELECT COUNT(*) AS n FROM transactions WHERE msg_class = '04'"))?.n ?? 0;
    } finally {
      await s.close();
    }
  }
  return n;
}

/**
 * End-of-day clearing and `reconcile --apply` through cli/src/reconcile.ts (`runReconcile`) when it
 * exists; undefined when it does not, and the auditor's own comparison of the journals stands alone.
 */
async function reconcile(
  dir: string,
  dates: string[],
  phase: (line: string) => void,
): Promise<{ found: number; resolved: number; unexplained: number } | undefined> {
  type RunReconcile = (opts: { dir: string; date: string; apply: boolean }) => Promise<{
    before: { mismatches: unknown[] };
    applied: { responseCode: string }[];
    unexplained: unknown[];
  }>;
  let fn: RunReconcile | undefined;
  try {
    const mod = (await import('../reconcile.js' as string)) as { runReconcile?: RunReconcile };
    fn = mod.runReconcile;
  } catch {
    fn = undefined;
  }
  if (!fn) {
    phase('reconciliation: packages/cli/src/reconcile.ts has no runReconcile; not run');
    return undefined;
  }
  const total = { found: 0, resolved: 0, unexplained: 0 };
  for (const date of dates) {
    const r = await fn({ dir, date, apply: true });
    total.found += r.before.mismatches.length;
    total.resolved += r.applied.filter((a) => a.responseCode === '00').length;
    total.unexplained += r.unexplained.length;
  }
  phase(
    `reconciliation (${dates.join(', ')}): ${total.found} mismatches found, ${total.resolved} refunds applied, ${total.unexplained} unexplained`,
  );
  return total;
}
