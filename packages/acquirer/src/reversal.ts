/**
 * Terminal reversals (沖正, 0400/0410 on cup-pos; docs/network.md "Reversals, store and forward").
 *
 * checkReversalFields (30) -> checkReversalTerminal (97, 03, 77) -> verifyTerminalMac (A0) -> reverse:
 * - a second 0400 for the same original (terminal + 61: batch, STAN, date) gets the first answer;
 * - an original the POSP never journaled is answered 00 and remembered (the original arriving late is
 *   then declined 12);
 * - an original that never left the POSP, or that the issuer declined, had no effect upstream: 00;
 * - otherwise the reversal goes to the switch as an iso87-binary 0400 (field 90, MAC in 128); when the
 *   switch does not answer in time (or the link is down, or its answer's MAC fails, or it answers 91/96),
 *   the reversal goes into the store-and-forward queue and the terminal gets 00 only once it is there.
 */
import { maskPan } from '@openposp/iso8583';
import type { Queryable, Store } from '@openposp/store';
import { isValidMmdd } from './clock.js';
import { AcquirerError } from './errors.js';
import type { JournalEntry } from './journal.js';
import type { Step, TxnContext } from './pipeline.js';
import { RC, stillInFlightMs } from './pipeline.js';
import { classifyReversalAnswer, reversalFieldsOf, sendReversal } from './saf.js';

/** The 0400's field 39: 98 no answer in time, 96 approved but not finished, A0 bad MAC, 06 other. */
export const REVERSAL_REASONS: readonly string[] = ['98', '96', 'A0', '06'];

export type ReversalOutcome = 'no-original' | 'local' | 'forwarded' | 'queued' | 'declined';

export interface ReversalKey {
  terminalId: string;
  batch: string;
  stan: string;
  mmdd: string;
}

export interface ReversalRecord extends ReversalKey {
  originalRrn: string | undefined;
  reason: string;
  outcome: ReversalOutcome;
  answerCode: string;
  receivedAt: string;
}

/** The terminal reversals the POSP answered, by the original's identity as the terminal names it. */
export class ReversalBook {
  constructor(private readonly store: Store) {}

  async get(k: ReversalKey, q: Queryable = this.store): Promise<ReversalRecord | undefined> {
    const r = await q.get<Record<string, string | null>>(
      'SELECT * FROM reversals WHERE terminal_id = ? AND orig_batch = ? AND orig_stan = ? AND orig_mmdd = ?',
      [k.terminalId, k.batch, k.stan, k.mmdd],
    );
    if (r === undefined) return undefined;
    return {
      terminalId: String(r.terminal_id),
      batch: String(r.orig_batch),
      stan: String(r.orig_stan),
      mmdd: String(r.orig_mmdd),
      originalRrn: r.original_rrn ?? undefined,
      reason: String(r.reason),
      outcome: r.outcome as ReversalOutcome,
      answerCode: String(r.answer_code),
      receivedAt: String(r.received_at),
    };
  }

  /** Records the answer; the first one stays (a concurrent duplicate does not overwrite it). */
  async record(rec: ReversalRecord, q: Queryable = this.store): Promise<void> {
    await q.run(
      `INSERT INTO reversals (terminal_id, orig_batch, orig_stan, orig_mmdd, original_rrn, reason, outcome,
         answer_code, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (terminal_id, orig_batch, orig_stan, orig_mmdd) DO NOTHING`,
      [
        rec.terminalId,
        rec.batch,
        rec.stan,
        rec.mmdd,
        rec.originalRrn ?? null,
        rec.reason,
        rec.outcome,
        rec.answerCode,
        rec.receivedAt,
      ],
    );
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.store.transaction(fn);
  }
}

