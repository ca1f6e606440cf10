/**
 * Key blocks: ASC X9 TR-31:2018, ANSI X9.143:2021 and ISO 20038:2017.
 *
 * A key block is printable ASCII: a header (16 fixed characters plus optional blocks), the
 * encrypted key payload in upper-case hex, and the MAC in upper-case hex. The MAC binds the header
 * (the key's usage, algorithm, mode of use, exportability) to the key, so that a key can only be
 * used as the header says.
 *
 * | version | standard        | binding                        | cipher  | MAC                         |
 * |---------|-----------------|--------------------------------|---------|-----------------------------|
 * | A       | TR-31:2005      | variant (KBPK XOR 45 / 4D)     | TDES    | TDES CBC-MAC, 4 bytes       |
 * | B       | TR-31:2010      | CMAC key derivation            | TDES    | TDES CMAC, 8 bytes          |
 * | C       | TR-31:2010      | variant (KBPK XOR 45 / 4D)     | TDES    | TDES CBC-MAC, 4 bytes       |
 * | D       | TR-31:2018/X9.143 | CMAC key derivation          | AES-CBC | AES CMAC, 16 bytes          |
 * | E       | ISO 20038:2017  | CMAC key derivation (CTR usage)| AES-CTR | AES CMAC, 16 bytes          |
 *
 * A and C are accepted for unwrapping only (legacy: the variant method is deprecated by TR-31:2018
 * §5.3.1 and X9.143); this module never produces them.
 *
 * Secrets: no error message holds a key, the KBPK, the payload or a character of the block; they
 * name the field, a position or a length. Derived keys and the clear payload are wiped.
 */
import { randomBytes } from 'node:crypto';
import { concat, equalBytes, fromAscii, wipe } from './bytes.js';
import { aesEncryptEcb, decrypt, encrypt } from './cipher.js';
import { cmac } from './cmac.js';
import { CryptoError } from './errors.js';

// --- Tables (X9.143:2021 §6.3 / TR-31:2018 §A.5) --------------------------------------------

export type KeyBlockVersion = 'A' | 'B' | 'C' | 'D' | 'E';

/** Key block version IDs (header byte 0; X9.143:2021 Table 2, ISO 20038:2017 §6.2). */
export const KEY_BLOCK_VERSIONS: Readonly<Record<KeyBlockVersion, string>> = {
  A: 'TDES key variant binding, TR-31:2005 (deprecated; unwrap only)',
  B: 'TDES key derivation binding, TR-31:2010',
  C: 'TDES key variant binding, TR-31:2010 (deprecated; unwrap only)',
  D: 'AES key derivation binding (AES-CBC), TR-31:2018 / X9.143:2021',
  E: 'AES key derivation binding (AES-CTR), ISO 20038:2017',
};

/**
 * Names of the key usages X9.143:2021 Table 6 (and TR-31:2018 Table 6) define. Any two
 * alphanumeric characters are accepted in a header (numeric usages are proprietary); this table
 * only names the known ones.
 */
export const KEY_BLOCK_KEY_USAGES: Readonly<Record<string, string>> = {
  B0: 'Base Derivation Key (BDK)',
  B1: 'Initial DUKPT key (IK/IPEK)',
  B2: 'Base key variant key',
  B3: 'Key derivation key (non-X9.24)',
  C0: 'Card Verification Key (CVK)',
  D0: 'Symmetric key for data encryption',
  D1: 'Asymmetric key for data encryption',
  D2: 'Data encryption key for decimalization table',
  D3: 'Data encryption key for sensitive data',
  E0: 'EMV/chip issuer master key: application cryptograms',
  E1: 'EMV/chip issuer master key: secure messaging for confidentiality',
  E2: 'EMV/chip issuer master key: secure messaging for integrity',
  E3: 'EMV/chip issuer master key: data authentication code',
  E4: 'EMV/chip issuer master key: dynamic numbers',
  E5: 'EMV/chip issuer master key: card personalization',
  E6: 'EMV/chip issuer master key: other',
  E7: 'EMV/master personalization key',
  I0: 'Initialization vector (IV)',
  K0: 'Key encryption or wrapping key (KEK)',
  K1: 'TR-31 key block protection key (KBPK)',
  K2: 'TR-34 asymmetric key',
  K3: 'Asymmetric key for key agreement/key wrapping',
  K4: 'ISO 20038 key block protection key',
  M0: 'ISO 16609 MAC algorithm 1 (TDES)',
  M1: 'ISO 9797-1 MAC algorithm 1',
  M2: 'ISO 9797-1 MAC algorithm 2',
  M3: 'ISO 9797-1 MAC algorithm 3 (retail MAC)',
  M4: 'ISO 9797-1 MAC algorithm 4',
  M5: 'ISO 9797-1:1999 MAC algorithm 5',
  M6: 'ISO 9797-1:2011 MAC algorithm 5 (CMAC)',
  M7: 'HMAC',
  M8: 'ISO 9797-1:2011 MAC algorithm 6',
  P0: 'PIN encryption',
  S0: 'Asymmetric key pair for digital signature',
  S1: 'Asymmetric key pair, CA key',
  S2: 'Asymmetric key pair, non-X9.24 key',
  V0: 'PIN verification, KPV, other algorithm',
  V1: 'PIN verification, IBM 3624',
  V2: 'PIN verification, VISA PVV',
  V3: 'PIN verification, X9.132 algorithm 1',
  V4: 'PIN verification, X9.132 algorithm 2',
};

