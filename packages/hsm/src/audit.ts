/**
 * Tamper-evident audit log of key-management events.
 *
 * One JSON line per event, fields in a fixed order:
 *
 *   {"seq":N,"time":"<ISO 8601 UTC>","who":"...","command":"A0","keyType":"ZPK","checkValue":"...",
 *    "result":"00","prev":"<SHA-256 of line N-1>","hash":"<SHA-256 of this line without its hash field>"}
 *
 * Line 1 is the genesis record (command GENESIS) carrying the LMK check value; its `prev` is
 * SHA-256("openposp-hsm-audit-genesis:" + LMK check value), so the chain is bound to one LMK. Each
 * later line's `prev` is the SHA-256 of the previous line's full text (UTF-8, without the newline), and
 * its `hash` covers its own content, so an edited line fails at that line, a deleted or reordered line
 * fails at the first line out of sequence, and a cut line fails where it is cut. Dropping whole lines
 * from the end leaves a valid shorter chain: anchor the `lastHash` that `verifyAuditLog` returns
 * somewhere else (a ticket, a print-out) and pass it back as `expectLastHash` to catch that.
 *
 * What is never written: key material, components, PIN blocks, PINs, passphrases, credentials. The
 * event type admits only short identifiers and a check value of at most 16 hex digits, so no whole key
 * fits. Each append is written and fsync'ed before the command that caused it answers.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { HsmError } from './errors.js';

export const AUDIT_GENESIS_COMMAND = 'GENESIS';
/** Longest line the writer makes and the verifier reads (an event is ~300 characters). */
export const AUDIT_MAX_LINE_BYTES = 4096;

/** What one key-management event says. Every field is an identifier, never a secret. */
export interface AuditEvent {
  /** Who asked: `host:<address>:<port>`, `custodians:<id>+<id>`, `console`... (1-64 printable characters). */
  who: string;
  /** Host command code or event name: `A0`, `A4`, `AUTH_ENTER` (1-32 of A-Z, 0-9, `_`, `.`). */
  command: string;
  /** Key type: `ZMK`, `TPK`... (1-8 of A-Z, 0-9). */
  keyType?: string;
  /** Check value of the key concerned, hex, at most 16 digits. */
  checkValue?: string;
  /** The 2-character error code the command answered with ('00' success). */
  result?: string;
  /** Activities named by an authorization event, comma-separated (A-Z, a-z, 0-9, `.`, `,`, `*`, `_`, max 200). */
  activities?: string;
}

export interface AuditRecord extends AuditEvent {
  seq: number;
  time: string;
  lmkCheckValue?: string;
  prev: string;
  hash: string;
}

export type AuditVerifyResult =
  | { ok: true; lines: number; lastHash: string }
  | { ok: false; line: number; reason: string };

const sha256Hex = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** The `prev` of line 1: binds the chain to the LMK whose check value is given. */
export function auditGenesisHash(lmkCheckValue: string): string {
  return sha256Hex(`openposp-hsm-audit-genesis:${lmkCheckValue.toUpperCase()}`);
}

const EVENT_RULES: Record<keyof AuditEvent, [RegExp, string]> = {
  who: [/^[\x21-\x7e]{1,64}$/, '1-64 printable characters without spaces'],
  command: [/^[A-Z0-9_.]{1,32}$/, '1-32 of A-Z, 0-9, _ and .'],
  keyType: [/^[A-Z0-9]{1,8}$/, '1-8 of A-Z and 0-9'],
  checkValue: [/^[0-9A-F]{1,16}$/, '1-16 upper-case hex digits'],
  result: [/^[0-9A-Z]{2}$/, '2 characters of 0-9 and A-Z'],
  activities: [/^[A-Za-z0-9.,*_]{1,200}$/, '1-200 of A-Z, a-z, 0-9 and . , * _'],
};

