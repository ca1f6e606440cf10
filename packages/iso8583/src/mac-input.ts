/**
 * Where the MAC of a message goes and what it is computed over: the one rule every leg of docs/network.md
 * uses ("MAC field and input (MAB), every leg"). Pure functions: no key, no cryptography; the caller
 * (a service, through its HSM) computes the MAC over the MAB these return.
 *
 * ISO 8583:1987 clause 4.3.2 and Annex A (bits 64 and 128): the MAC is the last data element of the
 * message: field 64 when the message has only a primary bitmap, field 128 when it has a secondary one
 * (on the network legs: a void, refund or reversal carrying field 90). Because it is last, fixed length
 * and binary, the MAC input (MAB) is the packed message from the MTI up to, not including, the MAC field,
 * with the MAC field's bit set in the bitmap: exactly the packed bytes minus their last 8. Framing (length
 * prefix, TPDU, header) is not part of the packed message, so it is never MACed.
 *
 * A received message is MACed over the bytes as received (`macInputOf`), never a re-packing of them: a
 * sender whose packer differs in a detail (padding, an enciphered field) still verifies.
 */

import { Iso8583Error } from './errors.js';
import { type CompiledSpec, Iso8583Message, packMessage } from './message.js';

/** Bytes of a MAC field on the wire (ISO 8583:1987 bits 64 and 128: b 64, i.e. 8 bytes). */
export const MAC_BYTES = 8;

/** The field that carries the MAC: 64 without a secondary bitmap, 128 with one. */
export type MacField = 64 | 128;

/** What `packForMac` returns. */
export interface PackedForMac {
  /** The packed message with 8 zero bytes in its MAC field, which are its last 8 bytes: write the MAC there. */
  bytes: Uint8Array;
  /** The MAC input: `bytes` without its last 8 (a view of `bytes`; writing the MAC does not change it). */
  mab: Uint8Array;
  /** The field that holds the MAC, 64 or 128. */
  macField: MacField;
}

const MAC_FIELD_RULE = 'the MAC field (64 without a secondary bitmap, 128 with one)';

/** Throws unless `spec` defines `field` (for messages of type `mti`) as 8 binary bytes, fixed length. */
function checkMacCodec(spec: CompiledSpec, field: MacField, mti: string): void {
  const codec = spec.field(field, mti);
  if (codec === undefined)
    throw new Iso8583Error(
      'ISO8583_MAC_FIELD_INVALID',
      String(field),
      `spec ${spec.name} does not define ${MAC_FIELD_RULE}`,
    );
  const f = codec.spec;
  if (f.type !== 'b' || f.length.kind !== 'fixed' || f.length.max !== MAC_BYTES || f.encoding !== 'binary')
    throw new Iso8583Error(
      'ISO8583_MAC_FIELD_INVALID',
      String(field),
      `spec ${spec.name} must define the MAC field as 8 binary bytes (type b, fixed length 8, binary encoding)`,
    );
}

/** The field number at the head of a field path (`90`, `"90"`, `"60.2"` -> 60), checked 2..128. */
function fieldIdOf(key: number | string): number {
  const text = String(key);
  const dot = text.indexOf('.');
  const head = dot < 0 ? text : text.slice(0, dot);
  const id = /^[1-9][0-9]{0,2}$/.test(head) ? Number(head) : Number.NaN;
  if (!(id >= 2 && id <= 128))
    throw new Iso8583Error('ISO8583_FIELD_UNKNOWN', text, 'a field id is a number from 2 to 128');
  return id;
}

/**
 * The MAC field of a message: 128 when it has a field above 64 (so it packs a secondary bitmap, ISO
 * 8583:1987 clause 4.3.2: bit 1 set), 64 otherwise. Either a message, or a spec and the fields the
 * message has (field ids or paths: an array, or the keys of a fields object; `mti` picks the spec's
 * overrides). Throws ISO8583_MAC_FIELD_INVALID when the spec does not define that field as 8 binary bytes
 * (e.g. a spec without a secondary bitmap and a field above 64).
 *
 * A message that already carries field 128 has a secondary bitmap, so its MAC field is 128; `packForMac`
 * removes both MAC fields before it decides.
 */
