/**
 * The switch journal: every request from an acquirer and the answer the switch gave, in SQLite (or
 * PostgreSQL) through
 * @openposp/store. It feeds end-of-day reconciliation (issue 6: a row whose outcome is `issuer_timeout`
 * or `issuer_mac_failed` is a possible single-sided account) and `inquire`, the switch's part of
 * `posp txn show`.
 *
 * A row is written when the request arrives (outcome `pending`) and completed when it is answered, so
 * a crash between the two leaves a visible `pending` row rather than nothing. Only masked PANs are
 * stored; a PIN block, track data or key is never handed to this module.
 */
import { maskPan } from '@openposp/iso8583';
import { openStore, type Store } from '@openposp/store';
import { SWITCH_MIGRATIONS } from './migrations.js';

/** How a request ended at the switch. The response code is in `responseCode`. */
export const SWITCH_OUTCOMES = {
  pending: 'received, not answered yet (a crash, or still in flight)',
  answered: "the issuer's answer, MAC verified, was forwarded to the acquirer",
  format_error: 'the request lacked or had malformed identity or PAN fields: answered 30',
  unknown_acquirer: 'field 32 names no configured acquirer: answered A0 without a MAC',
  acquirer_mismatch: 'field 32 differs from the acquirer bound to this connection: answered A0 without a MAC',
  mac_missing: 'the request carried no MAC: answered A0',
  mac_failed: "the request's MAC did not verify under the acquirer's ZAK: answered A0",
  no_route: 'no routing entry matches the BIN: answered 14',
  no_issuer: 'the BIN routes to an issuer with no configured link: answered 15',
  issuer_down: 'the issuer link was configured but not connected, nothing was sent: answered 91',
  duplicate_in_flight: 'a request with the same identity was still in flight to the issuer: answered 94',
  issuer_busy: 'the issuer link had its maximum of requests in flight, nothing was sent: answered 91',
  issuer_timeout: 'sent; no answer within the issuer timeout (or the link closed): answered 91',
  issuer_mac_failed: "sent; the issuer's answer failed its MAC check, treated as no answer: answered 91",
  issuer_malformed: "sent; the issuer's answer did not unpack or was not a response: answered 91",
  pin_invalid: 'the PIN block did not translate (does not decode under the acquirer ZPK): answered 30',
  hsm_failed: 'an HSM call failed or timed out: answered 96',
} as const;

export type SwitchOutcome = keyof typeof SWITCH_OUTCOMES;

/** What the switch records of a request when it arrives. No PIN block, track data or full PAN. */
export interface JournalRequest {
  receivedAtMs: number;
  mti: string;
  processingCode?: string | undefined;
  acquirerId?: string | undefined;
  terminalId?: string | undefined;
  merchantId?: string | undefined;
  stan?: string | undefined;
  localDate?: string | undefined;
  localTime?: string | undefined;
  transmissionAt?: string | undefined;
  rrn?: string | undefined;
  /** The full PAN is masked here (first 6, last 4) before it reaches the database. */
  pan?: string | undefined;
  amountMinor?: number | undefined;
  currency?: string | undefined;
  originalData?: string | undefined;
  hasPin: boolean;
}

export interface JournalAnswer {
  outcome: SwitchOutcome;
  responseCode: string;
  responseMti?: string | undefined;
  authCode?: string | undefined;
  issuerId?: string | undefined;
  /** `routes[i]` of the routing entry that matched. */
  binEntry?: string | undefined;
  forwardingId?: string | undefined;
  forwardedAtMs?: number | undefined;
  answeredAtMs: number;
}

export interface JournalEntry {
  id: number;
  receivedAtMs: number;
  mti: string;
  processingCode: string | null;
  acquirerId: string | null;
  forwardingId: string | null;
  terminalId: string | null;
  merchantId: string | null;
  stan: string | null;
  localDate: string | null;
  localTime: string | null;
  transmissionAt: string | null;
  rrn: string | null;
  panMasked: string | null;
  amountMinor: number | null;
  currency: string | null;
  originalData: string | null;
  hasPin: boolean;
  binEntry: string | null;
  issuerId: string | null;
  forwardedAtMs: number | null;
  responseMti: string | null;
  responseCode: string | null;
  authCode: string | null;
  outcome: SwitchOutcome;
  answeredAtMs: number | null;
  durationMs: number | null;
}

/** `posp txn show` keys: the transaction identity of docs/network.md, or the RRN. */
export type JournalQuery =
  | { rrn: string }
  | { acquirerId: string; terminalId: string; stan: string; localDate: string };

/** At most this many rows per inquiry (an RRN is unique per acquirer, so a few acquirers may share one). */
export const INQUIRY_ROWS_MAX = 100;

interface Row {
  id: number;
  received_at_ms: number;
  mti: string;
  processing_code: string | null;
  acquirer_id: string | null;
  forwarding_id: string | null;
  terminal_id: string | null;
  merchant_id: string | null;
  stan: string | null;
  local_date: string | null;
  local_time: string | null;
  transmission_at: string | null;
  rrn: string | null;
  pan_masked: string | null;
  amount_minor: number | null;
  currency: string | null;
  original_data: string | null;
  has_pin: number;
  bin_entry: string | null;
  issuer_id: string | null;
  forwarded_at_ms: number | null;
  response_mti: string | null;
  response_code: string | null;
  auth_code: string | null;
  outcome: string;
  answered_at_ms: number | null;
  duration_ms: number | null;
}