function checkEvent(e: AuditEvent): void {
  if (typeof e !== 'object' || e === null) throw new TypeError('event must be an object');
  for (const k of Object.keys(e)) {
    if (!(k in EVENT_RULES)) throw new HsmError('HSM_AUDIT_EVENT', `event.${k}`, 'is not an audit field');
  }
  for (const [k, [re, rule]] of Object.entries(EVENT_RULES) as [keyof AuditEvent, [RegExp, string]][]) {
    const v = e[k];
    if (v === undefined && k !== 'who' && k !== 'command') continue;
    if (typeof v !== 'string' || !re.test(v))
      throw new HsmError('HSM_AUDIT_EVENT', `event.${k}`, `must be ${rule}`);
  }
}

/** The line for `record` without its hash, and then with it (fields in the fixed order). */
function lineOf(r: Omit<AuditRecord, 'hash'>): string {
  const o: Record<string, unknown> = { seq: r.seq, time: r.time, who: r.who, command: r.command };
  if (r.lmkCheckValue !== undefined) o.lmkCheckValue = r.lmkCheckValue;
  for (const k of ['keyType', 'checkValue', 'result', 'activities'] as const)
    if (r[k] !== undefined) o[k] = r[k];
  o.prev = r.prev;
  const unhashed = JSON.stringify(o);
  o.hash = sha256Hex(unhashed);
  return JSON.stringify(o);
}

/** Yields each line of a file (without '\n'), and whether it ended with a newline; bounded line length. */
async function* readLines(
  path: string,
): AsyncGenerator<{ text: string; complete: boolean; tooLong: boolean }> {
  let buf = '';
  for await (const chunk of createReadStream(path, { encoding: 'utf8', highWaterMark: 64 * 1024 })) {
    buf += chunk as string;
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      yield {
        text: buf.slice(0, nl),
        complete: true,
        tooLong: Buffer.byteLength(buf.slice(0, nl)) > AUDIT_MAX_LINE_BYTES,
      };
      buf = buf.slice(nl + 1);
      nl = buf.indexOf('\n');
    }
    if (Buffer.byteLength(buf) > AUDIT_MAX_LINE_BYTES) {
      yield { text: '', complete: false, tooLong: true };
      return;
    }
  }
  if (buf.length > 0) yield { text: buf, complete: false, tooLong: false };
}

/** Checks one line against the chain so far; returns the reason it is broken, or undefined. */
function checkLine(
  text: string,
  n: number,
  prevText: string | undefined,
  expectLmk: string | undefined,
): string | undefined {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(text);
  } catch {
    return 'is not JSON';
  }
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return 'is not a JSON object';
  if (r.seq !== n) return `sequence number is ${JSON.stringify(r.seq)}, expected ${n}`;
  if (typeof r.hash !== 'string' || typeof r.prev !== 'string') return 'lacks prev or hash';
  const { hash, ...rest } = r;
  if (sha256Hex(JSON.stringify(rest)) !== hash) return 'hash does not match the line (line edited)';
  if (JSON.stringify(r) !== text) return 'is not in the canonical form the writer makes';
  if (n === 1) {
    if (r.command !== AUDIT_GENESIS_COMMAND || typeof r.lmkCheckValue !== 'string') {
      return 'is not a genesis record';
    }
    if (expectLmk !== undefined && r.lmkCheckValue !== expectLmk.toUpperCase()) {
      return 'genesis is bound to another LMK check value';
    }
    if (r.prev !== auditGenesisHash(r.lmkCheckValue)) return 'prev does not match the genesis value';
  } else if (r.prev !== sha256Hex(prevText!)) {
    return `prev does not match the SHA-256 of line ${n - 1} (a line was deleted, reordered or edited)`;
  }
  return undefined;
}

/**
 * Verifies an audit log and names the first broken line (1-based). `lmkCheckValue` (if given) must
 * be the one in the genesis record; `expectLastHash` (if given) must be the SHA-256 of the last line.
 */
