/** Accounts-file validation, API error paths and ledger guards, each with its exact code and message. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { encryptPinBlock } from '@openposp/crypto';
import { readAccountsFile, validateAccountsFile } from '../src/cards.js';
import { IssuerError } from '../src/errors.js';
import type { Issuer } from '../src/issuer.js';
import { post } from '../src/ledger.js';
import { CARD, CLEAR, ibmCard, KEYS, openIssuer, pinBlockZpk, tempDir, testCards } from './fixture.js';

function throwsIssuer(fn: () => unknown, code: string, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof IssuerError, String(e));
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    return true;
  });
}
async function rejectsIssuer(p: Promise<unknown>, code: string, message: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof IssuerError, String(e));
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    return true;
  });
}

const cases: [string, (c: Record<string, any>) => void, string][] = [
  ['PAN check digit', (c) => (c.pan = '6212340000000010'), 'cards[0].pan: check digit (Luhn) is wrong'],
  ['PAN digits', (c) => (c.pan = '62123400'), 'cards[0].pan: must be 12 to 19 digits'],
  ['expiry month', (c) => (c.expiry = '2813'), 'cards[0].expiry: must be YYMM with a month 01 to 12'],
  ['status', (c) => (c.status = 'closed'), 'cards[0].status: must be one of active, blocked, pin-blocked'],
  [
    'balance',
    (c) => (c.balanceMinor = 1.5),
    'cards[0].balanceMinor: must be a safe integer >= 0 (minor units)',
  ],
  [
    'PVK',
    (c) => (c.pin.pvk = 'ABCDEF'),
    'cards[0].pin.pvk: must be a key block under the LMK (starting with S)',
  ],
  [
    'dec table',
    (c) => (c.pin.decimalisationTable = '0123'),
    'cards[0].pin.decimalisationTable: must be 16 digits',
  ],
  ['offset', (c) => (c.pin.offset = '12a4'), 'cards[0].pin.offset: must be 4 to 12 digits'],
  ['method', (c) => (c.pin.method = 'natural'), "cards[0].pin.method: must be 'ibm3624' or 'pvv'"],
  ['unknown', (c) => (c.cvv = '123'), 'cards[0].cvv: unknown property'],
];
for (const [name, edit, message] of cases) {
  test(`accounts file: ${name}`, () => {
    const c = structuredClone(ibmCard(CARD.ibm.pan, CARD.ibm.pin)) as Record<string, any>;
    edit(c);
    throwsIssuer(() => validateAccountsFile({ cards: [c] }), 'ISSUER_ACCOUNTS_INVALID', message);
  });
}

test('accounts file: a PAN twice, not JSON, missing', () => {
  const dir = tempDir();
  const c = ibmCard(CARD.ibm.pan, CARD.ibm.pin);
  throwsIssuer(
    () => validateAccountsFile({ cards: [c, c] }),
    'ISSUER_ACCOUNTS_INVALID',
    'cards[1].pan: appears twice in the file',
  );
  writeFileSync(join(dir, 'bad.json'), '{');
  throwsIssuer(
    () => readAccountsFile(join(dir, 'bad.json')),
    'ISSUER_ACCOUNTS_INVALID',
    `accountsFile: ${join(dir, 'bad.json')} is not JSON`,
  );
  throwsIssuer(
    () => readAccountsFile(join(dir, 'none.json')),
    'ISSUER_ACCOUNTS_INVALID',
    `accountsFile: cannot read ${join(dir, 'none.json')}`,
  );
});

let issuer: Issuer;
let close: () => Promise<void>;
before(async () => {
  const o = await openIssuer(join(tempDir(), 'i.db'));
  issuer = o.issuer;
  close = () => o.store.close();
  await issuer.loadCards(testCards());
});
after(() => close());

test('API errors: existing card, unknown card, hold above available, HSM refusal at enrolment', async () => {
  await rejectsIssuer(
    issuer.addCard(ibmCard(CARD.ibm.pan, CARD.ibm.pin)),
    'ISSUER_CARD_EXISTS',
    'pan: a card account with this PAN exists',
  );
  assert.deepEqual(await issuer.loadCards(testCards()), { added: 0, existing: testCards().length });
  await rejectsIssuer(
    issuer.enrolPin({
      pan: CARD.unknown.pan,
      pinBlock: encryptPinBlock(0, CLEAR.tpk, '1234', CARD.unknown.pan),
      pinKey: KEYS.tpk,
    }),
    'ISSUER_CARD_UNKNOWN',
    'pan: no card account',
  );
  await rejectsIssuer(
    issuer.enrolPin({
      pan: CARD.ibm.pan,
      pinBlock: encryptPinBlock(0, CLEAR.tpk, '1234', CARD.ibm.pan),
      pinKey: KEYS.zak,
    }),
    'ISSUER_HSM_FAILED',
    'enrolPin: HSM refused (HSM_KEY_USAGE)',
  );
  const { accountId } = (await issuer.card(CARD.pvv.pan))!;
  await rejectsIssuer(
    issuer.placeHold(accountId, 50_001, 'x'),
    'ISSUER_FUNDS_INSUFFICIENT',
    'amountMinor: exceeds the available balance',
  );
  await rejectsIssuer(
    issuer.placeHold(accountId, 0, 'x'),
    'ISSUER_AMOUNT_INVALID',
    'amountMinor: must be a positive safe integer (minor units)',
  );
});

test('a posting that does not sum to zero is refused before anything is written', async () => {
  const { accountId } = (await issuer.card(CARD.ibm.pan))!;
  await rejectsIssuer(
    issuer.store.transaction((tx) =>
      post(tx, {
        txnId: null,
        kind: 'x',
        now: new Date(),
        entries: [
          { accountId, amountMinor: 5 },
          { accountId: 'funding', amountMinor: -4 },
        ],
      }),
    ),
    'ISSUER_LEDGER_UNBALANCED',
    'entries: a posting needs two or more entries summing to 0',
  );
  assert.deepEqual((await issuer.auditLedger()).problems, []);
});

test('the auditor sees a ledger edited behind its back', async () => {
  const { accountId } = (await issuer.card(CARD.atm.pan))!;
  await issuer.store.run('UPDATE accounts SET ledger_minor = ledger_minor + 1 WHERE id = ?', [accountId]);
  const a = await issuer.auditLedger();
  assert.equal(a.ok, false);
  assert.deepEqual(a.problems, [`L3: account ${accountId} ledger 100001 != entries 100000`]);
  await issuer.store.run('UPDATE accounts SET ledger_minor = ledger_minor - 1 WHERE id = ?', [accountId]);
});

test('13 for a foreign currency; 25 for a reversal naming another card’s original', async () => {
  const base = {
    mti: '0200',
    identity: { acquirerId: '48020000', terminalId: 'T9', stan: '000001', localDate: '1125' },
    processingCode: '000000',
    amountMinor: 100,
    pan: CARD.ibm.pan,
    transmissionDt: '1125000001',
    pinBlock: pinBlockZpk(CARD.ibm.pin, CARD.ibm.pan),
  };
  assert.equal((await issuer.authorize({ ...base, currency: '840' })).responseCode, '13');
  const p = { ...base, identity: { ...base.identity, stan: '000002' }, transmissionDt: '1125000002' };
  assert.equal((await issuer.authorize(p)).responseCode, '00');
  const raw = `0200000002112500000200048020000${'0'.repeat(11)}`;
  const rev = await issuer.authorize({
    mti: '0400',
    identity: { ...base.identity, stan: '000003' },
    processingCode: '000000',
    amountMinor: 100,
    pan: CARD.pvv.pan,
    original: {
      mti: '0200',
      stan: '000002',
      transmissionDt: '1125000002',
      acquirerId: '00048020000',
      forwardingId: '0'.repeat(11),
      raw,
    },
  });
  assert.equal(rev.responseCode, '25');
});
