/**
 * The double-entry ledger: accounts, postings of signed entries that sum to zero, holds, and the
 * auditor of its invariants.
 *
 * Sign convention: an account's balance is the sum of its entries. A cardholder account's balance is
 * what the issuer owes the cardholder; a purchase is -amount on the cardholder and +amount on the
 * clearing account (what the issuer owes the acquirer side at settlement); an opening balance is
 * +amount on the cardholder and -amount on the funding account. Every posting therefore sums to zero,
 * and so does the whole ledger (invariant L1).
 */
import type { Queryable } from '@openposp/store';
import { IssuerError } from './errors.js';

export type AccountKind = 'cardholder' | 'clearing' | 'funding';

/** The account every opening balance is funded from. */
export const FUNDING_ACCOUNT_ID = 'funding';

export interface LedgerEntryInput {
  accountId: string;
  amountMinor: number;
}

export function nowIso(now: Date): string {
  return now.toISOString();
}

export function assertAmountMinor(n: unknown, field: string, allowZero = false): asserts n is number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || (!allowZero && n === 0)) {
    throw new IssuerError(
      'ISSUER_AMOUNT_INVALID',
      field,
      allowZero
        ? 'must be a safe integer >= 0 (minor units)'
        : 'must be a positive safe integer (minor units)',
    );
  }
}

/** Creates the account when it does not exist (clearing and funding accounts are created on start). */
export async function ensureAccount(
  q: Queryable,
  id: string,
  kind: AccountKind,
  currency: string,
  now: Date,
): Promise<void> {
  await q.run(
    'INSERT INTO accounts (id, kind, currency, ledger_minor, held_minor, created_at) VALUES (?, ?, ?, 0, 0, ?) ON CONFLICT (id) DO NOTHING',
    [id, kind, currency, nowIso(now)],
  );
}

/**
 * Writes one posting: its entries must sum to zero (checked here, before anything is written) and the
 * accounts' ledger balances move by the same amounts in the same database transaction.
 */
export async function post(
  q: Queryable,
  p: { txnId: number | null; kind: string; entries: readonly LedgerEntryInput[]; now: Date },
): Promise<number> {
  let sum = 0;
  for (const e of p.entries) {
    if (!Number.isSafeInteger(e.amountMinor) || e.amountMinor === 0) {
      throw new IssuerError(
        'ISSUER_LEDGER_UNBALANCED',
        'entries',
        'an entry must be a non-zero safe integer',
      );
    }
    sum += e.amountMinor;
  }
  if (p.entries.length < 2 || sum !== 0) {
    throw new IssuerError(
      'ISSUER_LEDGER_UNBALANCED',
      'entries',
      'a posting needs two or more entries summing to 0',
    );
  }
  const { id } = (await q.get<{ id: number }>(
    'INSERT INTO postings (txn_id, kind, created_at) VALUES (?, ?, ?) RETURNING id',
    [p.txnId, p.kind, nowIso(p.now)],
  ))!;
  for (const e of p.entries) {
    await q.run('INSERT INTO ledger_entries (posting_id, account_id, amount_minor) VALUES (?, ?, ?)', [
      id,
      e.accountId,
      e.amountMinor,
    ]);
    // Only a cardholder's balance is kept in its row (authorization reads it). The clearing and funding
    // accounts' balances are the sums of their entries, computed when read: every purchase posts to the
    // clearing account, and a row every authorization writes would make concurrent authorizations of
    // different cards conflict (PostgreSQL SERIALIZABLE aborts all but one; issue 7).
    await q.run("UPDATE accounts SET ledger_minor = ledger_minor + ? WHERE id = ? AND kind = 'cardholder'", [
      e.amountMinor,
      e.accountId,
    ]);
  }
  return id;
}

export interface AccountBalance {
  accountId: string;
  kind: AccountKind;
  currency: string;
  ledgerMinor: number;
  heldMinor: number;
  availableMinor: number;
}

export async function getBalance(q: Queryable, accountId: string): Promise<AccountBalance | undefined> {
  const r = await q.get<{
    id: string;
    kind: AccountKind;
    currency: string;
    ledger_minor: number;
    held_minor: number;
  }>('SELECT id, kind, currency, ledger_minor, held_minor FROM accounts WHERE id = ?', [accountId]);
  if (r === undefined) return undefined;
  let ledgerMinor = r.ledger_minor;
  if (r.kind !== 'cardholder') {
    // Not kept in the row (see `post`): the sum of the account's entries.
    const sum = await q.get<{ s: number | null }>(
      'SELECT SUM(amount_minor) AS s FROM ledger_entries WHERE account_id = ?',
      [accountId],
    );
    ledgerMinor = sum?.s ?? 0;
  }
  return {
    accountId: r.id,
    kind: r.kind,
    currency: r.currency,
    ledgerMinor,
    heldMinor: r.held_minor,
    availableMinor: ledgerMinor - r.held_minor,
  };
}

