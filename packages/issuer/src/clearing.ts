/**
 * The issuer's clearing file (docs/network.md "Clearing files", issue 6 §4): one JSON line per
 * financial transaction of the clearing date — purchases, voids, refunds and reversals; balance
 * inquiries and unsupported requests are excluded — as this issuer knows it, read from `transactions`.
 * Reconciliation (@openposp/recon) joins it with the acquirer's and the switch's by identity.
 *
 * Which transactions belong to date D (YYYYMMDD): local date (field 13) = D's MMDD, and recorded here
 * within D − 2 days .. D + 2 days (UTC), so that the same MMDD of another year is not mixed in while a
 * transaction recorded just across midnight (or with a terminal clock a little off) still is. Every
 * party uses this rule, so the files join on the identity.
 *
 * Only the masked PAN is written (the database has no other); the request answered 30/96/A0 is not
 * recorded at the issuer, so it is not in the file (the switch's file has it).
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Queryable } from '@openposp/store';
import { IssuerError } from './errors.js';

/** One line of a clearing file (docs/network.md "Clearing files"). */
export interface IssuerClearingRecord {
  party: string;
  acquirerId: string;
  terminalId: string;
  stan: string;
  localDate: string;
  transmissionTime: string;
  rrn: string;
  type: 'purchase' | 'void' | 'refund' | 'reversal';
  amountMinor: number;
  currency: string;
  responseCode: string;
  state: 'approved' | 'declined' | 'reversed' | 'unknown' | 'refused';
  pan: string;
}

/** Days either side of the clearing date a transaction of its MMDD may have been recorded. */
export const CLEARING_WINDOW_DAYS = 2;
/** At most this many records in one clearing file (a bound, not a business limit). */
export const CLEARING_RECORDS_MAX = 1_000_000;

const PARTY_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** Checks YYYYMMDD (a real calendar date) and returns its UTC midnight in ms. */
export function clearingDateMs(date: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(typeof date === 'string' ? date : '');
  const ms = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : Number.NaN;
  const back = Number.isNaN(ms) ? '' : new Date(ms).toISOString().slice(0, 10).replaceAll('-', '');
  if (back === '' || back !== date)
    throw new IssuerError('ISSUER_CLEARING_INVALID', 'date', 'must be a date YYYYMMDD');
  return ms;
}

function checkParty(party: string): void {
  if (typeof party !== 'string' || !PARTY_PATTERN.test(party))
    throw new IssuerError('ISSUER_CLEARING_INVALID', 'party', 'must be 1 to 64 of A-Z a-z 0-9 . _ -');
}

interface Row {
  msg_class: '02' | '04';
  acquirer_id: string;
  terminal_id: string;
  stan: string;
  local_date: string;
  type: string;
  amount_minor: number;
  masked_pan: string | null;
  transmission_dt: string | null;
  rrn: string | null;
  response_code: string;
  reversed_by: number | null;
}

/** The clearing records of `date` for `party` (this issuer's id), oldest first. */
export async function issuerClearingRecords(
  q: Queryable,
  opts: { date: string; party: string; currency: string },
): Promise<IssuerClearingRecord[]> {
  const dayMs = clearingDateMs(opts.date);
  checkParty(opts.party);
  const window = CLEARING_WINDOW_DAYS * 86_400_000;
  const rows = await q.all<Row>(
    `SELECT msg_class, acquirer_id, terminal_id, stan, local_date, type, amount_minor, masked_pan, transmission_dt,
       rrn, response_code, reversed_by
     FROM transactions
     WHERE local_date = ? AND created_at >= ? AND created_at < ?
       AND type IN ('purchase', 'void', 'refund', 'reversal')
     ORDER BY id LIMIT ?`,
    [
      opts.date.slice(4),
      new Date(dayMs - window).toISOString(),
      new Date(dayMs + 86_400_000 + window).toISOString(),
      CLEARING_RECORDS_MAX,
    ],
  );
  return rows.map((r) => {
    let state: IssuerClearingRecord['state'];
    if (r.response_code !== '00') state = 'declined';
    else if (r.msg_class === '02' && r.reversed_by !== null) state = 'reversed';
    else state = 'approved';
    return {
      party: opts.party,
      acquirerId: r.acquirer_id,
      terminalId: r.terminal_id,
      stan: r.stan,
      localDate: r.local_date,
      transmissionTime: r.transmission_dt ?? '',
      rrn: r.rrn ?? '',
      type: r.type as IssuerClearingRecord['type'],
      amountMinor: r.amount_minor,
      currency: opts.currency,
      responseCode: r.response_code,
      state,
      pan: r.masked_pan ?? '',
    };
  });
}

/**
 * Writes `clearing-<party>-<date>.jsonl` in `dir` (created when missing): the records of
 * `issuerClearingRecords`, one JSON object per line, written to a temporary file and renamed, so a
 * reader never sees half a file. Returns the path and the number of records.
 */
export async function writeIssuerClearingFile(
  q: Queryable,
  opts: { dir: string; date: string; party: string; currency: string },
): Promise<{ path: string; records: number }> {
  const records = await issuerClearingRecords(q, opts);
  mkdirSync(opts.dir, { recursive: true });
  const path = join(opts.dir, `clearing-${opts.party}-${opts.date}.jsonl`);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  renameSync(tmp, path);
  return { path, records: records.length };
}