/** Key algorithm (header byte 7; X9.143:2021 Table 7). Other alphanumeric values are accepted. */
export const KEY_BLOCK_ALGORITHMS: Readonly<Record<string, string>> = {
  A: 'AES',
  D: 'DEA (single DES)',
  E: 'Elliptic curve',
  H: 'HMAC',
  R: 'RSA',
  S: 'DSA',
  T: 'TDEA (triple DES)',
};

/** Mode of use (header byte 8; X9.143:2021 Table 8). Other alphanumeric values are accepted. */
export const KEY_BLOCK_MODES_OF_USE: Readonly<Record<string, string>> = {
  B: 'Encrypt/wrap and decrypt/unwrap',
  C: 'MAC generate and verify',
  D: 'Decrypt/unwrap only',
  E: 'Encrypt/wrap only',
  G: 'MAC generate only',
  N: 'No special restrictions',
  S: 'Signature only',
  T: 'Sign and decrypt',
  V: 'MAC verify only',
  X: 'Key derivation',
  Y: 'Create key variants',
};

/** Exportability (header byte 11; X9.143:2021 Table 10): a closed set. */
export const KEY_BLOCK_EXPORTABILITY: Readonly<Record<string, string>> = {
  E: 'Exportable under a KEK in a form meeting X9.24',
  N: 'Not exportable',
  S: 'Sensitive: exportable under a KEK in a form not necessarily meeting X9.24',
};

/**
 * Key context (header byte 14; X9.143:2021 Table 12). TR-31:2018 and ISO 20038 call bytes 14-15
 * "reserved, 00", which is key context 0.
 */
export const KEY_BLOCK_KEY_CONTEXTS: Readonly<Record<string, string>> = {
  '0': 'Determined by the wrapping key',
  '1': 'Storage context only',
  '2': 'Key exchange context only',
};

/** Optional block IDs X9.143:2021 Table 13 names. Any two alphanumeric characters are accepted. */
export const KEY_BLOCK_OPTIONAL_BLOCK_IDS: Readonly<Record<string, string>> = {
  AL: 'Asymmetric key life attribute',
  BI: 'Base derivation key identifier (DUKPT)',
  CT: 'Public key certificate',
  DA: 'Derivation(s) allowed',
  HM: 'HMAC hash algorithm',
  IK: 'Initial key identifier (AES DUKPT)',
  KC: 'Key check value of the wrapped key',
  KP: 'Key check value of the KBPK',
  KS: 'Initial key serial number (TDES DUKPT)',
  KV: 'Key block values',
  LB: 'Label',
  PB: 'Padding block',
  TC: 'Time of creation',
  TS: 'Time stamp',
  WP: 'Wrapping pedigree',
};

// --- Header -------------------------------------------------------------------------------

export interface KeyBlockOptionalBlock {
  /** Two alphanumeric characters, e.g. `KS`. */
  id: string;
  /** The block's data as printable ASCII (as written in the header, not decoded from hex). */
  data: string;
}

/** The header of a key block (X9.143:2021 §6.2, Table 1), without its length field. */
export interface KeyBlockHeader {
  versionId: KeyBlockVersion;
  /** Two alphanumeric characters, e.g. `P0` (see KEY_BLOCK_KEY_USAGES). */
  keyUsage: string;
  /** One alphanumeric character, e.g. `T` or `A` (see KEY_BLOCK_ALGORITHMS). */
  algorithm: string;
  /** One alphanumeric character, e.g. `E` (see KEY_BLOCK_MODES_OF_USE). */
  modeOfUse: string;
  /** Two alphanumeric characters: `00` = no versioning; `c` + digit = key component number. */
  keyVersionNumber: string;
  /** `E`, `N` or `S`. */
  exportability: string;
  /** `0`, `1` or `2` (X9.143:2021); `0` in TR-31:2018 / ISO 20038 (reserved). */
  keyContext: string;
  /** In header order, PB (padding) included when present. */
  optionalBlocks: KeyBlockOptionalBlock[];
}

