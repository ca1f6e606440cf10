/**
 * The MAC of the network legs (docs/network.md "MAC input"): ISO 9797-1 MAC algorithm 3 (ANSI X9.19
 * retail MAC), padding method 1, 8 bytes, in field 64, under the link's ZAK, computed and checked by
 * the HSM (M6/M8). The MAC block (MAB) is the packed message from the MTI up to, not including, field
 * 64, packed with bit 64 set in the bitmap.
 *
 * When field 64 is the last field (a purchase, an inquiry) that is the packed bytes minus their last 8,
 * taken from the bytes as received, never a re-packing. docs/network.md is silent on messages with
 * fields after 64 (field 90 of a void, refund or reversal): the switch reads it as the acquirer does
 * (packages/acquirer/src/mac.ts), the whole message without the 8 bytes of field 64, bit 64 still set,
 * so that field 90 is covered too. With no field after 64 both readings are the same bytes.
 */
import type { SwitchHsm } from './hsm.js';
import type { Iso8583Message } from '@openposp/iso8583';

export const MAC_BYTES = 8;
export const MAC_ALGORITHM = 'iso9797-1-3' as const;
export const MAC_PADDING = 1 as const;

function hasFieldAfter64(m: Iso8583Message): boolean {
  const ids = m.fieldIds();
  return ids.length > 0 && ids[ids.length - 1]! > 64;
}

/**
 * The MAB of `m`, whose packed form (with 8 bytes in field 64) is `packed`. For a message with fields
 * after 64 it is `m` packed without field 64 and with bit 64 set again (the last bit of the primary
 * bitmap, which follows the MTI).
 */
export function macInputOf(m: Iso8583Message, packed: Uint8Array): Uint8Array {
  if (!hasFieldAfter64(m)) return packed.subarray(0, packed.length - MAC_BYTES);
  if (m.spec.bitmapHex) throw new TypeError('macInputOf: hex bitmaps are not supported');
  const c = m.clone();
  c.unset(64);
  const out = c.pack().slice();
  const bitmapAt = m.spec.mtiEncoding === 'bcd' ? 2 : 4;
  out[bitmapAt + 7]! |= 0x01;
  return out;
}

export type MacCheck = 'ok' | 'missing' | 'bad';

/**
 * Verifies the MAC of a received message under `zak`. `frame` is the exact bytes received. 'missing'
 * when field 64 is absent or not 8 bytes; 'bad' when it does not verify.
 */
export async function checkMessageMac(
  hsm: SwitchHsm,
  zak: string,
  m: Iso8583Message,
  frame: Uint8Array,
): Promise<MacCheck> {
  const mac = m.get(64);
  if (!(mac instanceof Uint8Array) || mac.length !== MAC_BYTES) return 'missing';
  const ok = await hsm.verifyMac({
    key: zak,
    algorithm: MAC_ALGORITHM,
    padding: MAC_PADDING,
    length: MAC_BYTES,
    data: macInputOf(m, frame),
    mac,
  });
  return ok ? 'ok' : 'bad';
}

/** Sets field 64 of `m` to its MAC under `zak` and returns the packed message (a fresh buffer). */
export async function packWithMac(hsm: SwitchHsm, zak: string, m: Iso8583Message): Promise<Uint8Array> {
  // A placeholder first, so that the bitmap and field layout are those of the final message.
  m.set(64, new Uint8Array(MAC_BYTES));
  const placeholder = m.pack().slice();
  const mac = await hsm.generateMac({
    key: zak,
    algorithm: MAC_ALGORITHM,
    padding: MAC_PADDING,
    length: MAC_BYTES,
    data: macInputOf(m, placeholder),
  });
  m.set(64, mac);
  if (!hasFieldAfter64(m)) {
    placeholder.set(mac, placeholder.length - MAC_BYTES);
    return placeholder;
  }
  return m.pack().slice();
}
