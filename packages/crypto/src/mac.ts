/**
 * Message authentication codes of card-present payment links.
 *
 * - ISO/IEC 9797-1:2011 padding methods 1, 2 and 3 (§6.3) and MAC algorithms 1 (§7.2, CBC-MAC;
 *   with single DES it is ANSI X9.9 / FIPS 113) and 3 (§7.4, the ANSI X9.19 "retail MAC").
 * - CMAC over TDES or AES (NIST SP 800-38B; ISO/IEC 9797-1 MAC algorithm 5), reusing `cmac()`.
 * - The China UnionPay POS terminal MAC ("ECB" algorithm, 银联 POS 终端 MAC), whose result is 8 ASCII
 *   hex characters carried in ISO 8583 field 64.
 *
 * Clause numbers of ISO/IEC 9797-1 follow the 2011 edition's layout (clause 6 = the model and its
 * padding methods, clause 7 = the MAC algorithms).
 *
 * Every MAC is truncated to its leftmost `length` bytes (ISO/IEC 9797-1 truncation step, SP 800-38B
 * §6.2 MSB_Tlen). The shortest MAC accepted is 4 bytes: below 32 bits a forger's guess succeeds too
 * often, and 32 bits is the shortest MAC in payment use (the 4-byte X9.19 MAC; psec also allows 4-8).
 *
 * Validation order (each a `CryptoError`): algorithm name, cipher name, padding method, options that
 * do not apply to the algorithm, key length, MAC length.
 */
import { equalBytes, fromAscii, toHex, wipe, xor } from './bytes.js';
import { type BlockAlgorithm, blockSize, decrypt, encrypt } from './cipher.js';
import { cmac } from './cmac.js';
import { CryptoError } from './errors.js';

/** The MAC algorithms `generateMac` knows (names used by the CLI). */
export type MacAlgorithm = 'iso9797-1-1' | 'iso9797-1-3' | 'cmac' | 'cup-ecb';
export const MAC_ALGORITHMS: readonly MacAlgorithm[] = ['iso9797-1-1', 'iso9797-1-3', 'cmac', 'cup-ecb'];

/** ISO/IEC 9797-1 padding method number. */
export type Iso9797Padding = 1 | 2 | 3;
export const ISO9797_PADDINGS: readonly Iso9797Padding[] = [1, 2, 3];

/** Block cipher family of a MAC: `tdes` covers single DES (8-byte key) too, where the algorithm allows it. */
export type MacCipher = 'tdes' | 'aes';
export const MAC_CIPHERS: readonly MacCipher[] = ['tdes', 'aes'];

/** Shortest MAC, in bytes, this module produces or verifies. */
export const MAC_LENGTH_MIN_BYTES = 4;

export interface MacOptions {
  /** ISO/IEC 9797-1 padding method (algorithms 1 and 3 only); default 1 (zero padding, as in X9.9/X9.19). */
  padding?: Iso9797Padding;
  /** Truncated MAC length in bytes, 4 to the block size (8 for cup-ecb); default the full block. */
  length?: number;
  /**
   * Block cipher (iso9797-1-1 and cmac only). iso9797-1-1 defaults to `tdes` (DES for an 8-byte key).
   * cmac infers it only from a 32-byte key (AES-256): 16- and 24-byte keys fit both TDES and AES, so
   * `cipher` must then be given; guessing would silently produce a MAC the peer cannot verify.
   */
  cipher?: MacCipher;
}

// --- argument checks -------------------------------------------------------------------------------

function checkBytes(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
}

function checkPadding(padding: unknown): asserts padding is Iso9797Padding {
  if (!(ISO9797_PADDINGS as readonly unknown[]).includes(padding)) {
    throw new CryptoError('CRYPTO_PARAM', 'padding', 'ISO/IEC 9797-1 padding method must be 1, 2 or 3');
  }
}

function checkCipherName(cipher: unknown): asserts cipher is MacCipher | undefined {
  if (cipher !== undefined && !(MAC_CIPHERS as readonly unknown[]).includes(cipher)) {
    throw new CryptoError('CRYPTO_ALGORITHM', 'cipher', 'unknown MAC block cipher (expected tdes or aes)');
  }
}

/** Rejects an option the algorithm does not use, rather than silently ignoring it. */
function rejectOption(opts: MacOptions, name: 'padding' | 'cipher', rule: string): void {
  if (opts[name] !== undefined) throw new CryptoError('CRYPTO_PARAM', name, rule);
}