export interface ParsedKeyBlockHeader {
  header: KeyBlockHeader;
  /** The value of the 4-digit length field (the whole block's length in characters). */
  blockLength: number;
  /** Characters the header takes, optional blocks included. */
  headerLength: number;
}

const MAX_BLOCK_LENGTH = 9999; // the length field has 4 decimal digits (X9.143 Table 1)
const MAX_OPTIONAL_BLOCKS = 99; // 2 decimal digits
const MAX_SHORT_BLOCK_LENGTH = 0xff; // 2 hex digits; 00 announces the extended form
const MAX_EXTENDED_BLOCK_LENGTH = 0xffff; // 4 hex digits after the length of length 04
const MAX_KEY_LENGTH = 8191; // the payload's key length field is 16 bits, in bits (TR-31:2018 §A.4)

const ALNUM = /^[0-9A-Za-z]+$/;
const DIGITS = /^[0-9]+$/;
const HEX = /^[0-9A-Fa-f]+$/;
const UPPER_HEX = /^[0-9A-F]*$/;
const PB_CHARS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function isPrintable(code: number): boolean {
  return code >= 0x20 && code <= 0x7e;
}

function fail(field: string, rule: string): never {
  throw new CryptoError('CRYPTO_KEYBLOCK_FORMAT', field, rule);
}

/** First position in `s` (from `from`) that is not printable ASCII, or -1. */
function firstNonPrintable(s: string, from = 0): number {
  for (let i = from; i < s.length; i++) if (!isPrintable(s.charCodeAt(i))) return i;
  return -1;
}

function checkVersion(v: string): asserts v is KeyBlockVersion {
  if (!Object.hasOwn(KEY_BLOCK_VERSIONS, v)) {
    throw new CryptoError(
      'CRYPTO_KEYBLOCK_VERSION',
      'header.versionId',
      'unknown key block version (expected A, B, C, D or E)',
    );
  }
}

/** Field rules shared by parse and format (X9.143:2021 §6.2 Table 1). */
function checkFixedFields(h: KeyBlockHeader): void {
  checkVersion(h.versionId);
  if (h.keyUsage.length !== 2 || !ALNUM.test(h.keyUsage))
    fail('header.keyUsage', 'must be 2 alphanumeric characters');
  if (h.algorithm.length !== 1 || !ALNUM.test(h.algorithm))
    fail('header.algorithm', 'must be 1 alphanumeric character');
  if (h.modeOfUse.length !== 1 || !ALNUM.test(h.modeOfUse))
    fail('header.modeOfUse', 'must be 1 alphanumeric character');
  if (h.keyVersionNumber.length !== 2 || !ALNUM.test(h.keyVersionNumber))
    fail('header.keyVersionNumber', 'must be 2 alphanumeric characters (00 = no versioning)');
  if (!Object.hasOwn(KEY_BLOCK_EXPORTABILITY, h.exportability))
    fail('header.exportability', 'must be E, N or S');
  if (!Object.hasOwn(KEY_BLOCK_KEY_CONTEXTS, h.keyContext)) fail('header.keyContext', 'must be 0, 1 or 2');
}

/**
 * Parses the header at the start of `text` (a header alone, or a whole key block).
 * X9.143:2021 §6.2 Table 1 (fixed part) and §6.3 (optional blocks, with the extended length
 * form: length `00`, then the length of the length `04`, then 4 hex digits; `02` as written by
 * psec is read the same way). The length field is returned, not checked against `text`.
 */
