import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  formatAmountMinor,
  formatReversalSlip,
  formatSettlementSlip,
  formatSlip,
  type ReversalSlipInput,
  type SettlementSlipInput,
  type SlipCopy,
  type SlipInput,
} from '../src/slip.js';

const base = {
  merchantName: '测试商户 TEST SHOP',
  merchantId: '898310012345678',
  terminalId: 'POS00001',
  maskedPan: '622202*********0123',
  stan: '000123',
  batchNumber: '000007',
  localYear: 2025,
  localDate: '1125',
  localTime: '103301',
};

/** Each case: the slip input, the copy, and the golden file holding the exact text. */
const CASES: { name: string; input: SlipInput; copy: SlipCopy }[] = [
  {
    name: 'purchase-approved-merchant',
    copy: 'merchant',
    input: {
      ...base,
      type: 'purchase',
      status: 'approved',
      responseCode: '00',
      rrn: '112510330101',
      authCode: 'A1B2C3',
      amountMinor: 12345,
    },
  },
  {
    name: 'purchase-approved-cardholder',
    copy: 'cardholder',
    input: {
      ...base,
      type: 'purchase',
      status: 'approved',
      responseCode: '00',
      rrn: '112510330101',
      authCode: 'A1B2C3',
      amountMinor: 12345,
    },
  },
  {
    name: 'purchase-declined-cardholder',
    copy: 'cardholder',
    input: {
      ...base,
      type: 'purchase',
      status: 'declined',
      responseCode: '51',
      rrn: '112510330102',
      amountMinor: 5,
    },
  },
  {
    name: 'balance-inquiry-cardholder',
    copy: 'cardholder',
    input: {
      ...base,
      type: 'balance-inquiry',
      status: 'approved',
      responseCode: '00',
      rrn: '112510330103',
      amountMinor: 0,
      balanceMinor: 1234567,
    },
  },
  {
    name: 'void-approved-merchant',
    copy: 'merchant',
    input: {
      ...base,
      type: 'void',
      status: 'approved',
      responseCode: '00',
      rrn: '112510330104',
      authCode: 'A1B2C3',
      amountMinor: 12345,
    },
  },
  {
    name: 'refund-approved-merchant',
    copy: 'merchant',
    input: {
      ...base,
      type: 'refund',
      status: 'approved',
      responseCode: '00',
      rrn: '112510330105',
      authCode: 'D4E5F6',
      amountMinor: 5000,
    },
  },
  {
    name: 'purchase-no-answer-merchant',
    copy: 'merchant',
    input: { ...base, type: 'purchase', status: 'no-answer', amountMinor: 800 },
  },
];

describe('slips (golden text)', () => {
  for (const c of CASES) {
    test(c.name, () => {
      const file = new URL(`./golden/slip-${c.name}.txt`, import.meta.url);
      // UPDATE_GOLDEN=1 rewrites the files; review the diff before committing it.
      if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, formatSlip(c.input, c.copy));
      assert.equal(formatSlip(c.input, c.copy), readFileSync(file, 'utf8'));
    });
  }

  test('only the merchant copy has the signature line', () => {
    const input = CASES[0]!.input;
    assert.ok(formatSlip(input, 'merchant').includes('持卡人签名 / CARDHOLDER SIGNATURE'));
    assert.equal(formatSlip(input, 'cardholder').includes('持卡人签名'), false);
  });
});

describe('amounts from minor units', () => {
  for (const [minor, text] of [
    [0, '0.00'],
    [5, '0.05'],
    [99, '0.99'],
    [100, '1.00'],
    [12345, '123.45'],
    [-250, '-2.50'],
    [999999999999, '9999999999.99'],
  ] as const) {
    test(`${minor} -> ${text}`, () => assert.equal(formatAmountMinor(minor), text));
  }
  test('a fraction is refused', () => assert.throws(() => formatAmountMinor(1.5), RangeError));
});

const golden = (name: string, text: string) => {
  const file = new URL(`./golden/slip-${name}.txt`, import.meta.url);
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, text);
  assert.equal(text, readFileSync(file, 'utf8'));
};

const REVERSAL: ReversalSlipInput = {
  reversal: {
    type: 'purchase',
    stan: '000122',
    batchNumber: '000007',
    amountMinor: 12345,
    maskedPan: '622202*********0123',
    localDate: '1125',
    localTime: '102959',
    reason: '98',
  },
  rrn: '112510330107',
  localYear: 2025,
  localDate: '1125',
  localTime: '103301',
  merchantName: base.merchantName,
  merchantId: base.merchantId,
  terminalId: base.terminalId,
};

describe('reversal slip (沖正 / REVERSAL, golden text)', () => {
  for (const copy of ['merchant', 'cardholder'] as const)
    test(copy, () => golden(`reversal-${copy}`, formatReversalSlip(REVERSAL, copy)));
  test('the reason A0 is named', () =>
    assert.ok(
      formatReversalSlip(
        { ...REVERSAL, reversal: { ...REVERSAL.reversal, reason: 'A0' } },
        'merchant',
      ).includes('沖正原因 REASON: A0 应答MAC错 / ANSWER MAC INVALID'),
    ));
});

const SETTLEMENT: SettlementSlipInput = {
  status: 'balanced',
  batchNumber: '000007',
  nextBatchNumber: '000008',
  totals: { debitTotalMinor: 12345, debitCount: 2, creditTotalMinor: 10500, creditCount: 2 },
  localYear: 2025,
  localDate: '1125',
  localTime: '180000',
  merchantName: base.merchantName,
  merchantId: base.merchantId,
  terminalId: base.terminalId,
};

describe('settlement slip (結算, golden text)', () => {
  test('balanced', () => golden('settlement-balanced', formatSettlementSlip(SETTLEMENT)));
  test('not balanced, uploaded', () =>
    golden(
      'settlement-uploaded',
      formatSettlementSlip({
        ...SETTLEMENT,
        status: 'uploaded',
        uploadedCount: 4,
        hostTotals: { debitTotalMinor: 2345, debitCount: 1, creditTotalMinor: 10500, creditCount: 2 },
      }),
    ));
  test('failed: the batch stays open', () =>
    golden(
      'settlement-failed',
      formatSettlementSlip({
        ...SETTLEMENT,
        status: 'failed',
        failure: 'no-answer',
        nextBatchNumber: undefined,
      }),
    ));
});
