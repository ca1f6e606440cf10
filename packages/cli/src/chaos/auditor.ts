/**
 * The auditor of a chaos run: checks the money invariants of docs/invariants.md (ids M1..M9) on the
 * databases the services leave behind (opened after they are closed, as an outside auditor would) and
 * on what the terminals were told. It reads, never writes. Each check returns its id, ok, and a few
 * lines saying what broke (masked PANs and RRNs only).
 */
import { ACQUIRER_MIGRATIONS } from '@openposp/acquirer';
import { auditLedger, ISSUER_MIGRATIONS } from '@openposp/issuer';
import { openStore, type Store } from '@openposp/store';
import type { NetworkManifest } from '../network/layout.js';

/** At most this many detail lines per invariant in the report. */
export const AUDIT_DETAILS_MAX = 10;

/** What the terminals were told, per card, and the card's balance before the run. */
export interface CardExpectation {
  issuer: string;
  /** The issuer's account id of the card. */
  accountId: string;
  maskedPan: string;
  openingLedgerMinor: number;
  /** Sum of purchases answered 00 with a good MAC and not voided by a void answered 00. */
  toldPurchasesMinor: number;
  /** Sum of refunds answered 00 with a good MAC. */
  toldRefundsMinor: number;
}

export interface TerminalView {
  /** Purchases answered 00 (good MAC) and still standing at the end (not voided), by RRN. */
  approvedPurchases: Map<string, { amountMinor: number; merchantId: string; accountId: string }>;
  /** Refunds answered 00 (good MAC), by RRN. */
  approvedRefunds: Map<string, { amountMinor: number; merchantId: string }>;
  /** Reversal records still pending at each terminal after the end-of-run flush. */
  pendingReversals: string[];
}

export interface InvariantResult {
  id: string;
  ok: boolean;
  details: string[];
}

interface IssuerTxnRow {
  /** Added here: the issuer id (account ids are per issuer). */
  issuer: string;
  id: number;
  msg_class: string;
  type: string;
  rrn: string | null;
  account_id: string | null;
  merchant_id: string | null;
  amount_minor: number;
  applied: number;
  voided_by: number | null;
  reversed_by: number | null;
  acquirer_id: string;
  terminal_id: string;
  stan: string;
  local_date: string;
}

interface JournalRow {
  rrn: string;
  merchant_id: string;
  txn_type: string;
  amount_minor: number | null;
  state: string;
  response_code: string | null;
  voided_by_rrn: string | null;
  reversal_state?: string | null;
}

/** Account ids are per issuer. */
export const cardKey = (c: { issuer: string; accountId: string }): string => `${c.issuer}/${c.accountId}`;

function result(id: string, details: string[]): InvariantResult {
  return { id, ok: details.length === 0, details: details.slice(0, AUDIT_DETAILS_MAX) };
}