export function parseKeyBlockHeader(text: string): ParsedKeyBlockHeader {
  if (typeof text !== 'string') throw new TypeError('text must be a string');
  const bad = firstNonPrintable(text);
  if (bad >= 0) fail('header', `character at position ${bad} is not printable ASCII`);
  if (text.length < 16) fail('header', `must be at least 16 characters, got ${text.length}`);
  checkVersion(text[0]!);
  const lengthField = text.slice(1, 5);
  if (!DIGITS.test(lengthField)) fail('header.blockLength', 'must be 4 decimal digits');
  const count = text.slice(12, 14);
  if (!DIGITS.test(count)) fail('header.optionalBlockCount', 'must be 2 decimal digits');
  if (text[15] !== '0') fail('header.reserved', 'position 15 is reserved and must be 0');
  const header: KeyBlockHeader = {
    versionId: text[0] as KeyBlockVersion,
    keyUsage: text.slice(5, 7),
    algorithm: text[7]!,
    modeOfUse: text[8]!,
    keyVersionNumber: text.slice(9, 11),
    exportability: text[11]!,
    keyContext: text[14]!,
    optionalBlocks: [],
  };
  checkFixedFields(header);

  let p = 16;
  const n = Number(count);
  for (let i = 0; i < n; i++) {
    const field = `header.optionalBlocks[${i}]`;
    if (p + 4 > text.length) fail(field, `truncated at position ${p} (needs an ID and a length)`);
    const id = text.slice(p, p + 2);
    if (!ALNUM.test(id)) fail(`${field}.id`, 'must be 2 alphanumeric characters');
    const shortLength = text.slice(p + 2, p + 4);
    if (!HEX.test(shortLength)) fail(`${field}.length`, 'must be 2 hex digits');
    let length = Number.parseInt(shortLength, 16);
    let overhead = 4;
    if (length === 0) {
      // Extended length (X9.143:2021 §6.3, Table 1 note): 00, length of length, length.
      if (p + 10 > text.length)
        fail(field, `truncated at position ${p} (extended length needs 10 characters)`);
      const lengthOfLength = text.slice(p + 4, p + 6);
      if (lengthOfLength !== '04' && lengthOfLength !== '02')
        fail(`${field}.length`, 'extended length must give its length of length as 04');
      const extended = text.slice(p + 6, p + 10);
      if (!HEX.test(extended)) fail(`${field}.length`, 'extended length must be 4 hex digits');
      length = Number.parseInt(extended, 16);
      overhead = 10;
    }
    if (length < overhead) fail(`${field}.length`, `${length} is shorter than the block's own ID and length`);
    if (p + length > text.length)
      fail(`${field}.length`, `${length} runs past the end of the header (position ${p})`);
    header.optionalBlocks.push({ id, data: text.slice(p + overhead, p + length) });
    p += length;
  }
  return { header, blockLength: Number(lengthField), headerLength: p };
}

function formatOptionalBlock(b: KeyBlockOptionalBlock, i: number): string {
  const field = `header.optionalBlocks[${i}]`;
  if (typeof b?.id !== 'string' || typeof b.data !== 'string')
    throw new TypeError(`${field} must be { id: string, data: string }`);
  if (b.id.length !== 2 || !ALNUM.test(b.id)) fail(`${field}.id`, 'must be 2 alphanumeric characters');
  const bad = firstNonPrintable(b.data);
  if (bad >= 0) fail(`${field}.data`, `character at position ${bad} is not printable ASCII`);
  if (4 + b.data.length <= MAX_SHORT_BLOCK_LENGTH) {
    return b.id + (4 + b.data.length).toString(16).toUpperCase().padStart(2, '0') + b.data;
  }
  if (10 + b.data.length <= MAX_EXTENDED_BLOCK_LENGTH) {
    return `${b.id}0004${(10 + b.data.length).toString(16).toUpperCase().padStart(4, '0')}${b.data}`;
  }
  return fail(`${field}.data`, `${b.data.length} characters do not fit an optional block (at most 65525)`);
}

/**
 * Writes `header` as key block header text with `blockLength` in its length field (0 when the
 * length is not known yet). Optional blocks are written as given (PB included; none is added):
 * the short length form up to 255 characters, the extended `0004LLLL` form above
 * (X9.143:2021 §6.3).
 */
export function formatKeyBlockHeader(header: KeyBlockHeader, blockLength = 0): string {
  if (typeof header !== 'object' || header === null) throw new TypeError('header must be an object');
  for (const k of ['keyUsage', 'algorithm', 'modeOfUse', 'keyVersionNumber', 'exportability', 'keyContext']) {
    if (typeof (header as unknown as Record<string, unknown>)[k] !== 'string')
      throw new TypeError(`header.${k} must be a string`);
  }
  if (!Array.isArray(header.optionalBlocks)) throw new TypeError('header.optionalBlocks must be an array');
  checkFixedFields(header);
  if (!Number.isInteger(blockLength) || blockLength < 0 || blockLength > MAX_BLOCK_LENGTH)
    fail('header.blockLength', `must be an integer from 0 to ${MAX_BLOCK_LENGTH}`);
  if (header.optionalBlocks.length > MAX_OPTIONAL_BLOCKS)
    fail(
      'header.optionalBlocks',
      `at most ${MAX_OPTIONAL_BLOCKS} optional blocks, got ${header.optionalBlocks.length}`,
    );
  return (
    header.versionId +
    String(blockLength).padStart(4, '0') +
    header.keyUsage +
    header.algorithm +
    header.modeOfUse +
    header.keyVersionNumber +
    header.exportability +
    String(header.optionalBlocks.length).padStart(2, '0') +
    header.keyContext +
    '0' +
    header.optionalBlocks.map(formatOptionalBlock).join('')
  );
}

// --- Versions, key derivation -------------------------------------------------------------

