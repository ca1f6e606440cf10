/**
 * A field spec compiled into a codec object: every choice the spec makes (type, encoding, length kind,
 * prefix, unit, justification, padding) is resolved once here, at load time, into plain numbers, so
 * packing and unpacking a field is a few branches and a loop with no allocation beyond the value itself.
 *
 * Layering follows ISO 8583:1987 clause 4 (data element attributes: type, fixed or variable length with
 * an LL/LLL indicator) and the jPOS field packagers it must be byte-compatible with (IFB_NUMERIC,
 * IFB_LLNUM, IFB_LLLCHAR, IFB_AMOUNT, IFA_*, IF_CHAR, IFB_BINARY, IFA_BINARY).
 */

import {
  BCD_DIGITS,
  BCD_HEX,
  BCD_HEX_TRACK,
  BCD_TRACK,
  decodeBcdInto,
  decodeEbcdicInto,
  decodeHexAscii,
  decodeLatin1,
  encodeBcd,
  encodeEbcdic,
  encodeHexAscii,
  encodeLatin1,
  type Reader,
  type Writer,
} from './encoding.js';
import { Iso8583Error } from './errors.js';
import { ALWAYS_SENSITIVE_FIELDS, type FieldSpec, type FieldType, type MaskStyle } from './spec.js';
import { PositionalCodec, TlvCodec } from './subfields.js';

/** A field value: text for every type but `b`, whose value is bytes. */
export type FieldValue = string | Uint8Array;

const ENC_ASCII = 0;
const ENC_EBCDIC = 1;
const ENC_BCD = 2;
const ENC_BINARY = 3;
const ENC_HEX = 4;
const ENC_CODES: Record<string, number> = { ascii: 0, ebcdic: 1, bcd: 2, binary: 3, hex: 4 };

const PAD_NONE = 0;
const PAD_LEFT = 1;
const PAD_RIGHT = 2;

/** How the generated reader reads a field: straight-line code for the common layouts, else the general `read`. */
const OP_GENERAL = 0;
const OP_BCD = 1;
const OP_ASCII = 2;
const OP_BINARY = 3;

/** Nibble -> its character: '0'..'9', and 'D' for the track 2 separator (13). */
const NIBBLE_CHAR = Uint8Array.from('0123456789ABCDEF', (c) => c.charCodeAt(0));
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;
/**
 * Byte -> its two characters as one 16-bit unit in memory order (so a Uint16Array store writes both),
 * or 0 when a nibble is not allowed: digits only (n), or digits and the separator D (z).
 */
const PAIRS_DIGITS = new Uint16Array(256);
const PAIRS_TRACK = new Uint16Array(256);
/** Every byte (`bcd.nibbles: "hex"`): its two upper-case hex characters. */
const PAIRS_HEX = new Uint16Array(256);
for (let v = 0; v < 256; v++) {
  const h = v >> 4;
  const l = v & 15;
  const first = NIBBLE_CHAR[h]!;
  const second = NIBBLE_CHAR[l]!;
  const unit = LITTLE_ENDIAN ? first | (second << 8) : (first << 8) | second;
  PAIRS_DIGITS[v] = h < 10 && l < 10 ? unit : 0;
  PAIRS_TRACK[v] = (h < 10 || h === 13) && (l < 10 || l === 13) ? unit : 0;
  PAIRS_HEX[v] = unit;
}

/** Number of decimal digits in each variable-length prefix (ISO 8583:1987 clause 4.2: LL, LLL). */
const PREFIX_DIGITS: Record<string, number> = { fixed: 0, LL: 2, LLL: 3, LLLL: 4 };

export class FieldCodec {
  /** The field path used in errors: "35", or "62" under an MTI override. */
  readonly id: string;
  readonly spec: FieldSpec;
  readonly name: string;
  readonly type: FieldType;
  /** The value is a Uint8Array (type b). */
  readonly binary: boolean;
  readonly sensitive: boolean;
  readonly mask: MaskStyle;
  readonly sub: PositionalCodec | TlvCodec | undefined;
  /** For fixed fields, the exact length; otherwise the largest, in the unit of `unitBytes`. */
  readonly max: number;
  readonly fixed: boolean;

  private readonly enc: number;
  private readonly digits: number; // prefix digits: 0 fixed, 2, 3 or 4
  /** @internal */
  readonly prefixEnc: number;
  /** @internal */
  readonly prefixBytes: number;
  private readonly unitBytes: boolean;
  /** @internal */
  readonly leftJustified: boolean;
  private readonly padNibble: number;
  /** @internal */
  readonly track: boolean;
  /** @internal Which nibbles BCD data may hold: BCD_DIGITS, BCD_TRACK, BCD_HEX or BCD_HEX_TRACK. */
  readonly charset: number;
  /** @internal */
  readonly signed: boolean;
  private readonly numeric: boolean;
  private readonly padSide: number;
  private readonly padChar: string;
  /** @internal Wire bytes of a fixed field. */
  readonly fixedBytes: number;
  /**
   * Values come from a small set (spec `intern`: codes, terminal and merchant ids): the generated reader
   * hands back one shared string per distinct value (`internCache`). Never for sensitive or b fields.
   */
  readonly intern: boolean;
  private cache: InternCache | undefined = undefined;
  /** Text read as ASCII/EBCDIC needs a character check (n, z, x+n). */
  /** @internal */
  readonly checked: boolean;
  /** @internal Which code the generated reader has for this field (OP_*). */
  readonly op: number;

  constructor(id: string, spec: FieldSpec) {
    this.id = id;
    this.spec = spec;
    this.name = spec.name;
    this.type = spec.type;
    this.binary = spec.type === 'b';
    this.sensitive = spec.sensitive === true || ALWAYS_SENSITIVE_FIELDS.includes(id);
    this.mask = spec.mask ?? (id === '2' ? 'pan' : 'full');
    this.max = spec.length.max;
    this.fixed = spec.length.kind === 'fixed';
    this.enc = ENC_CODES[spec.encoding]!;
    this.digits = PREFIX_DIGITS[spec.length.kind]!;
    this.prefixEnc = this.fixed ? -1 : ENC_CODES[spec.length.prefix!]!;
    this.prefixBytes =
      this.prefixEnc === ENC_ASCII || this.prefixEnc === ENC_EBCDIC
        ? this.digits
        : this.digits === 0
          ? 0
          : this.digits === 2
            ? 1
            : 2;
    this.unitBytes = spec.length.unit === 'bytes';
    this.leftJustified = spec.bcd?.justify === 'left';
    this.padNibble = spec.bcd ? Number.parseInt(spec.bcd.pad, 16) : 0;
    this.track = spec.type === 'z';
    const hex = spec.bcd?.nibbles === 'hex';
    this.charset = this.track ? (hex ? BCD_HEX_TRACK : BCD_TRACK) : hex ? BCD_HEX : BCD_DIGITS;
    this.signed = spec.type === 'x+n';
    this.numeric = spec.type === 'n';
    const defaultPad =
      spec.type === 'n' || spec.type === 'x+n'
        ? { side: 'left', char: '0' }
        : spec.type === 'b' || spec.type === 'z'
          ? undefined
          : { side: 'right', char: ' ' };
    const pad = spec.pad ?? defaultPad;
    this.padSide = pad === undefined ? PAD_NONE : pad.side === 'left' ? PAD_LEFT : PAD_RIGHT;
    this.padChar = pad?.char ?? '';
    this.fixedBytes = this.fixed ? this.wireBytes(this.max) : 0;
    this.checked = this.numeric || this.track || this.signed;
    this.intern = spec.intern === true && !this.sensitive && !this.binary;
    // Counted in characters (or fixed): the layouts of nearly every field. Others take the general read.
    const plain = this.fixed || !this.unitBytes;
    this.op = !plain
      ? OP_GENERAL
      : this.enc === ENC_BINARY
        ? OP_BINARY
        : this.enc === ENC_ASCII
          ? OP_ASCII
          : this.enc === ENC_BCD && !this.signed
            ? OP_BCD
            : OP_GENERAL;
    const sub = spec.subfields;
    this.sub =
      sub === undefined
        ? undefined
        : sub.kind === 'tlv-ber'
          ? new TlvCodec(id, sub)
          : new PositionalCodec(id, sub, this.binary, spec.type);
  }

