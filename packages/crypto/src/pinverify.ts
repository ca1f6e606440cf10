/**
 * PIN and card verification values computed by an issuer's HSM:
 *
 * - IBM 3624 PIN offset (IBM 3624 Programmer's Guide; IBM CCA "Clear_PIN_Generate" / "Encrypted_PIN_Verify"
 *   algorithm IBM-PIN / IBM-PINO): natural PIN = decimalised TDES(PVK, validation data); offset = PIN - natural
 *   PIN digit by digit modulo 10.
 * - Visa PVV (Visa PIN Verification Value, as in Thales payShield DG/EC and IBM CCA VISA-PVV): TDES(PVK, TSP) where
 *   TSP = 11 rightmost PAN digits excluding the check digit | PVKI | 4 leftmost PIN digits; the PVV is the first 4
 *   decimal digits of the result, then the A-F digits minus 10.
 * - Visa CVV / CVV2 / iCVV (Visa Card Verification Value; Thales payShield CW/CY; IBM CCA CVV_Generate): PAN |
 *   expiry YYMM | service code, zero-padded to 32 digits, DES under CVK A, XOR block 2, TDES under CVK A|B,
 *   decimalised, first 3 digits. CVV2 uses service code 000 and iCVV 999 (Visa's chip track-2 equivalent).
 *
 * Verification returns a boolean from a constant-time comparison; only malformed input throws (CryptoError).
 * No value of a key, PIN, PAN, offset or CVV appears in an error message.
 */
import { equalBytes, fromAscii, toHex, wipe, xor } from './bytes.js';
import { desEncryptEcb, tdesEncryptEcb } from './cipher.js';
import { CryptoError } from './errors.js';
import { assertPan, assertPin, PAN_LENGTH_MIN } from './pinblock.js';

const DIGITS_RE = /^[0-9]*$/;
const HEX_DIGIT_RE = /^[0-9A-Fa-f]$/;

// --- shared checks ---

/** A PVK is a 2- or 3-key TDES key; single DES PVKs are refused (ISO 9564-1 clause 6.2 / PCI PIN). */
function assertPvk(pvk: Uint8Array, field = 'pvk'): void {
  if (!(pvk instanceof Uint8Array)) throw new TypeError(`${field} must be a Uint8Array`);
  if (pvk.length !== 16 && pvk.length !== 24) {
    throw new CryptoError(
      'CRYPTO_KEY_LENGTH',
      field,
      `must be a TDES key of 16 or 24 bytes, got ${pvk.length}`,
    );
  }
}

/** Throws CRYPTO_DECIMALISATION unless the table maps each hex digit 0-F to a decimal digit (16 digits). */
export function assertDecimalisationTable(table: string, field = 'decimalisationTable'): void {
  if (typeof table !== 'string') throw new TypeError(`${field} must be a string`);
  if (table.length !== 16 || !DIGITS_RE.test(table)) {
    throw new CryptoError('CRYPTO_DECIMALISATION', field, 'must be 16 decimal digits');
  }
}

function assertDigits(value: string, field: string, min: number, max: number, what: string): void {
  if (typeof value !== 'string') throw new TypeError(`${field} must be a string`);
  if (value.length < min || value.length > max || !DIGITS_RE.test(value)) {
    const len = min === max ? `${min}` : `${min} to ${max}`;
    const unit = max === 1 ? 'digit' : 'digits';
    throw new CryptoError('CRYPTO_PARAM', field, `must be ${len} decimal ${unit}${what}`);
  }
}

/**
 * The "decimalisation" step common to PVV and CVV: the decimal digits of `hex` in order, then its A-F digits
 * minus 10 in order, cut to `count`. (Visa PVV and CVV specifications; identical in both.)
 */
function decimaliseVisa(hex: string, count: number): string {
  let digits = '';
  for (const c of hex) if (c <= '9') digits += c;
  for (const c of hex) if (c > '9') digits += String.fromCharCode(c.charCodeAt(0) - 0x41 + 0x30);
  return digits.slice(0, count);
}

function equalDigits(a: string, b: string): boolean {
  return equalBytes(fromAscii(a), fromAscii(b));
}

// --- IBM 3624 ---

export interface Ibm3624ValidationDataOptions {
  /** Index of the first PAN digit used (0-based). */
  offset: number;
  /** Number of PAN digits used, 1 to 16. */
  length: number;
  /** Hex digit padding the selected digits on the right to 16 (commonly F). */
  pad: string;
}

/**
 * IBM 3624 validation data from a PAN: `length` digits starting at `offset`, right-padded with `pad` to 16 hex
 * digits (as Thales payShield "validation data" with "N" pad position, IBM CCA "PAN data" with pad digit).
 */
