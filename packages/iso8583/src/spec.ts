/**
 * The ISO 8583 message spec format: a dialect is one JSON file of this shape.
 *
 * A field is composed from independent parts (the moov-io/iso8583 layering):
 * a type (what characters the value may hold), a length kind and prefix
 * (how the receiver knows where the field ends), a data encoding (how each
 * character or byte goes on the wire) and padding. See SPEC-FORMAT.md for a
 * complete example and the meaning of every key.
 *
 * `validateSpec` checks a parsed JSON value against this format and throws
 * `Iso8583Error('ISO8583_SPEC_INVALID', <json path>, <rule>)` at the first
 * error, e.g. `fields.35.length.max: must be a positive integer`.
 */

import { Iso8583Error } from './errors.js';

/**
 * What a field's value may hold (ISO 8583:1987 clause 4.1 attribute notation).
 * - `n` digits; `a` letters; `an` letters and digits; `ans` printable characters (any byte on unpack);
 *   `ns` digits and specials; `as` letters and specials (all `a*` types are text);
 * - `b` binary: the value is bytes (a `Uint8Array`);
 * - `z` track 2/3 data: digits and the separator `D` (`=` accepted when packing);
 * - `x+n` a signed amount: `C` (credit) or `D` (debit) then digits.
 */
export type FieldType = 'n' | 'a' | 'an' | 'ans' | 'ns' | 'as' | 'b' | 'z' | 'x+n';

/** How a field's length is conveyed. `fixed`: no prefix; `LL`/`LLL`/`LLLL`: a prefix of 2/3/4 decimal digits. */
export type LengthKind = 'fixed' | 'LL' | 'LLL' | 'LLLL';

/**
 * How the length prefix is written.
 * - `ascii`/`ebcdic`: 2, 3 or 4 digit characters;
 * - `bcd`: packed digits, right-justified: LL = 1 byte, LLL and LLLL = 2 bytes (jPOS BcdPrefixer);
 * - `binary`: an unsigned big-endian integer: LL = 1 byte, LLL and LLLL = 2 bytes (jPOS BinaryPrefixer).
 */
export type PrefixEncoding = 'ascii' | 'bcd' | 'binary' | 'ebcdic';

/**
 * How the value goes on the wire.
 * - `ascii`: one byte per character (ISO 646); for `b` fields use `hex` instead.
 * - `ebcdic`: one byte per character, code page 037 (digits, letters, space, common punctuation).
 * - `bcd`: two digits per byte (`n`, `z`); for `x+n` the sign is one ASCII byte followed by BCD digits
 *   (jPOS IFB_AMOUNT).
 * - `binary`: the bytes as they are (`b` only).
 * - `hex`: each byte as two upper-case ASCII hex characters (`b` only; jPOS IFA_BINARY).
 */
export type DataEncoding = 'ascii' | 'ebcdic' | 'bcd' | 'binary' | 'hex';

/**
 * The length part of a field.
 * - `max`: for `fixed`, THE length; for variable kinds, the largest length allowed (a longer prefix
 *   is refused with ISO8583_LENGTH_EXCEEDED).
 * - `prefix`: required for variable kinds, absent for `fixed`.
 * - `unit`: what the length counts. `chars` (default): characters of the value, i.e. digits for n/z
 *   even when packed in BCD, bytes of the value for `b` (even when `hex`-encoded: jPOS counts
 *   the binary bytes). `bytes`: bytes on the wire after encoding (e.g. a BCD field whose prefix
 *   gives the number of packed bytes).
 */
export interface LengthSpec {
  kind: LengthKind;
  max: number;
  prefix?: PrefixEncoding;
  unit?: 'chars' | 'bytes';
}