  /** @internal This field's intern cache (made at first use). */
  internCache(): InternCache {
    if (this.cache === undefined) {
      this.cache = {
        keys: new Int32Array(INTERN_SLOTS * ((this.fixedBytes + 3) >> 2)),
        candidates: new Int32Array(INTERN_SLOTS * ((this.fixedBytes + 3) >> 2)),
        values: Array.from({ length: INTERN_SLOTS }, () => undefined),
      };
    }
    return this.cache;
  }

  /** Bytes on the wire for a value of `n` characters (digits for BCD, bytes for b). */
  private wireBytes(n: number): number {
    switch (this.enc) {
      case ENC_BCD:
        return this.signed ? 1 + (n >> 1) : (n + 1) >> 1;
      case ENC_HEX:
        return n * 2;
      default:
        return n;
    }
  }

  /** Append this field (prefix and data) to `w`. */
  encode(value: FieldValue, w: Writer): void {
    const id = this.id;
    if (this.binary) {
      if (!(value instanceof Uint8Array))
        throw new Iso8583Error('ISO8583_VALUE_INVALID', id, 'a b field takes bytes (Uint8Array)');
      const n = value.length;
      if (this.fixed) {
        if (n !== this.max)
          throw new Iso8583Error('ISO8583_LENGTH_INVALID', id, `must be exactly ${this.max} bytes, got ${n}`);
      } else {
        const units = this.unitBytes ? this.wireBytes(n) : n;
        if (units > this.max)
          throw new Iso8583Error('ISO8583_LENGTH_EXCEEDED', id, `length ${units} exceeds max ${this.max}`);
        this.encodePrefix(units, w);
      }
      if (this.enc === ENC_HEX) encodeHexAscii(value, w);
      else w.bytes(value);
      return;
    }
    if (typeof value !== 'string')
      throw new Iso8583Error('ISO8583_VALUE_INVALID', id, `a ${this.type} field takes a string`);
    let s = value;
    if (this.signed) checkSigned(s, id);
    if (this.fixed) {
      if (s.length > this.max)
        throw new Iso8583Error('ISO8583_LENGTH_EXCEEDED', id, `length ${s.length} exceeds max ${this.max}`);
      if (s.length < this.max) s = this.padFixed(s);
    } else {
      const units = this.unitBytes ? this.wireBytes(s.length) : s.length;
      if (units > this.max)
        throw new Iso8583Error('ISO8583_LENGTH_EXCEEDED', id, `length ${units} exceeds max ${this.max}`);
      this.encodePrefix(units, w);
    }
    switch (this.enc) {
      case ENC_BCD:
        if (this.signed) {
          w.byte(s.charCodeAt(0));
          encodeBcd(s.length === 1 ? '' : s.slice(1), w, id, this.leftJustified, this.padNibble, BCD_DIGITS);
        } else {
          encodeBcd(s, w, id, this.leftJustified, this.padNibble, this.charset);
        }
        return;
      case ENC_EBCDIC:
        this.checkText(s);
        encodeEbcdic(s, w, id);
        return;
      default:
        this.checkText(s);
        encodeLatin1(s, w, id);
    }
  }

  /** Pad a short value of a fixed field, or refuse it when the type has no padding (z). */
  private padFixed(s: string): string {
    if (this.signed) {
      return s[0] + '0'.repeat(this.max - s.length) + s.slice(1);
    }
    if (this.padSide === PAD_NONE)
      throw new Iso8583Error(
        'ISO8583_LENGTH_INVALID',
        this.id,
        `must be exactly ${this.max} characters, got ${s.length}`,
      );
    const fill = this.padChar.repeat(this.max - s.length);
    return this.padSide === PAD_LEFT ? fill + s : s + fill;
  }

