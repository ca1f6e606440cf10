/**
 * The switch's bounds and its links under faults, over real TCP: the in-flight limit of an issuer link
 * (91 without sending), a duplicate identity in flight (94), a slow HSM (96 within the HSM bound), an
 * issuer that goes away and comes back (15, then 00 after the reconnect), and the HSM reached over TCP
 * (`hsm: { host, port }`, HsmClient against the real HSM server).
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decryptPinBlock } from '@openposp/crypto';
import { createLogger, FramedClient } from '@openposp/net';
import { HsmServer, registerHsmCommands } from '@openposp/hsm';
import type { SwitchHsm } from '../src/hsm.js';
import { type SwitchConfig, startSwitch } from '../src/index.js';
import {
  ACQ_A,
  acquirerKey,
  api,
  type FakeIssuer,
  fakeIssuer,
  framing,
  hsm,
  nextStan,
  PAN_A,
  PIN,
  purchase,
  send,
  SWITCH_ID,
  type Zone,
  zone,
} from './peers.js';

let zA: Zone;
let z1: Zone;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'switch-limits-'));
  zA = await zone('A1');
  z1 = await zone('C3');
});

function config(issuerPort: number, extra: Partial<SwitchConfig> = {}): SwitchConfig {
  return {
    institutionId: SWITCH_ID,
    acquirers: [{ id: ACQ_A, zpk: zA.zpk, zak: zA.zak }],
    issuers: [{ id: 'bank-a', host: '127.0.0.1', port: issuerPort, zpk: z1.zpk, zak: z1.zak }],
    routing: { routes: [{ prefix: '622202', issuer: 'bank-a' }] },
    databasePath: join(dir, `switch-${Math.random().toString(36).slice(2)}.db`),
    hsm: api,
    timeouts: { issuerMs: 250, reconnectDelayMs: 20, reconnectMaxDelayMs: 50 },
    log: createLogger({ service: 'switch' }),
    ...extra,
  };
}

async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const connect = (port: number) =>
  FramedClient.connect({ host: '127.0.0.1', port, framing, keyOf: acquirerKey });
const buy = (pan: string, opts: Parameters<typeof purchase>[1] = {}) =>
  purchase(pan, { zpkClear: zA.zpkClear, ...opts });

describe('switch limits and link faults', () => {
  let iss: FakeIssuer;
  before(async () => {
    iss = await fakeIssuer(z1);
  });
  after(async () => {
    await iss.server.close();
  });

  test('issuer link at its in-flight limit: 91 at once (issuer_busy), nothing sent', async () => {
    iss.behaviour = 'silent';
    const sw = await startSwitch(config(iss.server.port, { limits: { maxInFlightPerLink: 1 } }));
    const [c1, c2] = [await connect(sw.port), await connect(sw.port)];
    try {
      await waitFor(() => sw.links()[0]!.connected);
      const sent = iss.received.length;
      const first = send(c1, buy(PAN_A), zA.zak);
      await waitFor(() => iss.received.length === sent + 1);
      const t0 = Date.now();
      const second = await send(c2, buy(PAN_A), zA.zak);
      assert.equal(second.get(39), '91');
      assert.ok(Date.now() - t0 < 200, 'not held until the first times out');
      assert.equal((await sw.inquire({ rrn: second.get(37) as string }))[0]!.outcome, 'issuer_busy');
      assert.equal((await first).get(39), '91');
      assert.equal(iss.received.length, sent + 1);
    } finally {
      iss.behaviour = 'approve';
      await c1.close();
      await c2.close();
      await sw.close();
    }
  });

  test('the same identity while the first is still in flight: 94 (duplicate_in_flight)', async () => {
    iss.behaviour = 'silent';
    const sw = await startSwitch(config(iss.server.port));
    const [c1, c2] = [await connect(sw.port), await connect(sw.port)];
    try {
      await waitFor(() => sw.links()[0]!.connected);
      const stan = nextStan();
      const sent = iss.received.length;
      const first = send(c1, buy(PAN_A, { stan }), zA.zak);
      await waitFor(() => iss.received.length === sent + 1);
      const dup = await send(c2, buy(PAN_A, { stan }), zA.zak);
      assert.equal(dup.get(39), '94');
      assert.equal((await first).get(39), '91');
      const rows = await sw.inquire({ acquirerId: ACQ_A, terminalId: 'T0000001', stan, localDate: '1125' });
      assert.deepEqual(rows.map((r) => r.outcome).sort(), ['duplicate_in_flight', 'issuer_timeout']);
    } finally {
      iss.behaviour = 'approve';
      await c1.close();
      await c2.close();
      await sw.close();
    }
  });

  test('an HSM slower than the HSM timeout: 96 within the bound (hsm_failed)', async () => {
    const slow: SwitchHsm = {
      keyCheckValue: (b) => api.keyCheckValue(b),
      translatePinZpkToZpk: (r) => api.translatePinZpkToZpk(r),
      generateMac: (r) => api.generateMac(r),
      verifyMac: (r) => new Promise((res) => setTimeout(() => res(api.verifyMac(r)), 300)),
    };
    const sw = await startSwitch(config(iss.server.port, { hsm: slow, timeouts: { hsmMs: 50 } }));
    const c = await connect(sw.port);
    try {
      const t0 = Date.now();
      const r = await send(c, buy(PAN_A), zA.zak);
      assert.equal(r.get(39), '96');
      assert.ok(Date.now() - t0 < 250, `answered after ${Date.now() - t0} ms`);
      assert.equal((await sw.inquire({ rrn: r.get(37) as string }))[0]!.outcome, 'hsm_failed');
    } finally {
      await c.close();
      await sw.close();
    }
  });

  test('an issuer that goes away: 91 while it is down, 00 again after the reconnect', async () => {
    const own = await fakeIssuer(z1);
    const port = own.server.port;
    const sw = await startSwitch(config(port));
    const c = await connect(sw.port);
    let back: FakeIssuer | undefined;
    try {
      await waitFor(() => sw.links()[0]!.connected);
      assert.equal((await send(c, buy(PAN_A), zA.zak)).get(39), '00');
      await own.server.close();
      await waitFor(() => !sw.links()[0]!.connected);
      assert.equal((await send(c, buy(PAN_A), zA.zak)).get(39), '91');
      // The same port again (the issuer restarted).
      back = await fakeIssuer(z1, port);
      await waitFor(() => sw.links()[0]!.connected, 3000);
      assert.equal((await send(c, buy(PAN_A), zA.zak)).get(39), '00');
    } finally {
      await c.close();
      await sw.close();
      await back?.server.close();
    }
  });

  test('HSM over TCP (hsm: { host, port }): a purchase goes through, PIN translated', async () => {
    const hsmServer = registerHsmCommands(new HsmServer(), hsm);
    const { port: hsmPort } = await hsmServer.listen(0);
    const sw = await startSwitch(config(iss.server.port, { hsm: { host: '127.0.0.1', port: hsmPort } }));
    const c = await connect(sw.port);
    try {
      await waitFor(() => sw.links()[0]!.connected);
      const r = await send(c, buy(PAN_A), zA.zak);
      assert.equal(r.get(39), '00');
      const fwd = iss.received.at(-1)!;
      assert.ok(fwd.macOk);
      assert.equal(decryptPinBlock(0, z1.zpkClear, fwd.msg.get(52) as Uint8Array, PAN_A), PIN);
    } finally {
      await c.close();
      await sw.close();
      await hsmServer.close();
    }
  });
});
