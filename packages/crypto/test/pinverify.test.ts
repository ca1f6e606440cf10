import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { fromHex } from '../src/bytes.js';
import { CryptoError, type CryptoErrorCode } from '../src/errors.js';
import {
  generateCvv2Visa,
  generateCvvVisa,
  generateIcvvVisa,
  generateNaturalPinIbm3624,
  generateOffsetIbm3624,
  generatePinIbm3624,
  generatePvvVisa,
  selectValidationDataIbm3624,
  verifyCvv2Visa,
  verifyCvvVisa,
  verifyIcvvVisa,
  verifyPinIbm3624,
  verifyPvvVisa,
} from '../src/pinverify.js';
import { label, type Vector, vectors } from './vectors.js';

function throwsCrypto(fn: () => unknown, code: CryptoErrorCode, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CryptoError, `expected CryptoError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    return true;
  });
}

/** Flips one digit of a digit string (a "wrong PIN/PVV/CVV" that is still well-formed). */
function flipDigit(s: string, at = 0): string {
  const d = (Number(s[at]) + 1) % 10;
  return `${s.slice(0, at)}${d}${s.slice(at + 1)}`;
}

function validationData(v: Vector): Uint8Array {
  return selectValidationDataIbm3624(v.pan as string, {
    offset: v.pan_verify_offset as number,
    length: v.pan_verify_length as number,
    pad: v.pan_pad as string,
  });
}

describe('IBM 3624 offset vectors (op ibm3624_offset)', () => {
  for (const v of vectors('ibm3624_offset')) {
    test(label(v), () => {
      const pvk = fromHex(v.pvk as string);
      const table = v.conversion_table as string;
      const offset = generateOffsetIbm3624(pvk, table, validationData(v), v.pin as string);
      assert.equal(offset, (v.expected as { offset: string }).offset);
      assert.equal(verifyPinIbm3624(pvk, table, validationData(v), v.pin as string, offset), true);
      assert.equal(
        verifyPinIbm3624(pvk, table, validationData(v), flipDigit(v.pin as string, 3), offset),
        false,
      );
    });
  }
});

describe('IBM 3624 PIN vectors (op ibm3624_pin)', () => {
  for (const v of vectors('ibm3624_pin')) {
    test(label(v), () => {
      const pvk = fromHex(v.pvk as string);
      const table = v.conversion_table as string;
      const pin = generatePinIbm3624(pvk, table, validationData(v), v.offset as string);
      assert.equal(pin, (v.expected as { pin: string }).pin);
      if (v.offset === '0000') {
        assert.equal(generateNaturalPinIbm3624(pvk, table, validationData(v), 4), pin);
      }
    });
  }
});

describe('Visa PVV vectors (op visa_pvv)', () => {
  for (const v of vectors('visa_pvv')) {
    test(label(v), () => {
      const pvk = fromHex(v.pvk as string);
      const pvv = (v.expected as { pvv: string }).pvv;
      const args = [pvk, v.pvki as string, v.pin as string, v.pan as string] as const;
      assert.equal(generatePvvVisa(...args), pvv);
      assert.equal(verifyPvvVisa(...args, pvv), true);
      assert.equal(verifyPvvVisa(...args, flipDigit(pvv, 2)), false);
      assert.equal(
        verifyPvvVisa(pvk, v.pvki as string, flipDigit(v.pin as string), v.pan as string, pvv),
        false,
      );
    });
  }
});

describe('Visa CVV vectors (op visa_cvv)', () => {
  for (const v of vectors('visa_cvv')) {
    test(label(v), () => {
      const cvk = fromHex(v.cvk as string);
      const cvv = (v.expected as { cvv: string }).cvv;
      const args = [cvk, v.pan as string, v.expiry as string, v.service_code as string] as const;
      assert.equal(generateCvvVisa(...args), cvv);
      assert.equal(verifyCvvVisa(...args, cvv), true);
      assert.equal(verifyCvvVisa(...args, flipDigit(cvv, 1)), false);
    });
  }
});

/**
 * An independent CVV computation written differently (cross-check for CVV2/iCVV, for which no published vector
 * was found): the CVV core is ISO 9797-1 MAC algorithm 3 (the "retail MAC") over the two data blocks, computed
 * here with raw node:crypto as DES-CBC under A|A|A, then DES-decrypt under B, DES-encrypt under A; decimalised
 * with regular expressions.
 */
function referenceCvv(cvkHex: string, pan: string, expiry: string, serviceCode: string): string {
  const a = Buffer.from(cvkHex.slice(0, 16), 'hex');
  const b = Buffer.from(cvkHex.slice(16), 'hex');
  const data = Buffer.from((pan + expiry + serviceCode + '0'.repeat(32)).slice(0, 32), 'hex');
  const cbc = createCipheriv('des-ede3-cbc', Buffer.concat([a, a, a]), Buffer.alloc(8)).setAutoPadding(false);
  const mac = Buffer.concat([cbc.update(data), cbc.final()]).subarray(8, 16);
  const dec = createDecipheriv('des-ede3', Buffer.concat([b, b, b]), null).setAutoPadding(false);
  const mid = Buffer.concat([dec.update(mac), dec.final()]);
  const enc = createCipheriv('des-ede3', Buffer.concat([a, a, a]), null).setAutoPadding(false);
  const hex = Buffer.concat([enc.update(mid), enc.final()])
    .toString('hex')
    .toUpperCase();
  const letters = hex.replace(/[0-9]/g, '').replace(/[A-F]/g, (c) => String(c.charCodeAt(0) - 65));
  return (hex.replace(/[A-F]/g, '') + letters).slice(0, 3);
}

describe('CVV, CVV2 and iCVV against an independent computation (fast-check)', () => {
  const cvkArb = fc.uint8Array({ minLength: 16, maxLength: 16 });
  const panArb = fc.stringMatching(/^[0-9]{8,19}$/);
  const expiryArb = fc.stringMatching(/^[0-9]{4}$/);
  test('reference agrees with the published Visa vectors (the reference itself is checked)', () => {
    for (const v of vectors('visa_cvv')) {
      const ref = referenceCvv(
        v.cvk as string,
        v.pan as string,
        v.expiry as string,
        v.service_code as string,
      );
      assert.equal(ref, (v.expected as { cvv: string }).cvv);
    }
  });
  test('CVV2 = CVV with service code 000, iCVV = CVV with 999, both equal to the reference', () => {
    fc.assert(
      fc.property(cvkArb, panArb, expiryArb, (cvk, pan, expiry) => {
        const hex = Buffer.from(cvk).toString('hex');
        const cvv2 = generateCvv2Visa(cvk, pan, expiry);
        const icvv = generateIcvvVisa(cvk, pan, expiry);
        assert.equal(cvv2, referenceCvv(hex, pan, expiry, '000'));
        assert.equal(icvv, referenceCvv(hex, pan, expiry, '999'));
        assert.equal(verifyCvv2Visa(cvk, pan, expiry, cvv2), true);
        assert.equal(verifyIcvvVisa(cvk, pan, expiry, icvv), true);
        assert.equal(verifyCvv2Visa(cvk, pan, expiry, flipDigit(cvv2)), false);
      }),
      { numRuns: 100 },
    );
  });
});

describe('IBM 3624 and PVV properties (fast-check)', () => {
  const pvkArb = fc.oneof(
    fc.uint8Array({ minLength: 16, maxLength: 16 }),
    fc.uint8Array({ minLength: 24, maxLength: 24 }),
  );
  const tableArb = fc.stringMatching(/^[0-9]{16}$/);
  const vdArb = fc.uint8Array({ minLength: 8, maxLength: 8 });
  const pinArb = fc.stringMatching(/^[0-9]{4,12}$/);
  test('pin -> offset -> pin, and verify', () => {
    fc.assert(
      fc.property(pvkArb, tableArb, vdArb, pinArb, (pvk, table, vd, pin) => {
        const offset = generateOffsetIbm3624(pvk, table, vd, pin);
        assert.equal(offset.length, pin.length);
        assert.equal(generatePinIbm3624(pvk, table, vd, offset), pin);
        assert.equal(verifyPinIbm3624(pvk, table, vd, pin, offset), true);
        assert.equal(verifyPinIbm3624(pvk, table, vd, flipDigit(pin, pin.length - 1), offset), false);
      }),
      { numRuns: 200 },
    );
  });
  test('a PIN of another length than the offset does not verify (false, no error)', () => {
    const pvk = fromHex('0123456789ABCDEFFEDCBA9876543210');
    const vd = fromHex('1122334455667788');
    assert.equal(verifyPinIbm3624(pvk, '0123456789012345', vd, '45240', '0000'), false);
  });
  test('PVV verifies for its PIN; only the leftmost 4 PIN digits count', () => {
    fc.assert(
      fc.property(
        pvkArb,
        fc.stringMatching(/^[0-9]$/),
        pinArb,
        fc.stringMatching(/^[0-9]{12,19}$/),
        (pvk, pvki, pin, pan) => {
          const pvv = generatePvvVisa(pvk, pvki, pin, pan);
          assert.match(pvv, /^[0-9]{4}$/);
          assert.equal(verifyPvvVisa(pvk, pvki, pin, pan, pvv), true);
          assert.equal(generatePvvVisa(pvk, pvki, pin.slice(0, 4), pan), pvv);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('errors: exact code and message', () => {
  const pvk = fromHex('0123456789ABCDEFFEDCBA9876543210');
  const table = '0123456789012345';
  const vd = fromHex('1122334455667788');
  const cvk = pvk;
  const pan = '4123456789012345';
  const cases: [string, () => unknown, CryptoErrorCode, string][] = [
    [
      'decimalisation table of 15 digits',
      () => generateOffsetIbm3624(pvk, '012345678901234', vd, '1234'),
      'CRYPTO_DECIMALISATION',
      'decimalisationTable: must be 16 decimal digits',
    ],
    [
      'decimalisation table with a hex letter',
      () => generatePinIbm3624(pvk, '0123456789ABCDEF', vd, '0000'),
      'CRYPTO_DECIMALISATION',
      'decimalisationTable: must be 16 decimal digits',
    ],
    [
      'single-length PVK',
      () => generateOffsetIbm3624(new Uint8Array(8), table, vd, '1234'),
      'CRYPTO_KEY_LENGTH',
      'pvk: must be a TDES key of 16 or 24 bytes, got 8',
    ],
    [
      'PVV with a 32-byte PVK',
      () => generatePvvVisa(new Uint8Array(32), '1', '1234', pan),
      'CRYPTO_KEY_LENGTH',
      'pvk: must be a TDES key of 16 or 24 bytes, got 32',
    ],
    [
      '3624 PIN of 3 digits',
      () => generateOffsetIbm3624(pvk, table, vd, '123'),
      'CRYPTO_PIN_INVALID',
      'pin: must be 4 to 12 digits, got 3',
    ],
    [
      '3624 PIN of 13 digits',
      () => generateOffsetIbm3624(pvk, table, vd, '1234567890123'),
      'CRYPTO_PIN_INVALID',
      'pin: must be 4 to 12 digits, got 13',
    ],
    [
      'PIN with a non-digit in verify',
      () => verifyPinIbm3624(pvk, table, vd, '12a4', '0000'),
      'CRYPTO_PIN_INVALID',
      'pin: must be decimal digits only',
    ],
    [
      'offset of 3 digits',
      () => generatePinIbm3624(pvk, table, vd, '000'),
      'CRYPTO_PARAM',
      'offset: must be 4 to 12 decimal digits',
    ],
    [
      'offset with a letter',
      () => verifyPinIbm3624(pvk, table, vd, '1234', '00A0'),
      'CRYPTO_PARAM',
      'offset: must be 4 to 12 decimal digits',
    ],
    [
      'validation data of 7 bytes',
      () => generateNaturalPinIbm3624(pvk, table, new Uint8Array(7), 4),
      'CRYPTO_PARAM',
      'validationData: must be 8 bytes, got 7',
    ],
    [
      'natural PIN length 13',
      () => generateNaturalPinIbm3624(pvk, table, vd, 13),
      'CRYPTO_PARAM',
      'pinLength: must be 4 to 12',
    ],
    [
      'validation data beyond the PAN',
      () => selectValidationDataIbm3624('1122334455667788', { offset: 3, length: 14, pad: 'F' }),
      'CRYPTO_PARAM',
      'offset: offset + length must lie within the PAN (16 digits)',
    ],
    [
      'validation data length 17',
      () => selectValidationDataIbm3624('1122334455667788123', { offset: 0, length: 17, pad: 'F' }),
      'CRYPTO_PARAM',
      'length: PAN digits for validation data must be 1 to 16',
    ],
    [
      'validation data pad not hex',
      () => selectValidationDataIbm3624('1122334455667788', { offset: 0, length: 12, pad: 'G' }),
      'CRYPTO_PARAM',
      'pad: must be one hex digit',
    ],
    [
      'validation data PAN with a letter',
      () => selectValidationDataIbm3624('11223344556677X8', { offset: 0, length: 12, pad: 'F' }),
      'CRYPTO_PAN_INVALID',
      'pan: must be decimal digits only',
    ],
    [
      'PVKI of two digits',
      () => generatePvvVisa(pvk, '12', '1234', pan),
      'CRYPTO_PARAM',
      'pvki: must be 1 decimal digit (PIN verification key index)',
    ],
    [
      'PVV PAN too short',
      () => generatePvvVisa(pvk, '1', '1234', '41234567890'),
      'CRYPTO_PAN_INVALID',
      'pan: must be at least 12 digits for Visa PVV (11 digits plus the check digit), got 11',
    ],
    [
      'PVV to verify of 3 digits',
      () => verifyPvvVisa(pvk, '1', '1234', pan, '123'),
      'CRYPTO_PARAM',
      'pvv: must be 4 decimal digits',
    ],
    [
      'CVK of 24 bytes',
      () => generateCvvVisa(new Uint8Array(24), pan, '8701', '101'),
      'CRYPTO_KEY_LENGTH',
      'cvk: must be the 16-byte pair CVK A | CVK B, got 24',
    ],
    [
      'CVV PAN of 20 digits',
      () => generateCvvVisa(cvk, '41234567890123456789', '8701', '101'),
      'CRYPTO_PAN_INVALID',
      'pan: must be at most 19 digits, got 20',
    ],
    [
      'CVV PAN of 7 digits',
      () => generateCvv2Visa(cvk, '4123456', '8701'),
      'CRYPTO_PAN_INVALID',
      'pan: must be at least 8 digits for a CVV, got 7',
    ],
    [
      'expiry of 3 digits',
      () => generateCvvVisa(cvk, pan, '870', '101'),
      'CRYPTO_PARAM',
      'expiryYymm: must be 4 decimal digits (YYMM)',
    ],
    [
      'service code with a letter',
      () => generateCvvVisa(cvk, pan, '8701', '10A'),
      'CRYPTO_PARAM',
      'serviceCode: must be 3 decimal digits',
    ],
    [
      'CVV to verify of 4 digits',
      () => verifyCvvVisa(cvk, pan, '8701', '101', '5610'),
      'CRYPTO_PARAM',
      'cvv: must be 3 decimal digits',
    ],
  ];
  for (const [name, fn, code, message] of cases) {
    test(name, () => throwsCrypto(fn, code, message));
  }
});