interface VersionSpec {
  cipher: 'tdes' | 'aes';
  binding: 'variant' | 'derivation';
  mode: 'cbc' | 'ctr';
  /** Bytes of the MAC kept in the block. */
  macLength: number;
  /** Cipher block size; the header is padded to a multiple of it (X9.143 §6.3.6, PB). */
  blockSize: 8 | 16;
  wrap: boolean;
}

const SPECS: Record<KeyBlockVersion, VersionSpec> = {
  A: { cipher: 'tdes', binding: 'variant', mode: 'cbc', macLength: 4, blockSize: 8, wrap: false },
  B: { cipher: 'tdes', binding: 'derivation', mode: 'cbc', macLength: 8, blockSize: 8, wrap: true },
  C: { cipher: 'tdes', binding: 'variant', mode: 'cbc', macLength: 4, blockSize: 8, wrap: false },
  D: { cipher: 'aes', binding: 'derivation', mode: 'cbc', macLength: 16, blockSize: 16, wrap: true },
  E: { cipher: 'aes', binding: 'derivation', mode: 'ctr', macLength: 16, blockSize: 16, wrap: true },
};

function checkKbpk(version: KeyBlockVersion, kbpk: Uint8Array): VersionSpec {
  const spec = SPECS[version];
  const ok = spec.cipher === 'tdes' ? [16, 24] : [16, 24, 32];
  if (!ok.includes(kbpk.length)) {
    const what = spec.cipher === 'tdes' ? 'a TDES KBPK of 16 or 24' : 'an AES KBPK of 16, 24 or 32';
    throw new CryptoError(
      'CRYPTO_KEY_LENGTH',
      'kbpk',
      `version ${version} needs ${what} bytes, got ${kbpk.length}`,
    );
  }
  return spec;
}

/**
 * Key derivation binding method: TR-31:2018 §5.3.2.1 (TDES, Table 1) and §5.3.2.3 (AES,
 * Table 2), X9.143:2021 §7.2.1, ISO 20038:2017 §6.3 Table 1. Each cipher block of the derived
 * key is CMAC(KBPK, counter ‖ usage ‖ 00 ‖ algorithm ‖ length in bits); usage 0000 = encryption
 * (CBC), 0001 = MAC, 0002 = encryption (CTR, version E); algorithm 0000/0001 = 2/3-key TDES,
 * 0002/0003/0004 = AES-128/192/256. AES-192 keeps the leftmost 8 bytes of the second block.
 */
function deriveOne(cipher: 'tdes' | 'aes', kbpk: Uint8Array, usage: number): Uint8Array {
  const bs = cipher === 'tdes' ? 8 : 16;
  const algorithm = cipher === 'tdes' ? (kbpk.length === 16 ? 0 : 1) : kbpk.length / 8;
  const bits = kbpk.length * 8;
  const out = new Uint8Array(Math.ceil(kbpk.length / bs) * bs);
  const input = new Uint8Array([
    0,
    usage >> 8,
    usage & 0xff,
    0,
    algorithm >> 8,
    algorithm & 0xff,
    bits >> 8,
    bits & 0xff,
  ]);
  for (let i = 0; i * bs < kbpk.length; i++) {
    input[0] = i + 1;
    const part = cmac(cipher, kbpk, input);
    out.set(part, i * bs);
    wipe(part);
  }
  const key = out.slice(0, kbpk.length);
  wipe(out);
  return key;
}

/**
 * The key block encryption key (KBEK) and authentication key (KBAK) of `versionId` under `kbpk`:
 * versions A and C by the variant method (TR-31:2010 §5.3.1: KBEK = KBPK XOR 45..45,
 * KBAK = KBPK XOR 4D..4D), B, D and E by CMAC derivation (see `deriveOne`). The caller wipes them.
 */
export function deriveKeyBlockKeys(
  versionId: KeyBlockVersion,
  kbpk: Uint8Array,
): { kbek: Uint8Array; kbak: Uint8Array } {
  if (!(kbpk instanceof Uint8Array)) throw new TypeError('kbpk must be a Uint8Array');
  checkVersion(versionId);
  const spec = checkKbpk(versionId, kbpk);
  if (spec.binding === 'variant') {
    return { kbek: kbpk.map((b) => b ^ 0x45), kbak: kbpk.map((b) => b ^ 0x4d) };
  }
  return {
    kbek: deriveOne(spec.cipher, kbpk, spec.mode === 'ctr' ? 0x0002 : 0x0000),
    kbak: deriveOne(spec.cipher, kbpk, 0x0001),
  };
}

