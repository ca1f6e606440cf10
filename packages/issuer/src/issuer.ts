/**
 * The issuer's authorization engine (發卡行): card accounts, PIN verification through the HSM, the
 * double-entry ledger, idempotency on the transaction identity, notifications, inquiry.
 *
 * It works on `IssuerRequest` values (wire.ts turns ISO 8583 messages into these); every answer is a
 * response code. The order of checks for each transaction type is an ordered list of early returns
 * (README.md, "Decision order"). Money moves only inside one database transaction that also records
 * the answer under the request's identity, so an answer given is a state kept, and a duplicate gets
 * the recorded answer again, never a second posting.
 *
 * The clear PIN never exists here: a PIN block (format 0 under the zone ZPK) goes to the HSM with the
 * card's PVK and offset/PVV (EA/EC) and comes back as yes/no.
 */
import { randomInt } from 'node:crypto';
import { fromAscii, selectValidationDataIbm3624, toHex } from '@openposp/crypto';
import type { HsmApi } from '@openposp/hsm';
import type { Logger } from '@openposp/net';
import type { Queryable, Store } from '@openposp/store';
import {
  CARD_LIMIT_MINOR_DEFAULT,
  type CardInput,
  type CardStatus,
  maskPan,
  PIN_TRIES_MAX,
  type PinVerificationData,
  type ValidationDataRule,
  validateCardInput,
  validationDataFor,
} from './cards.js';
import { writeIssuerClearingFile } from './clearing.js';
import type { ResponseCode } from './codes.js';
import { IssuerError } from './errors.js';
import {
  type AccountBalance,
  auditLedger,
  ensureAccount,
  FUNDING_ACCOUNT_ID,
  getBalance,
  type LedgerAudit,
  nowIso,
  placeHoldIn,
  post,
  releaseHoldIn,
} from './ledger.js';

/** How long one HSM call may take before the request is answered 96 (docs/network.md: HSM call 5 s). */
export const ISSUER_HSM_TIMEOUT_MS_DEFAULT = 5000;
/** Currency of the accounts (ISO 4217 numeric; docs/network.md field 49). */
export const ISSUER_CURRENCY_DEFAULT = '156';

/** docs/network.md: (32, 41, 11, 13) = acquirer, terminal, STAN, local date MMDD. */
export interface TransactionIdentity {
  acquirerId: string;
  terminalId: string;
  stan: string;
  localDate: string;
}

/** Field 90, original data elements (ISO 8583:1987): MTI, STAN, transmission date-time, acquirer, forwarder. */
export interface OriginalDataElements {
  mti: string;
  stan: string;
  transmissionDt: string;
  acquirerId: string;
  forwardingId: string;
  /** The 42 digits as received (part of the duplicate-content comparison). */
  raw: string;
}

export interface IssuerRequest {
  /** 0200, 0201 (repeat), 0400, 0401 (repeat). */
  mti: string;
  identity: TransactionIdentity;
  processingCode: string;
  amountMinor: number;
  pan: string;
  expiryYymm?: string;
  /** Encrypted PIN block, ISO 9564-1 format 0 under the zone ZPK. */
  pinBlock?: Uint8Array;
  localTime?: string;
  transmissionDt?: string;
  rrn?: string;
  merchantId?: string;
  currency?: string;
  original?: OriginalDataElements;
}

export type TxnType = 'purchase' | 'inquiry' | 'void' | 'refund' | 'reversal' | 'unsupported';

export interface IssuerAnswer {
  responseCode: ResponseCode;
  /** 6 characters, approved purchases, voids and refunds only. */
  authCode?: string;
  /** Field 54 (balance inquiry): `1002156C000000012345`. */
  additionalAmounts?: string;
  /** True when this is the recorded answer of an earlier request with the same identity. */
  replay: boolean;
  type: TxnType;
  /** Row id of the recorded transaction (absent for answers that are not recorded: 30, 96). */
  txnId?: number;
  /** Why (for the log line): never card data. */
  reason?: string;
}

export interface IssuerOptions {
  store: Store;
  hsm: HsmApi;
  /** Zone PIN key shared with the switch (key block under the LMK). */
  zpk: string;
  /** Zone MAC key shared with the switch (key block under the LMK). */
  zak: string;
  /** MAC key (TAK/ZAK type, X9.19) used only to turn a PAN into the token the database keys cards by. */
  panTokenKey: string;
  /** The clearing account credited by purchases and debited by refunds (created when missing). */
  settlementAccountId: string;
  currency?: string;
  hsmTimeoutMs?: number;
  now?: () => Date;
  log?: Logger;
}