function str(ctx: TxnContext, path: string | number): string | undefined {
  try {
    const v = ctx.req.get(path);
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

const dbBound = (ctx: TxnContext['deps']): number => ctx.config.timeouts.dbMs;

/** Step: the 0400's fields (docs/network.md: the original's 2, 3, 4, 11, 22, 25, 41, 42, 49, 60, 61 and 39). */
export const checkReversalFields: Step = {
  name: 'checkReversalFields',
  boundMs: dbBound,
  async run(ctx) {
    ctx.kind = 'reversal';
    if (!/^\d{6}$/.test(str(ctx, 11) ?? '')) return RC.formatError;
    if ((str(ctx, 41) ?? '').length !== 8 || (str(ctx, 42) ?? '').length !== 15) return RC.formatError;
    const m = ctx.req.get(64);
    if (!(m instanceof Uint8Array) || m.length !== 8) return RC.formatError;
    const pan = str(ctx, 2);
    if (pan === undefined || !/^\d{13,19}$/.test(pan)) return RC.formatError;
    ctx.pan = pan;
    ctx.panMasked = maskPan(pan);
    if (!/^\d{6}$/.test(str(ctx, 3) ?? '')) return RC.formatError;
    const amount = str(ctx, 4);
    if (amount !== undefined) {
      if (!/^\d{12}$/.test(amount)) return RC.formatError;
      ctx.amountMinor = Number(amount);
    }
    if (!REVERSAL_REASONS.includes(str(ctx, 39) ?? '')) return RC.formatError;
    if (!/^\d{6}$/.test(str(ctx, '61.1') ?? '') || !/^\d{6}$/.test(str(ctx, '61.2') ?? ''))
      return RC.formatError;
    if (!isValidMmdd(str(ctx, '61.3') ?? '')) return RC.formatError;
    return undefined;
  },
};

/**
 * Step: the terminal is known, active, of this merchant, and has a TAK. Not "signed in today": the
 * terminal sends its pending reversal before it signs in again (docs/network.md), under yesterday's TAK.
 */
export const checkReversalTerminal: Step = {
  name: 'checkReversalTerminal',
  boundMs: dbBound,
  async run(ctx) {
    const t = await ctx.deps.terminals.get(str(ctx, 41) ?? '');
    if (t === undefined || t.status !== 'active') return RC.terminalNotRegistered;
    ctx.terminal = t;
    if (str(ctx, 42) !== t.merchantId) return RC.invalidMerchant;
    if (t.tak === undefined) return RC.notSignedIn;
    return undefined;
  },
};

/** The original of a reversal: terminal + 61.1 batch + 61.2 STAN + 61.3 date, a financial request. */
async function originalOf(ctx: TxnContext, k: ReversalKey): Promise<JournalEntry | undefined> {
  const rows = await ctx.deps.journal.findOriginal(k.terminalId, k.batch, k.stan);
  return rows.find((e) => e.txnType !== 'inquiry' && e.txnDate.slice(4) === k.mmdd);
}

/** Step: the reversal itself (see the file comment). Never leaves the terminal without a recorded answer. */
export const reverse: Step = {
  name: 'reverse',
  boundMs: (d) => d.config.timeouts.switchMs + 4 * d.config.timeouts.hsmMs + 8 * d.config.timeouts.dbMs,
  async run(ctx) {
    const { deps } = ctx;
    const book = deps.reversals;
    const saf = deps.saf;
    if (book === undefined || saf === undefined) return RC.invalidTransaction;
    const t = ctx.terminal!;
    const key: ReversalKey = {
      terminalId: t.terminalId,
      batch: str(ctx, '61.1')!,
      stan: str(ctx, '61.2')!,
      mmdd: str(ctx, '61.3')!,
    };
    const reason = str(ctx, 39)!;
    const nowIso = ctx.now.toISOString();
    const first = await book.get(key);
    if (first !== undefined) {
      ctx.notes.push('reversal-replay');
      if (first.originalRrn !== undefined) ctx.entry = await deps.journal.byRrn(first.originalRrn);
      return first.answerCode;
    }
    // An original still in flight in this process: its outcome first (bounded by the step).
    const idKey = `${t.terminalId}|${key.stan}|`;
    for (const [k, p] of deps.inFlight) if (k.startsWith(idKey)) await p;
    let orig = await originalOf(ctx, key);
    if (orig !== undefined && (orig.state === 'received' || orig.state === 'sent') && deps.journal.shared) {
      // In flight on another POSP node (same database): its outcome first, as for this process's own.
      ctx.notes.push('original-other-node');
      orig = await deps.journal.awaitOutcome(orig, stillInFlightMs(ctx, orig));
    }
    const rec = (outcome: ReversalOutcome, answerCode: string, q?: Queryable) =>
      book.record({ ...key, originalRrn: orig?.rrn, reason, outcome, answerCode, receivedAt: nowIso }, q);
    if (orig === undefined) {
      ctx.notes.push('reversal-no-original');
      await rec('no-original', RC.approved);
      return RC.approved;
    }
    ctx.entry = orig;
    if (orig.panMasked !== ctx.panMasked) {
      await rec('declined', RC.originalNotFound);
      return RC.originalNotFound;
    }
    if (
      ctx.amountMinor !== undefined &&
      orig.amountMinor !== undefined &&
      ctx.amountMinor !== orig.amountMinor
    ) {
      await rec('declined', RC.invalidAmount);
      return RC.invalidAmount;
    }
    const neverLeft =
      orig.transmissionDateTime === undefined || orig.state === 'declined' || orig.state === 'received';
    const declinedUpstream = orig.state === 'answered' && orig.responseCode !== RC.approved;
    if (neverLeft || declinedUpstream) {
      ctx.notes.push('reversal-local');
      await rec('local', RC.approved);
      return RC.approved;
    }
    if (orig.reversalState !== undefined) {
      // Already owed (the POSP's own advice) or done: the terminal's reversal adds nothing.
      ctx.notes.push(`reversal-already-${orig.reversalState}`);
      const code = orig.reversalState === 'refused' ? (orig.reversalCode ?? RC.approved) : RC.approved;
      await rec(orig.reversalState === 'owed' ? 'queued' : 'forwarded', code);
      return code;
    }
    const fields = reversalFieldsOf(orig);
    const r = await sendReversal(
      {
        hsm: deps.hsm,
        switchLink: deps.switchLink,
        netSpec: deps.netSpec,
        zak: deps.config.zak,
        switchMs: deps.config.timeouts.switchMs,
        hsmMs: deps.config.timeouts.hsmMs,
      },
      '0400',
      ctx.pan!,
      fields,
      ctx.now,
    );
    const item = {
      originalRrn: orig.rrn,
      source: 'terminal' as const,
      reason,
      panMasked: ctx.panMasked!,
      fields,
    };
    // An issuer's decision about the reversal is passed to the terminal: "nothing left to undo" (00, 12,
    // 25), or a refusal (e.g. 13) that leaves the original standing. Anything else (no answer, or 91, 96,
    // 15, A0, 94 from the switch) means the POSP could not complete the reversal upstream: it queues it
    // (store and forward retries, then the operator queue) and answers the terminal 00, so that the
    // terminal's record clears (docs/network.md). Passing a 15/91 down made the terminal replay forever.
    if ('code' in r && classifyReversalAnswer(r.code) !== 'retry') {
      ctx.notes.push(`reversal-forwarded-${r.code}`);
      await book.transaction(async (tx) => {
        await saf.recordDelivered(item, r.code, r.transmissionDateTime, nowIso, tx);
        await rec(r.code === RC.approved ? 'forwarded' : 'declined', r.code, tx);
      });
      return r.code;
    }
    // Not delivered: owed upstream from now on. The terminal hears 00 only once it is safely queued,
    // its PAN sealed by the HSM first (outside the transaction: a transaction only talks to the store).
    ctx.notes.push(`reversal-queued-${'code' in r ? r.code : r.problem}`);
    if (deps.vault === undefined)
      throw new AcquirerError('ACQUIRER_HSM_UNAVAILABLE', 'vault', 'no PAN vault');
    const panSealed = await deps.vault.seal(ctx.pan!); // within this step's bound
    await book.transaction(async (tx) => {
      await saf.enqueue({ ...item, panSealed }, nowIso, tx);
      await rec('queued', RC.approved, tx);
    });
    return RC.approved;
  },
};