/** TDES CBC-MAC (ISO 9797-1 MAC algorithm 1, no padding: the data is whole blocks), leftmost 4 bytes: versions A and C (TR-31:2010 §5.4.1). */
function variantMac(kbak: Uint8Array, data: Uint8Array): Uint8Array {
  const c = encrypt('tdes', 'cbc', kbak, data);
  const mac = c.slice(c.length - 8, c.length - 4);
  wipe(c);
  return mac;
}

/** AES-CTR (SP 800-38A §6.5) with the MAC as initial counter block, the whole block incremented big-endian: version E (ISO 20038:2017 §6.4). */
function aesCtr(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const blocks = Math.ceil(data.length / 16);
  const counters = new Uint8Array(blocks * 16);
  const ctr = iv.slice();
  for (let i = 0; i < blocks; i++) {
    counters.set(ctr, i * 16);
    for (let j = 15; j >= 0; j--) {
      ctr[j] = (ctr[j]! + 1) & 0xff;
      if (ctr[j] !== 0) break;
    }
  }
  const stream = aesEncryptEcb(key, counters);
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ stream[i]!;
  wipe(stream);
  return out;
}

/** Key lengths in bytes the key algorithms with a fixed set of lengths take (X9.143:2021 Table 7). */
const KEY_LENGTHS_BY_ALGORITHM: Readonly<Record<string, readonly number[]>> = {
  A: [16, 24, 32],
  D: [8],
  T: [8, 16, 24], // 8: single-length keys carried as T, as psec and payShield write them
};

function toUpperHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex').toUpperCase();
}

// --- Wrap -----------------------------------------------------------------------------------

export interface WrapKeyBlockOptions {
  /** Source of random bytes for the key padding and the PB block (default node:crypto randomBytes). */
  random?: (length: number) => Uint8Array;
  /**
   * Pad the key as if it were this many bytes long, so that the block does not tell a 16-byte key
   * from a 24-byte one (TR-31:2018 §A.4, key length obfuscation). At least `key.length`.
   */
  maskedKeyLength?: number;
}

function takeRandom(random: (length: number) => Uint8Array, n: number): Uint8Array {
  if (n === 0) return new Uint8Array(0);
  const r = random(n);
  if (!(r instanceof Uint8Array) || r.length !== n)
    throw new RangeError(`opts.random must return a Uint8Array of the ${n} bytes asked for`);
  return r;
}

/**
 * Wraps `key` under `kbpk` in a key block of version B (TDES), D (AES-CBC) or E (AES-CTR).
 * `header` is a `KeyBlockHeader` or header text (e.g. `D0000P0AE00E0000`) whose length field is
 * ignored and filled in. A PB optional block is appended when the header is not a multiple of
 * the cipher block size (X9.143:2021 §6.3.6); a PB given by the caller is kept and must be last.
 *
 * Payload (TR-31:2018 §A.4): 2-byte key length in bits ‖ key ‖ random padding to the cipher block
 * (none for E unless masked). MAC = CMAC(KBAK, header ‖ clear payload), 8 bytes (B) or 16 (D, E);
 * the payload is then encrypted under the KBEK with the MAC as IV (CBC) or initial counter (CTR)
 * (TR-31:2018 §5.3.2, X9.143:2021 §7.3, ISO 20038:2017 §6.4).
 */