/** The true state of one transaction at the issuer (`posp txn show`). */
export interface TransactionView {
  id: number;
  type: TxnType;
  mti: string;
  identity: TransactionIdentity;
  rrn: string | null;
  maskedPan: string | null;
  amountMinor: number;
  responseCode: string;
  authCode: string | null;
  /** approved | declined | voided | reversed | refunded | partially-refunded | reversal-applied | reversal-without-original */
  state: string;
  moneyMoved: boolean;
  refundedMinor: number;
  originalTxnId: number | null;
  voidedByTxnId: number | null;
  reversedByTxnId: number | null;
  note: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface NotificationView {
  id: number;
  txnId: number;
  maskedPan: string;
  type: 'debit' | 'refund' | 'void' | 'reversal';
  amountMinor: number;
  text: string;
  createdAt: string;
}

export interface CardView {
  accountId: string;
  maskedPan: string;
  expiry: string;
  serviceCode: string;
  status: CardStatus;
  pinTries: number;
  limitMinor: number;
  pinMethod: 'ibm3624' | 'pvv';
  pinEnrolled: boolean;
  balance: AccountBalance;
}

/** Inputs of `enrolPin`: a PIN block typed on an enrolment PIN pad, under a TPK (or ZPK) the issuer's HSM holds. */
export interface EnrolPinRequest {
  pan: string;
  pinBlock: Uint8Array;
  /** TPK or ZPK key block under the LMK that the PIN block is encrypted under. */
  pinKey: string;
  /** ISO 9564-1 format of the block; default 0. */
  format?: 0 | 1 | 3;
}

interface CardRow {
  pan_token: string;
  account_id: string;
  masked_pan: string;
  expiry_yymm: string;
  service_code: string;
  status: CardStatus;
  pin_method: 'ibm3624' | 'pvv';
  pvk: string;
  decimalisation_table: string | null;
  validation_data_rule: string | null;
  pin_offset: string | null;
  pvki: string | null;
  pvv: string | null;
  pin_tries: number;
  limit_minor: number;
}

interface TxnRow {
  id: number;
  msg_class: '02' | '04';
  acquirer_id: string;
  terminal_id: string;
  stan: string;
  local_date: string;
  mti: string;
  type: TxnType;
  processing_code: string;
  amount_minor: number;
  pan_token: string | null;
  masked_pan: string | null;
  account_id: string | null;
  rrn: string | null;
  orig_data: string | null;
  original_txn_id: number | null;
  family_id: number | null;
  response_code: string;
  auth_code: string | null;
  additional_amounts: string | null;
  applied: number;
  refunded_minor: number;
  voided_by: number | null;
  reversed_by: number | null;
  note: string | null;
  created_at: string;
  updated_at: string;
}

type PinResult = 'ok' | 'wrong' | 'absent' | 'unenrolled' | 'skipped';

/** What `decide` settled: the answer and the effects to write once the row exists. */
interface Outcome {
  responseCode: ResponseCode;
  reason: string;
  accountId?: string | null;
  original?: TxnRow;
  familyId?: number | null;
  additionalAmounts?: string;
  authCode?: boolean;
  /** Writes postings, flags and notifications; true when it moved money or state (the row's `applied`). */
  apply?: (tx: Queryable, txnId: number) => Promise<boolean>;
}

/** Leading zeros of an institution id are padding (field 90.4 is 11 digits, field 32 LLVAR). */
export function normalizeInstitutionId(id: string): string {
  const s = id.replace(/^0+/, '');
  return s === '' ? '0' : s;
}

/** Request MTI with the repeat digit cleared (0201 -> 0200): a repeat is the same request. */
function baseMti(mti: string): string {
  const last = mti.charCodeAt(3) - 48;
  return last % 2 === 1 && last <= 5 ? mti.slice(0, 3) + String(last - 1) : mti;
}

export function typeOf(mti: string, processingCode: string): TxnType {
  if (mti.startsWith('04')) return 'reversal';
  if (!mti.startsWith('02')) return 'unsupported';
  switch (processingCode.slice(0, 2)) {
    case '00':
      return 'purchase';
    case '31':
      return 'inquiry';
    case '02':
      return 'void';
    case '20':
      return 'refund';
    default:
      return 'unsupported';
  }
}

/** Field 54, ISO 8583:1987 additional amounts: account type 10, amount type 02 (available), currency, C/D, 12 digits. */
export function formatAdditionalAmounts(availableMinor: number, currency: string): string {
  const sign = availableMinor < 0 ? 'D' : 'C';
  return `1002${currency}${sign}${String(Math.abs(availableMinor)).padStart(12, '0')}`;
}

/** 12.34 from 1234 (integer arithmetic, no float rounding). */
export function formatMajor(minor: number): string {
  const sign = minor < 0 ? '-' : '';
  const a = Math.abs(minor);
  return `${sign}${Math.trunc(a / 100)}.${String(a % 100).padStart(2, '0')}`;
}

const NOTIFY_VERB: Record<NotificationView['type'], string> = {
  debit: '消费',
  refund: '退货入账',
  void: '消费撤销入账',
  reversal: '冲正',
};

/** The seed's SMS: "您尾号0123的卡消费 12.34 元，可用余额 87.66 元". */
export function notificationText(
  type: NotificationView['type'],
  maskedPan: string,
  amountMinor: number,
  availableMinor: number,
): string {
  return `您尾号${maskedPan.slice(-4)}的卡${NOTIFY_VERB[type]} ${formatMajor(amountMinor)} 元，可用余额 ${formatMajor(availableMinor)} 元`;
}

/** Card expiry YYMM is valid through the end of that month (ISO/IEC 7813); 20YY assumed. */
export function isExpired(expiryYymm: string, now: Date): boolean {
  const card = 2000 * 100 + Number(expiryYymm);
  const current = now.getUTCFullYear() * 100 + (now.getUTCMonth() + 1);
  return card < current;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new IssuerError('ISSUER_HSM_FAILED', what, `no answer within ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function authCode(): string {
  return String(randomInt(0, 1_000_000)).padStart(6, '0');
}

export class Issuer {
  readonly store: Store;
  readonly hsm: HsmApi;
  readonly zpk: string;
  readonly zak: string;
  readonly settlementAccountId: string;
  readonly currency: string;
  readonly hsmTimeoutMs: number;
  readonly now: () => Date;
  readonly log: Logger | undefined;
  readonly #panTokenKey: string;
  readonly #locks = new Map<string, Promise<unknown>>();

  private constructor(opts: IssuerOptions) {
    this.store = opts.store;
    this.hsm = opts.hsm;
    this.zpk = opts.zpk;
    this.zak = opts.zak;
    this.#panTokenKey = opts.panTokenKey;
    this.settlementAccountId = opts.settlementAccountId;
    this.currency = opts.currency ?? ISSUER_CURRENCY_DEFAULT;
    this.hsmTimeoutMs = opts.hsmTimeoutMs ?? ISSUER_HSM_TIMEOUT_MS_DEFAULT;
    this.now = opts.now ?? (() => new Date());
    this.log = opts.log;
  }

  /** Creates the engine over an open store (migrated with ISSUER_MIGRATIONS); ensures the clearing and funding accounts. */
  static async open(opts: IssuerOptions): Promise<Issuer> {
    const issuer = new Issuer(opts);
    const now = issuer.now();
    await issuer.store.transaction(async (tx) => {
      await ensureAccount(tx, issuer.settlementAccountId, 'clearing', issuer.currency, now);
      await ensureAccount(tx, FUNDING_ACCOUNT_ID, 'funding', issuer.currency, now);
    });
    return issuer;
  }

  /** The token cards are stored under: X9.19 MAC (ISO 9797-1 alg. 3, padding 2) of the PAN's ASCII under the PAN token key, by the HSM. */
  async panToken(pan: string): Promise<string> {
    const mac = await withTimeout(
      this.hsm.generateMac({
        key: this.#panTokenKey,
        algorithm: 'iso9797-1-3',
        data: fromAscii(pan),
        padding: 2,
      }),
      this.hsmTimeoutMs,
      'panToken',
    );
    return toHex(mac);
  }

  // --- card administration -------------------------------------------------------------------

  /** Creates a card account (and its opening balance, from the funding account). */
  async addCard(input: CardInput): Promise<{ accountId: string; maskedPan: string }> {
    const card = validateCardInput(input);
    const token = await this.#tokenOrThrow(card.pan);
    const now = this.now();
    const maskedPan = maskPan(card.pan);
    return this.store.transaction(async (tx) => {
      if (await tx.get('SELECT 1 AS x FROM cards WHERE pan_token = ?', [token])) {
        throw new IssuerError('ISSUER_CARD_EXISTS', 'pan', 'a card account with this PAN exists');
      }
      const n = (await tx.get<{ n: number }>('SELECT COUNT(*) AS n FROM cards'))!.n;
      const accountId = `card-${String(n + 1).padStart(8, '0')}`;
      await ensureAccount(tx, accountId, 'cardholder', this.currency, now);
      const pin = card.pin;
      await tx.run(
        `INSERT INTO cards (pan_token, account_id, masked_pan, expiry_yymm, service_code, status, pin_method, pvk,
           decimalisation_table, validation_data_rule, pin_offset, pvki, pvv, pin_tries, limit_minor, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
        [
          token,
          accountId,
          maskedPan,
          card.expiry,
          card.serviceCode,
          card.status ?? 'active',
          pin.method,
          pin.pvk,
          pin.method === 'ibm3624' ? pin.decimalisationTable : null,
          pin.method === 'ibm3624' ? JSON.stringify(pin.validationData) : null,
          pin.method === 'ibm3624' ? (pin.offset ?? null) : null,
          pin.method === 'pvv' ? pin.pvki : null,
          pin.method === 'pvv' ? (pin.pvv ?? null) : null,
          card.limitMinor ?? CARD_LIMIT_MINOR_DEFAULT,
          nowIso(now),
        ],
      );
      if (card.balanceMinor !== undefined && card.balanceMinor > 0) {
        await post(tx, {
          txnId: null,
          kind: 'opening',
          now,
          entries: [
            { accountId, amountMinor: card.balanceMinor },
            { accountId: FUNDING_ACCOUNT_ID, amountMinor: -card.balanceMinor },
          ],
        });
      }
      return { accountId, maskedPan };
    });
  }

  /** Loads a card list; cards already present (same PAN) are left as they are. Returns how many were added. */
  async loadCards(cards: readonly CardInput[]): Promise<{ added: number; existing: number }> {
    let added = 0;
    let existing = 0;
    for (const c of cards) {
      try {
        await this.addCard(c);
        added++;
      } catch (e) {
        if (e instanceof IssuerError && e.code === 'ISSUER_CARD_EXISTS') existing++;
        else throw e;
      }
    }
    return { added, existing };
  }

  /**
   * PIN enrolment (card issuing, PIN change at a branch): the cardholder types the PIN on an enrolment
   * PIN pad that encrypts it under a TPK; the issuer's HSM turns that block into the IBM 3624 offset
   * (BK) or the PVV (FW) for the card's PVK. The clear PIN never reaches this process. Resets the PIN
   * try counter and lifts a PIN block (not a `blocked` status).
   */
  async enrolPin(req: EnrolPinRequest): Promise<void> {
    const token = await this.#tokenOrThrow(req.pan);
    const card = await this.store.get<CardRow>('SELECT * FROM cards WHERE pan_token = ?', [token]);
    if (card === undefined) throw new IssuerError('ISSUER_CARD_UNKNOWN', 'pan', 'no card account');
    const base = {
      pinBlock: req.pinBlock,
      format: req.format ?? 0,
      pan: req.pan,
      pinKey: req.pinKey,
      pvk: card.pvk,
    };
    let offset: string | null = null;
    let pvv: string | null = null;
    try {
      if (card.pin_method === 'ibm3624') {
        const rule = JSON.parse(card.validation_data_rule!) as ValidationDataRule;
        const r = await withTimeout(
          this.hsm.generateIbm3624Offset({
            ...base,
            decimalisationTable: card.decimalisation_table!,
            validationData: toHex(selectValidationDataIbm3624(req.pan, validationDataFor(req.pan, rule))),
          }),
          this.hsmTimeoutMs,
          'enrolPin',
        );
        offset = r.offset;
      } else {
        const r = await withTimeout(
          this.hsm.generatePvv({ ...base, pvki: card.pvki! }),
          this.hsmTimeoutMs,
          'enrolPin',
        );
        pvv = r.pvv;
      }
    } catch (e) {
      if (e instanceof IssuerError) throw e;
      throw new IssuerError(
        'ISSUER_HSM_FAILED',
        'enrolPin',
        `HSM refused (${(e as { code?: string }).code ?? 'error'})`,
        {
          cause: e,
        },
      );
    }
    await this.store.run(
      `UPDATE cards SET pin_offset = COALESCE(?, pin_offset), pvv = COALESCE(?, pvv), pin_tries = 0,
         status = CASE WHEN status = 'pin-blocked' THEN 'active' ELSE status END WHERE pan_token = ?`,
      [offset, pvv, token],
    );
  }

  /** Sets a card's status (operator action: block, unblock). */
  async setCardStatus(pan: string, status: CardStatus): Promise<void> {
    const token = await this.#tokenOrThrow(pan);
    const r = await this.store.run(
      `UPDATE cards SET status = ?, pin_tries = CASE WHEN ? = 'active' THEN 0 ELSE pin_tries END WHERE pan_token = ?`,
      [status, status, token],
    );
    if (r.changes === 0) throw new IssuerError('ISSUER_CARD_UNKNOWN', 'pan', 'no card account');
  }

  async card(pan: string): Promise<CardView | undefined> {
    const token = await this.#tokenOrThrow(pan);
    const c = await this.store.get<CardRow>('SELECT * FROM cards WHERE pan_token = ?', [token]);
    if (c === undefined) return undefined;
    return {
      accountId: c.account_id,
      maskedPan: c.masked_pan,
      expiry: c.expiry_yymm,
      serviceCode: c.service_code,
      status: c.status,
      pinTries: c.pin_tries,
      limitMinor: c.limit_minor,
      pinMethod: c.pin_method,
      pinEnrolled: (c.pin_method === 'ibm3624' ? c.pin_offset : c.pvv) !== null,
      balance: (await getBalance(this.store, c.account_id))!,
    };
  }

  async balance(accountId: string): Promise<AccountBalance | undefined> {
    return getBalance(this.store, accountId);
  }

  /** Reserves part of an account's available balance (暫扣); the ledger balance does not move. */
  async placeHold(accountId: string, amountMinor: number, reason: string): Promise<number> {
    return this.store.transaction((tx) => placeHoldIn(tx, accountId, amountMinor, reason, this.now()));
  }

  async releaseHold(holdId: number): Promise<void> {
    await this.store.transaction((tx) => releaseHoldIn(tx, holdId, this.now()));
  }

  /**
   * Writes this issuer's clearing file of `date` (YYYYMMDD) in `dir`: `clearing-<party>-<date>.jsonl`,
   * `party` = the issuer id the switch routes to (docs/network.md "Clearing files"; clearing.ts).
   */
  writeClearingFile(dir: string, date: string, party: string): Promise<{ path: string; records: number }> {
    return writeIssuerClearingFile(this.store, { dir, date, party, currency: this.currency });
  }

  /** The ledger invariants (L1..L7, ledger.ts). */
  auditLedger(): Promise<LedgerAudit> {
    return this.store.transaction((tx) => auditLedger(tx));
  }

  async notifications(opts: { accountId?: string; limit?: number } = {}): Promise<NotificationView[]> {
    const limit = Math.min(Math.max(1, opts.limit ?? 100), 10_000);
    const rows = await this.store.all<{
      id: number;
      txn_id: number;
      masked_pan: string;
      type: NotificationView['type'];
      amount_minor: number;
      text: string;
      created_at: string;
    }>(
      `SELECT id, txn_id, masked_pan, type, amount_minor, text, created_at FROM notifications
       ${opts.accountId === undefined ? '' : 'WHERE account_id = ?'} ORDER BY id LIMIT ${limit}`,
      opts.accountId === undefined ? [] : [opts.accountId],
    );
    return rows.map((r) => ({
      id: r.id,
      txnId: r.txn_id,
      maskedPan: r.masked_pan,
      type: r.type,
      amountMinor: r.amount_minor,
      text: r.text,
      createdAt: r.created_at,
    }));
  }

  /**
   * The true state of a transaction here: by RRN (field 37), or by identity (32, 41, 11, 13), which
   * may name a financial request and the reversal of it (a reversal may repeat its original's identity).
   */
  async inquire(key: { rrn: string } | TransactionIdentity): Promise<TransactionView[]> {
    const rows =
      'rrn' in key
        ? await this.store.all<TxnRow>('SELECT * FROM transactions WHERE rrn = ? ORDER BY id', [key.rrn])
        : await this.store.all<TxnRow>(
            'SELECT * FROM transactions WHERE acquirer_id = ? AND terminal_id = ? AND stan = ? AND local_date = ? ORDER BY id',
            [normalizeInstitutionId(key.acquirerId), key.terminalId, key.stan, key.localDate],
          );
    return rows.map(viewOf);
  }

  // --- authorization ---------------------------------------------------------------------------

  /**
   * Answers one request. Never throws for a decline; rejects only for a bug. HSM or database failures
   * are answered 96 and not recorded (nothing happened, a retry is processed afresh). `opts.panToken`:
   * the token of `req.pan`, already asked of the HSM (`panToken`) by a caller that sent it beside the
   * request's MAC check; a failure of it is answered 96 as here.
   */
  async authorize(req: IssuerRequest, opts: { panToken?: Promise<string> } = {}): Promise<IssuerAnswer> {
    const type = typeOf(req.mti, req.processingCode);
    if ((type === 'void' || type === 'refund') && req.original === undefined) {
      return { responseCode: '30', type, replay: false, reason: 'field 90 (original data elements) missing' };
    }
    if ((type === 'purchase' || type === 'inquiry') && req.pinBlock === undefined) {
      return { responseCode: '30', type, replay: false, reason: 'field 52 (PIN block) missing' };
    }
    let token: string;
    try {
      token = await (opts.panToken ?? this.panToken(req.pan));
    } catch (e) {
      return { responseCode: '96', type, replay: false, reason: `PAN token: ${errorCode(e)}` };
    }
    const id = req.identity;
    const msgClass = req.mti.startsWith('04') ? '04' : '02';
    const key = `${msgClass}|${normalizeInstitutionId(id.acquirerId)}|${id.terminalId}|${id.stan}|${id.localDate}`;
    return this.#serial(key, async () => {
      try {
        const first = await this.#findByIdentity(this.store, msgClass, req);
        if (first !== undefined) return replayOf(first, req, token, type);
        const card = await this.store.get<CardRow>('SELECT * FROM cards WHERE pan_token = ?', [token]);
        const pin = await this.#verifyPin(type, card, req);
        return await this.store.transaction(async (tx) => {
          // Not read again in here: the identity's unique key decides (the insert's ON CONFLICT; a
          // request recorded meanwhile, here or on another node, throws IdentityTaken and gets that
          // first answer below). On PostgreSQL a read of the identity index in every authorization made
          // concurrent ones conflict (SSI locks index pages that every insert touches; issue 7).
          return this.#decideAndRecord(tx, msgClass, type, req, token, pin);
        });
      } catch (e) {
        if (e instanceof IdentityTaken) {
          const first = await this.#findByIdentity(this.store, msgClass, req).catch(() => undefined);
          if (first !== undefined) return replayOf(first, req, token, type);
        }
        return { responseCode: '96', type, replay: false, reason: `system: ${errorCode(e)}` };
      }
    });
  }

  /**
   * Reconciliation's refund (issue 6 §4): reverses the financial transaction of `identity` (32, 41, 11,
   * 13) here, as if a 0420 reversal advice with that identity had arrived, without the PAN (a clearing
   * record carries only the masked PAN; the original's row holds the PAN token). It goes through the same
   * decision and undo as a reversal from the wire (`#decideReversal`), under the same identity lock and
   * unique key, so it is idempotent with any 0400/0420 of that identity, before or after: a second one
   * changes nothing and gets the first answer. No original recorded: answered 25 and nothing recorded
   * (reconciliation only refunds what the issuer has). `rrn`/`note` are recorded on the reversal row.
   */
  async reverseByIdentity(
    identity: TransactionIdentity,
    opts: { note?: string; transmissionDt?: string } = {},
  ): Promise<IssuerAnswer> {
    const id = identity;
    const acq = normalizeInstitutionId(id.acquirerId);
    const key = `04|${acq}|${id.terminalId}|${id.stan}|${id.localDate}`;
    return this.#serial(key, async () => {
      try {
        return await this.store.transaction(async (tx) => {
          const original = await tx.get<TxnRow>(
            "SELECT * FROM transactions WHERE msg_class = '02' AND acquirer_id = ? AND terminal_id = ? AND stan = ? AND local_date = ?",
            [acq, id.terminalId, id.stan, id.localDate],
          );
          if (original === undefined || original.pan_token === null) {
            return {
              responseCode: '25',
              type: 'reversal',
              replay: false,
              reason: 'original not found: nothing to reverse',
            } satisfies IssuerAnswer;
          }
          const req: IssuerRequest = {
            mti: '0420',
            identity: { ...id },
            processingCode: original.processing_code,
            amountMinor: original.amount_minor,
            pan: '',
            ...(original.rrn === null ? {} : { rrn: original.rrn }),
            ...(opts.transmissionDt === undefined ? {} : { transmissionDt: opts.transmissionDt }),
          };
          const first = await this.#findByIdentity(tx, '04', req);
          // A reversal of this identity is already recorded (the terminal's, or an earlier refund): it
          // stands, whatever its field 90 said; nothing changes.
          if (first !== undefined) return recordedAnswer(first, 'reversal');
          const answer = await this.#decideAndRecord(
            tx,
            '04',
            'reversal',
            req,
            original.pan_token,
            'skipped',
            original.masked_pan ?? '',
          );
          if (opts.note !== undefined && answer.txnId !== undefined)
            await tx.run('UPDATE transactions SET note = ? WHERE id = ?', [
              `${answer.reason ?? ''}; ${opts.note}`,
              answer.txnId,
            ]);
          return answer;
        });
      } catch (e) {
        return { responseCode: '96', type: 'reversal', replay: false, reason: `system: ${errorCode(e)}` };
      }
    });
  }

  async #tokenOrThrow(pan: string): Promise<string> {
    if (typeof pan !== 'string' || !/^\d{12,19}$/.test(pan)) {
      throw new IssuerError('ISSUER_ACCOUNTS_INVALID', 'pan', 'must be 12 to 19 digits');
    }
    try {
      return await this.panToken(pan);
    } catch (e) {
      if (e instanceof IssuerError) throw e;
      throw new IssuerError('ISSUER_HSM_FAILED', 'panToken', `HSM refused (${errorCode(e)})`, { cause: e });
    }
  }

  /** One request per identity at a time in this process; the database unique key guards the rest. */
  async #serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#locks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    }
  }

  #findByIdentity(q: Queryable, msgClass: string, req: IssuerRequest): Promise<TxnRow | undefined> {
    const id = req.identity;
    return q.get<TxnRow>(
      'SELECT * FROM transactions WHERE msg_class = ? AND acquirer_id = ? AND terminal_id = ? AND stan = ? AND local_date = ?',
      [msgClass, normalizeInstitutionId(id.acquirerId), id.terminalId, id.stan, id.localDate],
    );
  }

  /** EA / EC through the HSM, outside the database transaction. Throws on HSM failure (answered 96). */
  async #verifyPin(type: TxnType, card: CardRow | undefined, req: IssuerRequest): Promise<PinResult> {
    const wants = type === 'purchase' || type === 'inquiry' || type === 'void';
    if (!wants || card === undefined || card.status !== 'active') return 'skipped';
    // A void may come without a PIN (the terminal leg does not ask for one); when it has one, it is checked.
    if (req.pinBlock === undefined) return type === 'void' ? 'skipped' : 'absent';
    const base = {
      pinBlock: req.pinBlock,
      format: 0 as const,
      pan: req.pan,
      pinKey: this.zpk,
      pvk: card.pvk,
    };
    let ok: boolean;
    if (card.pin_method === 'ibm3624') {
      if (card.pin_offset === null) return 'unenrolled';
      const rule = JSON.parse(card.validation_data_rule!) as ValidationDataRule;
      const validationData = toHex(selectValidationDataIbm3624(req.pan, validationDataFor(req.pan, rule)));
      ok = (
        await withTimeout(
          this.hsm.verifyPinIbm3624({
            ...base,
            decimalisationTable: card.decimalisation_table!,
            validationData,
            offset: card.pin_offset,
          }),
          this.hsmTimeoutMs,
          'verifyPin',
        )
      ).ok;
    } else {
      if (card.pvv === null) return 'unenrolled';
      ok = (
        await withTimeout(
          this.hsm.verifyPinPvv({ ...base, pvki: card.pvki!, pvv: card.pvv }),
          this.hsmTimeoutMs,
          'verifyPin',
        )
      ).ok;
    }
    return ok ? 'ok' : 'wrong';
  }

  async #decideAndRecord(
    tx: Queryable,
    msgClass: '02' | '04',
    type: TxnType,
    req: IssuerRequest,
    token: string,
    pin: PinResult,
    maskedPan?: string,
  ): Promise<IssuerAnswer> {
    const now = this.now();
    const card = await tx.get<CardRow>('SELECT * FROM cards WHERE pan_token = ?', [token]);
    const out = await this.#decide(tx, type, req, token, card, pin, now);
    const code = out.responseCode;
    const approved = code === '00' && out.authCode === true;
    const auth = approved ? authCode() : null;
    const id = req.identity;
    const orig = req.original;
    const reversalKey = msgClass === '04' && out.original === undefined;
    const row = await tx.get<{ id: number }>(
      `INSERT INTO transactions (msg_class, acquirer_id, terminal_id, stan, local_date, mti, type, processing_code,
         amount_minor, pan_token, masked_pan, account_id, local_time, transmission_dt, rrn, merchant_id, orig_data,
         orig_acquirer_id, orig_stan, orig_transmission_dt, orig_local_date, original_txn_id, family_id, response_code,
         auth_code, additional_amounts, applied, note, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)
       ON CONFLICT (msg_class, acquirer_id, terminal_id, stan, local_date) DO NOTHING RETURNING id`,
      [
        msgClass,
        normalizeInstitutionId(id.acquirerId),
        id.terminalId,
        id.stan,
        id.localDate,
        baseMti(req.mti),
        type,
        req.processingCode,
        req.amountMinor,
        token,
        maskedPan ?? maskPan(req.pan),
        out.accountId ?? card?.account_id ?? null,
        req.localTime ?? null,
        req.transmissionDt ?? null,
        req.rrn ?? null,
        req.merchantId ?? null,
        orig?.raw ?? null,
        reversalKey ? originalAcquirer(req) : null,
        reversalKey ? (orig?.stan ?? id.stan) : null,
        reversalKey ? (orig?.transmissionDt ?? null) : null,
        reversalKey ? id.localDate : null,
        out.original?.id ?? null,
        out.familyId ?? null,
        code,
        auth,
        out.additionalAmounts ?? null,
        out.reason,
        nowIso(now),
        nowIso(now),
      ],
    );
    // Another node recorded this identity since the re-check (PostgreSQL usually aborts this
    // transaction for it first, and the retry finds the row): nothing of this one is kept.
    if (row === undefined) throw new IdentityTaken();
    const txnId = row.id;
    if (out.apply !== undefined) {
      const applied = await out.apply(tx, txnId);
      if (applied) await tx.run('UPDATE transactions SET applied = 1 WHERE id = ?', [txnId]);
    }
    return {
      responseCode: code,
      ...(auth === null ? {} : { authCode: auth }),
      ...(out.additionalAmounts === undefined ? {} : { additionalAmounts: out.additionalAmounts }),
      replay: false,
      type,
      txnId,
      reason: out.reason,
    };
  }

  /** The ordered checks of each transaction type (README.md, "Decision order"). Reads; writes only PIN tries. */
  async #decide(
    tx: Queryable,
    type: TxnType,
    req: IssuerRequest,
    token: string,
    card: CardRow | undefined,
    pin: PinResult,
    now: Date,
  ): Promise<Outcome> {
    if (type === 'unsupported') return { responseCode: '12', reason: 'unsupported processing code or MTI' };
    if (req.currency !== undefined && req.currency !== this.currency) {
      return { responseCode: '13', reason: 'currency is not the account currency' };
    }
    if (type === 'reversal') return this.#decideReversal(tx, req, token, card, now);
    if (type !== 'inquiry' && req.amountMinor <= 0)
      return { responseCode: '13', reason: 'amount must be > 0' };
    if (card === undefined) return { responseCode: '14', reason: 'no card account' };
    const late = await this.#reversedBeforeArrival(tx, req);
    if (late !== undefined) {
      return {
        responseCode: '12',
        reason: `reversed before it arrived (reversal ${late.id})`,
        apply: async (t, txnId) => {
          await t.run('UPDATE transactions SET original_txn_id = ?, updated_at = ? WHERE id = ?', [
            txnId,
            nowIso(now),
            late.id,
          ]);
          await t.run('UPDATE transactions SET reversed_by = ? WHERE id = ?', [late.id, txnId]);
          return false;
        },
      };
    }
    if (type === 'purchase' || type === 'inquiry') {
      if (card.status === 'blocked') return { responseCode: '62', reason: 'card blocked' };
      if (type === 'purchase' && card.service_code[2] === '3') {
        return { responseCode: '62', reason: 'service code: ATM only' };
      }
      if (isExpired(card.expiry_yymm, now)) return { responseCode: '54', reason: 'card expired' };
      if (req.expiryYymm !== undefined && req.expiryYymm !== card.expiry_yymm) {
        return { responseCode: '54', reason: 'field 14 differs from the card expiry' };
      }
      const pinOutcome = await this.#applyPin(tx, card, pin);
      if (pinOutcome !== undefined) return pinOutcome;
      const bal = (await getBalance(tx, card.account_id))!;
      if (type === 'inquiry') {
        return {
          responseCode: '00',
          reason: 'balance',
          additionalAmounts: formatAdditionalAmounts(bal.availableMinor, this.currency),
        };
      }
      if (req.amountMinor > card.limit_minor) return { responseCode: '61', reason: 'above the card limit' };
      if (bal.availableMinor < req.amountMinor) return { responseCode: '51', reason: 'insufficient funds' };
      const amount = req.amountMinor;
      return {
        responseCode: '00',
        reason: 'approved',
        authCode: true,
        apply: async (t, txnId) => {
          await t.run('UPDATE transactions SET family_id = id WHERE id = ?', [txnId]);
          await this.#move(t, txnId, 'purchase', card, -amount, 'debit', now);
          return true;
        },
      };
    }
    // void or refund: find the original purchase by field 90.
    const original = await this.#findOriginal(tx, req);
    if (original === undefined) return { responseCode: '25', reason: 'original not found' };
    if (original.pan_token !== token)
      return { responseCode: '25', reason: 'original belongs to another card' };
    if (original.type !== 'purchase') return { responseCode: '12', reason: `original is a ${original.type}` };
    if (original.applied !== 1) return { responseCode: '12', reason: 'original was not approved' };
    if (original.voided_by !== null) return { responseCode: '12', reason: 'original already voided' };
    if (original.reversed_by !== null) return { responseCode: '12', reason: 'original was reversed' };
    const base = { original, familyId: original.family_id, accountId: card.account_id };
    if (type === 'void') {
      if (original.refunded_minor > 0)
        return { ...base, responseCode: '12', reason: 'original partly refunded' };
      if (req.amountMinor !== original.amount_minor) {
        return { ...base, responseCode: '13', reason: 'void amount is not the original amount' };
      }
      if (pin !== 'skipped') {
        const pinOutcome = await this.#applyPin(tx, card, pin);
        if (pinOutcome !== undefined) return { ...base, ...pinOutcome };
      }
      const amount = original.amount_minor;
      return {
        ...base,
        responseCode: '00',
        reason: 'voided',
        authCode: true,
        apply: async (t, txnId) => {
          await t.run('UPDATE transactions SET voided_by = ?, updated_at = ? WHERE id = ?', [
            txnId,
            nowIso(now),
            original.id,
          ]);
          await this.#move(t, txnId, 'void', card, amount, 'void', now);
          return true;
        },
      };
    }
    const remaining = original.amount_minor - original.refunded_minor;
    if (req.amountMinor > remaining) {
      return { ...base, responseCode: '13', reason: 'refund above the remaining original amount' };
    }
    const amount = req.amountMinor;
    return {
      ...base,
      responseCode: '00',
      reason: 'refunded',
      authCode: true,
      apply: async (t, txnId) => {
        await t.run(
          'UPDATE transactions SET refunded_minor = refunded_minor + ?, updated_at = ? WHERE id = ?',
          [amount, nowIso(now), original.id],
        );
        await this.#move(t, txnId, 'refund', card, amount, 'refund', now);
        return true;
      },
    };
  }

  /** PIN outcome on the ladder: undefined when the PIN is right (the try counter is reset). */
  async #applyPin(tx: Queryable, card: CardRow, pin: PinResult): Promise<Outcome | undefined> {
    if (card.status === 'pin-blocked') return { responseCode: '75', reason: 'card PIN-blocked' };
    if (pin === 'skipped' || pin === 'absent') {
      // The card's status changed between the PIN check and now (e.g. unblocked): not verified, so not approved.
      return { responseCode: '55', reason: 'PIN not verified' };
    }
    if (pin === 'unenrolled') return { responseCode: '55', reason: 'no PIN enrolled for the card' };
    if (pin === 'ok') {
      if (card.pin_tries > 0)
        await tx.run('UPDATE cards SET pin_tries = 0 WHERE pan_token = ?', [card.pan_token]);
      return undefined;
    }
    const tries = card.pin_tries + 1;
    if (tries >= PIN_TRIES_MAX) {
      await tx.run("UPDATE cards SET pin_tries = ?, status = 'pin-blocked' WHERE pan_token = ?", [
        tries,
        card.pan_token,
      ]);
      return { responseCode: '75', reason: `wrong PIN, try ${tries}: PIN-blocked` };
    }
    await tx.run('UPDATE cards SET pin_tries = ? WHERE pan_token = ?', [tries, card.pan_token]);
    return { responseCode: '55', reason: `wrong PIN, try ${tries}` };
  }

  /**
   * The original a void, refund or reversal names: field 90 gives the original STAN (90.2),
   * transmission date-time (90.3) and acquirer (90.4, or field 32 when 90.4 is zeros); the terminal is
   * this request's field 41. The row whose field 7 equals 90.3 wins; when none does (a sender that
   * does not keep field 7), the latest financial request with that acquirer, terminal and STAN.
   * A reversal without field 90 names its original by repeating its identity (32, 41, 11, 13).
   */
  async #findOriginal(q: Queryable, req: IssuerRequest): Promise<TxnRow | undefined> {
    const o = req.original;
    if (o === undefined) {
      const id = req.identity;
      return q.get<TxnRow>(
        "SELECT * FROM transactions WHERE msg_class = '02' AND acquirer_id = ? AND terminal_id = ? AND stan = ? AND local_date = ?",
        [normalizeInstitutionId(id.acquirerId), id.terminalId, id.stan, id.localDate],
      );
    }
    const acq = originalAcquirer(req);
    const exact = await q.get<TxnRow>(
      "SELECT * FROM transactions WHERE msg_class = '02' AND acquirer_id = ? AND terminal_id = ? AND stan = ? AND transmission_dt = ? ORDER BY id DESC LIMIT 1",
      [acq, req.identity.terminalId, o.stan, o.transmissionDt],
    );
    if (exact !== undefined) return exact;
    return q.get<TxnRow>(
      "SELECT * FROM transactions WHERE msg_class = '02' AND acquirer_id = ? AND terminal_id = ? AND stan = ? ORDER BY id DESC LIMIT 1",
      [acq, req.identity.terminalId, o.stan],
    );
  }

  /** A reversal recorded before its original arrived (tombstone): same acquirer, terminal, STAN, and field 7 or date. */
  #reversedBeforeArrival(q: Queryable, req: IssuerRequest): Promise<TxnRow | undefined> {
    const id = req.identity;
    return q.get<TxnRow>(
      `SELECT * FROM transactions WHERE msg_class = '04' AND original_txn_id IS NULL AND orig_acquirer_id = ?
         AND terminal_id = ? AND orig_stan = ? AND (orig_transmission_dt = ? OR orig_local_date = ?)
       ORDER BY id LIMIT 1`,
      [normalizeInstitutionId(id.acquirerId), id.terminalId, id.stan, req.transmissionDt ?? '', id.localDate],
    );
  }

  /**
   * Reversal (0400): undo the original if it was applied, once; 00 even when the original was never
   * seen (recorded, so that the original, arriving late, is declined 12 and moves no money).
   */
  async #decideReversal(
    tx: Queryable,
    req: IssuerRequest,
    token: string,
    card: CardRow | undefined,
    now: Date,
  ): Promise<Outcome> {
    const original = await this.#findOriginal(tx, req);
    if (original === undefined) return { responseCode: '00', reason: 'original not seen: recorded' };
    const base = { original, familyId: original.family_id, accountId: original.account_id };
    if (original.pan_token !== token)
      return { ...base, responseCode: '25', reason: 'original belongs to another card' };
    if (req.amountMinor !== original.amount_minor) {
      return { ...base, responseCode: '13', reason: 'reversal amount is not the original amount' };
    }
    if (original.reversed_by !== null)
      return { ...base, responseCode: '00', reason: 'original already reversed' };
    const mark = async (t: Queryable, txnId: number) =>
      t.run('UPDATE transactions SET reversed_by = ?, updated_at = ? WHERE id = ?', [
        txnId,
        nowIso(now),
        original.id,
      ]);
    if (original.applied !== 1 || card === undefined) {
      return {
        ...base,
        responseCode: '00',
        reason: `nothing to undo (original answered ${original.response_code})`,
        apply: async (t, txnId) => {
          await mark(t, txnId);
          return false;
        },
      };
    }
    const purchase =
      original.type === 'purchase'
        ? original
        : await tx.get<TxnRow>('SELECT * FROM transactions WHERE id = ?', [original.original_txn_id]);
    return {
      ...base,
      responseCode: '00',
      reason: `reversed a ${original.type}`,
      apply: async (t, txnId) => {
        await mark(t, txnId);
        const purchaseLive = purchase !== undefined && purchase.reversed_by === null;
        if (original.type === 'purchase') {
          // A voided purchase has its money back already; a partly refunded one gets the rest back.
          const back = original.voided_by === null ? original.amount_minor - original.refunded_minor : 0;
          if (back > 0) await this.#move(t, txnId, 'reversal', card, back, 'reversal', now);
        } else if (original.type === 'void' && purchase !== undefined) {
          await t.run('UPDATE transactions SET voided_by = NULL, updated_at = ? WHERE id = ?', [
            nowIso(now),
            purchase.id,
          ]);
          // The purchase stands again: its debit is restored (even past the available balance: the
          // cardholder had the goods; a reversal is not declined for funds).
          if (purchaseLive)
            await this.#move(t, txnId, 'reversal', card, -original.amount_minor, 'reversal', now);
        } else if (original.type === 'refund' && purchase !== undefined) {
          await t.run(
            'UPDATE transactions SET refunded_minor = refunded_minor - ?, updated_at = ? WHERE id = ?',
            [original.amount_minor, nowIso(now), purchase.id],
          );
          if (purchaseLive)
            await this.#move(t, txnId, 'reversal', card, -original.amount_minor, 'reversal', now);
        }
        return true;
      },
    };
  }

  /** One posting between the cardholder and the clearing account, and its notification. */
  async #move(
    tx: Queryable,
    txnId: number,
    kind: string,
    card: CardRow,
    cardholderMinor: number,
    notify: NotificationView['type'],
    now: Date,
  ): Promise<void> {
    await post(tx, {
      txnId,
      kind,
      now,
      entries: [
        { accountId: card.account_id, amountMinor: cardholderMinor },
        { accountId: this.settlementAccountId, amountMinor: -cardholderMinor },
      ],
    });
    const bal = (await getBalance(tx, card.account_id))!;
    const amount = Math.abs(cardholderMinor);
    await tx.run(
      'INSERT INTO notifications (txn_id, account_id, masked_pan, type, amount_minor, text, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [
        txnId,
        card.account_id,
        card.masked_pan,
        notify,
        amount,
        notificationText(notify, card.masked_pan, amount, bal.availableMinor),
        nowIso(now),
      ],
    );
  }
}

