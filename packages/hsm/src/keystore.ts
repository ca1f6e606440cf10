/**
 * Keys outside the HSM: key blocks under the LMK.
 *
 * Every key the HSM hands out (to the POSP's terminal table, to a switch's key file) is a key block
 * under the LMK whose header binds the key's use: key usage, algorithm, mode of use, key version and
 * exportability, with the same codes as ANSI X9.143 / ASC X9 TR-31:2018 (Table "Key usage", "Mode of
 * use", "Exportability"). The block's MAC covers the header, so changing a MAC key into a PIN key makes
 * the block fail to verify; `unwrapLmkKeyBlock` then refuses a key whose usage or mode of use is not the
 * one the operation expects, which is what makes "a MAC key cannot decrypt a PIN block" true.
 *
 * Format (internal to this HSM; version ID '1' because TR-31 reserves numeric version IDs for
 * proprietary methods):
 *
 *   'S' | header (16) | IV (32 H) | encrypted key data (64 H for TDES, 96 H for AES) | MAC (32 H)
 *
 *   header = '1' | length (4 N, the characters after 'S') | usage (2) | algorithm (1) | mode of use (1)
 *            | key version (2) | exportability (1) | optional blocks '00' | reserved '00'
 *
 * The 'S' is payShield's key scheme tag for a key under a key-block LMK. The key data is TR-31's:
 * key length in bits (2 bytes, big-endian) | key | random padding, padded to the algorithm's longest key
 * so that the block does not reveal a key's length. Keys: KBEK and KBAK are derived from the LMK exactly
 * as TR-31 version D derives them from an AES-256 KBPK (CMAC in counter mode, NIST SP 800-108; TR-31:2018
 * §A.3 / X9.143 §7.3). Unlike version D, which MACs the clear key data and so must decrypt before it can
 * verify, this format is encrypt-then-MAC: AES-256-CBC under KBEK with a random IV, then CMAC under KBAK
 * over header | IV | ciphertext, so a block is authenticated, and its header checked against what the
 * operation expects, before anything is decrypted.
 *
 * LATER: once crypto's TR-31 implementation lands, a later session switches this file to TR-31 version D
 * (`wrapKeyBlock` / `unwrapKeyBlock` of @openposp/crypto with the LMK as KBPK), keeping the same header
 * semantics (the usage, algorithm, mode and exportability codes here are TR-31's) and the same
 * `Lmk.wrapKey` / `Lmk.unwrapKey` API; blocks in this format then need a one-time re-wrap.
 */
import { randomBytes } from 'node:crypto';
import { cmac, concat, decrypt, encrypt, equalBytes, fromAscii, toHex, wipe } from '@openposp/crypto';
import { HsmError } from './errors.js';

/** TR-31 key usage codes this HSM issues (X9.143 Table 6). */
export const KEY_USAGES = {
  B0: 'base derivation key (BDK)',
  B1: 'initial DUKPT key (IPEK / IK)',
  D0: 'symmetric data encryption',
  K0: 'key encryption or wrapping',
  M1: 'MAC, ISO 9797-1 algorithm 1',
  M3: 'MAC, ISO 9797-1 algorithm 3 (retail MAC)',
  M6: 'MAC, ISO 9797-1:2011 algorithm 5 (CMAC)',
  P0: 'PIN encryption',
  V1: 'PIN verification, IBM 3624',
  V2: 'PIN verification, Visa PVV',
} as const;
export type KeyUsage = keyof typeof KEY_USAGES;

/** TR-31 algorithm codes this HSM holds: TDES and AES. */
export const KEY_ALGORITHMS = { T: 'TDES', A: 'AES' } as const;
export type KeyAlgorithm = keyof typeof KEY_ALGORITHMS;

/** TR-31 modes of use (X9.143 Table 8). */
export const MODES_OF_USE = {
  B: 'both encrypt/wrap and decrypt/unwrap',
  C: 'both generate and verify (MAC, PIN verification)',
  D: 'decrypt/unwrap only',
  E: 'encrypt/wrap only',
  G: 'generate only',
  V: 'verify only',
  X: 'key derivation',
} as const;
export type ModeOfUse = keyof typeof MODES_OF_USE;

/** TR-31 exportability (X9.143 Table 10). */
export const EXPORTABILITIES = {
  E: 'exportable under a key-encrypting key',
  N: 'not exportable',
  S: 'sensitive: exportable only in a non-TR-31 form',
} as const;
export type Exportability = keyof typeof EXPORTABILITIES;