export function wrapKeyBlock(
  kbpk: Uint8Array,
  header: KeyBlockHeader | string,
  key: Uint8Array,
  opts: WrapKeyBlockOptions = {},
): string {
  if (!(kbpk instanceof Uint8Array)) throw new TypeError('kbpk must be a Uint8Array');
  if (!(key instanceof Uint8Array)) throw new TypeError('key must be a Uint8Array');
  let h: KeyBlockHeader;
  if (typeof header === 'string') {
    const parsed = parseKeyBlockHeader(header);
    if (parsed.headerLength !== header.length)
      fail('header', `has ${header.length - parsed.headerLength} characters after its optional blocks`);
    h = parsed.header;
  } else {
    formatKeyBlockHeader(header); // validates every field
    h = { ...header, optionalBlocks: header.optionalBlocks.map((b) => ({ id: b.id, data: b.data })) };
  }
  const version = h.versionId;
  if (!SPECS[version].wrap) {
    throw new CryptoError(
      'CRYPTO_KEYBLOCK_VERSION',
      'header.versionId',
      `version ${version} (TDES key variant binding) is legacy: it is unwrapped only; wrap with version B (TDES KBPK) or D (AES KBPK)`,
    );
  }
  const spec = checkKbpk(version, kbpk);

  // The key: a length the header's algorithm takes, and no stronger than the KBPK protecting it
  // (X9.24-1:2017 §7.2: a key is protected by a key of equal or greater strength).
  if (key.length === 0) throw new CryptoError('CRYPTO_KEY_LENGTH', 'key', 'must not be empty');
  const allowed = KEY_LENGTHS_BY_ALGORITHM[h.algorithm];
  if (allowed && !allowed.includes(key.length)) {
    throw new CryptoError(
      'CRYPTO_KEY_LENGTH',
      'key',
      `algorithm ${h.algorithm} takes ${allowed.join(', ')} bytes, got ${key.length}`,
    );
  }
  if (spec.cipher === 'tdes' && h.algorithm === 'A') {
    throw new CryptoError(
      'CRYPTO_KEYBLOCK_VERSION',
      'header.versionId',
      'an AES key must not be wrapped under a TDES KBPK (version B); use version D',
    );
  }
  if (
    allowed &&
    ((spec.cipher === 'tdes' && h.algorithm !== 'A') || (spec.cipher === 'aes' && h.algorithm === 'A'))
  ) {
    if (key.length > kbpk.length) {
      throw new CryptoError(
        'CRYPTO_KEY_LENGTH',
        'key',
        `a ${key.length}-byte key must not be wrapped under a weaker ${kbpk.length}-byte KBPK`,
      );
    }
  }
  const masked = opts.maskedKeyLength ?? key.length;
  if (!Number.isInteger(masked) || masked < key.length || masked > MAX_KEY_LENGTH) {
    throw new CryptoError(
      'CRYPTO_PARAM',
      'opts.maskedKeyLength',
      `must be an integer from the key length (${key.length}) to ${MAX_KEY_LENGTH}`,
    );
  }
  const random = opts.random ?? ((n: number) => new Uint8Array(randomBytes(n)));

  // Header: pad to the cipher block with PB (X9.143:2021 §6.3.6 "PB: padding block").
  const blocks = h.optionalBlocks;
  const pbAt = blocks.findIndex((b) => b.id === 'PB');
  if (pbAt >= 0 && pbAt !== blocks.length - 1)
    fail('header.optionalBlocks', 'PB (padding block) must be the last optional block');
  let text = formatKeyBlockHeader(h);
  if (text.length % spec.blockSize !== 0) {
    if (pbAt >= 0)
      fail('header', `${text.length} characters, PB included, is not a multiple of ${spec.blockSize}`);
    let pad = spec.blockSize - (text.length % spec.blockSize);
    if (pad < 4) pad += spec.blockSize; // PB's own ID and length take 4 characters
    const r = takeRandom(random, pad - 4);
    const data = Array.from(r, (b) => PB_CHARS[b % PB_CHARS.length]).join('');
    h = { ...h, optionalBlocks: [...blocks, { id: 'PB', data }] };
    text = formatKeyBlockHeader(h);
  }

  const payloadLength =
    spec.mode === 'ctr' ? 2 + masked : Math.ceil((2 + masked) / spec.blockSize) * spec.blockSize;
  const total = text.length + 2 * payloadLength + 2 * spec.macLength;
  if (total > MAX_BLOCK_LENGTH)
    fail('block', `would be ${total} characters, more than the ${MAX_BLOCK_LENGTH} the length field holds`);
  text = formatKeyBlockHeader(h, total);

  const padding = takeRandom(random, payloadLength - 2 - key.length);
  const bits = key.length * 8;
  const clear = concat(new Uint8Array([bits >> 8, bits & 0xff]), key, padding);
  const { kbek, kbak } = deriveKeyBlockKeys(version, kbpk);
  const macInput = concat(fromAscii(text), clear);
  try {
    const tag = cmac(spec.cipher, kbak, macInput);
    const mac = tag.slice(0, spec.macLength);
    const encrypted =
      spec.mode === 'ctr' ? aesCtr(kbek, mac, clear) : encrypt(spec.cipher, 'cbc', kbek, clear, mac);
    return text + toUpperHex(encrypted) + toUpperHex(mac);
  } finally {
    wipe(clear, padding, macInput, kbek, kbak);
  }
}

// --- Unwrap ---------------------------------------------------------------------------------

export interface UnwrappedKeyBlock {
  key: Uint8Array;
  header: KeyBlockHeader;
  /** The header exactly as it appears in the block (what the MAC covers). */
  headerText: string;
}

/**
 * Verifies and opens a key block of version A, B, C, D or E under `kbpk`.
 *
 * Order (so that nothing about the payload leaks before the MAC is checked): the block's form
 * (printable, length field, header, upper-case hex, whole cipher blocks), the KBPK's length for
 * the version, then the MAC in constant time, and only then the key length inside the payload.
 * Versions A/C MAC the encrypted payload, so the MAC is checked before anything is decrypted
 * (TR-31:2010 §5.4.1). Versions B/D/E MAC the clear payload (TR-31:2018 §5.3.2, X9.143 §7.3),
 * so the payload is decrypted into a scratch buffer, the MAC checked, and the buffer wiped if it
 * fails: no byte of it is interpreted or returned before the MAC verifies.
 */
