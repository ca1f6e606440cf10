/**
 * Model test of the ledger: random sequences of purchases, inquiries, voids, refunds, reversals (of
 * anything, including originals never seen and then arriving late), exact replays and conflicting
 * duplicates, through `Issuer.authorize` with the real HSM and a real SQLite file per run. After each
 * step the answer matches a small model; at the end the ledger audits clean and every balance equals
 * the model's.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import type { IssuerRequest } from '../src/issuer.js';
import { CARD, ibmCard, openIssuer, originalOf, pinBlockZpk, SETTLEMENT, tempDir } from './fixture.js';

const CARDS = [
  { pan: CARD.ibm.pan, pin: CARD.ibm.pin },
  { pan: CARD.pvv.pan, pin: '2580' },
];
const OPENING = 100_000;
const LIMIT = 40_000;

type Op =
  | { kind: 'purchase'; card: number; amount: number; pinOk: boolean }
  | { kind: 'inquiry'; card: number }
  | { kind: 'void'; target: number; wrongAmount: boolean }
  | { kind: 'refund'; target: number; amount: number }
  | { kind: 'reversal'; target: number }
  | { kind: 'reversalUnseen'; card: number; amount: number }
  | { kind: 'lateOriginal'; target: number }
  | { kind: 'replay'; target: number }
  | { kind: 'conflict'; target: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('purchase' as const),
      card: fc.nat(1),
      amount: fc.integer({ min: 1, max: 45_000 }),
      pinOk: fc.nat(9).map((n) => n !== 0),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('inquiry' as const), card: fc.nat(1) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('void' as const),
      target: fc.nat(),
      wrongAmount: fc.nat(4).map((n) => n === 0),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('refund' as const),
      target: fc.nat(),
      amount: fc.integer({ min: 1, max: 30_000 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('reversal' as const), target: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('reversalUnseen' as const),
      card: fc.nat(1),
      amount: fc.integer({ min: 1, max: 5000 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('lateOriginal' as const), target: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('replay' as const), target: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('conflict' as const), target: fc.nat() }) },
);

/** One financial request the model has seen, and what it did. */
interface Sent {
  req: IssuerRequest;
  type: 'purchase' | 'void' | 'refund' | 'inquiry' | 'reversal';
  card: number;
  amount: number;
  code: string;
  auth?: string;
  f54?: string;
  approved: boolean;
  voided: boolean;
  reversed: boolean;
  refunded: number;
  /** For void/refund: the purchase (index in `sent`). */
  parent?: number;
}

function request(card: number, stan: number, over: Partial<IssuerRequest> = {}): IssuerRequest {
  const s = String(stan).padStart(6, '0');
  return {
    mti: '0200',
    identity: { acquirerId: '48020000', terminalId: 'TERM0001', stan: s, localDate: '1125' },
    processingCode: '000000',
    amountMinor: 0,
    pan: CARDS[card]!.pan,
    transmissionDt: `1125${s}`.slice(0, 10),
    ...over,
  };
}

