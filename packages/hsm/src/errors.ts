/**
 * Typed errors of the HSM package.
 *
 * Every failure a caller can cause (a malformed host request, a key block of the wrong use, a wrong
 * custodian credential, a broken audit chain...) is an `HsmError` with a stable `code` (listed in
 * docs/errors.md; a test fails when the two differ), the `field` that is wrong, a message naming the
 * rule, and, where one fits, the payShield 2-character error code (`reply`) that a host command answers
 * with. A message never holds a key, component, passphrase, credential, PIN or PIN block: only lengths,
 * positions, check values and the names of things.
 *
 * Reply codes follow the payShield 9000/10K host command reference's general error codes (a public
 * table: krestfield/docs ezsign/payshield_error_codes.md). The mapping is HSM_REPLY_BY_CODE below; an
 * error may carry a more precise reply than its code's default (e.g. HSM_KEY_ATTRIBUTES answers 'A9'
 * for a bad key version and 'AA' for a bad exportability). Errors that never cross the host port (LMK
 * ceremony, sealing, custodian login, client-side failures) have no reply code.
 */

/** Every code this package throws, with a one-line meaning (the source of docs/errors.md). */
export const HSM_ERROR_CODES = {
  HSM_LMK_COMPONENT:
    'an LMK component is not 32 bytes, or its check value does not match the one the custodian read',
  HSM_LMK_COMPONENTS: 'fewer than 2 LMK components, too many, or two components that are equal',
  HSM_LMK_SEALED_FORMAT:
    'a sealed LMK file is malformed (format, version, KDF parameters out of bounds, field lengths)',
  HSM_LMK_UNSEAL: 'a sealed LMK does not open: wrong passphrase or components, or the file was altered',
  HSM_LMK_TEST_NOT_ALLOWED: 'the fixed test LMK was asked for without the explicit allowTestLmk option',
  HSM_KEYBLOCK_FORMAT:
    'a key block under the LMK is malformed (prefix, length, characters, header fields, version)',
  HSM_KEYBLOCK_MAC: 'a key block MAC does not verify: the block was altered or is under another LMK',
  HSM_KEY_USAGE: 'a key block has a key usage the operation does not accept (a MAC key cannot encrypt a PIN)',
  HSM_KEY_MODE_OF_USE: 'a key block has a mode of use the operation does not accept',
  HSM_KEY_ALGORITHM: 'a key algorithm is unknown, or not the one the operation or key type needs',
  HSM_KEY_TYPE: 'a key type name is unknown, or not one the command accepts',
  HSM_KEY_LENGTH: 'a key length is not one the key type and algorithm allow',
  HSM_KEY_ATTRIBUTES:
    'a key attribute (usage, mode of use, key version, exportability) is not valid for the key type',
  HSM_COMPONENT_PARITY: 'a clear TDES key component (or an imported TDES key) does not have odd parity',
  HSM_KEY_NOT_EXPORTABLE:
    'a key whose exportability is N (or S, for TR-31 export) was asked to leave the HSM',
  HSM_WRAPPING_KEY:
    'a key-encrypting key cannot wrap this key: weaker than the key, or of the wrong algorithm for the key block version',
  HSM_PIN_BLOCK: 'a PIN block does not decode under its format and key (control field, filler, PAN, length)',
  HSM_PIN_FORMAT: 'a PIN block format is unknown, or does not fit the key (format 4 needs AES, 0/1/3 TDES)',
  HSM_PIN_DOWNGRADE:
    'a PIN block translation to a weaker format (4 to 0/1/3, a PAN-bound format to 1) that the HSM is not configured to allow',
  HSM_PIN_LENGTH: 'a PIN is fewer than 4 or more than 12 digits',
  HSM_PAN_INVALID: 'a PAN is missing, not digits, or of a length the format or algorithm does not take',
  HSM_DECIMALISATION: 'a decimalisation table is not 16 decimal digits',
  HSM_KSN_INVALID: 'a DUKPT key serial number has the wrong length or a counter no device uses',
  HSM_DATA_LENGTH:
    'MAC or data-encryption data outside the named bounds (or not whole blocks where it must be), or a MAC length the algorithm does not give',
  HSM_DATA_PADDING:
    'decrypted data does not end in its ISO 9797-1 method 2 padding (wrong key, IV, padding setting or altered ciphertext)',
  HSM_COMPONENTS_INVALID: 'key components are not 2 or 3, differ in length, or combine to a key of all zeros',
  HSM_NOT_AUTHORIZED:
    'the command needs the authorized state for its activity, which is not entered or expired',
  HSM_AUTH_CREDENTIALS: 'a custodian identifier is unknown or its credential does not verify',
  HSM_AUTH_QUORUM: 'fewer distinct custodians than the authorization quorum presented credentials',
  HSM_AUTH_CONFIG: 'the authorization configuration is malformed (quorum, custodian records, scrypt bounds)',
  HSM_AUDIT_BROKEN: 'an audit log does not verify (edited, deleted, reordered or truncated line)',
  HSM_AUDIT_EVENT: 'an audit event has a missing or malformed field',
  HSM_REQUEST_INVALID:
    'a host request field is missing, too short, or has characters its format does not allow',
  HSM_FRAME_INVALID: 'a frame declares a length of 0, or is shorter than its header and command code',
  HSM_FRAME_TOO_LARGE: 'a frame declares a length above the named maximum frame size',
  HSM_INTERNAL: 'an unexpected failure inside the HSM (a defect: please report it)',
  HSM_CONNECTION_CLOSED: 'the connection to the HSM closed before the reply arrived',
  HSM_TIMEOUT: 'the HSM did not reply within the client timeout',
  HSM_CLIENT_BUSY: 'the client already has its maximum of requests in flight and waiting',
  HSM_REPLY_INVALID: 'a reply from the HSM is malformed (header, reply code, error code or body)',
  HSM_REPLY_ERROR: 'the HSM answered with an error code other than 00 (the error code is in `reply`)',
} as const;

