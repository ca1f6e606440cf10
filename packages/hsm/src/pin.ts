/**
 * PIN block decryption and encryption inside the HSM, over a key that has passed its usage checks.
 *
 * The block formats are the crypto package's (ISO 9564-1:2017 clause 9.3 formats 0, 1, 3 and clause
 * 9.4.2 format 4: `encodePinBlock`, `decodePinBlock`, `encodePinFieldIso4`, `decodePinFieldIso4`,
 * `encodePanFieldIso4`); only the block cipher calls go through the cached ECB objects of `CachedKey`
 * (the same TDES-ECB / AES-ECB, without a new key schedule per request). Format 4 is clause 9.4.2.3's
 * two-pass encipherment: block = E(K, E(K, PIN field) XOR PAN field).
 *
 * Every crypto failure is mapped to the HSM error a host command answers with (`hsmErrorOf`): a block
 * that does not decode is HSM_PIN_BLOCK (payShield 20), a PIN length field outside 4-12 HSM_PIN_LENGTH
 * (24), a bad PAN HSM_PAN_INVALID (22). No message holds a PIN, a PIN block, a PAN or a key.
 */
import { randomFillSync } from 'node:crypto';
import {
  CryptoError,
  decodePinBlock,
  decodePinFieldIso4,
  encodePanFieldIso4,
  encodePinBlock,
  encodePinFieldIso4,
  wipe,
  xor,
} from '@openposp/crypto';
import type { PinBlockFormatCode } from './api.js';
import { HsmError } from './errors.js';
import type { KeyAlgorithm } from './keystore.js';

export const PIN_BLOCK_FORMAT_CODES: readonly PinBlockFormatCode[] = [0, 1, 3, 4];

/** payShield PIN block format codes on the host port (payShield 9000/10K host command reference). */
export const PAYSHIELD_PIN_FORMAT: Readonly<Record<PinBlockFormatCode, string>> = {
  0: '01', // ISO 9564-1 format 0 (ANSI X9.8)
  1: '05', // ISO 9564-1 format 1
  3: '47', // ISO 9564-1 format 3
  4: '48', // ISO 9564-1 format 4 (AES)
};

/**
 * Random fill for formats 1, 3 and 4, drawn from a pool refilled by the CSPRNG (node:crypto
 * randomFillSync) 4 KiB at a time: one syscall per ~500 PIN blocks instead of one per block. Used bytes
 * are zeroed as they are handed out. The fill is not secret once enciphered, but it must be unpredictable
 * (ISO 9564-1:2017 9.3.5.2, 9.4.2.2.2), which the CSPRNG gives either way.
 */
const POOL_BYTES = 4096;
const pool = new Uint8Array(POOL_BYTES);
let poolAt = POOL_BYTES;
function pooledRandom(n: number): Uint8Array {
  if (n > POOL_BYTES) return new Uint8Array(randomFillSync(new Uint8Array(n)));
  if (poolAt + n > POOL_BYTES) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const out = pool.slice(poolAt, poolAt + n);
  pool.fill(0, poolAt, poolAt + n);
  poolAt += n;
  return out;
}
const FILL = { fill: pooledRandom };

/** What a PIN operation needs of its key: the ECB block cipher and the algorithm. */
export interface EcbKey {
  readonly attrs: { readonly algorithm: KeyAlgorithm };
  encryptEcb(data: Uint8Array): Uint8Array;
  decryptEcb(data: Uint8Array): Uint8Array;
}

/** Maps a CryptoError from a PIN, PAN, MAC, DUKPT or key block function to the HSM error that fits. */
export function hsmErrorOf(e: unknown, field?: string): unknown {
  if (!(e instanceof CryptoError)) return e;
  const f = field ?? e.field;
  const rule = e.message.slice(e.field.length + 2);
  switch (e.code) {
    case 'CRYPTO_PINBLOCK_INVALID':
      if (/PIN length field/.test(rule)) return new HsmError('HSM_PIN_LENGTH', f, rule);
      return new HsmError('HSM_PIN_BLOCK', f, rule);
    case 'CRYPTO_PIN_INVALID':
      return new HsmError('HSM_PIN_LENGTH', f, rule);
    case 'CRYPTO_PAN_INVALID':
      return new HsmError('HSM_PAN_INVALID', f, rule);
    case 'CRYPTO_DECIMALISATION':
      return new HsmError('HSM_DECIMALISATION', f, rule);
    case 'CRYPTO_KSN_INVALID':
    case 'CRYPTO_DUKPT_EXHAUSTED':
      return new HsmError('HSM_KSN_INVALID', f, rule);
    case 'CRYPTO_KEYBLOCK_MAC':
      return new HsmError('HSM_KEYBLOCK_MAC', f, rule);
    case 'CRYPTO_KEYBLOCK_VERSION':
      return new HsmError('HSM_KEYBLOCK_FORMAT', f, rule, 'BE');
    case 'CRYPTO_KEYBLOCK_FORMAT':
    case 'CRYPTO_KEYBLOCK_KEY_LENGTH':
      return new HsmError('HSM_KEYBLOCK_FORMAT', f, rule);
    case 'CRYPTO_KEY_LENGTH':
      return new HsmError('HSM_KEY_LENGTH', f, rule, '27');
    case 'CRYPTO_KEY_PARITY':
      return new HsmError('HSM_COMPONENT_PARITY', f, rule);
    default:
      return new HsmError('HSM_REQUEST_INVALID', f, rule);
  }
}

