/**
 * The MAC input block (MAB) of docs/network.md: the packed message from the MTI up to, not including,
 * field 64, packed with bit 64 set in the bitmap; TPDU, header and length prefix are not MACed.
 *
 * When field 64 is the last field (every terminal-leg message: cup-pos has no secondary bitmap) that is
 * the packed bytes minus their last 8, and a received message is MACed over the bytes as received, never
 * a re-packing of them. docs/network.md is silent on messages with fields after 64 (a void's or refund's
 * field 90 on the network leg): our reading is that the MAB is the whole message without the 8 bytes of
 * field 64 (bit 64 still set), so that field 90 is covered too. With no field after 64 both readings are
 * the same bytes. (Decision recorded in README.md; the switch must do the same.)
 */
import type { Iso8583Message } from '@openposp/iso8583';

export const MAC_BYTES = 8;

/** True when the message has a field numbered above 64. */
function hasFieldAfter64(msg: Iso8583Message): boolean {
  const ids = msg.fieldIds();
  return ids.length > 0 && ids[ids.length - 1]! > 64;
}

/**
 * MAB of a message whose packed form is `packed` and which carries field 64 (as received, or packed with
 * an 8-byte placeholder in 64). Returns undefined when field 64 is absent or not 8 bytes.
 */
export function macInputOf(msg: Iso8583Message, packed: Uint8Array): Uint8Array | undefined {
  const mac = msg.get(64);
  if (!(mac instanceof Uint8Array) || mac.length !== MAC_BYTES) return undefined;
  if (!hasFieldAfter64(msg)) return packed.subarray(0, packed.length - MAC_BYTES);
  if (msg.spec.bitmapHex) throw new TypeError('macInputOf: hex bitmaps are not supported');
  const c = msg.clone();
  c.unset(64);
  const out = c.pack().slice();
  // Bit 64 is the last bit of the primary bitmap, right after the MTI.
  const bitmapAt = msg.spec.mtiEncoding === 'bcd' ? 2 : 4;
  out[bitmapAt + 7]! |= 0x01;
  return out;
}

/** The packed message with a placeholder in field 64, and its MAB, ready for the HSM to MAC. */
export function prepareForMac(msg: Iso8583Message): { mab: Uint8Array } {
  msg.set(64, new Uint8Array(MAC_BYTES));
  const packed = msg.pack();
  return { mab: macInputOf(msg, packed)!.slice() };
}
