/**
 * Slips (签购单 / 小票) as text: a merchant copy (商户存根, with the cardholder signature line) and a
 * cardholder copy (持卡人存根). Only the masked PAN (first 6, last 4) is ever printed.
 *
 * Layout follows the usual UnionPay POS slip (merchant, terminal, card, type, batch/trace, reference,
 * authorisation, date/time, amount, result), bilingual Chinese / English.
 */
import type { SettlementTotals } from './settlement.js';
import type { PendingReversal, SettlementResult, TransactionResult, TransactionType } from './terminal.js';

export type SlipCopy = 'merchant' | 'cardholder';

export interface SlipInput
  extends Pick<
    TransactionResult,
    | 'type'
    | 'status'
    | 'responseCode'
    | 'rrn'
    | 'authCode'
    | 'amountMinor'
    | 'balanceMinor'
    | 'stan'
    | 'batchNumber'
    | 'localYear'
    | 'localDate'
    | 'localTime'
    | 'maskedPan'
  > {
  merchantName: string;
  merchantId: string;
  terminalId: string;
  /** Currency label before the amount; `RMB` by default (field 49 = 156). */
  currencyLabel?: string;
}

export const TRANSACTION_TYPE_LABELS: Readonly<Record<TransactionType, string>> = {
  purchase: '消费 / SALE',
  'balance-inquiry': '余额查询 / BALANCE INQUIRY',
  void: '消费撤销 / VOID',
  refund: '退货 / REFUND',
};

/** Field 39 values of docs/network.md, as printed on a slip. */
export const RESPONSE_CODE_LABELS: Readonly<Record<string, string>> = {
  '00': '交易成功 / APPROVED',
  '12': '无效交易 / INVALID TRANSACTION',
  '13': '无效金额 / INVALID AMOUNT',
  '14': '无效卡号 / INVALID CARD NUMBER',
  '15': '无此发卡方 / NO SUCH ISSUER',
  '25': '找不到原始交易 / ORIGINAL NOT FOUND',
  '30': '报文格式错误 / FORMAT ERROR',
  '51': '余额不足 / INSUFFICIENT FUNDS',
  '54': '过期卡 / EXPIRED CARD',
  '55': '密码错误 / INCORRECT PIN',
  '61': '超出金额限制 / EXCEEDS AMOUNT LIMIT',
  '62': '受限制的卡 / RESTRICTED CARD',
  '75': '密码错误次数超限 / PIN TRIES EXCEEDED',
  '77': '请重新签到 / SIGN IN AGAIN',
  '91': '发卡方不能操作 / ISSUER INOPERATIVE',
  '94': '重复交易 / DUPLICATE TRANSMISSION',
  '96': '系统故障 / SYSTEM MALFUNCTION',
  A0: 'MAC校验错 / MAC VERIFICATION FAILED',
};

const RULE = '-'.repeat(32);

/** Minor units as a decimal with 2 places, from integers only (no floating point). */
export function formatAmountMinor(amountMinor: number): string {
  if (!Number.isSafeInteger(amountMinor)) throw new RangeError('amountMinor must be a safe integer');
  const sign = amountMinor < 0 ? '-' : '';
  const abs = String(Math.abs(amountMinor)).padStart(3, '0');
  return `${sign}${abs.slice(0, -2)}.${abs.slice(-2)}`;
}

function resultLine(s: SlipInput): string {
  switch (s.status) {
    case 'approved':
      return `${RESPONSE_CODE_LABELS['00']} (00)`;
    case 'declined': {
      const rc = s.responseCode ?? '';
      return `交易失败 / DECLINED (${rc}) ${RESPONSE_CODE_LABELS[rc] ?? '未知应答 / UNKNOWN RESPONSE'}`;
    }
    case 'mac-failed':
      return '交易失败 / FAILED: 应答MAC错 / ANSWER MAC INVALID, 待冲正 / TO BE REVERSED';
    default:
      return '交易失败 / FAILED: 无应答 / NO ANSWER, 待冲正 / TO BE REVERSED';
  }
}

