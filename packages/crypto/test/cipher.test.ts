import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { fromHex, toHex } from '../src/bytes.js';
import {
  adjustOddParity,
  assertOddParity,
  type BlockAlgorithm,
  decrypt,
  encrypt,
  hasOddParity,
  tdesEncryptEcb,
} from '../src/cipher.js';
import { CryptoError } from '../src/errors.js';
import { kcvAes, kcvSm4, kcvTdes, keyCheckValue } from '../src/kcv.js';
import { label, vectors } from './vectors.js';

describe('SM4 (GB/T 32907-2016 Annex A)', () => {
  for (const v of vectors('sm4')) {
    test(label(v), () => {
      const key = fromHex(v.key as string);
      let data = fromHex(v.data as string);
      const n = (v.iterations as number | undefined) ?? 1;
      for (let i = 0; i < n; i++)
        data = v.decrypt ? decrypt('sm4', 'ecb', key, data) : encrypt('sm4', 'ecb', key, data);
      assert.equal(toHex(data), v.expected.output);
    });
  }
});

describe('key check values', () => {
  for (const v of vectors('kcv')) {
    test(label(v), () => {
      const key = fromHex(v.key as string);
      const kcv = keyCheckValue(v.alg as BlockAlgorithm, key, {
        method: v.method as 'legacy' | 'cmac',
        length: v.length as number,
      });
      assert.equal(toHex(kcv), v.expected.kcv);
    });
  }
  test('UnionPay 4-byte TDES check value is the 3-byte one extended', () => {
    const key = fromHex('5DB50B454F8389ADCE573BE50861F2BF');
    assert.equal(toHex(kcvTdes(key, 4)).slice(0, 6), '5C9405');
    assert.equal(kcvTdes(key, 4).length, 4);
  });
  test('defaults: TDES 3 bytes, AES 5 bytes (CMAC), SM4 3 bytes', () => {
    assert.equal(kcvTdes(new Uint8Array(16)).length, 3);
    assert.equal(toHex(kcvAes(fromHex('3F419E1CB7079442AA37474C2EFBF8B8'))), '08793E25AB');
    assert.equal(kcvSm4(new Uint8Array(16)).length, 3);
  });
  test('DES single key check value equals TDES with the key repeated', () => {
    const k = fromHex('0123456789ABCDEF');
    assert.equal(toHex(kcvTdes(k)), toHex(kcvTdes(fromHex('0123456789ABCDEF0123456789ABCDEF'))));
  });
  test('check value length out of range', () => {
    assert.throws(
      () => kcvTdes(new Uint8Array(16), 9),
      (e: unknown) =>
        e instanceof CryptoError &&
        e.code === 'CRYPTO_PARAM' &&
        e.message === 'length: check value length must be 1 to 8 bytes',
    );
  });
});

