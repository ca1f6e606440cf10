/**
 * Peers of the switch for the tests: the HSM (LocalHsm on the test LMK), zone keys with known clear
 * values (ZMK formed from components, A4; ZPK/ZAK imported from TR-31 under it, FA), an acquirer's
 * request builder and fake issuers built from FramedServer. They compute and check MACs through the HSM
 * with their own MAB code (docs/network.md), not the switch's: peers speaking the protocol, not mocks.
 */
import { adjustOddParity, encryptPinBlock, fromHex, wrapKeyBlock } from '@openposp/crypto';
import { Iso8583Message, loadSpec, startResponse, unpack } from '@openposp/iso8583';
import { type FramedClient, FramedServer } from '@openposp/net';
import { createTestLmk, Hsm, LocalHsm } from '@openposp/hsm';

export const spec = loadSpec('iso87-binary');
export const framing = { prefix: 'binary2' } as const;
export const lmk = createTestLmk({ allowTestLmk: true, warn: () => {} });
// No custodians in a test: A4 of a ZMK is allowed without the authorized state.
export const hsm = new Hsm({ lmk, sensitiveActivities: [] });
export const api = new LocalHsm(hsm);

export const SWITCH_ID = '49990000';
export const ACQ_A = '48020000';
export const ACQ_B = '48030000';
export const PIN = '1234';
export const PAN_A = '6222021234567890123'; // bank-a, 6-digit prefix
export const PAN_B = '6222030012345678'; // bank-b, 8-digit range inside 622203
export const PAN_UNKNOWN = '4111111111111111';
export const PAN_UNCONFIGURED = '6250001234567890'; // routes to bank-z: no link configured
export const PAN_DOWN = '6260001234567890'; // routes to bank-down: configured, never up

const tdesKey = (hex: string) => adjustOddParity(fromHex(hex));

/** A party's zone keys: clear values known to the test, blocks under the LMK via A4 + FA. */
export interface Zone {
  zpkClear: Uint8Array;
  zakClear: Uint8Array;
  zpk: string;
  zak: string;
}

export async function zone(seed: string): Promise<Zone> {
  const c1 = tdesKey(`${seed}1111111111111111${seed}2222222222222222`.slice(0, 32));
  const c2 = tdesKey(`3333333333333333${seed}4444444444444444${seed}`.slice(0, 32));
  const zmk = hsm.formKeyFromComponents({ keyType: 'ZMK', algorithm: 'T', components: [c1, c2] });
  const zmkClear = adjustOddParity(c1.map((b, i) => b ^ c2[i]!));
  const zpkClear = tdesKey(`${seed}0123456789ABCDEFFEDCBA98765432`.slice(0, 32));
  const zakClear = tdesKey(`${seed}89ABCDEF0123456776543210FEDCBA`.slice(0, 32));
  const zpk = await api.importKeyFromZmk({
    kek: zmk.keyBlock,
    tr31: wrapKeyBlock(zmkClear, 'B0000P0TB00E0000', zpkClear),
    keyType: 'ZPK',
  });
  const zak = await api.importKeyFromZmk({
    kek: zmk.keyBlock,
    tr31: wrapKeyBlock(zmkClear, 'B0000M3TC00E0000', zakClear),
    keyType: 'ZAK',
  });
  return { zpkClear, zakClear, zpk: zpk.keyBlock, zak: zak.keyBlock };
}

// --- The peers' own MAC code (docs/network.md "MAC field and input"), independent of the switch's and of
// @openposp/iso8583's: the MAC is the last field, 64 without a secondary bitmap, 128 with one; the MAB is
// the message packed without it, with its bit set in the bitmap. ---

/** 128 when a field above 64 other than the MAC itself is present (a secondary bitmap), else 64. */
export function macFieldIn(m: Iso8583Message): 64 | 128 {
  return m.fieldIds().some((id) => id > 64 && id !== 128) ? 128 : 64;
}