/** The slip text of one copy; lines end with `\n`. */
export function formatSlip(s: SlipInput, copy: SlipCopy): string {
  const cur = s.currencyLabel ?? 'RMB';
  const date = `${s.localYear}/${s.localDate.slice(0, 2)}/${s.localDate.slice(2, 4)}`;
  const time = `${s.localTime.slice(0, 2)}:${s.localTime.slice(2, 4)}:${s.localTime.slice(4, 6)}`;
  const lines = [
    'POS签购单 / POS SALES SLIP',
    copy === 'merchant' ? '商户存根 / MERCHANT COPY' : '持卡人存根 / CARDHOLDER COPY',
    RULE,
    `商户名称 MERCHANT NAME: ${s.merchantName}`,
    `商户编号 MERCHANT NO: ${s.merchantId}`,
    `终端编号 TERMINAL NO: ${s.terminalId}`,
    `卡号 CARD NO: ${s.maskedPan}`,
    `交易类型 TRANS TYPE: ${TRANSACTION_TYPE_LABELS[s.type]}`,
    `批次号 BATCH NO: ${s.batchNumber}`,
    `凭证号 TRACE NO: ${s.stan}`,
    `参考号 REF NO: ${s.rrn ?? ''}`,
    `授权码 AUTH NO: ${s.authCode ?? ''}`,
    `日期/时间 DATE/TIME: ${date} ${time}`,
  ];
  if (s.type === 'balance-inquiry') {
    if (s.balanceMinor !== undefined) lines.push(`余额 BALANCE: ${cur} ${formatAmountMinor(s.balanceMinor)}`);
  } else {
    lines.push(`金额 AMOUNT: ${cur} ${formatAmountMinor(s.amountMinor)}`);
  }
  lines.push(`结果 RESULT: ${resultLine(s)}`, RULE);
  if (copy === 'merchant') {
    lines.push(
      '持卡人签名 / CARDHOLDER SIGNATURE:',
      '',
      '',
      RULE,
      '本人确认以上交易,同意将其记入本卡账户',
      'I ACKNOWLEDGE SATISFACTORY RECEIPT OF RELATIVE GOODS/SERVICES',
    );
  } else {
    lines.push('请妥善保管 / PLEASE KEEP THIS SLIP');
  }
  // An empty value (no RRN on a no-answer, no auth code on a decline) leaves no trailing blank.
  return `${lines.map((l) => l.trimEnd()).join('\n')}\n`;
}

/** Field 39 reasons of a 0400 (cup-pos-dialect.md 2.7), as printed on a reversal slip. */
export const REVERSAL_REASON_LABELS: Readonly<Record<string, string>> = {
  '98': '无应答 / NO ANSWER',
  '96': '终端未完成 / TERMINAL FAILURE',
  A0: '应答MAC错 / ANSWER MAC INVALID',
  '06': '其他 / OTHER',
};

export interface ReversalSlipInput {
  /** The record that was reversed (original batch, STAN, date, amount, masked PAN, reason). */
  reversal: Pick<
    PendingReversal,
    'type' | 'stan' | 'batchNumber' | 'amountMinor' | 'maskedPan' | 'localDate' | 'localTime' | 'reason'
  >;
  /** RRN of the 0410, when the POSP gave one. */
  rrn?: string;
  /** When the reversal went out. */
  localYear: number;
  localDate: string;
  localTime: string;
  merchantName: string;
  merchantId: string;
  terminalId: string;
  currencyLabel?: string;
}

const mmdd = (d: string) => `${d.slice(0, 2)}/${d.slice(2, 4)}`;
const hhmmss = (t: string) => `${t.slice(0, 2)}:${t.slice(2, 4)}:${t.slice(4, 6)}`;

/**
 * A reversal slip (沖正 / REVERSAL): printed after an automatic reversal is acknowledged, so that
 * the merchant and the cardholder hold paper saying the unanswered transaction did not stand.
 */