  /** Type checks for characters sent as text: n digits, z digits and separator, x+n sign and digits. */
  private checkText(s: string): void {
    if (this.numeric) {
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c < 48 || c > 57)
          throw new Iso8583Error('ISO8583_VALUE_INVALID', this.id, `character ${i} is not a digit`);
      }
    } else if (this.track) {
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if ((c < 48 || c > 57) && c !== 61 && c !== 68)
          throw new Iso8583Error(
            'ISO8583_VALUE_INVALID',
            this.id,
            `character ${i} is not a digit or the separator D/=`,
          );
      }
    }
  }

  private encodePrefix(n: number, w: Writer): void {
    const d = this.digits;
    switch (this.prefixEnc) {
      case ENC_ASCII:
      case ENC_EBCDIC: {
        const base = this.prefixEnc === ENC_ASCII ? 48 : 0xf0;
        w.ensure(d);
        for (let i = d - 1; i >= 0; i--) {
          w.buf[w.pos + i] = base + (n % 10);
          n = Math.floor(n / 10);
        }
        w.pos += d;
        return;
      }
      case ENC_BCD:
        // jPOS BcdPrefixer: LL is one byte, LLL/LLLL two bytes, right-justified digits.
        if (d === 2) w.byte((Math.floor(n / 10) << 4) | (n % 10));
        else {
          w.byte((Math.floor(n / 1000) << 4) | (Math.floor(n / 100) % 10));
          w.byte(((Math.floor(n / 10) % 10) << 4) | (n % 10));
        }
        return;
      default:
        // jPOS BinaryPrefixer: big-endian unsigned.
        if (d === 2) w.byte(n);
        else {
          w.byte(n >> 8);
          w.byte(n & 0xff);
        }
    }
  }

  /** Read the length prefix at `pos` (bounds, digits and max checked). */
  /** @internal */
  readPrefix(b: Uint8Array, pos: number, end: number): number {
    const id = this.id;
    const pb = this.prefixBytes;
    if (pos + pb > end) throw truncated(id, 'length prefix', pb, pos, end);
    let n = 0;
    switch (this.prefixEnc) {
      case ENC_ASCII:
      case ENC_EBCDIC: {
        const base = this.prefixEnc === ENC_ASCII ? 48 : 0xf0;
        for (let i = 0; i < pb; i++) {
          const v = b[pos + i]! - base;
          if (v < 0 || v > 9)
            throw new Iso8583Error(
              'ISO8583_LENGTH_INVALID',
              id,
              'length prefix is not decimal digits',
              pos + i,
            );
          n = n * 10 + v;
        }
        break;
      }
      case ENC_BCD:
        for (let i = 0; i < pb; i++) {
          const v = b[pos + i]!;
          if (v >> 4 > 9 || (v & 15) > 9)
            throw new Iso8583Error('ISO8583_LENGTH_INVALID', id, 'length prefix is not BCD digits', pos + i);
          n = n * 100 + (v >> 4) * 10 + (v & 15);
        }
        break;
      default:
        n = pb === 1 ? b[pos]! : (b[pos]! << 8) | b[pos + 1]!;
    }
    if (n > this.max)
      throw new Iso8583Error('ISO8583_LENGTH_EXCEEDED', id, `length ${n} exceeds max ${this.max}`, pos);
    return n;
  }

  /**
   * @internal The reference unpack: read every field the bitmap words announce, in field order, into
   * `dense` from index `count`, one general `read` per field. Unpack normally runs the reader generated
   * for its table (`readerFor`), which resumes here at the first irregularity so that every error, its
   * field, offset and message, is the one `read` gives. Non-sensitive text fields are left in
   * `cur.chars` and listed in TEXT_AT/TEXT_START/TEXT_END from index `texts` (returns the new count);
   * sensitive ones get their own string now (`ownText`). `cur.pos` ends after the last field.
   */
  static readFields(
    table: readonly (FieldCodec | undefined)[],
    cur: ReadCursor,
    w0: number,
    w1: number,
    w2: number,
    w3: number,
    dense: FieldValue[],
    checkSub: boolean,
    specName: string,
    count = 0,
    texts = 0,
  ): number {
    for (let k = 0; k < 4; k++) {
      let word = k === 0 ? w0 : k === 1 ? w1 : k === 2 ? w2 : w3;
      while (word !== 0) {
        const j = Math.clz32(word);
        word &= ~(0x80000000 >>> j);
        const id = 32 * k + j + 1;
        const c = table[id];
        if (c === undefined) throw unknownField(id, specName, cur.pos);
        const sub = checkSub ? c.sub : undefined;
        const o = cur.cpos;
        let v: FieldValue | null = c.read(cur);
        if (v === null) {
          if (c.sensitive) {
            v = ownText(cur.chars, cur.cstart, cur.cpos);
            cur.cpos = o;
          } else if (sub !== undefined) {
            // Subfield errors come before the next field's: this value is needed now.
            v = decodeLatin1(cur.chars, cur.cstart, cur.cpos);
            cur.cpos = o;
          } else {
            TEXT_AT[texts] = count++;
            TEXT_START[texts] = cur.cstart;
            TEXT_END[texts++] = cur.cpos;
            continue;
          }
        }
        if (sub !== undefined) {
          if (sub.kind === 'tlv') sub.parse(v as Uint8Array, cur.dataStart);
          else sub.split(v, cur.dataStart);
        }
        dense[count++] = v;
      }
    }
    return texts;
  }

  /**
   * Read this field at `cur.pos`, check it completely (prefix, bounds, every character against the type)
   * and advance past it. A `b` field returns its bytes (a copy); a text field returns null and leaves its
   * characters in `cur.chars[start, cur.cpos)`, so that unpack makes one string for all text fields and
   * cuts the values out of it (one native call per message instead of one per field).
   */
  read(cur: ReadCursor): Uint8Array | null {
    const id = this.id;
    const b = cur.bytes;
    const end = cur.end;
    let pos = cur.pos;
    let chars: number;
    let nbytes: number;
    if (this.fixed) {
      chars = this.max;
      nbytes = this.fixedBytes;
    } else {
      const prefixAt = pos;
      const n = this.readPrefix(b, pos, end);
      pos += this.prefixBytes;
      if (!this.unitBytes) {
        // A signed BCD amount counts its sign: 0 leaves no room for it (and would read past the field).
        if (n === 0 && this.signed && this.enc === ENC_BCD)
          throw new Iso8583Error('ISO8583_LENGTH_INVALID', id, 'a signed amount needs its sign', prefixAt);
        chars = n;
        nbytes = this.wireBytes(n);
      } else {
        nbytes = n;
        chars = this.charsFromBytes(b, pos, end, n, prefixAt);
      }
    }
    if (pos + nbytes > end) throw truncated(id, 'field data', nbytes, pos, end);
    cur.dataStart = pos;
    cur.pos = pos + nbytes;
    const out = cur.chars;
    const from = cur.cpos;
    cur.cstart = from;
    switch (this.enc) {
      case ENC_BINARY:
        // A plain Uint8Array input gets a plain copy; other inputs keep their own slice() (Buffer: a view),
        // except sensitive fields, which never share memory with anything (`ownBytes`).
        if (this.sensitive) return ownBytes(b, pos, nbytes);
        return b.constructor === Uint8Array ? copyBytes(b, pos, nbytes) : b.slice(pos, pos + nbytes);
      case ENC_HEX:
        return decodeHexAscii(b, pos, chars, id);
      case ENC_BCD:
        if (this.signed) {
          const sign = b[pos]!;
          if (sign !== 67 && sign !== 68)
            throw new Iso8583Error('ISO8583_VALUE_INVALID', id, 'amount sign is not C or D', pos);
          out[from] = sign;
          cur.cpos = decodeBcdInto(b, pos + 1, chars - 1, id, this.leftJustified, BCD_DIGITS, out, from + 1);
        } else {
          cur.cpos = decodeBcdInto(b, pos, chars, id, this.leftJustified, this.charset, out, from);
        }
        return null;
      case ENC_EBCDIC:
        cur.cpos = decodeEbcdicInto(b, pos, pos + nbytes, id, out, from);
        this.checkChars(out, from, cur.cpos, pos);
        return null;
      default: {
        for (let i = 0; i < nbytes; i++) out[from + i] = b[pos + i]!;
        cur.cpos = from + nbytes;
        if (this.checked) this.checkChars(out, from, from + nbytes, pos);
        return null;
      }
    }
  }

  /** Read this field at `r.pos`, advance past it and return its value. */
  decode(r: Reader): FieldValue {
    const cur = standalone;
    cur.reset(r.bytes, r.pos, r.end);
    const v = this.read(cur);
    r.pos = cur.pos;
    r.dataStart = cur.dataStart;
    if (v !== null) return v;
    return this.sensitive
      ? ownText(cur.chars, cur.cstart, cur.cpos)
      : decodeLatin1(cur.chars, cur.cstart, cur.cpos);
  }

  /** With `unit: bytes`, the character count follows from the byte count (and, for BCD, a trailing F pad). */
  private charsFromBytes(b: Uint8Array, pos: number, end: number, n: number, prefixAt: number): number {
    switch (this.enc) {
      case ENC_HEX:
        if ((n & 1) === 1)
          throw new Iso8583Error(
            'ISO8583_LENGTH_INVALID',
            this.id,
            'hex data has an odd byte count',
            prefixAt,
          );
        return n >> 1;
      case ENC_BCD: {
        if (this.signed) {
          if (n < 1)
            throw new Iso8583Error(
              'ISO8583_LENGTH_INVALID',
              this.id,
              'a signed amount needs its sign',
              prefixAt,
            );
          return 1 + 2 * (n - 1);
        }
        if (n === 0) return 0;
        if (pos + n > end) throw truncated(this.id, 'field data', n, pos, end);
        // An F pad nibble on the justified-away side marks an odd digit count; a 0 pad is ambiguous and kept.
        const edge = this.leftJustified ? b[pos + n - 1]! & 15 : b[pos]! >> 4;
        return edge === 15 ? 2 * n - 1 : 2 * n;
      }
      default:
        return n;
    }
  }

  /** Type checks of characters read as text (`out[from, to)`, read from byte `start`): n, z and x+n. */
  private checkChars(out: Uint8Array, from: number, to: number, start: number): void {
    if (this.numeric || this.track) {
      const track = this.track;
      for (let i = from; i < to; i++) {
        const c = out[i]!;
        if ((c < 48 || c > 57) && !(track && (c === 61 || c === 68)))
          throw new Iso8583Error(
            'ISO8583_VALUE_INVALID',
            this.id,
            track ? 'byte is not a digit or the separator D/=' : 'byte is not a digit',
            start + i - from,
          );
      }
    } else if (this.signed) {
      const c = from < to ? out[from]! : -1;
      if (c !== 67 && c !== 68)
        throw new Iso8583Error('ISO8583_VALUE_INVALID', this.id, 'amount sign is not C or D', start);
      for (let i = from + 1; i < to; i++) {
        const d = out[i]!;
        if (d < 48 || d > 57)
          throw new Iso8583Error('ISO8583_VALUE_INVALID', this.id, 'byte is not a digit', start + i - from);
      }
    }
  }
}

/** ISO8583_FIELD_UNKNOWN: bit `id` is set, the spec has no such field (offset: where it would start). */
function unknownField(id: number, specName: string, pos: number): Iso8583Error {
  return new Iso8583Error(
    'ISO8583_FIELD_UNKNOWN',
    String(id),
    `bit ${id} is set but spec ${specName} does not define the field`,
    pos,
  );
}

