/**
 * Settlement (結算, 0500/0510), batch upload (0320/0330) and the end-of-day views (merchant settlement,
 * the clearing file) of the POSP (docs/network.md "Settlement", "Clearing files"; cup-pos-dialect.md 2.7).
 *
 * Batch totals: the journal's approved (answered 00), unreversed (no reversal owed or done) purchases are
 * the debits; its approved, unreversed voids and refunds the credits; of the terminal and the batch in
 * the 0500's 60.2. Field 48 (62 digits): domestic debit amount n12, count n3, credit amount n12, count
 * n3, flag n1, then the same for foreign cards (the POSP has none: zeros). Flag 1 = balanced, 2 = not
 * (then the 48 of the 0510 holds the POSP's totals and the terminal uploads its batch).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Queryable, Store } from '@openposp/store';
import { isValidMmdd } from './clock.js';
import { AcquirerError } from './errors.js';
import type { Step, TxnContext } from './pipeline.js';
import { RC } from './pipeline.js';

export interface BatchTotals {
  debitCount: number;
  debitMinor: number;
  creditCount: number;
  creditMinor: number;
}

const n = (v: number, digits: number): string =>
  String(Math.min(Math.max(v, 0), 10 ** digits - 1)).padStart(digits, '0');

/** Field 48 of a 0500/0510 from domestic totals (foreign zeros), flags given. */
export function totalsField48(t: BatchTotals, flag: '1' | '2', foreignFlag: '1' | '2' = '1'): string {
  return `${n(t.debitMinor, 12)}${n(t.debitCount, 3)}${n(t.creditMinor, 12)}${n(t.creditCount, 3)}${flag}${'0'.repeat(30)}${foreignFlag}`;
}

/** Reads field 48 of a 0500: domestic and foreign totals, or undefined when it is not 62 digits. */
export function parseField48(v: string): { domestic: BatchTotals; foreign: BatchTotals } | undefined {
  if (!/^\d{62}/.test(v)) return undefined;
  const at = (o: number): BatchTotals => ({
    debitMinor: Number(v.slice(o, o + 12)),
    debitCount: Number(v.slice(o + 12, o + 15)),
    creditMinor: Number(v.slice(o + 15, o + 27)),
    creditCount: Number(v.slice(o + 27, o + 30)),
  });
  return { domestic: at(0), foreign: at(31) };
}

const sameTotals = (a: BatchTotals, b: BatchTotals): boolean =>
  a.debitCount === b.debitCount &&
  a.debitMinor === b.debitMinor &&
  a.creditCount === b.creditCount &&
  a.creditMinor === b.creditMinor;

/** The next batch number (n6, 000001 after 999999). */
export function nextBatchNo(b: string): string {
  const v = Number(b) + 1;
  return String(v > 999_999 ? 1 : v).padStart(6, '0');
}

/** Answered 00 and no reversal owed or done (a reversal the issuer refused leaves the original standing). */
const APPROVED_UNREVERSED =
  "state = 'answered' AND response_code = '00' AND (reversal_state IS NULL OR reversal_state = 'refused')";

export type DiscrepancyKind = 'missing-at-posp' | 'missing-at-terminal' | 'amount-differs' | 'state-differs';

export interface Discrepancy {
  terminalId: string;
  batchNo: string;
  stan: string;
  rrn: string | undefined;
  kind: DiscrepancyKind;
  terminalAmountMinor: number | undefined;
  pospAmountMinor: number | undefined;
  detail: string;
}

export interface BatchRecord {
  terminalId: string;
  batchNo: string;
  settledAt: string;
  terminalTotals: string;
  pospTotals: string;
  balanced: boolean;
  uploaded: number;
  closedAt: string | undefined;
}

type Row = Record<string, string | number | null>;

/** The POSP's batches: totals, settlement records, uploads and their discrepancies. */
export class Batches {
  constructor(private readonly store: Store) {}

  async totals(terminalId: string, batchNo: string, q: Queryable = this.store): Promise<BatchTotals> {
    const rows = await q.all<{ txn_type: string; c: number; a: number | null }>(
      `SELECT txn_type, COUNT(*) AS c, SUM(amount_minor) AS a FROM journal
       WHERE terminal_id = ? AND batch_no = ? AND ${APPROVED_UNREVERSED} AND txn_type IN ('purchase', 'void', 'refund')
       GROUP BY txn_type`,
      [terminalId, batchNo],
    );
    const t: BatchTotals = { debitCount: 0, debitMinor: 0, creditCount: 0, creditMinor: 0 };
    for (const r of rows) {
      if (r.txn_type === 'purchase') {
        t.debitCount += Number(r.c);
        t.debitMinor += Number(r.a ?? 0);
      } else {
        t.creditCount += Number(r.c);
        t.creditMinor += Number(r.a ?? 0);
      }
    }
    return t;
  }