export function unwrapKeyBlock(kbpk: Uint8Array, block: string): UnwrappedKeyBlock {
  if (!(kbpk instanceof Uint8Array)) throw new TypeError('kbpk must be a Uint8Array');
  if (typeof block !== 'string') throw new TypeError('block must be a string');
  const bad = firstNonPrintable(block);
  if (bad >= 0) fail('block', `character at position ${bad} is not printable ASCII`);
  if (block.length < 16)
    fail('block', `must be at least 16 characters (the fixed header), got ${block.length}`);
  const { header, blockLength, headerLength } = parseKeyBlockHeader(block);
  if (blockLength !== block.length)
    fail('header.blockLength', `declares ${blockLength} characters but the block has ${block.length}`);
  const version = header.versionId;
  const spec = checkKbpk(version, kbpk);
  if (spec.mode === 'cbc' && headerLength % spec.blockSize !== 0)
    fail(
      'header',
      `${headerLength} characters is not a multiple of ${spec.blockSize} (pad it with a PB block)`,
    );

  const macHex = 2 * spec.macLength;
  const payloadHex = block.length - headerLength - macHex;
  if (payloadHex < 2 * (spec.mode === 'ctr' ? 3 : spec.blockSize))
    fail('block', `too short for a payload and a ${macHex}-character MAC`);
  if (payloadHex % 2 !== 0) fail('payload', `odd number of hex characters (${payloadHex})`);
  for (let i = headerLength; i < block.length; i++) {
    if (!UPPER_HEX.test(block[i]!))
      fail('block', `character at position ${i} is not an upper-case hex digit`);
  }
  const payload = new Uint8Array(Buffer.from(block.slice(headerLength, headerLength + payloadHex), 'hex'));
  const mac = new Uint8Array(Buffer.from(block.slice(headerLength + payloadHex), 'hex'));
  if (spec.mode === 'cbc' && payload.length % spec.blockSize !== 0)
    fail('payload', `${payload.length} bytes is not a multiple of the ${spec.blockSize}-byte cipher block`);

  const headerText = block.slice(0, headerLength);
  const headerBytes = fromAscii(headerText);
  const { kbek, kbak } = deriveKeyBlockKeys(version, kbpk);
  let clear: Uint8Array | undefined;
  let macInput: Uint8Array | undefined;
  try {
    if (spec.binding === 'variant') {
      const expected = variantMac(kbak, concat(headerBytes, payload));
      if (!equalBytes(expected, mac)) throw macError();
      // TR-31:2010 §5.3.1: CBC with the first 8 header bytes as IV.
      clear = decrypt('tdes', 'cbc', kbek, payload, headerBytes.subarray(0, 8));
    } else {
      clear =
        spec.mode === 'ctr' ? aesCtr(kbek, mac, payload) : decrypt(spec.cipher, 'cbc', kbek, payload, mac);
      macInput = concat(headerBytes, clear);
      const tag = cmac(spec.cipher, kbak, macInput);
      const ok = equalBytes(tag.subarray(0, spec.macLength), mac);
      wipe(tag);
      if (!ok) throw macError();
    }
    // Only now read the key length field (TR-31:2018 §A.4: 2 bytes, bits, big-endian).
    const bits = (clear[0]! << 8) | clear[1]!;
    if (bits === 0 || bits % 8 !== 0) {
      throw new CryptoError(
        'CRYPTO_KEYBLOCK_KEY_LENGTH',
        'payload.keyLength',
        'is not a positive whole number of bytes',
      );
    }
    const length = bits / 8;
    if (length > clear.length - 2) {
      throw new CryptoError(
        'CRYPTO_KEYBLOCK_KEY_LENGTH',
        'payload.keyLength',
        `gives ${length} bytes but the payload holds at most ${clear.length - 2}`,
      );
    }
    const allowed = KEY_LENGTHS_BY_ALGORITHM[header.algorithm];
    if (allowed && !allowed.includes(length)) {
      throw new CryptoError(
        'CRYPTO_KEYBLOCK_KEY_LENGTH',
        'payload.keyLength',
        `gives ${length} bytes, which algorithm ${header.algorithm} does not take (${allowed.join(', ')})`,
      );
    }
    return { key: clear.slice(2, 2 + length), header, headerText };
  } finally {
    wipe(clear, macInput, kbek, kbak);
  }
}

function macError(): CryptoError {
  return new CryptoError(
    'CRYPTO_KEYBLOCK_MAC',
    'block.mac',
    'does not verify: the block was altered or the KBPK is not the one it was made under',
  );
}