/** Which modes of use make sense for each usage (TR-31 Table "Key usage / mode of use"). */
export const MODES_BY_USAGE: Readonly<Record<KeyUsage, readonly ModeOfUse[]>> = {
  B0: ['X'],
  B1: ['X'],
  D0: ['B', 'D', 'E'],
  K0: ['B', 'D', 'E'],
  M1: ['C', 'G', 'V'],
  M3: ['C', 'G', 'V'],
  M6: ['C', 'G', 'V'],
  P0: ['B', 'D', 'E'],
  V1: ['C', 'G', 'V'],
  V2: ['C', 'G', 'V'],
};

/** Key lengths in bytes each algorithm accepts (TDES 2- and 3-key; AES-128/192/256). */
export const KEY_LENGTHS_BYTES: Readonly<Record<KeyAlgorithm, readonly number[]>> = {
  T: [16, 24],
  A: [16, 24, 32],
};

export interface KeyAttributes {
  usage: KeyUsage;
  algorithm: KeyAlgorithm;
  modeOfUse: ModeOfUse;
  /** Two characters; '00' when versioning is not used (TR-31 §A.4.5). */
  keyVersion: string;
  exportability: Exportability;
}

/** What an operation accepts: one usage or several, one mode of use or several, optionally an algorithm. */
export interface KeyExpectation {
  usage: KeyUsage | readonly KeyUsage[];
  modeOfUse: ModeOfUse | readonly ModeOfUse[];
  algorithm?: KeyAlgorithm;
}

export const KEYBLOCK_PREFIX = 'S';
export const KEYBLOCK_VERSION = '1';
const HEADER_CHARS = 16;
const IV_BYTES = 16;
const MAC_BYTES = 16;
/** Encrypted key data length: 2-byte bit length + longest key, rounded up to the AES block. */
const KEYDATA_BYTES: Readonly<Record<KeyAlgorithm, number>> = { T: 32, A: 48 };

const has = <T extends string>(table: Record<T, unknown>, v: string): v is T => Object.hasOwn(table, v);

/** The number of characters of a block after its 'S' prefix, for each algorithm. */
export function keyBlockLength(algorithm: KeyAlgorithm): number {
  return HEADER_CHARS + 2 * (IV_BYTES + KEYDATA_BYTES[algorithm] + MAC_BYTES);
}

/**
 * KBEK and KBAK from an AES-256 key, as TR-31:2018 §A.3 derives them for version D: CMAC-AES(KBPK,
 * counter | usage indicator (0000 encryption, 0001 MAC) | 00 | algorithm indicator 0004 (AES-256) |
 * length 0100 (256 bits)), counters 1 and 2 concatenated (NIST SP 800-108 counter mode).
 */
export function deriveKeyBlockKeys(kbpk: Uint8Array): { kbek: Uint8Array; kbak: Uint8Array } {
  if (kbpk.length !== 32) throw new RangeError('kbpk must be 32 bytes (AES-256)');
  const derive = (usage: number): Uint8Array => {
    const parts: Uint8Array[] = [];
    for (let counter = 1; counter <= 2; counter++) {
      parts.push(cmac('aes', kbpk, Uint8Array.of(counter, 0x00, usage, 0x00, 0x00, 0x04, 0x01, 0x00)));
    }
    const out = concat(...parts);
    wipe(...parts);
    return out;
  };
  return { kbek: derive(0x00), kbak: derive(0x01) };
}

/**
 * Throws unless `attrs` fit together (and fit a key of `keyLengthBytes`): HSM_KEY_ATTRIBUTES for a bad
 * usage, mode, version or exportability, HSM_KEY_ALGORITHM, HSM_KEY_LENGTH. `field` prefixes the field
 * names; `code` replaces HSM_KEY_ATTRIBUTES/HSM_KEY_ALGORITHM when the attributes come from a block
 * header (HSM_KEYBLOCK_FORMAT), keeping the precise payShield reply (A6, A7, A8, A9, AA).
 */
