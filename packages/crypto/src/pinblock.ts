/**
 * ISO 9564-1:2017 PIN blocks: clause 9.3 (64-bit formats 0-3, TDES) and 9.4.2 (128-bit format 4, AES).
 * Clause numbers below follow the 2017 edition (9.3.2 format 0, 9.3.3 format 1, 9.3.4 format 2, 9.3.5 format 3,
 * 9.4.2 format 4), as cited by openemv/pinblock.
 *
 * | format | size | cipher | content |
 * |---|---|---|---|
 * | 0 | 8 bytes | TDES | control 0, PIN length, PIN, F fill; XOR the PAN field (0000 + 12 PAN digits) |
 * | 1 | 8 bytes | TDES | control 1, PIN length, PIN, transaction field (random or unique nibbles) |
 * | 2 | 8 bytes | TDES (ICC only) | control 2, PIN length, PIN, F fill |
 * | 3 | 8 bytes | TDES | as format 0 but the fill is random nibbles A-F |
 * | 4 | 16 bytes | AES | PIN field (control 4, length, PIN, A fill, 8 random bytes) enciphered, XOR the PAN field, enciphered again |
 *
 * "Clear block" below means the plaintext the cipher takes: for formats 0 and 3 that is the PIN field already
 * XORed with the PAN field (as ISO 9564-1 defines the plaintext PIN block); for format 4 it is the PIN field
 * (the PAN field enters only between the two AES encipherments, clause 9.4.2.3).
 *
 * Random fill comes from node:crypto `randomBytes` unless the caller injects `fill` (tests reproducing a
 * published vector, or a terminal with its own DRBG). Nothing here puts a PIN, PAN, key or block value in an
 * error message: only lengths, format numbers and the name of the rule that failed.
 */
import { randomBytes } from 'node:crypto';
import { xor, wipe } from './bytes.js';
import { aesDecryptEcb, aesEncryptEcb, tdesDecryptEcb, tdesEncryptEcb } from './cipher.js';
import { CryptoError } from './errors.js';

export type PinBlockFormat = 0 | 1 | 2 | 3 | 4;

export const PIN_BLOCK_FORMATS: readonly PinBlockFormat[] = [0, 1, 2, 3, 4];

/**
 * Where the random part of a block comes from:
 * - `Uint8Array`: the exact fill nibbles, taken high nibble first, as many as the block needs (format 1:
 *   14 - PIN length nibbles; format 3: the same, each A-F; format 4: 8 bytes). Extra nibbles are ignored.
 * - a function: a random byte source used instead of `randomBytes(byteCount)`.
 */
export type PinBlockFill = Uint8Array | ((byteCount: number) => Uint8Array);

export interface EncodePinBlockOptions {
  /** Fill for formats 1, 3 and 4 (ignored by 0 and 2, whose fill is fixed F). Default: node:crypto randomBytes. */
  fill?: PinBlockFill;
}

/** ISO 9564-1:2017 clauses 8.1 and 9.1: a PIN has 4 to 12 digits. */
export const PIN_LENGTH_MIN = 4;
export const PIN_LENGTH_MAX = 12;
/** ISO/IEC 7812-1: a PAN has 8 to 19 digits (10 to 19 with the 8-digit IINs of the 2017 edition). */
export const PAN_LENGTH_MIN = 8;
export const PAN_LENGTH_MAX = 19;

const DIGITS_RE = /^[0-9]*$/;
/** A bounded number of draws from the random source for format 3 (rejection sampling of A-F). */
const FORMAT3_MAX_DRAWS = 8;

// --- input checks (shared with pinverify.ts) ---

/** Throws CRYPTO_PIN_INVALID unless `pin` is 4 to 12 decimal digits (ISO 9564-1:2017 clauses 8.1, 9.1). */
export function assertPin(pin: string, field = 'pin'): void {
  if (typeof pin !== 'string') throw new TypeError(`${field} must be a string`);
  if (!DIGITS_RE.test(pin)) throw new CryptoError('CRYPTO_PIN_INVALID', field, 'must be decimal digits only');
  if (pin.length < PIN_LENGTH_MIN || pin.length > PIN_LENGTH_MAX) {
    throw new CryptoError(
      'CRYPTO_PIN_INVALID',
      field,
      `must be ${PIN_LENGTH_MIN} to ${PIN_LENGTH_MAX} digits, got ${pin.length}`,
    );
  }
}

/**
 * Throws CRYPTO_PAN_INVALID unless `pan` is `min` to 19 decimal digits; `purpose` says why the minimum
 * (e.g. "ISO 9564 format 0"). Never echoes the PAN.
 */