export function macFieldOf(message: Iso8583Message): MacField;
export function macFieldOf(
  spec: CompiledSpec,
  fields: Iterable<number | string> | Readonly<Record<string, unknown>>,
  mti?: string,
): MacField;
export function macFieldOf(
  target: Iso8583Message | CompiledSpec,
  fields?: Iterable<number | string> | Readonly<Record<string, unknown>>,
  mti = '',
): MacField {
  if (target instanceof Iso8583Message) {
    const ids = target.fieldIds();
    const field: MacField = ids.length > 0 && ids[ids.length - 1]! > 64 ? 128 : 64;
    checkMacCodec(target.spec, field, target.mti);
    return field;
  }
  if (typeof fields !== 'object' || fields === null)
    throw new TypeError('macFieldOf: pass a message, or a spec and its fields');
  let above64 = false;
  if (Symbol.iterator in fields) {
    for (const k of fields as Iterable<number | string>) if (fieldIdOf(k) > 64) above64 = true;
  } else {
    const record = fields as Readonly<Record<string, unknown>>;
    for (const k of Object.keys(record)) if (record[k] !== undefined && fieldIdOf(k) > 64) above64 = true;
  }
  const field: MacField = above64 ? 128 : 64;
  checkMacCodec(target, field, mti);
  return field;
}

/** The MTI at the start of `packed` as text, for the spec's per-MTI overrides (digits checked). */
function readMtiText(spec: CompiledSpec, packed: Uint8Array): string {
  const bcd = spec.mtiEncoding === 'bcd';
  const n = bcd ? 2 : 4;
  if (packed.length < n)
    throw new Iso8583Error('ISO8583_TRUNCATED', 'mti', `MTI needs ${n} bytes, ${packed.length} remain`, 0);
  let mti = '';
  for (let i = 0; i < n; i++) {
    const b = packed[i]!;
    const digits = bcd ? [b >> 4, b & 15] : [b - (spec.mtiEncoding === 'ascii' ? 0x30 : 0xf0)];
    for (const d of digits) {
      if (!(d >= 0 && d <= 9)) throw new Iso8583Error('ISO8583_MTI_INVALID', 'mti', 'MTI is not 4 digits', 0);
      mti += String(d);
    }
  }
  return mti;
}

/** Byte `i` (0..7) of the bitmap at `at`: binary, or two hex characters. */
function bitmapByte(spec: CompiledSpec, packed: Uint8Array, at: number, i: number): number {
  if (!spec.bitmapHex) return packed[at + i]!;
  let v = 0;
  for (let k = 0; k < 2; k++) {
    const p = at + 2 * i + k;
    const d = Number.parseInt(String.fromCharCode(packed[p]!), 16);
    if (Number.isNaN(d)) throw new Iso8583Error('ISO8583_BITMAP_INVALID', 'bitmap', 'bitmap is not hex', p);
    v = (v << 4) | d;
  }
  return v;
}

/**
 * The MAC input (MAB) of a packed message (the bytes as received, or as packed with a placeholder in the
 * MAC field): the bytes minus their last 8, after checking from the MTI and bitmap(s) that the last field
 * is the MAC field (64 without a secondary bitmap, 128 with one) and that the spec defines it as 8 binary
 * bytes. Returns a view of `packed`. Only the MTI and bitmap are read: the fields between them and the MAC
 * are not decoded (unpack checks them).
 *
 * Throws ISO8583_TRUNCATED (no room for MTI, bitmap or MAC), ISO8583_MTI_INVALID, ISO8583_BITMAP_INVALID
 * (not hex, or a secondary bitmap the spec does not allow) or ISO8583_MAC_FIELD_INVALID (the MAC field is
 * not the last field, or not 8 binary bytes in the spec).
 */