// ------------------------------------------------------------------------------------------------
// Generated readers. Unpack runs a function written for the codec table (a spec, or a spec under an MTI
// override) AND the bitmap of the message: one block per field present, in field order, with the field's
// layout (prefix, length, encoding, justification, charset, sensitivity) resolved into constants. So
// reading a field costs its bounds and character checks and nothing else: no bit tests, no per-field
// dispatch, no codec lookups. The blocks accept only what `read` accepts and make the same values; at the
// first thing they do not accept (a bad prefix, a bound, a character, a pad nibble) they hand over to the
// reference `FieldCodec.readFields` from the start of that field, which throws the reference error.
// test/unpack-reference.test.ts holds the two to the same results on mutated inputs.
//
// The code holds only integers from the validated spec (lengths, field numbers, masks) and fixed names:
// no text of the spec. Where code generation is not allowed (node
// --disallow-code-generation-from-strings) every message takes the reference reader.
//
// One function per table and bitmap, because one function for every field a spec defines (127 for
// iso87-binary) is too big for V8's optimizing compiler and runs interpreted. A bitmap gets its function
// after READER_AFTER_SUCCESSES messages with it unpacked (by the reference reader) without error, so
// hostile or one-off inputs never cause code generation; at most READERS_PER_TABLE bitmaps per table.
// ------------------------------------------------------------------------------------------------

/**
 * A generated reader and the index in `dense` of each field of its bitmap (-1: absent), which messages
 * it unpacks share for `get` (an Int8Array: at most 127 fields).
 */
export interface ReaderEntry {
  read: FieldsReader;
  ranks: Int8Array;
  /** Its bitmap. */
  w0: number;
  w1: number;
  w2: number;
  w3: number;
}

/**
 * A generated reader: reads the fields of the words and returns their values in field order (an array
 * made at the end from one local variable per field); the count of texts it listed for unpack to cut
 * out of the character buffer (TEXT_AT...) is left in `cur.texts`.
 */
export type FieldsReader = (
  cur: ReadCursor,
  w0: number,
  w1: number,
  w2: number,
  w3: number,
  checkSub: boolean,
) => FieldValue[];

/**
 * Fixed text fields up to this many characters are made straight from the input bytes by
 * String.fromCharCode (one string each, of its own, with no trip through the character buffer); longer
 * and variable ones are cut out of one string per message (sensitive ones: `ownText`).
 */
const FROM_CHAR_CODE_MAX = 16;
/**
 * Variable-length text fields up to this many characters (a PAN: 19) are made the same way, by length;
 * sensitive ones up to the longer VAR_SENSITIVE_FROM_CHAR_CODE_MAX (track 2: 37), which spares them the
 * character buffer and its wipe.
 */
const VAR_FROM_CHAR_CODE_MAX = 19;
/**
 * Fixed b fields up to this many bytes are copied by straight-line stores into a new Uint8Array (of its
 * own ArrayBuffer: also right for sensitive ones) when the input is a plain Uint8Array.
 */
const INLINE_COPY_MAX = 16;
const VAR_SENSITIVE_FROM_CHAR_CODE_MAX = 40;

/**
 * One field's block as it is being written: the field, its number, its rank among the present fields
 * (its index in the values), the local variable `D` that takes its value, the code `FB` that hands over
 * to the reference reader from the start of the field, and the block's label `L`.
 */
interface Block {
  c: FieldCodec;
  id: number;
  rank: number;
  D: string;
  FB: string;
  L: string;
}

/**
 * The characters of `n` BCD digits at `q` as String.fromCharCode arguments that also check them: each
 * whole byte is read once, through the pair table `pairs` (its two characters, or 0 when a nibble is not
 * allowed), into `y`, and `m |= y - 1` leaves `m` negative after a byte that is not allowed (the caller
 * sets `m = 0` before and hands over when `m < 0` after). The lone digit of an odd count (and its pad
 * nibble) is checked by the caller.
 */
function bcdPairArgs(n: number, left: boolean, charset: number, pairs: string): string {
  const odd = (n & 1) === 1;
  const nibble = (v: string) => (charset === BCD_DIGITS ? `48 + (${v})` : `NC[${v}]`);
  const [first, second] = LITTLE_ENDIAN ? ['y & 255', 'y >> 8'] : ['y >> 8', 'y & 255'];
  const args: string[] = [];
  let at = 0;
  if (odd && !left) args.push(nibble(`b[q + ${at++}] & 15`));
  for (let i = 0; i < n >> 1; i++) args.push(`(y = ${pairs}[b[q + ${at++}]], m |= y - 1, ${first})`, second);
  if (odd && left) args.push(nibble(`b[q + ${at}] >> 4`));
  return args.join(', ');
}

/** `switch (n)` into `D` with one String.fromCharCode per length 0..`upTo`, each made by `make(length)`. */
function byLength(D: string, upTo: number, make: (n: number) => string): string {
  const cases = [`case 0: ${D} = ''; break;`];
  for (let n = 1; n <= upTo; n++) cases.push(`case ${n}: ${D} = FCC(${make(n)}); break;`);
  return `switch (n) { ${cases.join(' ')} }`;
}

/** Code of the block that reads field `c` (number `id`, the `rank`th present field). */
function fieldBlock(c: FieldCodec, id: number, rank: number): string {
  const L = `F${id}`;
  // Hand over: which field, and how many values are read (the reference reader resumes there).
  const blk: Block = { c, id, rank, D: `d${rank}`, FB: `{ fi = ${id}; fk = ${rank}; break READ; }`, L };
  const out: string[] = [`${L}: {`];
  const hasSub = c.sub !== undefined;
  if (c.op === OP_GENERAL || c.signed) generalBody(blk, out);
  else if (hasSub && !c.binary) {
    // Subfields of a text field need its string at once (their errors come before the next field's).
    out.push('if (checkSub) {');
    generalBody(blk, out);
    out.push(`break ${L};`, '}');
    fastBody(blk, out);
  } else {
    if (internable(c)) internBody(blk, out);
    else fastBody(blk, out);
    if (hasSub)
      out.push(
        `if (checkSub) { const sc = C[${id}].sub; if (sc.kind === 'tlv') sc.parse(${blk.D}, q); else sc.split(${blk.D}, q); }`,
      );
  }
  out.push('}');
  return out.join('\n');
}

/** The general read of the field inside its block, as readFields does it. */
function generalBody({ c, id, rank, D, L }: Block, out: string[]): void {
  const hasSub = c.sub !== undefined;
  out.push(`cur.pos = p; cur.cpos = o; g = C[${id}].read(cur); p = cur.pos;`, 'if (g === null) {');
  if (c.sensitive) out.push('g = OT(c8, cur.cstart, cur.cpos);');
  else {
    const list = `TA[t] = ${rank}; TS[t] = cur.cstart; TE[t++] = cur.cpos; o = cur.cpos;`;
    if (hasSub) out.push(`if (checkSub) g = DL(c8, cur.cstart, cur.cpos); else { ${list} break ${L}; }`);
    else out.push(`${list} break ${L};`);
  }
  out.push('}');
  if (hasSub)
    out.push(
      `if (checkSub) { const sc = C[${id}].sub; if (sc.kind === 'tlv') sc.parse(g, cur.dataStart); else sc.split(g, cur.dataStart); }`,
    );
  out.push(`${D} = g;`);
}

