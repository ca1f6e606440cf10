/**
 * Key check values: a few leading bytes that prove a key arrived intact without revealing it.
 *
 * - Legacy (encrypt-zeros): encrypt one block of binary zeros under the key, keep the leading
 *   bytes. This is the TDES check value of ANSI X9.24-1 and what payShield calls KCV type 0;
 *   the UnionPay POS sign-in response (field 62) carries 4 bytes of it for each working key.
 *   The same construction is used for SM4 (16-byte zero block).
 * - AES (ANSI X9.24-3-2017 / X9.143 §"Key check value"): the CMAC of one block of zeros under the
 *   key, leading 5 bytes by default. The encrypt-zeros form is kept for systems that use it.
 */
import { type BlockAlgorithm, blockSize, checkKeyLength, encrypt } from './cipher.js';
import { cmac } from './cmac.js';
import { CryptoError } from './errors.js';

export type KcvMethod = 'legacy' | 'cmac';

function checkLength(length: number, max: number): void {
  if (!Number.isInteger(length) || length < 1 || length > max) {
    throw new CryptoError('CRYPTO_PARAM', 'length', `check value length must be 1 to ${max} bytes`);
  }
}

/**
 * Check value of `key` under `alg`. `method` defaults to `cmac` for AES and `legacy` otherwise;
 * `length` defaults to 5 bytes for the CMAC form and 3 bytes for the legacy form.
 */
export function keyCheckValue(
  alg: BlockAlgorithm,
  key: Uint8Array,
  opts: { method?: KcvMethod; length?: number } = {},
): Uint8Array {
  checkKeyLength(alg, key);
  const method = opts.method ?? (alg === 'aes' ? 'cmac' : 'legacy');
  const length = opts.length ?? (method === 'cmac' ? 5 : 3);
  const bs = blockSize(alg);
  checkLength(length, bs);
  const zeros = new Uint8Array(bs);
  if (method === 'cmac') return cmac(alg, key, zeros).slice(0, length);
  if (method === 'legacy') return encrypt(alg, 'ecb', key, zeros).slice(0, length);
  throw new CryptoError('CRYPTO_ALGORITHM', 'method', 'unknown check value method (expected legacy or cmac)');
}

/** TDES (or DES) check value: encrypt 8 zero bytes, first `length` bytes (3 by default, 4 for UnionPay field 62). */
export const kcvTdes = (key: Uint8Array, length = 3): Uint8Array =>
  keyCheckValue(key.length === 8 ? 'des' : 'tdes', key, { method: 'legacy', length });

/** SM4 check value: encrypt 16 zero bytes, first `length` bytes. */
export const kcvSm4 = (key: Uint8Array, length = 3): Uint8Array =>
  keyCheckValue('sm4', key, { method: 'legacy', length });

/** AES check value per X9.24-3: CMAC of a zero block, first `length` bytes (5 by default). */
export const kcvAes = (key: Uint8Array, length = 5): Uint8Array =>
  keyCheckValue('aes', key, { method: 'cmac', length });
