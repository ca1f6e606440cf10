/**
 * Typed errors of the iso8583 package.
 *
 * Every failure a caller can cause with bad input (a hostile or corrupt message, a malformed spec,
 * a value that does not fit its field) is an `Iso8583Error` with a stable `code` (listed in
 * docs/errors.md; a test fails when the two differ), the `field` path that is wrong (`35`, `60.2`,
 * `55.9F26`, `mti`, `bitmap`, `fields.35.length.max` for a spec) and, when decoding, the byte
 * `offset` in the input where the problem was found. A message never holds the value of a field:
 * only lengths, offsets and the names of things, so that no PAN, track or PIN data can leak
 * through a log of the error.
 */

/** Every code this package throws, with a one-line meaning (the source of docs/errors.md). */
export const ISO8583_ERROR_CODES = {
  ISO8583_SPEC_INVALID: 'a message spec does not follow the spec format (the field is its JSON path)',
  ISO8583_SPEC_NOT_FOUND: 'no built-in spec has that name and no file exists at that path',
  ISO8583_MTI_INVALID: 'a message type indicator is not 4 decimal digits',
  ISO8583_BITMAP_INVALID: 'a bitmap is malformed: bad hex, or a secondary bitmap the spec does not allow',
  ISO8583_FIELD_UNKNOWN: 'a bit is set, or a path names a field or subfield, that the spec does not define',
  ISO8583_LENGTH_EXCEEDED: 'a length prefix or value is longer than the maximum the spec allows',
  ISO8583_LENGTH_INVALID: 'a length prefix is not a number, or a fixed-length value has the wrong length',
  ISO8583_TRUNCATED: 'the input ends before the field, prefix, bitmap or MTI it announces',
  ISO8583_BCD_INVALID: 'a BCD nibble is not a decimal digit (or the separator/pad the field allows)',
  ISO8583_ENCODING_INVALID: 'a byte is not a character of the field encoding (EBCDIC, hex)',
  ISO8583_VALUE_INVALID: 'a value has a character its field type does not allow, or the wrong JS type',
  ISO8583_TLV_INVALID: 'BER-TLV data is malformed (tag, length or value past the end)',
  ISO8583_TRAILING_BYTES: 'bytes remain after the last field the bitmap announces',
  ISO8583_MAC_FIELD_INVALID:
    'the MAC field (64, or 128 with a secondary bitmap) is not the last field, or not 8 binary bytes',
  ISO8583_FRAME_EMPTY: 'a TCP frame declares a length of 0',
  ISO8583_FRAME_TOO_LARGE: 'a TCP frame declares or has a length above the named maximum frame size',
  ISO8583_FRAME_TRUNCATED:
    'the input or the stream ends inside a frame (length prefix, TPDU, header or body)',
  ISO8583_FRAME_TRAILING: 'bytes follow the frame its length prefix announces',
  ISO8583_TPDU_INVALID: 'a UnionPay TPDU is not 5 bytes starting with 0x60',
  ISO8583_HEADER_INVALID: 'a UnionPay application header is not 6 bytes of BCD digits',
} as const;

export type Iso8583ErrorCode = keyof typeof ISO8583_ERROR_CODES;

export class Iso8583Error extends Error {
  readonly code: Iso8583ErrorCode;
  /** The field path or spec path that is wrong, e.g. `35`, `60.2`, `55.9F26`, `bitmap`, `fields.2.length`. */
  readonly field: string;
  /** Byte offset in the input being decoded where the problem was found; undefined when encoding. */
  readonly offset: number | undefined;

  constructor(code: Iso8583ErrorCode, field: string, rule: string, offset?: number) {
    super(offset === undefined ? `${field}: ${rule}` : `${field}: ${rule} (at byte ${offset})`);
    this.name = 'Iso8583Error';
    this.code = code;
    this.field = field;
    this.offset = offset;
  }
}

export function isIso8583Error(e: unknown): e is Iso8583Error {
  return e instanceof Iso8583Error;
}
