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

/** How `readFields` reads a field: a tight loop for the common layouts, else the general `read`. */
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
/** The pair table of each BCD charset (BCD_DIGITS, BCD_TRACK, BCD_HEX, BCD_HEX_TRACK). */
const PAIRS_BY_CHARSET = [PAIRS_DIGITS, PAIRS_TRACK, PAIRS_HEX, PAIRS_HEX];

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
  private readonly prefixEnc: number;
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
  /** Wire bytes of a fixed field. */
  private readonly fixedBytes: number;
  /** Text read as ASCII/EBCDIC needs a character check (n, z, x+n). */
  /** @internal */
  readonly checked: boolean;
  /** @internal Which loop of `readFields` reads this field (OP_*). */
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
   * @internal Read every field the bitmap words announce (unpack), in field order, into `dense`. The
   * common layouts are read here in one loop with the read and write positions in locals; anything
   * else, and any irregularity, goes to `read` from the start of that field (its errors and values are
   * the reference). Text fields are left in `cur.chars` and listed in TEXT_AT/TEXT_START/TEXT_END;
   * returns how many. `cur.pos` ends after the last field.
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
  ): number {
    const b = cur.bytes;
    const end = cur.end;
    const plain = b.constructor === Uint8Array;
    const c8 = cur.chars;
    const c16 = cur.chars16;
    let p = cur.pos;
    let o = cur.cpos;
    let count = 0;
    let texts = 0;
    for (let k = 0; k < 4; k++) {
      let word = k === 0 ? w0 : k === 1 ? w1 : k === 2 ? w2 : w3;
      fields: while (word !== 0) {
        const j = Math.clz32(word);
        word &= ~(0x80000000 >>> j);
        const id = 32 * k + j + 1;
        const c = table[id];
        if (c === undefined)
          throw new Iso8583Error(
            'ISO8583_FIELD_UNKNOWN',
            String(id),
            `bit ${id} is set but spec ${specName} does not define the field`,
            p,
          );
        const op = c.op;
        // One pass: `break fast` falls back to the general read below.
        fast: for (; op !== OP_GENERAL && (c.sub === undefined || !checkSub); ) {
          let q = p;
          let n = c.max;
          if (!c.fixed) {
            n = c.readPrefix(b, q, end); // its errors are read's
            q += c.prefixBytes;
          }
          if (op === OP_BINARY) {
            if (q + n > end) break;
            dense[count++] = plain ? copyBytes(b, q, n) : b.slice(q, q + n);
            p = q + n;
            continue fields;
          }
          if (op === OP_ASCII) {
            if (q + n > end) break;
            if (n <= SMALL_DIGITS_MAX && !c.signed) {
              let v = 0;
              let i = 0;
              for (; i < n; i++) {
                const d = b[q + i]! - 48;
                if (d < 0 || d > 9) break;
                v = v * 10 + d;
              }
              if (i === n) {
                // Up to 4 digits (any text type: the characters are the same): a shared string.
                dense[count++] = smallDigits(n, v);
                p = q + n;
                continue fields;
              }
            }
            if (c.checked) {
              if (c.signed) break;
              const track = c.track;
              for (let i = 0; i < n; i++) {
                const ch = b[q + i]!;
                if ((ch < 48 || ch > 57) && !(track && (ch === 61 || ch === 68))) break fast;
                c8[o + i] = ch;
              }
            } else for (let i = 0; i < n; i++) c8[o + i] = b[q + i]!;
            TEXT_AT[texts] = count++;
            TEXT_START[texts] = o;
            o += n;
            TEXT_END[texts++] = o;
            p = q + n;
            continue fields;
          }
          // OP_BCD: n digits in (n + 1) >> 1 bytes.
          const nbytes = (n + 1) >> 1;
          if (q + nbytes > end) break;
          const left = c.leftJustified;
          if (n <= SMALL_DIGITS_MAX && c.charset === BCD_DIGITS) {
            const v = bcdSmall(b, q, n, left);
            if (v < 0) break;
            dense[count++] = smallDigits(n, v);
            p = q + nbytes;
            continue fields;
          }
          const pairs = PAIRS_BY_CHARSET[c.charset]!;
          const odd = (n & 1) === 1;
          let x = o;
          // Two-character stores go to even indexes: skip a character when needed (never part of a value).
          if (((x + (odd && !left ? 1 : 0)) & 1) === 1) x++;
          const start = x;
          let r = q;
          let stop = q + nbytes;
          if (odd) {
            if (left) {
              // Last byte: a digit, then the pad nibble (0 or F).
              stop--;
              const v = b[stop]!;
              const pad = v & 15;
              if ((pad !== 0 && pad !== 15) || pairs[v & 0xf0]! === 0) break;
            } else {
              // First byte: the pad nibble, then a digit.
              const v = b[r]!;
              const pad = v >> 4;
              if ((pad !== 0 && pad !== 15) || pairs[v & 15]! === 0) break;
              c8[x++] = NIBBLE_CHAR[v & 15]!;
              r++;
            }
          }
          for (; r < stop; r++) {
            const t = pairs[b[r]!]!;
            if (t === 0) break fast;
            c16[x >> 1] = t;
            x += 2;
          }
          if (odd && left) c8[x++] = NIBBLE_CHAR[b[stop]! >> 4]!;
          TEXT_AT[texts] = count++;
          TEXT_START[texts] = start;
          TEXT_END[texts++] = x;
          o = x;
          p = q + nbytes;
          continue fields;
        }
        // The general read, from the start of the field.
        cur.pos = p;
        cur.cpos = o;
        let v: FieldValue | null = c.read(cur);
        p = cur.pos;
        if (v === null) {
          if (checkSub && c.sub !== undefined) {
            // Subfield errors come before the next field's: this value is needed now.
            v = decodeLatin1(c8, cur.cstart, cur.cpos);
          } else {
            TEXT_AT[texts] = count++;
            TEXT_START[texts] = cur.cstart;
            TEXT_END[texts++] = cur.cpos;
            o = cur.cpos;
            continue;
          }
        }
        if (checkSub && c.sub !== undefined) {
          if (c.sub.kind === 'tlv') c.sub.parse(v as Uint8Array, cur.dataStart);
          else c.sub.split(v, cur.dataStart);
        }
        dense[count++] = v;
      }
    }
    cur.pos = p;
    cur.cpos = o;
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
        // A plain Uint8Array input gets a plain copy; other inputs keep their own slice() (Buffer: a view).
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
    return v ?? decodeLatin1(cur.chars, cur.cstart, cur.cpos);
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

/** ISO8583_TRUNCATED: `n` bytes needed at `pos`, the input ends at `end`. */
function truncated(field: string, what: string, n: number, pos: number, end: number): Iso8583Error {
  return new Iso8583Error('ISO8583_TRUNCATED', field, `${what} needs ${n} bytes, ${end - pos} remain`, pos);
}

/** Values of up to this many digits come from `smallDigits`. */
const SMALL_DIGITS_MAX = 4;
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

/** A fresh Uint8Array holding bytes [pos, pos + n) (a loop beats slice() for the short values of ISO 8583). */
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
  /** The same memory in 16-bit units (two BCD characters per store). */
  chars16: Uint16Array = new Uint16Array(this.chars.buffer);
  cpos = 0;
  /** Where the characters of the last text field read start (they end at `cpos`). */
  cstart = 0;

  reset(bytes: Uint8Array, pos: number, end: number): void {
    this.bytes = bytes;
    this.pos = pos;
    this.end = end;
    this.dataStart = pos;
    this.cpos = 0;
    this.cstart = 0;
    // A byte gives at most 2 characters (BCD), plus one alignment gap per field: three times always fits.
    const need = 3 * (end - pos) + 8;
    if (this.chars.length < need) {
      this.chars = new Uint8Array(need + (need & 1));
      this.chars16 = new Uint16Array(this.chars.buffer);
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
