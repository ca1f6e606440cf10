/**
 * Byte-level encodings of ISO 8583 data: ASCII (ISO 646, read as Latin-1 so that every byte round-trips),
 * EBCDIC (code page 037, printable ASCII subset), packed BCD and ASCII hex.
 *
 * These are the leaves of the codec hot path: they write into a growable `Writer` and read from a
 * `Reader` cursor, so a field costs no intermediate arrays. Errors carry the field path and the byte
 * offset, never the bytes themselves.
 */

import { Iso8583Error } from './errors.js';

/** A growable output buffer. One is reused per pack call chain; `take()` copies the result out. */
export class Writer {
  buf: Uint8Array;
  pos = 0;

  constructor(initialBytes = 1024) {
    this.buf = new Uint8Array(initialBytes);
  }

  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = Math.max(this.buf.length * 2, 64);
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  bytes(b: Uint8Array): void {
    const n = b.length;
    this.ensure(n);
    if (n > 32) this.buf.set(b, this.pos);
    else {
      // A loop beats set() for the few bytes of a PIN block or a MAC.
      const buf = this.buf;
      const p = this.pos;
      for (let i = 0; i < n; i++) buf[p + i] = b[i]!;
    }
    this.pos += n;
  }

  /** A copy of what was written (the buffer is reused by the next pack). */
  take(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

/** A read cursor over the input being unpacked. `end` bounds every read (a field never reads past it). */
export class Reader {
  readonly bytes: Uint8Array;
  pos: number;
  end: number;
  /** Where the data (after any length prefix) of the last decoded field starts. */
  dataStart = 0;

  constructor(bytes: Uint8Array, pos = 0, end = bytes.length) {
    this.bytes = bytes;
    this.pos = pos;
    this.end = end;
  }

  /** Throw ISO8583_TRUNCATED unless `n` more bytes are available. */
  need(n: number, field: string, what: string): void {
    if (this.pos + n > this.end)
      throw new Iso8583Error(
        'ISO8583_TRUNCATED',
        field,
        `${what} needs ${n} bytes, ${this.end - this.pos} remain`,
        this.pos,
      );
  }
}

// ------------------------------------------------------------------------------------------------
// ASCII / Latin-1
// ------------------------------------------------------------------------------------------------

const latin1Slice = (Buffer.prototype as unknown as { latin1Slice: (s: number, e: number) => string })
  .latin1Slice;

/** Bytes [start, end) as a string of Latin-1 characters (one char per byte; ISO 646 is its lower half). */
export function decodeLatin1(bytes: Uint8Array, start: number, end: number): string {
  // Buffer's native latin1Slice makes one flat string: ~3x faster than concatenating characters.
  return latin1Slice.call(bytes, start, end);
}

/** Write each character as one byte. Characters above U+00FF cannot be carried: ISO8583_VALUE_INVALID. */
export function encodeLatin1(s: string, w: Writer, field: string): void {
  const n = s.length;
  w.ensure(n);
  const buf = w.buf;
  let p = w.pos;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff)
      throw new Iso8583Error('ISO8583_VALUE_INVALID', field, `character ${i} is not a single byte`);
    buf[p++] = c;
  }
  w.pos = p;
}

// ------------------------------------------------------------------------------------------------
// EBCDIC, IBM code page 037: the printable ASCII range 0x20-0x7E (digits, letters, space, punctuation).
// Table checked against Python's cp037 codec.
// ------------------------------------------------------------------------------------------------

const CP037_PRINTABLE_HEX =
  '405a7f7b5b6c507d4d5d5c4e6b604b61f0f1f2f3f4f5f6f7f8f97a5e4c7e6e6f7cc1c2c3c4c5c6c7c8c9d1d2d3d4d5d6d7d8d9e2e3e4e5e6e7e8e9bae0bbb06d79818283848586878889919293949596979899a2a3a4a5a6a7a8a9c04fd0a1';