export function selectValidationDataIbm3624(pan: string, opts: Ibm3624ValidationDataOptions): Uint8Array {
  const p = assertPan(pan, 'IBM 3624 validation data', 1);
  const { offset, length, pad } = opts;
  if (!Number.isInteger(length) || length < 1 || length > 16) {
    throw new CryptoError('CRYPTO_PARAM', 'length', 'PAN digits for validation data must be 1 to 16');
  }
  if (!Number.isInteger(offset) || offset < 0 || offset + length > p.length) {
    throw new CryptoError(
      'CRYPTO_PARAM',
      'offset',
      `offset + length must lie within the PAN (${p.length} digits)`,
    );
  }
  if (typeof pad !== 'string' || !HEX_DIGIT_RE.test(pad)) {
    throw new CryptoError('CRYPTO_PARAM', 'pad', 'must be one hex digit');
  }
  const hex = p.slice(offset, offset + length).padEnd(16, pad.toUpperCase());
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

function assertValidationData(data: Uint8Array): void {
  if (!(data instanceof Uint8Array)) throw new TypeError('validationData must be a Uint8Array');
  if (data.length !== 8) {
    throw new CryptoError('CRYPTO_PARAM', 'validationData', `must be 8 bytes, got ${data.length}`);
  }
}

/**
 * IBM 3624 natural PIN: encipher the validation data under the PVK, map each hex digit of the result through
 * the decimalisation table, keep the leftmost `pinLength` digits.
 */
export function generateNaturalPinIbm3624(
  pvk: Uint8Array,
  decimalisationTable: string,
  validationData: Uint8Array,
  pinLength: number,
): string {
  assertPvk(pvk);
  assertDecimalisationTable(decimalisationTable);
  assertValidationData(validationData);
  if (!Number.isInteger(pinLength) || pinLength < 4 || pinLength > 12) {
    throw new CryptoError('CRYPTO_PARAM', 'pinLength', 'must be 4 to 12');
  }
  const enc = tdesEncryptEcb(pvk, validationData);
  let natural = '';
  for (let i = 0; i < pinLength; i++) {
    const nibble = (enc[i >> 1]! >> (i % 2 === 0 ? 4 : 0)) & 0x0f;
    natural += decimalisationTable[nibble]!;
  }
  wipe(enc);
  return natural;
}

/** Digit-wise (a + sign * b) mod 10. */
function addDigits(a: string, b: string, sign: 1 | -1): string {
  let out = '';
  for (let i = 0; i < a.length; i++) {
    const d = (a.charCodeAt(i) - 0x30 + sign * (b.charCodeAt(i) - 0x30) + 10) % 10;
    out += String.fromCharCode(0x30 + d);
  }
  return out;
}

/** IBM 3624 offset for a customer-selected PIN: (PIN - natural PIN) digit by digit mod 10; as long as the PIN. */
export function generateOffsetIbm3624(
  pvk: Uint8Array,
  decimalisationTable: string,
  validationData: Uint8Array,
  pin: string,
): string {
  assertPin(pin);
  const natural = generateNaturalPinIbm3624(pvk, decimalisationTable, validationData, pin.length);
  return addDigits(pin, natural, -1);
}

/** IBM 3624 PIN from its offset: (natural PIN + offset) mod 10; the offset's length is the PIN length. */
export function generatePinIbm3624(
  pvk: Uint8Array,
  decimalisationTable: string,
  validationData: Uint8Array,
  offset: string,
): string {
  assertDigits(offset, 'offset', 4, 12, '');
  const natural = generateNaturalPinIbm3624(pvk, decimalisationTable, validationData, offset.length);
  return addDigits(natural, offset, 1);
}

/**
 * IBM 3624 verification: true when `pin` is the PIN the offset gives. A PIN whose length differs from the
 * offset's is a wrong PIN (false), not an error.
 */
export function verifyPinIbm3624(
  pvk: Uint8Array,
  decimalisationTable: string,
  validationData: Uint8Array,
  pin: string,
  offset: string,
): boolean {
  assertPin(pin);
  const expected = generatePinIbm3624(pvk, decimalisationTable, validationData, offset);
  return expected.length === pin.length && equalDigits(expected, pin);
}

// --- Visa PVV ---

function assertPvki(pvki: string): void {
  assertDigits(pvki, 'pvki', 1, 1, ' (PIN verification key index)');
}

/**
 * Visa PVV: TSP = PAN digits 12..2 from the right (11 digits, the check digit dropped) | PVKI | leftmost 4 PIN
 * digits; PVV = first 4 digits of the decimalised TDES(PVK, TSP). PINs longer than 4 digits are verified on
 * their leftmost 4 (Visa PVV definition).
 */
export function generatePvvVisa(pvk: Uint8Array, pvki: string, pin: string, pan: string): string {
  assertPvk(pvk);
  assertPvki(pvki);
  assertPin(pin);
  const p = assertPan(pan, 'Visa PVV (11 digits plus the check digit)', 12);
  const tsp = new Uint8Array(Buffer.from(`${p.slice(-12, -1)}${pvki}${pin.slice(0, 4)}`, 'hex'));
  const enc = tdesEncryptEcb(pvk, tsp);
  const pvv = decimaliseVisa(toHex(enc), 4);
  wipe(tsp, enc);
  return pvv;
}

/** True when `pvv` (4 digits) is the PVV of `pin`; constant-time comparison. */
export function verifyPvvVisa(pvk: Uint8Array, pvki: string, pin: string, pan: string, pvv: string): boolean {
  assertDigits(pvv, 'pvv', 4, 4, '');
  return equalDigits(generatePvvVisa(pvk, pvki, pin, pan), pvv);
}

// --- Visa CVV / CVV2 / iCVV ---

/** Service codes Visa fixes for the variants: CVV2 (printed on the card) 000, iCVV (chip track 2) 999. */
export const SERVICE_CODE_CVV2 = '000';
export const SERVICE_CODE_ICVV = '999';

function assertCvk(cvk: Uint8Array): void {
  if (!(cvk instanceof Uint8Array)) throw new TypeError('cvk must be a Uint8Array');
  if (cvk.length !== 16) {
    throw new CryptoError(
      'CRYPTO_KEY_LENGTH',
      'cvk',
      `must be the 16-byte pair CVK A | CVK B, got ${cvk.length}`,
    );
  }
}

/**
 * Visa CVV with an explicit service code (the magnetic-stripe CVV uses the card's own service code). Steps of the
 * Visa algorithm: data = PAN | YYMM | service code, zero-padded right to 32 digits; r = DES(CVK A, block 1);
 * r = TDES(CVK A|B, r XOR block 2); CVV = first 3 digits of decimalised r.
 */
export function generateCvvVisa(
  cvk: Uint8Array,
  pan: string,
  expiryYymm: string,
  serviceCode: string,
): string {
  assertCvk(cvk);
  const p = assertPan(pan, 'a CVV', PAN_LENGTH_MIN);
  assertDigits(expiryYymm, 'expiryYymm', 4, 4, ' (YYMM)');
  assertDigits(serviceCode, 'serviceCode', 3, 3, '');
  const data = new Uint8Array(Buffer.from(`${p}${expiryYymm}${serviceCode}`.padEnd(32, '0'), 'hex'));
  const keyA = cvk.subarray(0, 8);
  const r1 = desEncryptEcb(keyA, data.subarray(0, 8));
  const r2 = xor(r1, data.subarray(8, 16));
  const r3 = tdesEncryptEcb(cvk, r2);
  const cvv = decimaliseVisa(toHex(r3), 3);
  wipe(data, r1, r2, r3);
  return cvv;
}

/** True when `cvv` (3 digits) is the CVV for these card data; constant-time comparison. */
export function verifyCvvVisa(
  cvk: Uint8Array,
  pan: string,
  expiryYymm: string,
  serviceCode: string,
  cvv: string,
): boolean {
  assertDigits(cvv, 'cvv', 3, 3, '');
  return equalDigits(generateCvvVisa(cvk, pan, expiryYymm, serviceCode), cvv);
}

/** CVV2: the CVV algorithm with service code 000. */
export function generateCvv2Visa(cvk: Uint8Array, pan: string, expiryYymm: string): string {
  return generateCvvVisa(cvk, pan, expiryYymm, SERVICE_CODE_CVV2);
}

export function verifyCvv2Visa(cvk: Uint8Array, pan: string, expiryYymm: string, cvv2: string): boolean {
  return verifyCvvVisa(cvk, pan, expiryYymm, SERVICE_CODE_CVV2, cvv2);
}

/** iCVV: the CVV algorithm with service code 999 (the value in the chip's track 2 equivalent data). */
export function generateIcvvVisa(cvk: Uint8Array, pan: string, expiryYymm: string): string {
  return generateCvvVisa(cvk, pan, expiryYymm, SERVICE_CODE_ICVV);
}

export function verifyIcvvVisa(cvk: Uint8Array, pan: string, expiryYymm: string, icvv: string): boolean {
  return verifyCvvVisa(cvk, pan, expiryYymm, SERVICE_CODE_ICVV, icvv);
}
