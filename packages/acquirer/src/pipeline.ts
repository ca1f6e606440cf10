/**
 * The POSP's authorization pipeline: small steps run in order over one transaction context, each with a
 * bounded time, in the manner of jPOS's TransactionManager participants. A step returns `undefined` to go
 * on, or the response code the terminal gets (a decline is a value, never an exception). A step that
 * throws or overruns its bound stops the pipeline with the step's failure code (96 unless it says
 * otherwise) and the error is kept on the context for the boundary to log once.
 *
 * Financial request (0200 purchase / inquiry / void, 0220 refund), docs/network.md:
 *   checkFields (30, 12, 13) -> checkTerminal (97, 03, 77) -> verifyTerminalMac (A0) ->
 *   reserveJournal (RRN; replay -> the first answer again; 94) -> findOriginal (25, 12, 13) ->
 *   translatePin (TPK -> ZPK) -> buildNetworkRequest (X9.19 MAC under the ZAK) -> journal 'sent' ->
 *   sendToSwitch (91 + 'unknown' on no valid answer) -> journal the outcome
 * and then the 0210/0230 answer, MACed under the terminal's TAK.
 *
 * Sign-in (0800, 60.3 = 004): checkSignIn -> checkTerminal -> issueWorkingKeys (HSM) -> 0810 with 62.
 */
import { createHash } from 'node:crypto';
import { fromHex } from '@openposp/crypto';
import type { AcquirerHsm } from './hsm.js';
import {
  type CompiledSpec,
  compileSpec,
  Iso8583Message,
  maskPan,
  startResponse,
  unpack,
} from '@openposp/iso8583';
import {
  type Clock,
  isValidMmdd,
  type LocalTime,
  localTimeOf,
  resolveMmdd,
  transmissionDateTimeOf,
} from './clock.js';
import { AcquirerError } from './errors.js';
import type { Journal, JournalEntry, TxnType } from './journal.js';
import { checkMessageMac, packWithMac } from './mac.js';
import type { PanVault } from './panvault.js';
import type { TerminalRecord, TerminalTable } from './terminals.js';
import { checkReversalFields, checkReversalTerminal, type ReversalBook, reverse } from './reversal.js';
import { isNotSentError, reversalFieldsOf, type SafQueue } from './saf.js';
import { type Batches, checkBatchFields, settleBatch, uploadBatch } from './settlement.js';

/** Response codes the POSP itself answers (docs/network.md, plus 03 and 97: see README.md). */
export const RC = {
  approved: '00',
  invalidMerchant: '03',
  invalidTransaction: '12',
  invalidAmount: '13',
  originalNotFound: '25',
  formatError: '30',
  incorrectPin: '55',
  notSignedIn: '77',
  switchInoperative: '91',
  duplicate: '94',
  systemMalfunction: '96',
  terminalNotRegistered: '97',
  macFailed: 'A0',
} as const;

/** Bounds of the pipeline, in milliseconds (docs/network.md "Timeouts and limits"). */
export interface PipelineTimeouts {
  /** How long the POSP waits for the switch's answer before answering 91. Default 20000. */
  switchMs: number;
  /** One HSM call. Default 5000 (then 96). */
  hsmMs: number;
  /** One database step. Default 5000 (then 96). */
  dbMs: number;
}

export const PIPELINE_TIMEOUTS_DEFAULT: Readonly<PipelineTimeouts> = {
  switchMs: 20_000,
  hsmMs: 5_000,
  dbMs: 5_000,
};

/** The link to the switch as the pipeline needs it (a FramedClient satisfies it). */
export interface SwitchLink {
  request(frame: Uint8Array, timeoutMs?: number): Promise<Uint8Array>;
}

export interface PipelineConfig {
  /** Field 32: the POSP's acquiring institution id (up to 11 digits), e.g. 48020000. */
  acquirerId: string;
  /** Acquirer–switch zone PIN key, HSM key block under the LMK. */
  zpk: string;
  /** Acquirer–switch zone MAC key, HSM key block under the LMK. */
  zak: string;
  /** Field 49 when the terminal does not send it. Default '156'. */
  currency: string;
  timeouts: PipelineTimeouts;
  /** Zone of the POSP's local date, minutes east of UTC; default the process's local zone. */
  utcOffsetMinutes?: number | undefined;
}

/** One log line per event: `info(event, fields)`. Fields never hold a PAN (only masked), key, PIN block or track. */
export interface AcquirerLogger {
  info(event: string, fields?: Record<string, unknown>): void;
  warn?(event: string, fields?: Record<string, unknown>): void;
  error?(event: string, fields?: Record<string, unknown>): void;
}

export interface PipelineDeps {
  hsm: AcquirerHsm;
  terminals: TerminalTable;
  journal: Journal;
  switchLink: SwitchLink;
  clock: Clock;
  config: PipelineConfig;
  cupSpec: CompiledSpec;
  netSpec: CompiledSpec;
  /** Requests being processed in this process, by identity: a concurrent duplicate waits for the first. */
  inFlight: Map<string, Promise<void>>;
  /** Issue 6: the store-and-forward queue (reversal advices owed upstream). Without it, 0400 is answered 12. */
  saf?: SafQueue | undefined;
  /** Seals the PAN an advice keeps (HSM M0 under the data key); needed with `saf`. */
  vault?: PanVault | undefined;
  /** Issue 6: terminal reversals answered (idempotence). */
  reversals?: ReversalBook | undefined;
  /** Issue 6: batches, settlement and batch upload. Without it, 0500/0320 are answered 12. */
  batches?: Batches | undefined;
}