/** Odd-length BCD: which side the digits sit on and the nibble that fills the other side. */
export interface BcdSpec {
  /** `right` (default, jPOS): pad nibble first, e.g. `123` -> `01 23`. `left`: `123` -> `12 30`. */
  justify: 'left' | 'right';
  /** The pad nibble as one hex character, `0` (default) or `F`. */
  pad: string;
  /**
   * Which nibbles the data may hold. `decimal` (default): 0-9, and D for `z`; any other nibble is
   * ISO8583_BCD_INVALID. `hex`: every nibble 0-F, read back as upper-case hex characters (a clear track
   * reads the same, D stays D); for UnionPay track data partly enciphered under the TDK in place
   * (53 position 3 = 1). Types `n` and `z` only.
   */
  nibbles?: 'decimal' | 'hex';
}

/** Padding of a fixed-length text field whose value is shorter than the length. */
export interface PadSpec {
  side: 'left' | 'right';
  /** One character. Defaults: `n` and `x+n` left `0`; `a`, `an`, `ans`, `ns`, `as` right space; `z` none. */
  char: string;
}

/**
 * How `describe` masks a sensitive value.
 * - `pan`: keep the first 6 and last 4 digits (PCI DSS 3.4), e.g. `411111******1111`;
 * - `full`: replace every character by `*` (binary: report only the length).
 */
export type MaskStyle = 'pan' | 'full';

/** A positional subfield: a slice of the parent's value (characters of a text field, bytes of a `b` field). */
export interface PositionalSubfieldSpec {
  name: string;
  description?: string;
  /** Only for validation when packing: which characters the subfield may hold (default: the parent's). */
  type?: FieldType;
  /**
   * A number: a fixed length (in the parent's units). `{ kind: 'LL'|'LLL', max }`: a variable subfield
   * with its own length prefix (ASCII digits inside a text parent, a 1/2-byte big-endian integer inside
   * a `b` parent). `{ kind: 'rest', max }`: takes everything that remains (must be the last subfield).
   */
  length: number | { kind: 'LL' | 'LLL' | 'rest'; max: number };
  /** Padding used when a fixed subfield is set shorter than its length (default: as for the parent type). */
  pad?: PadSpec;
  sensitive?: boolean;
  mask?: MaskStyle;
}

/**
 * Subfields of a field.
 * - `positional`: subfields one after the other, keyed "1", "2"... in order. A value may end at any
 *   subfield boundary: the subfields after it are absent (UnionPay field 60 often stops after 60.2).
 * - `tlv-ber`: EMV BER-TLV data objects (EMV 4.3 Book 3 Annex B): tags of 1-3 bytes, lengths in short
 *   or long form. Subfield paths are the tag in upper-case hex, e.g. `55.9F26`. `tags` only names them.
 */
export type SubfieldsSpec =
  | { kind: 'positional'; fields: Record<string, PositionalSubfieldSpec> }
  | { kind: 'tlv-ber'; tags?: Record<string, { name: string; description?: string; sensitive?: boolean }> };

/** One data element of a message. */
export interface FieldSpec {
  /** The short name `describe` prints, e.g. "Primary account number". */
  name: string;
  /** A longer explanation for documentation and `describe --verbose`; optional. */
  description?: string;
  type: FieldType;
  length: LengthSpec;
  encoding: DataEncoding;
  /** Odd-length BCD layout; only for `bcd` encoding. Default `{ justify: 'right', pad: '0' }`. */
  bcd?: BcdSpec;
  /** Padding of short values in fixed fields. Defaults by type (see PadSpec); `b` fields are never padded. */
  pad?: PadSpec;
  /** Mask this field in `describe` and logs. Fields 2, 14, 35, 36, 45, 52 and 55 are always sensitive. */
  sensitive?: boolean;
  /** Default `pan` for field 2, `full` otherwise. */
  mask?: MaskStyle;
  /**
   * The values come from a small set (codes, terminal and merchant ids): unpack may hand back one shared
   * string per distinct value instead of a new one per message. Fixed-length text fields that are not
   * sensitive only.
   */
  intern?: boolean;
  subfields?: SubfieldsSpec;
}