function fromRow(r: Row): JournalEntry {
  return {
    id: r.id,
    receivedAtMs: r.received_at_ms,
    mti: r.mti,
    processingCode: r.processing_code,
    acquirerId: r.acquirer_id,
    forwardingId: r.forwarding_id,
    terminalId: r.terminal_id,
    merchantId: r.merchant_id,
    stan: r.stan,
    localDate: r.local_date,
    localTime: r.local_time,
    transmissionAt: r.transmission_at,
    rrn: r.rrn,
    panMasked: r.pan_masked,
    amountMinor: r.amount_minor,
    currency: r.currency,
    originalData: r.original_data,
    hasPin: r.has_pin === 1,
    binEntry: r.bin_entry,
    issuerId: r.issuer_id,
    forwardedAtMs: r.forwarded_at_ms,
    responseMti: r.response_mti,
    responseCode: r.response_code,
    authCode: r.auth_code,
    outcome: r.outcome as SwitchOutcome,
    answeredAtMs: r.answered_at_ms,
    durationMs: r.duration_ms,
  };
}

const n = (v: string | number | undefined): string | number | null => (v === undefined ? null : v);

export class SwitchJournal {
  readonly store: Store;

  constructor(store: Store) {
    this.store = store;
  }

  /**
   * Opens (creating and migrating) the journal database at `path` (`:memory:` for a throwaway one), or
   * the PostgreSQL database of a `postgres://` URL.
   */
  static async open(path: string): Promise<SwitchJournal> {
    return new SwitchJournal(await openStore(path, { migrations: SWITCH_MIGRATIONS }));
  }

  /** Records an arriving request (outcome `pending`); returns its row id. */
  async recordRequest(r: JournalRequest): Promise<number> {
    const pan = r.pan === undefined ? null : maskPan(r.pan);
    // RETURNING (SQLite 3.35+, PostgreSQL): the row id without a second statement another call could interleave with.
    const row = await this.store.get<{ id: number }>(
      `INSERT INTO switch_journal (received_at_ms, mti, processing_code, acquirer_id, terminal_id, merchant_id,
         stan, local_date, local_time, transmission_at, rrn, pan_masked, amount_minor, currency, original_data,
         has_pin, outcome)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending') RETURNING id`,
      [
        r.receivedAtMs,
        r.mti,
        n(r.processingCode),
        n(r.acquirerId),
        n(r.terminalId),
        n(r.merchantId),
        n(r.stan),
        n(r.localDate),
        n(r.localTime),
        n(r.transmissionAt),
        n(r.rrn),
        pan,
        n(r.amountMinor),
        n(r.currency),
        n(r.originalData),
        r.hasPin ? 1 : 0,
      ],
    );
    return row?.id ?? 0;
  }

  /** Completes a row with the answer the switch gave. */
  async recordAnswer(id: number, a: JournalAnswer): Promise<void> {
    await this.store.run(
      `UPDATE switch_journal SET outcome = ?, response_code = ?, response_mti = ?, auth_code = ?, issuer_id = ?,
         bin_entry = ?, forwarding_id = ?, forwarded_at_ms = ?, answered_at_ms = ?,
         duration_ms = ? - received_at_ms
       WHERE id = ?`,
      [
        a.outcome,
        a.responseCode,
        n(a.responseMti),
        n(a.authCode),
        n(a.issuerId),
        n(a.binEntry),
        n(a.forwardingId),
        n(a.forwardedAtMs),
        a.answeredAtMs,
        a.answeredAtMs,
        id,
      ],
    );
  }

  /** The rows of one transaction, oldest first: by RRN, or by identity (32, 41, 11, 13). */
  async inquire(q: JournalQuery): Promise<JournalEntry[]> {
    const rows =
      'rrn' in q
        ? await this.store.all<Row>(`SELECT * FROM switch_journal WHERE rrn = ? ORDER BY id LIMIT ?`, [
            q.rrn,
            INQUIRY_ROWS_MAX,
          ])
        : await this.store.all<Row>(
            `SELECT * FROM switch_journal WHERE acquirer_id = ? AND terminal_id = ? AND stan = ? AND local_date = ?
             ORDER BY id LIMIT ?`,
            [q.acquirerId, q.terminalId, q.stan, q.localDate, INQUIRY_ROWS_MAX],
          );
    return rows.map(fromRow);
  }

  /** Rows received in [fromMs, toMs), oldest first, for reconciliation (issue 6); at most `limit`. */
  async between(fromMs: number, toMs: number, limit = 10_000): Promise<JournalEntry[]> {
    const rows = await this.store.all<Row>(
      'SELECT * FROM switch_journal WHERE received_at_ms >= ? AND received_at_ms < ? ORDER BY id LIMIT ?',
      [fromMs, toMs, limit],
    );
    return rows.map(fromRow);
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}