function resolveLength(length: unknown, max: number): number {
  if (length === undefined) return max;
  if (
    typeof length !== 'number' ||
    !Number.isInteger(length) ||
    length < MAC_LENGTH_MIN_BYTES ||
    length > max
  ) {
    throw new CryptoError(
      'CRYPTO_PARAM',
      'length',
      `MAC length must be an integer from ${MAC_LENGTH_MIN_BYTES} to ${max} bytes`,
    );
  }
  return length;
}

function keyLengthError(rule: string, key: Uint8Array): CryptoError {
  return new CryptoError('CRYPTO_KEY_LENGTH', 'key', `${rule}, got ${key.length}`);
}

// --- ISO/IEC 9797-1 padding (§6.3) -------------------------------------------------------------

function checkBlockSize(blockSizeBytes: number): void {
  if (blockSizeBytes !== 8 && blockSizeBytes !== 16) throw new RangeError('blockSizeBytes must be 8 or 16');
}

/**
 * ISO/IEC 9797-1:2011 §6.3.2, padding method 1: right-pad with as few (possibly no) zero bits as
 * make the length a *positive* multiple of the block. A non-empty aligned message gets no padding;
 * an empty message becomes one block of zeros. (So `M` and `M‖00` share a MAC: use method 2 or 3
 * where the message length is not fixed by its format.)
 */
export function padIso9797Method1(data: Uint8Array, blockSizeBytes = 8): Uint8Array {
  checkBytes(data, 'data');
  checkBlockSize(blockSizeBytes);
  const blocks = Math.max(1, Math.ceil(data.length / blockSizeBytes));
  const out = new Uint8Array(blocks * blockSizeBytes);
  out.set(data);
  return out;
}

/**
 * ISO/IEC 9797-1:2011 §6.3.3, padding method 2 (= ISO/IEC 7816-4): append one 1 bit (byte 0x80),
 * then as few zero bits as make a multiple of the block. Always adds 1 to `blockSizeBytes` bytes,
 * so an aligned message gains a whole block; an empty message becomes `80 00…00`.
 */
export function padIso9797Method2(data: Uint8Array, blockSizeBytes = 8): Uint8Array {
  checkBytes(data, 'data');
  checkBlockSize(blockSizeBytes);
  const blocks = Math.floor(data.length / blockSizeBytes) + 1;
  const out = new Uint8Array(blocks * blockSizeBytes);
  out.set(data);
  out[data.length] = 0x80;
  return out;
}

/**
 * ISO/IEC 9797-1:2011 §6.3.4, padding method 3: a length block L (the bit length of the unpadded
 * data, big-endian, left-padded with zeros to one block) followed by the data right-padded with as
 * few (possibly no) zero bits as make a multiple of the block. An empty message is L alone (one
 * block of zeros): the length block already removes the ambiguity method 1 pads against.
 * (psec's pad_iso_3 appends an extra zero block for empty data; the two differ only there.)
 */
export function padIso9797Method3(data: Uint8Array, blockSizeBytes = 8): Uint8Array {
  checkBytes(data, 'data');
  checkBlockSize(blockSizeBytes);
  const body = Math.ceil(data.length / blockSizeBytes) * blockSizeBytes;
  const out = new Uint8Array(blockSizeBytes + body);
  let bits = data.length * 8; // < 2^53 for any array JavaScript can hold
  for (let i = blockSizeBytes - 1; i >= 0 && bits > 0; i--) {
    out[i] = bits % 256;
    bits = Math.floor(bits / 256);
  }
  out.set(data, blockSizeBytes);
  return out;
}

/** ISO/IEC 9797-1 padding by method number; throws CRYPTO_PARAM for any other method. */
export function padIso9797(data: Uint8Array, method: Iso9797Padding, blockSizeBytes = 8): Uint8Array {
  checkPadding(method);
  if (method === 1) return padIso9797Method1(data, blockSizeBytes);
  if (method === 2) return padIso9797Method2(data, blockSizeBytes);
  return padIso9797Method3(data, blockSizeBytes);
}

// --- ISO/IEC 9797-1 MAC algorithm 1 (§7.2) ---------------------------------------------------------

function resolveAlg1Cipher(key: Uint8Array, cipher: MacCipher | undefined): BlockAlgorithm {
  if (cipher === 'aes') {
    if (key.length === 16 || key.length === 24 || key.length === 32) return 'aes';
    throw keyLengthError('ISO/IEC 9797-1 MAC algorithm 1 with AES needs a 16-, 24- or 32-byte key', key);
  }
  if (key.length === 8) return 'des';
  if (key.length === 16 || key.length === 24) return 'tdes';
  throw keyLengthError(
    'ISO/IEC 9797-1 MAC algorithm 1 needs an 8-byte (DES), 16- or 24-byte (TDES) key',
    key,
  );
}