/** The transaction context the steps read and write. */
export interface TxnContext {
  readonly deps: PipelineDeps;
  readonly req: Iso8583Message;
  /** The message as received (MTI..64), the MAC input of the terminal leg. */
  readonly bytes: Uint8Array;
  readonly now: Date;
  readonly local: LocalTime;
  kind?: TxnType | 'signin' | 'reversal' | 'settlement' | 'upload';
  terminal?: TerminalRecord;
  pan?: string;
  panMasked?: string;
  amountMinor?: number;
  txnDate?: string;
  fingerprint?: string;
  entry?: JournalEntry;
  /** The journal row is final (outcome written, or it was a replay of a finished one). */
  journalDone?: boolean;
  /** The request may have left for the switch: from here on only 'answered' or 'unknown' are true. */
  sent?: boolean;
  replayed?: boolean;
  original?: JournalEntry;
  zonePinBlock?: Uint8Array;
  /** The PIN translation, started beside the terminal's MAC check (see verifyTerminalMac). */
  pinTranslation?: Promise<PinTranslation>;
  netRequest?: Iso8583Message;
  netFrame?: Uint8Array;
  /** What goes into the answer besides 39. */
  authCode?: string;
  additionalAmounts?: string;
  settlementDate?: string;
  forwardingId?: string;
  /** 0810: field 62 (keys under the TMK and check values) and the batch. */
  keysField62?: Uint8Array;
  /** 0510: field 48 of the answer (totals and flags). */
  field48?: string;
  /** 0510/0330: the terminal's batch after this message (60.2 of the answer). */
  batchAfter?: string;
  /** Ends this request's in-flight registration (set by reserveJournal). */
  release?: () => void;
  /** The step that stopped the pipeline and the error it threw, for the boundary's one log line. */
  stoppedAt?: string;
  error?: unknown;
  /** Extra facts for the log line (never secrets). */
  notes: string[];
}

export interface Step {
  name: string;
  /** Bound of this step in ms. */
  boundMs(deps: PipelineDeps): number;
  /** Response code when the step throws or overruns its bound. Default 96. */
  failCode?: string;
  run(ctx: TxnContext): Promise<string | undefined>;
}