/** MAB: the packed message without its MAC field, the MAC field's bit set in the bitmap. */
export function mabOf(m: Iso8583Message): Uint8Array {
  const field = macFieldIn(m);
  const c = m.clone();
  c.unset(64);
  c.unset(128);
  const out = c.pack().slice();
  // BCD MTI (2 bytes), then the bitmaps: field n is bit n-1 counting from the first bitmap's top bit.
  out[2 + ((field - 1) >> 3)]! |= 0x80 >> ((field - 1) & 7);
  return out;
}

export async function macAndPack(m: Iso8583Message, zak: string): Promise<Uint8Array> {
  const field = macFieldIn(m);
  const mac = await api.generateMac({ key: zak, algorithm: 'iso9797-1-3', padding: 1, data: mabOf(m) });
  m.unset(field === 64 ? 128 : 64);
  m.set(field, mac);
  return m.pack().slice();
}

export async function macOk(m: Iso8583Message, zak: string): Promise<boolean> {
  const field = macFieldIn(m);
  const mac = m.get(field);
  if (!(mac instanceof Uint8Array) || m.has(field === 64 ? 128 : 64)) return false;
  return api.verifyMac({ key: zak, algorithm: 'iso9797-1-3', padding: 1, data: mabOf(m), mac });
}

// --- Fake issuers: FramedServer peers that verify and answer with the HSM. ---

export type Behaviour = 'approve' | 'silent' | 'bad-mac' | 'garbage';

export interface FakeIssuer {
  server: FramedServer;
  zone: Zone;
  behaviour: Behaviour;
  received: { msg: Iso8583Message; macOk: boolean }[];
}

/** A fake issuer on `port` (0: any free port). */
export async function fakeIssuer(z: Zone, port = 0): Promise<FakeIssuer> {
  const me: FakeIssuer = {
    server: undefined as unknown as FramedServer,
    zone: z,
    behaviour: 'approve',
    received: [],
  };
  me.server = await FramedServer.listen({
    port,
    framing,
    handler: async (frame) => {
      const req = unpack(spec, frame);
      const ok = await macOk(req, z.zak);
      me.received.push({ msg: req, macOk: ok });
      if (me.behaviour === 'silent') return null;
      if (me.behaviour === 'garbage') return new Uint8Array([0x02, 0x10, 1, 2, 3]);
      const resp = startResponse(req);
      resp.set(39, ok ? '00' : 'A0');
      if (ok) resp.set(38, 'AB1234');
      const packed = await macAndPack(resp, z.zak);
      if (me.behaviour === 'bad-mac') packed[packed.length - 1]! ^= 0x01;
      return packed;
    },
  });
  return me;
}

// --- The acquirer: a FramedClient to the switch. ---

export function acquirerKey(frame: Uint8Array): string {
  const m = unpack(spec, frame);
  return `${m.mti.slice(0, 2)}|${m.get(41) ?? ''}|${m.get(11) ?? ''}`;
}

let stanCounter = 100;
export function nextStan(): string {
  stanCounter += 1;
  return String(stanCounter).padStart(6, '0');
}

export function purchase(
  pan: string,
  opts: { acquirer?: string; stan?: string; zpkClear?: Uint8Array; pin?: boolean } = {},
) {
  const stan = opts.stan ?? nextStan();
  const m = new Iso8583Message(spec, '0200', {
    2: pan,
    3: '000000',
    4: '000000012345',
    7: '1125103000',
    11: stan,
    12: '103000',
    13: '1125',
    14: '2912',
    22: '021',
    25: '00',
    32: opts.acquirer ?? ACQ_A,
    37: `RRN${stan.padStart(9, '0')}`,
    41: 'T0000001',
    42: 'M00000000000001',
    49: '156',
    53: '2600000000000000',
  });
  if (opts.pin !== false) {
    if (opts.zpkClear === undefined) throw new TypeError('purchase: a PIN block needs zpkClear');
    m.set(52, encryptPinBlock(0, opts.zpkClear, PIN, pan));
  }
  return m;
}

export async function send(client: FramedClient, m: Iso8583Message, zak: string): Promise<Iso8583Message> {
  return unpack(spec, await client.request(await macAndPack(m, zak), 5000));
}