  async get(terminalId: string, batchNo: string): Promise<BatchRecord | undefined> {
    const r = await this.store.get<Row>('SELECT * FROM batches WHERE terminal_id = ? AND batch_no = ?', [
      terminalId,
      batchNo,
    ]);
    if (r === undefined) return undefined;
    return {
      terminalId: String(r.terminal_id),
      batchNo: String(r.batch_no),
      settledAt: String(r.settled_at),
      terminalTotals: String(r.terminal_totals),
      pospTotals: String(r.posp_totals),
      balanced: Number(r.balanced) === 1,
      uploaded: Number(r.uploaded),
      closedAt: r.closed_at === null ? undefined : String(r.closed_at),
    };
  }

  /** Records (or updates, while open) the settlement of a batch. */
  async recordSettlement(
    terminalId: string,
    batchNo: string,
    terminalTotals: string,
    pospTotals: string,
    balanced: boolean,
    nowIso: string,
  ): Promise<void> {
    await this.store.run(
      `INSERT INTO batches (terminal_id, batch_no, settled_at, terminal_totals, posp_totals, balanced)
       VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (terminal_id, batch_no) DO UPDATE SET settled_at = excluded.settled_at,
         terminal_totals = excluded.terminal_totals, posp_totals = excluded.posp_totals, balanced = excluded.balanced
       WHERE batches.closed_at IS NULL`,
      [terminalId, batchNo, nowIso, terminalTotals, pospTotals, balanced ? 1 : 0],
    );
  }

  /**
   * Closes the terminal's batch `batchNo` if it is still its open one: the batch record is closed and
   * the terminal's batch number advances, in one transaction. Returns the terminal's batch after.
   */
  async close(terminalId: string, batchNo: string, nowIso: string): Promise<string> {
    return this.store.transaction(async (tx) => {
      const t = await tx.get<{ batch_no: string }>('SELECT batch_no FROM terminals WHERE terminal_id = ?', [
        terminalId,
      ]);
      if (t === undefined || t.batch_no !== batchNo) return t?.batch_no ?? batchNo;
      const next = nextBatchNo(batchNo);
      await tx.run(
        `INSERT INTO batches (terminal_id, batch_no, settled_at, terminal_totals, posp_totals, balanced)
         VALUES (?, ?, ?, '', '', 0) ON CONFLICT (terminal_id, batch_no) DO NOTHING`,
        [terminalId, batchNo, nowIso],
      );
      await tx.run(
        'UPDATE batches SET closed_at = ? WHERE terminal_id = ? AND batch_no = ? AND closed_at IS NULL',
        [nowIso, terminalId, batchNo],
      );
      await tx.run('UPDATE terminals SET batch_no = ?, updated_at = ? WHERE terminal_id = ?', [
        next,
        nowIso,
        terminalId,
      ]);
      return next;
    });
  }

  private async discrepancy(d: Discrepancy, nowIso: string, q: Queryable = this.store): Promise<void> {
    await q.run(
      `INSERT INTO batch_discrepancies (terminal_id, batch_no, stan, rrn, kind, terminal_amount_minor,
         posp_amount_minor, detail, found_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (terminal_id, batch_no, stan, kind) DO NOTHING`,
      [
        d.terminalId,
        d.batchNo,
        d.stan,
        d.rrn ?? null,
        d.kind,
        d.terminalAmountMinor ?? null,
        d.pospAmountMinor ?? null,
        d.detail,
        nowIso,
      ],
    );
  }

