/**
 * The BIN routing table: which issuer owns a card, by the leading digits of its PAN.
 *
 * A routing file is JSON: `{ "routes": [ { "prefix": "622202", "issuer": "bank-a" },
 * { "low": "62220300", "high": "62220399", "issuer": "bank-b", "name": "B debit" } ] }`.
 * An entry is a prefix or an inclusive range of equal-length digit strings, 6 to 11 digits (the
 * ISO/IEC 7812-1:2017 issuer identification number is 6 or 8 digits; schemes route on longer account
 * ranges too). A PAN matches an entry when its first L digits (L the entry's length) fall in the range.
 * The longest matching entry wins, so a card range inside a broader BIN can go to another issuer. Two
 * entries of the same length that overlap would make the choice arbitrary: the load refuses them with
 * SWITCH_ROUTING_OVERLAP naming both.
 */
import { readFile } from 'node:fs/promises';
import { SwitchError } from './errors.js';

export const BIN_LENGTH_MIN = 6;
export const BIN_LENGTH_MAX = 11;
/** A routing file larger than this is refused (a table of ~100k entries fits). */
export const ROUTING_FILE_MAX_BYTES = 16 * 1024 * 1024;
/** Issuer ids: what `issuers[].id` of the config and `routes[].issuer` of the routing file name. */
export const ISSUER_ID_PATTERN = /^[A-Za-z0-9_.-]{1,32}$/;

export interface RouteEntry {
  /** `routes[i]`: where the entry is in the file, for errors and logs. */
  index: number;
  /** Optional label from the file (not secret: a product or bank name). */
  name: string | undefined;
  /** Inclusive bounds, equal length. A prefix entry has low === high. */
  low: string;
  high: string;
  issuerId: string;
}

export interface RouteMatch {
  issuerId: string;
  entry: RouteEntry;
}

const DIGITS = /^[0-9]+$/;

function entryError(i: number, rule: string): SwitchError {
  return new SwitchError('SWITCH_ROUTING_INVALID', `routes[${i}]`, rule);
}

function describeEntry(e: RouteEntry): string {
  const range = e.low === e.high ? `prefix ${e.low}` : `${e.low}..${e.high}`;
  return `routes[${e.index}] (${range}${e.name ? `, ${e.name}` : ''})`;
}

function checkBin(v: unknown, i: number, key: string): string {
  if (typeof v !== 'string' || !DIGITS.test(v) || v.length < BIN_LENGTH_MIN || v.length > BIN_LENGTH_MAX)
    throw entryError(i, `${key} must be a string of ${BIN_LENGTH_MIN} to ${BIN_LENGTH_MAX} digits`);
  return v;
}

function parseEntry(raw: unknown, i: number): RouteEntry {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw entryError(i, 'must be an object');
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!['prefix', 'low', 'high', 'issuer', 'name'].includes(k))
      throw entryError(i, `unknown key "${k.slice(0, 32)}" (expected prefix or low/high, issuer, name)`);
  }
  if (typeof r.issuer !== 'string' || !ISSUER_ID_PATTERN.test(r.issuer))
    throw entryError(i, 'issuer must be an id of 1 to 32 characters A-Z a-z 0-9 _ . -');
  if (r.name !== undefined && (typeof r.name !== 'string' || r.name.length > 64))
    throw entryError(i, 'name must be a string of at most 64 characters');
  let low: string;
  let high: string;
  if (r.prefix !== undefined) {
    if (r.low !== undefined || r.high !== undefined) throw entryError(i, 'has both prefix and low/high');
    low = high = checkBin(r.prefix, i, 'prefix');
  } else {
    if (r.low === undefined || r.high === undefined)
      throw entryError(i, 'needs prefix, or both low and high');
    low = checkBin(r.low, i, 'low');
    high = checkBin(r.high, i, 'high');
    if (low.length !== high.length) throw entryError(i, 'low and high must have the same number of digits');
    if (low > high) throw entryError(i, 'low is above high');
  }
  return { index: i, name: r.name as string | undefined, low, high, issuerId: r.issuer };
}