/** A whole dialect. */
export interface MessageSpec {
  /** A short identifier, e.g. `iso87-binary`; what `loadSpec(name)` finds. */
  name: string;
  description?: string;
  /** The message type indicator: 4 digits as ASCII, EBCDIC or BCD (2 bytes). */
  mti: { encoding: 'ascii' | 'ebcdic' | 'bcd' };
  /**
   * `binary`: 8 bytes per bitmap; `hex`: 16 ASCII hex characters per bitmap (jPOS IFA_BITMAP).
   * `secondary`: bit 1 announces a secondary bitmap and fields 65-128 are allowed.
   */
  bitmap: { encoding: 'binary' | 'hex'; secondary: boolean };
  /** Field specs keyed by field number "2".."128" (bit 1 is the bitmap itself and is never listed). */
  fields: Record<string, FieldSpec>;
  /**
   * Per-MTI replacements of field specs, for dialects where one field changes format by message
   * (e.g. UnionPay field 62 is binary keys in 0810 and text in 0800). Applied in order; later wins.
   */
  overrides?: Array<{ mti: string[]; fields: Record<string, FieldSpec> }>;
  /**
   * Fields a response copies from its request in `startResponse`. Default:
   * 2, 3, 4, 7, 11, 12, 13, 32, 37, 41, 42, 49, 60, 90 minus those the spec lacks. Track data (35, 36),
   * PIN data (52) and the MAC (64) are never echoed by default: a response must not carry them.
   */
  response?: { echo: string[] };
}

/** The fields a response echoes from its request when the spec does not say (ISO 8583:1987 Annex A usage). */
export const DEFAULT_ECHO_FIELDS: readonly string[] = [
  '2',
  '3',
  '4',
  '7',
  '11',
  '12',
  '13',
  '32',
  '37',
  '41',
  '42',
  '49',
  '60',
  '90',
];

/** Fields sensitive whatever the spec says: PAN, expiry, track 2, track 3, track 1, PIN block, ICC data. */
export const ALWAYS_SENSITIVE_FIELDS: readonly string[] = ['2', '14', '35', '36', '45', '52', '55'];

// ---------------------------------------------------------------------------------------------
// Validation. An ordered list of early returns; the first error wins, named by its JSON path.
// ---------------------------------------------------------------------------------------------

const FIELD_TYPES: readonly string[] = ['n', 'a', 'an', 'ans', 'ns', 'as', 'b', 'z', 'x+n'];
const LENGTH_KINDS: readonly string[] = ['fixed', 'LL', 'LLL', 'LLLL'];
const PREFIX_ENCODINGS: readonly string[] = ['ascii', 'bcd', 'binary', 'ebcdic'];
const DATA_ENCODINGS: readonly string[] = ['ascii', 'ebcdic', 'bcd', 'binary', 'hex'];
const MASKS: readonly string[] = ['pan', 'full'];
/** The largest value each prefix can carry: LL 99, LLL 999, LLLL 9999 (binary LL is 1 byte: 255 > 99). */
const KIND_MAX: Record<string, number> = { LL: 99, LLL: 999, LLLL: 9999 };

function fail(path: string, rule: string): never {
  throw new Iso8583Error('ISO8583_SPEC_INVALID', path, rule);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(o: Record<string, unknown>, path: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) fail(path ? `${path}.${k}` : k, 'unknown key');
  }
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

function checkString(o: Record<string, unknown>, key: string, path: string, required: boolean): void {
  const v = o[key];
  if (v === undefined && !required) return;
  if (typeof v !== 'string' || v.length === 0) fail(`${path}.${key}`, 'must be a non-empty string');
}

function checkEnum(o: Record<string, unknown>, key: string, path: string, values: readonly string[]): void {
  const v = o[key];
  if (typeof v !== 'string' || !values.includes(v))
    fail(`${path}.${key}`, `must be one of ${values.join(', ')}`);
}