/** ASCII code -> EBCDIC byte, -1 when not in the subset. */
const ASCII_TO_EBCDIC = new Int16Array(256).fill(-1);
/** EBCDIC byte -> ASCII code, -1 when not in the subset. */
const EBCDIC_TO_ASCII = new Int16Array(256).fill(-1);
for (let i = 0; i < 95; i++) {
  const e = Number.parseInt(CP037_PRINTABLE_HEX.slice(i * 2, i * 2 + 2), 16);
  ASCII_TO_EBCDIC[0x20 + i] = e;
  EBCDIC_TO_ASCII[e] = 0x20 + i;
}

export function encodeEbcdic(s: string, w: Writer, field: string): void {
  const n = s.length;
  w.ensure(n);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    const e = c < 256 ? ASCII_TO_EBCDIC[c]! : -1;
    if (e < 0)
      throw new Iso8583Error('ISO8583_ENCODING_INVALID', field, `character ${i} has no EBCDIC (CP037) code`);
    w.buf[w.pos++] = e;
  }
}

export function decodeEbcdic(bytes: Uint8Array, start: number, end: number, field: string): string {
  let s = '';
  for (let i = start; i < end; i++) {
    const c = EBCDIC_TO_ASCII[bytes[i]!]!;
    if (c < 0)
      throw new Iso8583Error('ISO8583_ENCODING_INVALID', field, 'byte is not an EBCDIC (CP037) character', i);
    s += String.fromCharCode(c);
  }
  return s;
}

/** `decodeEbcdic` into `out` at `o` (returns the index after the last character). */
export function decodeEbcdicInto(
  bytes: Uint8Array,
  start: number,
  end: number,
  field: string,
  out: Uint8Array,
  o: number,
): number {
  for (let i = start; i < end; i++) {
    const c = EBCDIC_TO_ASCII[bytes[i]!]!;
    if (c < 0)
      throw new Iso8583Error('ISO8583_ENCODING_INVALID', field, 'byte is not an EBCDIC (CP037) character', i);
    out[o++] = c;
  }
  return o;
}

// ------------------------------------------------------------------------------------------------
// Packed BCD. Two decimal digits per byte, high nibble first (ISO 8583:1987 clause 4.3, "n" packed).
// Track data (type z) also allows nibble D, the field separator of ISO/IEC 7813 track 2 ('=' in ASCII).
// A field with `bcd.nibbles: "hex"` allows every nibble 0-F, read back as upper-case hex characters: the
// UnionPay terminal enciphers 8 bytes of the packed track 2 under the TDK in place (53 position 3 = 1).
// ------------------------------------------------------------------------------------------------

/** Which nibbles a BCD field carries (`charset` of the BCD functions below). */
export const BCD_DIGITS = 0;
/** Digits and D, the track 2 separator (type z); '=' and 'd' are accepted when packing and written as D. */
export const BCD_TRACK = 1;
/** Any nibble, as an upper-case hex character (`bcd.nibbles: "hex"`, type n); 'a'-'f' accepted when packing. */
export const BCD_HEX = 2;
/** BCD_HEX for track data (type z): also '=' when packing, written as D. */
export const BCD_HEX_TRACK = 3;

/** Decoded characters are written here, then read out as one string (no per-digit concatenation). */
let scratch = new Uint8Array(256);

/** Nibble value of a character for BCD packing under `charset` (BCD_*); -1 when it is not allowed. */
function nibbleOf(c: number, charset: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (charset >= BCD_HEX) {
    if (c >= 65 && c <= 70) return c - 55; // 'A'-'F'
    if (c >= 97 && c <= 102) return c - 87; // 'a'-'f'
    return charset === BCD_HEX_TRACK && c === 61 ? 13 : -1; // '='
  }
  if (charset === BCD_TRACK && (c === 68 || c === 61 || c === 100)) return 13; // 'D', '=', 'd'
  return -1;
}

/**
 * Pack `s` (digits, or track characters) into ceil(len/2) bytes. For an odd count the pad nibble goes
 * first when right-justified (jPOS BCDInterpreter.LEFT_PADDED) or last when left-justified (RIGHT_PADDED).
 */