/** The straight-line read of a field of layout OP_BINARY, OP_ASCII or OP_BCD (not signed). */
function fastBody({ c, rank, D, FB, L }: Block, out: string[], now = false): void {
  const max = c.max;
  const sens = c.sensitive;
  // Length: a constant, or the prefix (bounds, digits and max checked; any failure goes to the reference).
  if (c.fixed) out.push(`q = p; n = ${max};`);
  else {
    const pb = c.prefixBytes;
    out.push(`if (p + ${pb} > end) ${FB}`);
    const pe = c.prefixEnc;
    if (pe === ENC_ASCII || pe === ENC_EBCDIC) {
      const base = pe === ENC_ASCII ? 48 : 0xf0;
      out.push('n = 0;');
      for (let i = 0; i < pb; i++)
        out.push(`v = b[p + ${i}] - ${base}; if (v < 0 || v > 9) ${FB} n = n * 10 + v;`);
    } else if (pe === ENC_BCD) {
      out.push('n = 0;');
      for (let i = 0; i < pb; i++)
        out.push(
          `v = b[p + ${i}]; if ((v >> 4) > 9 || (v & 15) > 9) ${FB} n = n * 100 + (v >> 4) * 10 + (v & 15);`,
        );
    } else out.push(pb === 1 ? 'n = b[p];' : 'n = (b[p] << 8) | b[p + 1];');
    out.push(`if (n > ${max}) ${FB}`, `q = p + ${pb};`);
  }
  const op = c.op;
  if (op === OP_BINARY) {
    out.push(`if (q + n > end) ${FB}`);
    if (c.fixed && max <= INLINE_COPY_MAX) {
      // A few bytes (a PIN block, a MAC): a new array and one store per byte, from a plain Uint8Array.
      const copy = Array.from({ length: max }, (_, i) => `${D}[${i}] = b[q + ${i}];`).join(' ');
      out.push(`if (plain) { ${D} = new Uint8Array(${max}); ${copy} }`);
      out.push(sens ? `else ${D} = OB(b, q, n);` : `else ${D} = b.slice(q, q + n);`);
    } else {
      // Sensitive bytes get memory of their own; others a plain copy, or the input's own slice() (Buffer: a view).
      out.push(sens ? `${D} = OB(b, q, n);` : `${D} = plain ? CB(b, q, n) : b.slice(q, q + n);`);
    }
    out.push('p = q + n;');
    return;
  }
  const fixedSmall = c.fixed && max <= FROM_CHAR_CODE_MAX;
  const args = (f: (i: number) => string): string => Array.from({ length: max }, (_, i) => f(i)).join(', ');
  if (op === OP_ASCII) {
    out.push(`if (q + n > end) ${FB}`);
    if (!sens && c.fixed && max <= SMALL_DIGITS_MAX) {
      // Up to 4 digits (any text type: the characters are the same): a shared string of `smallDigits`,
      // the digits read straight (DG: a digit's value, or a large negative number for any other byte).
      const sum = Array.from({ length: max }, (_, i) => `DG[b[q + ${i}]] * ${10 ** (max - 1 - i)}`);
      out.push(
        `v = ${sum.join(' + ')};`,
        `if (v >= 0) { g = S${max}[v]; ${D} = g === undefined ? SD(${max}, v) : g; p = q + n; break ${L}; }`,
      );
    } else if (!sens && !c.fixed) {
      // Up to 4 digits (any text type: the characters are the same): a shared string of `smallDigits`.
      out.push(
        `if (n <= ${SMALL_DIGITS_MAX}) { v = 0; for (z = 0; z < n; z++) { x = b[q + z] - 48; if (x < 0 || x > 9) break; v = v * 10 + x; }`,
        `if (z === n) { ${D} = SD(n, v); p = q + n; break ${L}; } }`,
      );
    }
    const bad = c.checked
      ? c.track
        ? '(x < 48 || x > 57) && x !== 61 && x !== 68'
        : 'x < 48 || x > 57'
      : '';
    if (!c.fixed) {
      // Short values: a string of their own straight from the input bytes, by length.
      const upTo = Math.min(max, sens ? VAR_SENSITIVE_FROM_CHAR_CODE_MAX : VAR_FROM_CHAR_CODE_MAX);
      out.push(`if (n <= ${upTo}) {`);
      if (bad) out.push(`for (z = q; z < q + n; z++) { x = b[z]; if (${bad}) ${FB} }`);
      out.push(
        byLength(D, upTo, (len) => Array.from({ length: len }, (_, i) => `b[q + ${i}]`).join(', ')),
        `p = q + n; break ${L}; }`,
      );
      if (upTo === max) return; // every length is covered
    }
    if (sens || fixedSmall || now) {
      // A string of its own made from the input bytes (sensitive: never a slice of the message's text).
      if (bad) out.push(`for (z = q; z < q + n; z++) { x = b[z]; if (${bad}) ${FB} }`);
      if (fixedSmall) out.push(`${D} = FCC(${args((i) => `b[q + ${i}]`)});`);
      else out.push(`${D} = L1(b, q, q + n);`);
      out.push('p = q + n;');
      return;
    }
    if (bad) out.push(`for (z = 0; z < n; z++) { x = b[q + z]; if (${bad}) ${FB} c8[o + z] = x; }`);
    else out.push('for (z = 0; z < n; z++) c8[o + z] = b[q + z];');
    out.push(`TA[t] = ${rank}; TS[t] = o; o += n; TE[t++] = o; p = q + n;`);
    return;
  }
  // OP_BCD: n digits in (n + 1) >> 1 bytes.
  const left = c.leftJustified;
  const pairs = ['PD', 'PT', 'PH', 'PH'][c.charset]!;
  out.push(`nb = (n + 1) >> 1; if (q + nb > end) ${FB}`);
  if (!sens && c.charset === BCD_DIGITS && c.fixed && max <= SMALL_DIGITS_MAX) {
    // Up to 4 digits: a shared string of `smallDigits`, the digits read straight byte by byte (BV: a
    // byte's two digits; BR/BL: the digit beside the pad nibble of an odd count, right or left
    // justified; a large negative number for a byte that is not allowed).
    const terms: string[] = [];
    let at = 0;
    let weight = 10 ** max;
    if ((max & 1) === 1 && !left) {
      weight /= 10;
      terms.push(`BR[b[q + ${at++}]] * ${weight}`);
    }
    for (let i = 0; i < max >> 1; i++) {
      weight /= 100;
      terms.push(`BV[b[q + ${at++}]] * ${weight}`);
    }
    if ((max & 1) === 1 && left) terms.push(`BL[b[q + ${at}]]`);
    out.push(
      `v = ${terms.join(' + ')}; if (v < 0) ${FB}`,
      `g = S${max}[v]; ${D} = g === undefined ? SD(${max}, v) : g; p = q + nb;`,
    );
    return;
  }
  if (!sens && c.charset === BCD_DIGITS && !c.fixed) {
    out.push(
      `if (n <= ${SMALL_DIGITS_MAX}) { v = BS(b, q, n, ${left}); if (v < 0) ${FB} ${D} = SD(n, v); p = q + nb; break ${L}; }`,
    );
  }
  if (!c.fixed) {
    // Short values: check every nibble (and the pad nibble of an odd count), then a string of their own
    // straight from the nibbles, by length (no trip through the character buffer: nothing to wipe).
    const upTo = Math.min(max, sens ? VAR_SENSITIVE_FROM_CHAR_CODE_MAX : VAR_FROM_CHAR_CODE_MAX);
    const pad = (v: string) => `((${v}) !== 0 && (${v}) !== 15)`;
    out.push(`if (n <= ${upTo}) {`, `od = (n & 1) === 1;`);
    if (left)
      out.push(`if (od) { v = b[q + nb - 1]; if (${pad('v & 15')} || ${pairs}[v & 0xf0] === 0) ${FB} }`);
    else out.push(`if (od) { v = b[q]; if (${pad('v >> 4')} || ${pairs}[v & 15] === 0) ${FB} }`);
    out.push(
      'm = 0;',
      byLength(D, upTo, (len) => bcdPairArgs(len, left, c.charset, pairs)),
      `if (m < 0) ${FB}`,
      `p = q + nb; break ${L}; }`,
    );
    if (upTo === max) return; // every length is covered
  }
  if (fixedSmall) {
    // Check the pad nibble of an odd count, then one string from the nibbles, checked as they are read.
    const odd = (max & 1) === 1;
    const padCheck = (v: string) => `((${v}) !== 0 && (${v}) !== 15)`;
    if (odd && left)
      out.push(`v = b[q + nb - 1]; if (${padCheck('v & 15')} || ${pairs}[v & 0xf0] === 0) ${FB}`);
    else if (odd) out.push(`v = b[q]; if (${padCheck('v >> 4')} || ${pairs}[v & 15] === 0) ${FB}`);
    out.push('m = 0;', `${D} = FCC(${bcdPairArgs(max, left, c.charset, pairs)});`, `if (m < 0) ${FB}`);
    out.push('p = q + nb;');
    return;
  }
  const odd = c.fixed ? ((max & 1) === 1 ? 'true' : 'false') : '(n & 1) === 1';
  // Two-character stores go to even indexes: skip a character when needed (never part of a value).
  // Sensitive characters start at a multiple of 4 (plus the lone first digit of a right-justified odd
  // count), so that wiping them in 32-bit words after use touches no other field's characters.
  const align = sens
    ? `x = (o + 3) & ~3; if (od && ${!left}) x++;`
    : `x = o; if (((x + (od && ${!left} ? 1 : 0)) & 1) === 1) x++;`;
  out.push(`od = ${odd}; ${align}`, 'st = x; r = q; e = q + nb;');
  if (left)
    out.push(
      `if (od) { e--; v = b[e]; if (((v & 15) !== 0 && (v & 15) !== 15) || ${pairs}[v & 0xf0] === 0) ${FB} }`,
    );
  else
    out.push(
      `if (od) { v = b[r]; if (((v >> 4) !== 0 && (v >> 4) !== 15) || ${pairs}[v & 15] === 0) ${FB} c8[x++] = NC[v & 15]; r++; }`,
    );
  out.push(`for (; r < e; r++) { v = ${pairs}[b[r]]; if (v === 0) ${FB} c16[x >> 1] = v; x += 2; }`);
  if (left) out.push('if (od) c8[x++] = NC[b[e] >> 4];');
  // Sensitive: a string of its own, then its characters are wiped from the shared buffer (`o` does not
  // move: the next field's characters go where they were).
  if (sens) out.push(`${D} = L1(c8, st, x); for (z = st >> 2; z < (x + 3) >> 2; z++) c32[z] = 0;`);
  else if (now) out.push(`${D} = L1(c8, st, x);`);
  else out.push(`TA[t] = ${rank}; TS[t] = st; TE[t++] = x; o = x;`);
  out.push('p = q + nb;');
}