test('random operation sequences keep the ledger balanced and match the model', async () => {
  const dir = tempDir('issuer-model-');
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 10, maxLength: 40, size: 'max' }), async (ops) => {
      const { store, issuer } = await openIssuer(join(dir, `m${run++}.db`));
      try {
        for (const c of CARDS)
          await issuer.addCard(ibmCard(c.pan, c.pin, { balanceMinor: OPENING, limitMinor: LIMIT }));
        const balance = [OPENING, OPENING];
        const tries = [0, 0];
        const blocked = [false, false];
        const sent: Sent[] = [];
        const tombstones: { req: IssuerRequest; card: number; amount: number }[] = [];
        let stan = 0;
        const financial = () => sent.filter((s) => s.type !== 'reversal' && s.type !== 'inquiry');
        /** Half the time one of the last three (chains of void/refund/reversal on one purchase), else any. */
        const pick = <T>(list: T[], n: number): T =>
          n % 2 === 0
            ? list[list.length - 1 - ((n >> 1) % Math.min(3, list.length))]!
            : list[(n >> 1) % list.length]!;
        for (const op of ops) {
          switch (op.kind) {
            case 'purchase':
            case 'inquiry': {
              const c = CARDS[op.card]!;
              const pinOk = op.kind === 'inquiry' || op.pinOk;
              const amount = op.kind === 'purchase' ? op.amount : 0;
              const req = request(op.card, ++stan, {
                processingCode: op.kind === 'purchase' ? '000000' : '310000',
                amountMinor: amount,
                pinBlock: pinBlockZpk(pinOk ? c.pin : '0000', c.pan),
              });
              const a = await issuer.authorize(req);
              let expected: string;
              if (blocked[op.card]) expected = '75';
              else if (!pinOk) {
                tries[op.card]!++;
                if (tries[op.card]! >= 3) {
                  blocked[op.card] = true;
                  expected = '75';
                } else expected = '55';
              } else {
                tries[op.card] = 0;
                if (op.kind === 'inquiry') expected = '00';
                else if (amount > LIMIT) expected = '61';
                else if (amount > balance[op.card]!) expected = '51';
                else expected = '00';
              }
              assert.equal(a.responseCode, expected, `${op.kind} ${amount}`);
              if (op.kind === 'inquiry' && expected === '00') {
                // Field 54: C for a credit balance, D for a debit one (a reversed refund can leave one).
                const b = balance[op.card]!;
                assert.equal(
                  a.additionalAmounts,
                  `1002156${b < 0 ? 'D' : 'C'}${String(Math.abs(b)).padStart(12, '0')}`,
                );
              }
              const approved = expected === '00' && op.kind === 'purchase';
              if (approved) balance[op.card]! -= amount;
              sent.push({
                req,
                type: op.kind,
                card: op.card,
                amount,
                code: a.responseCode,
                ...(a.authCode === undefined ? {} : { auth: a.authCode }),
                ...(a.additionalAmounts === undefined ? {} : { f54: a.additionalAmounts }),
                approved,
                voided: false,
                reversed: false,
                refunded: 0,
              });
              break;
            }
            case 'void':
            case 'refund': {
              const f = financial();
              if (f.length === 0) break;
              const t = pick(f, op.target);
              const ti = sent.indexOf(t);
              const amount = op.kind === 'void' ? (op.wrongAmount ? t.amount + 1 : t.amount) : op.amount;
              const req = request(t.card, ++stan, {
                processingCode: op.kind === 'void' ? '020000' : '200000',
                amountMinor: amount,
                original: originalOf(t.req),
              });
              const a = await issuer.authorize(req);
              let expected: string;
              if (t.type !== 'purchase' || !t.approved || t.voided || t.reversed) expected = '12';
              else if (op.kind === 'void')
                expected = t.refunded > 0 ? '12' : amount !== t.amount ? '13' : '00';
              else expected = amount > t.amount - t.refunded ? '13' : '00';
              assert.equal(a.responseCode, expected, `${op.kind} of ${t.type} ${t.code}`);
              const approved = expected === '00';
              if (approved) {
                balance[t.card]! += amount;
                if (op.kind === 'void') t.voided = true;
                else t.refunded += amount;
              }
              sent.push({
                req,
                type: op.kind,
                card: t.card,
                amount,
                code: a.responseCode,
                ...(a.authCode === undefined ? {} : { auth: a.authCode }),
                approved,
                voided: false,
                reversed: false,
                refunded: 0,
                parent: ti,
              });
              break;
            }
            case 'reversal': {
              const f = financial();
              if (f.length === 0) break;
              const t = pick(f, op.target);
              const req = request(t.card, ++stan, {
                mti: '0400',
                processingCode: t.req.processingCode,
                amountMinor: t.amount,
                original: originalOf(t.req),
              });
              const a = await issuer.authorize(req);
              assert.equal(a.responseCode, '00', `reversal of ${t.type}`);
              if (!t.reversed) {
                t.reversed = true;
                if (t.approved) {
                  const p = t.parent === undefined ? undefined : sent[t.parent]!;
                  if (t.type === 'purchase' && !t.voided) balance[t.card]! += t.amount - t.refunded;
                  if (t.type === 'void' && p) {
                    p.voided = false;
                    if (!p.reversed) balance[t.card]! -= t.amount;
                  }
                  if (t.type === 'refund' && p) {
                    p.refunded -= t.amount;
                    if (!p.reversed) balance[t.card]! -= t.amount;
                  }
                }
              }
              sent.push({
                req,
                type: 'reversal',
                card: t.card,
                amount: t.amount,
                code: '00',
                approved: false,
                voided: false,
                reversed: false,
                refunded: 0,
              });
              break;
            }
            case 'reversalUnseen': {
              const future = request(op.card, ++stan, { amountMinor: op.amount });
              const req = request(op.card, ++stan, {
                mti: '0400',
                amountMinor: op.amount,
                original: originalOf(future),
              });
              assert.equal((await issuer.authorize(req)).responseCode, '00');
              tombstones.push({ req: future, card: op.card, amount: op.amount });
              sent.push({
                req,
                type: 'reversal',
                card: op.card,
                amount: op.amount,
                code: '00',
                approved: false,
                voided: false,
                reversed: false,
                refunded: 0,
              });
              break;
            }
            case 'lateOriginal': {
              if (tombstones.length === 0) break;
              const t = tombstones.splice(op.target % tombstones.length, 1)[0]!;
              const c = CARDS[t.card]!;
              const a = await issuer.authorize({ ...t.req, pinBlock: pinBlockZpk(c.pin, c.pan) });
              assert.equal(a.responseCode, '12', 'late original after its reversal');
              break;
            }
            case 'replay': {
              if (sent.length === 0) break;
              const t = pick(sent, op.target);
              const a = await issuer.authorize(t.req);
              assert.equal(a.responseCode, t.code, 'replay: same code');
              assert.equal(a.authCode, t.auth, 'replay: same authorization code');
              assert.equal(a.additionalAmounts, t.f54, 'replay: same field 54');
              break;
            }
            case 'conflict': {
              if (sent.length === 0) break;
              const t = pick(sent, op.target);
              const a = await issuer.authorize({ ...t.req, amountMinor: t.req.amountMinor + 1 });
              assert.equal(a.responseCode, '94');
              break;
            }
          }
        }
        const audit = await issuer.auditLedger();
        assert.deepEqual(audit.problems, []);
        for (const [i, c] of CARDS.entries()) {
          const card = (await issuer.card(c.pan))!;
          assert.equal(card.balance.ledgerMinor, balance[i], `card ${i} balance`);
        }
        const clearing = (await issuer.balance(SETTLEMENT))!;
        assert.equal(clearing.ledgerMinor, 2 * OPENING - balance[0]! - balance[1]!);
      } finally {
        await store.close();
      }
    }),
    { numRuns: 60 },
  );
});