export function checkKeyAttributes(
  attrs: KeyAttributes,
  keyLengthBytes?: number,
  field = 'attrs',
  code?: 'HSM_KEYBLOCK_FORMAT',
): void {
  const fail = (
    c: 'HSM_KEY_ATTRIBUTES' | 'HSM_KEY_ALGORITHM',
    f: string,
    rule: string,
    reply: string,
  ): never => {
    throw new HsmError(code ?? c, `${field}.${f}`, rule, reply);
  };
  if (!has(KEY_USAGES, attrs.usage)) fail('HSM_KEY_ATTRIBUTES', 'usage', 'unknown key usage', 'A6');
  if (!has(KEY_ALGORITHMS, attrs.algorithm)) {
    fail('HSM_KEY_ALGORITHM', 'algorithm', 'unknown key algorithm (expected T or A)', 'A7');
  }
  const modes = MODES_BY_USAGE[attrs.usage];
  if (!has(MODES_OF_USE, attrs.modeOfUse) || !modes.includes(attrs.modeOfUse)) {
    fail(
      'HSM_KEY_ATTRIBUTES',
      'modeOfUse',
      `must be one of ${modes.join(', ')} for usage ${attrs.usage}`,
      'A8',
    );
  }
  if (typeof attrs.keyVersion !== 'string' || !/^[0-9A-Za-z]{2}$/.test(attrs.keyVersion)) {
    fail('HSM_KEY_ATTRIBUTES', 'keyVersion', 'must be 2 alphanumeric characters', 'A9');
  }
  if (!has(EXPORTABILITIES, attrs.exportability)) {
    fail('HSM_KEY_ATTRIBUTES', 'exportability', 'must be E, N or S', 'AA');
  }
  // ISO 9797-1 algorithms 1 and 3 are defined over a 64-bit block cipher: TDES keys only.
  if ((attrs.usage === 'M1' || attrs.usage === 'M3') && attrs.algorithm !== 'T') {
    fail('HSM_KEY_ALGORITHM', 'algorithm', `usage ${attrs.usage} needs a TDES key`, 'A7');
  }
  if (keyLengthBytes !== undefined && !KEY_LENGTHS_BYTES[attrs.algorithm].includes(keyLengthBytes)) {
    throw new HsmError(
      'HSM_KEY_LENGTH',
      'key',
      `${KEY_ALGORITHMS[attrs.algorithm]} key must be ${KEY_LENGTHS_BYTES[attrs.algorithm].join(' or ')} bytes, got ${keyLengthBytes}`,
    );
  }
}

function formatHeader(attrs: KeyAttributes): string {
  const length = String(keyBlockLength(attrs.algorithm)).padStart(4, '0');
  return `${KEYBLOCK_VERSION}${length}${attrs.usage}${attrs.algorithm}${attrs.modeOfUse}${attrs.keyVersion}${attrs.exportability}0000`;
}

/**
 * Wraps `key` under the key-block keys (see the file comment). `keys` come from
 * `deriveKeyBlockKeys(lmk)`; the LMK itself never leaves `Lmk`.
 */
export function wrapLmkKeyBlock(
  keys: { kbek: Uint8Array; kbak: Uint8Array },
  key: Uint8Array,
  attrs: KeyAttributes,
): string {
  checkKeyAttributes(attrs, key.length);
  const header = formatHeader(attrs);
  const data = randomBytes(KEYDATA_BYTES[attrs.algorithm]);
  data[0] = (key.length * 8) >> 8;
  data[1] = (key.length * 8) & 0xff;
  data.set(key, 2);
  const iv = new Uint8Array(randomBytes(IV_BYTES));
  const ct = encrypt('aes', 'cbc', keys.kbek, data, iv);
  wipe(data);
  const mac = cmac('aes', keys.kbak, concat(fromAscii(header), iv, ct));
  return `${KEYBLOCK_PREFIX}${header}${toHex(iv)}${toHex(ct)}${toHex(mac)}`;
}

/** Parses and checks the header of a block, without any key: the attributes it claims (not yet verified). */
export function parseLmkKeyBlockHeader(block: string, field = 'keyBlock'): KeyAttributes {
  if (typeof block !== 'string') throw new TypeError(`${field} must be a string`);
  if (block[0] !== KEYBLOCK_PREFIX) {
    throw new HsmError('HSM_KEYBLOCK_FORMAT', field, `must start with the key scheme tag ${KEYBLOCK_PREFIX}`);
  }
  if (block.length < 1 + HEADER_CHARS) {
    throw new HsmError('HSM_KEYBLOCK_FORMAT', field, `shorter than its ${HEADER_CHARS}-character header`);
  }
  const h = block.slice(1, 1 + HEADER_CHARS);
  if (h[0] !== KEYBLOCK_VERSION) {
    throw new HsmError(
      'HSM_KEYBLOCK_FORMAT',
      `${field}.header.version`,
      `version ID must be ${KEYBLOCK_VERSION}`,
      'BE',
    );
  }
  if (!/^[0-9]{4}$/.test(h.slice(1, 5))) {
    throw new HsmError('HSM_KEYBLOCK_FORMAT', `${field}.header.length`, 'length must be 4 decimal digits');
  }
  const usage = h.slice(5, 7);
  const algorithm = h[7]!;
  const modeOfUse = h[8]!;
  const keyVersion = h.slice(9, 11);
  const exportability = h[11]!;
  if (h.slice(12, 16) !== '0000') {
    throw new HsmError(
      'HSM_KEYBLOCK_FORMAT',
      `${field}.header.optionalBlocks`,
      'optional blocks and reserved field must be 0000',
    );
  }
  const attrs = { usage, algorithm, modeOfUse, keyVersion, exportability } as KeyAttributes;
  checkKeyAttributes(attrs, undefined, `${field}.header`, 'HSM_KEYBLOCK_FORMAT');
  const declared = Number(h.slice(1, 5));
  const expected = keyBlockLength(attrs.algorithm);
  if (declared !== expected) {
    throw new HsmError(
      'HSM_KEYBLOCK_FORMAT',
      `${field}.header.length`,
      `length must be ${expected} for algorithm ${attrs.algorithm}, header says ${declared}`,
    );
  }
  if (block.length - 1 !== declared) {
    throw new HsmError(
      'HSM_KEYBLOCK_FORMAT',
      field,
      `has ${block.length - 1} characters after the tag, its header says ${declared}`,
    );
  }
  if (!/^[0-9A-F]*$/.test(block.slice(1 + HEADER_CHARS))) {
    const at = block.slice(1 + HEADER_CHARS).search(/[^0-9A-F]/);
    throw new HsmError(
      'HSM_KEYBLOCK_FORMAT',
      field,
      `non-hex character at position ${1 + HEADER_CHARS + at}`,
    );
  }
  return attrs;
}

