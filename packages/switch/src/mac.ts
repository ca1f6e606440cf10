/**
 * The MAC of the network legs (docs/network.md "MAC field and input (MAB), every leg"): ISO 9797-1 MAC
 * algorithm 3 (ANSI X9.19 retail MAC), padding method 1, 8 bytes, under the link's ZAK, computed and
 * checked by the HSM (M6/M8).
 *
 * Where the MAC goes and what it covers is the one rule of `@openposp/iso8583` (`macFieldOf`,
 * `macInputOf`, `packForMac`): field 64 without a secondary bitmap, field 128 with one (a void, refund or
 * reversal carrying field 90, and its answer, which echoes 90); the MAB is the packed message minus its
 * last 8 bytes, taken from the bytes as received, never a re-packing. This file only adds the HSM calls.
 */
import { type Iso8583Message, isIso8583Error, MAC_BYTES, macInputOf, packForMac } from '@openposp/iso8583';
import type { SwitchHsm } from './hsm.js';

export { MAC_BYTES };
export const MAC_ALGORITHM = 'iso9797-1-3' as const;
export const MAC_PADDING = 1 as const;

export type MacCheck = 'ok' | 'missing' | 'bad';

/**
 * Verifies the MAC of a received message under `zak`. `frame` is the exact bytes received, `m` what they
 * unpacked to (its spec reads the frame). 'missing' when the last field is not the MAC field of 8 bytes
 * (64 without a secondary bitmap, 128 with one: a MAC left in 64 beside field 90 is missing); 'bad' when
 * it does not verify.
 */
export async function checkMessageMac(
  hsm: SwitchHsm,
  zak: string,
  m: Iso8583Message,
  frame: Uint8Array,
): Promise<MacCheck> {
  let mab: Uint8Array;
  try {
    mab = macInputOf(m.spec, frame);
  } catch (e) {
    if (isIso8583Error(e)) return 'missing';
    throw e;
  }
  const ok = await hsm.verifyMac({
    key: zak,
    algorithm: MAC_ALGORITHM,
    padding: MAC_PADDING,
    length: MAC_BYTES,
    data: mab,
    // The MAC field is last and fixed: its value is the last 8 bytes of the frame.
    mac: frame.slice(frame.length - MAC_BYTES),
  });
  return ok ? 'ok' : 'bad';
}

/**
 * Puts the MAC of `m` under `zak` in its MAC field (64 or 128; any MAC it carried is dropped) and returns
 * the packed message. Until the HSM answers, `m` holds an 8-byte zero placeholder there.
 */
export async function packWithMac(hsm: SwitchHsm, zak: string, m: Iso8583Message): Promise<Uint8Array> {
  const { bytes, mab, macField } = packForMac(m.spec, m);
  const mac = await hsm.generateMac({
    key: zak,
    algorithm: MAC_ALGORITHM,
    padding: MAC_PADDING,
    length: MAC_BYTES,
    data: mab,
  });
  bytes.set(mac, bytes.length - MAC_BYTES);
  m.set(macField, mac);
  return bytes;
}
