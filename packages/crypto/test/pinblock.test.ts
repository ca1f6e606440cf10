import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { fromHex, toHex } from '../src/bytes.js';
import { CryptoError, type CryptoErrorCode } from '../src/errors.js';
import {
  decodePinBlock,
  decodePinBlockIso0,
  decodePinBlockIso3,
  decodePinFieldIso4,
  decryptPinBlock,
  decryptPinBlockIso4,
  encodePanFieldIso4,
  encodePinBlock,
  encodePinBlockIso0,
  encodePinBlockIso1,
  encodePinBlockIso3,
  encodePinFieldIso4,
  encryptPinBlock,
  type PinBlockFormat,
} from '../src/pinblock.js';
import { label, vectors } from './vectors.js';

/** A vector's fill is hex nibbles, possibly an odd count (format 1): pad to whole bytes, extra nibble unused. */
function fillFromHex(hex: string): Uint8Array {
  return fromHex(hex.length % 2 === 0 ? hex : `${hex}0`, 'fill');
}

function throwsCrypto(fn: () => unknown, code: CryptoErrorCode, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CryptoError, `expected CryptoError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    return true;
  });
}

const PAN = '5555555551234567';

describe('ISO 9564 PIN block vectors (op pinblock)', () => {
  for (const v of vectors('pinblock')) {
    test(label(v), () => {
      const format = v.format as PinBlockFormat;
      const pin = v.pin as string;
      const pan = v.pan as string | undefined;
      const fill = typeof v.fill === 'string' ? fillFromHex(v.fill) : undefined;
      const exp = v.expected as Record<string, string>;
      const known = ['clear', 'pin_field', 'pin_field_prefix', 'pan_field', 'encrypted'];
      assert.deepEqual(
        Object.keys(exp).filter((k) => !known.includes(k)),
        [],
        'every expected field is checked',
      );
      if (exp.clear !== undefined) {
        const clear = encodePinBlock(format, pin, pan, { fill });
        assert.equal(toHex(clear), exp.clear);
        assert.equal(decodePinBlock(format, clear, pan), pin);
      }
      if (exp.pin_field !== undefined || exp.pin_field_prefix !== undefined) {
        assert.equal(format, 4);
        const field = encodePinFieldIso4(pin, { fill });
        if (exp.pin_field !== undefined) assert.equal(toHex(field), exp.pin_field);
        if (exp.pin_field_prefix !== undefined)
          assert.equal(toHex(field.subarray(0, 8)), exp.pin_field_prefix);
        assert.equal(decodePinFieldIso4(field), pin);
      }
      if (exp.pan_field !== undefined) {
        assert.equal(format, 4);
        assert.equal(toHex(encodePanFieldIso4(pan as string)), exp.pan_field);
      }
      if (exp.encrypted !== undefined) {
        const key = fromHex(v.key as string);
        const block = encryptPinBlock(format, key, pin, pan, { fill });
        assert.equal(toHex(block), exp.encrypted);
        assert.equal(decryptPinBlock(format, key, block, pan), pin);
      }
    });
  }
});

describe('ISO 9564 PIN block decode vectors (op pinblock_decode)', () => {
  for (const v of vectors('pinblock_decode')) {
    test(label(v), () => {
      const pin = decodePinBlock(v.format as PinBlockFormat, fromHex(v.pinblock as string), v.pan as string);
      assert.equal(pin, (v.expected as { pin: string }).pin);
    });
  }
});

const pinArb = fc.stringMatching(/^[0-9]{4,12}$/);
const panArb = fc.stringMatching(/^[0-9]{8,19}$/);
const tdesKeyArb = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  fc.uint8Array({ minLength: 24, maxLength: 24 }),
);
const aesKeyArb = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  fc.uint8Array({ minLength: 24, maxLength: 24 }),
  fc.uint8Array({ minLength: 32, maxLength: 32 }),
);
const RUNS = { numRuns: 200 };

describe('round trips (fast-check)', () => {
  for (const format of [0, 1, 2, 3, 4] as const) {
    test(`format ${format}: decode(encode(pin, pan)) == pin`, () => {
      fc.assert(
        fc.property(pinArb, panArb, (pin, pan) => {
          const block = encodePinBlock(format, pin, pan);
          assert.equal(block.length, format === 4 ? 16 : 8);
          assert.equal(decodePinBlock(format, block, pan), pin);
        }),
        RUNS,
      );
    });
  }
  for (const format of [0, 1, 2, 3] as const) {
    test(`format ${format}: decrypt(encrypt(pin)) == pin under TDES`, () => {
      fc.assert(
        fc.property(tdesKeyArb, pinArb, panArb, (key, pin, pan) => {
          assert.equal(decryptPinBlock(format, key, encryptPinBlock(format, key, pin, pan), pan), pin);
        }),
        RUNS,
      );
    });
  }
  test('format 4: decrypt(encrypt(pin)) == pin under AES', () => {
    fc.assert(
      fc.property(aesKeyArb, pinArb, panArb, (key, pin, pan) => {
        const block = encryptPinBlock(4, key, pin, pan);
        assert.equal(block.length, 16);
        assert.equal(decryptPinBlock(4, key, block, pan), pin);
        assert.equal(decryptPinBlockIso4(key, block, pan), pin);
      }),
      RUNS,
    );
  });
  test('format 3 fill is random A-F; format 1 and 4 blocks differ between two encodings', () => {
    fc.assert(
      fc.property(pinArb, panArb, (pin, pan) => {
        const clear = encodePinBlockIso3(pin, pan);
        const field = toHex(encodePinBlockIso0(pin, pan));
        // format 3 XOR format 0 of the same PIN/PAN = control 3 then (F XOR fill) in the fill positions
        const diff = toHex(clear.map((b, i) => b ^ fromHex(field)[i]!));
        assert.match(diff.slice(2 + pin.length), /^[0-5]+$/);
      }),
      RUNS,
    );
    assert.notEqual(toHex(encodePinBlockIso1('1234')), toHex(encodePinBlockIso1('1234')));
    assert.notEqual(toHex(encodePinFieldIso4('1234')), toHex(encodePinFieldIso4('1234')));
  });
});

describe('fill injection', () => {
  test('a fill function replaces randomBytes and is asked for the bytes each format needs', () => {
    const asked: number[] = [];
    const source = (n: number) => {
      asked.push(n);
      return new Uint8Array(n).fill(0x11);
    };
    assert.equal(toHex(encodePinBlockIso1('1234', { fill: source })), '1412341111111111');
    assert.equal(toHex(encodePinFieldIso4('1234', { fill: source })), '441234AAAAAAAAAA1111111111111111');
    // format 3: byte 0x11 = 17, 17 % 6 = 5 -> nibble F; PIN field XOR PAN field as in format 0
    assert.equal(
      toHex(encodePinBlockIso3('1234', PAN, { fill: source })),
      toHex(encodePinBlockIso0('1234', PAN)).replace(/^0/, '3'),
    );
    assert.deepEqual(asked, [5, 8, 16]);
  });
  test('format 3 rejection sampling skips bytes 252-255 and maps the rest by % 6', () => {
    let call = 0;
    const source = (n: number) => {
      call++;
      const b = new Uint8Array(n).fill(0xfc);
      if (call === 2) b.set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      return b;
    };
    // PIN 1234 needs 10 fill nibbles: A B C D E F A B C D
    const clear = encodePinBlockIso3('1234', '0000000000000', { fill: source });
    assert.equal(toHex(clear), '341234ABCDEFABCD');
    assert.equal(decodePinBlockIso3(clear, '0000000000000'), '1234');
  });
  test('format 3 with exact A-F fill bytes', () => {
    const clear = encodePinBlock(3, '1234', '0000000000000', { fill: fromHex('ABCDEFABCD') });
    assert.equal(toHex(clear), '341234ABCDEFABCD');
  });
});

describe('short PANs (ISO 9564-1 clauses 9.3.2.3, 9.4.2.2.3)', () => {
  test('format 0/3: fewer than 12 digits before the check digit are right-justified with zeros', () => {
    // PAN 123456789: check digit 9 dropped, 12345678 -> PAN field 0000 0000 1234 5678
    assert.equal(toHex(encodePinBlockIso0('1234', '123456789')), '041234FFEDCBA987');
    assert.equal(decodePinBlockIso0(fromHex('041234FFEDCBA987'), '123456789'), '1234');
    assert.equal(decodePinBlockIso0(fromHex('041234FFEDCBA987'), '0000123456789'), '1234');
  });
  test('a 13-digit PAN uses exactly its first 12 digits', () => {
    assert.equal(
      toHex(encodePinBlockIso0('1234', '1234567890123')),
      toHex(encodePinBlockIso0('1234', '01234567890123')),
    );
  });
});

describe('wrong key or PAN', () => {
  const tdesKey = fromHex('0123456789ABCDEFFEDCBA9876543210');
  const aesKey = fromHex('00112233445566778899AABBCCDDEEFF');
  test('format 0 under the wrong TDES key fails to decode', () => {
    const block = encryptPinBlock(0, tdesKey, '1234', PAN);
    const other = fromHex('FEDCBA98765432100123456789ABCDEF');
    assert.throws(
      () => decryptPinBlock(0, other, block, PAN),
      (e: unknown) => e instanceof CryptoError && e.code === 'CRYPTO_PINBLOCK_INVALID',
    );
  });
  test('format 0 with a PAN differing in its last digits fails the F filler check', () => {
    const block = encodePinBlockIso0('1234', PAN);
    throwsCrypto(
      () => decodePinBlockIso0(block, '5555555551234987'),
      'CRYPTO_PINBLOCK_INVALID',
      'pinblock: filler after the PIN is not all F',
    );
  });
  test('format 4 under the wrong PAN fails to decode', () => {
    const block = encryptPinBlock(4, aesKey, '1234', '1234567890123456789', { fill: new Uint8Array(8) });
    assert.throws(
      () => decryptPinBlock(4, aesKey, block, '1234567890123456788'),
      (e: unknown) => e instanceof CryptoError && e.code === 'CRYPTO_PINBLOCK_INVALID',
    );
  });
});

describe('errors: exact code and message, never the secret', () => {
  const key16 = new Uint8Array(16);
  const cases: [string, () => unknown, CryptoErrorCode, string][] = [
    [
      'PIN of 3 digits',
      () => encodePinBlock(0, '123', PAN),
      'CRYPTO_PIN_INVALID',
      'pin: must be 4 to 12 digits, got 3',
    ],
    [
      'PIN of 13 digits',
      () => encodePinBlock(2, '1234567890123'),
      'CRYPTO_PIN_INVALID',
      'pin: must be 4 to 12 digits, got 13',
    ],
    [
      'PIN with a non-digit',
      () => encodePinBlock(4, '12a4'),
      'CRYPTO_PIN_INVALID',
      'pin: must be decimal digits only',
    ],
    [
      'PAN too short for format 0',
      () => encodePinBlock(0, '1234', '5555555'),
      'CRYPTO_PAN_INVALID',
      'pan: must be at least 8 digits for ISO 9564 format 0, got 7',
    ],
    [
      'PAN too short for format 3 decode',
      () => decodePinBlock(3, fromHex('341261AAAAEDCBA9'), '5555'),
      'CRYPTO_PAN_INVALID',
      'pan: must be at least 8 digits for ISO 9564 format 3, got 4',
    ],
    [
      'PAN missing for format 0',
      () => encodePinBlock(0, '1234'),
      'CRYPTO_PAN_INVALID',
      'pan: is required for ISO 9564 format 0',
    ],
    [
      'PAN empty for format 4',
      () => encodePanFieldIso4(''),
      'CRYPTO_PAN_INVALID',
      'pan: must be at least 8 digits for ISO 9564 format 4, got 0',
    ],
    [
      'PAN missing for format 4 encryption',
      () => encryptPinBlock(4, key16, '1234'),
      'CRYPTO_PAN_INVALID',
      'pan: is required for ISO 9564 format 4',
    ],
    [
      'PAN with a non-digit',
      () => encodePinBlockIso0('1234', '555555555123456A'),
      'CRYPTO_PAN_INVALID',
      'pan: must be decimal digits only',
    ],
    [
      'PAN of 20 digits',
      () => encodePanFieldIso4('55555555512345671234'),
      'CRYPTO_PAN_INVALID',
      'pan: must be at most 19 digits, got 20',
    ],
    [
      'format 0 control field',
      () => decodePinBlock(0, fromHex('241261AAAAEDCBA9'), PAN),
      'CRYPTO_PINBLOCK_INVALID',
      'pinblock: control field is not 0 (ISO 9564 format 0)',
    ],
    [
      'format 2 control field',
      () => decodePinBlock(2, fromHex('041234FFFFFFFFFF')),
      'CRYPTO_PINBLOCK_INVALID',
      'pinblock: control field is not 2 (ISO 9564 format 2)',
    ],
    [
      'format 4 control field',
      () => decodePinFieldIso4(fromHex('341234AAAAAAAAAA0000000000000000')),
      'CRYPTO_PINBLOCK_INVALID',
      'pinblock: control field is not 4 (ISO 9564 format 4)',
    ],
    [
      'PIN length field 15',
      () => decodePinBlock(0, fromHex('0F1261AAAAEDCBA9'), PAN),
      'CRYPTO_PINBLOCK_INVALID',
      'pinblock: PIN length field is not 4 to 12',
    ],
    [
      'PIN length field 2',
      () => decodePinBlock(1, fromHex('12123456789012FF')),
      'CRYPTO_PINBLOCK_INVALID',
      'pinblock: PIN length field is not 4 to 12',
    ],
    [
      'PIN digit not decimal',
      () => decodePinBlock(0, fromHex('051261AAAAEDCBA9'), PAN),
      'CRYPTO_PINBLOCK_INVALID',
      'pinblock: a PIN digit is not 0 to 9',
    ],
    [
      'format 0 filler',
      () => decodePinBlock(0, fromHex('041261AAAAEDCBAA'), PAN),
      'CRYPTO_PINBLOCK_INVALID',
      'pinblock: filler after the PIN is not all F',
    ],
    [
      'format 2 filler',
      () => decodePinBlock(2, fromHex('2C123456789012CF')),
      'CRYPTO_PINBLOCK_INVALID',
      'pinblock: filler after the PIN is not all F',
    ],
    [
      'format 3 filler (a nibble below A)',
      () => decodePinBlock(3, fromHex('341234ABCDEF9BCD'), '0000000000000'),
      'CRYPTO_PINBLOCK_INVALID',
      'pinblock: filler after the PIN is not all A to F',
    ],
    [
      'format 4 filler',
      () => decodePinFieldIso4(fromHex('441234AAAAAAAAAB0000000000000000')),
      'CRYPTO_PINBLOCK_INVALID',
      'pinblock: filler after the PIN is not all A',
    ],
    [
      'block of 7 bytes',
      () => decodePinBlock(0, fromHex('041261AAAAEDCB'), PAN),
      'CRYPTO_PINBLOCK_INVALID',
      'pinblock: must be 8 bytes for ISO 9564 format 0, got 7',
    ],
    [
      'format 4 block of 8 bytes',
      () => decryptPinBlock(4, key16, new Uint8Array(8), PAN),
      'CRYPTO_PINBLOCK_INVALID',
      'pinblock: must be 16 bytes for ISO 9564 format 4, got 8',
    ],
    [
      'format 0 with a 32-byte key',
      () => encryptPinBlock(0, new Uint8Array(32), '1234', PAN),
      'CRYPTO_KEY_LENGTH',
      'key: ISO 9564 format 0 needs a TDES key of 16 or 24 bytes, got 32',
    ],
    [
      'format 1 with an 8-byte (single DES) key',
      () => decryptPinBlock(1, new Uint8Array(8), new Uint8Array(8)),
      'CRYPTO_KEY_LENGTH',
      'key: ISO 9564 format 1 needs a TDES key of 16 or 24 bytes, got 8',
    ],
    [
      'format 4 with an 8-byte key',
      () => encryptPinBlock(4, new Uint8Array(8), '1234', PAN),
      'CRYPTO_KEY_LENGTH',
      'key: ISO 9564 format 4 needs an AES key of 16, 24 or 32 bytes, got 8',
    ],
    [
      'unknown format',
      () => encodePinBlock(5 as PinBlockFormat, '1234', PAN),
      'CRYPTO_ALGORITHM',
      'format: unknown ISO 9564 PIN block format (expected 0, 1, 2, 3 or 4)',
    ],
    [
      'fill bytes too short for format 4',
      () => encodePinFieldIso4('1234', { fill: new Uint8Array(7) }),
      'CRYPTO_PARAM',
      'fill: ISO 9564 format 4 needs 16 fill nibbles, got 14',
    ],
    [
      'fill bytes too short for format 1',
      () => encodePinBlockIso1('1234', { fill: new Uint8Array(4) }),
      'CRYPTO_PARAM',
      'fill: ISO 9564 format 1 needs 10 fill nibbles, got 8',
    ],
    [
      'format 3 fill bytes outside A-F',
      () => encodePinBlockIso3('1234', PAN, { fill: fromHex('ABCDEF9BCD') }),
      'CRYPTO_PARAM',
      'fill: ISO 9564 format 3 fill nibbles must be A to F',
    ],
    [
      'format 3 random source that never gives a usable byte',
      () => encodePinBlockIso3('1234', PAN, { fill: (n) => new Uint8Array(n).fill(0xff) }),
      'CRYPTO_PARAM',
      'fill: the random source gave too few usable bytes for format 3',
    ],
  ];
  for (const [name, fn, code, message] of cases) {
    test(name, () => throwsCrypto(fn, code, message));
  }

  test('a random source returning the wrong size is a TypeError', () => {
    assert.throws(() => encodePinBlockIso1('1234', { fill: () => new Uint8Array(1) }), TypeError);
  });

  test('no error message holds the PAN or the PIN', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{13,19}$/), fc.stringMatching(/^[0-9]{4,12}$/), (pan, pin) => {
        const attempts: (() => unknown)[] = [
          () => encodePinBlock(0, `${pin}5`.padEnd(13, '7'), pan),
          () => encodePinBlock(0, pin, pan.slice(0, 7)),
          () => encodePinBlock(3, pin, `${pan.slice(0, 18)}X`),
          () => decodePinBlock(0, encodePinBlock(3, pin, pan), pan),
          () => decryptPinBlock(4, new Uint8Array(16), new Uint8Array(16), pan),
        ];
        for (const attempt of attempts) {
          try {
            attempt();
          } catch (e) {
            assert.ok(e instanceof CryptoError);
            assert.ok(!e.message.includes(pan.slice(-13, -1)), 'PAN digits in message');
            if (pin.length >= 6) assert.ok(!e.message.includes(pin), 'PIN in message');
          }
        }
      }),
      { numRuns: 50 },
    );
  });
});