const asList = <T>(v: T | readonly T[]): readonly T[] => (Array.isArray(v) ? (v as readonly T[]) : [v as T]);

/**
 * Throws unless `attrs` meet `expect`: HSM_KEY_USAGE, then HSM_KEY_MODE_OF_USE, then HSM_KEY_ALGORITHM.
 * Used on every unwrap, and on every use of a key taken from the HSM's key cache.
 */
export function checkKeyExpectation(attrs: KeyAttributes, expect: KeyExpectation, field = 'keyBlock'): void {
  const usages = asList(expect.usage);
  if (!usages.includes(attrs.usage)) {
    throw new HsmError(
      'HSM_KEY_USAGE',
      field,
      `key usage ${attrs.usage} (${KEY_USAGES[attrs.usage]}) is not accepted here (expected ${usages.join(' or ')})`,
    );
  }
  const modes = asList(expect.modeOfUse);
  if (!modes.includes(attrs.modeOfUse)) {
    throw new HsmError(
      'HSM_KEY_MODE_OF_USE',
      field,
      `mode of use ${attrs.modeOfUse} is not accepted here (expected ${modes.join(' or ')})`,
    );
  }
  if (expect.algorithm !== undefined && expect.algorithm !== attrs.algorithm) {
    throw new HsmError(
      'HSM_KEY_ALGORITHM',
      field,
      `algorithm ${attrs.algorithm} is not accepted here (expected ${expect.algorithm})`,
    );
  }
}

/**
 * Verifies a block's MAC, checks its attributes against `expect`, and only then decrypts the key.
 * Order of checks: format (HSM_KEYBLOCK_FORMAT), MAC (HSM_KEYBLOCK_MAC), usage (HSM_KEY_USAGE), mode of
 * use (HSM_KEY_MODE_OF_USE), algorithm (HSM_KEY_ALGORITHM), inner key length (HSM_KEYBLOCK_FORMAT).
 * The caller owns (and should wipe) the returned key.
 */
export function unwrapLmkKeyBlock(
  keys: { kbek: Uint8Array; kbak: Uint8Array },
  block: string,
  expect: KeyExpectation | null,
  field = 'keyBlock',
): { key: Uint8Array; attrs: KeyAttributes } {
  const attrs = parseLmkKeyBlockHeader(block, field);
  const body = block.slice(1 + HEADER_CHARS);
  const bytes = new Uint8Array(Buffer.from(body, 'hex'));
  const iv = bytes.subarray(0, IV_BYTES);
  const ct = bytes.subarray(IV_BYTES, bytes.length - MAC_BYTES);
  const mac = bytes.subarray(bytes.length - MAC_BYTES);
  const header = block.slice(1, 1 + HEADER_CHARS);
  const want = cmac('aes', keys.kbak, concat(fromAscii(header), iv, ct));
  if (!equalBytes(want, mac)) {
    throw new HsmError(
      'HSM_KEYBLOCK_MAC',
      field,
      'MAC does not verify (block altered, or under another LMK)',
    );
  }
  if (expect !== null) checkKeyExpectation(attrs, expect, field);
  const data = decrypt('aes', 'cbc', keys.kbek, ct, iv);
  const bits = (data[0]! << 8) | data[1]!;
  if (bits % 8 !== 0 || !KEY_LENGTHS_BYTES[attrs.algorithm].includes(bits / 8)) {
    wipe(data);
    throw new HsmError(
      'HSM_KEYBLOCK_FORMAT',
      `${field}.keyLength`,
      'inner key length is not valid for the algorithm',
    );
  }
  const key = data.slice(2, 2 + bits / 8);
  wipe(data);
  return { key, attrs };
}

/** ASCII of a header for display and audit (no key material): e.g. `10144P0TB00E0000`. */
export function keyBlockHeader(block: string): string {
  return block.slice(1, 1 + HEADER_CHARS);
}
