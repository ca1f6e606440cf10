/**
 * Clearing records and files (docs/network.md "Clearing files"): `clearing-<party>-<YYYYMMDD>.jsonl`,
 * one JSON object per line and per financial transaction. This module validates them as they are read
 * (every record a user hands us is checked, with the file, line and key named on error) and finds the
 * files of one date in a directory. Nothing here moves money.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ReconError } from './errors.js';

export const CLEARING_TYPES = ['purchase', 'void', 'refund', 'reversal'] as const;
export type ClearingType = (typeof CLEARING_TYPES)[number];
export const CLEARING_STATES = ['approved', 'declined', 'reversed', 'unknown', 'refused'] as const;
export type ClearingState = (typeof CLEARING_STATES)[number];

/** One line of a clearing file. */
export interface ClearingRecord {
  /** `acquirer`, `switch` or the issuer id. */
  party: string;
  acquirerId: string;
  terminalId: string;
  stan: string;
  /** Field 13, MMDD. */
  localDate: string;
  /** Field 7, MMDDhhmmss (`""` when the party has none). */
  transmissionTime: string;
  rrn: string;
  type: ClearingType;
  amountMinor: number;
  currency: string;
  responseCode: string;
  state: ClearingState;
  /** Masked: first 6, last 4. */
  pan: string;
}

/** One party's file of one date. */
export interface ClearingFile {
  party: string;
  records: ClearingRecord[];
  /** Where it was read from (reports name it). */
  path?: string;
}

/** A line longer than this is refused (a clearing record is ~300 bytes). */
export const RECON_LINE_MAX_BYTES = 4096;
/** A file larger than this is refused (about a million records). */
export const RECON_FILE_MAX_BYTES = 512 * 1024 * 1024;
export const PARTY_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** Checks YYYYMMDD (a real calendar date). */
export function checkClearingDate(date: string): void {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(typeof date === 'string' ? date : '');
  const ms = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : Number.NaN;
  const back = Number.isNaN(ms) ? '' : new Date(ms).toISOString().slice(0, 10).replaceAll('-', '');
  if (back === '' || back !== date)
    throw new ReconError('RECON_DATE_INVALID', 'date', 'must be a date YYYYMMDD');
}

const STRING_RULES: [keyof ClearingRecord, RegExp, string][] = [
  ['party', PARTY_PATTERN, '1 to 64 of A-Z a-z 0-9 . _ -'],
  ['acquirerId', /^\d{1,11}$/, '1 to 11 digits'],
  ['terminalId', /^[\x21-\x7e]{1,16}$/, '1 to 16 printable characters'],
  ['stan', /^\d{6}$/, '6 digits'],
  ['localDate', /^\d{4}$/, 'MMDD'],
  ['transmissionTime', /^(\d{10})?$/, 'MMDDhhmmss or ""'],
  ['rrn', /^[\x20-\x7e]{0,12}$/, 'up to 12 printable characters'],
  ['currency', /^\d{3}$/, '3 digits'],
  ['responseCode', /^[0-9A-Z]{0,2}$/, '2 characters or ""'],
  // A masked PAN only: never more than 6 + 4 digits visible.
  ['pan', /^(\d{6}\*{2,9}\d{4})?$/, 'masked (first 6, last 4) or ""'],
];

/** Validates one parsed record; `where` is `<file>:<line>`. */
export function validateRecord(v: unknown, where: string): ClearingRecord {
  const bad = (key: string, rule: string) => new ReconError('RECON_FILE_INVALID', `${where}.${key}`, rule);
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new ReconError('RECON_FILE_INVALID', where, 'must be a JSON object');
  const o = v as Record<string, unknown>;
  for (const [key, re, rule] of STRING_RULES) {
    const s = o[key];
    if (typeof s !== 'string' || !re.test(s)) throw bad(key, `must be ${rule}`);
  }
  if (!CLEARING_TYPES.includes(o.type as ClearingType))
    throw bad('type', `must be one of ${CLEARING_TYPES.join(', ')}`);
  if (!CLEARING_STATES.includes(o.state as ClearingState))
    throw bad('state', `must be one of ${CLEARING_STATES.join(', ')}`);
  const a = o.amountMinor;
  if (typeof a !== 'number' || !Number.isSafeInteger(a) || a < 0)
    throw bad('amountMinor', 'must be a safe integer >= 0 (minor units)');
  return {
    party: o.party as string,
    acquirerId: o.acquirerId as string,
    terminalId: o.terminalId as string,
    stan: o.stan as string,
    localDate: o.localDate as string,
    transmissionTime: o.transmissionTime as string,
    rrn: o.rrn as string,
    type: o.type as ClearingType,
    amountMinor: a,
    currency: o.currency as string,
    responseCode: o.responseCode as string,
    state: o.state as ClearingState,
    pan: o.pan as string,
  };
}

/** Parses the text of one clearing file; every record must name `party`. */
export function parseClearingFile(text: string, party: string, name: string): ClearingFile {
  const records: ClearingRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const where = `${name}:${i + 1}`;
    if (Buffer.byteLength(line) > RECON_LINE_MAX_BYTES)
      throw new ReconError('RECON_FILE_INVALID', where, `line longer than ${RECON_LINE_MAX_BYTES} bytes`);
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new ReconError('RECON_FILE_INVALID', where, 'not JSON');
    }
    const r = validateRecord(v, where);
    if (r.party !== party)
      throw new ReconError('RECON_FILE_INVALID', `${where}.party`, `must be ${party} (the file's party)`);
    records.push(r);
  }
  return { party, records };
}

/**
 * Reads every `clearing-<party>-<date>.jsonl` in `dir`, parties in name order. The file's name gives
 * its party and every record must agree.
 */
export function readClearingFiles(dir: string, date: string): ClearingFile[] {
  checkClearingDate(date);
  const suffix = `-${date}.jsonl`;
  const out: ClearingFile[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (!name.startsWith('clearing-') || !name.endsWith(suffix)) continue;
    const party = name.slice('clearing-'.length, -suffix.length);
    if (!PARTY_PATTERN.test(party)) continue;
    const path = join(dir, name);
    if (statSync(path).size > RECON_FILE_MAX_BYTES)
      throw new ReconError('RECON_FILE_INVALID', basename(path), `larger than ${RECON_FILE_MAX_BYTES} bytes`);
    out.push({ ...parseClearingFile(readFileSync(path, 'utf8'), party, name), path });
  }
  return out;
}
