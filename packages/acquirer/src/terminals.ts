/**
 * The terminal table (终端表): each terminal's identity, its TMK and current working keys as HSM key
 * blocks under the LMK, the date it last signed in and its batch. The POSP never holds a key in clear:
 * what is stored here is ciphertext only the HSM can use, and `toString`/logs never print it.
 */
import type { AcquirerHsm } from './hsm.js';
import type { Queryable, Store } from '@openposp/store';
import { AcquirerError } from './errors.js';

export type TerminalStatus = 'active' | 'disabled';

export interface TerminalRecord {
  terminalId: string;
  merchantId: string;
  merchantName: string;
  /** TMK key block under the LMK. */
  tmk: string;
  /** Current working keys (key blocks under the LMK); undefined before the first sign-in. */
  tpk: string | undefined;
  tak: string | undefined;
  tdk: string | undefined;
  /** POSP local date (YYYYMMDD) of the last sign-in. */
  signedInDate: string | undefined;
  /** n6 */
  batchNo: string;
  status: TerminalStatus;
}

export interface RegisterTerminalRequest {
  /** Field 41: 8 printable characters. */
  terminalId: string;
  /** Field 42: 15 printable characters. */
  merchantId: string;
  merchantName?: string;
  /** The TMK as an HSM key block under the LMK (from the key-injection ceremony). */
  tmk: string;
  /** When given, the HSM's check value of `tmk` must equal it (6 hex): proves the right key was entered. */
  tmkCheckValue?: string;
  /** Default '000001'. */
  batchNo?: string;
  status?: TerminalStatus;
}

interface TerminalRow {
  terminal_id: string;
  merchant_id: string;
  merchant_name: string;
  tmk: string;
  tpk: string | null;
  tak: string | null;
  tdk: string | null;
  signed_in_date: string | null;
  batch_no: string;
  status: TerminalStatus;
}

const ANS = /^[\x20-\x7e]+$/;

function rowToRecord(r: TerminalRow): TerminalRecord {
  const rec: TerminalRecord = {
    terminalId: r.terminal_id,
    merchantId: r.merchant_id,
    merchantName: r.merchant_name,
    tmk: r.tmk,
    tpk: r.tpk ?? undefined,
    tak: r.tak ?? undefined,
    tdk: r.tdk ?? undefined,
    signedInDate: r.signed_in_date ?? undefined,
    batchNo: r.batch_no,
    status: r.status,
  };
  // Key blocks are ciphertext, but a log line is still no place for them.
  Object.defineProperty(rec, 'toJSON', {
    enumerable: false,
    value: () => ({
      terminalId: rec.terminalId,
      merchantId: rec.merchantId,
      merchantName: rec.merchantName,
      signedInDate: rec.signedInDate,
      batchNo: rec.batchNo,
      status: rec.status,
      hasWorkingKeys: rec.tak !== undefined,
    }),
  });
  return rec;
}

/** Checks a registration; throws ACQUIRER_TERMINAL_INVALID naming the field. */
export function checkRegistration(req: RegisterTerminalRequest, at = 'terminal'): void {
  const bad = (field: string, rule: string): never => {
    throw new AcquirerError('ACQUIRER_TERMINAL_INVALID', `${at}.${field}`, rule);
  };
  if (typeof req !== 'object' || req === null) bad('', 'must be an object');
  if (typeof req.terminalId !== 'string' || req.terminalId.length !== 8 || !ANS.test(req.terminalId))
    bad('terminalId', 'must be 8 printable ASCII characters (field 41)');
  if (typeof req.merchantId !== 'string' || req.merchantId.length !== 15 || !ANS.test(req.merchantId))
    bad('merchantId', 'must be 15 printable ASCII characters (field 42)');
  if (
    req.merchantName !== undefined &&
    (typeof req.merchantName !== 'string' || req.merchantName.length > 40)
  )
    bad('merchantName', 'must be a string of at most 40 characters');
  if (typeof req.tmk !== 'string' || !/^S[\x21-\x7e]{16,}$/.test(req.tmk))
    bad('tmk', 'must be an HSM key block under the LMK (starts with S)');
  if (req.tmkCheckValue !== undefined && !/^[0-9A-Fa-f]{6}$/.test(String(req.tmkCheckValue)))
    bad('tmkCheckValue', 'must be 6 hex digits');
  if (req.batchNo !== undefined && !/^\d{6}$/.test(String(req.batchNo))) bad('batchNo', 'must be 6 digits');
  if (req.status !== undefined && req.status !== 'active' && req.status !== 'disabled')
    bad('status', 'must be active or disabled');
}