// ------------------------------------------------------------------------------------------------
// Interned values. A field the spec marks `intern` (codes, terminal and merchant ids: values from a small
// set, the same in every message of a terminal) keeps the strings it made in a cache of INTERN_SLOTS
// slots, keyed by the field's wire bytes (in 32-bit words) and placed by a hash of them. A message whose
// bytes equal a slot's key gets that slot's string: no new string, and no check of the characters, which
// are those of a value read and checked before (the same bytes of a fixed field are the same value). Any
// other message reads and checks the field as without the cache; its string takes the slot only when the
// same value missed there just before (the slot's candidate), else the value becomes the candidate. So a
// value that repeats is shared from its third message on, values that do not repeat never displace one
// that does nor keep their strings alive (a string kept by the long-lived cache costs the garbage
// collector), and the cache holds at most INTERN_SLOTS values per field whatever the input. A value that
// does not repeat costs a hash and two compares more. Only fixed-length text fields that are not
// sensitive take part.
// ------------------------------------------------------------------------------------------------

/**
 * A field's intern cache: slot i holds `values[i]`, whose wire bytes are the words keys[i * W, i * W + W),
 * and the candidate for the slot: the wire bytes of the last value placed there that missed
 * (candidates[i * W, i * W + W)). A value takes the slot when it misses twice in a row there.
 */
export interface InternCache {
  keys: Int32Array;
  candidates: Int32Array;
  values: (string | undefined)[];
}

/** Slots of a field's intern cache (a power of two), and the hash shift that gives a slot. */
export const INTERN_SLOTS = 1024;
const INTERN_SHIFT = 32 - Math.log2(INTERN_SLOTS);
/** Fixed fields of more wire bytes than this are not interned. */
const INTERN_MAX_BYTES = 64;
/** Odd multipliers of the key words in the hash. */
const INTERN_MIX = [
  0x9e3779b1, 0x85ebca77, 0xc2b2ae3d, 0x27d4eb2f, 0x165667b1, 0xd3a2646d, 0xfd7046c5, 0xb55a4f09, 0x7feb352d,
  0x846ca68b, 0x6c8e9cf5, 0x2c1b3c6d, 0x297a2d39, 0x68e31da5, 0xa0761d65, 0xe7037ed1,
];

/** Whether the generated reader interns this field's values (short values already share `smallDigits`). */
function internable(c: FieldCodec): boolean {
  return (
    c.intern &&
    c.fixed &&
    c.sub === undefined &&
    (c.op === OP_ASCII || c.op === OP_BCD) &&
    c.max > SMALL_DIGITS_MAX &&
    c.fixedBytes <= INTERN_MAX_BYTES
  );
}

/**
 * The block of an interned field: its wire bytes as key words, the slot's string when the key matches;
 * otherwise the field's usual read (a string made now), which then takes the slot.
 */
function internBody(blk: Block, out: string[]): void {
  const { c, id, D, FB, L } = blk;
  const nb = c.fixedBytes;
  const words = (nb + 3) >> 2;
  out.push(`if (p + ${nb} > end) ${FB}`);
  for (let w = 0; w < words; w++) {
    const bytes = Array.from({ length: Math.min(4, nb - 4 * w) }, (_, i) => {
      const at = `b[p + ${4 * w + i}]`;
      return i === 0 ? at : `(${at} << ${8 * i})`;
    });
    out.push(`i${w} = ${bytes.join(' | ')};`);
  }
  const mix = Array.from({ length: words }, (_, w) =>
    w === 0 ? 'i0' : `Math.imul(i${w}, ${INTERN_MIX[w]})`,
  );
  out.push(
    `ih = Math.imul(${mix.join(' ^ ')}, ${INTERN_MIX[0]}) >>> ${INTERN_SHIFT}; ie = ih * ${words}; g = IV${id}[ih];`,
  );
  const each = (f: (w: number) => string, sep: string) =>
    Array.from({ length: words }, (_, w) => f(w)).join(sep);
  out.push(
    `if (g !== undefined && ${each((w) => `IK${id}[ie + ${w}] === i${w}`, ' && ')}) { ${D} = g; p += ${nb}; break ${L}; }`,
  );
  fastBody(blk, out, true);
  // Seen just before at this slot (the candidate): it takes the slot. Else it becomes the candidate.
  out.push(
    `if (${each((w) => `IC${id}[ie + ${w}] === i${w}`, ' && ')}) { ${each((w) => `IK${id}[ie + ${w}] = i${w};`, ' ')} IV${id}[ih] = ${D}; }`,
    `else { ${each((w) => `IC${id}[ie + ${w}] = i${w};`, ' ')} }`,
  );
}

/**
 * Source of the reader of `table` for messages whose bitmap words are w0..w3 (bit 1 clear), or undefined
 * when a bit is set for a field the table lacks (such a message never unpacks). For reading:
 * `readerSource(spec.fields, w0, w1, 0, 0)`.
 */
export function readerSource(
  table: readonly (FieldCodec | undefined)[],
  w0: number,
  w1: number,
  w2: number,
  w3: number,
): string | undefined {
  const blocks: string[] = [];
  const words = [w0, w1, w2, w3];
  let keyWords = 0;
  for (let k = 0; k < 4; k++) {
    let word = words[k]!;
    while (word !== 0) {
      const j = Math.clz32(word);
      word &= ~(0x80000000 >>> j);
      const id = 32 * k + j + 1;
      const c = table[id];
      if (c === undefined || id === 1) return undefined;
      // Only integers from the spec are written into the code (never its text); a CompiledSpec built
      // without validation could hold anything, so anything else keeps the reference reader.
      if (
        !Number.isSafeInteger(c.max) ||
        !Number.isSafeInteger(c.prefixBytes) ||
        !Number.isSafeInteger(c.fixedBytes)
      )
        return undefined;
      if (internable(c)) keyWords = Math.max(keyWords, (c.fixedBytes + 3) >> 2);
      blocks.push(fieldBlock(c, id, blocks.length));
    }
  }
  const values = blocks.map((_, i) => `d${i}`).join(', ');
  const keys = Array.from({ length: keyWords }, (_, i) => `i${i} = 0`);
  return [
    '"use strict";',
    'return function readFieldsGenerated(cur, w0, w1, w2, w3, checkSub) {',
    'const b = cur.bytes; const end = cur.end; const c8 = cur.chars; const c16 = cur.chars16; const c32 = cur.chars32;',
    'const plain = b.constructor === Uint8Array;',
    'let p = cur.pos; let o = cur.cpos; let t = 0; let fi = 0, fk = 0;',
    'let q = 0, n = 0, v = 0, x = 0, y = 0, m = 0, z = 0, r = 0, e = 0, st = 0, nb = 0, od = false, g = null;',
    ...(keyWords > 0 ? [`let ih = 0, ie = 0, ${keys.join(', ')};`] : []),
    // One local per value; the array of them is made once, at the end.
    ...(blocks.length > 0 ? [`let ${values};`] : []),
    'READ: {',
    ...blocks,
    'cur.pos = p; cur.cpos = o; cur.texts = t;',
    `return [${values}];`,
    '}',
    // Handed over at field `fi`: the reference reader reads it and the rest into the same array.
    `const dense = [${values}];`,
    'cur.texts = R(cur, fi, w0, w1, w2, w3, dense, checkSub, fk, t, p, o);',
    'return dense;',
    '};',
  ].join('\n');
}