/** The identity's row appeared between the re-check and the insert (another issuer node wrote it). */
class IdentityTaken extends Error {}

function originalAcquirer(req: IssuerRequest): string {
  const o = req.original;
  if (o !== undefined && /[1-9]/.test(o.acquirerId)) return normalizeInstitutionId(o.acquirerId);
  return normalizeInstitutionId(req.identity.acquirerId);
}

function errorCode(e: unknown): string {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : e instanceof Error ? e.name : 'error';
}

/**
 * Two request MTIs name the same request: equal, or both reversals (0400 request, 0420 advice): the
 * POSP's store and forward sends as 0420 what it may already have sent as 0400, and that must get the
 * first answer, not 94 (docs/network.md "Reversal").
 */
function sameRequestKind(a: string, b: string): boolean {
  return a === b || (a.startsWith('04') && b.startsWith('04'));
}

/** The first answer again when the content is the same; 94 when the same identity carries other content. */
function replayOf(first: TxnRow, req: IssuerRequest, token: string, type: TxnType): IssuerAnswer {
  const same =
    sameRequestKind(first.mti, baseMti(req.mti)) &&
    first.processing_code === req.processingCode &&
    first.amount_minor === req.amountMinor &&
    first.pan_token === token &&
    ((first.orig_data ?? '') === (req.original?.raw ?? '') ||
      // A reversal recorded by reconciliation (`reverseByIdentity`) has no field 90 to compare: the
      // acquirer's 0400/0420 of that identity arriving later is the same reversal.
      (first.mti.startsWith('04') && first.orig_data === null));
  if (!same) {
    return {
      responseCode: '94',
      type,
      replay: false,
      txnId: first.id,
      reason: 'duplicate identity, other content',
    };
  }
  return recordedAnswer(first, type);
}

