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
  decodeBcd,
  decodeEbcdic,
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
  private readonly prefixBytes: number;
  private readonly unitBytes: boolean;
  private readonly leftJustified: boolean;
  private readonly padNibble: number;
  private readonly track: boolean;
  private readonly signed: boolean;
  private readonly numeric: boolean;
  private readonly padSide: number;
  private readonly padChar: string;

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
          encodeBcd(s.length === 1 ? '' : s.slice(1), w, id, this.leftJustified, this.padNibble, false);
        } else {
          encodeBcd(s, w, id, this.leftJustified, this.padNibble, this.track);
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

  private decodePrefix(r: Reader): number {
    const id = this.id;
    r.need(this.prefixBytes, id, 'length prefix');
    const b = r.bytes;
    const start = r.pos;
    let n = 0;
    switch (this.prefixEnc) {
      case ENC_ASCII:
      case ENC_EBCDIC: {
        const base = this.prefixEnc === ENC_ASCII ? 48 : 0xf0;
        for (let i = 0; i < this.digits; i++) {
          const v = b[start + i]! - base;
          if (v < 0 || v > 9)
            throw new Iso8583Error(
              'ISO8583_LENGTH_INVALID',
              id,
              'length prefix is not decimal digits',
              start + i,
            );
          n = n * 10 + v;
        }
        break;
      }
      case ENC_BCD:
        for (let i = 0; i < this.prefixBytes; i++) {
          const v = b[start + i]!;
          if (v >> 4 > 9 || (v & 15) > 9)
            throw new Iso8583Error(
              'ISO8583_LENGTH_INVALID',
              id,
              'length prefix is not BCD digits',
              start + i,
            );
          n = n * 100 + (v >> 4) * 10 + (v & 15);
        }
        break;
      default:
        n = this.prefixBytes === 1 ? b[start]! : (b[start]! << 8) | b[start + 1]!;
    }
    if (n > this.max)
      throw new Iso8583Error('ISO8583_LENGTH_EXCEEDED', id, `length ${n} exceeds max ${this.max}`, start);
    r.pos = start + this.prefixBytes;
    return n;
  }

  /** Read this field at `r.pos`, advance past it and return its value. */
  decode(r: Reader): FieldValue {
    const id = this.id;
    let chars: number;
    let nbytes: number;
    if (this.fixed) {
      chars = this.max;
      nbytes = this.wireBytes(chars);
    } else {
      const prefixAt = r.pos;
      const n = this.decodePrefix(r);
      if (!this.unitBytes) {
        chars = n;
        nbytes = this.wireBytes(n);
      } else {
        nbytes = n;
        chars = this.charsFromBytes(r, n, prefixAt);
      }
    }
    r.need(nbytes, id, 'field data');
    const b = r.bytes;
    const start = r.pos;
    r.dataStart = start;
    r.pos = start + nbytes;
    switch (this.enc) {
      case ENC_BINARY:
        return b.slice(start, start + nbytes);
      case ENC_HEX:
        return decodeHexAscii(b, start, chars, id);
      case ENC_BCD: {
        if (this.signed) {
          const sign = b[start]!;
          if (sign !== 67 && sign !== 68)
            throw new Iso8583Error('ISO8583_VALUE_INVALID', id, 'amount sign is not C or D', start);
          return (
            (sign === 67 ? 'C' : 'D') + decodeBcd(b, start + 1, chars - 1, id, this.leftJustified, false)
          );
        }
        return decodeBcd(b, start, chars, id, this.leftJustified, this.track);
      }
      case ENC_EBCDIC: {
        const s = decodeEbcdic(b, start, start + nbytes, id);
        this.checkDecodedText(s, start);
        return s;
      }
      default: {
        const s = decodeLatin1(b, start, start + nbytes);
        this.checkDecodedText(s, start);
        return s;
      }
    }
  }

  /** With `unit: bytes`, the character count follows from the byte count (and, for BCD, a trailing F pad). */
  private charsFromBytes(r: Reader, n: number, prefixAt: number): number {
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
        r.need(n, this.id, 'field data');
        // An F pad nibble on the justified-away side marks an odd digit count; a 0 pad is ambiguous and kept.
        const edge = this.leftJustified ? r.bytes[r.pos + n - 1]! & 15 : r.bytes[r.pos]! >> 4;
        return edge === 15 ? 2 * n - 1 : 2 * n;
      }
      default:
        return n;
    }
  }

  private checkDecodedText(s: string, start: number): void {
    if (this.numeric || this.track) {
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if ((c < 48 || c > 57) && !(this.track && (c === 61 || c === 68)))
          throw new Iso8583Error(
            'ISO8583_VALUE_INVALID',
            this.id,
            this.track ? 'byte is not a digit or the separator D/=' : 'byte is not a digit',
            start + i,
          );
      }
    } else if (this.signed) {
      const c = s.charCodeAt(0);
      if (c !== 67 && c !== 68)
        throw new Iso8583Error('ISO8583_VALUE_INVALID', this.id, 'amount sign is not C or D', start);
      for (let i = 1; i < s.length; i++) {
        const d = s.charCodeAt(i);
        if (d < 48 || d > 57)
          throw new Iso8583Error('ISO8583_VALUE_INVALID', this.id, 'byte is not a digit', start + i);
      }
    }
  }
}

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