/** Reserves `amountMinor` of the available balance (a hold, 暫扣): the ledger balance does not move. */
export async function placeHoldIn(
  q: Queryable,
  accountId: string,
  amountMinor: number,
  reason: string,
  now: Date,
): Promise<number> {
  assertAmountMinor(amountMinor, 'amountMinor');
  const bal = await getBalance(q, accountId);
  if (bal === undefined) throw new IssuerError('ISSUER_CARD_UNKNOWN', 'accountId', 'no such account');
  if (bal.availableMinor < amountMinor) {
    throw new IssuerError('ISSUER_FUNDS_INSUFFICIENT', 'amountMinor', 'exceeds the available balance');
  }
  const { id } = (await q.get<{ id: number }>(
    "INSERT INTO holds (account_id, amount_minor, status, reason, created_at) VALUES (?, ?, 'active', ?, ?) RETURNING id",
    [accountId, amountMinor, reason, nowIso(now)],
  ))!;
  await q.run('UPDATE accounts SET held_minor = held_minor + ? WHERE id = ?', [amountMinor, accountId]);
  return id;
}

/** Releases an active hold (once). */
export async function releaseHoldIn(q: Queryable, holdId: number, now: Date): Promise<void> {
  const h = await q.get<{ account_id: string; amount_minor: number }>(
    "SELECT account_id, amount_minor FROM holds WHERE id = ? AND status = 'active'",
    [holdId],
  );
  if (h === undefined) throw new IssuerError('ISSUER_HOLD_UNKNOWN', 'holdId', 'not an active hold');
  await q.run("UPDATE holds SET status = 'released', released_at = ? WHERE id = ?", [nowIso(now), holdId]);
  await q.run('UPDATE accounts SET held_minor = held_minor - ? WHERE id = ?', [h.amount_minor, h.account_id]);
}

export interface LedgerAudit {
  ok: boolean;
  /** One line per broken invariant, naming it (L1..L7) and the row ids; never a PAN. */
  problems: string[];
  accounts: number;
  postings: number;
  entries: number;
}

/**
 * Checks the ledger's invariants (docs in README.md, "Invariants"):
 * L1 all entries sum to zero; L2 every posting has >= 2 entries summing to zero; L3 every cardholder
 * account's stored ledger balance is the sum of its entries (the clearing and funding accounts' balances
 * are that sum by construction: computed when read); L4 every account's held amount is the sum of its active
 * holds; L5 every approved purchase's refunds stay within its amount and match the approved refunds
 * pointing at it; L6 a transaction family (a purchase with its voids, refunds and reversals) moved the
 * cardholder by exactly what its state says: -(amount - refunded) when the purchase stands, else 0;
 * L7 a void or reversal applied at most once (one live void per purchase, one reversal per original).
 */