function checkOptionalBool(o: Record<string, unknown>, key: string, path: string): void {
  if (o[key] !== undefined && typeof o[key] !== 'boolean') fail(`${path}.${key}`, 'must be a boolean');
}

function checkPad(v: unknown, path: string): void {
  if (!isObject(v)) fail(path, 'must be an object');
  checkKeys(v, path, ['side', 'char']);
  checkEnum(v, 'side', path, ['left', 'right']);
  if (typeof v.char !== 'string' || v.char.length !== 1) fail(`${path}.char`, 'must be one character');
}

/** Which encodings make sense for each type. */
function encodingAllowed(type: string, encoding: string): boolean {
  if (type === 'b') return encoding === 'binary' || encoding === 'hex';
  if (encoding === 'binary' || encoding === 'hex') return false;
  if (encoding === 'bcd') return type === 'n' || type === 'z' || type === 'x+n';
  return true;
}

function checkSubfields(v: unknown, path: string, parentType: string): void {
  if (!isObject(v)) fail(path, 'must be an object');
  checkEnum(v, 'kind', path, ['positional', 'tlv-ber']);
  if (v.kind === 'tlv-ber') {
    checkKeys(v, path, ['kind', 'tags']);
    if (parentType !== 'b') fail(`${path}.kind`, 'tlv-ber subfields need a field of type b');
    if (v.tags === undefined) return;
    if (!isObject(v.tags)) fail(`${path}.tags`, 'must be an object');
    for (const [tag, t] of Object.entries(v.tags)) {
      const tp = `${path}.tags.${tag}`;
      if (!/^(?:[0-9A-F]{2}){1,3}$/.test(tag)) fail(tp, 'a tag must be 1 to 3 bytes of upper-case hex');
      if (!isObject(t)) fail(tp, 'must be an object');
      checkKeys(t, tp, ['name', 'description', 'sensitive']);
      checkString(t, 'name', tp, true);
      checkString(t, 'description', tp, false);
      checkOptionalBool(t, 'sensitive', tp);
    }
    return;
  }
  checkKeys(v, path, ['kind', 'fields']);
  if (!isObject(v.fields)) fail(`${path}.fields`, 'must be an object');
  const ids = Object.keys(v.fields);
  if (ids.length === 0) fail(`${path}.fields`, 'must have at least one subfield');
  ids.forEach((id, i) => {
    const sp = `${path}.fields.${id}`;
    if (id !== String(i + 1)) fail(sp, `subfields must be numbered 1, 2, 3... in order (expected ${i + 1})`);
    const s = (v.fields as Record<string, unknown>)[id];
    if (!isObject(s)) fail(sp, 'must be an object');
    checkKeys(s, sp, ['name', 'description', 'type', 'length', 'pad', 'sensitive', 'mask']);
    checkString(s, 'name', sp, true);
    checkString(s, 'description', sp, false);
    if (s.type !== undefined) {
      checkEnum(s, 'type', sp, FIELD_TYPES);
      if ((s.type === 'b') !== (parentType === 'b'))
        fail(`${sp}.type`, 'must be b exactly when the field is b');
    }
    if (typeof s.length === 'number') {
      if (!isPositiveInt(s.length)) fail(`${sp}.length`, 'must be a positive integer');
    } else {
      if (!isObject(s.length)) fail(`${sp}.length`, 'must be a positive integer or an object');
      checkKeys(s.length, `${sp}.length`, ['kind', 'max']);
      checkEnum(s.length, 'kind', `${sp}.length`, ['LL', 'LLL', 'rest']);
      if (!isPositiveInt(s.length.max)) fail(`${sp}.length.max`, 'must be a positive integer');
      const cap = parentType === 'b' ? { LL: 255, LLL: 65535 } : { LL: 99, LLL: 999 };
      const k = s.length.kind as string;
      if (k !== 'rest' && s.length.max > cap[k as 'LL' | 'LLL'])
        fail(`${sp}.length.max`, `must be at most ${cap[k as 'LL' | 'LLL']} for ${k}`);
      if (k === 'rest' && i !== ids.length - 1) fail(`${sp}.length.kind`, 'rest must be the last subfield');
    }
    if (s.pad !== undefined) checkPad(s.pad, `${sp}.pad`);
    checkOptionalBool(s, 'sensitive', sp);
    if (s.mask !== undefined) checkEnum(s, 'mask', sp, MASKS);
  });
}

