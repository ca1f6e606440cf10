/**
 * Settlement (結算) totals of a terminal batch and their field 48 form in the 0500/0510
 * (../shared/cup-pos-dialect.md 2.7; ConardLKL/posp_server M_BatchSettlementChecker.java):
 *
 *   domestic debit total n12 | debit count n3 | credit total n12 | credit count n3 | flag n1 |
 *   foreign debit total n12  | debit count n3 | credit total n12 | credit count n3 | flag n1   = 62 digits
 *
 * Debits are the approved purchases of the batch (a purchase later voided still counts: its void is a
 * credit); credits are the approved voids and refunds. Debits − credits is then what the merchant is
 * owed for the batch, which is the rule docs/network.md gives the POSP ("approved, unreversed purchases
 * − voids − refunds"). A reversed transaction never enters the batch (the batch only holds answers
 * the terminal believed), so it is in neither total. This terminal reads no foreign cards: the foreign
 * block is zeros. The flag the terminal sends is 0 (not yet compared); the POSP answers 1 (balanced),
 * 2 (not balanced: upload the batch) or 3 (error).
 */
import { TerminalError } from './errors.js';

/** Largest count field 48 carries (n3). */
export const SETTLEMENT_COUNT_MAX = 999;
/** Largest total field 48 carries (n12, minor units). */
export const SETTLEMENT_TOTAL_MAX_MINOR = 999_999_999_999;
/** Digits of field 48 in a 0500/0510. */
export const SETTLEMENT_FIELD48_DIGITS = 62;

export interface SettlementTotals {
  debitTotalMinor: number;
  debitCount: number;
  creditTotalMinor: number;
  creditCount: number;
}

/** The result flag of field 48 (positions 31 and 62). */
export type SettlementFlag = '0' | '1' | '2' | '3';

/** Which side of the totals a batch entry falls on. */
export function settlementSideOf(type: string): 'debit' | 'credit' {
  if (type === 'purchase') return 'debit';
  if (type === 'void' || type === 'refund') return 'credit';
  throw new TypeError(`no settlement side for ${type}`);
}

/** Sums the batch entries (approved purchases, voids and refunds) into the two totals. */
export function computeSettlementTotals(
  entries: readonly { type: string; amountMinor: number }[],
): SettlementTotals {
  const t: SettlementTotals = { debitTotalMinor: 0, debitCount: 0, creditTotalMinor: 0, creditCount: 0 };
  for (const e of entries) {
    if (settlementSideOf(e.type) === 'debit') {
      t.debitTotalMinor += e.amountMinor;
      t.debitCount += 1;
    } else {
      t.creditTotalMinor += e.amountMinor;
      t.creditCount += 1;
    }
  }
  return t;
}

function checkFits(t: SettlementTotals): void {
  for (const [k, v, max] of [
    ['debitTotalMinor', t.debitTotalMinor, SETTLEMENT_TOTAL_MAX_MINOR],
    ['debitCount', t.debitCount, SETTLEMENT_COUNT_MAX],
    ['creditTotalMinor', t.creditTotalMinor, SETTLEMENT_TOTAL_MAX_MINOR],
    ['creditCount', t.creditCount, SETTLEMENT_COUNT_MAX],
  ] as const)
    if (!Number.isSafeInteger(v) || v < 0 || v > max)
      throw new TerminalError('TERMINAL_BATCH_FULL', `totals.${k}`, `must be an integer from 0 to ${max}`);
}

/** Field 48 of a 0500: the domestic totals with `flag`, then a zero foreign block (flag 0). */
export function formatSettlementField48(t: SettlementTotals, flag: SettlementFlag = '0'): string {
  checkFits(t);
  const n = (v: number, w: number) => String(v).padStart(w, '0');
  const domestic = `${n(t.debitTotalMinor, 12)}${n(t.debitCount, 3)}${n(t.creditTotalMinor, 12)}${n(t.creditCount, 3)}${flag}`;
  return `${domestic}${'0'.repeat(30)}0`;
}

/** Reads the domestic totals and flag of a 0510's field 48; undefined when it is not 31+ digits. */
export function parseSettlementField48(
  v: string | undefined,
): { totals: SettlementTotals; flag: string } | undefined {
  if (v === undefined || !/^[0-9]{31}/.test(v)) return undefined;
  return {
    totals: {
      debitTotalMinor: Number(v.slice(0, 12)),
      debitCount: Number(v.slice(12, 15)),
      creditTotalMinor: Number(v.slice(15, 27)),
      creditCount: Number(v.slice(27, 30)),
    },
    flag: v.charAt(30),
  };
}
