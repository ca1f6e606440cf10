/**
 * The switch over real TCP on loopback, with the real HSM in process (LocalHsm on the test LMK) and a
 * real SQLite journal. Zone keys are set up as in production: a ZMK formed from two known components
 * (A4), zone keys imported from TR-31 blocks under it (FA), so the test knows the clear ZPKs and can
 * check the translated PIN block with the crypto package. The acquirer and the issuers are peers
 * (test/peers.ts), not mocks of the switch.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decryptPinBlock, fromHex, macX919, tdesEncryptEcb, toHex } from '@openposp/crypto';
import { unpack } from '@openposp/iso8583';
import { createLogger, FramedClient, FramedServer } from '@openposp/net';
import { SwitchError } from '../src/errors.js';
import type { SwitchHandle } from '../src/switch.js';
import { startSwitch } from '../src/switch.js';
import {
  ACQ_A,
  ACQ_B,
  acquirerKey,
  api,
  type FakeIssuer,
  fakeIssuer,
  framing,
  macAndPack,
  mabOf,
  macOk,
  nextStan,
  PAN_A,
  PAN_B,
  PAN_DOWN,
  PAN_UNCONFIGURED,
  PAN_UNKNOWN,
  PIN,
  purchase,
  send,
  spec,
  SWITCH_ID,
  type Zone,
  zone,
} from './peers.js';

let dir: string;
let zA: Zone;
let zB: Zone;
let z1: Zone;
let z2: Zone;
let iss1: FakeIssuer;
let iss2: FakeIssuer;
let sw: SwitchHandle;
let acq: FramedClient;
let logPath: string;
let dbPath: string;
const ISSUER_TIMEOUT_MS = 300;
const buy = (pan: string, opts: Parameters<typeof purchase>[1] = {}) =>
  purchase(pan, { zpkClear: zA.zpkClear, ...opts });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'switch-'));
  zA = await zone('A1');
  zB = await zone('B2');
  z1 = await zone('C3');
  z2 = await zone('D4');
  iss1 = await fakeIssuer(z1);
  iss2 = await fakeIssuer(z2);
  // A port with nothing behind it: listen, note the port, close.
  const gone = await FramedServer.listen({ framing, handler: async () => null });
  const downPort = gone.port;
  await gone.close();
  logPath = join(dir, 'switch.log');
  dbPath = join(dir, 'switch.db');
  sw = await startSwitch({
    institutionId: SWITCH_ID,
    acquirers: [
      { id: ACQ_A, zpk: zA.zpk, zak: zA.zak },
      { id: ACQ_B, zpk: zB.zpk, zak: zB.zak },
    ],
    issuers: [
      { id: 'bank-a', host: '127.0.0.1', port: iss1.server.port, zpk: z1.zpk, zak: z1.zak },
      { id: 'bank-b', host: '127.0.0.1', port: iss2.server.port, zpk: z2.zpk, zak: z2.zak },
      { id: 'bank-down', host: '127.0.0.1', port: downPort, zpk: z2.zpk, zak: z2.zak },
    ],
    routing: {
      routes: [
        { prefix: '622202', issuer: 'bank-a' },
        { prefix: '622203', issuer: 'bank-a' },
        { low: '62220300', high: '62220309', issuer: 'bank-b' },
        { prefix: '625000', issuer: 'bank-z' },
        { prefix: '626000', issuer: 'bank-down' },
      ],
    },
    databasePath: dbPath,
    hsm: api,
    timeouts: { issuerMs: ISSUER_TIMEOUT_MS, reconnectDelayMs: 50, reconnectMaxDelayMs: 200 },
    log: createLogger({ service: 'switch', path: logPath }),
  });
  acq = await FramedClient.connect({ host: '127.0.0.1', port: sw.port, framing, keyOf: acquirerKey });
  // The issuer links connect in the background.
  for (
    let i = 0;
    i < 100 &&
    !sw
      .links()
      .filter((l) => l.id !== 'bank-down')
      .every((l) => l.connected);
    i++
  )
    await new Promise((r) => setTimeout(r, 10));
});

after(async () => {
  await acq.close();
  await sw.close();
  await iss1.server.close();
  await iss2.server.close();
});

describe('switch over TCP', () => {
  test('the test MAC is X9.19 (cross-check of the HSM against the crypto package)', async () => {
    const m = buy(PAN_A);
    await macAndPack(m, zA.zak);
    assert.equal(toHex(m.get(64) as Uint8Array), toHex(macX919(zA.zakClear, mabOf(m))));
  });

  test('purchase: routed by BIN, PIN translated to the issuer zone, field 33 set, MACs regenerated', async () => {
    iss1.received.length = 0;
    const req = buy(PAN_A);
    const pinBlockIn = req.get(52) as Uint8Array;
    const resp = await send(acq, req, zA.zak);
    assert.equal(resp.mti, '0210');
    assert.equal(resp.get(39), '00');
    assert.equal(resp.get(38), 'AB1234');
    assert.equal(resp.get(11), req.get(11));
    assert.ok(await macOk(resp, zA.zak), 'answer MACed under the acquirer ZAK');
    assert.equal(await macOk(resp, z1.zak), false, 'not under the issuer ZAK');
    assert.equal(resp.get(52), undefined);

    assert.equal(iss1.received.length, 1);
    const fwd = iss1.received[0]!;
    assert.ok(fwd.macOk, 'forwarded request MACed under the issuer ZAK');
    assert.equal(fwd.msg.get(33), SWITCH_ID);
    assert.equal(fwd.msg.get(32), ACQ_A);
    assert.equal(fwd.msg.get(2), PAN_A);
    const pinBlockOut = fwd.msg.get(52) as Uint8Array;
    assert.notEqual(toHex(pinBlockOut), toHex(pinBlockIn));
    assert.equal(decryptPinBlock(0, z1.zpkClear, pinBlockOut, PAN_A), PIN);
  });

  test('longest match: a PAN in the 8-digit range inside 622203 goes to bank-b', async () => {
    iss1.received.length = 0;
    iss2.received.length = 0;
    const resp = await send(acq, buy(PAN_B), zA.zak);
    assert.equal(resp.get(39), '00');
    assert.equal(iss1.received.length, 0);
    assert.equal(iss2.received.length, 1);
    assert.equal(decryptPinBlock(0, z2.zpkClear, iss2.received[0]!.msg.get(52) as Uint8Array, PAN_B), PIN);
    // One digit outside the range: the 6-digit prefix, bank-a.
    const resp2 = await send(acq, buy('6222031012345678'), zA.zak);
    assert.equal(resp2.get(39), '00');
    assert.equal(iss1.received.length, 1);
  });

  test('a request without a PIN block (balance inquiry) is forwarded as is', async () => {
    const m = buy(PAN_A, { pin: false });
    m.set(3, '310000');
    const resp = await send(acq, m, zA.zak);
    assert.equal(resp.get(39), '00');
    assert.equal(iss1.received.at(-1)!.msg.get(52), undefined);
  });

  test('unknown BIN: 14, MACed, nothing sent', async () => {
    const before = iss1.received.length + iss2.received.length;
    const resp = await send(acq, buy(PAN_UNKNOWN), zA.zak);
    assert.equal(resp.get(39), '14');
    assert.equal(resp.get(33), SWITCH_ID);
    assert.ok(await macOk(resp, zA.zak));
    assert.equal(iss1.received.length + iss2.received.length, before);
  });

  test('BIN known, issuer link not configured: 15', async () => {
    const resp = await send(acq, buy(PAN_UNCONFIGURED), zA.zak);
    assert.equal(resp.get(39), '15');
    assert.ok(await macOk(resp, zA.zak));
  });

  test('BIN known, issuer link configured but not connected: 91 (inoperative) at once', async () => {
    const t0 = Date.now();
    const resp = await send(acq, buy(PAN_DOWN), zA.zak);
    assert.equal(resp.get(39), '91');
    assert.ok(Date.now() - t0 < ISSUER_TIMEOUT_MS, 'no wait: nothing was sent');
  });

  test('issuer does not answer: 91 from the switch within the bound, MACed', async () => {
    iss1.behaviour = 'silent';
    try {
      const t0 = Date.now();
      const resp = await send(acq, buy(PAN_A), zA.zak);
      const elapsed = Date.now() - t0;
      assert.equal(resp.get(39), '91');
      assert.ok(await macOk(resp, zA.zak));
      assert.ok(elapsed >= ISSUER_TIMEOUT_MS - 5, `waited ${elapsed} ms`);
      assert.ok(elapsed < ISSUER_TIMEOUT_MS + 500, `answered after ${elapsed} ms`);
      const rows = await sw.inquire({ rrn: resp.get(37) as string });
      assert.equal(rows.at(-1)!.outcome, 'issuer_timeout');
    } finally {
      iss1.behaviour = 'approve';
    }
  });

  test('issuer answer whose MAC fails: treated as no answer, 91', async () => {
    iss1.behaviour = 'bad-mac';
    try {
      const resp = await send(acq, buy(PAN_A), zA.zak);
      assert.equal(resp.get(39), '91');
      assert.ok(await macOk(resp, zA.zak));
      const rows = await sw.inquire({ rrn: resp.get(37) as string });
      assert.equal(rows.at(-1)!.outcome, 'issuer_mac_failed');
      assert.notEqual(rows.at(-1)!.forwardedAtMs, null, 'the journal shows it was sent');
    } finally {
      iss1.behaviour = 'approve';
    }
  });

  test('issuer answer that does not unpack: 91 (issuer_malformed) or timeout, never a crash', async () => {
    iss1.behaviour = 'garbage';
    try {
      const resp = await send(acq, buy(PAN_A), zA.zak);
      assert.equal(resp.get(39), '91');
    } finally {
      iss1.behaviour = 'approve';
    }
  });

  test("request MAC tampered: A0 under the acquirer's ZAK, nothing forwarded", async () => {
    const before = iss1.received.length;
    const m = buy(PAN_A);
    const packed = await macAndPack(m, zA.zak);
    // Flip one bit of the amount (field 4) after the MAC was computed.
    const i = packed.indexOf(0x23); // "...012345": the BCD byte 0x23 of the amount
    packed[i]! ^= 0x01;
    const resp = unpack(spec, await acq.request(packed, 5000));
    assert.equal(resp.get(39), 'A0');
    assert.ok(await macOk(resp, zA.zak));
    assert.equal(iss1.received.length, before);
    const rows = await sw.inquire({ rrn: m.get(37) as string });
    assert.equal(rows.at(-1)!.outcome, 'mac_failed');
  });

  test('request without a MAC: A0', async () => {
    const m = buy(PAN_A);
    const resp = unpack(spec, await acq.request(m.pack().slice(), 5000));
    assert.equal(resp.get(39), 'A0');
    assert.equal((await sw.inquire({ rrn: m.get(37) as string })).at(-1)!.outcome, 'mac_missing');
  });

  test('request MACed under another key than its acquirer: A0', async () => {
    const resp = await send(acq, buy(PAN_A), zB.zak);
    assert.equal(resp.get(39), 'A0');
  });

  test('unknown acquirer (field 32): A0 without a MAC', async () => {
    const resp = await send(acq, buy(PAN_A, { acquirer: '11111111' }), zA.zak);
    assert.equal(resp.get(39), 'A0');
    assert.equal(resp.get(64), undefined);
  });

  test('a connection is bound to its first authenticated acquirer: another field 32 on it is refused A0', async () => {
    const c = await FramedClient.connect({ host: '127.0.0.1', port: sw.port, framing, keyOf: acquirerKey });
    try {
      assert.equal(
        (await send(c, buy(PAN_A, { acquirer: ACQ_B, zpkClear: zB.zpkClear }), zB.zak)).get(39),
        '00',
      );
      const r = await send(c, buy(PAN_A), zA.zak);
      assert.equal(r.get(39), 'A0');
      assert.equal(r.get(64), undefined);
      assert.equal((await sw.inquire({ rrn: r.get(37) as string })).at(-1)!.outcome, 'acquirer_mismatch');
      // Acquirer B's PIN came through its own zone key.
      const fwd = iss1.received.at(-1)!.msg;
      assert.equal(fwd.get(32), ACQ_B);
    } finally {
      await c.close();
    }
  });

  test('missing STAN (field 11): 30, MACed', async () => {
    const m = buy(PAN_A);
    m.unset(11);
    const resp = await send(acq, m, zA.zak);
    assert.equal(resp.get(39), '30');
    assert.ok(await macOk(resp, zA.zak));
  });

  test('a PIN block that does not decode under the acquirer ZPK: 30 (pin_invalid), not forwarded', async () => {
    const before = iss1.received.length;
    const m = buy(PAN_A);
    m.set(52, tdesEncryptEcb(zA.zpkClear, fromHex('F41234FFFFFFFFFF'))); // control field F: no ISO format
    const resp = await send(acq, m, zA.zak);
    assert.equal(resp.get(39), '30');
    assert.equal(iss1.received.length, before);
    assert.equal((await sw.inquire({ rrn: m.get(37) as string })).at(-1)!.outcome, 'pin_invalid');
  });

  test('a reversal (0400, field 90): routed by BIN, its MAC in field 128 on both legs and covering 90', async () => {
    const stan = nextStan();
    const m = buy(PAN_A, { stan, pin: false });
    m.mti = '0400';
    m.set(39, '98');
    m.set(90, `0200${stan}1125103000${ACQ_A.padStart(11, '0')}${'0'.repeat(11)}`);
    const resp = await send(acq, m, zA.zak);
    assert.ok(m.get(128) instanceof Uint8Array, 'the acquirer side put its MAC in 128');
    assert.equal(resp.mti, '0410');
    assert.equal(resp.get(39), '00');
    assert.ok(await macOk(resp, zA.zak));
    assert.equal((resp.get(128) as Uint8Array).length, 8, 'the answer (echoing 90) carries its MAC in 128');
    assert.equal(resp.get(64), undefined);
    const fwd = iss1.received.at(-1)!;
    assert.equal(fwd.msg.mti, '0400');
    assert.ok(fwd.macOk);
    assert.equal(fwd.msg.get(90), m.get(90));
    assert.equal((fwd.msg.get(128) as Uint8Array).length, 8, 'forwarded with its MAC in 128');
    assert.equal(fwd.msg.get(64), undefined);
    assert.notEqual(
      toHex(fwd.msg.get(128) as Uint8Array),
      toHex(m.get(128) as Uint8Array),
      'a new MAC, issuer ZAK',
    );

    // The MAC in 64 beside field 90 (the old reading): not the last field, so missing: A0.
    const old = buy(PAN_A, { pin: false });
    old.mti = '0400';
    old.set(90, `0200${stan}1125103000${ACQ_A.padStart(11, '0')}${'0'.repeat(11)}`);
    const oldMab = mabOf(old);
    oldMab[2 + 15]! &= ~0x01; // bit 128 off ...
    oldMab[2 + 7]! |= 0x01; // ... bit 64 on: the MAB of the old reading
    old.set(64, await api.generateMac({ key: zA.zak, algorithm: 'iso9797-1-3', padding: 1, data: oldMab }));
    const respOld = unpack(spec, await acq.request(old.pack().slice(), 5000));
    assert.equal(respOld.get(39), 'A0');
    assert.equal((await sw.inquire({ rrn: old.get(37) as string })).at(-1)!.outcome, 'mac_missing');

    // Field 90 altered after the MAC: A0.
    const m2 = buy(PAN_A, { pin: false });
    m2.mti = '0400';
    m2.set(90, `0200${stan}1125103000${ACQ_A.padStart(11, '0')}${'0'.repeat(11)}`);
    const packed = await macAndPack(m2, zA.zak);
    const tampered = unpack(spec, packed);
    tampered.set(90, `0200${stan}1125103001${ACQ_A.padStart(11, '0')}${'0'.repeat(11)}`);
    const resp2 = unpack(spec, await acq.request(tampered.pack().slice(), 5000));
    assert.equal(resp2.get(39), 'A0');
  });

  test('an unreadable frame is dropped and the connection keeps working', async () => {
    const c = await FramedClient.connect({
      host: '127.0.0.1',
      port: sw.port,
      framing,
      keyOf: (f) => (f.length < 4 ? 'garbage' : acquirerKey(f)),
    });
    try {
      await assert.rejects(c.request(new Uint8Array([0xff, 0xff, 0x00]), 200), { code: 'NET_TIMEOUT' });
      assert.equal((await send(c, buy(PAN_A), zA.zak)).get(39), '00');
    } finally {
      await c.close();
    }
  });

  test('journal: each request and answer by identity and by RRN, masked PAN, amount, route, codes, times', async () => {
    const stan = nextStan();
    const m = buy(PAN_B, { stan });
    const resp = await send(acq, m, zA.zak);
    const byRrn = await sw.inquire({ rrn: m.get(37) as string });
    const byId = await sw.inquire({ acquirerId: ACQ_A, terminalId: 'T0000001', stan, localDate: '1125' });
    assert.equal(byRrn.length, 1);
    assert.deepEqual(byId, byRrn);
    const row = byRrn[0]!;
    assert.equal(row.mti, '0200');
    assert.equal(row.processingCode, '000000');
    assert.equal(row.acquirerId, ACQ_A);
    assert.equal(row.terminalId, 'T0000001');
    assert.equal(row.merchantId, 'M00000000000001');
    assert.equal(row.stan, stan);
    assert.equal(row.localDate, '1125');
    assert.equal(row.panMasked, '622203******5678');
    assert.equal(row.amountMinor, 12345);
    assert.equal(row.currency, '156');
    assert.equal(row.hasPin, true);
    assert.equal(row.issuerId, 'bank-b');
    assert.equal(row.binEntry, 'routes[2]');
    assert.equal(row.forwardingId, SWITCH_ID);
    assert.equal(row.responseMti, '0210');
    assert.equal(row.responseCode, resp.get(39));
    assert.equal(row.authCode, 'AB1234');
    assert.equal(row.outcome, 'answered');
    assert.ok(row.forwardedAtMs! >= row.receivedAtMs);
    assert.ok(row.answeredAtMs! >= row.forwardedAtMs!);
    assert.equal(row.durationMs, row.answeredAtMs! - row.receivedAtMs);
  });

  test('no full PAN, PIN block or key in the log or the database', async () => {
    const m = buy(PAN_A);
    const pinBlock = toHex(m.get(52) as Uint8Array);
    await send(acq, m, zA.zak);
    const translated = toHex(iss1.received.at(-1)!.msg.get(52) as Uint8Array);
    const files = [
      logPath,
      ...readdirSync(dir)
        .filter((f) => f.startsWith('switch.db'))
        .map((f) => join(dir, f)),
    ];
    const log = readFileSync(logPath, 'latin1');
    assert.match(log, /"event":"request"/);
    assert.match(log, /622202\*{9}0123/);
    for (const f of files) {
      const bytes = readFileSync(f);
      const asText = bytes.toString('latin1');
      for (const pan of [PAN_A, PAN_B, PAN_UNKNOWN, PAN_DOWN]) {
        assert.ok(!asText.includes(pan), `${f} holds a full PAN`);
        // BCD form, as field 2 packs it
        assert.ok(
          !bytes.includes(Buffer.from(fromHex(pan.length % 2 ? `${pan}0` : pan))),
          `${f} holds a BCD PAN`,
        );
      }
      for (const pb of [pinBlock, translated]) {
        assert.ok(!asText.toUpperCase().includes(pb), `${f} holds a PIN block (hex)`);
        assert.ok(!bytes.includes(Buffer.from(fromHex(pb))), `${f} holds a PIN block (bytes)`);
      }
      for (const z of [zA, zB, z1, z2]) {
        for (const k of [z.zpkClear, z.zakClear]) {
          assert.ok(!asText.toUpperCase().includes(toHex(k)), `${f} holds a clear key`);
        }
        assert.ok(!asText.includes(z.zpk) && !asText.includes(z.zak), `${f} holds a key block`);
      }
    }
  });
});

describe('startSwitch refuses a bad start', () => {
  const baseCfg = () => ({
    institutionId: SWITCH_ID,
    acquirers: [{ id: ACQ_A, zpk: zA.zpk, zak: zA.zak }],
    issuers: [],
    routing: { routes: [{ prefix: '622202', issuer: 'bank-a' }] },
    databasePath: ':memory:',
    hsm: api,
    log: createLogger({ service: 'switch' }),
  });

  test('overlapping routes: SWITCH_ROUTING_OVERLAP naming the entry', async () => {
    const cfg = {
      ...baseCfg(),
      routing: {
        routes: [
          { prefix: '622202', issuer: 'a' },
          { low: '622200', high: '622209', issuer: 'b' },
        ],
      },
    };
    await assert.rejects(startSwitch(cfg), (e: unknown) => {
      assert.ok(e instanceof SwitchError);
      assert.equal(e.code, 'SWITCH_ROUTING_OVERLAP');
      assert.equal(
        e.message,
        'routes[1]: routes[1] (622200..622209) overlaps routes[0] (prefix 622202): both are 6 digits',
      );
      return true;
    });
  });

  test('a key block the HSM refuses: SWITCH_CONFIG_INVALID naming it', async () => {
    const tampered = `${zA.zak.slice(0, -1)}${zA.zak.endsWith('0') ? '1' : '0'}`;
    const cfg = { ...baseCfg(), acquirers: [{ id: ACQ_A, zpk: zA.zpk, zak: tampered }] };
    await assert.rejects(startSwitch(cfg), (e: unknown) => {
      assert.ok(e instanceof SwitchError);
      assert.equal(e.code, 'SWITCH_CONFIG_INVALID');
      assert.equal(e.message, 'config.acquirers[0].zak: the HSM refuses this key block (HSM_KEYBLOCK_MAC)');
      return true;
    });
  });
});