/**
 * Helper names the generated code uses, and their values (per table: R and C are the table's). The
 * intern caches of the fields a reader reads are added per reader (`internHelpers`).
 */
function readerHelpers(
  table: readonly (FieldCodec | undefined)[],
  specName: string,
): Record<string, unknown> {
  // The hand-over: the reference reader resumes at field `id` (value `k`), with the words of that field
  // and after it only.
  const R = (
    cur: ReadCursor,
    id: number,
    w0: number,
    w1: number,
    w2: number,
    w3: number,
    dense: FieldValue[],
    checkSub: boolean,
    k: number,
    t: number,
    p: number,
    o: number,
  ): number => {
    const w = (id - 1) >> 5;
    const mask = 0xffffffff >>> ((id - 1) & 31);
    cur.pos = p;
    cur.cpos = o;
    return FieldCodec.readFields(
      table,
      cur,
      w > 0 ? 0 : w0 & mask,
      w > 1 ? 0 : w < 1 ? w1 : w1 & mask,
      w > 2 ? 0 : w < 2 ? w2 : w2 & mask,
      w < 3 ? w3 : w3 & mask,
      dense,
      checkSub,
      specName,
      k,
      t,
    );
  };
  return {
    R,
    C: table,
    TA: TEXT_AT,
    TS: TEXT_START,
    TE: TEXT_END,
    PD: PAIRS_DIGITS,
    PT: PAIRS_TRACK,
    PH: PAIRS_HEX,
    NC: NIBBLE_CHAR,
    SD: smallDigits,
    S1: SMALL[1],
    S2: SMALL[2],
    S3: SMALL[3],
    S4: SMALL[4],
    DG: DIGIT_VALUE,
    BV: BCD_VALUE,
    BR: BCD_RIGHT_ODD,
    BL: BCD_LEFT_ODD,
    BS: bcdSmall,
    CB: copyBytes,
    OB: ownBytes,
    OT: ownText,
    DL: decodeLatin1,
    L1: decodeLatin1,
    FCC: String.fromCharCode,
  };
}

/** The intern caches (IKn, ICn, IVn) of the interned fields of `table` that the bitmap words announce. */
function internHelpers(
  table: readonly (FieldCodec | undefined)[],
  words: readonly number[],
): Record<string, unknown> {
  const caches: Record<string, unknown> = {};
  words.forEach((word, k) => {
    for (let j = 0; j < 32; j++) {
      const id = 32 * k + j + 1;
      const c = table[id];
      if ((word & (0x80000000 >>> j)) === 0 || c === undefined || !internable(c)) continue;
      const cache = c.internCache();
      caches[`IK${id}`] = cache.keys;
      caches[`IC${id}`] = cache.candidates;
      caches[`IV${id}`] = cache.values;
    }
  });
  return caches;
}

/** Successful reference unpacks of a bitmap before it gets a generated reader. */
export const READER_AFTER_SUCCESSES = 2;
/** Generated readers per codec table (distinct bitmaps); later bitmaps keep the reference reader. */
export const READERS_PER_TABLE = 64;
/** Slots of the bitmap hash table of a ReaderCache (a power of two, well above READERS_PER_TABLE). */
const CACHE_SLOTS = 256;
/** False once `new Function` has failed (node --disallow-code-generation-from-strings). */
let codegenAllowed = true;

/**
 * @internal The generated readers of one codec table, by bitmap: an open-addressing hash table of the
 * four words (probing compares four integers; no string key per unpack), which also counts the successful
 * unpacks of bitmaps that have no reader yet.
 */
export class ReaderCache {
  private readonly table: readonly (FieldCodec | undefined)[];
  private readonly specName: string;
  private readonly keys = new Int32Array(CACHE_SLOTS * 4);
  private readonly used = new Uint8Array(CACHE_SLOTS);
  private readonly counts = new Uint8Array(CACHE_SLOTS);
  private readonly fns: (ReaderEntry | undefined)[] = new Array(CACHE_SLOTS).fill(undefined);
  private entries = 0;
  private compiled = 0;
  private last: ReaderEntry | undefined = undefined;
  private helpers: Record<string, unknown> | undefined;

  constructor(table: readonly (FieldCodec | undefined)[], specName: string) {
    this.table = table;
    this.specName = specName;
  }

  /** The slot of the bitmap, or of the empty slot where it would go, or -1 (table full, not there). */
  private slot(w0: number, w1: number, w2: number, w3: number): number {
    const keys = this.keys;
    let h = Math.imul(w0 ^ Math.imul(w1, 0x27d4eb2d) ^ Math.imul(w2, 0x165667b1) ^ w3, 0x9e3779b1) >>> 24;
    for (let i = 0; i < CACHE_SLOTS; i++) {
      if (this.used[h] === 0) return h;
      const a = h * 4;
      if (keys[a] === w0 && keys[a + 1] === w1 && keys[a + 2] === w2 && keys[a + 3] === w3) return h;
      h = (h + 1) & (CACHE_SLOTS - 1);
    }
    return -1;
  }

  /** The generated reader of this bitmap, if it has one. */
  get(w0: number, w1: number, w2: number, w3: number): ReaderEntry | undefined {
    // The bitmap of the last message found is checked first (traffic repeats a few bitmaps).
    const last = this.last;
    if (last !== undefined && last.w0 === w0 && last.w1 === w1 && last.w2 === w2 && last.w3 === w3)
      return last;
    const h = this.slot(w0, w1, w2, w3);
    const found = h < 0 ? undefined : this.fns[h];
    if (found !== undefined) this.last = found;
    return found;
  }

  /** A message with this bitmap unpacked without error (by the reference reader). */
  succeeded(w0: number, w1: number, w2: number, w3: number): void {
    if (!codegenAllowed || this.compiled >= READERS_PER_TABLE) return;
    const h = this.slot(w0, w1, w2, w3);
    if (h < 0) return;
    if (this.used[h] === 0) {
      // Half full at most: probing stays short, and counting never pushes readers out.
      if (this.entries >= CACHE_SLOTS / 2) return;
      this.used[h] = 1;
      this.entries++;
      const a = h * 4;
      this.keys[a] = w0;
      this.keys[a + 1] = w1;
      this.keys[a + 2] = w2;
      this.keys[a + 3] = w3;
    }
    if (this.fns[h] !== undefined || ++this.counts[h]! < READER_AFTER_SUCCESSES) return;
    const source = readerSource(this.table, w0, w1, w2, w3);
    if (source === undefined) return;
    this.helpers ??= readerHelpers(this.table, this.specName);
    const helpers = { ...this.helpers, ...internHelpers(this.table, [w0, w1, w2, w3]) };
    const names = Object.keys(helpers);
    try {
      const factory = new Function(...names, source) as (...a: unknown[]) => FieldsReader;
      const read = factory(...names.map((n) => helpers[n]));
      const ranks = new Int8Array(129).fill(-1);
      let rank = 0;
      [w0, w1, w2, w3].forEach((word, k) => {
        for (let j = 0; j < 32; j++) if ((word & (0x80000000 >>> j)) !== 0) ranks[32 * k + j + 1] = rank++;
      });
      this.fns[h] = { read, ranks, w0, w1, w2, w3 };
      this.compiled++;
    } catch (e) {
      if (!(e instanceof EvalError)) throw e;
      codegenAllowed = false;
    }
  }
}

