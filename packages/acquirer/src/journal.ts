/**
 * The POSP journal (流水): one row per financial request that passed MAC verification, from the moment
 * it is received to its outcome. It is what answers a replay, what a void or refund finds its original
 * in, what `posp txn show` reads (the seed's hotline) and what issue 6 reconciles and reverses from.
 *
 * Identity: (terminal id, STAN, transaction date), the date being the terminal's MMDD resolved to a full
 * date against the POSP's (see clock.ts). The RRN is the human handle, 12 digits from a persisted counter.
 *
 * States: received -> sent -> answered | unknown; received -> declined (answered by the POSP itself).
 * `unknown` = sent and no valid answer within the bound: the issuer may or may not have acted.
 *
 * Never stored: a full PAN (only masked, first 6 / last 4), a PIN block, track data, CVV, a key.
 */
import type { Queryable, Store } from '@openposp/store';
import { AcquirerError } from './errors.js';
import { RRN_SEQUENCE } from './migrations.js';

export type TxnType = 'purchase' | 'inquiry' | 'void' | 'refund';
export type JournalState = 'received' | 'sent' | 'answered' | 'unknown' | 'declined';

export interface JournalEntry {
  rrn: string;
  terminalId: string;
  merchantId: string;
  stan: string;
  /** YYYYMMDD: the terminal's field 13 with its year. */
  txnDate: string;
  /** hhmmss, field 12. */
  localTime: string;
  batchNo: string;
  terminalMti: string;
  txnType: TxnType;
  processingCode: string;
  amountMinor: number | undefined;
  currency: string;
  /** First 6 and last 4 digits, the rest `*`. */
  panMasked: string;
  entryMode: string;
  /** Non-secret fields of the request that a replay must repeat exactly (see pipeline.ts). */
  fingerprint: string;
  state: JournalState;
  responseCode: string | undefined;
  authCode: string | undefined;
  additionalAmounts: string | undefined;
  settlementDate: string | undefined;
  networkMti: string | undefined;
  /** Field 7 sent to the switch, MMDDhhmmss UTC (field 90.3 of a later void, refund or reversal). */
  transmissionDateTime: string | undefined;
  acquirerId: string;
  forwardingId: string | undefined;
  originalRrn: string | undefined;
  voidedByRrn: string | undefined;
  receivedAt: string;
  sentAt: string | undefined;
  finishedAt: string | undefined;
  /** Issue 6: `owed` (a reversal is queued or on its way upstream), `reversed` (acknowledged 00), `refused`. */
  reversalState: 'owed' | 'reversed' | 'refused' | undefined;
  /** The switch's 39 to the reversal. */
  reversalCode: string | undefined;
}

export type NewJournalEntry = Pick<
  JournalEntry,
  | 'terminalId'
  | 'merchantId'
  | 'stan'
  | 'txnDate'
  | 'localTime'
  | 'batchNo'
  | 'terminalMti'
  | 'txnType'
  | 'processingCode'
  | 'amountMinor'
  | 'currency'
  | 'panMasked'
  | 'entryMode'
  | 'fingerprint'
  | 'acquirerId'
  | 'originalRrn'
  | 'receivedAt'
>;

type Row = Record<string, string | number | null>;

const s = (v: string | number | null | undefined): string | undefined =>
  v === null || v === undefined ? undefined : String(v);

function rowToEntry(r: Row): JournalEntry {
  return {
    rrn: String(r.rrn),
    terminalId: String(r.terminal_id),
    merchantId: String(r.merchant_id),
    stan: String(r.stan),
    txnDate: String(r.txn_date),
    localTime: String(r.local_time),
    batchNo: String(r.batch_no),
    terminalMti: String(r.terminal_mti),
    txnType: r.txn_type as TxnType,
    processingCode: String(r.processing_code),
    amountMinor: r.amount_minor === null ? undefined : Number(r.amount_minor),
    currency: String(r.currency),
    panMasked: String(r.pan_masked),
    entryMode: String(r.entry_mode),
    fingerprint: String(r.fingerprint),
    state: r.state as JournalState,
    responseCode: s(r.response_code),
    authCode: s(r.auth_code),
    additionalAmounts: s(r.additional_amounts),
    settlementDate: s(r.settlement_date),
    networkMti: s(r.network_mti),
    transmissionDateTime: s(r.transmission_dt),
    acquirerId: String(r.acquirer_id),
    forwardingId: s(r.forwarding_id),
    originalRrn: s(r.original_rrn),
    voidedByRrn: s(r.voided_by_rrn),
    receivedAt: String(r.received_at),
    sentAt: s(r.sent_at),
    finishedAt: s(r.finished_at),
    reversalState: (s(r.reversal_state) as JournalEntry['reversalState']) ?? undefined,
    reversalCode: s(r.reversal_code),
  };
}

