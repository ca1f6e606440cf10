/**
 * Issue 6 at the switch: a 0420 reversal advice is routed like a 0400 (answered 0430, its MAC in 128 on
 * both legs), and the clearing file of a date written from the journal: one record per financial
 * transaction and type, with the state the switch knows. Real TCP, LocalHsm, SQLite journal; the issuer
 * is a peer (test/peers.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FramedClient } from '@openposp/net';
import { type SwitchClearingRecord, switchClearingDateMs } from '../src/clearing.js';
import { SwitchError } from '../src/errors.js';
import { startSwitch, type SwitchHandle } from '../src/switch.js';
import {
  ACQ_A,
  acquirerKey,
  api,
  type FakeIssuer,
  fakeIssuer,
  framing,
  macOk,
  nextStan,
  PAN_A,
  purchase,
  send,
  SWITCH_ID,
  type Zone,
  zone,
} from './peers.js';

let dir: string;
let zA: Zone;
let z1: Zone;
let iss: FakeIssuer;
let sw: SwitchHandle;
let acq: FramedClient;
const today = new Date().toISOString().slice(0, 10).replaceAll('-', '');
const MMDD = today.slice(4);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'switch-clearing-'));
  zA = await zone('A7');
  z1 = await zone('C8');
  iss = await fakeIssuer(z1);
  sw = await startSwitch({
    institutionId: SWITCH_ID,
    acquirers: [{ id: ACQ_A, zpk: zA.zpk, zak: zA.zak }],
    issuers: [{ id: 'bank-a', host: '127.0.0.1', port: iss.server.port, zpk: z1.zpk, zak: z1.zak }],
    routing: { routes: [{ prefix: '622202', issuer: 'bank-a' }] },
    databasePath: join(dir, 'switch.db'),
    hsm: api,
    timeouts: { issuerMs: 200, reconnectDelayMs: 50, reconnectMaxDelayMs: 200 },
  });
  acq = await FramedClient.connect({ host: '127.0.0.1', port: sw.port, framing, keyOf: acquirerKey });
  for (let i = 0; i < 100 && !sw.links().every((l) => l.connected); i++)
    await new Promise((r) => setTimeout(r, 10));
});

after(async () => {
  await acq.close();
  await sw.close();
  await iss.server.close();
});

const buy = (stan = nextStan()) => {
  const m = purchase(PAN_A, { stan, zpkClear: zA.zpkClear });
  m.set(13, MMDD);
  return m;
};
const reversalOf = (stan: string, mti: string) => {
  const m = purchase(PAN_A, { stan, pin: false });
  m.mti = mti;
  m.set(13, MMDD);
  m.set(39, '98');
  m.set(90, `0200${stan}1125103000${ACQ_A.padStart(11, '0')}${'0'.repeat(11)}`);
  return m;
};

test('a 0420 reversal advice: routed by BIN like a 0400, answered 0430, MAC in 128 on both legs', async () => {
  const stan = nextStan();
  iss.received.length = 0;
  const resp = await send(acq, reversalOf(stan, '0420'), zA.zak);
  assert.equal(resp.mti, '0430');
  assert.equal(resp.get(39), '00');
  assert.ok(await macOk(resp, zA.zak), 'answer MACed under the acquirer ZAK');
  assert.equal((resp.get(128) as Uint8Array).length, 8);
  const fwd = iss.received.at(-1)!;
  assert.equal(fwd.msg.mti, '0420');
  assert.ok(fwd.macOk, 'forwarded with a MAC under the issuer ZAK');
  assert.equal(fwd.msg.get(33), SWITCH_ID);
  const rows = await sw.inquire({ acquirerId: ACQ_A, terminalId: 'T0000001', stan, localDate: MMDD });
  assert.deepEqual(
    rows.map((r) => [r.mti, r.outcome, r.responseCode, r.responseMti]),
    [['0420', 'answered', '00', '0430']],
  );
  // Again (the store and forward retrying): routed again; the issuer is the one that is idempotent.
  assert.equal((await send(acq, reversalOf(stan, '0421'), zA.zak)).get(39), '00');
});

test('clearing file: approved, unknown (issuer silent), refused (A0), reversals; inquiries left out; one record per identity and type', async () => {
  const approved = buy();
  assert.equal((await send(acq, approved, zA.zak)).get(39), '00');
  const again = buy(approved.get(11) as string); // a retransmission of the same identity
  assert.equal((await send(acq, again, zA.zak)).get(39), '00');

  iss.behaviour = 'silent';
  const lost = buy();
  assert.equal((await send(acq, lost, zA.zak)).get(39), '91');
  iss.behaviour = 'approve';
  assert.equal((await send(acq, reversalOf(lost.get(11) as string, '0400'), zA.zak)).get(39), '00');

  const tampered = buy();
  const frame = await (async () => {
    const { macAndPack } = await import('./peers.js');
    const f = await macAndPack(tampered, zA.zak);
    f[f.length - 1]! ^= 0x01;
    return f;
  })();
  const { unpack } = await import('@openposp/iso8583');
  const { spec } = await import('./peers.js');
  assert.equal(unpack(spec, await acq.request(frame, 5000)).get(39), 'A0');

  const inquiry = buy();
  inquiry.set(3, '310000');
  inquiry.unset(4);
  assert.equal((await send(acq, inquiry, zA.zak)).get(39), '00');

  const otherDay = buy();
  otherDay.set(13, MMDD === '0101' ? '0102' : '0101');
  assert.equal((await send(acq, otherDay, zA.zak)).get(39), '00');

  const out = await sw.writeClearingFile(join(dir, 'clearing'), today);
  assert.equal(out.path, join(dir, 'clearing', `clearing-switch-${today}.jsonl`));
  const recs = readFileSync(out.path, 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as SwitchClearingRecord);
  assert.equal(out.records, recs.length);
  const mine = new Set([approved, lost, tampered].map((m) => m.get(11) as string));
  const got = recs
    .filter((r) => mine.has(r.stan))
    .map((r) => [r.stan, r.type, r.state, r.responseCode, r.amountMinor]);
  assert.deepEqual(got, [
    [approved.get(11), 'purchase', 'approved', '00', 12345],
    [lost.get(11), 'purchase', 'unknown', '91', 12345],
    [lost.get(11), 'reversal', 'approved', '00', 12345],
    [tampered.get(11), 'purchase', 'refused', 'A0', 12345],
  ]);
  const first = recs.find((r) => r.stan === approved.get(11))!;
  assert.deepEqual(first, {
    party: 'switch',
    acquirerId: ACQ_A,
    terminalId: 'T0000001',
    stan: approved.get(11),
    localDate: MMDD,
    transmissionTime: '1125103000',
    rrn: approved.get(37),
    type: 'purchase',
    amountMinor: 12345,
    currency: '156',
    responseCode: '00',
    state: 'approved',
    pan: '622202*********0123',
  });
  assert.equal(recs.filter((r) => r.stan === inquiry.get(11)).length, 0, 'inquiry left out');
  assert.equal(recs.filter((r) => r.stan === otherDay.get(11)).length, 0, 'another local date left out');
  assert.ok(!readFileSync(out.path, 'utf8').includes(PAN_A), 'no full PAN in the file');
});

test('a malformed clearing date is SWITCH_CLEARING_INVALID naming it', async () => {
  for (const d of ['2026-11-25', '20260230', '2026112', ''])
    assert.throws(
      () => switchClearingDateMs(d),
      (e: unknown) =>
        e instanceof SwitchError &&
        e.code === 'SWITCH_CLEARING_INVALID' &&
        e.message === 'date: must be a date YYYYMMDD',
    );
  await assert.rejects(sw.writeClearingFile(dir, '20261301'), SwitchError);
});
