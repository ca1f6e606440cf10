/**
 * The POS terminal (刷卡機) on the UnionPay terminal leg (`cup-pos`; docs/network.md "Message types on
 * the terminal leg", ../shared/cup-pos-dialect.md 2.1-2.6): sign-in, purchase, balance inquiry, void
 * and refund, with the PIN pad doing every key operation.
 *
 * One request at a time (a second call while one runs is TERMINAL_BUSY). Each exchange sends one
 * framed message (length | TPDU | header | message) to the POSP and waits a bounded time for the
 * answer. With `connection: 'per-exchange'` (the default) it opens a TCP connection for the exchange
 * and closes it after (short connection, as dial-up and GPRS terminals do); with `'kept'` one
 * connection is reused while it is up (LAN/IP terminals), and closed after any exchange that did not
 * end with a believed answer, so that the next one starts on a fresh connection.
 *
 * Before a reversible request (purchase, void: cup-pos-dialect.md 2.3) leaves, a reversal record is
 * written; it is cleared only by a valid answer (MAC verified, 11/41/42 echoed). A missing answer or
 * a bad MAC leaves it pending, and the terminal refuses further online transactions until it is
 * sent (automatic reversal is issue 6; `pendingReversal()` exposes the record).
 *
 * The results are values: `approved`, `declined`, `mac-failed` (an answer whose MAC did not verify:
 * not believed, not an approval) or `no-answer`.
 */
import { fromAscii, toAscii } from '@openposp/crypto';
import {
  type CompiledSpec,
  Iso8583Message,
  joinCupFrame,
  loadSpec,
  parseCupHeader,
  splitCupFrame,
  unpack,
} from '@openposp/iso8583';
import { createLogger, FramedClient, isNetError, type Logger } from '@openposp/net';
import { openSqliteStore, type Queryable, type Store } from '@openposp/store';
import { mkdirSync } from 'node:fs';
import { type Card, type CardInput, encryptTrackDataBlock, maskPan, parseCardInput } from './card.js';
import {
  loadTerminalConfig,
  type TerminalConfig,
  type TerminalConfigInput,
  validateTerminalConfig,
} from './config.js';
import { isTerminalError, TerminalError } from './errors.js';
import { TERMINAL_MIGRATIONS } from './migrations.js';
import { PinPad, type SlotInfo } from './pinpad.js';
import {
  computeSettlementTotals,
  formatSettlementField48,
  parseSettlementField48,
  SETTLEMENT_COUNT_MAX,
  SETTLEMENT_TOTAL_MAX_MINOR,
  type SettlementTotals,
  settlementSideOf,
} from './settlement.js';
import { formatReversalSlip, formatSettlementSlip, formatSlip, type ReversalSlipInput } from './slip.js';

/** The PIN pad slots the terminal uses. The other slots are free for other applications. */
export const TERMINAL_SLOTS = { tmk: 0, pik: 1, mak: 2, tdk: 3 } as const;

/** STAN (field 11) runs 1..999999 and wraps to 1. */
export const STAN_MAX = 999_999;
/** Batch numbers (60.2) run 1..999999. */
export const BATCH_MAX = 999_999;
/** Largest amount field 4 carries: 12 digits, and a safe integer. */
export const AMOUNT_MAX_MINOR = 999_999_999_999;

export type TransactionType = 'purchase' | 'balance-inquiry' | 'void' | 'refund';

/**
 * Field 39 values of a 0410 after which there is nothing left to undo: 00 reversed (or never seen,
 * docs/network.md: a reversal of an unknown transaction is acknowledged 00), 12 already reversed or
 * not reversible any more, 25 original not found. Anything else (A0, 30, 91, 96...) is tried again.
 */
export const REVERSAL_DONE_RESPONSE_CODES: readonly string[] = ['00', '12', '25'];
/** What the terminal shows when a pending reversal was acknowledged (the seed's wording). */
export const AUTO_REVERSAL_OK_MESSAGE = '自動沖正成功';
/** What it shows when every try of this round failed (the record stays; tried again later). */
export const AUTO_REVERSAL_FAILED_MESSAGE = '自動沖正失敗';

const sleep = (ms: number): Promise<void> =>
  ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();

export interface ReversalResult {
  /** `none`: nothing was pending; `reversed`: a valid 0410 cleared it; `failed`: it stays pending. */
  status: 'none' | 'reversed' | 'failed';
  /** AUTO_REVERSAL_OK_MESSAGE or AUTO_REVERSAL_FAILED_MESSAGE. */
  message?: string;
  /** The record sent, with `attempts` = every try so far (all rounds, persisted). */
  reversal?: PendingReversal;
  /** Tries made in this round. */
  attempts: number;
  /** Field 39 of the 0410 that cleared it. */
  responseCode?: string;
  rrn?: string;
  /** When the reversal was sent (the terminal's clock). */
  localYear: number;
  localDate: string;
  localTime: string;
}

/**
 * A refund (0220) is an advice, not reversible (cup-pos-dialect.md 2.3): when its answer is lost (no
 * answer, bad MAC, answer not echoing the request) the money may have moved at the issuer, so the
 * terminal keeps the advice (`pending_advices`, written before the 0220 leaves) and repeats it as 0221
 * with the SAME identity (11, 12, 13, 41, 42) before its next transaction, sign-in or settlement, up to
 * `reversalMaxAttempts` times per round (`reversalAnswerTimeoutMs` each), until a 0230 it believes. The
 * POSP answers a repeat of a 0220 it journaled with the first answer (docs/network.md "Refund advice").
 */
export interface RefundAdviceResult {
  /** `none`: nothing pending; `answered`: a valid 0230 cleared it (see `result`); `failed`: it stays. */
  status: 'none' | 'answered' | 'failed';
  /** Tries made in this round. */
  attempts: number;
  /** The refund as finally answered: approved (the slip is printed now) or declined. */
  result?: TransactionResult;
  /** The advice still owed (failed), with `attempts` = every try so far (persisted). */
  pending?: PendingRefundAdvice;
}

/** The refund advice the terminal still owes an answer for (no PAN: the card is sealed by the pad). */
export interface PendingRefundAdvice {
  stan: string;
  batchNumber: string;
  amountMinor: number;
  maskedPan: string;
  localDate: string;
  localTime: string;
  originalRrn?: string;
  attempts: number;
}

export interface SettlementResult {
  /**
   * `balanced`: flag 1, batch closed; `uploaded`: flag 2, batch uploaded and closed; `declined`: 39 not
   * 00; `failed`: no believed answer, a bad field 48 / flag 3, or the upload did not finish. Only the
   * first two close the batch.
   */
  status: 'balanced' | 'uploaded' | 'declined' | 'failed';
  failure?: 'no-answer' | 'mac-failed' | 'host-error' | 'upload-failed';
  /** The batch settled (60.2 of the 0500). */
  batchNumber: string;
  /** The batch opened after it (closed batches only). */
  nextBatchNumber?: string;
  /** The terminal's totals as sent in field 48. */
  totals: SettlementTotals;
  responseCode?: string;
  /** Flag of the 0510's field 48: 1 balanced, 2 not, 3 error. */
  hostFlag?: string;
  /** The POSP's totals from the 0510 when they differ (flag 2). */
  hostTotals?: SettlementTotals;
  /** 0320 detail records delivered (flag 2). */
  uploadedCount?: number;
  stan: string;
  localYear: number;
  localDate: string;
  localTime: string;
  autoReversal?: ReversalResult;
  /** The pending refund advice repeated before the settlement, when there was one. */
  refundAdvice?: RefundAdviceResult;
}
export type TransactionStatus = 'approved' | 'declined' | 'mac-failed' | 'no-answer';

export interface TransactionResult {
  type: TransactionType;
  status: TransactionStatus;
  /** Field 39 of a believed answer; absent for mac-failed and no-answer. */
  responseCode?: string;
  rrn?: string;
  authCode?: string;
  /** Field 4 as sent (0 for a balance inquiry). */
  amountMinor: number;
  /** Balance from field 54 of a balance inquiry answer (negative when the sign is D). */
  balanceMinor?: number;
  /** Field 11 as sent, 6 digits. */
  stan: string;
  /** 60.2 as sent, 6 digits. */
  batchNumber: string;
  /** Local date and time as sent (fields 13 and 12) and the year the terminal's clock gave. */
  localYear: number;
  localDate: string;
  localTime: string;
  /** Field 15 of the answer (MMDD), when given. */
  settlementDate?: string;
  maskedPan: string;
  /** True when a reversal record is left pending (no-answer or mac-failed of a reversible request). */
  reversalPending: boolean;
  /** The automatic reversal sent before this transaction, when one was pending (“自動沖正成功”). */
  autoReversal?: ReversalResult;
  /** True when this refund's answer was lost: its advice is kept and repeated (0221) before the next. */
  refundAdvicePending?: boolean;
  /** The pending refund advice repeated before this transaction, when there was one. */
  refundAdvice?: RefundAdviceResult;
}