export function formatReversalSlip(s: ReversalSlipInput, copy: SlipCopy): string {
  const cur = s.currencyLabel ?? 'RMB';
  const r = s.reversal;
  const lines = [
    '沖正單 / REVERSAL SLIP',
    copy === 'merchant' ? '商户存根 / MERCHANT COPY' : '持卡人存根 / CARDHOLDER COPY',
    RULE,
    `商户名称 MERCHANT NAME: ${s.merchantName}`,
    `商户编号 MERCHANT NO: ${s.merchantId}`,
    `终端编号 TERMINAL NO: ${s.terminalId}`,
    `卡号 CARD NO: ${r.maskedPan}`,
    `交易类型 TRANS TYPE: 沖正 / REVERSAL`,
    `原交易 ORIG TRANS: ${TRANSACTION_TYPE_LABELS[r.type]}`,
    `批次号 BATCH NO: ${r.batchNumber}`,
    `原凭证号 ORIG TRACE NO: ${r.stan}`,
    `原交易时间 ORIG DATE/TIME: ${mmdd(r.localDate)} ${hhmmss(r.localTime)}`,
    `沖正原因 REASON: ${r.reason} ${REVERSAL_REASON_LABELS[r.reason] ?? ''}`,
    `参考号 REF NO: ${s.rrn ?? ''}`,
    `日期/时间 DATE/TIME: ${s.localYear}/${mmdd(s.localDate)} ${hhmmss(s.localTime)}`,
    `金额 AMOUNT: ${cur} ${formatAmountMinor(r.amountMinor)}`,
    '结果 RESULT: 自動沖正成功 / REVERSAL SUCCESSFUL',
    RULE,
    '原交易已撤回,不会入账 / THE ORIGINAL TRANSACTION DOES NOT STAND',
  ];
  if (copy === 'cardholder') lines.push('请妥善保管 / PLEASE KEEP THIS SLIP');
  return `${lines.map((l) => l.trimEnd()).join('\n')}\n`;
}

export interface SettlementSlipInput
  extends Pick<
    SettlementResult,
    | 'status'
    | 'batchNumber'
    | 'nextBatchNumber'
    | 'hostTotals'
    | 'uploadedCount'
    | 'localYear'
    | 'localDate'
    | 'localTime'
    | 'failure'
    | 'responseCode'
  > {
  totals: SettlementTotals;
  merchantName: string;
  merchantId: string;
  terminalId: string;
  currencyLabel?: string;
}

function settlementResultLine(s: SettlementSlipInput): string {
  switch (s.status) {
    case 'balanced':
      return '对账平 / BALANCED';
    case 'uploaded':
      return `对账不平,已上送 ${s.uploadedCount ?? 0} 笔 / NOT BALANCED, ${s.uploadedCount ?? 0} UPLOADED`;
    case 'declined':
      return `结算失败 / DECLINED (${s.responseCode ?? ''})`;
    default:
      return `结算失败 / FAILED (${s.failure ?? ''}), 批次未关闭 / BATCH STILL OPEN`;
  }
}

const DEBIT_LABEL = '借记 DEBIT (消费 SALE)';
const CREDIT_LABEL = '贷记 CREDIT (撤销+退货 VOID+REFUND)';

/** The settlement slip (結算單 / SETTLEMENT): debit and credit counts and totals of the batch. */
export function formatSettlementSlip(s: SettlementSlipInput): string {
  const cur = s.currencyLabel ?? 'RMB';
  const t = s.totals;
  const row = (label: string, count: number, total: number) =>
    `${label}: ${count} 笔 / ${cur} ${formatAmountMinor(total)}`;
  const lines = [
    '结算单 / SETTLEMENT',
    RULE,
    `商户名称 MERCHANT NAME: ${s.merchantName}`,
    `商户编号 MERCHANT NO: ${s.merchantId}`,
    `终端编号 TERMINAL NO: ${s.terminalId}`,
    `批次号 BATCH NO: ${s.batchNumber}`,
    `日期/时间 DATE/TIME: ${s.localYear}/${mmdd(s.localDate)} ${hhmmss(s.localTime)}`,
    RULE,
    '内卡 DOMESTIC',
    row(DEBIT_LABEL, t.debitCount, t.debitTotalMinor),
    row(CREDIT_LABEL, t.creditCount, t.creditTotalMinor),
    `净额 NET: ${cur} ${formatAmountMinor(t.debitTotalMinor - t.creditTotalMinor)}`,
  ];
  if (s.hostTotals) {
    lines.push(
      RULE,
      'POSP 总计 / HOST TOTALS',
      row(DEBIT_LABEL, s.hostTotals.debitCount, s.hostTotals.debitTotalMinor),
      row(CREDIT_LABEL, s.hostTotals.creditCount, s.hostTotals.creditTotalMinor),
    );
  }
  lines.push(RULE, `结果 RESULT: ${settlementResultLine(s)}`);
  if (s.nextBatchNumber) lines.push(`新批次号 NEW BATCH NO: ${s.nextBatchNumber}`);
  return `${lines.map((l) => l.trimEnd()).join('\n')}\n`;
}
