/**
 * The POSP's MACs, on both of its legs (docs/network.md): the UnionPay ECB MAC under the terminal's TAK
 * (cup-pos) and X9.19 (ISO 9797-1 algorithm 3, padding 1) under the acquirer–switch ZAK (iso87-binary),
 * both computed and checked by the HSM (M6/M8).
 *
 * Where the MAC goes and what it covers is the one rule of `@openposp/iso8583` (`macFieldOf`,
 * `macInputOf`, `packForMac`; docs/network.md "MAC field and input (MAB), every leg"): the MAC is the last
 * field, 64 without a secondary bitmap (every cup-pos message, a purchase or inquiry on the network
 * leg), 128 with one (a void or refund carrying field 90 on the network leg, and its answer); the MAB is
 * the packed message minus its last 8 bytes. A received message is MACed over the bytes as received
 * (with enciphered track data, the bytes before 35/36 were cut out to unpack them). This file only adds
 * the HSM calls.
 */
import {
  type CompiledSpec,
  type Iso8583Message,
  isIso8583Error,
  MAC_BYTES,
  macInputOf,
  packForMac,
} from '@openposp/iso8583';
import { AcquirerError } from './errors.js';
import type { AcquirerHsm } from './hsm.js';

export { MAC_BYTES };

/** The MAC of one leg: the key block and how the HSM computes it. */
export interface MacScheme {
  /** TAK (terminal leg) or ZAK (network leg): a key block under the LMK. */
  key: string;
  /** `cup-ecb` on the terminal leg, `iso9797-1-3` (X9.19) on the network leg. */
  algorithm: 'cup-ecb' | 'iso9797-1-3';
  /** ISO 9797-1 padding method (X9.19: 1); not for cup-ecb. */
  padding?: 1;
}

/** 'missing': the last field is not the MAC field of 8 bytes (no MAC, or a MAC in 64 beside field 90). */
export type MacCheck = 'ok' | 'missing' | 'bad';

function request(scheme: MacScheme, data: Uint8Array) {
  return scheme.padding === undefined
    ? { key: scheme.key, algorithm: scheme.algorithm, data }
    : { key: scheme.key, algorithm: scheme.algorithm, padding: scheme.padding, data };
}

/** Verifies the MAC of `bytes` (a message of `spec`, exactly as received) under `scheme`. */
export async function checkMessageMac(
  hsm: AcquirerHsm,
  spec: CompiledSpec,
  bytes: Uint8Array,
  scheme: MacScheme,
): Promise<MacCheck> {
  let mab: Uint8Array;
  try {
    mab = macInputOf(spec, bytes);
  } catch (e) {
    if (isIso8583Error(e)) return 'missing';
    throw e;
  }
  // The MAC field is last and fixed: its value is the last 8 bytes.
  const ok = await hsm.verifyMac({ ...request(scheme, mab), mac: bytes.slice(bytes.length - MAC_BYTES) });
  return ok ? 'ok' : 'bad';
}

/**
 * Puts the MAC of `m` under `scheme` in its MAC field (64 or 128; any MAC it carried is dropped) and
 * returns `m` packed under `spec`. Until the HSM answers, `m` holds an 8-byte zero placeholder there.
 */
export async function packWithMac(
  hsm: AcquirerHsm,
  spec: CompiledSpec,
  m: Iso8583Message,
  scheme: MacScheme,
): Promise<Uint8Array> {
  const { bytes, mab, macField } = packForMac(spec, m);
  const mac = (await hsm.generateMac(request(scheme, mab))).slice(0, MAC_BYTES);
  if (mac.length !== MAC_BYTES)
    throw new AcquirerError('ACQUIRER_HSM_UNAVAILABLE', 'hsm.generateMac', 'the MAC is shorter than 8 bytes');
  bytes.set(mac, bytes.length - MAC_BYTES);
  m.set(macField, mac);
  return bytes;
}
