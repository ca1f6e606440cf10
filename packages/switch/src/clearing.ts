/**
 * The switch's clearing file (docs/network.md "Clearing files", issue 6 §4): one JSON line per
 * financial transaction of the clearing date the switch saw — purchases, voids, refunds, reversals
 * (0400 and 0420 advices); balance inquiries excluded — as the switch knows it, from its journal.
 * Party `switch`. Reconciliation (@openposp/recon) joins it with the acquirer's and the issuers'.
 *
 * Which rows belong to date D (YYYYMMDD): local date (field 13) = D's MMDD, received within D − 2 days
 * .. D + 2 days (UTC): the same rule as the issuer's file, so the files join on the identity.
 *
 * The journal has one row per request received; the same identity may arrive twice (a retransmission,
 * a 94 while the first was in flight). The file keeps one record per (identity, type): the most
 * definitive (an issuer's answer, then "sent, no answer", then a decline of the switch's own, then a
 * refusal), the latest among equals.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SwitchError } from './errors.js';
import type { JournalEntry, SwitchJournal, SwitchOutcome } from './journal.js';

export interface SwitchClearingRecord {
  party: 'switch';
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

/** Days either side of the clearing date a row of its MMDD may have been received. */
export const SWITCH_CLEARING_WINDOW_DAYS = 2;
/** At most this many journal rows read for one clearing file. */
export const SWITCH_CLEARING_ROWS_MAX = 1_000_000;

/** What each journal outcome means for the money: the state the switch knows. */
const STATE_OF: Record<SwitchOutcome, SwitchClearingRecord['state'] | 'answered'> = {
  answered: 'answered',
  pending: 'unknown',
  issuer_timeout: 'unknown',
  issuer_mac_failed: 'unknown',
  issuer_malformed: 'unknown',
  no_route: 'declined',
  no_issuer: 'declined',
  issuer_down: 'declined',
  issuer_busy: 'declined',
  duplicate_in_flight: 'declined',
  hsm_failed: 'declined',
  format_error: 'refused',
  unknown_acquirer: 'refused',
  acquirer_mismatch: 'refused',
  mac_missing: 'refused',
  mac_failed: 'refused',
  pin_invalid: 'refused',
};

const RANK: Record<SwitchClearingRecord['state'], number> = {
  approved: 4,
  reversed: 4,
  unknown: 3,
  declined: 2,
  refused: 1,
};

/** Checks YYYYMMDD (a real calendar date) and returns its UTC midnight in ms. */
export function switchClearingDateMs(date: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(typeof date === 'string' ? date : '');
  const ms = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : Number.NaN;
  const back = Number.isNaN(ms) ? '' : new Date(ms).toISOString().slice(0, 10).replaceAll('-', '');
  if (back === '' || back !== date)
    throw new SwitchError('SWITCH_CLEARING_INVALID', 'date', 'must be a date YYYYMMDD');
  return ms;
}

function typeOf(e: JournalEntry): SwitchClearingRecord['type'] | undefined {
  if (e.mti.startsWith('04')) return 'reversal';
  if (!e.mti.startsWith('02')) return undefined;
  switch ((e.processingCode ?? '').slice(0, 2)) {
    case '00':
      return 'purchase';
    case '02':
      return 'void';
    case '20':
      return 'refund';
    default:
      return undefined;
  }
}

/** The switch's clearing records of `date`, one per (identity, type), in the order first received. */
export async function switchClearingRecords(
  journal: SwitchJournal,
  date: string,
): Promise<SwitchClearingRecord[]> {
  const dayMs = switchClearingDateMs(date);
  const window = SWITCH_CLEARING_WINDOW_DAYS * 86_400_000;
  const rows = await journal.between(dayMs - window, dayMs + 86_400_000 + window, SWITCH_CLEARING_ROWS_MAX);
  const byKey = new Map<string, SwitchClearingRecord>();
  for (const e of rows) {
    if (e.localDate !== date.slice(4)) continue;
    const type = typeOf(e);
    if (type === undefined || e.acquirerId === null || e.terminalId === null || e.stan === null) continue;
    const s = STATE_OF[e.outcome];
    const state: SwitchClearingRecord['state'] =
      s === 'answered' ? (e.responseCode === '00' ? 'approved' : 'declined') : s;
    const rec: SwitchClearingRecord = {
      party: 'switch',
      acquirerId: e.acquirerId,
      terminalId: e.terminalId,
      stan: e.stan,
      localDate: e.localDate,
      transmissionTime: e.transmissionAt ?? '',
      rrn: e.rrn ?? '',
      type,
      amountMinor: e.amountMinor ?? 0,
      currency: e.currency ?? '156',
      responseCode: e.responseCode ?? '',
      state,
      pan: e.panMasked ?? '',
    };
    const key = `${e.acquirerId}|${e.terminalId}|${e.stan}|${e.localDate}|${type}`;
    const prev = byKey.get(key);
    if (prev === undefined || RANK[state] >= RANK[prev.state]) byKey.set(key, rec);
  }
  return [...byKey.values()];
}

/**
 * Writes `clearing-switch-<date>.jsonl` in `dir` (created when missing), through a temporary file and a
 * rename so a reader never sees half a file. Returns the path and the number of records.
 */
export async function writeSwitchClearingFile(
  journal: SwitchJournal,
  opts: { dir: string; date: string },
): Promise<{ path: string; records: number }> {
  const records = await switchClearingRecords(journal, opts.date);
  mkdirSync(opts.dir, { recursive: true });
  const path = join(opts.dir, `clearing-switch-${opts.date}.jsonl`);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  renameSync(tmp, path);
  return { path, records: records.length };
}
