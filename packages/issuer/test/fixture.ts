/**
 * Test fixture: a real HSM in process (LocalHsm over an Hsm with the test LMK), keys under it whose
 * clear values the test knows (the test plays the switch: it builds PIN blocks under the zone ZPK and
 * MACs under the zone ZAK as the switch's HSM would), real SQLite files in a temp dir (or PostgreSQL).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  adjustOddParity,
  encryptPinBlock,
  fromHex,
  generateOffsetIbm3624,
  generatePvvVisa,
  selectValidationDataIbm3624,
} from '@openposp/crypto';
import { createTestLmk, Hsm, type KeyAttributes, LocalHsm } from '@openposp/hsm';
import { Iso8583Message, pack } from '@openposp/iso8583';
import { openStore, type Store } from '@openposp/store';
import type { CardInput } from '../src/cards.js';
import { Issuer, type IssuerRequest } from '../src/issuer.js';
import { ISSUER_MIGRATIONS } from '../src/migrations.js';
import { issuerSpec, packWithMac } from '../src/wire.js';

export const lmk = createTestLmk({ allowTestLmk: true, warn: () => {} });
export const hsm = new LocalHsm(new Hsm({ lmk }));

const attrs = (usage: KeyAttributes['usage'], modeOfUse: KeyAttributes['modeOfUse']): KeyAttributes => ({
  usage,
  algorithm: 'T',
  modeOfUse,
  keyVersion: '00',
  exportability: 'E',
});
const tdes = (hex: string) => adjustOddParity(fromHex(hex));

export const CLEAR = {
  zpk: tdes('89ABCDEF0123456776543210FEDCBA98'),
  tpk: tdes('0123456789ABCDEFFEDCBA9876543210'),
  pvkIbm: tdes('0123456789ABCDEF0123456789ABCDEF'),
  pvkVisa: tdes('0123456789ABCDEFFEDCBA9876543210'),
  /** The zone ZAK shared with the switch (to check the MAC independently of the HSM). */
  zak: tdes('4C4C4C4C4C4C4C4C5D5D5D5D5D5D5D5D'),
};
export const KEYS = {
  zpk: lmk.wrapKey(CLEAR.zpk, attrs('P0', 'B')),
  zpkOther: lmk.wrapKey(tdes('1111222233334444555566667777AAAA'), attrs('P0', 'B')),
  zak: lmk.wrapKey(CLEAR.zak, attrs('M3', 'C')),
  zakOther: lmk.wrapKey(tdes('6E6E6E6E6E6E6E6E7F7F7F7F7F7F7F7F'), attrs('M3', 'C')),
  panTokenKey: lmk.wrapKey(tdes('2A2A2A2A2A2A2A2A3B3B3B3B3B3B3B3B'), attrs('M3', 'C')),
  /** The enrolment PIN pad's TPK. */
  tpk: lmk.wrapKey(CLEAR.tpk, attrs('P0', 'B')),
  pvkIbm: lmk.wrapKey(CLEAR.pvkIbm, attrs('V1', 'C')),
  pvkVisa: lmk.wrapKey(CLEAR.pvkVisa, attrs('V2', 'C')),
};

export const NOW = new Date('2026-11-25T10:00:00Z');
export const DECTAB = '0123456789012345';
export const ACQ = '48020000';
export const SETTLEMENT = 'clearing-switch';

/** Field 90 of a reversal, void or refund of `r` (a 0200 from acquirer ACQ, no forwarding institution). */
export function originalOf(r: IssuerRequest) {
  return {
    mti: '0200',
    stan: r.identity.stan,
    transmissionDt: r.transmissionDt!,
    acquirerId: ACQ.padStart(11, '0'),
    forwardingId: '0'.repeat(11),
    raw: `0200${r.identity.stan}${r.transmissionDt}${ACQ.padStart(11, '0')}${'0'.repeat(11)}`,
  };
}

/** Test cards: PAN (Luhn valid), PIN, and how its verification data was made. */
export const CARD = {
  ibm: { pan: '6212340000000019', pin: '4729' },
  pvv: { pan: '6212340000000027', pin: '1357' },
  expired: { pan: '6212340000000035', pin: '4729' },
  blocked: { pan: '6212340000000043', pin: '4729' },
  atm: { pan: '6212340000000050', pin: '4729' },
  unknown: { pan: '6212340000000068', pin: '4729' },
};

const RULE = { panLength: 12, pad: 'F' };

/** The IBM 3624 offset as a card-issuing system with the clear PVK would compute it (test setup only). */
export function offsetFor(pan: string, pin: string): string {
  const vd = selectValidationDataIbm3624(pan, { offset: pan.length - 13, length: 12, pad: 'F' });
  return generateOffsetIbm3624(CLEAR.pvkIbm, DECTAB, vd, pin);
}