describe('DES / TDES / AES', () => {
  test('DES known answer (FIPS 81 / NBS test: key 0123456789ABCDEF, "Now is t")', () => {
    // FIPS PUB 81 Appendix B, ECB example: plaintext "Now is t" -> 3FA40E8A984D4815
    assert.equal(
      toHex(encrypt('des', 'ecb', fromHex('0123456789ABCDEF'), fromHex('4E6F772069732074'))),
      '3FA40E8A984D4815',
    );
  });
  test('AES-128 known answer (FIPS 197 Appendix C.1)', () => {
    const out = encrypt(
      'aes',
      'ecb',
      fromHex('000102030405060708090A0B0C0D0E0F'),
      fromHex('00112233445566778899AABBCCDDEEFF'),
    );
    assert.equal(toHex(out), '69C4E0D86A7B0430D8CDB78070B4C55A');
  });
  test('2-key TDES equals 3-key TDES with K3 = K1', () => {
    const k2 = fromHex('0123456789ABCDEFFEDCBA9876543210');
    const k3 = fromHex('0123456789ABCDEFFEDCBA98765432100123456789ABCDEF');
    const d = fromHex('0000000000000000');
    assert.equal(toHex(tdesEncryptEcb(k2, d)), toHex(tdesEncryptEcb(k3, d)));
  });
  const algs: [BlockAlgorithm, number[]][] = [
    ['des', [8]],
    ['tdes', [16, 24]],
    ['aes', [16, 24, 32]],
    ['sm4', [16]],
  ];
  for (const [alg, lens] of algs) {
    test(`${alg}: decrypt(encrypt(x)) = x in ECB and CBC`, () => {
      const bs = alg === 'des' || alg === 'tdes' ? 8 : 16;
      fc.assert(
        fc.property(
          fc.constantFrom(...lens).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
          fc
            .integer({ min: 0, max: 8 })
            .chain((n) => fc.uint8Array({ minLength: n * bs, maxLength: n * bs })),
          fc.uint8Array({ minLength: bs, maxLength: bs }),
          fc.constantFrom('ecb' as const, 'cbc' as const),
          (key, data, iv, mode) => {
            const ivArg = mode === 'cbc' ? iv : undefined;
            const c = encrypt(alg, mode, key, data, ivArg);
            assert.deepEqual(decrypt(alg, mode, key, c, ivArg), data);
          },
        ),
        { numRuns: 50 },
      );
    });
  }
  test('errors name the field and the rule', () => {
    const cases: [() => unknown, string, string][] = [
      [
        () => encrypt('tdes', 'ecb', new Uint8Array(10), new Uint8Array(8)),
        'CRYPTO_KEY_LENGTH',
        'key: TDES key must be 16 or 24 bytes, got 10',
      ],
      [
        () => encrypt('aes', 'ecb', new Uint8Array(16), new Uint8Array(15)),
        'CRYPTO_DATA_LENGTH',
        'data: must be a multiple of the 16-byte AES block, got 15 bytes',
      ],
      [
        () => encrypt('aes', 'cbc', new Uint8Array(16), new Uint8Array(16), new Uint8Array(8)),
        'CRYPTO_IV_LENGTH',
        'iv: must be 16 bytes for AES, got 8',
      ],
      [
        () => encrypt('aes', 'ecb', new Uint8Array(16), new Uint8Array(16), new Uint8Array(16)),
        'CRYPTO_IV_LENGTH',
        'iv: ECB takes no IV',
      ],
      [
        () => encrypt('rc4' as BlockAlgorithm, 'ecb', new Uint8Array(16), new Uint8Array(16)),
        'CRYPTO_ALGORITHM',
        'alg: unknown block cipher (expected des, tdes, aes, sm4)',
      ],
      [
        () => encrypt('aes', 'ofb' as 'ecb', new Uint8Array(16), new Uint8Array(16)),
        'CRYPTO_ALGORITHM',
        'mode: unknown cipher mode (expected ecb, cbc)',
      ],
      [() => fromHex('ABC', 'key'), 'CRYPTO_HEX_INVALID', 'key: odd number of hex digits (3)'],
      [() => fromHex('ABCG', 'data'), 'CRYPTO_HEX_INVALID', 'data: non-hex character at position 3'],
      [
        () => assertOddParity(fromHex('0123456789ABCDEE')),
        'CRYPTO_KEY_PARITY',
        'key: byte 7 does not have odd parity',
      ],
    ];
    for (const [fn, code, message] of cases) {
      assert.throws(
        fn,
        (e: unknown) => e instanceof CryptoError && e.code === code && e.message === message,
        message,
      );
    }
  });
});

describe('DES key parity', () => {
  test('adjust gives odd parity, keeps the 56 key bits, and is idempotent', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 24 }), (k) => {
        const a = adjustOddParity(k);
        assert.ok(hasOddParity(a));
        for (let i = 0; i < k.length; i++) assert.equal(a[i]! & 0xfe, k[i]! & 0xfe);
        assert.deepEqual(adjustOddParity(a), a);
      }),
    );
  });
  test('known keys', () => {
    assert.ok(hasOddParity(fromHex('0123456789ABCDEF')));
    assert.ok(!hasOddParity(fromHex('0000000000000000')));
    assert.equal(toHex(adjustOddParity(fromHex('0000000000000000'))), '0101010101010101');
  });
});
