/**
 * The network end to end over real TCP on loopback: a directory set up by `setupNetwork` (every key
 * ceremony against a real HSM server), then the real HSM server, two issuers, the switch and the POSP
 * started in this process from the configs it wrote, and the three terminals with their injected PIN
 * pads. Every flow of issue 5 §8, then `posp txn show`, then the secret scan of the whole directory.
 *
 * The tests run in order and share the network (each builds on the state the previous one left).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FramedClient } from '@openposp/net';
import { Iso8583Message, joinCupFrame, loadSpec, splitCupFrame, unpack } from '@openposp/iso8583';
import { PINPAD_SCRYPT_N_MIN, type Terminal, type TransactionResult } from '@openposp/terminal';
import { DEMO_CARDS, demoCard, track2Of } from '../src/network/cards.js';
import type { NetworkManifest } from '../src/network/layout.js';
import { setupNetwork } from '../src/network/setup.js';
import {
  cardNeedles,
  FrameProxy,
  type InProcessNetwork,
  keyNeedles,
  type Needle,
  openTerminal,
  scanDirectory,
  startInProcess,
} from './network-harness.js';
import { runPosp } from './run.js';

const spec = loadSpec('cup-pos');
let dir: string;
let m: NetworkManifest;
let net: InProcessNetwork;
const clearSecrets: { label: string; bytes: Uint8Array }[] = [];
const terminals = new Map<string, Terminal>();
const T = (id: string) => terminals.get(id)!;

const ok = demoCard('ok');
const card = (role: Parameters<typeof demoCard>[0]) => ({ track2: track2Of(demoCard(role)) });

async function cardBalance(role: Parameters<typeof demoCard>[0]): Promise<number> {
  const c = demoCard(role);
  const view = await net.issuers.get(c.issuer!)!.issuer.card(c.pan);
  return view!.balance.availableMinor;
}

function expectCode(r: TransactionResult, code: string): void {
  assert.equal(r.responseCode, code, `${r.type}: expected ${code}, got ${r.responseCode} (${r.status})`);
  assert.equal(r.status, code === '00' ? 'approved' : 'declined');
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'posp-e2e-'));
  m = await setupNetwork(dir, {
    pinPadScryptN: PINPAD_SCRYPT_N_MIN,
    onClearSecret: (label, bytes) => clearSecrets.push({ label, bytes }),
  });
  net = await startInProcess(m);
  for (const t of m.terminals) terminals.set(t.terminalId, await openTerminal(m, t.terminalId));
});

after(async () => {
  for (const t of terminals.values()) await t.close();
  await net?.close();
});

test('setup: the ceremonies gave every party its keys, and the clear keys never left the setup', () => {
  // 3 ZMKs (POSP–switch, switch–bank-a, switch–bank-b), 2 enrolment TMKs, 3 terminal TMKs: 2 components + the key each.
  assert.equal(clearSecrets.length, 8 * 3);
  assert.equal(m.terminals.length, 3);
  assert.deepEqual(
    m.issuers.map((i) => i.id),
    ['bank-a', 'bank-b'],
  );
  const readme = readFileSync(join(dir, 'README.txt'), 'utf8');
  assert.match(readme, /DEMO ONLY/);
});

test('sign-in: each terminal gets its working keys with matching check values', async () => {
  for (const t of terminals.values()) {
    const r = await t.signIn();
    assert.equal(r.status, 'approved');
    assert.deepEqual(
      r.slots!.map((s) => s.usage),
      ['pin', 'mac', 'data'],
    );
  }
});

let purchase1: TransactionResult;

test('purchase approved: PIN translated TPK→ZPK→ZPK and verified by IBM 3624 offset; the account is debited', async () => {
  const before = await cardBalance('ok');
  purchase1 = await T('POS00001').purchase({ card: card('ok'), amountMinor: 1234, pin: ok.pin });
  expectCode(purchase1, '00');
  assert.match(purchase1.rrn!, /^[0-9]{12}$/);
  assert.match(purchase1.authCode!, /^[0-9A-Z]{6}$/);
  assert.equal(await cardBalance('ok'), before - 1234);
});

test('purchase approved on the second issuer (BIN range 62170000-62170099, Visa PVV)', async () => {
  const c = demoCard('pvv');
  const r = await T('POS00002').purchase({ card: card('pvv'), amountMinor: 8800, pin: c.pin });
  expectCode(r, '00');
});

test('declines: 55 wrong PIN, 51 insufficient funds, 54 expired, 61 above the limit, 14 unknown BIN', async () => {
  expectCode(await T('POS00001').purchase({ card: card('ok'), amountMinor: 100, pin: '000000' }), '55');
  const low = demoCard('low-funds');
  expectCode(
    await T('POS00002').purchase({ card: card('low-funds'), amountMinor: 2000, pin: low.pin }),
    '51',
  );
  const exp = demoCard('expired');
  expectCode(await T('POS00003').purchase({ card: card('expired'), amountMinor: 100, pin: exp.pin }), '54');
  const lim = demoCard('limit');
  expectCode(await T('POS00003').purchase({ card: card('limit'), amountMinor: 50_001, pin: lim.pin }), '61');
  const unk = demoCard('unknown-bin');
  expectCode(
    await T('POS00003').purchase({ card: card('unknown-bin'), amountMinor: 100, pin: unk.pin }),
    '14',
  );
});

test('75 after three wrong PINs: the card is blocked for PIN, even with the right one', async () => {
  const c = demoCard('pin-tries');
  const codes: string[] = [];
  for (let i = 0; i < 3; i++)
    codes.push(
      (await T('POS00002').purchase({ card: card('pin-tries'), amountMinor: 100, pin: '999999' }))
        .responseCode!,
    );
  assert.deepEqual(codes, ['55', '55', '75']);
  expectCode(await T('POS00002').purchase({ card: card('pin-tries'), amountMinor: 100, pin: c.pin }), '75');
});

test('balance inquiry: 00 with the available balance, nothing moves', async () => {
  const before = await cardBalance('ok');
  const r = await T('POS00001').balanceInquiry({ card: card('ok'), pin: ok.pin });
  expectCode(r, '00');
  assert.equal(r.balanceMinor, before);
  assert.equal(await cardBalance('ok'), before);
});

test('void: the purchase is released at the issuer', async () => {
  const before = await cardBalance('ok');
  const p = await T('POS00001').purchase({ card: card('ok'), amountMinor: 5678, pin: ok.pin });
  expectCode(p, '00');
  assert.equal(await cardBalance('ok'), before - 5678);
  const v = await T('POS00001').voidPurchase({ card: card('ok'), originalStan: p.stan });
  expectCode(v, '00');
  assert.equal(await cardBalance('ok'), before);
});

test('refund: part of a purchase goes back to the card', async () => {
  const before = await cardBalance('ok');
  const p = await T('POS00003').purchase({ card: card('ok'), amountMinor: 10_000, pin: ok.pin });
  expectCode(p, '00');
  const r = await T('POS00003').refund({
    card: card('ok'),
    amountMinor: 3000,
    original: { rrn: p.rrn!, date: p.localDate, stan: p.stan, batchNumber: p.batchNumber },
  });
  expectCode(r, '00');
  assert.equal(await cardBalance('ok'), before - 7000);
});

test('a MAC tampered on the terminal leg is refused A0, and nothing reaches the issuer', async () => {
  const proxy = await FrameProxy.start({ host: m.host, port: m.posp.port });
  const t = T('POS00001');
  await t.close();
  const via = await openTerminal(m, 'POS00001', proxy.port);
  try {
    proxy.onRequest = (f) => {
      const g = f.slice();
      // The last byte is the last of the 8 MAC characters: change it to another hex digit.
      g[g.length - 1] = g[g.length - 1] === 0x30 ? 0x31 : 0x30;
      return g;
    };
    const before = await cardBalance('ok');
    const r = await via.purchase({ card: card('ok'), amountMinor: 777, pin: ok.pin });
    expectCode(r, 'A0');
    assert.equal(await cardBalance('ok'), before);
    const j = await net.posp.inquire({ terminalId: 'POS00001', stan: r.stan, date: r.localDate });
    assert.equal(j, undefined, 'a request whose MAC fails is not journaled or forwarded');
  } finally {
    await via.close();
    await proxy.close();
    terminals.set('POS00001', await openTerminal(m, 'POS00001'));
  }
});

test('a MAC tampered on the POSP–switch leg and on the switch–issuer leg: refused, and the terminal sees A0', async () => {
  const flipLastByte = (f: Uint8Array) => {
    const g = f.slice();
    g[g.length - 1]! ^= 0x01; // the last byte of the 8-byte X9.19 MAC (field 64 or 128)
    return g;
  };
  for (const leg of ['pospToSwitch', 'switchToBankA'] as const) {
    const proxy = net.legs[leg];
    proxy.onRequest = flipLastByte;
    try {
      const before = await cardBalance('ok');
      const r = await T('POS00003').purchase({ card: card('ok'), amountMinor: 321, pin: ok.pin });
      expectCode(r, 'A0');
      assert.equal(await cardBalance('ok'), before, `${leg}: nothing debited`);
      // Who refused it: the switch (its MAC check of the POSP's request), or the issuer (answered
      // A0 under the zone ZAK, which the switch believed and passed on).
      const [row] = await net.sw.inquire({ rrn: r.rrn! });
      assert.deepEqual(
        [row?.outcome, row?.responseCode],
        leg === 'pospToSwitch' ? ['mac_failed', 'A0'] : ['answered', 'A0'],
      );
    } finally {
      proxy.onRequest = (f) => f;
    }
  }
  // Both links still work after the refusals.
  expectCode(await T('POS00003').purchase({ card: card('ok'), amountMinor: 321, pin: ok.pin }), '00');
});

test('a terminal not signed in today is refused 77 (POSP clock one day on), and signs in again', async () => {
  net.clock.offsetMs = 24 * 3600 * 1000;
  try {
    const r = await T('POS00003').purchase({ card: card('ok'), amountMinor: 100, pin: ok.pin });
    expectCode(r, '77');
    const s = await T('POS00003').signIn();
    assert.equal(s.status, 'approved');
    expectCode(await T('POS00003').purchase({ card: card('ok'), amountMinor: 100, pin: ok.pin }), '00');
  } finally {
    net.clock.offsetMs = 0;
  }
  assert.equal((await T('POS00003').signIn()).status, 'approved');
});

test('a replayed request (same terminal, STAN, date) gets the first answer again and one debit at the issuer', async () => {
  const proxy = await FrameProxy.start({ host: m.host, port: m.posp.port });
  await T('POS00002').close();
  const via = await openTerminal(m, 'POS00002', proxy.port);
  try {
    const before = await cardBalance('ok');
    const r = await via.purchase({ card: card('ok'), amountMinor: 4321, pin: ok.pin });
    expectCode(r, '00');
    const request = proxy.requests.at(-1)!;
    const client = await FramedClient.connect({
      host: m.host,
      port: m.posp.port,
      framing: { prefix: 'binary2' },
      keyOf: (f) => String(unpack(spec, splitCupFrame(f).message).get(11)),
    });
    try {
      const again = unpack(spec, splitCupFrame(await client.request(request)).message);
      assert.equal(again.get(39), '00');
      assert.equal(again.get(37), r.rrn);
      assert.equal(again.get(38), r.authCode);
    } finally {
      await client.close();
    }
    assert.equal(await cardBalance('ok'), before - 4321, 'one debit only');
    const issuerRows = await net.issuers.get('bank-a')!.issuer.inquire({ rrn: r.rrn! });
    assert.equal(issuerRows.length, 1);
  } finally {
    await via.close();
    await proxy.close();
    terminals.set('POS00002', await openTerminal(m, 'POS00002'));
  }
});

test('a sign-in answer with a wrong check value is refused and the old keys stay in the PIN pad', async () => {
  const proxy = await FrameProxy.start({ host: m.host, port: m.posp.port });
  await T('POS00002').close();
  const via = await openTerminal(m, 'POS00002', proxy.port);
  try {
    const keysBefore = (await via.status()).pinPad.slots.map((s) => `${s.slot}:${s.checkValueHex}`);
    proxy.onAnswer = (f) => {
      const { tpdu, header, message } = splitCupFrame(f);
      const a = unpack(spec, message);
      const keys = (a.get(62) as Uint8Array).slice();
      keys[16]! ^= 0x01; // the TPK's check value
      const b = new Iso8583Message(spec, a.mti);
      for (const id of a.fieldIds()) b.set(id, id === 62 ? keys : a.get(id)!);
      return joinCupFrame({ tpdu, header, message: b.pack().slice() });
    };
    const r = await via.signIn();
    assert.equal(r.status, 'refused');
    assert.equal(r.refusedReason, 'check-value');
    const keysAfter = (await via.status()).pinPad.slots.map((s) => `${s.slot}:${s.checkValueHex}`);
    assert.deepEqual(keysAfter, keysBefore);
  } finally {
    await via.close();
    await proxy.close();
  }
  const t = await openTerminal(m, 'POS00002');
  terminals.set('POS00002', t);
  assert.equal((await t.signIn()).status, 'approved');
  expectCode(await t.purchase({ card: card('ok'), amountMinor: 100, pin: ok.pin }), '00');
});

test('posp txn show: one RRN has the same state at the terminal, the POSP, the switch and the issuer', async () => {
  const r = await runPosp(['txn', 'show', '--dir', dir, '--rrn', purchase1.rrn!, '--json']);
  assert.equal(r.code, 0, r.err);
  const s = JSON.parse(r.out);
  assert.equal(s.rrn, purchase1.rrn);
  assert.equal(s.terminal.terminalId, 'POS00001');
  assert.equal(s.terminal.batchEntry.response_code, '00');
  assert.equal(s.terminal.batchEntry.amount_minor, 1234);
  assert.equal(s.terminal.pendingReversal, null);
  assert.equal(s.posp.state, 'answered');
  assert.equal(s.posp.responseCode, '00');
  assert.equal(s.posp.amountMinor, 1234);
  assert.equal(s.switch.length, 1);
  assert.equal(s.switch[0].outcome, 'answered');
  assert.equal(s.switch[0].responseCode, '00');
  assert.equal(s.switch[0].issuerId, 'bank-a');
  assert.equal(s.issuer.id, 'bank-a');
  assert.equal(s.issuer.transactions.length, 1);
  assert.equal(s.issuer.transactions[0].state, 'approved');
  assert.equal(s.issuer.transactions[0].responseCode, '00');
  assert.equal(s.issuer.transactions[0].authCode, purchase1.authCode);
  const entries = s.issuer.postings as { amountMinor: number }[];
  assert.equal(
    entries.reduce((a, e) => a + e.amountMinor, 0),
    0,
    'double entry',
  );
  assert.ok(entries.some((e) => e.amountMinor === -1234));
  assert.equal(s.issuer.notifications.length, 1);
  // The same by terminal identity, and the text form.
  const byId = await runPosp([
    'txn',
    'show',
    '--dir',
    dir,
    '--terminal',
    'POS00001',
    '--stan',
    purchase1.stan,
    '--date',
    purchase1.localDate,
  ]);
  assert.equal(byId.code, 0, byId.err);
  assert.match(byId.out, new RegExp(`RRN ${purchase1.rrn}`));
  assert.match(byId.out, /POSP: purchase 1234 state answered rc 00/);
  assert.doesNotMatch(byId.out, new RegExp(ok.pan));
});

test('secret scan: no PAN (ASCII or BCD), track data, PIN or clear key in any file of the directory', async () => {
  for (const t of terminals.values()) await t.close();
  terminals.clear();
  await net.close();
  const needles: Needle[] = [
    ...DEMO_CARDS.flatMap((c) => cardNeedles({ pan: c.pan, track2: track2Of(c) })),
    ...clearSecrets.flatMap((s) => keyNeedles(s.label, s.bytes)),
  ];
  // The LMK components are in their custodian files by design (demo only, README.txt): nowhere else.
  for (const f of m.hsm.components) {
    const hex = JSON.parse(readFileSync(f, 'utf8')).component as string;
    needles.push(...keyNeedles(`LMK component ${f}`, Buffer.from(hex, 'hex'), /lmk-component-[0-9]\.json$/));
  }
  const findings = scanDirectory(
    dir,
    needles,
    DEMO_CARDS.map((c) => c.pin),
  );
  assert.deepEqual(findings, []);
  // The scan can fail: the same scan finds a PAN planted in a log.
  const { appendFileSync } = await import('node:fs');
  appendFileSync(join(m.logs, 'planted.log'), `{"pan":"${ok.pan}","pin":"${ok.pin}"}\n`);
  const planted = scanDirectory(dir, needles, [ok.pin]);
  assert.ok(planted.some((f) => f.endsWith('PAN ascii')));
  assert.ok(planted.some((f) => f.includes('PIN 6 digits')));
});