/** Entries of one BIN length, sorted by `low`, pairwise disjoint: a binary search finds the one that matches. */
interface LengthTable {
  length: number;
  entries: RouteEntry[];
}

export class RoutingTable {
  /** Longest length first, so the first hit is the longest match. */
  readonly #tables: LengthTable[];
  readonly entries: readonly RouteEntry[];

  private constructor(entries: RouteEntry[], tables: LengthTable[]) {
    this.entries = entries;
    this.#tables = tables;
  }

  /**
   * Validates a parsed routing document and builds the table. Throws SWITCH_ROUTING_INVALID for a
   * malformed entry and SWITCH_ROUTING_OVERLAP for two overlapping entries of one length.
   */
  static fromJson(doc: unknown): RoutingTable {
    if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { routes?: unknown }).routes))
      throw new SwitchError(
        'SWITCH_ROUTING_INVALID',
        'routes',
        'the routing document needs a "routes" array',
      );
    const raw = (doc as { routes: unknown[] }).routes;
    const entries = raw.map((r, i) => parseEntry(r, i));
    const byLength = new Map<number, RouteEntry[]>();
    for (const e of entries) {
      const list = byLength.get(e.low.length) ?? [];
      list.push(e);
      byLength.set(e.low.length, list);
    }
    const tables: LengthTable[] = [];
    for (const [length, list] of byLength) {
      // Equal-length digit strings compare as numbers do.
      list.sort((a, b) => (a.low < b.low ? -1 : a.low > b.low ? 1 : a.index - b.index));
      for (let k = 1; k < list.length; k++) {
        const prev = list[k - 1]!;
        const cur = list[k]!;
        if (cur.low <= prev.high) {
          const [first, second] = prev.index < cur.index ? [prev, cur] : [cur, prev];
          throw new SwitchError(
            'SWITCH_ROUTING_OVERLAP',
            `routes[${second.index}]`,
            `${describeEntry(second)} overlaps ${describeEntry(first)}: both are ${length} digits`,
          );
        }
      }
      tables.push({ length, entries: list });
    }
    tables.sort((a, b) => b.length - a.length);
    return new RoutingTable(entries, tables);
  }

  /** The issuer of `pan` by the longest matching entry, or undefined (the switch answers 14). */
  route(pan: string): RouteMatch | undefined {
    for (const t of this.#tables) {
      if (pan.length < t.length) continue;
      const head = pan.slice(0, t.length);
      const list = t.entries;
      // The last entry whose low <= head; it matches when head <= its high.
      let lo = 0;
      let hi = list.length - 1;
      let at = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (list[mid]!.low <= head) {
          at = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      if (at >= 0 && head <= list[at]!.high) return { issuerId: list[at]!.issuerId, entry: list[at]! };
    }
    return undefined;
  }

  /** Issuer ids the table names (the config check warns about those with no link). */
  issuerIds(): string[] {
    return [...new Set(this.entries.map((e) => e.issuerId))];
  }
}

/** Reads and validates a routing file (SWITCH_FILE_READ when it cannot be read or parsed). */
export async function loadRoutingTable(path: string): Promise<RoutingTable> {
  let text: string;
  try {
    const buf = await readFile(path);
    if (buf.length > ROUTING_FILE_MAX_BYTES)
      throw new SwitchError('SWITCH_FILE_READ', 'routingFile', `larger than ${ROUTING_FILE_MAX_BYTES} bytes`);
    text = buf.toString('utf8');
  } catch (e) {
    if (e instanceof SwitchError) throw e;
    throw new SwitchError(
      'SWITCH_FILE_READ',
      'routingFile',
      `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      { cause: e },
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new SwitchError('SWITCH_FILE_READ', 'routingFile', `${path} is not JSON`, { cause: e });
  }
  return RoutingTable.fromJson(doc);
}
