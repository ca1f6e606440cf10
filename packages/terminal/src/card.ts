/**
 * Card input (track 2 or keyed PAN + expiry), PAN masking, and the UnionPay track data block that is
 * enciphered under the TDK.
 *
 * Nothing here puts card data in an error message: only lengths, positions and the rule broken.
 */
import { TerminalError } from './errors.js';

/** What a card reader (or the keyboard) gives the terminal. */
export type CardInput = { track2: string } | { pan: string; expiry: string };

export interface Card {
  pan: string;
  /** YYMM, when known. */
  expiry?: string;
  /** Track 2 with `=` as the separator (ISO/IEC 7813), when the card was swiped. */
  track2?: string;
  /** `magstripe` (22 = 02x) or `manual` (22 = 01x). */
  entry: 'magstripe' | 'manual';
}

/** ISO/IEC 7813: track 2 holds at most 37 characters between the sentinels. */
export const TRACK2_MAX_CHARS = 37;
export const PAN_MIN_DIGITS = 12;
export const PAN_MAX_DIGITS = 19;

const DIGITS = /^[0-9]+$/;

function cardError(field: string, rule: string): TerminalError {
  return new TerminalError('TERMINAL_CARD_INVALID', field, rule);
}

function checkPan(pan: string, field: string): void {
  if (!DIGITS.test(pan)) throw cardError(field, 'the PAN must be decimal digits');
  if (pan.length < PAN_MIN_DIGITS || pan.length > PAN_MAX_DIGITS)
    throw cardError(
      field,
      `the PAN must be ${PAN_MIN_DIGITS} to ${PAN_MAX_DIGITS} digits, got ${pan.length}`,
    );
}

function checkExpiry(expiry: string, field: string): void {
  const month = Number(expiry.slice(2, 4));
  if (!/^[0-9]{4}$/.test(expiry) || month < 1 || month > 12)
    throw cardError(field, 'the expiry must be YYMM with a month from 01 to 12');
}

/**
 * Reads a card input. Track 2 (ISO/IEC 7813): PAN, separator `=` (or `D` as in BCD dumps), expiry
 * YYMM, service code and discretionary data, without sentinels or LRC; at most 37 characters.
 */
export function parseCardInput(input: CardInput): Card {
  if (typeof input !== 'object' || input === null) throw new TypeError('card must be an object');
  if ('track2' in input) {
    const raw = input.track2;
    if (typeof raw !== 'string') throw new TypeError('card.track2 must be a string');
    const t = raw.replace(/[Dd]/g, '=');
    if (t.length > TRACK2_MAX_CHARS)
      throw cardError('card.track2', `must be at most ${TRACK2_MAX_CHARS} characters, got ${t.length}`);
    const sep = t.indexOf('=');
    if (sep < 0 || t.indexOf('=', sep + 1) >= 0)
      throw cardError('card.track2', 'must hold exactly one field separator (= or D)');
    if (!DIGITS.test(t.slice(0, sep)) || !/^[0-9]*$/.test(t.slice(sep + 1)))
      throw cardError('card.track2', 'must be digits and one separator');
    const pan = t.slice(0, sep);
    checkPan(pan, 'card.track2');
    const after = t.slice(sep + 1);
    if (after.length < 4) throw cardError('card.track2', 'must hold the expiry (YYMM) after the separator');
    const expiry = after.slice(0, 4);
    checkExpiry(expiry, 'card.track2');
    return { pan, expiry, track2: t, entry: 'magstripe' };
  }
  if (typeof input.pan !== 'string') throw new TypeError('card.pan must be a string');
  if (typeof input.expiry !== 'string') throw new TypeError('card.expiry must be a string');
  checkPan(input.pan, 'card.pan');
  checkExpiry(input.expiry, 'card.expiry');
  return { pan: input.pan, expiry: input.expiry, entry: 'manual' };
}

/** PAN masked as on every screen, log and slip: first 6, last 4 (DOMAIN rules). */
export function maskPan(pan: string): string {
  if (pan.length <= 10) return '*'.repeat(pan.length);
  return `${pan.slice(0, 6)}${'*'.repeat(pan.length - 10)}${pan.slice(-4)}`;
}

/** Bytes of BCD track 2 data the TDB needs at least: 8 enciphered bytes plus the last byte. */
export const TRACK_DATA_MIN_BYTES = 9;

/**
 * The track data block (TDB) of UnionPay track encryption, as a byte range of the BCD-packed track
 * (the bytes after field 35's length prefix): counting from the end, skip the last byte and take the
 * 8 bytes before it, i.e. `[n - 9, n - 1)`.
 *
 * Source: the UnionPay POS terminal security requirement as quoted in a public API manual
 * (doc.xrtinfo.com/docs/ss_api/ss_api-1cb9530kl7sa4 §4.4.2 "磁道加密算法": "二磁道数据(35域)从结束标志
 * '?' 向左第2个字节开始,再向左取8个字节 ... 记为TDB2"; §4.4.3: TDES under the double-length TDK,
 * the ciphertext replaces the clear bytes in place). Its example: track 2
 * `1234567890123456789=0508201781999168302` packs to 20 bytes and TDB2 = `08 20 17 81 99 91 68 30`.
 * The block holds the end of the discretionary data (where the issuer's CVN sits) and keeps the
 * PAN readable for routing; the last byte stays clear so the pad nibble is unchanged.
 */
export function trackDataBlockRange(packedLength: number): { start: number; end: number } {
  if (!Number.isInteger(packedLength) || packedLength < TRACK_DATA_MIN_BYTES)
    throw cardError(
      'card.track2',
      `track data must pack to at least ${TRACK_DATA_MIN_BYTES} bytes to be enciphered`,
    );
  return { start: packedLength - 9, end: packedLength - 1 };
}

/**
 * Enciphers the TDB of BCD-packed track data in place with `encryptBlock` (the PIN pad's TDK).
 * Returns the same array.
 */
export function encryptTrackDataBlock(
  packed: Uint8Array,
  encryptBlock: (block: Uint8Array) => Uint8Array,
): Uint8Array {
  const { start, end } = trackDataBlockRange(packed.length);
  const block = packed.slice(start, end);
  const enc = encryptBlock(block);
  block.fill(0);
  if (enc.length !== 8) throw new RangeError('encryptBlock must return 8 bytes');
  packed.set(enc, start);
  return packed;
}