/** How often `awaitOutcome` reads an entry another node has in flight. */
export const JOURNAL_POLL_MS = 20;

/** RRN width (ISO 8583 field 37, an12). */
export const RRN_DIGITS = 12;

export type ReserveResult = { kind: 'new'; entry: JournalEntry } | { kind: 'duplicate'; entry: JournalEntry };

export interface Outcome {
  state: 'answered' | 'unknown' | 'declined';
  responseCode: string;
  authCode?: string | undefined;
  additionalAmounts?: string | undefined;
  settlementDate?: string | undefined;
  forwardingId?: string | undefined;
  finishedAt: string;
}

/** The values of a new journal row after its RRN, in the column order both reserve statements name. */
function entryParams(e: NewJournalEntry): (string | number | null)[] {
  return [
    e.terminalId,
    e.merchantId,
    e.stan,
    e.txnDate,
    e.localTime,
    e.batchNo,
    e.terminalMti,
    e.txnType,
    e.processingCode,
    e.amountMinor ?? null,
    e.currency,
    e.panMasked,
    e.entryMode,
    e.fingerprint,
    e.acquirerId,
    e.originalRrn ?? null,
    e.receivedAt,
  ];
}

export class Journal {
  constructor(private readonly store: Store) {}

  /**
   * Records a new request under its identity and gives it the next RRN, in one transaction; or, when
   * the identity is already journaled, returns that entry (a replay or a concurrent duplicate).
   */
  async reserve(e: NewJournalEntry): Promise<ReserveResult> {
    if (this.store.dialect === 'postgres') return this.#reservePostgres(e);
    return this.store.transaction(async (tx) => {
      const dup = await tx.get<Row>(
        'SELECT * FROM journal WHERE terminal_id = ? AND stan = ? AND txn_date = ?',
        [e.terminalId, e.stan, e.txnDate],
      );
      if (dup !== undefined) return { kind: 'duplicate', entry: rowToEntry(dup) };
      await tx.run("UPDATE counters SET value = value + 1 WHERE name = 'rrn'");
      const c = await tx.get<{ value: number }>("SELECT value FROM counters WHERE name = 'rrn'");
      const rrn = String(c!.value % 10 ** RRN_DIGITS).padStart(RRN_DIGITS, '0');
      await tx.run(
        `INSERT INTO journal (rrn, terminal_id, merchant_id, stan, txn_date, local_time, batch_no, terminal_mti,
           txn_type, processing_code, amount_minor, currency, pan_masked, entry_mode, fingerprint, state,
           acquirer_id, original_rrn, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'received', ?, ?, ?)`,
        [rrn, ...entryParams(e)],
      );
      return { kind: 'new', entry: (await byRrn(tx, rrn))! };
    });
  }