export function encodeBcd(
  s: string,
  w: Writer,
  field: string,
  leftJustified: boolean,
  padNibble: number,
  charset: number,
): void {
  const n = s.length;
  const nbytes = (n + 1) >> 1;
  w.ensure(nbytes);
  const buf = w.buf;
  let p = w.pos;
  let i = 0;
  const odd = (n & 1) === 1;
  if (odd && !leftJustified) {
    const d = nibbleOf(s.charCodeAt(0), charset);
    if (d < 0) throw badDigit(field, 0, charset);
    buf[p++] = (padNibble << 4) | d;
    i = 1;
  }
  const stop = odd && leftJustified ? n - 1 : n;
  for (; i < stop; i += 2) {
    const h = nibbleOf(s.charCodeAt(i), charset);
    const l = nibbleOf(s.charCodeAt(i + 1), charset);
    if (h < 0) throw badDigit(field, i, charset);
    if (l < 0) throw badDigit(field, i + 1, charset);
    buf[p++] = (h << 4) | l;
  }
  if (odd && leftJustified) {
    const d = nibbleOf(s.charCodeAt(n - 1), charset);
    if (d < 0) throw badDigit(field, n - 1, charset);
    buf[p++] = (d << 4) | padNibble;
  }
  w.pos = p;
}

const BAD_DIGIT_RULES = [
  'is not a digit',
  'is not a digit or the separator D/=',
  'is not a hex digit',
  'is not a hex digit or the separator =',
];

function badDigit(field: string, i: number, charset: number): Iso8583Error {
  return new Iso8583Error('ISO8583_VALUE_INVALID', field, `character ${i} ${BAD_DIGIT_RULES[charset]}`);
}

function badNibble(field: string, offset: number): Iso8583Error {
  return new Iso8583Error('ISO8583_BCD_INVALID', field, 'a BCD nibble is not a decimal digit', offset);
}

/** The pad nibble of odd BCD is not 0 or F (any other nibble is data under BCD_HEX, so it gets its own rule). */
function badPad(field: string, offset: number, charset: number): Iso8583Error {
  return charset >= BCD_HEX
    ? new Iso8583Error('ISO8583_BCD_INVALID', field, 'the BCD pad nibble is not 0 or F', offset)
    : badNibble(field, offset);
}

/** A pad nibble read back must be 0 or F (both are in use; jPOS writes 0, UnionPay track data F). */
function isPadNibble(v: number): boolean {
  return v === 0 || v === 15;
}

/**
 * Unpack `digits` characters (digits >= 0) from bytes starting at `start` (ceil(digits/2) bytes, already
 * bounds-checked). Invalid nibbles throw ISO8583_BCD_INVALID at the offending byte.
 */
export function decodeBcd(
  bytes: Uint8Array,
  start: number,
  digits: number,
  field: string,
  leftJustified: boolean,
  charset: number,
): string {
  if (scratch.length < digits) scratch = new Uint8Array(digits * 2);
  const o = decodeBcdInto(bytes, start, digits, field, leftJustified, charset, scratch, 0);
  return latin1Slice.call(scratch, 0, o);
}

/**
 * `decodeBcd` into `out` at `o` (returns the index after the last character): the unpack path, which
 * makes one string of all text fields at the end. Reads exactly bytes [start, start + ceil(digits / 2)).
 */