  /**
   * One uploaded transaction (0320, 60.3 = 201): recorded, and reconciled at once against the journal row
   * of the same terminal, batch and STAN: none approved and unreversed -> missing-at-posp or
   * state-differs; another amount -> amount-differs.
   */
  async upload(
    item: {
      terminalId: string;
      batchNo: string;
      stan: string;
      processingCode: string;
      amountMinor: number;
      rrn?: string;
    },
    nowIso: string,
  ): Promise<Discrepancy | undefined> {
    return this.store.transaction(async (tx) => {
      await tx.run(
        `INSERT INTO batch_uploads (terminal_id, batch_no, stan, processing_code, amount_minor, rrn, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (terminal_id, batch_no, stan) DO NOTHING`,
        [
          item.terminalId,
          item.batchNo,
          item.stan,
          item.processingCode,
          item.amountMinor,
          item.rrn ?? null,
          nowIso,
        ],
      );
      await tx.run('UPDATE batches SET uploaded = uploaded + 1 WHERE terminal_id = ? AND batch_no = ?', [
        item.terminalId,
        item.batchNo,
      ]);
      const j = await tx.get<Row>(
        'SELECT * FROM journal WHERE terminal_id = ? AND batch_no = ? AND stan = ? ORDER BY id DESC LIMIT 1',
        [item.terminalId, item.batchNo, item.stan],
      );
      const base = {
        terminalId: item.terminalId,
        batchNo: item.batchNo,
        stan: item.stan,
        terminalAmountMinor: item.amountMinor,
      };
      let d: Discrepancy | undefined;
      if (j === undefined) {
        d = { ...base, rrn: item.rrn, kind: 'missing-at-posp', pospAmountMinor: undefined, detail: '' };
      } else {
        const approved =
          j.state === 'answered' &&
          j.response_code === '00' &&
          (j.reversal_state === null || j.reversal_state === 'refused');
        const pospAmount = j.amount_minor === null ? undefined : Number(j.amount_minor);
        if (!approved)
          d = {
            ...base,
            rrn: String(j.rrn),
            kind: 'state-differs',
            pospAmountMinor: pospAmount,
            detail:
              `posp ${j.state} ${j.response_code ?? ''}${j.reversal_state === null ? '' : ` reversal ${j.reversal_state}`}`.trim(),
          };
        else if (pospAmount !== item.amountMinor)
          d = {
            ...base,
            rrn: String(j.rrn),
            kind: 'amount-differs',
            pospAmountMinor: pospAmount,
            detail: '',
          };
      }
      if (d !== undefined) await this.discrepancy(d, nowIso, tx);
      return d;
    });
  }

  /** End of batch: the POSP's approved, unreversed transactions of the batch that the terminal did not upload. */
  async endOfUpload(terminalId: string, batchNo: string, nowIso: string): Promise<Discrepancy[]> {
    return this.store.transaction(async (tx) => {
      const rows = await tx.all<Row>(
        `SELECT * FROM journal j WHERE terminal_id = ? AND batch_no = ? AND ${APPROVED_UNREVERSED}
           AND txn_type IN ('purchase', 'void', 'refund')
           AND NOT EXISTS (SELECT 1 FROM batch_uploads u WHERE u.terminal_id = j.terminal_id AND u.batch_no = j.batch_no AND u.stan = j.stan)
         ORDER BY id`,
        [terminalId, batchNo],
      );
      const out: Discrepancy[] = [];
      for (const j of rows) {
        const d: Discrepancy = {
          terminalId,
          batchNo,
          stan: String(j.stan),
          rrn: String(j.rrn),
          kind: 'missing-at-terminal',
          terminalAmountMinor: undefined,
          pospAmountMinor: j.amount_minor === null ? undefined : Number(j.amount_minor),
          detail: String(j.txn_type),
        };
        await this.discrepancy(d, nowIso, tx);
        out.push(d);
      }
      return out;
    });
  }

  async discrepancies(terminalId: string, batchNo: string): Promise<Discrepancy[]> {
    const rows = await this.store.all<Row>(
      'SELECT * FROM batch_discrepancies WHERE terminal_id = ? AND batch_no = ? ORDER BY id',
      [terminalId, batchNo],
    );
    return rows.map((r) => ({
      terminalId: String(r.terminal_id),
      batchNo: String(r.batch_no),
      stan: String(r.stan),
      rrn: r.rrn === null ? undefined : String(r.rrn),
      kind: r.kind as DiscrepancyKind,
      terminalAmountMinor: r.terminal_amount_minor === null ? undefined : Number(r.terminal_amount_minor),
      pospAmountMinor: r.posp_amount_minor === null ? undefined : Number(r.posp_amount_minor),
      detail: String(r.detail),
    }));
  }
}

// ------------------------------------------------------------------------------------------------
// Terminal-leg steps: 0500 settlement, 0320 batch upload
// ------------------------------------------------------------------------------------------------