/**
 * ISO/IEC 9797-1:2011 §7.2, MAC algorithm 1 (CBC-MAC): initial transformation 1, CBC over every
 * block with a zero IV, output transformation 1 (none), truncation. With a single DES key this is
 * ANSI X9.9-1986 / FIPS 113; with a 16/24-byte key every block is TDES; `cipher: 'aes'` for AES.
 * Plain CBC-MAC is only safe for messages whose length the format fixes: prefer algorithm 3 or CMAC.
 */
export function macIso9797Alg1(
  key: Uint8Array,
  data: Uint8Array,
  opts: { padding?: Iso9797Padding; length?: number; cipher?: MacCipher } = {},
): Uint8Array {
  checkBytes(key, 'key');
  checkBytes(data, 'data');
  checkCipherName(opts.cipher);
  const padding = opts.padding ?? 1;
  checkPadding(padding);
  const alg = resolveAlg1Cipher(key, opts.cipher);
  const bs = blockSize(alg);
  const length = resolveLength(opts.length, bs);
  const padded = padIso9797(data, padding, bs);
  const chain = encrypt(alg, 'cbc', key, padded, new Uint8Array(bs));
  const mac = chain.slice(chain.length - bs, chain.length - bs + length);
  wipe(padded, chain);
  return mac;
}

// --- ISO/IEC 9797-1 MAC algorithm 3 (§7.4) = ANSI X9.19 retail MAC -------------------------------

/**
 * ISO/IEC 9797-1:2011 §7.4, MAC algorithm 3 (ANSI X9.19 "retail MAC"): single-DES CBC under K over
 * every block, then output transformation 3: decrypt under K′, encrypt under K.
 * A 16-byte key is K‖K′. A 24-byte key K‖K′‖K″ encrypts the final step under K″ (the 3-key
 * variant some HSMs offer); with K″ = K it equals the 16-byte form. DES only: no `cipher` option.
 */
export function macIso9797Alg3(
  key: Uint8Array,
  data: Uint8Array,
  opts: { padding?: Iso9797Padding; length?: number } = {},
): Uint8Array {
  checkBytes(key, 'key');
  checkBytes(data, 'data');
  const padding = opts.padding ?? 1;
  checkPadding(padding);
  rejectOption(opts, 'cipher', 'MAC algorithm 3 (ANSI X9.19) is defined over DES; cipher does not apply');
  if (key.length !== 16 && key.length !== 24) {
    throw keyLengthError('MAC algorithm 3 (ANSI X9.19) needs a 16- or 24-byte key', key);
  }
  const length = resolveLength(opts.length, 8);
  const k1 = key.subarray(0, 8);
  const k2 = key.subarray(8, 16);
  const k3 = key.length === 24 ? key.subarray(16, 24) : k1;
  const padded = padIso9797(data, padding, 8);
  const chain = encrypt('des', 'cbc', k1, padded, new Uint8Array(8));
  const h = chain.slice(chain.length - 8);
  const d = decrypt('des', 'ecb', k2, h);
  const g = encrypt('des', 'ecb', k3, d);
  const mac = g.slice(0, length);
  wipe(padded, chain, h, d, g);
  return mac;
}

/** ANSI X9.19 retail MAC: the same function as `macIso9797Alg3`. */
export const macX919 = macIso9797Alg3;

// --- CMAC (NIST SP 800-38B) ---------------------------------------------------------------------

function resolveCmacCipher(key: Uint8Array, cipher: MacCipher | undefined): BlockAlgorithm {
  if (cipher === 'tdes') {
    if (key.length === 16 || key.length === 24) return 'tdes';
    throw keyLengthError('TDES-CMAC needs a 16- or 24-byte key', key);
  }
  if (cipher === 'aes') {
    if (key.length === 16 || key.length === 24 || key.length === 32) return 'aes';
    throw keyLengthError('AES-CMAC needs a 16-, 24- or 32-byte key', key);
  }
  if (key.length === 32) return 'aes';
  if (key.length === 16 || key.length === 24) {
    throw new CryptoError(
      'CRYPTO_PARAM',
      'cipher',
      `a ${key.length}-byte key fits both TDES and AES: state cipher (tdes or aes) for CMAC`,
    );
  }
  throw keyLengthError('CMAC needs a 16- or 24-byte (TDES) or 16-, 24- or 32-byte (AES) key', key);
}

/**
 * NIST SP 800-38B §6.2 CMAC generation over TDES (TDEA, 64-bit block) or AES, truncated to the
 * leftmost `length` bytes (default the whole block). CMAC pads by its own rule, so `padding` is
 * rejected. See `MacOptions.cipher` for when the cipher must be stated.
 */