/** Races `p` against `ms`; rejects ACQUIRER_STEP_TIMEOUT naming the step. */
export async function bounded<T>(p: Promise<T>, ms: number, step: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new AcquirerError('ACQUIRER_STEP_TIMEOUT', `step.${step}`, `did not finish within ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `steps` in order; returns the response code of the step that stopped, or 00 when all went on. */
export async function runSteps(ctx: TxnContext, steps: readonly Step[]): Promise<string> {
  for (const step of steps) {
    let code: string | undefined;
    try {
      code = await bounded(step.run(ctx), step.boundMs(ctx.deps), step.name);
    } catch (e) {
      ctx.error = e;
      code = step.failCode ?? RC.systemMalfunction;
    }
    if (code !== undefined) {
      ctx.stoppedAt = step.name;
      return code;
    }
  }
  return RC.approved;
}

const hsmBound = (d: PipelineDeps): number => d.config.timeouts.hsmMs;
const dbBound = (d: PipelineDeps): number => d.config.timeouts.dbMs;

// ------------------------------------------------------------------------------------------------
// Classification and field checks
// ------------------------------------------------------------------------------------------------

/**
 * The transaction, keyed as a UnionPay POSP routes it: MTI + 3[0..2] + 25 + 60.1 (cup-pos-dialect.md 2.3).
 */
export function classify(req: Iso8583Message): TxnType | 'signin' | undefined {
  const mti = req.mti;
  if (mti === '0800') return 'signin';
  const pc = str(req, 3)?.slice(0, 2);
  const cond = str(req, 25);
  const t = str(req, '60.1');
  if (cond !== '00') return undefined;
  if (mti === '0200' && pc === '00' && t === '22') return 'purchase';
  if (mti === '0200' && pc === '31' && t === '01') return 'inquiry';
  if (mti === '0200' && pc === '20' && t === '23') return 'void';
  if (mti === '0220' && pc === '20' && t === '25') return 'refund';
  return undefined;
}

/** Processing code on the network leg (docs/network.md "Message types on the network legs"). */
export const NETWORK_PROCESSING_CODE: Readonly<Record<TxnType, string>> = {
  purchase: '000000',
  inquiry: '310000',
  void: '020000',
  refund: '200000',
};

function str(m: Iso8583Message, path: string | number): string | undefined {
  try {
    const v = m.get(path);
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

function bytes(m: Iso8583Message, path: number): Uint8Array | undefined {
  const v = m.get(path);
  return v instanceof Uint8Array ? v : undefined;
}

const isTime = (t: string | undefined): boolean =>
  t !== undefined && /^\d{6}$/.test(t) && +t.slice(0, 2) < 24 && +t.slice(2, 4) < 60 && +t.slice(4) < 60;
const isExpiry = (t: string | undefined): boolean =>
  t !== undefined && /^\d{4}$/.test(t) && +t.slice(2) >= 1 && +t.slice(2) <= 12;

/** The non-secret content of a request that a replay must repeat exactly; SHA-256, hex. */
export function fingerprintOf(req: Iso8583Message, panMasked: string, panLength: number): string {
  const parts = [req.mti, panMasked, String(panLength)];
  for (const f of [3, 4, 11, 12, 13, 22, 25, 41, 42, 49, 60, 61]) parts.push(`${f}=${str(req, f) ?? ''}`);
  parts.push(`37=${str(req, 37) ?? ''}`);
  // A refund advice's repeat (0221) carries no PIN block (the terminal keeps none after the first send),
  // so whether 52 was present is not part of a refund's content; it is for the other requests.
  if (req.mti !== '0220') parts.push(`52=${req.has(52) ? 1 : 0}`);
  return createHash('sha256').update(parts.join('|')).digest('hex');
}

/** Step: the request's fields, before anything else (docs/network.md terminal leg). */
export const checkFields: Step = {
  name: 'checkFields',
  boundMs: dbBound,
  async run(ctx) {
    const r = ctx.req;
    const kind = classify(r);
    if (kind === undefined || kind === 'signin') return RC.invalidTransaction;
    ctx.kind = kind;
    const stan = str(r, 11);
    if (stan === undefined || !/^\d{6}$/.test(stan) || stan === '000000') return RC.formatError;
    if (!isTime(str(r, 12)) || !isValidMmdd(str(r, 13) ?? '')) return RC.formatError;
    if ((str(r, 41) ?? '').length !== 8 || (str(r, 42) ?? '').length !== 15) return RC.formatError;
    if (!/^\d{6}$/.test(str(r, '60.2') ?? '')) return RC.formatError;
    if (!/^\d{3}$/.test(str(r, 22) ?? '')) return RC.formatError;
    const mac = bytes(r, 64);
    if (mac === undefined || mac.length !== 8) return RC.formatError;
    // The POSP never holds clear track data: the terminal sends 2 and 14 in clear, 35 under the TDK;
    // 35 is not decrypted and not forwarded (docs/network.md).
    const pan = str(r, 2);
    if (pan === undefined || !/^\d{13,19}$/.test(pan)) return RC.formatError;
    if (!isExpiry(str(r, 14))) return RC.formatError;
    ctx.pan = pan;
    ctx.panMasked = maskPan(pan);
    const cur = str(r, 49);
    if (cur !== undefined && !/^\d{3}$/.test(cur)) return RC.formatError;
    const amount = str(r, 4);
    if (kind === 'inquiry') {
      if (amount !== undefined && !/^\d{12}$/.test(amount)) return RC.formatError;
    } else {
      if (amount === undefined || !/^\d{12}$/.test(amount)) return RC.formatError;
      const n = Number(amount);
      if (!Number.isSafeInteger(n)) return RC.formatError;
      if (n === 0) return RC.invalidAmount;
      ctx.amountMinor = n;
    }
    if (r.has(52)) {
      const pb = bytes(r, 52);
      const f53 = str(r, 53);
      // 53: position 1 = 2 (ISO 9564 format 0, with the PAN), position 2 = 6 (double-length TDES).
      if (pb === undefined || pb.length !== 8 || f53 === undefined || f53[0] !== '2' || f53[1] !== '6')
        return RC.formatError;
    }
    if (kind === 'void' || kind === 'refund') {
      if (!/^\d{6}$/.test(str(r, '61.1') ?? '') || !/^\d{6}$/.test(str(r, '61.2') ?? ''))
        return RC.formatError;
      const d = str(r, '61.3');
      if (d !== undefined && d !== '' && !isValidMmdd(d)) return RC.formatError;
      const rrn = str(r, 37);
      if (rrn !== undefined && !/^\d{12}$/.test(rrn)) return RC.formatError;
      // A refund without batch and STAN (61.1/61.2 zeros) names its original by RRN (37) and date (61.3).
      if (kind === 'refund' && byRrnOnly(r) && rrn === undefined) return RC.formatError;
    }
    ctx.txnDate = resolveMmdd(str(r, 13)!, ctx.local.date);
    ctx.fingerprint = fingerprintOf(r, ctx.panMasked, pan.length);
    return undefined;
  },
};

/** Step: the terminal is in the table, active, of this merchant, and (financial) signed in today. */
export const checkTerminal: Step = {
  name: 'checkTerminal',
  boundMs: dbBound,
  async run(ctx) {
    const t = await ctx.deps.terminals.get(str(ctx.req, 41) ?? '');
    if (t === undefined || t.status !== 'active') return RC.terminalNotRegistered;
    ctx.terminal = t;
    if (str(ctx.req, 42) !== t.merchantId) return RC.invalidMerchant;
    if (ctx.kind === 'signin') return undefined;
    // Working keys change at least daily: yesterday's sign-in does not count (issue 5 §2).
    if (t.tak === undefined || t.tpk === undefined || t.signedInDate !== ctx.local.date)
      return RC.notSignedIn;
    // A financial request carries the terminal's open batch; after a settlement the batch advanced and
    // the 0510/0330 said so. Another batch: sign in again (the 0810's 60.2 gives the open batch).
    if (str(ctx.req, '60.2') !== t.batchNo) {
      ctx.notes.push('batch-not-open');
      return RC.notSignedIn;
    }
    return undefined;
  },
};

/** 61.1 and 61.2 all zeros: the terminal does not know the original's batch and STAN. */
function byRrnOnly(r: Iso8583Message): boolean {
  return str(r, '61.1') === '000000' && str(r, '61.2') === '000000';
}

/**
 * Step: a request whose reversal arrived first (the terminal reversed it, the POSP had never seen it,
 * answered 00 and remembered it) is declined 12 and moves nothing (docs/network.md).
 */
export const checkReversedBefore: Step = {
  name: 'checkReversedBefore',
  boundMs: dbBound,
  async run(ctx) {
    const book = ctx.deps.reversals;
    if (book === undefined) return undefined;
    const rec = await book.get({
      terminalId: ctx.terminal!.terminalId,
      batch: str(ctx.req, '60.2')!,
      stan: str(ctx.req, 11)!,
      mmdd: str(ctx.req, 13)!,
    });
    if (rec !== undefined && rec.outcome === 'no-original') {
      ctx.notes.push('reversed-before-arrival');
      return RC.invalidTransaction;
    }
    return undefined;
  },
};

/** The outcome of a PIN translation, kept without an unhandled rejection until `translatePin` reads it. */
type PinTranslation = { ok: true; block: Uint8Array } | { ok: false; error: unknown };

/** Asks the HSM for the PIN block under the acquirer–switch ZPK (format 0 to 0); undefined without 52. */
function startPinTranslation(ctx: TxnContext): Promise<PinTranslation> | undefined {
  const pb = bytes(ctx.req, 52);
  const tpk = ctx.terminal?.tpk;
  if (pb === undefined || tpk === undefined || ctx.pan === undefined) return undefined;
  return ctx.deps.hsm
    .translatePinTpkToZpk({
      pinBlock: pb,
      format: 0,
      pan: ctx.pan,
      tpk,
      zpk: ctx.deps.config.zpk,
      formatOut: 0,
    })
    .then(
      (block): PinTranslation => ({ ok: true, block }),
      (error: unknown): PinTranslation => ({ ok: false, error }),
    );
}

/**
 * Step: the terminal's MAC (UnionPay ECB MAC under the TAK, over the bytes as received). A financial
 * request's PIN translation goes to the HSM with it (one trip instead of two); its result is read by
 * `translatePin` only once this MAC has verified and the request is journaled, and dropped otherwise.
 */
export const verifyTerminalMac: Step = {
  name: 'verifyTerminalMac',
  boundMs: hsmBound,
  async run(ctx) {
    ctx.pinTranslation = startPinTranslation(ctx);
    const mac = await checkMessageMac(ctx.deps.hsm, ctx.deps.cupSpec, ctx.bytes, {
      key: ctx.terminal!.tak!,
      algorithm: 'cup-ecb',
    });
    if (mac === 'missing') return RC.formatError;
    return mac === 'ok' ? undefined : RC.macFailed;
  },
};

const identityKey = (terminalId: string, stan: string, txnDate: string): string =>
  `${terminalId}|${stan}|${txnDate}`;

/** Loads the outcome of a finished entry into the context, for answering a replay with it. */
function replayFrom(ctx: TxnContext, e: JournalEntry): string {
  ctx.entry = e;
  ctx.replayed = true;
  ctx.journalDone = true;
  if (e.authCode !== undefined) ctx.authCode = e.authCode;
  if (e.additionalAmounts !== undefined) ctx.additionalAmounts = e.additionalAmounts;
  if (e.settlementDate !== undefined) ctx.settlementDate = e.settlementDate;
  ctx.notes.push('replay');
  // `unknown`: the switch never gave a valid answer, so the first answer was 91, and so is this one.
  return e.state === 'unknown' ? RC.switchInoperative : (e.responseCode ?? RC.systemMalfunction);
}

/**
 * How long a request journaled at `e.receivedAt` may still be in progress on some POSP node: the bounds
 * of the steps after reserveJournal (findOriginal, translatePin, buildNetworkRequest, sendToSwitch, the
 * final journal write), less its age. 0 when it is older: a crash left it, nobody will finish it.
 */
export function stillInFlightMs(ctx: TxnContext, e: JournalEntry): number {
  const t = ctx.deps.config.timeouts;
  const bound = t.switchMs + 4 * t.hsmMs + 5 * t.dbMs;
  return Math.max(0, bound - (ctx.now.getTime() - Date.parse(e.receivedAt)));
}

/**
 * Step: journals the request and assigns its RRN. The same identity (terminal, STAN, date) already
 * journaled is a replay: the same content gets the first answer again without a second network request;
 * other content gets 94. A duplicate of a request still in progress waits for it (bounded).
 */
export const reserveJournal: Step = {
  name: 'reserveJournal',
  // Covers waiting for a concurrent duplicate: the rest of its pipeline (3 HSM calls, the switch, the journal).
  boundMs: (d) => d.config.timeouts.switchMs + 4 * d.config.timeouts.hsmMs + 6 * d.config.timeouts.dbMs,
  async run(ctx) {
    const r = ctx.req;
    const t = ctx.terminal!;
    const res = await ctx.deps.journal.reserve({
      terminalId: t.terminalId,
      merchantId: t.merchantId,
      stan: str(r, 11)!,
      txnDate: ctx.txnDate!,
      localTime: str(r, 12)!,
      batchNo: str(r, '60.2')!,
      terminalMti: r.mti,
      txnType: ctx.kind as TxnType,
      processingCode: str(r, 3)!,
      amountMinor: ctx.amountMinor,
      currency: str(r, 49) ?? ctx.deps.config.currency,
      panMasked: ctx.panMasked!,
      entryMode: str(r, 22)!,
      fingerprint: ctx.fingerprint!,
      acquirerId: ctx.deps.config.acquirerId,
      originalRrn: undefined,
      receivedAt: ctx.now.toISOString(),
    });
    const key = identityKey(t.terminalId, str(r, 11)!, ctx.txnDate!);
    if (res.kind === 'new') {
      ctx.entry = res.entry;
      // In flight from now (no await in between), so that a concurrent duplicate waits for this outcome.
      const inFlight = ctx.deps.inFlight;
      inFlight.set(
        key,
        new Promise<void>((resolve) => {
          ctx.release = () => {
            inFlight.delete(key);
            resolve();
          };
        }),
      );
      return undefined;
    }
    let e = res.entry;
    if (e.fingerprint !== ctx.fingerprint) {
      ctx.notes.push('duplicate-different-content');
      ctx.journalDone = true;
      return RC.duplicate;
    }
    if (e.state === 'received' || e.state === 'sent') {
      const pending = ctx.deps.inFlight.get(key);
      if (pending !== undefined) {
        await pending;
        e = (await ctx.deps.journal.byRrn(e.rrn)) ?? e;
      } else if (ctx.deps.journal.shared) {
        // Another POSP node on the same database may have it in flight: its outcome, read again until
        // it comes or the request is older than any node would still be working on it.
        ctx.notes.push('duplicate-other-node');
        e = await ctx.deps.journal.awaitOutcome(e, stillInFlightMs(ctx, e));
      }
      if (e.state === 'received' || e.state === 'sent') {
        // Left over from a stop (crash) mid-flight: its outcome is unknown until reconciled (issue 6).
        ctx.entry = e;
        ctx.replayed = true;
        ctx.journalDone = true;
        ctx.notes.push('replay-in-doubt');
        return RC.switchInoperative;
      }
    }
    return replayFrom(ctx, e);
  },
};

/**
 * Step (void, refund): the original in the journal by terminal + batch + STAN (field 61), approved, of
 * the same card; a void must carry the original amount, a refund at most it (13 otherwise).
 */
export const findOriginal: Step = {
  name: 'findOriginal',
  boundMs: dbBound,
  async run(ctx) {
    if (ctx.kind !== 'void' && ctx.kind !== 'refund') return undefined;
    const r = ctx.req;
    const date = str(r, '61.3');
    const rrn = str(r, 37);
    let candidates: JournalEntry[];
    if (ctx.kind === 'refund' && byRrnOnly(r)) {
      // No batch or STAN: the RRN (and the date, when sent) names the original, of this merchant.
      const e = await ctx.deps.journal.byRrn(rrn!);
      candidates = e !== undefined && e.merchantId === ctx.terminal!.merchantId ? [e] : [];
    } else {
      candidates = await ctx.deps.journal.findOriginal(
        ctx.terminal!.terminalId,
        str(r, '61.1')!,
        str(r, '61.2')!,
      );
    }
    const orig = candidates.find(
      (c) =>
        c.txnType === 'purchase' &&
        c.rrn !== ctx.entry!.rrn &&
        (date === undefined || date === '' || c.txnDate.slice(4) === date) &&
        (rrn === undefined || c.rrn === rrn),
    );
    if (
      orig === undefined ||
      orig.state !== 'answered' ||
      orig.responseCode !== RC.approved ||
      (orig.reversalState !== undefined && orig.reversalState !== 'refused')
    ) {
      return RC.originalNotFound;
    }
    if (orig.panMasked !== ctx.panMasked) return RC.originalNotFound;
    if (orig.transmissionDateTime === undefined || orig.networkMti === undefined) return RC.originalNotFound;
    await ctx.deps.journal.linkOriginal(ctx.entry!.rrn, orig.rrn);
    // A voided purchase has nothing left to void or refund.
    if (orig.voidedByRrn !== undefined) return RC.invalidTransaction;
    if (ctx.kind === 'void') {
      if (orig.amountMinor !== ctx.amountMinor) return RC.invalidAmount;
    } else {
      // Partial refunds are allowed; together they never exceed the original (docs/network.md 13).
      const refunded = await ctx.deps.journal.refundedMinor(orig.rrn);
      if ((ctx.amountMinor ?? 0) + refunded > (orig.amountMinor ?? 0)) return RC.invalidAmount;
    }
    ctx.original = orig;
    return undefined;
  },
};

/** Step: the PIN block from the terminal's TPK to the acquirer–switch ZPK, format 0 to 0, in the HSM. */
export const translatePin: Step = {
  name: 'translatePin',
  boundMs: hsmBound,
  async run(ctx) {
    const pending = ctx.pinTranslation ?? startPinTranslation(ctx);
    if (pending === undefined) {
      if (bytes(ctx.req, 52) === undefined) return undefined;
      // A PIN block, but no PAN or no TPK: the earlier steps let no such request through.
      ctx.notes.push('pin-translation-without-pan-or-tpk');
      return RC.systemMalfunction;
    }
    const t = await pending;
    if (t.ok) ctx.zonePinBlock = t.block;
    else {
      const e = t.error;
      const reply = (e as { reply?: unknown }).reply;
      // payShield 20 (PIN block does not decode) and 24 (PIN length): what the PIN pad sent is not a
      // format 0 block of this card under this TPK: the cardholder's entry is refused as 55.
      if (reply === '20' || reply === '24') {
        ctx.error = e;
        return RC.incorrectPin;
      }
      throw e;
    }
    return undefined;
  },
};

const pad11 = (id: string): string => id.padStart(11, '0');

/** The network leg's MAC: X9.19 (ISO 9797-1 algorithm 3, padding 1) under the acquirer–switch ZAK. */
const NETWORK_MAC = (deps: PipelineDeps) =>
  ({ key: deps.config.zak, algorithm: 'iso9797-1-3', padding: 1 }) as const;

/** Step: the iso87-binary request for the switch, MACed (X9.19, padding 1) under the acquirer–switch ZAK. */
export const buildNetworkRequest: Step = {
  name: 'buildNetworkRequest',
  boundMs: hsmBound,
  async run(ctx) {
    const { req: r, deps } = ctx;
    const kind = ctx.kind as TxnType;
    const m = new Iso8583Message(deps.netSpec, '0200');
    m.set(2, ctx.pan!);
    m.set(3, NETWORK_PROCESSING_CODE[kind]);
    const amount = str(r, 4);
    if (amount !== undefined && kind !== 'inquiry') m.set(4, amount);
    else if (amount !== undefined && Number(amount) > 0) m.set(4, amount);
    m.set(7, transmissionDateTimeOf(ctx.now));
    m.set(11, str(r, 11)!);
    m.set(12, str(r, 12)!);
    m.set(13, str(r, 13)!);
    m.set(14, str(r, 14)!);
    m.set(22, str(r, 22)!);
    m.set(25, str(r, 25)!);
    m.set(32, deps.config.acquirerId);
    m.set(37, ctx.entry!.rrn);
    m.set(41, str(r, 41)!);
    m.set(42, str(r, 42)!);
    m.set(49, str(r, 49) ?? deps.config.currency);
    if (ctx.zonePinBlock !== undefined) {
      m.set(52, ctx.zonePinBlock);
      m.set(53, '2600000000000000');
    }
    if (ctx.original !== undefined) {
      const o = ctx.original;
      m.set(
        90,
        `${o.networkMti}${o.stan}${o.transmissionDateTime}${pad11(o.acquirerId)}${pad11(o.forwardingId ?? '0')}`,
      );
    }
    // The MAC in 64, or in 128 when field 90 gives the message a secondary bitmap (docs/network.md).
    ctx.netFrame = await packWithMac(deps.hsm, deps.netSpec, m, NETWORK_MAC(deps));
    ctx.netRequest = m;
    return undefined;
  },
};

/** Why a switch answer is not believed (then it counts as no answer at all). */
function answerProblem(ctx: TxnContext, a: Iso8583Message): string | undefined {
  const q = ctx.netRequest!;
  if (a.mti !== '0210') return 'mti';
  for (const f of [11, 37, 41]) if (str(a, f) !== str(q, f)) return `field-${f}`;
  if (!/^[0-9A-Z]{2}$/.test(str(a, 39) ?? '')) return 'field-39';
  return undefined;
}

/**
 * Step: journal 'sent', send, wait at most `switchMs`, verify the answer's MAC under the ZAK, journal the
 * outcome. No answer, a closed link or a MAC that fails: 91 to the terminal and the entry stays
 * 'unknown' for issue 6 (reversal, reconciliation). Never throws after the request left.
 */
export const sendToSwitch: Step = {
  name: 'sendToSwitch',
  failCode: '91',
  boundMs: (d) => d.config.timeouts.switchMs + 2 * d.config.timeouts.hsmMs + 3 * d.config.timeouts.dbMs,
  async run(ctx) {
    const { deps } = ctx;
    const rrn = ctx.entry!.rrn;
    await bounded(
      deps.journal.markSent(rrn, '0200', str(ctx.netRequest!, 7)!, deps.clock().toISOString()),
      deps.config.timeouts.dbMs,
      'journalSent',
    );
    ctx.sent = true;
    let answer: Iso8583Message | undefined;
    try {
      const raw = await bounded(
        deps.switchLink.request(ctx.netFrame!, deps.config.timeouts.switchMs),
        deps.config.timeouts.switchMs + 500,
        'switch',
      );
      const a = unpack(deps.netSpec, raw);
      const problem = answerProblem(ctx, a);
      if (problem !== undefined) {
        ctx.notes.push(`switch-answer-${problem}`);
      } else {
        const mac = await bounded(
          checkMessageMac(deps.hsm, deps.netSpec, raw, NETWORK_MAC(deps)),
          deps.config.timeouts.hsmMs,
          'verifySwitchMac',
        );
        if (mac === 'ok') answer = a;
        else ctx.notes.push(mac === 'missing' ? 'switch-answer-no-mac' : 'switch-answer-mac-failed');
      }
    } catch (e) {
      ctx.error = e;
      if (isNotSentError(e)) {
        // Refused before a byte was written (link down, in-flight limit): the switch, and so the issuer,
        // never saw it. A decline (91), not an unknown outcome: no reversal is owed, no advice queued.
        ctx.notes.push('switch-not-sent');
        await deps.journal.finish(rrn, {
          state: 'declined',
          responseCode: RC.switchInoperative,
          finishedAt: deps.clock().toISOString(),
        });
        ctx.journalDone = true;
        return RC.switchInoperative;
      }
      ctx.notes.push('switch-no-answer');
    }
    const finishedAt = deps.clock().toISOString();
    // A switch's 91 to a financial request means "sent, outcome unknown" (the issuer may have debited):
    // not a decline. The POSP records it as unknown and owes its own reversal advice, exactly as for no
    // answer (docs/network.md: 91 issuer or switch inoperative). A 91 for a link that was down (nothing
    // sent) is the same to us: the issuer acknowledges a reversal of what it never saw.
    if (answer !== undefined && str(answer, 39) === RC.switchInoperative && ctx.kind !== 'inquiry') {
      ctx.notes.push('switch-answered-91');
      answer = undefined;
    }
    if (answer === undefined) {
      await deps.journal.finish(rrn, { state: 'unknown', responseCode: RC.switchInoperative, finishedAt });
      ctx.journalDone = true;
      await queueOwnAdvice(ctx);
      return RC.switchInoperative;
    }
    const code = str(answer, 39)!;
    const auth = code === RC.approved ? str(answer, 38) : undefined;
    if (auth !== undefined) ctx.authCode = auth;
    const add = str(answer, 54);
    if (add !== undefined) ctx.additionalAmounts = add;
    ctx.settlementDate = str(answer, 15) ?? ctx.local.mmdd;
    const fwd = str(answer, 33);
    if (fwd !== undefined) ctx.forwardingId = fwd;
    await deps.journal.finish(rrn, {
      state: 'answered',
      responseCode: code,
      authCode: auth,
      additionalAmounts: add,
      settlementDate: ctx.settlementDate,
      forwardingId: fwd,
      finishedAt,
    });
    ctx.journalDone = true;
    if (ctx.kind === 'void' && code === RC.approved) await deps.journal.markVoided(ctx.original!.rrn, rrn);
    return code;
  },
};

/**
 * The terminal got 91 for a request that may have reached the issuer, and will not reverse it: the POSP
 * owes the reversal itself (docs/network.md), as an advice in the store-and-forward queue. An inquiry
 * moves no money and needs none. A failure to queue is noted (the entry stays `unknown` for clearing).
 */
async function queueOwnAdvice(ctx: TxnContext): Promise<void> {
  const { deps } = ctx;
  if (deps.saf === undefined || ctx.kind === 'inquiry') return;
  try {
    const e = await bounded(deps.journal.byRrn(ctx.entry!.rrn), deps.config.timeouts.dbMs, 'adviceEntry');
    if (e === undefined) return;
    const reason = ctx.notes.some((n) => n.startsWith('switch-answer-')) ? 'A0' : '98';
    if (deps.vault === undefined)
      throw new AcquirerError('ACQUIRER_HSM_UNAVAILABLE', 'vault', 'no PAN vault');
    const panSealed = await bounded(deps.vault.seal(ctx.pan!), deps.config.timeouts.hsmMs, 'sealPan');
    const r = await bounded(
      deps.saf.enqueue(
        {
          originalRrn: e.rrn,
          source: 'posp',
          reason,
          panSealed,
          panMasked: ctx.panMasked!,
          fields: reversalFieldsOf(e),
        },
        deps.clock().toISOString(),
      ),
      deps.config.timeouts.dbMs,
      'adviceQueue',
    );
    ctx.notes.push(`advice-${r}`);
  } catch (err) {
    ctx.error ??= err;
    ctx.notes.push('advice-not-queued');
  }
}

export const FINANCIAL_STEPS: readonly Step[] = [
  checkFields,
  checkTerminal,
  verifyTerminalMac,
  checkReversedBefore,
  reserveJournal,
  findOriginal,
  translatePin,
  buildNetworkRequest,
  sendToSwitch,
];

// ------------------------------------------------------------------------------------------------
// Sign-in
// ------------------------------------------------------------------------------------------------

/** Step: an 0800 sign-in the POSP serves: 60.3 = 004 (double-length keys plus TDK, cup-pos-dialect.md 2.5). */
export const checkSignIn: Step = {
  name: 'checkSignIn',
  boundMs: dbBound,
  async run(ctx) {
    const r = ctx.req;
    ctx.kind = 'signin';
    if (!/^\d{6}$/.test(str(r, 11) ?? '')) return RC.formatError;
    if ((str(r, 41) ?? '').length !== 8 || (str(r, 42) ?? '').length !== 15) return RC.formatError;
    if (str(r, '60.1') !== '00' || str(r, '60.3') !== '004') return RC.formatError;
    return undefined;
  },
};

/**
 * Step: new TPK, TAK and TDK from the HSM (under the TMK for the terminal, under the LMK for the table);
 * field 62 = TPK(16) | CV(4) | TAK(16) | CV(4) | TDK(16) | CV(4) (docs/network.md).
 */
export const issueWorkingKeys: Step = {
  name: 'issueWorkingKeys',
  boundMs: (d) => d.config.timeouts.hsmMs + d.config.timeouts.dbMs,
  async run(ctx) {
    const t = ctx.terminal!;
    const wk = await bounded(
      ctx.deps.hsm.generateTerminalWorkingKeys(t.tmk),
      ctx.deps.config.timeouts.hsmMs,
      'hsm',
    );
    const f62 = new Uint8Array(60);
    let at = 0;
    for (const k of [wk.tpk, wk.tak, wk.tdk]) {
      f62.set(fromHex(k.underTmk, 'underTmk').subarray(0, 16), at);
      f62.set(fromHex(k.checkValue, 'checkValue').subarray(0, 4), at + 16);
      at += 20;
    }
    await ctx.deps.terminals.storeWorkingKeys(
      t.terminalId,
      { tpk: wk.tpk.keyBlock, tak: wk.tak.keyBlock, tdk: wk.tdk.keyBlock },
      ctx.local.date,
    );
    ctx.keysField62 = f62;
    return undefined;
  },
};

export const SIGN_IN_STEPS: readonly Step[] = [checkSignIn, checkTerminal, issueWorkingKeys];

/** 0400 from a terminal (issue 6): see reversal.ts. */
export const REVERSAL_STEPS: readonly Step[] = [
  checkReversalFields,
  checkReversalTerminal,
  verifyTerminalMac,
  reverse,
];

/** 0500 settlement and 0320 batch upload (issue 6): see settlement.ts. */
export const SETTLEMENT_STEPS: readonly Step[] = [
  checkBatchFields,
  checkReversalTerminal,
  verifyTerminalMac,
  settleBatch,
];
export const UPLOAD_STEPS: readonly Step[] = [
  checkBatchFields,
  checkReversalTerminal,
  verifyTerminalMac,
  uploadBatch,
];

// ------------------------------------------------------------------------------------------------
// The whole transaction: steps, abort, answer
// ------------------------------------------------------------------------------------------------

export interface HandledMessage {
  /** The answer (MTI..64), or null when the request is dropped. */
  answer: Iso8583Message | null;
  responseCode: string | undefined;
  ctx: TxnContext | undefined;
  /** Why it was dropped, for the log (an error code, never data). */
  dropped?: string;
}

/**
 * Handles one terminal message (the bytes after TPDU and header). Never throws for anything on the wire:
 * a message whose MTI and identity cannot be read is dropped; everything else is answered.
 */
export async function handleTerminalMessage(
  deps: PipelineDeps,
  message: Uint8Array,
): Promise<HandledMessage> {
  let req: Iso8583Message;
  try {
    req = unpackTerminalMessage(deps.cupSpec, message);
  } catch (e) {
    return { answer: null, responseCode: undefined, ctx: undefined, dropped: errCode(e) };
  }
  const now = deps.clock();
  const ctx: TxnContext = {
    deps,
    req,
    bytes: message,
    now,
    local: localTimeOf(now, deps.config.utcOffsetMinutes),
    notes: [],
  };
  if (req.mti.charCodeAt(2) % 2 !== 0) {
    // A response sent to us (odd message function): nothing to answer.
    return { answer: null, responseCode: undefined, ctx, dropped: 'not-a-request' };
  }
  if (str(req, 41) === undefined || str(req, 11) === undefined) {
    return { answer: null, responseCode: undefined, ctx, dropped: 'no-identity' };
  }
  if (req.mti === '0221') {
    // A repeat of a refund advice (ISO 8583 message function 1 = repeat, docs/network.md "Refund
    // advice"): the terminal had no valid answer to its 0220 and sends it again with the same identity
    // (41, 11, 13). It IS that 0220: a repeat of one the POSP journaled gets its first answer again
    // (reserveJournal), never 94 and never a second credit; one it never saw is processed as the 0220.
    // Answered 0230 like the 0220.
    req.mti = '0220';
    ctx.notes.push('advice-repeat');
  }
  const classified = classify(req);
  let code: string;
  if (classified === 'signin') {
    code = await runSteps(ctx, SIGN_IN_STEPS);
  } else if (req.mti === '0400') {
    code = await runSteps(ctx, REVERSAL_STEPS);
  } else if (req.mti === '0500') {
    code = await runSteps(ctx, SETTLEMENT_STEPS);
  } else if (req.mti === '0320') {
    code = await runSteps(ctx, UPLOAD_STEPS);
  } else if (classified === undefined && req.mti !== '0200' && req.mti !== '0220') {
    // 0820 sign-off and anything else.
    code = RC.invalidTransaction;
    ctx.stoppedAt = 'classify';
  } else {
    code = await runSteps(ctx, FINANCIAL_STEPS);
    try {
      if (ctx.entry !== undefined && !ctx.journalDone) {
        // Abort. Stopped before the request left: the POSP's own answer is the outcome. Stopped after it
        // may have left (a defect or an overrun in sendToSwitch): only the switch knows, so 'unknown', 91.
        if (ctx.sent) code = RC.switchInoperative;
        await bounded(
          deps.journal.finish(ctx.entry.rrn, {
            state: ctx.sent ? 'unknown' : 'declined',
            responseCode: code,
            finishedAt: deps.clock().toISOString(),
          }),
          deps.config.timeouts.dbMs,
          'journalDeclined',
        );
        ctx.journalDone = true;
      }
    } catch (e) {
      ctx.error ??= e;
    } finally {
      ctx.release?.();
    }
  }
  const answer = await buildAnswer(ctx, code);
  return { answer, responseCode: code, ctx };
}

const TRACK_FIELDS = [35, 36] as const;
const withoutTrackFields = new WeakMap<CompiledSpec, CompiledSpec>();

/** `spec` without fields 35 and 36 (compiled once per spec). */
function specWithoutTracks(spec: CompiledSpec): CompiledSpec {
  let s = withoutTrackFields.get(spec);
  if (s === undefined) {
    const src = structuredClone(spec.source);
    for (const f of TRACK_FIELDS) delete (src.fields as Record<string, unknown>)[String(f)];
    s = compileSpec({ ...src, name: `${spec.name}-without-tracks` });
    withoutTrackFields.set(spec, s);
  }
  return s;
}

/**
 * Unpacks a terminal message. Track data under the TDK (53 position 3 = 1) is enciphered in place in the
 * BCD bytes of 35/36 (UnionPay TDB), so its nibbles are no longer digits and the `z` codec refuses them.
 * The POSP never uses track data (it is neither decrypted nor forwarded), so the track fields are cut out
 * of the bytes before unpacking: their offset is where a spec without 35/36 stops (bit set, field
 * unknown), their length is their BCD length prefix (digits). The MAC is still verified over the bytes
 * as received. Anything else malformed throws the codec's error, as before.
 */
export function unpackTerminalMessage(spec: CompiledSpec, bytes: Uint8Array): Iso8583Message {
  try {
    return unpack(spec, bytes);
  } catch (e) {
    const err = e as { code?: unknown; field?: unknown };
    if (err.code !== 'ISO8583_BCD_INVALID' || (err.field !== '35' && err.field !== '36')) throw e;
  }
  let b = bytes.slice();
  const bare = specWithoutTracks(spec);
  const bitmapAt = spec.mtiEncoding === 'bcd' ? 2 : 4;
  for (let round = 0; round < TRACK_FIELDS.length; round++) {
    let at: number;
    let id: number;
    try {
      unpack(bare, b, { checkSubfields: false });
      break;
    } catch (e) {
      const err = e as { code?: unknown; field?: unknown; offset?: unknown };
      id = Number(err.field);
      at = typeof err.offset === 'number' ? err.offset : -1;
      // 35: LL, one BCD length byte; 36: LLL, two (cup-pos). The length counts digits.
      if (
        err.code !== 'ISO8583_FIELD_UNKNOWN' ||
        (id !== 35 && id !== 36) ||
        at < 0 ||
        at + (id === 35 ? 1 : 2) > b.length
      )
        throw e;
    }
    const prefix = id === 35 ? 1 : 2;
    let digits = 0;
    for (let i = 0; i < prefix; i++) digits = digits * 100 + (b[at + i]! >> 4) * 10 + (b[at + i]! & 15);
    const end = Math.min(b.length, at + prefix + Math.ceil(digits / 2));
    const next = new Uint8Array(b.length - (end - at));
    next.set(b.subarray(0, at));
    next.set(b.subarray(end), at);
    next[bitmapAt + ((id - 1) >> 3)]! &= ~(0x80 >> ((id - 1) & 7));
    b = next;
  }
  return unpack(spec, b);
}

function errCode(e: unknown): string {
  const c = (e as { code?: unknown }).code;
  return typeof c === 'string' ? c : 'error';
}

/**
 * The answer to the terminal: the echoed fields (cup-pos `response.echo`), 12/13, 32, 37, 38 (approved
 * only), 39, 15, 54, and field 64 under the terminal's TAK whenever the terminal has one (also on A0:
 * docs/network.md "every answer ... carries a MAC ... except when the terminal has no working keys").
 * The 0810 carries no MAC (the terminal has no keys until it reads them).
 */
export async function buildAnswer(ctx: TxnContext, code: string): Promise<Iso8583Message> {
  const { req, deps } = ctx;
  const a = startResponse(req);
  if (ctx.kind === 'signin') {
    a.set(12, ctx.local.time);
    a.set(13, ctx.local.mmdd);
  } else {
    for (const f of [12, 13]) {
      const v = str(req, f);
      if (v !== undefined) a.set(f, v);
    }
  }
  // Fields that a response must not echo back (secrets are not in the echo list; this is a guard).
  for (const f of [14, 35, 36, 52, 55, 62, 64]) if (a.has(f)) a.unset(f);
  trySet(a, 32, deps.config.acquirerId);
  if (ctx.entry !== undefined && !(ctx.kind === 'signin')) {
    a.set(37, ctx.entry.rrn);
    a.set(15, ctx.settlementDate ?? ctx.local.mmdd);
  }
  if (code === RC.approved && ctx.authCode !== undefined) a.set(38, ctx.authCode);
  a.set(39, code);
  if (ctx.additionalAmounts !== undefined && code === RC.approved) trySet(a, 54, ctx.additionalAmounts);
  if (ctx.field48 !== undefined && code === RC.approved) trySet(a, 48, ctx.field48);
  if (ctx.batchAfter !== undefined && code === RC.approved) trySet(a, '60.2', ctx.batchAfter);
  if (ctx.kind === 'signin') {
    if (code === RC.approved) {
      a.set(62, ctx.keysField62!);
      trySet(a, '60.2', ctx.terminal!.batchNo);
    }
    return a;
  }
  let tak = ctx.terminal?.tak;
  if (tak === undefined && ctx.terminal === undefined) {
    try {
      tak = (
        await bounded(deps.terminals.get(str(req, 41) ?? ''), deps.config.timeouts.dbMs, 'answerTerminal')
      )?.tak;
    } catch {
      tak = undefined;
    }
  }
  if (tak === undefined) return a;
  try {
    // Sets 64 of the answer (cup-pos has no secondary bitmap); the server packs the answer again.
    await bounded(
      packWithMac(deps.hsm, deps.cupSpec, a, { key: tak, algorithm: 'cup-ecb' }),
      deps.config.timeouts.hsmMs,
      'answerMac',
    );
  } catch (e) {
    // The terminal will not believe an answer without a valid MAC and reverses (issue 6): the safe side.
    a.unset(64);
    ctx.error ??= e;
    ctx.notes.push('answer-unmaced');
  }
  return a;
}

function trySet(m: Iso8583Message, path: string | number, v: string): void {
  try {
    m.set(path, v);
  } catch {
    // A field the spec does not define is left out rather than failing the answer.
  }
}