  /**
   * PostgreSQL, several POSP nodes on one database: one statement, no transaction and no row every
   * authorization writes. The RRN comes from the sequence (a number a retried or conflicting insert
   * used is skipped, never given twice); the identity's unique key decides between two nodes that
   * journal the same request at once: ON CONFLICT waits for the other insert and then inserts nothing,
   * and the row it made is the duplicate's answer.
   */
  async #reservePostgres(e: NewJournalEntry): Promise<ReserveResult> {
    const inserted = await this.store.get<Row>(
      `INSERT INTO journal (rrn, terminal_id, merchant_id, stan, txn_date, local_time, batch_no, terminal_mti,
         txn_type, processing_code, amount_minor, currency, pan_masked, entry_mode, fingerprint, state,
         acquirer_id, original_rrn, received_at)
       VALUES (LPAD(CAST(nextval('${RRN_SEQUENCE}') AS TEXT), ${RRN_DIGITS}, '0'), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
         'received', ?, ?, ?)
       ON CONFLICT (terminal_id, stan, txn_date) DO NOTHING RETURNING *`,
      entryParams(e),
    );
    if (inserted !== undefined) return { kind: 'new', entry: rowToEntry(inserted) };
    const dup = await this.byIdentity(e.terminalId, e.stan, e.txnDate);
    if (dup === undefined)
      throw new AcquirerError('ACQUIRER_JOURNAL_CONFLICT', 'journal', 'identity taken but not readable');
    return { kind: 'duplicate', entry: dup };
  }

  /**
   * True when other processes may journal into the same database (PostgreSQL): an entry still
   * `received` or `sent` may then be in flight on another POSP node, not only in this one.
   */
  get shared(): boolean {
    return this.store.dialect === 'postgres';
  }

  /**
   * Reads `e` again every `pollMs` until it has an outcome (no longer `received` or `sent`) or `waitMs`
   * have passed; returns the last read. For a duplicate whose first copy another node is processing.
   */
  async awaitOutcome(e: JournalEntry, waitMs: number, pollMs = JOURNAL_POLL_MS): Promise<JournalEntry> {
    const until = Date.now() + waitMs;
    let cur = e;
    while ((cur.state === 'received' || cur.state === 'sent') && Date.now() < until) {
      await new Promise((r) => setTimeout(r, Math.max(1, Math.min(pollMs, until - Date.now()))));
      cur = (await this.byRrn(cur.rrn)) ?? cur;
    }
    return cur;
  }

  /** Written before the request goes to the switch: from here on, only the switch knows the outcome. */
  async markSent(
    rrn: string,
    networkMti: string,
    transmissionDateTime: string,
    sentAt: string,
  ): Promise<void> {
    await this.store.run(
      "UPDATE journal SET state = 'sent', network_mti = ?, transmission_dt = ?, sent_at = ? WHERE rrn = ? AND state = 'received'",
      [networkMti, transmissionDateTime, sentAt, rrn],
    );
  }

  async finish(rrn: string, o: Outcome): Promise<void> {
    await this.store.run(
      `UPDATE journal SET state = ?, response_code = ?, auth_code = ?, additional_amounts = ?, settlement_date = ?,
         forwarding_id = ?, finished_at = ? WHERE rrn = ? AND state IN ('received', 'sent')`,
      [
        o.state,
        o.responseCode,
        o.authCode ?? null,
        o.additionalAmounts ?? null,
        o.settlementDate ?? null,
        o.forwardingId ?? null,
        o.finishedAt,
        rrn,
      ],
    );
  }

  /** Links an approved void to the purchase it voided. */
  async markVoided(originalRrn: string, voidRrn: string): Promise<void> {
    await this.store.run('UPDATE journal SET voided_by_rrn = ? WHERE rrn = ? AND voided_by_rrn IS NULL', [
      voidRrn,
      originalRrn,
    ]);
  }

  /** Records which transaction a void or refund refers to. */
  async linkOriginal(rrn: string, originalRrn: string): Promise<void> {
    await this.store.run('UPDATE journal SET original_rrn = ? WHERE rrn = ?', [originalRrn, rrn]);
  }

  /** Sum of the refunds of an original that were approved or may have been (sent, unknown), minor units. */
  async refundedMinor(originalRrn: string): Promise<number> {
    const r = await this.store.get<{ total: number | null }>(
      `SELECT SUM(amount_minor) AS total FROM journal
       WHERE original_rrn = ? AND txn_type = 'refund'
         AND ((state = 'answered' AND response_code = '00') OR state IN ('sent', 'unknown'))`,
      [originalRrn],
    );
    return Number(r?.total ?? 0);
  }

  /** The original of a void or refund: terminal, batch and STAN (field 61), newest first. */
  async findOriginal(terminalId: string, batchNo: string, stan: string): Promise<JournalEntry[]> {
    const rows = await this.store.all<Row>(
      'SELECT * FROM journal WHERE terminal_id = ? AND batch_no = ? AND stan = ? ORDER BY id DESC',
      [terminalId, batchNo, stan],
    );
    return rows.map(rowToEntry);
  }

  /** The journal row of an RRN from any terminal (a refund that names its original by RRN only). */
  async byRrn(rrn: string): Promise<JournalEntry | undefined> {
    return byRrn(this.store, rrn);
  }

  async byIdentity(terminalId: string, stan: string, txnDate: string): Promise<JournalEntry | undefined> {
    const r = await this.store.get<Row>(
      'SELECT * FROM journal WHERE terminal_id = ? AND stan = ? AND txn_date = ?',
      [terminalId, stan, txnDate],
    );
    return r === undefined ? undefined : rowToEntry(r);
  }

  /** Entries in a state, oldest first (issue 6: the `unknown` ones are what reversal and reconciliation take). */
  async inState(state: JournalState, limit = 1000): Promise<JournalEntry[]> {
    const rows = await this.store.all<Row>('SELECT * FROM journal WHERE state = ? ORDER BY id LIMIT ?', [
      state,
      limit,
    ]);
    return rows.map(rowToEntry);
  }
}

async function byRrn(q: Queryable, rrn: string): Promise<JournalEntry | undefined> {
  const r = await q.get<Row>('SELECT * FROM journal WHERE rrn = ?', [rrn]);
  return r === undefined ? undefined : rowToEntry(r);
}