function str(ctx: TxnContext, path: string | number): string | undefined {
  try {
    const v = ctx.req.get(path);
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Step: 0500 (60.3 = 201) or 0320 (60.3 = 201..207): 11, 41, 42, 60.2, 60.3, 64; 48 in a 0500. */
export const checkBatchFields: Step = {
  name: 'checkBatchFields',
  boundMs: (d) => d.config.timeouts.dbMs,
  async run(ctx) {
    ctx.kind = ctx.req.mti === '0500' ? 'settlement' : 'upload';
    if (!/^\d{6}$/.test(str(ctx, 11) ?? '')) return RC.formatError;
    if ((str(ctx, 41) ?? '').length !== 8 || (str(ctx, 42) ?? '').length !== 15) return RC.formatError;
    const m = ctx.req.get(64);
    if (!(m instanceof Uint8Array) || m.length !== 8) return RC.formatError;
    if (!/^\d{6}$/.test(str(ctx, '60.2') ?? '')) return RC.formatError;
    const code = str(ctx, '60.3');
    if (ctx.req.mti === '0500') {
      if (code !== '201') return RC.formatError;
      if (parseField48(str(ctx, 48) ?? '') === undefined) return RC.formatError;
      return undefined;
    }
    if (!['201', '202', '203', '205', '207'].includes(code ?? '')) return RC.formatError;
    if (code === '201' || code === '203' || code === '205') {
      if (!/^\d{6}$/.test(str(ctx, 3) ?? '') || !/^\d{12}$/.test(str(ctx, 4) ?? '')) return RC.formatError;
      const rrn = str(ctx, 37);
      if (rrn !== undefined && !/^\d{12}$/.test(rrn)) return RC.formatError;
      const o = str(ctx, '61.2');
      if (o !== undefined && !/^\d{6}$/.test(o)) return RC.formatError;
      ctx.amountMinor = Number(str(ctx, 4));
    }
    return undefined;
  },
};

/** Step: 0500 — compare the terminal's field 48 with the journal; close the batch when they balance. */
export const settleBatch: Step = {
  name: 'settleBatch',
  boundMs: (d) => 6 * d.config.timeouts.dbMs,
  async run(ctx) {
    const b = ctx.deps.batches;
    if (b === undefined) return RC.invalidTransaction;
    const t = ctx.terminal!;
    const batchNo = str(ctx, '60.2')!;
    const nowIso = ctx.now.toISOString();
    const theirs = parseField48(str(ctx, 48)!)!;
    if (batchNo !== t.batchNo) {
      // The settlement of a batch already closed (a repeat): its recorded answer; another batch: 12.
      const done = await b.get(t.terminalId, batchNo);
      if (done === undefined || done.closedAt === undefined) return RC.invalidTransaction;
      ctx.field48 = done.balanced ? done.terminalTotals : done.pospTotals;
      ctx.batchAfter = t.batchNo;
      return RC.approved;
    }
    const ours = await b.totals(t.terminalId, batchNo);
    const domesticOk = sameTotals(theirs.domestic, ours);
    const foreignOk = sameTotals(theirs.foreign, {
      debitCount: 0,
      debitMinor: 0,
      creditCount: 0,
      creditMinor: 0,
    });
    const balanced = domesticOk && foreignOk;
    const pospField = totalsField48(ours, domesticOk ? '1' : '2', foreignOk ? '1' : '2');
    ctx.field48 = balanced ? totalsField48(theirs.domestic, '1', '1') : pospField;
    await b.recordSettlement(t.terminalId, batchNo, str(ctx, 48)!.slice(0, 62), pospField, balanced, nowIso);
    ctx.notes.push(balanced ? 'settlement-balanced' : 'settlement-unbalanced');
    // Balanced: the batch closes now. Not balanced: it closes at the end of the terminal's upload.
    ctx.batchAfter = balanced ? await b.close(t.terminalId, batchNo, nowIso) : batchNo;
    return RC.approved;
  },
};

/**
 * Step: 0320 — 201/203/205 one transaction of the batch (its STAN in 61.2 when 61 is sent, else in 11;
 * 3, 4, 37), reconciled at once; 202/207 the end of the upload: what the terminal did not upload is
 * recorded, and the batch closes (60.2 of the answer: the terminal's next batch).
 */
export const uploadBatch: Step = {
  name: 'uploadBatch',
  boundMs: (d) => 6 * d.config.timeouts.dbMs,
  async run(ctx) {
    const b = ctx.deps.batches;
    if (b === undefined) return RC.invalidTransaction;
    const t = ctx.terminal!;
    const batchNo = str(ctx, '60.2')!;
    const nowIso = ctx.now.toISOString();
    const code = str(ctx, '60.3')!;
    const rec = await b.get(t.terminalId, batchNo);
    // An upload belongs to the open batch, or to the one a balanced settlement just closed.
    if (batchNo !== t.batchNo && (rec === undefined || rec.closedAt === undefined))
      return RC.invalidTransaction;
    if (code === '202' || code === '207') {
      const uploaded = await b.discrepancies(t.terminalId, batchNo);
      if (code === '202' || (rec?.uploaded ?? 0) > 0) {
        const missing = await b.endOfUpload(t.terminalId, batchNo, nowIso);
        ctx.notes.push(`upload-end-${missing.length + uploaded.length}-discrepancies`);
      }
      ctx.batchAfter = await b.close(t.terminalId, batchNo, nowIso);
      return RC.approved;
    }
    const rrn = str(ctx, 37);
    const d = await b.upload(
      {
        terminalId: t.terminalId,
        batchNo,
        stan: str(ctx, '61.2') ?? str(ctx, 11)!,
        processingCode: str(ctx, 3)!,
        amountMinor: ctx.amountMinor!,
        ...(rrn !== undefined ? { rrn } : {}),
      },
      nowIso,
    );
    if (d !== undefined) ctx.notes.push(`upload-${d.kind}`);
    return RC.approved;
  },
};

// ------------------------------------------------------------------------------------------------
// End of day: merchant settlement and the clearing file
// ------------------------------------------------------------------------------------------------

export interface MerchantSettlementLine {
  merchantId: string;
  purchases: { count: number; amountMinor: number };
  voids: { count: number; amountMinor: number };
  refunds: { count: number; amountMinor: number };
  /** purchases − voids − refunds */
  netMinor: number;
  /** round_half_up(net × feeBasisPoints / 10000) when net > 0, else 0. */
  feeMinor: number;
  /** net − fee: what the merchant is paid (negative: what the merchant owes). */
  payableMinor: number;
}

export interface MerchantSettlement {
  /** YYYYMMDD, the POSP's local date of the transactions. */
  date: string;
  feeBasisPoints: number;
  merchants: MerchantSettlementLine[];
  totals: { netMinor: number; feeMinor: number; payableMinor: number };
}

export function checkDate(date: unknown, field = 'date'): string {
  if (typeof date !== 'string' || !/^\d{8}$/.test(date) || !isValidMmdd(date.slice(4)))
    throw new AcquirerError('ACQUIRER_DATE_INVALID', field, 'must be YYYYMMDD, a calendar day');
  const d = new Date(Date.UTC(+date.slice(0, 4), +date.slice(4, 6) - 1, +date.slice(6)));
  if (d.getUTCDate() !== +date.slice(6))
    throw new AcquirerError('ACQUIRER_DATE_INVALID', field, 'must be YYYYMMDD, a calendar day');
  return date;
}

/**
 * The fee on `netMinor` in basis points, integer arithmetic (BigInt, no float): round half up,
 * fee = floor((net × bps + 5000) / 10000); no fee on a net of zero or less.
 */
export function feeMinorOf(netMinor: number, feeBasisPoints: number): number {
  if (netMinor <= 0) return 0;
  return Number((BigInt(netMinor) * BigInt(feeBasisPoints) + 5000n) / 10000n);
}

/** [from, to) in UTC ISO of the POSP's local day `date` (zone `utcOffsetMinutes`, else the process's). */
export function localDayBoundsIso(date: string, utcOffsetMinutes?: number): [string, string] {
  const [y, m, d] = [+date.slice(0, 4), +date.slice(4, 6) - 1, +date.slice(6)];
  const start =
    utcOffsetMinutes === undefined
      ? new Date(y, m, d).getTime()
      : Date.UTC(y, m, d) - utcOffsetMinutes * 60_000;
  const end = utcOffsetMinutes === undefined ? new Date(y, m, d + 1).getTime() : start + 24 * 3600_000;
  return [new Date(start).toISOString(), new Date(end).toISOString()];
}

/** What each merchant is owed for the POSP local date `date` (docs/network.md "Settlement"). */
export async function merchantSettlementOf(
  store: Queryable,
  dateInput: string,
  feeBasisPoints: number,
  utcOffsetMinutes?: number,
): Promise<MerchantSettlement> {
  const date = checkDate(dateInput);
  const [from, to] = localDayBoundsIso(date, utcOffsetMinutes);
  // Reconciliation's resolutions (markReconciled): an excluded transaction is not settled, a confirmed one
  // at the amount reconciliation confirmed (the issuer's: what the cardholder paid).
  const rows = await store.all<{ merchant_id: string; txn_type: string; c: number; a: number | null }>(
    `SELECT merchant_id, txn_type, COUNT(*) AS c,
       SUM(CASE WHEN recon_action = 'confirm' AND recon_amount_minor IS NOT NULL THEN recon_amount_minor ELSE amount_minor END) AS a
     FROM journal
     WHERE received_at >= ? AND received_at < ? AND ${APPROVED_UNREVERSED} AND txn_type IN ('purchase', 'void', 'refund')
       AND (recon_action IS NULL OR recon_action <> 'exclude')
     GROUP BY merchant_id, txn_type ORDER BY merchant_id`,
    [from, to],
  );
  const by = new Map<string, MerchantSettlementLine>();
  for (const r of rows) {
    let l = by.get(r.merchant_id);
    if (l === undefined) {
      l = {
        merchantId: r.merchant_id,
        purchases: { count: 0, amountMinor: 0 },
        voids: { count: 0, amountMinor: 0 },
        refunds: { count: 0, amountMinor: 0 },
        netMinor: 0,
        feeMinor: 0,
        payableMinor: 0,
      };
      by.set(r.merchant_id, l);
    }
    const bucket = r.txn_type === 'purchase' ? l.purchases : r.txn_type === 'void' ? l.voids : l.refunds;
    bucket.count += Number(r.c);
    bucket.amountMinor += Number(r.a ?? 0);
  }
  const merchants = [...by.values()];
  const totals = { netMinor: 0, feeMinor: 0, payableMinor: 0 };
  for (const l of merchants) {
    l.netMinor = l.purchases.amountMinor - l.voids.amountMinor - l.refunds.amountMinor;
    l.feeMinor = feeMinorOf(l.netMinor, feeBasisPoints);
    l.payableMinor = l.netMinor - l.feeMinor;
    totals.netMinor += l.netMinor;
    totals.feeMinor += l.feeMinor;
    totals.payableMinor += l.payableMinor;
  }
  return { date, feeBasisPoints, merchants, totals };
}

export interface ClearingRecord {
  party: 'acquirer';
  acquirerId: string;
  terminalId: string;
  stan: string;
  localDate: string;
  transmissionTime: string;
  rrn: string;
  type: 'purchase' | 'void' | 'refund' | 'reversal';
  amountMinor: number;
  currency: string;
  responseCode: string;
  state: 'approved' | 'declined' | 'reversed' | 'unknown' | 'refused';
  pan: string;
}

/** The POSP's clearing records of the local date `date` (docs/network.md "Clearing files"), journal order. */
export async function clearingRecordsOf(
  store: Queryable,
  dateInput: string,
  utcOffsetMinutes?: number,
): Promise<ClearingRecord[]> {
  const date = checkDate(dateInput);
  const [from, to] = localDayBoundsIso(date, utcOffsetMinutes);
  const rows = await store.all<Row>(
    `SELECT * FROM journal WHERE received_at >= ? AND received_at < ? AND txn_type IN ('purchase', 'void', 'refund')
     ORDER BY id`,
    [from, to],
  );
  const out: ClearingRecord[] = [];
  for (const j of rows) {
    const code = j.response_code === null ? '' : String(j.response_code);
    let state: ClearingRecord['state'];
    let responseCode = code;
    if (j.state === 'unknown' || j.state === 'sent' || j.state === 'received') {
      // Sent and no answer believed: the 91 was the POSP's own answer to the terminal.
      state = 'unknown';
      responseCode = '';
    } else if (j.state === 'declined') state = code === 'A0' || code === '30' ? 'refused' : 'declined';
    else if (code !== '00') state = 'declined';
    else if (j.reversal_state === 'reversed') state = 'reversed';
    // Excluded by reconciliation: the issuer holds no standing debit for it, the merchant is not paid.
    else state = j.recon_action === 'exclude' ? 'declined' : 'approved';
    const confirmed =
      j.recon_action === 'confirm' && j.recon_amount_minor !== null && j.recon_amount_minor !== undefined;
    const base = {
      party: 'acquirer' as const,
      acquirerId: String(j.acquirer_id),
      terminalId: String(j.terminal_id),
      stan: String(j.stan),
      localDate: String(j.txn_date).slice(4),
      rrn: String(j.rrn),
      amountMinor: confirmed
        ? Number(j.recon_amount_minor)
        : j.amount_minor === null
          ? 0
          : Number(j.amount_minor),
      currency: String(j.currency),
      pan: String(j.pan_masked),
    };
    out.push({
      ...base,
      transmissionTime: j.transmission_dt === null ? '' : String(j.transmission_dt),
      type: j.txn_type as ClearingRecord['type'],
      responseCode,
      state,
    });
    // The reversal the POSP sent upstream for it (terminal's 0400 or its own 0420 advice), if any.
    const r = await store.get<Row>('SELECT * FROM saf WHERE original_rrn = ?', [j.rrn]);
    if (r !== undefined) {
      const rc = r.response_code === null ? '' : String(r.response_code);
      out.push({
        ...base,
        transmissionTime: r.transmission_dt === null ? '' : String(r.transmission_dt),
        type: 'reversal',
        responseCode: r.state === 'done' ? rc : '',
        state: r.state === 'done' ? (rc === '00' ? 'approved' : 'declined') : 'unknown',
      });
    }
  }
  return out;
}

/** Writes `clearing-acquirer-<date>.jsonl` in `dir`; returns its path and the records. */
export async function writeClearingFileOf(
  store: Queryable,
  dir: string,
  date: string,
  utcOffsetMinutes?: number,
): Promise<{ path: string; records: ClearingRecord[] }> {
  const records = await clearingRecordsOf(store, date, utcOffsetMinutes);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `clearing-acquirer-${date}.jsonl`);
  writeFileSync(path, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  return { path, records };
}

/** A transaction's identity as clearing files name it (32, 41, 11, 13 as MMDD). */
export interface ReconIdentity {
  acquirerId: string;
  terminalId: string;
  stan: string;
  localDate: string;
}

/** A resolution of reconciliation the POSP applies on its side (issue 6 §4). */
export interface ReconResolution {
  /** The mismatch class that asked for it (recorded, e.g. `acquirer-approved-issuer-missing`). */
  class: string;
  /** `exclude`: not settled, not approved in the clearing file; `confirm`: settled at `amountMinor`. */
  action: 'exclude' | 'confirm';
  /** The confirmed amount (integer minor units); required for `confirm`. */
  amountMinor?: number;
}

/**
 * Records a reconciliation resolution in the journal row of `identity` (the latest of that terminal,
 * STAN and MMDD). Idempotent: the same resolution again is `already`; `not-found` when the POSP has no
 * such transaction (nothing to exclude on its side).
 */
export async function markReconciled(
  store: Queryable,
  identity: ReconIdentity,
  r: ReconResolution,
  nowIso: string = new Date().toISOString(),
): Promise<'marked' | 'already' | 'not-found'> {
  // Programmer misuse (reconciliation's own output is the only caller): TypeError, not a user error code.
  if (r.action !== 'exclude' && r.action !== 'confirm')
    throw new TypeError("markReconciled: action must be 'exclude' or 'confirm'");
  if (r.action === 'confirm' && (!Number.isSafeInteger(r.amountMinor) || (r.amountMinor as number) < 0))
    throw new TypeError('markReconciled: a confirm needs amountMinor, a non-negative safe integer');
  const row = await store.get<Row>(
    `SELECT * FROM journal WHERE acquirer_id = ? AND terminal_id = ? AND stan = ? AND substr(txn_date, 5, 4) = ?
       AND txn_type IN ('purchase', 'void', 'refund') ORDER BY id DESC LIMIT 1`,
    [identity.acquirerId, identity.terminalId, identity.stan, identity.localDate],
  );
  if (row === undefined) return 'not-found';
  const amount = r.action === 'confirm' ? (r.amountMinor as number) : null;
  if (row.recon_action === r.action && (row.recon_amount_minor ?? null) === amount) return 'already';
  await store.run(
    'UPDATE journal SET recon_action = ?, recon_class = ?, recon_amount_minor = ?, recon_at = ? WHERE id = ?',
    [r.action, r.class, amount, nowIso, row.id],
  );
  return 'marked';
}
