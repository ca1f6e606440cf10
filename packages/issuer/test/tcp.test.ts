/**
 * The issuer as a process would run it: `startIssuer` from a JSON config file (accounts file, SQLite
 * file, log file), the switch connecting over TCP (iso87-binary, 2-byte length prefix) with the net
 * package's FramedClient. Purchase, replay, tampered MAC, and a scan of the log and database files.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encryptPinBlock, toHex } from '@openposp/crypto';
import { FramedClient } from '@openposp/net';
import { IssuerError } from '../src/errors.js';
import { type IssuerHandle, loadIssuerConfig, startIssuer, validateIssuerConfig } from '../src/service.js';
import { issuerSpec, unpack, verifyMessageMac } from '../src/wire.js';
import {
  buildRequest,
  CARD,
  CLEAR,
  frameOf,
  hsm,
  KEYS,
  NOW,
  SETTLEMENT,
  tempDir,
  testCards,
} from './fixture.js';

let dir: string;
let handle: IssuerHandle;
let client: FramedClient;
const keyOf = (frame: Uint8Array): string => {
  const m = unpack(issuerSpec(), frame);
  return `${m.get(32)}|${m.get(41)}|${m.get(11)}|${m.get(13)}`;
};

before(async () => {
  dir = tempDir('issuer-tcp-');
  writeFileSync(join(dir, 'cards.json'), JSON.stringify({ cards: testCards() }));
  const fileConfig = {
    listen: { host: '127.0.0.1', port: 0 },
    databasePath: join(dir, 'issuer.db'),
    keys: { zpk: KEYS.zpk, zak: KEYS.zak, panTokenKey: KEYS.panTokenKey },
    settlementAccountId: SETTLEMENT,
    currency: '156',
    hsm: { host: '127.0.0.1', port: 1 },
    accountsFile: join(dir, 'cards.json'),
    logPath: join(dir, 'issuer.log'),
    limits: { maxConnections: 10, hsmTimeoutMs: 2000 },
  };
  writeFileSync(join(dir, 'issuer.json'), JSON.stringify(fileConfig));
  const config = loadIssuerConfig(join(dir, 'issuer.json'));
  // The in-process HSM replaces the host/port one (a config object may carry an HsmApi).
  handle = await startIssuer({ ...config, hsm, now: () => NOW });
  client = await FramedClient.connect({
    host: '127.0.0.1',
    port: handle.port,
    framing: { prefix: 'binary2' },
    keyOf,
  });
});
after(async () => {
  await client.close();
  await handle.close();
});

async function roundTrip(frame: Uint8Array) {
  const out = await client.request(frame, 5000);
  const m = unpack(issuerSpec(), out);
  assert.equal(await verifyMessageMac(hsm, KEYS.zak, m, out), true);
  return m;
}

describe('over TCP', () => {
  test('purchase 00, replay gives the first answer, tampered MAC A0, one debit', async () => {
    const req = () =>
      buildRequest({ stan: '000321', pan: CARD.ibm.pan, pin: CARD.ibm.pin, amountMinor: 4321 });
    const a = await roundTrip(await frameOf(req()));
    assert.equal(a.get(39), '00');
    const b = await roundTrip(await frameOf(req()));
    assert.deepEqual([b.get(38), b.get(39)], [a.get(38), a.get(39)]);
    const tampered = await frameOf(
      buildRequest({ stan: '000322', pan: CARD.ibm.pan, pin: CARD.ibm.pin, amountMinor: 5 }),
    );
    tampered[tampered.length - 1]! ^= 0x80;
    assert.equal((await roundTrip(tampered)).get(39), 'A0');
    const card = (await handle.issuer.card(CARD.ibm.pan))!;
    assert.equal(card.balance.ledgerMinor, 100_000 - 4321);
    const [view] = await handle.issuer.inquire({ rrn: '000000000321' });
    assert.equal(view!.state, 'approved');
    assert.equal(view!.maskedPan, '621234******0019');
    assert.equal(view!.authCode, a.get(38));
  });

  test('void over TCP (secondary bitmap: MAC in field 128)', async () => {
    const m = buildRequest({
      stan: '000323',
      pan: CARD.pvv.pan,
      processingCode: '020000',
      amountMinor: 100,
      original: { stan: '999998', transmissionDt: '1125999998' },
    });
    const r = await roundTrip(await frameOf(m));
    assert.equal(r.get(39), '25');
    assert.ok(r.has(128));
    assert.ok(!r.has(64));
  });

  test('a frame that is not ISO 8583 is dropped; the connection serves the next request', async () => {
    await assert.rejects(client.request(new Uint8Array([1, 2, 3]), 300));
    const ok = await roundTrip(
      await frameOf(
        buildRequest({
          stan: '000324',
          pan: CARD.pvv.pan,
          pin: CARD.pvv.pin,
          processingCode: '310000',
          amountMinor: null,
        }),
      ),
    );
    assert.equal(ok.get(39), '00');
  });

  test('the log and database hold no PAN, PIN block or key', async () => {
    const pinBlock = encryptPinBlock(0, CLEAR.zpk, CARD.ibm.pin, CARD.ibm.pan);
    await handle.store.run('PRAGMA wal_checkpoint(FULL)');
    const log = readFileSync(join(dir, 'issuer.log'), 'utf8');
    assert.match(log, /"event":"txn"/);
    const db = readFileSync(join(dir, 'issuer.db'));
    for (const c of testCards()) {
      assert.ok(!log.includes(c.pan));
      assert.equal(db.indexOf(Buffer.from(c.pan)), -1);
    }
    assert.ok(!log.includes(toHex(pinBlock)));
    assert.equal(db.indexOf(Buffer.from(pinBlock)), -1);
    assert.ok(!log.includes(toHex(CLEAR.zpk)));
  });
});

describe('config', () => {
  const good = () => ({
    listen: { port: 0 },
    databasePath: ':memory:',
    keys: { zpk: KEYS.zpk, zak: KEYS.zak, panTokenKey: KEYS.panTokenKey },
    settlementAccountId: SETTLEMENT,
    hsm: { host: '127.0.0.1', port: 1500 },
  });
  const cases: [string, (c: Record<string, unknown>) => void, string][] = [
    ['no listen', (c) => delete c.listen, 'listen: must be an object { host?, port }'],
    [
      'bad port',
      (c) => ((c.listen as Record<string, unknown>).port = 70000),
      'listen.port: must be an integer 0 to 65535',
    ],
    [
      'zak not a key block',
      (c) => ((c.keys as Record<string, unknown>).zak = '00112233'),
      'keys.zak: must be a key block under the LMK (starting with S)',
    ],
    ['hsm missing', (c) => delete c.hsm, 'hsm: must be an HsmApi object or { host, port, timeoutMs? }'],
    ['currency', (c) => (c.currency = 'CNY'), 'currency: must be 3 digits (ISO 4217)'],
    ['limits', (c) => (c.limits = { hsmTimeoutMs: 0 }), 'limits.hsmTimeoutMs: must be a positive integer'],
    ['unknown property', (c) => (c.zpk = 'x'), 'zpk: unknown property'],
  ];
  for (const [name, edit, message] of cases) {
    test(`${name}: ISSUER_CONFIG_INVALID naming the path`, () => {
      const c = good() as Record<string, unknown>;
      edit(c);
      assert.throws(
        () => validateIssuerConfig(c),
        (e: unknown) => {
          assert.ok(e instanceof IssuerError);
          assert.equal(e.code, 'ISSUER_CONFIG_INVALID');
          assert.equal(e.message, message);
          return true;
        },
      );
    });
  }
  test('a valid config passes', () => {
    assert.equal(validateIssuerConfig(good()).settlementAccountId, SETTLEMENT);
  });
});