/** The answer recorded in `first`, given again. */
function recordedAnswer(first: TxnRow, type: TxnType): IssuerAnswer {
  return {
    responseCode: first.response_code as ResponseCode,
    ...(first.auth_code === null ? {} : { authCode: first.auth_code }),
    ...(first.additional_amounts === null ? {} : { additionalAmounts: first.additional_amounts }),
    replay: true,
    type,
    txnId: first.id,
    reason: 'duplicate: first answer again',
  };
}

function viewOf(r: TxnRow): TransactionView {
  let state: string;
  if (r.msg_class === '04') {
    state = r.original_txn_id === null ? 'reversal-without-original' : 'reversal-applied';
  } else if (r.response_code !== '00') state = 'declined';
  else if (r.reversed_by !== null) state = 'reversed';
  else if (r.voided_by !== null) state = 'voided';
  else if (r.refunded_minor > 0)
    state = r.refunded_minor === r.amount_minor ? 'refunded' : 'partially-refunded';
  else state = 'approved';
  return {
    id: r.id,
    type: r.type,
    mti: r.mti,
    identity: { acquirerId: r.acquirer_id, terminalId: r.terminal_id, stan: r.stan, localDate: r.local_date },
    rrn: r.rrn,
    maskedPan: r.masked_pan,
    amountMinor: r.amount_minor,
    responseCode: r.response_code,
    authCode: r.auth_code,
    state,
    moneyMoved: r.applied === 1,
    refundedMinor: r.refunded_minor,
    originalTxnId: r.original_txn_id,
    voidedByTxnId: r.voided_by,
    reversedByTxnId: r.reversed_by,
    note: r.note,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export type { PinVerificationData };