function checkField(v: unknown, path: string): void {
  if (!isObject(v)) fail(path, 'must be an object');
  checkKeys(v, path, [
    'name',
    'description',
    'type',
    'length',
    'encoding',
    'bcd',
    'pad',
    'sensitive',
    'mask',
    'intern',
    'subfields',
  ]);
  checkString(v, 'name', path, true);
  checkString(v, 'description', path, false);
  checkEnum(v, 'type', path, FIELD_TYPES);
  const type = v.type as string;

  const lp = `${path}.length`;
  if (!isObject(v.length)) fail(lp, 'must be an object');
  const len = v.length;
  checkKeys(len, lp, ['kind', 'max', 'prefix', 'unit']);
  checkEnum(len, 'kind', lp, LENGTH_KINDS);
  if (!isPositiveInt(len.max)) fail(`${lp}.max`, 'must be a positive integer');
  if (len.kind === 'fixed') {
    if (len.prefix !== undefined) fail(`${lp}.prefix`, 'a fixed field has no prefix');
  } else {
    checkEnum(len, 'prefix', lp, PREFIX_ENCODINGS);
    const cap = len.prefix === 'binary' ? (len.kind === 'LL' ? 255 : 65535) : KIND_MAX[len.kind as string]!;
    if (len.max > cap) fail(`${lp}.max`, `must be at most ${cap} for a ${len.prefix} ${len.kind} prefix`);
  }
  if (len.unit !== undefined) checkEnum(len, 'unit', lp, ['chars', 'bytes']);

  checkEnum(v, 'encoding', path, DATA_ENCODINGS);
  if (!encodingAllowed(type, v.encoding as string))
    fail(`${path}.encoding`, `${v.encoding} does not apply to type ${type}`);
  if (v.bcd !== undefined) {
    const bp = `${path}.bcd`;
    if (v.encoding !== 'bcd') fail(bp, 'only for bcd encoding');
    if (!isObject(v.bcd)) fail(bp, 'must be an object');
    checkKeys(v.bcd, bp, ['justify', 'pad', 'nibbles']);
    checkEnum(v.bcd, 'justify', bp, ['left', 'right']);
    if (typeof v.bcd.pad !== 'string' || !/^[0-9A-F]$/.test(v.bcd.pad))
      fail(`${bp}.pad`, 'must be one upper-case hex character');
    if (v.bcd.nibbles !== undefined) {
      checkEnum(v.bcd, 'nibbles', bp, ['decimal', 'hex']);
      if (v.bcd.nibbles === 'hex') {
        if (type !== 'n' && type !== 'z') fail(`${bp}.nibbles`, 'hex nibbles apply to types n and z only');
        // With unit bytes the digit count comes from a trailing F pad nibble, which hex data may hold.
        if (len.unit === 'bytes') fail(`${bp}.nibbles`, 'hex nibbles need length.unit chars');
      }
    }
  }
  if (v.pad !== undefined) {
    if (type === 'b') fail(`${path}.pad`, 'binary fields are not padded');
    checkPad(v.pad, `${path}.pad`);
  }
  checkOptionalBool(v, 'sensitive', path);
  if (v.mask !== undefined) checkEnum(v, 'mask', path, MASKS);
  checkOptionalBool(v, 'intern', path);
  if (v.intern === true) {
    // A shared string must never hold card data, and bytes (a Uint8Array) can be changed by whoever holds them.
    if (type === 'b') fail(`${path}.intern`, 'b fields are not interned');
    if (v.sensitive === true || ALWAYS_SENSITIVE_FIELDS.includes(path.slice(path.lastIndexOf('.') + 1)))
      fail(`${path}.intern`, 'sensitive fields are not interned');
    if (len.kind !== 'fixed') fail(`${path}.intern`, 'only fixed-length fields are interned');
  }
  if (v.subfields !== undefined) checkSubfields(v.subfields, `${path}.subfields`, type);
}