/**
 * Bytes [pos, pos + n) in memory of their own (a sensitive field: a PIN block, ICC data). Never a view of
 * the input or of a shared slab, so that keeping this value keeps nothing else alive, and nothing else
 * keeps it. A Buffer input gets a Buffer (over its own ArrayBuffer, not the pool).
 */
function ownBytes(b: Uint8Array, pos: number, n: number): Uint8Array {
  const v = new Uint8Array(n);
  for (let i = 0; i < n; i++) v[i] = b[pos + i]!;
  return b.constructor === Uint8Array || !Buffer.isBuffer(b) ? v : Buffer.from(v.buffer, 0, n);
}

/**
 * The characters `chars[start, end)` as a string of its own (a sensitive field: PAN, track data), then
 * wiped from the shared character buffer. Text values of 13 or more characters cut out of a longer string
 * are slices of it in V8 (they keep all of it alive); sensitive values must never be such a slice, nor
 * share a string with other fields, so they are made here, one native string per value, never by
 * substring. test/unpack-reference.test.ts checks it in a heap snapshot.
 */
export function ownText(chars: Uint8Array, start: number, end: number): string {
  const s = decodeLatin1(chars, start, end);
  for (let i = start; i < end; i++) chars[i] = 0;
  return s;
}

/** ISO8583_TRUNCATED: `n` bytes needed at `pos`, the input ends at `end`. */
function truncated(field: string, what: string, n: number, pos: number, end: number): Iso8583Error {
  return new Iso8583Error('ISO8583_TRUNCATED', field, `${what} needs ${n} bytes, ${end - pos} remain`, pos);
}

/** Values of up to this many digits come from `smallDigits`. */
const SMALL_DIGITS_MAX = 4;
/** Below any sum of digit values a small field can make (so one bad byte makes the sum negative). */
const NOT_DIGITS = -1e6;
/** An ASCII byte: its digit's value, or NOT_DIGITS. */
const DIGIT_VALUE = Int32Array.from({ length: 256 }, (_, v) => (v >= 48 && v <= 57 ? v - 48 : NOT_DIGITS));
/** A BCD byte: the value of its two digits, or NOT_DIGITS. */
const BCD_VALUE = Int32Array.from({ length: 256 }, (_, v) =>
  v >> 4 <= 9 && (v & 15) <= 9 ? (v >> 4) * 10 + (v & 15) : NOT_DIGITS,
);
/** The first byte of an odd count, right-justified: pad nibble (0 or F) then a digit; else NOT_DIGITS. */
const BCD_RIGHT_ODD = Int32Array.from({ length: 256 }, (_, v) =>
  (v >> 4 === 0 || v >> 4 === 15) && (v & 15) <= 9 ? v & 15 : NOT_DIGITS,
);
/** The last byte of an odd count, left-justified: a digit then pad nibble (0 or F); else NOT_DIGITS. */
const BCD_LEFT_ODD = Int32Array.from({ length: 256 }, (_, v) =>
  ((v & 15) === 0 || (v & 15) === 15) && v >> 4 <= 9 ? v >> 4 : NOT_DIGITS,
);
/** By digit count, the strings "", "0".."9", "00".."99", ... "0000".."9999", made on first use. */
const SMALL: (string | undefined)[][] = [
  [''],
  new Array(10),
  new Array(100),
  new Array(1000),
  new Array(10000),
];

/**
 * The `n`-digit string of `v` (zero-padded). Short numeric fields (dates, expiry, entry mode, condition
 * code, currency) are one of few values: sharing them spares a string per field per message.
 */
function smallDigits(n: number, v: number): string {
  const table = SMALL[n]!;
  let s = table[v];
  if (s === undefined) {
    s = String(v).padStart(n, '0');
    table[v] = s;
  }
  return s;
}

/**
 * The value of `n` (1..4) BCD digits at `p` as a number, or -1 when a nibble is not a digit or the pad
 * nibble (odd counts) is not 0 or F: `read` then says which.
 */
function bcdSmall(b: Uint8Array, p: number, n: number, leftJustified: boolean): number {
  let v = 0;
  let q = p;
  let k = n;
  if ((n & 1) === 1 && !leftJustified) {
    const x = b[q++]!;
    const pad = x >> 4;
    if ((pad !== 0 && pad !== 15) || (x & 15) > 9) return -1;
    v = x & 15;
    k--;
  }
  for (; k >= 2; k -= 2) {
    const x = b[q++]!;
    const h = x >> 4;
    const l = x & 15;
    if (h > 9 || l > 9) return -1;
    v = v * 100 + h * 10 + l;
  }
  if (k === 1) {
    const x = b[q]!;
    const pad = x & 15;
    if ((pad !== 0 && pad !== 15) || x >> 4 > 9) return -1;
    v = v * 10 + (x >> 4);
  }
  return v;
}

/**
 * A fresh Uint8Array holding bytes [pos, pos + n) (a loop beats slice() for the short values of ISO 8583).
 * A slab shared by many values (as pack's output) was tried: a view of it costs as much as a small
 * ArrayBuffer of its own in V8 (~40 ns), so each value simply gets its own.
 */
function copyBytes(b: Uint8Array, pos: number, n: number): Uint8Array {
  if (n > 64) return b.slice(pos, pos + n);
  const v = new Uint8Array(n);
  for (let i = 0; i < n; i++) v[i] = b[pos + i]!;
  return v;
}

/** Per text field read by `readFields`: its index among the fields, and its characters in `cur.chars`. */
export const TEXT_AT = new Int32Array(128);
export const TEXT_START = new Int32Array(128);
export const TEXT_END = new Int32Array(128);

/**
 * The read position and the decoded characters of an unpack in progress. Unpacking never yields, so one
 * cursor serves every call (`reset` starts a new input).
 */
export class ReadCursor {
  bytes: Uint8Array = new Uint8Array(0);
  /** Read position in `bytes`; `end` bounds every read. */
  pos = 0;
  end = 0;
  /** Where the data (after any length prefix) of the last field read starts. */
  dataStart = 0;
  /** Characters of text fields, one field after the other; `cpos` is the next free index. */
  chars: Uint8Array = new Uint8Array(1024);
  /** The same memory in 16-bit units (two BCD characters per store) and 32-bit units (wiping). */
  chars16: Uint16Array = new Uint16Array(this.chars.buffer);
  chars32: Uint32Array = new Uint32Array(this.chars.buffer);
  cpos = 0;
  /** Texts a generated reader listed in TEXT_AT/TEXT_START/TEXT_END (its result besides the values). */
  texts = 0;
  /** Where the characters of the last text field read start (they end at `cpos`). */
  cstart = 0;

  reset(bytes: Uint8Array, pos: number, end: number): void {
    this.bytes = bytes;
    this.pos = pos;
    this.end = end;
    this.dataStart = pos;
    this.cpos = 0;
    this.cstart = 0;
    // A byte gives at most 2 characters (BCD), plus an alignment gap of up to 4 per field (a field takes
    // a byte at least): six times always fits, with room for a wipe rounded up to 32 bits.
    const need = (6 * (end - pos) + 16) & ~3;
    if (this.chars.length < need) {
      this.chars = new Uint8Array(need);
      this.chars16 = new Uint16Array(this.chars.buffer);
      this.chars32 = new Uint32Array(this.chars.buffer);
    }
  }
}

/** The cursor of `FieldCodec.decode` (one field at a time, outside unpack). */
const standalone = new ReadCursor();

/** x+n: `C` or `D` then digits (ISO 8583:1987 clause 4.1, attribute "x+n"). */
function checkSigned(s: string, id: string): void {
  const c = s.charCodeAt(0);
  if (c !== 67 && c !== 68)
    throw new Iso8583Error('ISO8583_VALUE_INVALID', id, 'a signed amount starts with C or D');
  for (let i = 1; i < s.length; i++) {
    const d = s.charCodeAt(i);
    if (d < 48 || d > 57)
      throw new Iso8583Error('ISO8583_VALUE_INVALID', id, `character ${i} is not a digit`);
  }
}