export async function verifyAuditLog(
  path: string,
  opts: { lmkCheckValue?: string; expectLastHash?: string } = {},
): Promise<AuditVerifyResult> {
  let n = 0;
  let prevText: string | undefined;
  for await (const { text, complete, tooLong } of readLines(path)) {
    n++;
    if (tooLong) return { ok: false, line: n, reason: `is longer than ${AUDIT_MAX_LINE_BYTES} bytes` };
    if (!complete) return { ok: false, line: n, reason: 'does not end with a newline (truncated)' };
    const reason = checkLine(text, n, prevText, opts.lmkCheckValue);
    if (reason !== undefined) return { ok: false, line: n, reason };
    prevText = text;
  }
  if (n === 0) return { ok: false, line: 1, reason: 'the log is empty (no genesis record)' };
  const lastHash = sha256Hex(prevText!);
  if (opts.expectLastHash !== undefined && opts.expectLastHash.toLowerCase() !== lastHash) {
    return {
      ok: false,
      line: n + 1,
      reason: 'the log ends before the anchored last line (lines removed at the end)',
    };
  }
  return { ok: true, lines: n, lastHash };
}

/** An open, append-only audit log. One writer per file. */
export class AuditLog {
  readonly path: string;
  readonly lmkCheckValue: string;
  #fd: number;
  #seq: number;
  #prevText: string;
  readonly #now: () => Date;

  private constructor(path: string, fd: number, seq: number, prevText: string, lmk: string, now: () => Date) {
    this.path = path;
    this.#fd = fd;
    this.#seq = seq;
    this.#prevText = prevText;
    this.lmkCheckValue = lmk;
    this.#now = now;
  }

  /**
   * Opens `path` for appending: creates it with a genesis record bound to `lmkCheckValue`, or verifies
   * the existing chain (refusing, HSM_AUDIT_BROKEN, a broken one or one bound to another LMK) and
   * continues it. `now` is injectable for tests.
   */
  static async open(path: string, opts: { lmkCheckValue: string; now?: () => Date }): Promise<AuditLog> {
    const now = opts.now ?? (() => new Date());
    const lmk = opts.lmkCheckValue.toUpperCase();
    if (!/^[0-9A-F]{1,32}$/.test(lmk)) {
      throw new HsmError('HSM_AUDIT_EVENT', 'lmkCheckValue', 'must be 1-32 hex digits');
    }
    if (!existsSync(path)) {
      const fd = openSync(path, 'a', 0o600);
      const log = new AuditLog(path, fd, 0, '', lmk, now);
      log.#write({ who: 'hsm', command: AUDIT_GENESIS_COMMAND }, lmk);
      return log;
    }
    const v = await verifyAuditLog(path, { lmkCheckValue: lmk });
    if (!v.ok) throw new HsmError('HSM_AUDIT_BROKEN', `audit line ${v.line}`, v.reason);
    let last = '';
    for await (const { text } of readLines(path)) last = text;
    return new AuditLog(path, openSync(path, 'a', 0o600), v.lines, last, lmk, now);
  }

  #write(event: AuditEvent, lmkCheckValue?: string): AuditRecord {
    if (this.#fd < 0) throw new HsmError('HSM_AUDIT_BROKEN', 'audit', 'the log is closed');
    const seq = this.#seq + 1;
    const prev = seq === 1 ? auditGenesisHash(this.lmkCheckValue) : sha256Hex(this.#prevText);
    const base = { seq, time: this.#now().toISOString(), ...event, lmkCheckValue, prev };
    const line = lineOf(base);
    const bytes = Buffer.from(`${line}\n`, 'utf8');
    if (bytes.length > AUDIT_MAX_LINE_BYTES) throw new HsmError('HSM_AUDIT_EVENT', 'event', 'line too long');
    let off = 0;
    while (off < bytes.length) off += writeSync(this.#fd, bytes, off);
    // The event is durable before the command that caused it answers (or before the ceremony goes on).
    fsyncSync(this.#fd);
    this.#seq = seq;
    this.#prevText = line;
    return JSON.parse(line) as AuditRecord;
  }

  /** Appends one event (validated: HSM_AUDIT_EVENT), written and fsync'ed before it returns. */
  append(event: AuditEvent): AuditRecord {
    checkEvent(event);
    return this.#write(event);
  }

  /** Number of lines written so far, genesis included. */
  get lines(): number {
    return this.#seq;
  }

  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }
}