export function assertPan(pan: string | undefined, purpose: string, min: number, field = 'pan'): string {
  if (pan === undefined) throw new CryptoError('CRYPTO_PAN_INVALID', field, `is required for ${purpose}`);
  if (typeof pan !== 'string') throw new TypeError(`${field} must be a string`);
  if (!DIGITS_RE.test(pan)) throw new CryptoError('CRYPTO_PAN_INVALID', field, 'must be decimal digits only');
  if (pan.length < min) {
    throw new CryptoError(
      'CRYPTO_PAN_INVALID',
      field,
      `must be at least ${min} digit${min === 1 ? '' : 's'} for ${purpose}, got ${pan.length}`,
    );
  }
  if (pan.length > PAN_LENGTH_MAX) {
    throw new CryptoError(
      'CRYPTO_PAN_INVALID',
      field,
      `must be at most ${PAN_LENGTH_MAX} digits, got ${pan.length}`,
    );
  }
  return pan;
}

function assertFormat(format: number): asserts format is PinBlockFormat {
  if (!(PIN_BLOCK_FORMATS as readonly number[]).includes(format)) {
    throw new CryptoError(
      'CRYPTO_ALGORITHM',
      'format',
      'unknown ISO 9564 PIN block format (expected 0, 1, 2, 3 or 4)',
    );
  }
}

/** Formats 0-3 are 64-bit blocks for TDES (clause 9.3), format 4 a 128-bit block for AES (clause 9.4.2). */
function assertPinKey(format: PinBlockFormat, key: Uint8Array): void {
  if (!(key instanceof Uint8Array)) throw new TypeError('key must be a Uint8Array');
  if (format === 4) {
    if (key.length !== 16 && key.length !== 24 && key.length !== 32) {
      throw new CryptoError(
        'CRYPTO_KEY_LENGTH',
        'key',
        `ISO 9564 format 4 needs an AES key of 16, 24 or 32 bytes, got ${key.length}`,
      );
    }
  } else if (key.length !== 16 && key.length !== 24) {
    throw new CryptoError(
      'CRYPTO_KEY_LENGTH',
      'key',
      `ISO 9564 format ${format} needs a TDES key of 16 or 24 bytes, got ${key.length}`,
    );
  }
}

function assertBlockLength(format: PinBlockFormat, block: Uint8Array, field = 'pinblock'): void {
  if (!(block instanceof Uint8Array)) throw new TypeError(`${field} must be a Uint8Array`);
  const want = format === 4 ? 16 : 8;
  if (block.length !== want) {
    throw new CryptoError(
      'CRYPTO_PINBLOCK_INVALID',
      field,
      `must be ${want} bytes for ISO 9564 format ${format}, got ${block.length}`,
    );
  }
}

// --- nibbles ---

function toNibbles(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length * 2);
  for (let i = 0; i < bytes.length; i++) {
    out[2 * i] = bytes[i]! >> 4;
    out[2 * i + 1] = bytes[i]! & 0x0f;
  }
  return out;
}