async function withStore<T>(
  path: string,
  migrations: Parameters<typeof openStore>[1]['migrations'],
  fn: (s: Store) => Promise<T>,
): Promise<T> {
  const s = await openStore(path, { migrations });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/** A purchase or refund that moves money at the issuer now: applied and neither voided nor reversed. */
const live = (t: IssuerTxnRow) =>
  t.msg_class === '02' && t.applied === 1 && t.voided_by === null && t.reversed_by === null;

export interface AuditInput {
  m: NetworkManifest;
  cards: CardExpectation[];
  told: TerminalView;
  /** Single-sided accounts reconciliation left unexplained (undefined when reconciliation did not run). */
  reconUnexplained?: number;
  /** Net per merchant from the POSP's merchant settlement (purchases − voids − refunds), when it has one. */
  settlement?: Map<string, number>;
  /** Reversal advices still owed by the POSP (store and forward) after the drain. */
  safPending?: number;
}

export async function audit(
  input: AuditInput,
): Promise<{ invariants: InvariantResult[]; singleSidedFound: number }> {
  const { m, cards, told } = input;
  const issuerTxns: IssuerTxnRow[] = [];
  const closing = new Map<string, { ledger: number; held: number }>();
  const ledgerProblems: string[] = [];
  let activeHolds = 0;
  for (const iss of m.issuers) {
    await withStore(iss.database, ISSUER_MIGRATIONS, async (s) => {
      const rows = await s.all<IssuerTxnRow>(
        `SELECT id, msg_class, type, rrn, account_id, merchant_id, amount_minor, applied, voided_by, reversed_by,
           acquirer_id, terminal_id, stan, local_date FROM transactions`,
      );
      for (const r of rows) issuerTxns.push({ ...r, issuer: iss.id });
      for (const a of await s.all<{ id: string; ledger_minor: number; held_minor: number }>(
        "SELECT id, ledger_minor, held_minor FROM accounts WHERE kind = 'cardholder'",
      ))
        closing.set(`${iss.id}/${a.id}`, { ledger: a.ledger_minor, held: a.held_minor });
      const la = await auditLedger(s);
      for (const p of la.problems) ledgerProblems.push(`${iss.id}: ${p}`);
      const h = await s.get<{ n: number }>("SELECT COUNT(*) AS n FROM holds WHERE status = 'active'");
      activeHolds += h?.n ?? 0;
    });
  }
  const journal = await withStore(m.posp.database, ACQUIRER_MIGRATIONS, (s) =>
    s.all<JournalRow>('SELECT * FROM journal'),
  );

  const out: InvariantResult[] = [];

  // M1: per card, from the issuer's own books.
  {
    const d: string[] = [];
    for (const c of cards) {
      const mine = issuerTxns.filter((t) => t.issuer === c.issuer && t.account_id === c.accountId && live(t));
      const purchases = mine.filter((t) => t.type === 'purchase').reduce((s, t) => s + t.amount_minor, 0);
      const refunds = mine.filter((t) => t.type === 'refund').reduce((s, t) => s + t.amount_minor, 0);
      const close = closing.get(cardKey(c))?.ledger;
      if (close !== c.openingLedgerMinor - purchases + refunds)
        d.push(
          `${c.maskedPan}: opening ${c.openingLedgerMinor} - purchases ${purchases} + refunds ${refunds} != closing ${close}`,
        );
    }
    out.push(result('M1-card-balance-issuer-books', d));
  }

  // M2: per card, from what the terminals were told (slips).
  {
    const d: string[] = [];
    for (const c of cards) {
      const close = closing.get(cardKey(c))?.ledger;
      const expected = c.openingLedgerMinor - c.toldPurchasesMinor + c.toldRefundsMinor;
      if (close !== expected)
        d.push(
          `${c.maskedPan}: opening ${c.openingLedgerMinor} - told purchases ${c.toldPurchasesMinor} + told refunds ${c.toldRefundsMinor} = ${expected}, closing ${close} (${close === undefined ? '?' : close - expected} unexplained)`,
        );
    }
    out.push(result('M2-card-balance-terminal-slips', d));
  }

  // M3: no hold left.
  {
    const d: string[] = [];
    if (activeHolds > 0) d.push(`${activeHolds} active holds`);
    for (const c of cards) {
      const h = closing.get(cardKey(c))?.held ?? 0;
      if (h !== 0) d.push(`${c.maskedPan}: ${h} held`);
    }
    out.push(result('M3-holds-resolved', d));
  }

  // M4: the issuers' ledgers balance (L1..L7 of packages/issuer/src/ledger.ts).
  out.push(result('M4-issuer-ledger-balances', ledgerProblems));

  // M5: no transaction debited twice.
  {
    const d: string[] = [];
    const byIdentity = new Map<string, number>();
    const byRrn = new Map<string, number>();
    for (const t of issuerTxns) {
      if (!(t.type === 'purchase' && t.msg_class === '02' && t.applied === 1)) continue;
      const k = `${t.acquirer_id}/${t.terminal_id}/${t.stan}/${t.local_date}`;
      byIdentity.set(k, (byIdentity.get(k) ?? 0) + 1);
      if (t.rrn) byRrn.set(t.rrn, (byRrn.get(t.rrn) ?? 0) + 1);
    }
    for (const [k, n] of byIdentity) if (n > 1) d.push(`identity ${k} debited ${n} times`);
    for (const [k, n] of byRrn) if (n > 1) d.push(`RRN ${k} debited ${n} times`);
    // Live purchases at the issuers by RRN, counted once (a scan per approval was quadratic: at 100,000
    // transactions the audit took longer than the run).
    const liveDebits = new Map<string, number>();
    for (const t of issuerTxns)
      if (t.rrn && t.type === 'purchase' && live(t)) liveDebits.set(t.rrn, (liveDebits.get(t.rrn) ?? 0) + 1);
    for (const [rrn] of told.approvedPurchases) {
      const n = liveDebits.get(rrn) ?? 0;
      if (n !== 1) d.push(`RRN ${rrn}: told approved, ${n} live debits at the issuer`);
    }
    out.push(result('M5-no-double-debit', d));
  }

  // M6: merchants' settlement = approved unreversed purchases - refunds (voided purchases count 0),
  // the POSP's journal against the issuers' live transactions, per merchant.
  {
    const d: string[] = [];
    const pospNet = new Map<string, number>();
    for (const j of journal) {
      const approved =
        j.response_code === '00' && j.state === 'answered' && (j.reversal_state ?? null) === null;
      if (!approved) continue;
      if (j.txn_type === 'purchase' && !j.voided_by_rrn)
        pospNet.set(j.merchant_id, (pospNet.get(j.merchant_id) ?? 0) + (j.amount_minor ?? 0));
      if (j.txn_type === 'refund')
        pospNet.set(j.merchant_id, (pospNet.get(j.merchant_id) ?? 0) - (j.amount_minor ?? 0));
    }
    const issuerNet = new Map<string, number>();
    for (const t of issuerTxns) {
      if (!live(t) || !t.merchant_id) continue;
      const sign = t.type === 'purchase' ? 1 : t.type === 'refund' ? -1 : 0;
      issuerNet.set(t.merchant_id, (issuerNet.get(t.merchant_id) ?? 0) + sign * t.amount_minor);
    }
    const toldNet = new Map<string, number>();
    for (const p of told.approvedPurchases.values())
      toldNet.set(p.merchantId, (toldNet.get(p.merchantId) ?? 0) + p.amountMinor);
    for (const r of told.approvedRefunds.values())
      toldNet.set(r.merchantId, (toldNet.get(r.merchantId) ?? 0) - r.amountMinor);
    const settled = input.settlement;
    for (const mid of new Set([
      ...pospNet.keys(),
      ...issuerNet.keys(),
      ...toldNet.keys(),
      ...(settled?.keys() ?? []),
    ])) {
      const a = pospNet.get(mid) ?? 0;
      const b = issuerNet.get(mid) ?? 0;
      const c = toldNet.get(mid) ?? 0;
      const s = settled === undefined ? a : (settled.get(mid) ?? 0);
      if (a !== b || b !== c || s !== c)
        d.push(
          `merchant ${mid}: POSP settlement ${settled ? s : 'n/a'}, POSP journal ${a}, issuers ${b}, terminal slips ${c}`,
        );
    }
    out.push(result('M6-merchant-settlement', d));
  }

  // M7: no single-sided account: every transaction live at an issuer is approved at the POSP and on a
  // slip, and every one approved at the POSP is live at an issuer.
  let singleSidedFound = 0;
  {
    const d: string[] = [];
    const liveAtIssuer = new Set(
      issuerTxns
        .filter((t) => live(t) && t.rrn && (t.type === 'purchase' || t.type === 'refund'))
        .map((t) => t.rrn!),
    );
    const approvedAtPosp = new Set(
      journal
        .filter(
          (j) =>
            (j.txn_type === 'purchase' || j.txn_type === 'refund') &&
            j.response_code === '00' &&
            j.state === 'answered' &&
            !j.voided_by_rrn &&
            (j.reversal_state ?? null) === null,
        )
        .map((j) => j.rrn),
    );
    const voidedAtIssuer = new Set(issuerTxns.filter((t) => t.voided_by !== null).map((t) => t.rrn));
    for (const r of liveAtIssuer)
      if (!approvedAtPosp.has(r)) {
        singleSidedFound++;
        d.push(`RRN ${r}: money moved at the issuer, not approved at the POSP`);
      }
    for (const r of approvedAtPosp)
      if (!liveAtIssuer.has(r) && !voidedAtIssuer.has(r)) {
        singleSidedFound++;
        d.push(`RRN ${r}: approved at the POSP, no money moved at the issuer`);
      }
    if (input.reconUnexplained !== undefined && input.reconUnexplained > 0)
      d.push(`reconciliation left ${input.reconUnexplained} unexplained`);
    out.push(result('M7-no-single-sided-account', d));
  }

  // M8: every reversal delivered: none left pending at a terminal, none owed by the POSP.
  {
    const d = told.pendingReversals.map((t) => `${t}: reversal still pending`);
    if (input.safPending !== undefined && input.safPending > 0)
      d.push(`POSP store and forward: ${input.safPending} advices still owed`);
    out.push(result('M8-reversals-delivered', d));
  }

  return { invariants: out, singleSidedFound };
}