export function macInputOf(spec: CompiledSpec, packed: Uint8Array): Uint8Array {
  if (!(packed instanceof Uint8Array)) throw new TypeError('macInputOf: packed must be a Uint8Array');
  const mti = readMtiText(spec, packed);
  const bitmapAt = spec.mtiEncoding === 'bcd' ? 2 : 4;
  const bitmapBytes = spec.bitmapHex ? 16 : 8;
  if (packed.length < bitmapAt + bitmapBytes)
    throw new Iso8583Error(
      'ISO8583_TRUNCATED',
      'bitmap',
      `primary bitmap needs ${bitmapBytes} bytes, ${packed.length - bitmapAt} remain`,
      bitmapAt,
    );
  // Bit 1 announces the secondary bitmap (ISO 8583:1987 clause 4.3.2).
  const secondary = (bitmapByte(spec, packed, bitmapAt, 0) & 0x80) !== 0;
  if (secondary && !spec.secondary)
    throw new Iso8583Error(
      'ISO8583_BITMAP_INVALID',
      'bitmap',
      `bit 1 announces a secondary bitmap, which spec ${spec.name} does not allow`,
      bitmapAt,
    );
  const nBitmaps = secondary ? 2 : 1;
  if (packed.length < bitmapAt + nBitmaps * bitmapBytes)
    throw new Iso8583Error(
      'ISO8583_TRUNCATED',
      'bitmap',
      `secondary bitmap needs ${bitmapBytes} bytes, ${packed.length - bitmapAt - bitmapBytes} remain`,
      bitmapAt + bitmapBytes,
    );
  const macField: MacField = secondary ? 128 : 64;
  checkMacCodec(spec, macField, mti);
  // The highest bit set, bit 1 (the secondary bitmap indicator) excluded.
  let last = 0;
  for (let i = nBitmaps * 8 - 1; i >= 0 && last === 0; i--) {
    const at = bitmapAt + (i >= 8 ? bitmapBytes : 0);
    let b = bitmapByte(spec, packed, at, i & 7);
    if (i === 0) b &= 0x7f;
    // Byte i holds fields 8i+1 (its top bit) to 8i+8: the highest present is its lowest set bit.
    if (b !== 0) last = i * 8 + 8 - (31 - Math.clz32(b & -b));
  }
  if (last !== macField)
    throw new Iso8583Error(
      'ISO8583_MAC_FIELD_INVALID',
      String(macField),
      `the last field must be ${MAC_FIELD_RULE}; ${last === 0 ? 'the message has no field' : `it is ${last}`}`,
    );
  const fieldsAt = bitmapAt + nBitmaps * bitmapBytes;
  if (packed.length < fieldsAt + MAC_BYTES)
    throw new Iso8583Error(
      'ISO8583_TRUNCATED',
      String(macField),
      `the MAC needs ${MAC_BYTES} bytes, ${packed.length - fieldsAt} remain`,
      fieldsAt,
    );
  return packed.subarray(0, packed.length - MAC_BYTES);
}

/**
 * Pack `message` under `spec` ready to be MACed: removes fields 64 and 128, puts 8 zero bytes in its MAC
 * field (128 when a field above 64 remains, else 64; see `macFieldOf`), packs, and returns the bytes, the
 * MAB and the MAC field. The caller computes the MAC over `mab` (its HSM), writes it into the last 8 bytes
 * of `bytes` (`bytes.set(mac, bytes.length - MAC_BYTES)`) and, to keep the message in step, sets
 * `message.set(macField, mac)`. The message is changed: it keeps the placeholder until then.
 */
export function packForMac(spec: CompiledSpec, message: Iso8583Message): PackedForMac {
  const ids = message.fieldIds();
  if (ids.includes(64)) message.unset(64);
  if (ids.includes(128)) message.unset(128);
  const macField = macFieldOf(spec, message.fieldIds(), message.mti);
  message.set(macField, new Uint8Array(MAC_BYTES));
  const bytes = packMessage(spec, message);
  return { bytes, mab: bytes.subarray(0, bytes.length - MAC_BYTES), macField };
}