function fromNibbles(nibbles: Uint8Array): Uint8Array {
  const out = new Uint8Array(nibbles.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = (nibbles[2 * i]! << 4) | nibbles[2 * i + 1]!;
  return out;
}

function drawBytes(source: (n: number) => Uint8Array, n: number): Uint8Array {
  const out = source(n);
  if (!(out instanceof Uint8Array) || out.length !== n) {
    throw new TypeError(`fill: the random source must return a Uint8Array of ${n} bytes`);
  }
  return out;
}

/** `count` fill nibbles for format 1 (any value), 3 (A-F) or 4 (any value). */
function fillNibbles(format: 1 | 3 | 4, count: number, fill: PinBlockFill | undefined): Uint8Array {
  if (fill instanceof Uint8Array) {
    const all = toNibbles(fill);
    if (all.length < count) {
      wipe(all);
      throw new CryptoError(
        'CRYPTO_PARAM',
        'fill',
        `ISO 9564 format ${format} needs ${count} fill nibbles, got ${all.length}`,
      );
    }
    const out = all.slice(0, count);
    wipe(all);
    if (format === 3 && out.some((n) => n < 0xa)) {
      wipe(out);
      throw new CryptoError('CRYPTO_PARAM', 'fill', 'ISO 9564 format 3 fill nibbles must be A to F');
    }
    return out;
  }
  if (fill !== undefined && typeof fill !== 'function') {
    throw new TypeError('fill must be a Uint8Array or a function');
  }
  const source = fill ?? ((n: number) => new Uint8Array(randomBytes(n)));
  if (format !== 3) {
    const bytes = drawBytes(source, Math.ceil(count / 2));
    const out = toNibbles(bytes).slice(0, count);
    wipe(bytes);
    return out;
  }
  // Format 3 (clause 9.3.5.2): each fill nibble is random in A-F. Unbiased: a byte below 252 maps by % 6.
  const out = new Uint8Array(count);
  let have = 0;
  for (let draw = 0; draw < FORMAT3_MAX_DRAWS && have < count; draw++) {
    const bytes = drawBytes(source, 16);
    for (const b of bytes) {
      if (have === count) break;
      if (b < 252) out[have++] = 0xa + (b % 6);
    }
    wipe(bytes);
  }
  if (have < count) {
    throw new CryptoError('CRYPTO_PARAM', 'fill', 'the random source gave too few usable bytes for format 3');
  }
  return out;
}

// --- PIN field (the PIN-carrying nibbles common to every format) ---

/** Nibbles C, N, P..P, fill: the first 16 nibbles of every format (clauses 9.3.2.2 to 9.3.5.2, 9.4.2.2.2). */
function pinFieldNibbles(control: number, pin: string, fill: Uint8Array | number): Uint8Array {
  const out = new Uint8Array(16);
  out[0] = control;
  out[1] = pin.length;
  for (let i = 0; i < pin.length; i++) out[2 + i] = pin.charCodeAt(i) - 0x30;
  for (let i = 2 + pin.length, j = 0; i < 16; i++, j++) {
    out[i] = typeof fill === 'number' ? fill : fill[j]!;
  }
  return out;
}

type FillRule = 'F' | 'A' | 'A-F' | 'any';

const FILL_RULE_TEXT: Record<Exclude<FillRule, 'any'>, string> = {
  F: 'filler after the PIN is not all F',
  A: 'filler after the PIN is not all A',
  'A-F': 'filler after the PIN is not all A to F',
};

/** Reads the PIN out of the first 16 nibbles, checking control, length, digits and filler. */
function parsePinField(nibbles: Uint8Array, format: PinBlockFormat, rule: FillRule): string {
  if (nibbles[0] !== format) {
    throw new CryptoError(
      'CRYPTO_PINBLOCK_INVALID',
      'pinblock',
      `control field is not ${format} (ISO 9564 format ${format})`,
    );
  }
  const n = nibbles[1]!;
  if (n < PIN_LENGTH_MIN || n > PIN_LENGTH_MAX) {
    throw new CryptoError(
      'CRYPTO_PINBLOCK_INVALID',
      'pinblock',
      `PIN length field is not ${PIN_LENGTH_MIN} to ${PIN_LENGTH_MAX}`,
    );
  }
  let pin = '';
  for (let i = 2; i < 2 + n; i++) {
    const d = nibbles[i]!;
    if (d > 9) throw new CryptoError('CRYPTO_PINBLOCK_INVALID', 'pinblock', 'a PIN digit is not 0 to 9');
    pin += String.fromCharCode(0x30 + d);
  }
  if (rule !== 'any') {
    for (let i = 2 + n; i < 16; i++) {
      const f = nibbles[i]!;
      const ok = rule === 'F' ? f === 0xf : rule === 'A' ? f === 0xa : f >= 0xa;
      if (!ok) throw new CryptoError('CRYPTO_PINBLOCK_INVALID', 'pinblock', FILL_RULE_TEXT[rule]);
    }
  }
  return pin;
}

/**
 * Formats 0 and 3, clauses 9.3.2.3 and 9.3.5.3: 0000 then the 12 rightmost PAN digits excluding the check
 * digit; a PAN with fewer than 12 digits before its check digit is right-justified with leading zeros.
 */
function panFieldIso0(pan: string | undefined, format: 0 | 3): Uint8Array {
  const p = assertPan(pan, `ISO 9564 format ${format}`, PAN_LENGTH_MIN);
  const digits = p.slice(0, -1).slice(-12).padStart(12, '0');
  const out = new Uint8Array(16);
  for (let i = 0; i < 12; i++) out[4 + i] = digits.charCodeAt(i) - 0x30;
  return out;
}

function xorNibbles(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

function encodeWithPan(format: 0 | 3, pin: string, pan: string | undefined, fill?: PinBlockFill): Uint8Array {
  assertPin(pin);
  const panField = panFieldIso0(pan, format);
  const fillN = format === 0 ? 0xf : fillNibbles(3, 14 - pin.length, fill);
  const pinField = pinFieldNibbles(format, pin, fillN);
  const x = xorNibbles(pinField, panField);
  const out = fromNibbles(x);
  wipe(pinField, x, typeof fillN === 'number' ? undefined : fillN);
  return out;
}

function decodeWithPan(format: 0 | 3, block: Uint8Array, pan: string | undefined): string {
  assertBlockLength(format, block);
  const panField = panFieldIso0(pan, format);
  const nibbles = xorNibbles(toNibbles(block), panField);
  try {
    return parsePinField(nibbles, format, format === 0 ? 'F' : 'A-F');
  } finally {
    wipe(nibbles);
  }
}

// --- format 0 ---

/** ISO 9564-1:2017 clause 9.3.2, format 0 (ANSI X9.8): clear PIN block = PIN field XOR PAN field. */
export function encodePinBlockIso0(pin: string, pan: string): Uint8Array {
  return encodeWithPan(0, pin, pan);
}

/** Inverse of `encodePinBlockIso0`; checks control 0, length, digits and the F filler (a wrong PAN breaks it). */
export function decodePinBlockIso0(block: Uint8Array, pan: string): string {
  return decodeWithPan(0, block, pan);
}

// --- format 1 ---

/** Clause 9.3.3, format 1: no PAN; the 14 - N nibbles after the PIN are a transaction field (random here). */
export function encodePinBlockIso1(pin: string, opts: EncodePinBlockOptions = {}): Uint8Array {
  assertPin(pin);
  const fill = fillNibbles(1, 14 - pin.length, opts.fill);
  const field = pinFieldNibbles(1, pin, fill);
  const out = fromNibbles(field);
  wipe(fill, field);
  return out;
}

/** Inverse of `encodePinBlockIso1`; the transaction field may hold any nibble and is not checked. */
export function decodePinBlockIso1(block: Uint8Array): string {
  assertBlockLength(1, block);
  const nibbles = toNibbles(block);
  try {
    return parsePinField(nibbles, 1, 'any');
  } finally {
    wipe(nibbles);
  }
}

// --- format 2 ---

/** Clause 9.3.4, format 2: for ICC offline PIN only (a PIN block sent to the card); F filler, no PAN. */
export function encodePinBlockIso2(pin: string): Uint8Array {
  assertPin(pin);
  const field = pinFieldNibbles(2, pin, 0xf);
  const out = fromNibbles(field);
  wipe(field);
  return out;
}

export function decodePinBlockIso2(block: Uint8Array): string {
  assertBlockLength(2, block);
  const nibbles = toNibbles(block);
  try {
    return parsePinField(nibbles, 2, 'F');
  } finally {
    wipe(nibbles);
  }
}

// --- format 3 ---

/** Clause 9.3.5, format 3: format 0 with a random A-F filler, so equal PINs on one PAN give different blocks. */
export function encodePinBlockIso3(pin: string, pan: string, opts: EncodePinBlockOptions = {}): Uint8Array {
  return encodeWithPan(3, pin, pan, opts.fill);
}

/** Inverse of `encodePinBlockIso3`; each filler nibble must be A to F. */
export function decodePinBlockIso3(block: Uint8Array, pan: string): string {
  return decodeWithPan(3, block, pan);
}

// --- format 4 ---

/**
 * Clause 9.4.2.2.2, format 4 plaintext PIN field (16 bytes): control 4, PIN length, PIN digits, A fill up to
 * nibble 16, then 8 random bytes.
 */
export function encodePinFieldIso4(pin: string, opts: EncodePinBlockOptions = {}): Uint8Array {
  assertPin(pin);
  const random = fillNibbles(4, 16, opts.fill);
  const head = pinFieldNibbles(4, pin, 0xa);
  const all = new Uint8Array(32);
  all.set(head, 0);
  all.set(random, 16);
  const out = fromNibbles(all);
  wipe(random, head, all);
  return out;
}

/** Inverse of `encodePinFieldIso4`: checks control 4, length, digits and the A fill; the random half is free. */
export function decodePinFieldIso4(field: Uint8Array): string {
  assertBlockLength(4, field);
  const nibbles = toNibbles(field);
  try {
    return parsePinField(nibbles, 4, 'A');
  } finally {
    wipe(nibbles);
  }
}

/**
 * Clause 9.4.2.2.3, format 4 plaintext PAN field (16 bytes): M = PAN length - 12 (0 when 12 or fewer), the PAN
 * (right-justified in 12 digits with leading zeros when shorter than 12), then zero padding.
 */
export function encodePanFieldIso4(pan: string): Uint8Array {
  const p = assertPan(pan, 'ISO 9564 format 4', PAN_LENGTH_MIN);
  const digits = p.padStart(12, '0');
  const nibbles = new Uint8Array(32);
  nibbles[0] = Math.max(0, p.length - 12);
  for (let i = 0; i < digits.length; i++) nibbles[1 + i] = digits.charCodeAt(i) - 0x30;
  return fromNibbles(nibbles);
}

/**
 * Clause 9.4.2.3, format 4 encipherment: block = E(K, E(K, PIN field) XOR PAN field), AES-ECB under `key`.
 * Binding the PAN between two encipherments keeps the PAN out of the PIN field while still tying them.
 */
export function encryptPinBlockIso4(
  key: Uint8Array,
  pin: string,
  pan: string,
  opts: EncodePinBlockOptions = {},
): Uint8Array {
  assertPinKey(4, key);
  assertPin(pin);
  const panField = encodePanFieldIso4(pan);
  const pinField = encodePinFieldIso4(pin, opts);
  const first = aesEncryptEcb(key, pinField);
  const mid = xor(first, panField);
  const out = aesEncryptEcb(key, mid);
  wipe(pinField, first, mid);
  return out;
}

/** Inverse of clause 9.4.2.3: PIN field = D(K, D(K, block) XOR PAN field); a wrong PAN or key fails the field checks. */
export function decryptPinBlockIso4(key: Uint8Array, block: Uint8Array, pan: string): string {
  assertPinKey(4, key);
  assertBlockLength(4, block);
  const panField = encodePanFieldIso4(pan);
  const mid = aesDecryptEcb(key, block);
  const first = xor(mid, panField);
  const pinField = aesDecryptEcb(key, first);
  try {
    return decodePinFieldIso4(pinField);
  } finally {
    wipe(mid, first, pinField);
  }
}

// --- any format ---

/**
 * The clear block of `format`: 8 bytes for 0-3; for 4, the 16-byte PIN field. `pan` is required by formats 0
 * and 3 and not used by 1, 2 and the clear format 4 field (format 4 binds the PAN in `encryptPinBlock`).
 */
export function encodePinBlock(
  format: PinBlockFormat,
  pin: string,
  pan?: string,
  opts: EncodePinBlockOptions = {},
): Uint8Array {
  assertFormat(format);
  switch (format) {
    case 0:
      return encodeWithPan(0, pin, pan);
    case 1:
      return encodePinBlockIso1(pin, opts);
    case 2:
      return encodePinBlockIso2(pin);
    case 3:
      return encodeWithPan(3, pin, pan, opts.fill);
    case 4:
      return encodePinFieldIso4(pin, opts);
  }
}

/** The PIN in a clear block of `format` (see `encodePinBlock` for what "clear block" and `pan` mean). */
export function decodePinBlock(format: PinBlockFormat, block: Uint8Array, pan?: string): string {
  assertFormat(format);
  switch (format) {
    case 0:
      return decodeWithPan(0, block, pan);
    case 1:
      return decodePinBlockIso1(block);
    case 2:
      return decodePinBlockIso2(block);
    case 3:
      return decodeWithPan(3, block, pan);
    case 4:
      return decodePinFieldIso4(block);
  }
}

/**
 * Encodes and enciphers: TDES-ECB of the clear block for formats 0-3 (16- or 24-byte key), the two-pass AES
 * of clause 9.4.2.3 for format 4 (which requires `pan`). The clear block is wiped.
 */
export function encryptPinBlock(
  format: PinBlockFormat,
  key: Uint8Array,
  pin: string,
  pan?: string,
  opts: EncodePinBlockOptions = {},
): Uint8Array {
  assertFormat(format);
  assertPinKey(format, key);
  if (format === 4) {
    return encryptPinBlockIso4(key, pin, assertPan(pan, 'ISO 9564 format 4', PAN_LENGTH_MIN), opts);
  }
  const clear = encodePinBlock(format, pin, pan, opts);
  try {
    return tdesEncryptEcb(key, clear);
  } finally {
    wipe(clear);
  }
}

/** Deciphers and decodes (inverse of `encryptPinBlock`); a wrong key or PAN shows as CRYPTO_PINBLOCK_INVALID. */
export function decryptPinBlock(
  format: PinBlockFormat,
  key: Uint8Array,
  block: Uint8Array,
  pan?: string,
): string {
  assertFormat(format);
  assertPinKey(format, key);
  assertBlockLength(format, block);
  if (format === 4)
    return decryptPinBlockIso4(key, block, assertPan(pan, 'ISO 9564 format 4', PAN_LENGTH_MIN));
  const clear = tdesDecryptEcb(key, block);
  try {
    return decodePinBlock(format, clear, pan);
  } finally {
    wipe(clear);
  }
}