export async function auditLedger(q: Queryable): Promise<LedgerAudit> {
  const problems: string[] = [];
  const total = await q.get<{ s: number | null; n: number }>(
    'SELECT SUM(amount_minor) AS s, COUNT(*) AS n FROM ledger_entries',
  );
  if ((total?.s ?? 0) !== 0) problems.push(`L1: entries sum to ${total?.s}, not 0`);

  const badPostings = await q.all<{ id: number; s: number | null; n: number }>(
    `SELECT * FROM (SELECT p.id AS id, COALESCE(SUM(e.amount_minor), 0) AS s, COUNT(e.id) AS n FROM postings p
     LEFT JOIN ledger_entries e ON e.posting_id = p.id GROUP BY p.id) x WHERE n < 2 OR s <> 0`,
  );
  for (const p of badPostings) problems.push(`L2: posting ${p.id} has ${p.n} entries summing to ${p.s}`);

  const badAccounts = await q.all<{ id: string; ledger_minor: number; s: number }>(
    `SELECT * FROM (SELECT a.id AS id, a.ledger_minor AS ledger_minor, COALESCE(SUM(e.amount_minor), 0) AS s
     FROM accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id WHERE a.kind = 'cardholder'
     GROUP BY a.id, a.ledger_minor) x
     WHERE s <> ledger_minor`,
  );
  for (const a of badAccounts)
    problems.push(`L3: account ${a.id} ledger ${a.ledger_minor} != entries ${a.s}`);

  const badHolds = await q.all<{ id: string; held_minor: number; s: number }>(
    `SELECT * FROM (SELECT a.id AS id, a.held_minor AS held_minor,
       COALESCE((SELECT SUM(h.amount_minor) FROM holds h WHERE h.account_id = a.id AND h.status = 'active'), 0) AS s
     FROM accounts a) x WHERE s <> held_minor`,
  );
  for (const a of badHolds) problems.push(`L4: account ${a.id} held ${a.held_minor} != active holds ${a.s}`);

  const badRefunds = await q.all<{ id: number; amount_minor: number; refunded_minor: number; s: number }>(
    // One aggregate over the refunds joined to the purchases (a subquery per purchase scanned every
    // transaction for each: quadratic, hours at 100,000 transactions).
    `SELECT * FROM (SELECT t.id AS id, t.amount_minor AS amount_minor, t.refunded_minor AS refunded_minor,
       COALESCE(r.s, 0) AS s
     FROM transactions t LEFT JOIN (SELECT original_txn_id AS oid, SUM(amount_minor) AS s FROM transactions
         WHERE type = 'refund' AND applied = 1 AND reversed_by IS NULL AND original_txn_id IS NOT NULL
         GROUP BY original_txn_id) r ON r.oid = t.id
     WHERE t.type = 'purchase') x WHERE refunded_minor > amount_minor OR refunded_minor <> s`,
  );
  for (const t of badRefunds) {
    problems.push(
      `L5: purchase ${t.id} refunded ${t.refunded_minor} (refunds ${t.s}, amount ${t.amount_minor})`,
    );
  }

  const families = await q.all<{
    id: number;
    amount_minor: number;
    refunded_minor: number;
    live: number;
    moved: number;
  }>(
    // Likewise one aggregate of the cardholder entries by family (postings.txn_id has no index).
    `SELECT t.id AS id, t.amount_minor AS amount_minor, t.refunded_minor AS refunded_minor,
       CASE WHEN t.applied = 1 AND t.voided_by IS NULL AND t.reversed_by IS NULL THEN 1 ELSE 0 END AS live,
       COALESCE(m.moved, 0) AS moved
     FROM transactions t LEFT JOIN (SELECT f.family_id AS fid, SUM(e.amount_minor) AS moved
         FROM ledger_entries e JOIN postings p ON p.id = e.posting_id JOIN transactions f ON f.id = p.txn_id
         JOIN accounts a ON a.id = e.account_id
         WHERE a.kind = 'cardholder' AND f.family_id IS NOT NULL GROUP BY f.family_id) m ON m.fid = t.id
     WHERE t.type = 'purchase' AND t.msg_class = '02'`,
  );
  for (const f of families) {
    const expected = f.live ? -(f.amount_minor - f.refunded_minor) : 0;
    if (f.moved !== expected)
      problems.push(`L6: purchase ${f.id} family moved ${f.moved}, expected ${expected}`);
  }

  const doubleVoid = await q.all<{ id: number; n: number }>(
    `SELECT original_txn_id AS id, COUNT(*) AS n FROM transactions WHERE type = 'void' AND applied = 1
     AND reversed_by IS NULL GROUP BY original_txn_id HAVING COUNT(*) > 1`,
  );
  for (const d of doubleVoid) problems.push(`L7: purchase ${d.id} has ${d.n} live voids`);
  const doubleRev = await q.all<{ id: number; n: number }>(
    `SELECT original_txn_id AS id, COUNT(*) AS n FROM transactions WHERE msg_class = '04' AND applied = 1
     AND original_txn_id IS NOT NULL GROUP BY original_txn_id HAVING COUNT(*) > 1`,
  );
  for (const d of doubleRev) problems.push(`L7: transaction ${d.id} reversed ${d.n} times`);

  const counts = await q.get<{ a: number; p: number }>(
    'SELECT (SELECT COUNT(*) FROM accounts) AS a, (SELECT COUNT(*) FROM postings) AS p',
  );
  return {
    ok: problems.length === 0,
    problems,
    accounts: counts?.a ?? 0,
    postings: counts?.p ?? 0,
    entries: total?.n ?? 0,
  };
}