test('concurrent copies of one request: one debit, one answer; concurrent purchases never overdraw', async () => {
  const { store, issuer } = await openIssuer(join(tempDir('issuer-conc-'), 'c.db'));
  try {
    const c = CARDS[0]!;
    await issuer.addCard(ibmCard(c.pan, c.pin, { balanceMinor: 10_000 }));
    const req = request(0, 1, { amountMinor: 3000, pinBlock: pinBlockZpk(c.pin, c.pan) });
    const answers = await Promise.all(Array.from({ length: 8 }, () => issuer.authorize(req)));
    assert.deepEqual(new Set(answers.map((a) => `${a.responseCode}/${a.authCode}`)).size, 1);
    assert.equal((await issuer.card(c.pan))!.balance.ledgerMinor, 7000);
    const many = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        issuer.authorize(request(0, 10 + i, { amountMinor: 2000, pinBlock: pinBlockZpk(c.pin, c.pan) })),
      ),
    );
    assert.equal(many.filter((a) => a.responseCode === '00').length, 3);
    assert.equal(many.filter((a) => a.responseCode === '51').length, 3);
    assert.equal((await issuer.card(c.pan))!.balance.ledgerMinor, 1000);
    assert.deepEqual((await issuer.auditLedger()).problems, []);
  } finally {
    await store.close();
  }
});