export type SignInStatus = 'approved' | 'declined' | 'refused' | 'no-answer';

export interface SignInResult {
  status: SignInStatus;
  responseCode?: string;
  stan: string;
  /** The batch number from 60.2 of the answer (approved only). */
  batchNumber?: string;
  /** Why an answer was not believed: the keys were not loaded and the old ones stay. */
  refusedReason?: 'echo-mismatch' | 'key-data' | 'check-value';
  /** The working key slots after an approved sign-in (numbers and check values only). */
  slots?: SlotInfo[];
  /** The pending reversal tried before the sign-in, when there was one (sent or still pending). */
  autoReversal?: ReversalResult;
  /** The pending refund advice repeated before the sign-in, when there was one. */
  refundAdvice?: RefundAdviceResult;
}

export interface PurchaseRequest {
  card: CardInput;
  amountMinor: number;
  /** Typed on the PIN pad; without it the request goes without PIN (22 third digit 2). */
  pin?: string;
}

export interface BalanceInquiryRequest {
  card: CardInput;
  pin?: string;
}

export interface VoidRequest {
  /** The card again (cup-pos: the void carries 2/35 like the purchase). */
  card: CardInput;
  /** STAN of the purchase in the current batch. */
  originalStan: string | number;
  pin?: string;
}

export interface RefundRequest {
  card: CardInput;
  amountMinor: number;
  pin?: string;
  /** The original purchase, from its slip: RRN and date (MMDD); batch and STAN when known. */
  original: { rrn: string; date: string; batchNumber?: string | number; stan?: string | number };
}

/** The reversal record written before a reversible request (issue 6 sends the 0400 from it). */
export interface PendingReversal {
  stan: string;
  batchNumber: string;
  type: TransactionType;
  mti: string;
  processingCode: string;
  amountMinor: number;
  posEntryMode: string;
  conditionCode: string;
  transactionTypeCode: string;
  maskedPan: string;
  localDate: string;
  localTime: string;
  /** 61 of the original when it had one (void). */
  originalData?: string;
  /** The 0400's field 39: 98 no answer in time, A0 bad MAC, 06 other (cup-pos-dialect.md 2.7). */
  reason: string;
  attempts: number;
}

export interface TerminalStatus {
  terminalId: string;
  merchantId: string;
  /** Working keys loaded in the PIN pad. */
  signedIn: boolean;
  signedInAt?: string;
  batchNumber: string;
  lastStan: string;
  reversalPending: boolean;
  pinPad: { slotCount: number; slots: SlotInfo[] };
}

export interface StartTerminalOptions {
  /** Seals the PIN pad state (AES-256-GCM under scrypt of it); at least 16 bytes. Not stored. */
  deviceSecret: Uint8Array;
  log?: Logger;
  /** The terminal's clock (local time fields 12/13). */
  now?: () => Date;
  /** scrypt cost for a new PIN pad state (tests lower it to the minimum). */
  pinPadScryptN?: number;
}

interface ExchangeOutcome {
  kind: 'answer' | 'mac-failed' | 'no-answer' | 'not-sent' | 'echo-mismatch';
  answer?: Iso8583Message;
  /** Reversal reason for a failure. */
  reason?: string;
}

const pad6 = (n: number): string => String(n).padStart(6, '0');
const two = (n: number): string => String(n).padStart(2, '0');

function checkAmount(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0 || v > AMOUNT_MAX_MINOR)
    throw new TerminalError(
      'TERMINAL_AMOUNT_INVALID',
      field,
      `must be an integer of minor units from 1 to ${AMOUNT_MAX_MINOR}`,
    );
  return v;
}

function sixDigits(v: unknown, field: string): string {
  const s = typeof v === 'number' ? String(v) : v;
  if (typeof s !== 'string' || !/^[0-9]{1,6}$/.test(s) || Number(s) < 1)
    throw new TerminalError('TERMINAL_ORIGINAL_NOT_FOUND', field, 'must be 1 to 999999');
  return s.padStart(6, '0');
}

/** Field 54 (ISO 8583:1987 additional amounts): account type 2, amount type 2, currency 3, sign C/D, 12 digits. */
function parseBalance(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^[0-9]{2}[0-9]{2}[0-9]{3}([CD])([0-9]{12})$/.exec(v.slice(0, 20));
  if (!m) return undefined;
  const amount = Number(m[2]);
  return m[1] === 'D' ? -amount : amount;
}

export class Terminal {
  readonly config: TerminalConfig;
  readonly pinPad: PinPad;
  readonly #store: Store;
  readonly #spec: CompiledSpec;
  readonly #log: Logger;
  readonly #now: () => Date;
  #busy = false;
  #closed = false;
  /** The kept connection (`connection: 'kept'`) between exchanges, when one is open. */
  #kept: FramedClient | undefined;
  /** The request in flight and its STAN: the match key of that frame, read without unpacking it. */
  #current: { frame: Uint8Array; stan: string } | undefined;

  private constructor(config: TerminalConfig, pinPad: PinPad, store: Store, log: Logger, now: () => Date) {
    this.config = config;
    this.pinPad = pinPad;
    this.#store = store;
    this.#spec = loadSpec('cup-pos');
    this.#log = log;
    this.#now = now;
  }

  /** @internal use `startTerminal`. */
  static async start(config: TerminalConfig, opts: StartTerminalOptions): Promise<Terminal> {
    mkdirSync(config.stateDir, { recursive: true });
    const pinPad = await PinPad.open({
      statePath: config.pinpadStatePath,
      deviceSecret: opts.deviceSecret,
      scryptN: opts.pinPadScryptN,
    });
    let store: Store;
    try {
      store = await openSqliteStore(config.databasePath, { migrations: TERMINAL_MIGRATIONS });
    } catch (e) {
      pinPad.close();
      throw e;
    }
    const log = (opts.log ?? createLogger({ service: 'terminal' })).child({ terminalId: config.terminalId });
    const t = new Terminal(config, pinPad, store, log, opts.now ?? (() => new Date()));
    log.info('terminal.started', { pinPadSlots: pinPad.listSlots().length });
    return t;
  }

  // --- state ---------------------------------------------------------------------------------

