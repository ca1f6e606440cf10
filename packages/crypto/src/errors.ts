/**
 * Typed errors of the crypto package.
 *
 * Every failure a caller can cause with bad input is a `CryptoError` with a
 * stable `code` (listed in docs/errors.md; a test fails when the two differ),
 * the `field` that is wrong and a message naming the rule. A message never
 * holds the value of a key, PIN, PIN block, PAN or track data: only lengths,
 * positions and the names of things.
 */

/** Every code this package throws, with a one-line meaning (the source of docs/errors.md). */
export const CRYPTO_ERROR_CODES = {
  CRYPTO_HEX_INVALID: 'a hex string has a character outside 0-9, A-F or an odd number of digits',
  CRYPTO_KEY_LENGTH: 'a key has a length the algorithm does not accept',
  CRYPTO_KEY_PARITY: 'a DES/TDES key does not have odd parity in every byte where parity is required',
  CRYPTO_DATA_LENGTH:
    'input data is not a whole number of cipher blocks, or is empty/too long where that is not allowed',
  CRYPTO_IV_LENGTH: 'an initialisation vector does not match the block size',
  CRYPTO_ALGORITHM: 'an algorithm, mode, format, usage or key type name is not one this library knows',
  CRYPTO_PARAM: 'a numeric or enumerated parameter is out of its range',
  CRYPTO_PIN_INVALID: 'a PIN is not 4 to 12 decimal digits',
  CRYPTO_PAN_INVALID: 'a PAN is not decimal digits of the length the format needs',
  CRYPTO_PINBLOCK_INVALID:
    'a PIN block does not decode under the stated format (control field, length, filler or PAN check)',
  CRYPTO_KSN_INVALID: 'a DUKPT key serial number has the wrong length or an invalid counter',
  CRYPTO_DUKPT_EXHAUSTED: 'a DUKPT device has used its last key (end of life)',
  CRYPTO_KEYBLOCK_FORMAT: 'a TR-31 key block is malformed (length, characters, header fields)',
  CRYPTO_KEYBLOCK_VERSION: 'a TR-31 key block version is unknown or not allowed for the operation',
  CRYPTO_KEYBLOCK_MAC: 'a TR-31 key block MAC does not verify: the block was altered or the KBPK is wrong',
  CRYPTO_KEYBLOCK_KEY_LENGTH: 'the key length field inside a decrypted TR-31 key block is inconsistent',
  CRYPTO_SIGNATURE_INVALID: 'a signature or public key is malformed (not merely failing to verify)',
  CRYPTO_DECIMALISATION: 'a decimalisation table is not 16 decimal digits',
} as const;

export type CryptoErrorCode = keyof typeof CRYPTO_ERROR_CODES;

export class CryptoError extends Error {
  readonly code: CryptoErrorCode;
  /** The parameter or field that is wrong, e.g. `key`, `pin`, `ksn`, `block.header`. */
  readonly field: string;

  constructor(code: CryptoErrorCode, field: string, rule: string) {
    super(`${field}: ${rule}`);
    this.name = 'CryptoError';
    this.code = code;
    this.field = field;
  }
}

export function isCryptoError(e: unknown): e is CryptoError {
  return e instanceof CryptoError;
}