function checkFieldTable(v: unknown, path: string, secondary: boolean): void {
  if (!isObject(v)) fail(path, 'must be an object');
  for (const [id, f] of Object.entries(v)) {
    const n = Number(id);
    if (!/^[1-9][0-9]{0,2}$/.test(id) || n < 2 || n > 128)
      fail(`${path}.${id}`, 'a field id must be 2 to 128');
    if (n > 64 && !secondary) fail(`${path}.${id}`, 'fields 65-128 need bitmap.secondary');
    checkField(f, `${path}.${id}`);
  }
}

/**
 * Check that `value` is a well-formed MessageSpec (a parsed JSON file). Returns it typed; throws
 * ISO8583_SPEC_INVALID with the JSON path of the first error.
 */
export function validateSpec(value: unknown): MessageSpec {
  if (!isObject(value)) fail('$', 'a spec must be a JSON object');
  checkKeys(value, '', [
    '$schema',
    'name',
    'description',
    'mti',
    'bitmap',
    'fields',
    'overrides',
    'response',
  ]);
  checkString(value, 'name', '', true);
  checkString(value, 'description', '', false);
  if (!isObject(value.mti)) fail('mti', 'must be an object');
  checkKeys(value.mti, 'mti', ['encoding']);
  checkEnum(value.mti, 'encoding', 'mti', ['ascii', 'ebcdic', 'bcd']);
  if (!isObject(value.bitmap)) fail('bitmap', 'must be an object');
  checkKeys(value.bitmap, 'bitmap', ['encoding', 'secondary']);
  checkEnum(value.bitmap, 'encoding', 'bitmap', ['binary', 'hex']);
  if (typeof value.bitmap.secondary !== 'boolean') fail('bitmap.secondary', 'must be a boolean');
  const secondary = value.bitmap.secondary;
  checkFieldTable(value.fields, 'fields', secondary);
  if (value.overrides !== undefined) {
    if (!Array.isArray(value.overrides)) fail('overrides', 'must be an array');
    value.overrides.forEach((o: unknown, i: number) => {
      const op = `overrides.${i}`;
      if (!isObject(o)) fail(op, 'must be an object');
      checkKeys(o, op, ['mti', 'fields']);
      if (!Array.isArray(o.mti) || o.mti.length === 0) fail(`${op}.mti`, 'must be a non-empty array');
      o.mti.forEach((m: unknown, j: number) => {
        if (typeof m !== 'string' || !/^[0-9]{4}$/.test(m)) fail(`${op}.mti.${j}`, 'must be 4 digits');
      });
      checkFieldTable(o.fields, `${op}.fields`, secondary);
    });
  }
  if (value.response !== undefined) {
    if (!isObject(value.response)) fail('response', 'must be an object');
    checkKeys(value.response, 'response', ['echo']);
    if (!Array.isArray(value.response.echo)) fail('response.echo', 'must be an array');
    const fields = value.fields as Record<string, unknown>;
    value.response.echo.forEach((id: unknown, j: number) => {
      if (typeof id !== 'string' || fields[id] === undefined)
        fail(`response.echo.${j}`, 'must name a field the spec defines');
    });
  }
  return value as unknown as MessageSpec;
}