  #hasWorkingKeys(): boolean {
    const p = this.pinPad;
    return (
      p.slotInfo(TERMINAL_SLOTS.pik)?.usage === 'pin' &&
      p.slotInfo(TERMINAL_SLOTS.mak)?.usage === 'mac' &&
      p.slotInfo(TERMINAL_SLOTS.tdk)?.usage === 'data'
    );
  }

  async status(): Promise<TerminalStatus> {
    this.#checkOpen();
    const s = await this.#store.get<{ last_stan: number; batch_number: number; signed_in_at: string | null }>(
      'SELECT last_stan, batch_number, signed_in_at FROM terminal_state WHERE id = 1',
    );
    const rev = await this.#store.get('SELECT id FROM pending_reversals WHERE id = 1');
    return {
      terminalId: this.config.terminalId,
      merchantId: this.config.merchantId,
      signedIn: this.#hasWorkingKeys(),
      ...(s?.signed_in_at ? { signedInAt: s.signed_in_at } : {}),
      batchNumber: pad6(s!.batch_number),
      lastStan: pad6(s!.last_stan),
      reversalPending: rev !== undefined,
      pinPad: this.pinPad.toJSON(),
    };
  }

  /** The pending reversal record, if any (issue 6 sends it). */
  async pendingReversal(): Promise<PendingReversal | undefined> {
    this.#checkOpen();
    const r = await this.#store.get<Record<string, string | number | null>>(
      'SELECT * FROM pending_reversals WHERE id = 1',
    );
    if (!r) return undefined;
    return {
      stan: pad6(r.stan as number),
      batchNumber: pad6(r.batch_number as number),
      type: r.txn_type as TransactionType,
      mti: r.mti as string,
      processingCode: r.processing_code as string,
      amountMinor: r.amount_minor as number,
      posEntryMode: r.pos_entry_mode as string,
      conditionCode: r.condition_code as string,
      transactionTypeCode: r.txn_type_code as string,
      maskedPan: r.pan_masked as string,
      localDate: r.local_date as string,
      localTime: r.local_time as string,
      ...(r.original_data ? { originalData: r.original_data as string } : {}),
      reason: r.reason as string,
      attempts: r.attempts as number,
    };
  }

  /**
   * The STAN the next financial request will carry and the open batch, read without taking the STAN:
   * `#claimStan`, in the transaction that writes the request's reversal or advice record (or alone, for
   * a request that writes none), makes it used. A request that never leaves (no connection) leaves the
   * STAN free for the next one: it was never on the wire. Terminal operations run one at a time
   * (`#exclusive`), so nothing else takes a STAN in between.
   */
  async #peekStan(): Promise<{ stan: string; batch: string; last: number }> {
    const row = await this.#store.get<{ last_stan: number; batch_number: number }>(
      'SELECT last_stan, batch_number FROM terminal_state WHERE id = 1',
    );
    const next = row!.last_stan >= STAN_MAX ? 1 : row!.last_stan + 1;
    return { stan: pad6(next), batch: pad6(row!.batch_number), last: row!.last_stan };
  }

  /**
   * Makes `stan` the last used, inside `tx`, when the last used is still `last` (both from
   * `#peekStan`); TERMINAL_BUSY when another operation on this terminal's state took one meanwhile.
   */
  async #claimStan(tx: Queryable, stan: string, last: number): Promise<void> {
    const r = await tx.run('UPDATE terminal_state SET last_stan = ? WHERE id = 1 AND last_stan = ?', [
      Number(stan),
      last,
    ]);
    if (r.changes !== 1)
      throw new TerminalError(
        'TERMINAL_BUSY',
        'terminal_state.last_stan',
        `STAN ${stan} was taken by another operation on this terminal's state meanwhile`,
      );
  }

  /** Next STAN, persisted before use: 1..999999, then 1 again (sign-in and settlement messages). */
  async #nextStan(): Promise<string> {
    return this.#store.transaction(async (tx) => {
      const row = await tx.get<{ last_stan: number }>('SELECT last_stan FROM terminal_state WHERE id = 1');
      const next = row!.last_stan >= STAN_MAX ? 1 : row!.last_stan + 1;
      await tx.run('UPDATE terminal_state SET last_stan = ? WHERE id = 1', [next]);
      return pad6(next);
    });
  }

  async #batchNumber(): Promise<string> {
    const row = await this.#store.get<{ batch_number: number }>(
      'SELECT batch_number FROM terminal_state WHERE id = 1',
    );
    return pad6(row!.batch_number);
  }

  #checkOpen(): void {
    if (this.#closed) throw new TerminalError('TERMINAL_CLOSED', 'terminal', 'the terminal has been closed');
  }

  /** Runs `fn` as the terminal's only operation (one request at a time). */
  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.#checkOpen();
    if (this.#busy) throw new TerminalError('TERMINAL_BUSY', 'terminal', 'a transaction is already running');
    this.#busy = true;
    try {
      return await fn();
    } finally {
      this.#busy = false;
    }
  }

  #clock(): { year: number; date: string; time: string } {
    const d = this.#now();
    return {
      year: d.getFullYear(),
      date: `${two(d.getMonth() + 1)}${two(d.getDate())}`,
      time: `${two(d.getHours())}${two(d.getMinutes())}${two(d.getSeconds())}`,
    };
  }

  // --- wire ----------------------------------------------------------------------------------

  /**
   * Packs `m`, enciphers the track data block of field 35 in place (when the config says so), and
   * MACs MTI..63 with field 64 announced in the bitmap (docs/network.md "MAC input").
   * Returns the frame after the length prefix: TPDU | header | message.
   */
  #seal(m: Iso8583Message, mac: boolean): Uint8Array {
    if (mac) m.set(64, new Uint8Array(8));
    const bytes = m.pack().slice();
    if (this.config.trackEncryption === 'tdk' && m.has(35)) {
      // Offset of field 35: MTI, bitmap and every field before it, packed alone (one 8-byte bitmap in
      // cup-pos, so the bitmap's length does not depend on the later fields). Then its 1-byte LL prefix.
      const head = new Iso8583Message(this.#spec, m.mti);
      for (const id of m.fieldIds()) if (id < 35) head.set(id, m.get(id)!);
      const at = head.pack().length + 1;
      const digits = String(m.get(35)).length;
      const data = bytes.subarray(at, at + Math.ceil(digits / 2));
      encryptTrackDataBlock(data, (block) => this.pinPad.encryptDataTdesEcb(TERMINAL_SLOTS.tdk, block));
    }
    if (mac)
      bytes.set(
        this.pinPad.generateMacCupEcb(TERMINAL_SLOTS.mak, bytes.subarray(0, bytes.length - 8)),
        bytes.length - 8,
      );
    return joinCupFrame({
      tpdu: this.config.tpdu,
      header: parseCupHeader(Uint8Array.from(Buffer.from(this.config.header, 'hex'))),
      message: bytes,
    });
  }

  /** Opens a connection to the POSP; answers are matched to the request by STAN (field 11). */
  #connect(): Promise<FramedClient> {
    const spec = this.#spec;
    return FramedClient.connect({
      host: this.config.posp.host,
      port: this.config.posp.port,
      framing: { prefix: 'binary2' },
      connectTimeoutMs: this.config.connectTimeoutMs,
      timeoutMs: this.config.answerTimeoutMs,
      maxInFlight: 1,
      keyOf: (f) => {
        const current = this.#current;
        if (current !== undefined && f === current.frame) return current.stan;
        return String(unpack(spec, splitCupFrame(f).message).get(11) ?? '');
      },
      onUnmatched: (_f, reason) =>
        this.#log.warn('txn.unmatched-answer', { stan: this.#current?.stan, reason }),
    });
  }

  /**
   * The connection for the next exchange: the kept one while it is still up, else a new one (kept for
   * the exchanges after when the config says `kept`).
   */
  async #connection(): Promise<FramedClient> {
    const kept = this.#kept;
    if (kept?.connected) return kept;
    if (kept) {
      // Gone since the last exchange (the POSP's idle timeout, a POSP restart...).
      this.#kept = undefined;
      await kept.close();
    }
    const client = await this.#connect();
    if (this.#closed) {
      // close() ran while this connection was being opened: it must not outlive the terminal.
      await client.close();
      throw new TerminalError('TERMINAL_CLOSED', 'terminal', 'the terminal has been closed');
    }
    if (this.config.connection === 'kept') this.#kept = client;
    return client;
  }

  /**
   * Sends one frame and waits for its answer. `writeReversal` (when given: a financial request's STAN
   * claim with its reversal or advice record, one transaction) is written after the connection is up
   * and before the request is written to it. A per-exchange connection is closed
   * after; a kept one stays open only after a believed answer.
   */
  async #exchange(
    frame: Uint8Array,
    stan: string,
    expectMti: string,
    checkMac: boolean,
    writeReversal?: (tx: Queryable) => Promise<void>,
    opts: { timeoutMs?: number; echo?: Readonly<Record<number, string>> } = {},
  ): Promise<ExchangeOutcome> {
    const spec = this.#spec;
    const log = this.#log;
    let client: FramedClient;
    try {
      client = await this.#connection();
    } catch (e) {
      log.warn('txn.not-sent', { stan, code: isNetError(e) || isTerminalError(e) ? e.code : 'error' });
      return { kind: 'not-sent' };
    }
    let believed = false;
    this.#current = { frame, stan };
    try {
      if (writeReversal) await this.#store.transaction(writeReversal);
      let answerFrame: Uint8Array;
      try {
        answerFrame = await client.request(frame, opts.timeoutMs ?? this.config.answerTimeoutMs);
      } catch (e) {
        log.warn('txn.no-answer', { stan, code: isNetError(e) ? e.code : 'error' });
        return { kind: 'no-answer', reason: '98' };
      }
      let answer: Iso8583Message;
      let message: Uint8Array;
      try {
        message = splitCupFrame(answerFrame).message;
        answer = unpack(spec, message);
      } catch (e) {
        log.warn('txn.answer-malformed', { stan, code: (e as { code?: string }).code ?? 'error' });
        return { kind: 'no-answer', reason: '06' };
      }
      if (answer.mti !== expectMti) {
        log.warn('txn.answer-mti', { stan, mti: answer.mti });
        return { kind: 'no-answer', reason: '06' };
      }
      if (checkMac) {
        const mac = answer.get(64);
        const ok =
          mac instanceof Uint8Array &&
          this.pinPad.verifyMacCupEcb(TERMINAL_SLOTS.mak, message.subarray(0, message.length - 8), mac);
        if (!ok) {
          log.warn('txn.mac-failed', { stan, responseCodeClaimed: String(answer.get(39) ?? '') });
          return { kind: 'mac-failed', reason: 'A0' };
        }
      }
      if (
        answer.get(11) !== stan ||
        answer.get(41) !== this.config.terminalId ||
        answer.get(42) !== this.config.merchantId ||
        Object.entries(opts.echo ?? {}).some(([id, v]) => answer.get(Number(id)) !== v)
      ) {
        log.warn('txn.echo-mismatch', { stan });
        return { kind: 'echo-mismatch', reason: '06' };
      }
      believed = true;
      return { kind: 'answer', answer };
    } finally {
      this.#current = undefined;
      // After anything but a believed answer the next exchange starts on a fresh connection: a late
      // answer to this request can then never arrive where the next request waits.
      const keep = believed && this.#kept === client;
      if (!keep) {
        if (this.#kept === client) this.#kept = undefined;
        await client.close();
      }
    }
  }

  // --- sign-in -------------------------------------------------------------------------------

  /**
   * Sign-in 0800/0810 with 60.3 = 004 (cup-pos-dialect.md 2.5): the answer's field 62 carries
   * TPK(16)|CV(4)|TAK(16)|CV(4)|TDK(16)|CV(4) under the TMK (docs/network.md). The keys are loaded
   * only when 11/41/42 echo the request and every check value matches (the pad loads all three into
   * staging and commits them together); otherwise the sign-in is refused and the old keys stay.
   */
  signIn(): Promise<SignInResult> {
    return this.#exclusive(async () => {
      if (this.pinPad.slotInfo(TERMINAL_SLOTS.tmk)?.usage !== 'kek')
        throw new TerminalError(
          'TERMINAL_NOT_SIGNED_IN',
          'pinPad',
          `no TMK in slot ${TERMINAL_SLOTS.tmk}: inject one first`,
        );
      // A pending reversal goes first (DOMAIN.md flow 1). Sign-in goes ahead even when it is still not
      // acknowledged: it moves no money, and new keys may be what the POSP needs to accept the 0400.
      const autoReversal = this.#hasWorkingKeys() ? await this.#sendReversal() : undefined;
      const refundAdvice = this.#hasWorkingKeys() ? await this.#sendAdvice() : undefined;
      const r = await this.#signInExchange();
      return {
        ...r,
        ...(autoReversal && autoReversal.status !== 'none' ? { autoReversal } : {}),
        ...(refundAdvice && refundAdvice.status !== 'none' ? { refundAdvice } : {}),
      };
    });
  }

  async #signInExchange(): Promise<SignInResult> {
    {
      const stan = await this.#nextStan();
      const batch = await this.#batchNumber();
      const when = this.#clock();
      const m = new Iso8583Message(this.#spec, '0800');
      m.set(11, stan);
      m.set(41, this.config.terminalId);
      m.set(42, this.config.merchantId);
      m.set(60, `00${batch}004`);
      m.set(63, this.config.operator);
      const out = await this.#exchange(this.#seal(m, false), stan, '0810', false);
      if (out.kind === 'echo-mismatch') {
        this.#log.warn('signin.refused', { stan, reason: 'echo-mismatch' });
        return { status: 'refused', stan, refusedReason: 'echo-mismatch' };
      }
      if (out.kind !== 'answer') {
        this.#log.info('signin.result', { stan, status: 'no-answer' });
        return { status: 'no-answer', stan };
      }
      const a = out.answer!;
      const rc = String(a.get(39) ?? '');
      if (rc !== '00') {
        this.#log.info('signin.result', { stan, status: 'declined', responseCode: rc });
        return { status: 'declined', responseCode: rc, stan };
      }
      const refuse = (refusedReason: SignInResult['refusedReason']): SignInResult => {
        this.#log.warn('signin.refused', { stan, reason: refusedReason });
        return { status: 'refused', responseCode: rc, stan, refusedReason };
      };
      const keys = a.get(62);
      const newBatch = String(a.get('60.2') ?? '');
      if (
        !(keys instanceof Uint8Array) ||
        keys.length !== 60 ||
        a.get('60.3') !== '004' ||
        !/^[0-9]{6}$/.test(newBatch) ||
        newBatch === '000000'
      )
        return refuse('key-data');
      const entry = (slot: number, usage: 'pin' | 'mac' | 'data', at: number) => ({
        slot,
        usage,
        encryptedKey: keys.subarray(at, at + 16),
        checkValue: keys.subarray(at + 16, at + 20),
      });
      let slots: SlotInfo[];
      try {
        slots = this.pinPad.loadKeysUnderKek(TERMINAL_SLOTS.tmk, [
          entry(TERMINAL_SLOTS.pik, 'pin', 0),
          entry(TERMINAL_SLOTS.mak, 'mac', 20),
          entry(TERMINAL_SLOTS.tdk, 'data', 40),
        ]);
      } catch (e) {
        if (e instanceof TerminalError && e.code === 'TERMINAL_PINPAD_CHECK_VALUE')
          return refuse('check-value');
        if (e instanceof TerminalError) return refuse('key-data');
        throw e;
      }
      const at = `${when.year}-${when.date.slice(0, 2)}-${when.date.slice(2)}T${when.time.slice(0, 2)}:${when.time.slice(2, 4)}:${when.time.slice(4)}`;
      await this.#store.run('UPDATE terminal_state SET batch_number = ?, signed_in_at = ? WHERE id = 1', [
        Number(newBatch),
        at,
      ]);
      this.#log.info('signin.result', {
        stan,
        status: 'approved',
        batchNumber: newBatch,
        checkValues: slots.map((s) => `${s.slot}:${s.checkValueHex}`).join(' '),
      });
      return { status: 'approved', responseCode: rc, stan, batchNumber: newBatch, slots };
    }
  }

  // --- financial transactions ----------------------------------------------------------------

  purchase(req: PurchaseRequest): Promise<TransactionResult> {
    return this.#exclusive(async () => {
      const amount = checkAmount(req.amountMinor, 'amountMinor');
      return this.#financial({
        type: 'purchase',
        mti: '0200',
        processingCode: '000000',
        typeCode: '22',
        card: parseCardInput(req.card),
        amountMinor: amount,
        pin: req.pin,
        reversible: true,
      });
    });
  }

  balanceInquiry(req: BalanceInquiryRequest): Promise<TransactionResult> {
    return this.#exclusive(async () =>
      this.#financial({
        type: 'balance-inquiry',
        mti: '0200',
        processingCode: '310000',
        typeCode: '01',
        card: parseCardInput(req.card),
        amountMinor: 0,
        pin: req.pin,
        reversible: false,
      }),
    );
  }

  /** Void (撤销) of a purchase of the current batch, found by its STAN; amount, RRN and auth code from it. */
  voidPurchase(req: VoidRequest): Promise<TransactionResult> {
    return this.#exclusive(async () => {
      const card = parseCardInput(req.card);
      const origStan = sixDigits(req.originalStan, 'originalStan');
      const batch = await this.#batchNumber();
      const orig = await this.#store.get<{
        amount_minor: number;
        rrn: string;
        auth_code: string | null;
        card_sealed: Uint8Array;
      }>(
        `SELECT amount_minor, rrn, auth_code, card_sealed FROM batch_entries
         WHERE batch_number = ? AND stan = ? AND txn_type = 'purchase' AND voided = 0`,
        [Number(batch), Number(origStan)],
      );
      if (!orig)
        throw new TerminalError(
          'TERMINAL_ORIGINAL_NOT_FOUND',
          'originalStan',
          'no purchase with this STAN in the current batch that is not already voided',
        );
      const sealed = JSON.parse(toAscii(this.pinPad.openRecord(orig.card_sealed))) as { pan: string };
      if (sealed.pan !== card.pan)
        throw new TerminalError('TERMINAL_CARD_INVALID', 'card', 'is not the card of the original purchase');
      return this.#financial({
        type: 'void',
        mti: '0200',
        processingCode: '200000',
        typeCode: '23',
        card,
        amountMinor: orig.amount_minor,
        pin: req.pin,
        reversible: true,
        originalRrn: orig.rrn,
        originalAuthCode: orig.auth_code ?? undefined,
        originalData: `${batch}${origStan}`,
        originalStan: Number(origStan),
      });
    });
  }

  /** Refund (退货) 0220/0230: 61 = original batch, STAN and date; 37 = original RRN. */
  refund(req: RefundRequest): Promise<TransactionResult> {
    return this.#exclusive(async () => {
      const amount = checkAmount(req.amountMinor, 'amountMinor');
      const card = parseCardInput(req.card);
      const o = req.original;
      if (typeof o !== 'object' || o === null) throw new TypeError('original must be an object');
      if (typeof o.rrn !== 'string' || !/^[\x20-\x7e]{12}$/.test(o.rrn))
        throw new TerminalError('TERMINAL_ORIGINAL_NOT_FOUND', 'original.rrn', 'must be 12 characters');
      if (typeof o.date !== 'string' || !/^(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])$/.test(o.date))
        throw new TerminalError('TERMINAL_ORIGINAL_NOT_FOUND', 'original.date', 'must be MMDD');
      const batch = o.batchNumber === undefined ? '000000' : sixDigits(o.batchNumber, 'original.batchNumber');
      const stan = o.stan === undefined ? '000000' : sixDigits(o.stan, 'original.stan');
      return this.#financial({
        type: 'refund',
        mti: '0220',
        processingCode: '200000',
        typeCode: '25',
        card,
        amountMinor: amount,
        pin: req.pin,
        reversible: false,
        originalRrn: o.rrn,
        originalData: `${batch}${stan}${o.date}`,
      });
    });
  }

  async #financial(t: {
    type: TransactionType;
    mti: '0200' | '0220';
    processingCode: string;
    typeCode: string;
    card: Card;
    amountMinor: number;
    pin?: string;
    reversible: boolean;
    originalRrn?: string;
    originalAuthCode?: string;
    originalData?: string;
    originalStan?: number;
  }): Promise<TransactionResult> {
    if (!this.#hasWorkingKeys())
      throw new TerminalError(
        'TERMINAL_NOT_SIGNED_IN',
        'terminal',
        'no working keys in the PIN pad: sign in first',
      );
    // Automatic reversal (沖正) first: a pending record goes out as a 0400 before anything else.
    const autoReversal = await this.#reverseBeforeNext();
    // Then a refund advice whose answer was lost: repeated (0221) until answered, before anything new.
    const refundAdvice = await this.#adviseBeforeNext();
    const { stan, batch, last } = await this.#peekStan();
    if (t.type !== 'balance-inquiry') await this.#checkBatchRoom(t.type, t.amountMinor, batch);
    const { card } = t;
    // PIN entry first: a bad PIN is refused before a STAN is used.
    const pinBlock =
      t.pin === undefined ? undefined : this.pinPad.encryptPinBlockIso0(TERMINAL_SLOTS.pik, t.pin, card.pan);
    const when = this.#clock();
    const encryptTrack = this.config.trackEncryption === 'tdk' && card.track2 !== undefined;
    const posEntry = `${card.entry === 'magstripe' ? '02' : '01'}${pinBlock ? '1' : '2'}`;
    const m = new Iso8583Message(this.#spec, t.mti);
    m.set(2, card.pan);
    m.set(3, t.processingCode);
    if (t.type !== 'balance-inquiry') m.set(4, String(t.amountMinor).padStart(12, '0'));
    m.set(11, stan);
    m.set(12, when.time);
    m.set(13, when.date);
    if (card.expiry) m.set(14, card.expiry);
    m.set(22, posEntry);
    m.set(25, '00');
    if (pinBlock) m.set(26, '12');
    if (card.track2) m.set(35, card.track2);
    if (t.originalRrn) m.set(37, t.originalRrn);
    if (t.originalAuthCode) m.set(38, t.originalAuthCode);
    m.set(41, this.config.terminalId);
    m.set(42, this.config.merchantId);
    m.set(49, this.config.currency);
    if (pinBlock) m.set(52, pinBlock);
    // 53 (cup-pos-dialect.md 2.4): PIN format 2 = X9.8 with PAN (ISO format 0), 6 = double-length TDES,
    // position 3 = 1 when track data is enciphered under the TDK.
    if (pinBlock || encryptTrack)
      m.set(53, `${pinBlock ? '2' : '0'}6${encryptTrack ? '1' : '0'}0000000000000`);
    m.set(60, `${t.typeCode}${batch}000`);
    if (t.originalData) m.set(61, t.originalData);
    m.set(63, this.config.operator);
    const frame = this.#seal(m, true);
    const maskedPan = maskPan(card.pan);
    const sealedCard = this.pinPad.sealRecord(
      fromAscii(JSON.stringify({ pan: card.pan, expiry: card.expiry ?? null })),
    );
    const created = this.#now().toISOString();
    const writeReversal = t.reversible
      ? async (tx: Queryable) => {
          await tx.run(
            `INSERT INTO pending_reversals (id, stan, batch_number, txn_type, mti, processing_code, amount_minor,
               pos_entry_mode, condition_code, txn_type_code, pan_masked, card_sealed, local_date, local_time,
               original_data, reason, attempts, created_at)
             VALUES (1, ?, ?, ?, ?, ?, ?, ?, '00', ?, ?, ?, ?, ?, ?, '98', 0, ?)`,
            [
              Number(stan),
              Number(batch),
              t.type,
              t.mti,
              t.processingCode,
              t.amountMinor,
              posEntry,
              t.typeCode,
              maskedPan,
              sealedCard,
              when.date,
              when.time,
              t.originalData ?? null,
              created,
            ],
          );
        }
      : undefined;
    // The refund advice record, written (like the reversal record) once the link is up, before the 0220
    // is written to it: from then on the refund may have happened and the terminal must learn how.
    const writeAdvice =
      t.mti === '0220'
        ? async (tx: Queryable) => {
            await tx.run(
              `INSERT INTO pending_advices (id, stan, batch_number, txn_type, processing_code, amount_minor,
                 pos_entry_mode, txn_type_code, pan_masked, card_sealed, local_year, local_date, local_time,
                 original_rrn, original_data, attempts, created_at)
               VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`,
              [
                Number(stan),
                Number(batch),
                t.type,
                t.processingCode,
                t.amountMinor,
                posEntry,
                t.typeCode,
                maskedPan,
                sealedCard,
                when.year,
                when.date,
                when.time,
                t.originalRrn ?? null,
                t.originalData ?? null,
                created,
              ],
            );
          }
        : undefined;
    // The STAN is taken in the same transaction as the record (one commit before the request leaves).
    const record = writeReversal ?? writeAdvice;
    const out = await this.#exchange(frame, stan, t.mti === '0200' ? '0210' : '0230', true, async (tx) => {
      await this.#claimStan(tx, stan, last);
      if (record) await record(tx);
    });
    const base = {
      type: t.type,
      amountMinor: t.amountMinor,
      stan,
      batchNumber: batch,
      localYear: when.year,
      localDate: when.date,
      localTime: when.time,
      maskedPan,
      ...(autoReversal ? { autoReversal } : {}),
      ...(refundAdvice ? { refundAdvice } : {}),
    };
    if (out.kind !== 'answer') {
      const status: TransactionStatus = out.kind === 'mac-failed' ? 'mac-failed' : 'no-answer';
      let reversalPending = false;
      if (t.reversible && out.kind !== 'not-sent') {
        await this.#store.run('UPDATE pending_reversals SET reason = ? WHERE id = 1', [out.reason ?? '06']);
        reversalPending = true;
      }
      const refundAdvicePending = t.mti === '0220' && out.kind !== 'not-sent';
      if (refundAdvicePending)
        await this.#store.run('UPDATE pending_advices SET last_outcome = ? WHERE id = 1', [out.kind]);
      this.#log.warn('txn.result', {
        type: t.type,
        stan,
        batchNumber: batch,
        status,
        reversalPending,
        refundAdvicePending,
        panMasked: maskedPan,
      });
      return { ...base, status, reversalPending, ...(refundAdvicePending ? { refundAdvicePending } : {}) };
    }
    const a = out.answer!;
    const rc = String(a.get(39) ?? '');
    const rrn = a.get(37) as string | undefined;
    const authCode = a.get(38) as string | undefined;
    const settlementDate = a.get(15) as string | undefined;
    const approved = rc === '00';
    await this.#store.transaction(async (tx) => {
      if (t.reversible) await tx.run('DELETE FROM pending_reversals WHERE id = 1');
      if (t.mti === '0220') await tx.run('DELETE FROM pending_advices WHERE id = 1');
      if (approved && t.type !== 'balance-inquiry') {
        await tx.run(
          `INSERT INTO batch_entries (batch_number, stan, txn_type, mti, processing_code, amount_minor, pan_masked,
             card_sealed, local_year, local_date, local_time, rrn, auth_code, response_code, settlement_date,
             original_stan, voided, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`,
          [
            Number(batch),
            Number(stan),
            t.type,
            t.mti,
            t.processingCode,
            t.amountMinor,
            maskedPan,
            sealedCard,
            when.year,
            when.date,
            when.time,
            rrn ?? '',
            authCode ?? null,
            rc,
            settlementDate ?? null,
            t.originalStan ?? null,
            created,
          ],
        );
        if (t.type === 'void')
          await tx.run('UPDATE batch_entries SET voided = 1 WHERE batch_number = ? AND stan = ?', [
            Number(batch),
            t.originalStan!,
          ]);
      }
    });
    const balanceMinor =
      t.type === 'balance-inquiry' && approved ? parseBalance(a.get(54) as string | undefined) : undefined;
    const result: TransactionResult = {
      ...base,
      status: approved ? 'approved' : 'declined',
      responseCode: rc,
      ...(rrn !== undefined ? { rrn } : {}),
      ...(authCode !== undefined ? { authCode } : {}),
      ...(balanceMinor !== undefined ? { balanceMinor } : {}),
      ...(settlementDate !== undefined ? { settlementDate } : {}),
      reversalPending: false,
    };
    this.#log.info('txn.result', {
      type: t.type,
      stan,
      batchNumber: batch,
      status: result.status,
      responseCode: rc,
      rrn,
      amountMinor: t.amountMinor,
      panMasked: maskedPan,
    });
    return result;
  }

  // --- automatic reversal (沖正, 0400/0410) --------------------------------------------------

  /**
   * Sends the pending reversal now, if there is one (`status: 'none'` otherwise). The terminal also
   * does this by itself before every online transaction, sign-in and settlement.
   */
  sendPendingReversal(): Promise<ReversalResult> {
    return this.#exclusive(async () => {
      if ((await this.#store.get('SELECT id FROM pending_reversals WHERE id = 1')) && !this.#hasWorkingKeys())
        throw new TerminalError(
          'TERMINAL_NOT_SIGNED_IN',
          'terminal',
          'no working keys in the PIN pad: sign in first',
        );
      return this.#sendReversal();
    });
  }

  /** Runs the pending reversal; throws TERMINAL_REVERSAL_PENDING when it is still not acknowledged. */
  async #reverseBeforeNext(): Promise<ReversalResult | undefined> {
    const r = await this.#sendReversal();
    if (r.status === 'none') return undefined;
    if (r.status === 'failed')
      throw new TerminalError(
        'TERMINAL_REVERSAL_PENDING',
        'terminal',
        `the pending reversal was not acknowledged after ${r.attempts} attempts: it is tried again before the next online transaction`,
      );
    return r;
  }

  /**
   * The 0400 (cup-pos-dialect.md 2.7, docs/network.md "Reversal"): the original's 2, 3, 4, 11, 12, 13,
   * 14, 22, 25, 41, 42, 49, 60 (its type code and batch), 61 = its batch, STAN and date, 39 = reason,
   * 63, MAC. Track data (35) and the PIN block are not kept after the original, so they are not sent.
   * Tried up to `reversalMaxAttempts` times, `retryDelayMs` apart, each waiting at most
   * `reversalAnswerTimeoutMs`; each try is counted in the record before it is sent. Cleared only by
   * a 0410 whose MAC verifies, which echoes 11/41/42 (and 3/4 when present), with 39 in
   * REVERSAL_DONE_RESPONSE_CODES; the clearing and the journal row are one SQLite transaction.
   */
  async #sendReversal(): Promise<ReversalResult> {
    const when = this.#clock();
    const stamp = { localYear: when.year, localDate: when.date, localTime: when.time };
    const rec = await this.pendingReversal();
    if (!rec) return { status: 'none', attempts: 0, ...stamp };
    const row = await this.#store.get<{ card_sealed: Uint8Array }>(
      'SELECT card_sealed FROM pending_reversals WHERE id = 1',
    );
    const card = JSON.parse(toAscii(this.pinPad.openRecord(row!.card_sealed))) as {
      pan: string;
      expiry: string | null;
    };
    const amount = String(rec.amountMinor).padStart(12, '0');
    const m = new Iso8583Message(this.#spec, '0400');
    m.set(2, card.pan);
    m.set(3, rec.processingCode);
    m.set(4, amount);
    m.set(11, rec.stan);
    m.set(12, rec.localTime);
    m.set(13, rec.localDate);
    if (card.expiry) m.set(14, card.expiry);
    m.set(22, rec.posEntryMode);
    m.set(25, rec.conditionCode);
    m.set(39, rec.reason);
    m.set(41, this.config.terminalId);
    m.set(42, this.config.merchantId);
    m.set(49, this.config.currency);
    m.set(60, `${rec.transactionTypeCode}${rec.batchNumber}000`);
    m.set(61, `${rec.batchNumber}${rec.stan}${rec.localDate}`);
    m.set(63, this.config.operator);
    const frame = this.#seal(m, true);
    const fields = {
      stan: rec.stan,
      batchNumber: rec.batchNumber,
      type: rec.type,
      reason: rec.reason,
      amountMinor: rec.amountMinor,
      panMasked: rec.maskedPan,
    };
    const max = this.config.reversalMaxAttempts;
    for (let attempt = 1; attempt <= max; attempt++) {
      if (attempt > 1) await sleep(this.config.retryDelayMs);
      await this.#store.run(
        'UPDATE pending_reversals SET attempts = attempts + 1, last_attempt_at = ? WHERE id = 1',
        [this.#now().toISOString()],
      );
      const out = await this.#exchange(frame, rec.stan, '0410', true, undefined, {
        timeoutMs: this.config.reversalAnswerTimeoutMs,
        echo: { 3: rec.processingCode, 4: amount },
      });
      let outcome: string = out.kind;
      if (out.kind === 'answer') {
        const a = out.answer!;
        const rc = String(a.get(39) ?? '');
        if (REVERSAL_DONE_RESPONSE_CODES.includes(rc)) {
          const rrn = a.get(37) as string | undefined;
          const total = await this.#store.transaction(async (tx) => {
            const cur = await tx.get<{ stan: number; attempts: number }>(
              'SELECT stan, attempts FROM pending_reversals WHERE id = 1',
            );
            if (!cur || cur.stan !== Number(rec.stan)) return undefined;
            await tx.run('DELETE FROM pending_reversals WHERE id = 1');
            await tx.run(
              `INSERT INTO reversals_done (stan, batch_number, txn_type, amount_minor, pan_masked, reason, attempts,
                 response_code, rrn, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
              [
                Number(rec.stan),
                Number(rec.batchNumber),
                rec.type,
                rec.amountMinor,
                rec.maskedPan,
                rec.reason,
                cur.attempts,
                rc,
                rrn ?? null,
                this.#now().toISOString(),
              ],
            );
            return cur.attempts;
          });
          const result: ReversalResult = {
            status: 'reversed',
            message: AUTO_REVERSAL_OK_MESSAGE,
            reversal: { ...rec, attempts: total ?? rec.attempts + attempt },
            attempts: attempt,
            responseCode: rc,
            ...(rrn !== undefined ? { rrn } : {}),
            ...stamp,
          };
          this.#log.info('reversal.result', {
            ...fields,
            status: 'reversed',
            message: AUTO_REVERSAL_OK_MESSAGE,
            responseCode: rc,
            attempts: attempt,
          });
          return result;
        }
        outcome = `answer-${rc || 'none'}`;
      }
      await this.#store.run('UPDATE pending_reversals SET last_outcome = ? WHERE id = 1', [outcome]);
      this.#log.warn('reversal.attempt', { ...fields, attempt, of: max, outcome });
    }
    const left = await this.pendingReversal();
    this.#log.warn('reversal.result', {
      ...fields,
      status: 'failed',
      message: AUTO_REVERSAL_FAILED_MESSAGE,
      attempts: max,
      attemptsTotal: left?.attempts,
    });
    return {
      status: 'failed',
      message: AUTO_REVERSAL_FAILED_MESSAGE,
      reversal: left ?? rec,
      attempts: max,
      ...stamp,
    };
  }

  // --- refund advice repeat (0220 -> 0221/0230) ------------------------------------------------

  /** The refund advice still owed an answer, if any. */
  async pendingRefundAdvice(): Promise<PendingRefundAdvice | undefined> {
    this.#checkOpen();
    const r = await this.#store.get<Record<string, string | number | null>>(
      'SELECT * FROM pending_advices WHERE id = 1',
    );
    if (!r) return undefined;
    return {
      stan: pad6(r.stan as number),
      batchNumber: pad6(r.batch_number as number),
      amountMinor: r.amount_minor as number,
      maskedPan: r.pan_masked as string,
      localDate: r.local_date as string,
      localTime: r.local_time as string,
      ...(r.original_rrn ? { originalRrn: r.original_rrn as string } : {}),
      attempts: r.attempts as number,
    };
  }

  /**
   * Repeats the pending refund advice now (`status: 'none'` when there is none). The terminal also does
   * this by itself before every online transaction, sign-in and settlement.
   */
  sendPendingRefundAdvice(): Promise<RefundAdviceResult> {
    return this.#exclusive(async () => {
      if ((await this.#store.get('SELECT id FROM pending_advices WHERE id = 1')) && !this.#hasWorkingKeys())
        throw new TerminalError(
          'TERMINAL_NOT_SIGNED_IN',
          'terminal',
          'no working keys in the PIN pad: sign in first',
        );
      return this.#sendAdvice();
    });
  }

  /** Repeats the pending advice; throws TERMINAL_REVERSAL_PENDING when it is still not answered. */
  async #adviseBeforeNext(): Promise<RefundAdviceResult | undefined> {
    const r = await this.#sendAdvice();
    if (r.status === 'none') return undefined;
    if (r.status === 'failed')
      throw new TerminalError(
        'TERMINAL_REVERSAL_PENDING',
        'terminal',
        `the pending refund advice was not answered after ${r.attempts} attempts: it is repeated before the next online transaction`,
      );
    return r;
  }

  /**
   * The 0221 (ISO 8583 repeat of the 0220 advice): the 0220's 2, 3, 4, 11, 12, 13, 14, 22, 25, 37, 41,
   * 42, 49, 60, 61, 63 and a MAC under the current TAK; no track data (35) and no PIN block (52): neither
   * is kept after the first send. Same identity, so the POSP answers it from its journal when it saw the
   * 0220 (never a second credit). Cleared only by a 0230 whose MAC verifies and which echoes 11/41/42 and
   * 3/4; an approval is then recorded in the batch (the slip can be printed) in the same SQLite
   * transaction that clears the advice.
   */
  async #sendAdvice(): Promise<RefundAdviceResult> {
    const row = await this.#store.get<Record<string, string | number | null | Uint8Array>>(
      'SELECT * FROM pending_advices WHERE id = 1',
    );
    if (!row) return { status: 'none', attempts: 0 };
    const card = JSON.parse(toAscii(this.pinPad.openRecord(row.card_sealed as Uint8Array))) as {
      pan: string;
      expiry: string | null;
    };
    const stan = pad6(row.stan as number);
    const batch = pad6(row.batch_number as number);
    const pc = row.processing_code as string;
    const amountMinor = row.amount_minor as number;
    const amount = String(amountMinor).padStart(12, '0');
    const originalRrn = (row.original_rrn as string | null) ?? undefined;
    const m = new Iso8583Message(this.#spec, '0221');
    m.set(2, card.pan);
    m.set(3, pc);
    m.set(4, amount);
    m.set(11, stan);
    m.set(12, row.local_time as string);
    m.set(13, row.local_date as string);
    if (card.expiry) m.set(14, card.expiry);
    m.set(22, row.pos_entry_mode as string);
    m.set(25, '00');
    if (originalRrn) m.set(37, originalRrn);
    m.set(41, this.config.terminalId);
    m.set(42, this.config.merchantId);
    m.set(49, this.config.currency);
    m.set(60, `${row.txn_type_code as string}${batch}000`);
    if (row.original_data) m.set(61, row.original_data as string);
    m.set(63, this.config.operator);
    const frame = this.#seal(m, true);
    const maskedPan = row.pan_masked as string;
    const fields = { stan, batchNumber: batch, type: 'refund', amountMinor, panMasked: maskedPan };
    const max = this.config.reversalMaxAttempts;
    for (let attempt = 1; attempt <= max; attempt++) {
      if (attempt > 1) await sleep(this.config.retryDelayMs);
      await this.#store.run(
        'UPDATE pending_advices SET attempts = attempts + 1, last_attempt_at = ? WHERE id = 1',
        [this.#now().toISOString()],
      );
      const out = await this.#exchange(frame, stan, '0230', true, undefined, {
        timeoutMs: this.config.reversalAnswerTimeoutMs,
        echo: { 3: pc, 4: amount },
      });
      if (out.kind === 'answer') {
        const a = out.answer!;
        const rc = String(a.get(39) ?? '');
        const rrn = a.get(37) as string | undefined;
        const authCode = a.get(38) as string | undefined;
        const settlementDate = a.get(15) as string | undefined;
        const approved = rc === '00';
        const cleared = await this.#store.transaction(async (tx) => {
          const cur = await tx.get<{ stan: number }>('SELECT stan FROM pending_advices WHERE id = 1');
          if (!cur || cur.stan !== Number(stan)) return false;
          await tx.run('DELETE FROM pending_advices WHERE id = 1');
          if (approved)
            await tx.run(
              `INSERT INTO batch_entries (batch_number, stan, txn_type, mti, processing_code, amount_minor, pan_masked,
                 card_sealed, local_year, local_date, local_time, rrn, auth_code, response_code, settlement_date,
                 original_stan, voided, created_at)
               VALUES (?, ?, 'refund', '0220', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, ?)`,
              [
                Number(batch),
                Number(stan),
                pc,
                amountMinor,
                maskedPan,
                row.card_sealed as Uint8Array,
                row.local_year as number,
                row.local_date as string,
                row.local_time as string,
                rrn ?? '',
                authCode ?? null,
                rc,
                settlementDate ?? null,
                this.#now().toISOString(),
              ],
            );
          return true;
        });
        if (!cleared) return { status: 'none', attempts: attempt };
        const result: TransactionResult = {
          type: 'refund',
          status: approved ? 'approved' : 'declined',
          responseCode: rc,
          ...(rrn !== undefined ? { rrn } : {}),
          ...(authCode !== undefined ? { authCode } : {}),
          ...(settlementDate !== undefined ? { settlementDate } : {}),
          amountMinor,
          stan,
          batchNumber: batch,
          localYear: row.local_year as number,
          localDate: row.local_date as string,
          localTime: row.local_time as string,
          maskedPan,
          reversalPending: false,
        };
        this.#log.info('advice.result', {
          ...fields,
          status: result.status,
          responseCode: rc,
          rrn,
          attempts: attempt,
        });
        return { status: 'answered', attempts: attempt, result };
      }
      await this.#store.run('UPDATE pending_advices SET last_outcome = ? WHERE id = 1', [out.kind]);
      this.#log.warn('advice.attempt', { ...fields, attempt, of: max, outcome: out.kind });
    }
    const pending = await this.pendingRefundAdvice();
    this.#log.warn('advice.result', {
      ...fields,
      status: 'failed',
      attempts: max,
      attemptsTotal: pending?.attempts,
    });
    return { status: 'failed', attempts: max, ...(pending ? { pending } : {}) };
  }

  /** The merchant and cardholder copies of a reversal slip (沖正 / REVERSAL). */
  reversalSlips(result: ReversalResult): { merchant: string; cardholder: string } {
    if (result.status !== 'reversed' || !result.reversal)
      throw new TypeError('a reversal slip is printed for a reversed result only');
    const input: ReversalSlipInput = {
      reversal: result.reversal,
      ...(result.rrn !== undefined ? { rrn: result.rrn } : {}),
      localYear: result.localYear,
      localDate: result.localDate,
      localTime: result.localTime,
      merchantName: this.config.merchantName,
      merchantId: this.config.merchantId,
      terminalId: this.config.terminalId,
    };
    return {
      merchant: formatReversalSlip(input, 'merchant'),
      cardholder: formatReversalSlip(input, 'cardholder'),
    };
  }

  /** Refuses a new purchase, void or refund that the 0500's totals could not carry. */
  /** Refuses a request the open batch `batch` (from `#peekStan`) could not carry in its 0500. */
  async #checkBatchRoom(type: TransactionType, amountMinor: number, batch: string): Promise<void> {
    const side = settlementSideOf(type);
    // The batch's count and total on this side, summed by SQLite (no row of the batch is read here).
    const sideTypes = side === 'debit' ? ['purchase', 'purchase'] : ['void', 'refund'];
    const agg = await this.#store.get<{ n: number; total: number | null }>(
      'SELECT COUNT(*) AS n, SUM(amount_minor) AS total FROM batch_entries WHERE batch_number = ? AND txn_type IN (?, ?)',
      [Number(batch), ...sideTypes],
    );
    const count = agg?.n ?? 0;
    const total = agg?.total ?? 0;
    if (count + 1 > SETTLEMENT_COUNT_MAX || total + amountMinor > SETTLEMENT_TOTAL_MAX_MINOR)
      throw new TerminalError(
        'TERMINAL_BATCH_FULL',
        'batch',
        `a batch holds at most ${SETTLEMENT_COUNT_MAX} ${side}s totalling at most ${SETTLEMENT_TOTAL_MAX_MINOR} minor units: settle first`,
      );
  }

  // --- settlement (結算, 0500/0510, batch upload 0320/0330) ----------------------------------

  /** Sends a frame up to `settlementMaxAttempts` times until a believed answer comes back. */
  async #exchangeRetrying(
    frame: Uint8Array,
    stan: string,
    expectMti: string,
    event: string,
  ): Promise<ExchangeOutcome> {
    const max = this.config.settlementMaxAttempts;
    let out: ExchangeOutcome = { kind: 'not-sent' };
    for (let attempt = 1; attempt <= max; attempt++) {
      if (attempt > 1) await sleep(this.config.retryDelayMs);
      out = await this.#exchange(frame, stan, expectMti, true);
      if (out.kind === 'answer') return out;
      this.#log.warn(event, { stan, attempt, of: max, outcome: out.kind });
    }
    return out;
  }

  /**
   * Settlement (cup-pos-dialect.md 2.7, docs/network.md "Settlement"): a pending reversal goes first;
   * then 0500 with 60 = 00 + batch + 201 and field 48 = the batch totals. Answer flag 1: the batch
   * closes. Flag 2: every batch entry is uploaded (0320, 60.1 = its type code, 60.3 = 201, its own
   * 2/3/4/11/12/13/14/37/38/39; no 61, which a POSP may read as the uploaded STAN), then the end of batch (0320, 60.3 = 202, 48 = n4
   * record count), then the batch closes. Closing = the totals journaled in `settlements`, the batch's
   * entries (and their sealed card data) deleted, the next batch number set (60.2 of the closing answer
   * when the POSP names another batch there, else + 1, 999999 wrapping to 1), in one SQLite transaction. Any other ending leaves the batch open: `settle()` may be called again.
   */
  settle(): Promise<SettlementResult> {
    return this.#exclusive(async () => {
      if (!this.#hasWorkingKeys())
        throw new TerminalError(
          'TERMINAL_NOT_SIGNED_IN',
          'terminal',
          'no working keys in the PIN pad: sign in first',
        );
      const autoReversal = await this.#reverseBeforeNext();
      // A refund whose answer was lost belongs in these totals if it was approved: learn it first.
      const refundAdvice = await this.#adviseBeforeNext();
      const batch = await this.#batchNumber();
      const entries = await this.#store.all<{
        stan: number;
        txn_type: TransactionType;
        processing_code: string;
        amount_minor: number;
        card_sealed: Uint8Array;
        local_date: string;
        local_time: string;
        rrn: string;
        auth_code: string | null;
        response_code: string;
        original_stan: number | null;
        pan_masked: string;
      }>('SELECT * FROM batch_entries WHERE batch_number = ? ORDER BY id', [Number(batch)]);
      const totals = computeSettlementTotals(
        entries.map((e) => ({ type: e.txn_type, amountMinor: e.amount_minor })),
      );
      const stan = await this.#nextStan();
      const when = this.#clock();
      const base = {
        batchNumber: batch,
        totals,
        stan,
        localYear: when.year,
        localDate: when.date,
        localTime: when.time,
        ...(autoReversal ? { autoReversal } : {}),
        ...(refundAdvice ? { refundAdvice } : {}),
      };
      const m = new Iso8583Message(this.#spec, '0500');
      m.set(11, stan);
      m.set(12, when.time);
      m.set(13, when.date);
      m.set(41, this.config.terminalId);
      m.set(42, this.config.merchantId);
      m.set(48, formatSettlementField48(totals));
      m.set(49, this.config.currency);
      m.set(60, `00${batch}201`);
      m.set(63, this.config.operator);
      const out = await this.#exchangeRetrying(this.#seal(m, true), stan, '0510', 'settle.attempt');
      const fail = (failure: SettlementResult['failure'], extra: Partial<SettlementResult> = {}) => {
        const r: SettlementResult = { ...base, status: 'failed', failure, ...extra };
        this.#log.warn('settle.result', {
          stan,
          batchNumber: batch,
          status: r.status,
          failure,
          ...(r.responseCode ? { responseCode: r.responseCode } : {}),
        });
        return r;
      };
      if (out.kind !== 'answer') return fail(out.kind === 'mac-failed' ? 'mac-failed' : 'no-answer');
      const a = out.answer!;
      const rc = String(a.get(39) ?? '');
      if (rc !== '00') {
        const r: SettlementResult = { ...base, status: 'declined', responseCode: rc };
        this.#log.warn('settle.result', { stan, batchNumber: batch, status: 'declined', responseCode: rc });
        return r;
      }
      const host = parseSettlementField48(a.get(48) as string | undefined);
      if (!host || (host.flag !== '1' && host.flag !== '2'))
        return fail('host-error', { responseCode: rc, ...(host ? { hostFlag: host.flag } : {}) });
      let uploadedCount: number | undefined;
      let closing: Iso8583Message | undefined = a;
      if (host.flag === '2') {
        uploadedCount = 0;
        for (const e of entries) {
          const card = JSON.parse(toAscii(this.pinPad.openRecord(e.card_sealed))) as {
            pan: string;
            expiry: string | null;
          };
          const u = new Iso8583Message(this.#spec, '0320');
          const typeCode = e.txn_type === 'purchase' ? '22' : e.txn_type === 'void' ? '23' : '25';
          const us = pad6(e.stan);
          u.set(2, card.pan);
          u.set(3, e.processing_code);
          u.set(4, String(e.amount_minor).padStart(12, '0'));
          u.set(11, us);
          u.set(12, e.local_time);
          u.set(13, e.local_date);
          if (card.expiry) u.set(14, card.expiry);
          u.set(25, '00');
          if (e.rrn) u.set(37, e.rrn);
          if (e.auth_code) u.set(38, e.auth_code);
          u.set(39, e.response_code);
          u.set(41, this.config.terminalId);
          u.set(42, this.config.merchantId);
          u.set(49, this.config.currency);
          u.set(60, `${typeCode}${batch}201`);
          u.set(63, this.config.operator);
          const uo = await this.#exchangeRetrying(this.#seal(u, true), us, '0330', 'settle.upload-attempt');
          if (uo.kind !== 'answer')
            return fail('upload-failed', {
              responseCode: rc,
              hostFlag: host.flag,
              hostTotals: host.totals,
              uploadedCount,
            });
          const urc = String(uo.answer!.get(39) ?? '');
          // The upload informs the POSP; any answer it believed is a delivered record.
          if (urc !== '00') this.#log.warn('settle.upload-answer', { stan: us, responseCode: urc });
          uploadedCount += 1;
        }
        const endStan = await this.#nextStan();
        const end = new Iso8583Message(this.#spec, '0320');
        end.set(11, endStan);
        end.set(12, when.time);
        end.set(13, when.date);
        end.set(41, this.config.terminalId);
        end.set(42, this.config.merchantId);
        end.set(48, String(uploadedCount).padStart(4, '0'));
        end.set(60, `00${batch}202`);
        end.set(63, this.config.operator);
        const eo = await this.#exchangeRetrying(this.#seal(end, true), endStan, '0330', 'settle.end-attempt');
        const erc = eo.kind === 'answer' ? String(eo.answer!.get(39) ?? '') : undefined;
        closing = eo.answer;
        if (erc !== '00')
          return fail('upload-failed', {
            responseCode: erc ?? rc,
            hostFlag: host.flag,
            hostTotals: host.totals,
            uploadedCount,
          });
      }
      // The POSP may name the next batch in 60.2 of its closing answer; an echo of ours means + 1.
      const named = String(closing?.get('60.2') ?? '');
      const next =
        /^[0-9]{6}$/.test(named) && named !== '000000' && named !== batch
          ? Number(named)
          : Number(batch) >= BATCH_MAX
            ? 1
            : Number(batch) + 1;
      const status = host.flag === '1' ? 'balanced' : 'uploaded';
      await this.#store.transaction(async (tx) => {
        await tx.run(
          `INSERT INTO settlements (batch_number, debit_total_minor, debit_count, credit_total_minor, credit_count,
             result, uploaded_count, stan, settled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            Number(batch),
            totals.debitTotalMinor,
            totals.debitCount,
            totals.creditTotalMinor,
            totals.creditCount,
            status,
            uploadedCount ?? 0,
            Number(stan),
            this.#now().toISOString(),
          ],
        );
        await tx.run('DELETE FROM batch_entries WHERE batch_number = ?', [Number(batch)]);
        await tx.run('UPDATE terminal_state SET batch_number = ? WHERE id = 1', [next]);
      });
      const result: SettlementResult = {
        ...base,
        status,
        responseCode: rc,
        hostFlag: host.flag,
        ...(host.flag === '2' ? { hostTotals: host.totals, uploadedCount } : {}),
        nextBatchNumber: pad6(next),
      };
      this.#log.info('settle.result', {
        stan,
        batchNumber: batch,
        status,
        debitCount: totals.debitCount,
        debitTotalMinor: totals.debitTotalMinor,
        creditCount: totals.creditCount,
        creditTotalMinor: totals.creditTotalMinor,
        ...(uploadedCount !== undefined ? { uploadedCount } : {}),
        nextBatchNumber: pad6(next),
      });
      return result;
    });
  }

  /** The settlement slip (結算單): the batch totals and the outcome. */
  settlementSlip(result: SettlementResult): string {
    return formatSettlementSlip({
      ...result,
      merchantName: this.config.merchantName,
      merchantId: this.config.merchantId,
      terminalId: this.config.terminalId,
    });
  }

  /** The approved transactions of the current batch (for settlement, issue 6), without card data. */
  async batchEntries(): Promise<
    {
      stan: string;
      type: TransactionType;
      amountMinor: number;
      rrn: string;
      voided: boolean;
      maskedPan: string;
    }[]
  > {
    this.#checkOpen();
    const batch = await this.#batchNumber();
    const rows = await this.#store.all<{
      stan: number;
      txn_type: TransactionType;
      amount_minor: number;
      rrn: string;
      voided: number;
      pan_masked: string;
    }>(
      'SELECT stan, txn_type, amount_minor, rrn, voided, pan_masked FROM batch_entries WHERE batch_number = ? ORDER BY id',
      [Number(batch)],
    );
    return rows.map((r) => ({
      stan: pad6(r.stan),
      type: r.txn_type,
      amountMinor: r.amount_minor,
      rrn: r.rrn,
      voided: r.voided === 1,
      maskedPan: r.pan_masked,
    }));
  }

  /** The merchant and cardholder copies of a result's slip (text). */
  slips(result: TransactionResult): { merchant: string; cardholder: string } {
    const input = {
      ...result,
      merchantName: this.config.merchantName,
      merchantId: this.config.merchantId,
      terminalId: this.config.terminalId,
    };
    return { merchant: formatSlip(input, 'merchant'), cardholder: formatSlip(input, 'cardholder') };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // The kept connection first (bounded: FramedClient.close destroys the socket after 500 ms).
    const kept = this.#kept;
    this.#kept = undefined;
    await kept?.close();
    await this.#store.close();
    this.pinPad.close();
  }
}

/** Starts a terminal from a config object or JSON file path (validated), opening its PIN pad and database. */
export async function startTerminal(
  config: TerminalConfigInput | TerminalConfig | string,
  opts: StartTerminalOptions,
): Promise<Terminal> {
  const c = typeof config === 'string' ? loadTerminalConfig(config) : validateTerminalConfig(config);
  return Terminal.start(c, opts);
}