export function macCmac(
  key: Uint8Array,
  data: Uint8Array,
  opts: { length?: number; cipher?: MacCipher } = {},
): Uint8Array {
  checkBytes(key, 'key');
  checkBytes(data, 'data');
  checkCipherName(opts.cipher);
  rejectOption(opts, 'padding', 'CMAC pads by its own rule (SP 800-38B §6.2); padding does not apply');
  const alg = resolveCmacCipher(key, opts.cipher);
  const length = resolveLength(opts.length, blockSize(alg));
  const tag = cmac(alg, key, data);
  const mac = tag.slice(0, length);
  wipe(tag);
  return mac;
}

// --- China UnionPay POS terminal MAC ("ECB" algorithm) ---------------------------------------------

/**
 * China UnionPay POS terminal MAC, the "ECB" algorithm (银联 POS 终端 MAC). `data` is the MAC input
 * block (MAB): the message from the MTI through the last byte before field 64, without length,
 * TPDU or header. Returns the field 64 value: the first `length` (default 8) upper-case hex
 * characters of the final block, as ASCII bytes.
 *
 * 1. Zero-pad the MAB to a multiple of 8 bytes and XOR all 8-byte blocks into one block R.
 * 2. Expand R to 16 upper-case hex ASCII characters H.
 * 3. E1 = encrypt(MAK, H[0..8]); X = E1 XOR H[8..16]; E2 = encrypt(MAK, X).
 * 4. MAC = the first 8 upper-case hex characters of E2.
 * The MAK is single length (8 bytes, DES) or double length (16 bytes, TDES K1‖K2‖K1).
 * The whole-message XOR makes this far weaker than X9.19 (swapping or pairing blocks keeps the MAC);
 * it exists for interoperation with CUP-dialect terminals, not as a choice for new links.
 */
export function macCupEcb(key: Uint8Array, data: Uint8Array, opts: { length?: number } = {}): Uint8Array {
  checkBytes(key, 'key');
  checkBytes(data, 'data');
  rejectOption(opts, 'padding', 'the CUP ECB MAC always zero-pads; padding does not apply');
  rejectOption(opts, 'cipher', 'the CUP ECB MAC cipher follows the MAK length; cipher does not apply');
  let alg: BlockAlgorithm;
  if (key.length === 8) alg = 'des';
  else if (key.length === 16) alg = 'tdes';
  else
    throw keyLengthError('CUP POS MAC key (MAK) must be 8 (single length) or 16 bytes (double length)', key);
  const length = resolveLength(opts.length, 8);
  // Zero padding needs no bytes: XORing zeros into R changes nothing.
  const r = new Uint8Array(8);
  for (let i = 0; i < data.length; i++) r[i % 8]! ^= data[i]!;
  const h = fromAscii(toHex(r));
  const e1 = encrypt(alg, 'ecb', key, h.subarray(0, 8));
  const x = xor(e1, h.subarray(8, 16));
  const e2 = encrypt(alg, 'ecb', key, x);
  const mac = fromAscii(toHex(e2).slice(0, length));
  wipe(r, h, e1, x, e2);
  return mac;
}

// --- generic entry points ------------------------------------------------------------------------

/**
 * Generates a MAC by algorithm name (the CLI's entry point). `opts` as in `MacOptions`; an option the
 * algorithm does not use is a CRYPTO_PARAM error, never silently ignored.
 */
export function generateMac(
  alg: MacAlgorithm,
  key: Uint8Array,
  data: Uint8Array,
  opts: MacOptions = {},
): Uint8Array {
  switch (alg) {
    case 'iso9797-1-1':
      return macIso9797Alg1(key, data, opts);
    case 'iso9797-1-3':
      return macIso9797Alg3(key, data, opts);
    case 'cmac':
      return macCmac(key, data, opts);
    case 'cup-ecb':
      return macCupEcb(key, data, opts);
    default:
      throw new CryptoError(
        'CRYPTO_ALGORITHM',
        'alg',
        `unknown MAC algorithm (expected ${MAC_ALGORITHMS.join(', ')})`,
      );
  }
}

/**
 * Verifies `mac` over `data` in constant time by recomputing and comparing (SP 800-38B §6.3;
 * the same for every algorithm here). The expected length comes from `opts.length` (default the full MAC), never from `mac`,
 * so a short forged MAC cannot lower the bar: a `mac` of any other length is simply `false`.
 */
export function verifyMac(
  alg: MacAlgorithm,
  key: Uint8Array,
  data: Uint8Array,
  mac: Uint8Array,
  opts: MacOptions = {},
): boolean {
  checkBytes(mac, 'mac');
  const expected = generateMac(alg, key, data, opts);
  const ok = equalBytes(expected, mac);
  wipe(expected);
  return ok;
}