export class TerminalTable {
  constructor(
    private readonly store: Store,
    private readonly hsm: AcquirerHsm,
    private readonly nowIso: () => string,
  ) {}

  /**
   * Adds a terminal or updates its merchant data. The TMK is checked by the HSM (a block under another
   * LMK, or altered, is refused). A changed TMK drops the working keys: the terminal must sign in again.
   */
  async register(req: RegisterTerminalRequest): Promise<TerminalRecord> {
    checkRegistration(req);
    let kcv: string;
    try {
      kcv = await this.hsm.keyCheckValue(req.tmk);
    } catch {
      throw new AcquirerError(
        'ACQUIRER_TERMINAL_INVALID',
        'terminal.tmk',
        'the HSM does not accept this key block (wrong LMK, altered, or not a key block)',
      );
    }
    if (req.tmkCheckValue !== undefined && kcv.toUpperCase() !== req.tmkCheckValue.toUpperCase())
      throw new AcquirerError(
        'ACQUIRER_TERMINAL_INVALID',
        'terminal.tmkCheckValue',
        'does not match the check value of the TMK key block',
      );
    const now = this.nowIso();
    return this.store.transaction(async (tx) => {
      const cur = await tx.get<TerminalRow>('SELECT * FROM terminals WHERE terminal_id = ?', [
        req.terminalId,
      ]);
      if (cur === undefined) {
        await tx.run(
          `INSERT INTO terminals (terminal_id, merchant_id, merchant_name, tmk, batch_no, status, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            req.terminalId,
            req.merchantId,
            req.merchantName ?? '',
            req.tmk,
            req.batchNo ?? '000001',
            req.status ?? 'active',
            now,
            now,
          ],
        );
      } else {
        const tmkChanged = cur.tmk !== req.tmk;
        await tx.run(
          `UPDATE terminals SET merchant_id = ?, merchant_name = ?, tmk = ?, status = ?, batch_no = ?,
             tpk = ?, tak = ?, tdk = ?, signed_in_date = ?, updated_at = ? WHERE terminal_id = ?`,
          [
            req.merchantId,
            req.merchantName ?? cur.merchant_name,
            req.tmk,
            req.status ?? cur.status,
            req.batchNo ?? cur.batch_no,
            tmkChanged ? null : cur.tpk,
            tmkChanged ? null : cur.tak,
            tmkChanged ? null : cur.tdk,
            tmkChanged ? null : cur.signed_in_date,
            now,
            req.terminalId,
          ],
        );
      }
      return (await getIn(tx, req.terminalId))!;
    });
  }

  async get(terminalId: string): Promise<TerminalRecord | undefined> {
    return getIn(this.store, terminalId);
  }

  async list(): Promise<TerminalRecord[]> {
    const rows = await this.store.all<TerminalRow>('SELECT * FROM terminals ORDER BY terminal_id');
    return rows.map(rowToRecord);
  }

  /** Stores the LMK copies of the working keys of a sign-in and the POSP date it happened. */
  async storeWorkingKeys(
    terminalId: string,
    keys: { tpk: string; tak: string; tdk: string },
    signedInDate: string,
  ): Promise<void> {
    const now = this.nowIso();
    const r = await this.store.run(
      `UPDATE terminals SET tpk = ?, tak = ?, tdk = ?, signed_in_date = ?, signed_in_at = ?, updated_at = ?
       WHERE terminal_id = ?`,
      [keys.tpk, keys.tak, keys.tdk, signedInDate, now, now, terminalId],
    );
    if (r.changes !== 1)
      throw new AcquirerError(
        'ACQUIRER_TERMINAL_UNKNOWN',
        'terminalId',
        'no such terminal in the terminal table',
      );
  }
}

async function getIn(q: Queryable, terminalId: string): Promise<TerminalRecord | undefined> {
  const r = await q.get<TerminalRow>('SELECT * FROM terminals WHERE terminal_id = ?', [terminalId]);
  return r === undefined ? undefined : rowToRecord(r);
}