export function ibmCard(pan: string, pin: string, extra: Partial<CardInput> = {}): CardInput {
  return {
    pan,
    expiry: '2812',
    serviceCode: '220',
    limitMinor: 500_000,
    balanceMinor: 100_000,
    pin: {
      method: 'ibm3624',
      pvk: KEYS.pvkIbm,
      decimalisationTable: DECTAB,
      validationData: RULE,
      offset: offsetFor(pan, pin),
    },
    ...extra,
  };
}

export function testCards(): CardInput[] {
  return [
    ibmCard(CARD.ibm.pan, CARD.ibm.pin),
    {
      pan: CARD.pvv.pan,
      expiry: '2812',
      serviceCode: '220',
      limitMinor: 500_000,
      balanceMinor: 50_000,
      pin: {
        method: 'pvv',
        pvk: KEYS.pvkVisa,
        pvki: '1',
        pvv: generatePvvVisa(CLEAR.pvkVisa, '1', CARD.pvv.pin, CARD.pvv.pan),
      },
    },
    ibmCard(CARD.expired.pan, CARD.expired.pin, { expiry: '2510' }),
    ibmCard(CARD.blocked.pan, CARD.blocked.pin, { status: 'blocked' }),
    ibmCard(CARD.atm.pan, CARD.atm.pin, { serviceCode: '223' }),
  ];
}

export function tempDir(prefix = 'issuer-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The issuer over a SQLite file or a postgres:// URL (`@openposp/store/testing` targets). */
export async function openIssuer(dbPath: string, opts: { now?: () => Date } = {}) {
  const store = await openStore(dbPath, { migrations: ISSUER_MIGRATIONS });
  const issuer = await issuerOn(store, opts);
  return { store, issuer };
}

/** The test issuer (these keys, this clearing account, the fixed clock) on an open store. */
export function issuerOn(store: Store, opts: { now?: () => Date } = {}): Promise<Issuer> {
  return Issuer.open({
    store,
    hsm,
    zpk: KEYS.zpk,
    zak: KEYS.zak,
    panTokenKey: KEYS.panTokenKey,
    settlementAccountId: SETTLEMENT,
    now: opts.now ?? (() => NOW),
  });
}

/** A PIN block as the switch forwards it: ISO 9564-1 format 0 under the zone ZPK. */
export function pinBlockZpk(pin: string, pan: string): Uint8Array {
  return encryptPinBlock(0, CLEAR.zpk, pin, pan);
}

export interface MsgOpts {
  mti?: string;
  pan: string;
  pin?: string | null;
  processingCode?: string;
  amountMinor?: number | null;
  stan: string;
  localDate?: string;
  terminal?: string;
  acquirer?: string;
  rrn?: string;
  transmissionDt?: string;
  expiry?: string;
  original?: { stan: string; transmissionDt: string; mti?: string; acquirer?: string };
}

/** A switch→issuer request, without its MAC. */
export function buildRequest(o: MsgOpts): Iso8583Message {
  const m = new Iso8583Message(issuerSpec(), o.mti ?? '0200');
  m.set(2, o.pan);
  m.set(3, o.processingCode ?? '000000');
  if (o.amountMinor !== null) m.set(4, String(o.amountMinor ?? 1234).padStart(12, '0'));
  m.set(7, o.transmissionDt ?? `1125${o.stan.slice(0, 6)}`.slice(0, 10));
  m.set(11, o.stan);
  m.set(12, '100000');
  m.set(13, o.localDate ?? '1125');
  if (o.expiry !== undefined) m.set(14, o.expiry);
  m.set(22, '021');
  m.set(25, '00');
  m.set(32, o.acquirer ?? ACQ);
  m.set(33, '00010000');
  m.set(37, o.rrn ?? `000000${o.stan}`);
  m.set(41, o.terminal ?? 'TERM0001');
  m.set(42, 'MERCHANT0000001');
  m.set(49, '156');
  if (o.pin !== null && o.pin !== undefined) {
    m.set(52, pinBlockZpk(o.pin, o.pan));
    m.set(53, '2600000000000000');
  }
  if (o.original !== undefined) {
    const acq = (o.original.acquirer ?? ACQ).padStart(11, '0');
    m.set(
      90,
      `${o.original.mti ?? '0200'}${o.original.stan}${o.original.transmissionDt}${acq}${'00010000'.padStart(11, '0')}`,
    );
  }
  return m;
}

/** Packs with the MAC under `zak` (the switch side's copy of the zone ZAK). */
export async function frameOf(m: Iso8583Message, zak = KEYS.zak): Promise<Uint8Array> {
  return packWithMac(hsm, zak, m);
}

export function packPlain(m: Iso8583Message): Uint8Array {
  return pack(m.spec, m);
}