export function decodeBcdInto(
  bytes: Uint8Array,
  start: number,
  digits: number,
  field: string,
  leftJustified: boolean,
  charset: number,
  out: Uint8Array,
  o: number,
): number {
  if (!(digits >= 0)) throw new RangeError('decodeBcdInto: digits must be >= 0');
  let p = start;
  const odd = (digits & 1) === 1;
  if (odd && !leftJustified) {
    const b = bytes[p]!;
    if (!isPadNibble(b >> 4)) throw badPad(field, p, charset);
    out[o++] = charOf(b & 15, charset, field, p);
    p++;
  }
  const stop = p + (digits >> 1);
  for (; p < stop; p++) {
    const b = bytes[p]!;
    const h = b >> 4;
    const l = b & 15;
    if (h < 10 && l < 10) {
      out[o] = 48 + h;
      out[o + 1] = 48 + l;
    } else {
      out[o] = charOf(h, charset, field, p);
      out[o + 1] = charOf(l, charset, field, p);
    }
    o += 2;
  }
  if (odd && leftJustified) {
    const b = bytes[p]!;
    if (!isPadNibble(b & 15)) throw badPad(field, p, charset);
    out[o++] = charOf(b >> 4, charset, field, p);
  }
  return o;
}

const HEX_CHAR = Uint8Array.from('0123456789ABCDEF', (c) => c.charCodeAt(0));

/** A nibble as a character code under `charset`; a nibble it does not allow is ISO8583_BCD_INVALID. */
function charOf(v: number, charset: number, field: string, offset: number): number {
  if (v < 10 || charset >= BCD_HEX || (charset === BCD_TRACK && v === 13)) return HEX_CHAR[v]!;
  throw badNibble(field, offset);
}

// ------------------------------------------------------------------------------------------------
// ASCII hex (two upper-case characters per byte), as jPOS IFA_BINARY and the hex bitmap.
// ------------------------------------------------------------------------------------------------

const HEX_UPPER = '0123456789ABCDEF';
const HEX_BYTE: string[] = [];
for (let b = 0; b < 256; b++) HEX_BYTE.push(HEX_UPPER[b >> 4]! + HEX_UPPER[b & 15]!);
const HEX_VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX_VALUE[HEX_UPPER.charCodeAt(i)] = i;
  HEX_VALUE['0123456789abcdef'.charCodeAt(i)] = i;
}

export function bytesToHex(b: Uint8Array, start = 0, end = b.length): string {
  let s = '';
  for (let i = start; i < end; i++) s += HEX_BYTE[b[i]!];
  return s;
}

/** Parse a hex string (either case). Throws ISO8583_VALUE_INVALID naming `field` on odd length or a bad digit. */
export function hexToBytes(hex: string, field: string): Uint8Array {
  if ((hex.length & 1) === 1) throw new Iso8583Error('ISO8583_VALUE_INVALID', field, 'hex has an odd length');
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) {
    const c1 = hex.charCodeAt(2 * i);
    const c2 = hex.charCodeAt(2 * i + 1);
    const h = c1 < 256 ? HEX_VALUE[c1]! : -1;
    const l = c2 < 256 ? HEX_VALUE[c2]! : -1;
    if (h < 0 || l < 0)
      throw new Iso8583Error('ISO8583_VALUE_INVALID', field, `hex character near ${2 * i} is not 0-9/A-F`);
    out[i] = (h << 4) | l;
  }
  return out;
}

/** Write bytes as ASCII hex characters. */
export function encodeHexAscii(b: Uint8Array, w: Writer): void {
  w.ensure(b.length * 2);
  const buf = w.buf;
  let p = w.pos;
  for (let i = 0; i < b.length; i++) {
    const v = b[i]!;
    buf[p++] = HEX_UPPER.charCodeAt(v >> 4);
    buf[p++] = HEX_UPPER.charCodeAt(v & 15);
  }
  w.pos = p;
}

/** Read `n` bytes written as 2n ASCII hex characters at `start`. Bad characters: ISO8583_ENCODING_INVALID. */
export function decodeHexAscii(bytes: Uint8Array, start: number, n: number, field: string): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const h = HEX_VALUE[bytes[start + 2 * i]!]!;
    const l = HEX_VALUE[bytes[start + 2 * i + 1]!]!;
    if (h < 0 || l < 0)
      throw new Iso8583Error(
        'ISO8583_ENCODING_INVALID',
        field,
        'byte is not an ASCII hex character',
        start + 2 * i + (h < 0 ? 0 : 1),
      );
    out[i] = (h << 4) | l;
  }
  return out;
}