/** Runs `fn`, turning a CryptoError into its HsmError. */
export function mapCrypto<T>(fn: () => T, field?: string): T {
  try {
    return fn();
  } catch (e) {
    throw hsmErrorOf(e, field);
  }
}

export function checkPinFormat(format: unknown, field: string): asserts format is PinBlockFormatCode {
  if (!(PIN_BLOCK_FORMAT_CODES as readonly unknown[]).includes(format)) {
    throw new HsmError('HSM_PIN_FORMAT', field, 'must be ISO 9564 format 0, 1, 3 or 4');
  }
}

/**
 * Throws HSM_PIN_DOWNGRADE for a translation to a weaker format: from format 4 (AES, 128-bit) to any
 * 64-bit format, or from a PAN-bound format (0, 3, 4) to format 1, which binds no PAN (PCI PIN Security
 * requirement 3-3 forbids translating to format 1 from a format with the PAN; payShield answers 23).
 */
export function checkNoDowngrade(
  formatIn: PinBlockFormatCode,
  formatOut: PinBlockFormatCode,
  allow: boolean,
): void {
  if (allow) return;
  if (formatIn === 4 && formatOut !== 4) {
    throw new HsmError(
      'HSM_PIN_DOWNGRADE',
      'formatOut',
      `translation from ISO format 4 to format ${formatOut} is a downgrade and is not allowed on this HSM`,
    );
  }
  if (formatOut === 1 && formatIn !== 1) {
    throw new HsmError(
      'HSM_PIN_DOWNGRADE',
      'formatOut',
      `translation from ISO format ${formatIn} (PAN-bound) to format 1 is not allowed on this HSM`,
    );
  }
}

/** Format 4 needs an AES key, formats 0, 1 and 3 a TDES key (ISO 9564-1:2017 9.3, 9.4). */
export function checkKeyForFormat(format: PinBlockFormatCode, algorithm: KeyAlgorithm, field: string): void {
  const want: KeyAlgorithm = format === 4 ? 'A' : 'T';
  if (algorithm !== want) {
    throw new HsmError(
      'HSM_KEY_ALGORITHM',
      field,
      `ISO format ${format} PIN blocks need ${want === 'A' ? 'an AES' : 'a TDES'} key`,
    );
  }
}

export function checkPinBlockLength(format: PinBlockFormatCode, block: Uint8Array, field = 'pinBlock'): void {
  if (!(block instanceof Uint8Array)) throw new TypeError(`${field} must be a Uint8Array`);
  const want = format === 4 ? 16 : 8;
  if (block.length !== want) {
    throw new HsmError(
      'HSM_PIN_BLOCK',
      field,
      `must be ${want} bytes for ISO format ${format}, got ${block.length}`,
    );
  }
}

/** The PIN of an encrypted PIN block under `key`. The caller drops the string as soon as it can. */
export function decryptPin(
  key: EcbKey,
  format: PinBlockFormatCode,
  block: Uint8Array,
  pan: string | undefined,
  keyField: string,
): string {
  checkKeyForFormat(format, key.attrs.algorithm, keyField);
  checkPinBlockLength(format, block);
  return mapCrypto(() => {
    if (format !== 4) {
      const clear = key.decryptEcb(block);
      try {
        return decodePinBlock(format, clear, pan);
      } finally {
        wipe(clear);
      }
    }
    // ISO 9564-1:2017 9.4.2.3, inverted: PIN field = D(K, D(K, block) XOR PAN field).
    const panField = encodePanFieldIso4(pan as string);
    const mid = key.decryptEcb(block);
    const first = xor(mid, panField);
    const field = key.decryptEcb(first);
    try {
      return decodePinFieldIso4(field);
    } finally {
      wipe(mid, first, field);
    }
  });
}

/** A fresh PIN block of `format` for `pin` under `key` (random fill from node:crypto for 1, 3, 4). */
export function encryptPin(
  key: EcbKey,
  format: PinBlockFormatCode,
  pin: string,
  pan: string | undefined,
  keyField: string,
): Uint8Array {
  checkKeyForFormat(format, key.attrs.algorithm, keyField);
  return mapCrypto(() => {
    if (format !== 4) {
      const clear = encodePinBlock(format, pin, pan, FILL);
      try {
        return new Uint8Array(key.encryptEcb(clear));
      } finally {
        wipe(clear);
      }
    }
    const panField = encodePanFieldIso4(pan as string);
    const field = encodePinFieldIso4(pin, FILL);
    const first = key.encryptEcb(field);
    const mid = xor(first, panField);
    try {
      return new Uint8Array(key.encryptEcb(mid));
    } finally {
      wipe(field, first, mid);
    }
  });
}