export type HsmErrorCode = keyof typeof HSM_ERROR_CODES;

/**
 * The payShield error code each HSM code answers with on the host port by default. Meanings from the
 * payShield general error code table: 04 invalid key type code, 05 invalid key length flag, 10 source key
 * parity error, 11 destination key parity error or key all zeros, 15 invalid input data, 17 HSM not
 * authorized, 41 internal hardware/software error, 68 command has been disabled, A4 key block authentication
 * failure, A6 invalid key usage, A7 invalid algorithm, A8 invalid mode of use, A9 invalid key version
 * number, AA invalid export field, B2 miscellaneous key block error; 20 PIN block does not contain valid
 * values, 22 invalid account number, 23 invalid PIN block format code (payShield also answers 23 when
 * a PCI HSM setting forbids converting a PIN block to a format), 24 PIN fewer than 4 or more than 12
 * digits, 25 decimalisation table error, 77 clear data block error (here: the padding of decrypted data),
 * 80 data length error, BB invalid wrapping key. A PIN or MAC that does not verify is not an error here
 * (the operations return a value); on the host port it is payShield's 01 (verification failure).
 */
export const HSM_REPLY_BY_CODE: Readonly<Partial<Record<HsmErrorCode, string>>> = {
  HSM_KEYBLOCK_FORMAT: 'B2',
  HSM_KEYBLOCK_MAC: 'A4',
  HSM_KEY_USAGE: 'A6',
  HSM_KEY_MODE_OF_USE: 'A8',
  HSM_KEY_ALGORITHM: 'A7',
  HSM_KEY_TYPE: '04',
  HSM_KEY_LENGTH: '05',
  HSM_KEY_ATTRIBUTES: 'A9',
  HSM_COMPONENT_PARITY: '10',
  HSM_KEY_NOT_EXPORTABLE: 'AA',
  HSM_WRAPPING_KEY: 'BB',
  HSM_PIN_BLOCK: '20',
  HSM_PIN_FORMAT: '23',
  HSM_PIN_DOWNGRADE: '23',
  HSM_PIN_LENGTH: '24',
  HSM_PAN_INVALID: '22',
  HSM_DECIMALISATION: '25',
  HSM_KSN_INVALID: '15',
  HSM_DATA_LENGTH: '80',
  HSM_DATA_PADDING: '77',
  HSM_COMPONENTS_INVALID: '11',
  HSM_NOT_AUTHORIZED: '17',
  HSM_AUDIT_BROKEN: '41',
  HSM_AUDIT_EVENT: '41',
  HSM_REQUEST_INVALID: '15',
  HSM_FRAME_INVALID: '15',
  HSM_FRAME_TOO_LARGE: '15',
  HSM_INTERNAL: '41',
};

/** The reply code that means success. */
export const REPLY_OK = '00';

export class HsmError extends Error {
  readonly code: HsmErrorCode;
  /** The parameter or field that is wrong, e.g. `components[1]`, `request.keyType`, `block.header`. */
  readonly field: string;
  /** payShield 2-character error code a host command answers with, when one fits. */
  readonly reply: string | undefined;

  constructor(code: HsmErrorCode, field: string, rule: string, reply?: string) {
    super(`${field}: ${rule}`);
    this.name = 'HsmError';
    this.code = code;
    this.field = field;
    this.reply = reply ?? HSM_REPLY_BY_CODE[code];
  }
}

export function isHsmError(e: unknown): e is HsmError {
  return e instanceof HsmError;
}
