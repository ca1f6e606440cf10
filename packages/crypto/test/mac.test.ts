import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { fromAscii, fromHex, toAscii, toHex } from '../src/bytes.js';
import { desDecryptEcb, desEncryptEcb, tdesEncryptEcb } from '../src/cipher.js';
import { cmac } from '../src/cmac.js';
import { CryptoError } from '../src/errors.js';
import {
  generateMac,
  type Iso9797Padding,
  MAC_ALGORITHMS,
  type MacAlgorithm,
  type MacOptions,
  macCmac,
  macCupEcb,
  macIso9797Alg1,
  macIso9797Alg3,
  macX919,
  padIso9797,
  padIso9797Method1,
  padIso9797Method2,
  padIso9797Method3,
  verifyMac,
} from '../src/mac.js';
import { label, type Vector, vectors } from './vectors.js';

const RUNS = 40;

/** The vector's message: `text` is ASCII, `data` is hex. */
function messageOf(v: Vector): Uint8Array {
  if (typeof v.text === 'string') return fromAscii(v.text);
  return fromHex(v.data as string, 'data');
}

/** Maps a vector's `alg` to the generic entry point's name and options. */
function callOf(v: Vector): [MacAlgorithm, MacOptions] {
  const length = (v.length as number | null | undefined) ?? undefined;
  const padding = v.padding as Iso9797Padding | undefined;
  switch (v.alg) {
    case 'x919':
      return ['iso9797-1-3', { padding, length }];
    case 'iso9797_1_m1':
      return ['iso9797-1-1', { padding, length }];
    case 'aes_cmac':
      return ['cmac', { cipher: 'aes', length }];
    case 'tdes_cmac':
      return ['cmac', { cipher: 'tdes', length }];
    case 'cup_ecb':
      return ['cup-ecb', { length }];
    default:
      throw new Error(`vector ${v.id}: MAC algorithm ${String(v.alg)} has no mapping in this test`);
  }
}

/** Calls the named function for the vector (the generic path is checked separately). */
function namedMac(v: Vector, key: Uint8Array, data: Uint8Array): Uint8Array {
  const [, opts] = callOf(v);
  switch (v.alg) {
    case 'x919':
      return macX919(key, data, opts);
    case 'iso9797_1_m1':
      return macIso9797Alg1(key, data, opts);
    case 'aes_cmac':
    case 'tdes_cmac':
      return macCmac(key, data, opts);
    default:
      return macCupEcb(key, data, opts);
  }
}

describe('MAC vectors (op mac, every file in vectors/)', () => {
  const all = vectors('mac');
  test('every vector has an algorithm this test maps', () => {
    for (const v of all) assert.doesNotThrow(() => callOf(v), `vector ${v.id}`);
    const algs = new Set(all.map((v) => v.alg));
    for (const a of ['x919', 'iso9797_1_m1', 'aes_cmac', 'tdes_cmac', 'cup_ecb']) assert.ok(algs.has(a), a);
  });
  for (const v of all) {
    test(`${v.alg} ${label(v)}`, () => {
      const key = fromHex(v.key as string, 'key');
      const data = messageOf(v);
      const expected = v.expected.mac as string;
      const [alg, opts] = callOf(v);
      assert.equal(toHex(namedMac(v, key, data)), expected);
      const generic = generateMac(alg, key, data, opts);
      assert.equal(toHex(generic), expected);
      if (typeof v.expected.macText === 'string') assert.equal(toAscii(generic), v.expected.macText);
      assert.equal(verifyMac(alg, key, data, fromHex(expected), opts), true);
    });
  }
});

describe('ISO/IEC 9797-1 padding methods', () => {
  const cases: [string, Iso9797Padding, number, string, string][] = [
    ['method 1, empty: one zero block', 1, 8, '', '0000000000000000'],
    ['method 1, partial block', 1, 8, '1234', '1234000000000000'],
    ['method 1, aligned: nothing added', 1, 8, '1122334455667788', '1122334455667788'],
    ['method 1, AES block', 1, 16, 'AB', `AB${'00'.repeat(15)}`],
    ['method 2, empty', 2, 8, '', '8000000000000000'],
    ['method 2, partial block', 2, 8, '1234', '1234800000000000'],
    ['method 2, aligned: a whole block added', 2, 8, '1122334455667788', '11223344556677888000000000000000'],
    ['method 3, psec example', 3, 8, '1234', '00000000000000101234000000000000'],
    ['method 3, empty: the length block alone', 3, 8, '', '0000000000000000'],
    ['method 3, aligned', 3, 8, '1122334455667788', '00000000000000401122334455667788'],
    [
      'method 3, AES block, 300 bytes',
      3,
      16,
      'EE'.repeat(300),
      `${'00'.repeat(14)}0960${'EE'.repeat(300)}${'00'.repeat(4)}`,
    ],
  ];
  for (const [name, method, bs, input, output] of cases) {
    test(name, () => {
      assert.equal(toHex(padIso9797(fromHex(input), method, bs)), output);
    });
  }
  test('the named pad functions agree with padIso9797', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.constantFrom(8, 16), (d, bs) => {
        assert.deepEqual(padIso9797Method1(d, bs), padIso9797(d, 1, bs));
        assert.deepEqual(padIso9797Method2(d, bs), padIso9797(d, 2, bs));
        assert.deepEqual(padIso9797Method3(d, bs), padIso9797(d, 3, bs));
      }),
      { numRuns: RUNS },
    );
  });
  test('padded data keeps the message as prefix and is a positive multiple of the block', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.constantFrom<Iso9797Padding>(1, 2, 3), (d, m) => {
        const p = padIso9797(d, m, 8);
        assert.ok(p.length > 0 && p.length % 8 === 0);
        const body = m === 3 ? p.subarray(8) : p;
        assert.deepEqual(body.subarray(0, d.length), d);
      }),
      { numRuns: RUNS },
    );
  });
});

/** Every configuration the properties run over: generic name, options and key length. */
const CONFIGS: { name: string; alg: MacAlgorithm; opts: MacOptions; keyLength: number }[] = [
  { name: 'alg 1 DES pad 1', alg: 'iso9797-1-1', opts: { padding: 1 }, keyLength: 8 },
  { name: 'alg 1 TDES pad 2', alg: 'iso9797-1-1', opts: { padding: 2 }, keyLength: 16 },
  { name: 'alg 1 TDES-3 pad 3 len 4', alg: 'iso9797-1-1', opts: { padding: 3, length: 4 }, keyLength: 24 },
  { name: 'alg 1 AES pad 2', alg: 'iso9797-1-1', opts: { padding: 2, cipher: 'aes' }, keyLength: 16 },
  { name: 'alg 3 (X9.19) pad 1', alg: 'iso9797-1-3', opts: {}, keyLength: 16 },
  { name: 'alg 3 3-key pad 2 len 6', alg: 'iso9797-1-3', opts: { padding: 2, length: 6 }, keyLength: 24 },
  { name: 'TDES-CMAC', alg: 'cmac', opts: { cipher: 'tdes' }, keyLength: 16 },
  { name: 'AES-CMAC len 8', alg: 'cmac', opts: { cipher: 'aes', length: 8 }, keyLength: 16 },
  { name: 'AES-256-CMAC, cipher inferred', alg: 'cmac', opts: {}, keyLength: 32 },
  { name: 'CUP ECB single MAK', alg: 'cup-ecb', opts: {}, keyLength: 8 },
  { name: 'CUP ECB double MAK', alg: 'cup-ecb', opts: {}, keyLength: 16 },
];

describe('properties: verify(generate) and tampering', () => {
  for (const c of CONFIGS) {
    test(`${c.name}: verify(generate) is true; any flipped bit of data or MAC makes it false`, () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: c.keyLength, maxLength: c.keyLength }),
          fc.uint8Array({ minLength: 1, maxLength: 48 }),
          fc.nat(),
          fc.nat(),
          (key, data, dataBit, macBit) => {
            const mac = generateMac(c.alg, key, data, c.opts);
            assert.equal(verifyMac(c.alg, key, data, mac, c.opts), true);
            const d2 = data.slice();
            const db = dataBit % (data.length * 8);
            d2[db >> 3]! ^= 1 << (db & 7);
            assert.equal(verifyMac(c.alg, key, d2, mac, c.opts), false);
            const m2 = mac.slice();
            const mb = macBit % (mac.length * 8);
            m2[mb >> 3]! ^= 1 << (mb & 7);
            assert.equal(verifyMac(c.alg, key, data, m2, c.opts), false);
          },
        ),
        { numRuns: RUNS },
      );
    });
  }
  test('a MAC of another length never verifies (the length comes from opts, not from the MAC)', () => {
    const key = fromHex('0123456789ABCDEFFEDCBA9876543210');
    const data = fromAscii('hello world');
    const full = generateMac('iso9797-1-3', key, data);
    assert.equal(verifyMac('iso9797-1-3', key, data, full.subarray(0, 4)), false);
    assert.equal(verifyMac('iso9797-1-3', key, data, full.subarray(0, 4), { length: 4 }), true);
    assert.equal(verifyMac('iso9797-1-3', key, data, new Uint8Array(0)), false);
  });
  test('padding 2 and padding 1 give different MACs on aligned data (algorithms 1 and 3)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.integer({ min: 1, max: 5 }).chain((n) => fc.uint8Array({ minLength: 8 * n, maxLength: 8 * n })),
        (key, data) => {
          for (const alg of ['iso9797-1-1', 'iso9797-1-3'] as const) {
            const p1 = generateMac(alg, key, data, { padding: 1 });
            const p2 = generateMac(alg, key, data, { padding: 2 });
            assert.notEqual(toHex(p1), toHex(p2));
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
  test('padding 1 is ambiguous by design: M and M‖00 share a MAC when M is not aligned', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc
          .uint8Array({ minLength: 1, maxLength: 30 })
          .filter((d) => d.length % 8 !== 0 && d.length % 8 !== 7),
        (key, data) => {
          const longer = new Uint8Array(data.length + 1);
          longer.set(data);
          assert.equal(toHex(macX919(key, data)), toHex(macX919(key, longer)));
          assert.notEqual(
            toHex(macX919(key, data, { padding: 3 })),
            toHex(macX919(key, longer, { padding: 3 })),
          );
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe('cross-checks against independent constructions', () => {
  const key8 = fc.uint8Array({ minLength: 8, maxLength: 8 });
  test('algorithm 3 with K′ = K equals algorithm 1 under single DES K (output transformation 3 cancels)', () => {
    fc.assert(
      fc.property(
        key8,
        fc.uint8Array({ maxLength: 40 }),
        fc.constantFrom<Iso9797Padding>(1, 2, 3),
        (k, d, p) => {
          const kk = new Uint8Array(16);
          kk.set(k);
          kk.set(k, 8);
          assert.equal(
            toHex(macIso9797Alg3(kk, d, { padding: p })),
            toHex(macIso9797Alg1(k, d, { padding: p })),
          );
        },
      ),
      { numRuns: RUNS },
    );
  });
  test('algorithm 3 with a 24-byte key K‖K′‖K equals the 16-byte key K‖K′', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ maxLength: 40 }),
        (k, d) => {
          const k3 = new Uint8Array(24);
          k3.set(k);
          k3.set(k.subarray(0, 8), 16);
          assert.equal(toHex(macIso9797Alg3(k3, d)), toHex(macIso9797Alg3(k, d)));
        },
      ),
      { numRuns: RUNS },
    );
  });
  test('algorithm 3 by hand: DES CBC block by block, then D(K′), E(K)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ maxLength: 40 }),
        (k, d) => {
          const k1 = k.subarray(0, 8);
          const k2 = k.subarray(8);
          const padded = new Uint8Array(Math.max(8, Math.ceil(d.length / 8) * 8));
          padded.set(d);
          let h: Uint8Array = new Uint8Array(8);
          for (let i = 0; i < padded.length; i += 8) {
            const x = new Uint8Array(8);
            for (let j = 0; j < 8; j++) x[j] = h[j]! ^ padded[i + j]!;
            h = desEncryptEcb(k1, x);
          }
          const expected = desEncryptEcb(k1, desDecryptEcb(k2, h));
          assert.equal(toHex(macIso9797Alg3(k, d)), toHex(expected));
        },
      ),
      { numRuns: RUNS },
    );
  });
  test('algorithm 1 with a TDES key K‖K‖K equals single DES K', () => {
    fc.assert(
      fc.property(key8, fc.uint8Array({ maxLength: 40 }), (k, d) => {
        const k3 = new Uint8Array(24);
        k3.set(k);
        k3.set(k, 8);
        k3.set(k, 16);
        assert.equal(toHex(macIso9797Alg1(k3, d)), toHex(macIso9797Alg1(k, d)));
      }),
      { numRuns: RUNS },
    );
  });
  test('CMAC truncation is the leftmost bytes of the SP 800-38B tag', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ maxLength: 40 }),
        fc.integer({ min: 4, max: 16 }),
        (k, d, n) => {
          assert.equal(
            toHex(macCmac(k, d, { cipher: 'aes', length: n })),
            toHex(cmac('aes', k, d).subarray(0, n)),
          );
          const t = Math.min(n, 8);
          assert.equal(
            toHex(macCmac(k, d, { cipher: 'tdes', length: t })),
            toHex(cmac('tdes', k, d).subarray(0, t)),
          );
        },
      ),
      { numRuns: RUNS },
    );
  });

  /**
   * The CUP ECB MAC written a second way, over hex strings and BigInt, from the step list in
   * /work/shared/cup-pos-dialect.md §2.6 (not from mac.ts).
   */
  function cupEcbReference(keyHex: string, mabHex: string): string {
    const encryptBlock = keyHex.length === 16 ? desEncryptEcb : tdesEncryptEcb;
    const key = fromHex(keyHex);
    let padded = mabHex;
    while (padded.length % 16 !== 0) padded += '0';
    let r = 0n;
    for (let i = 0; i < padded.length; i += 16) r ^= BigInt(`0x${padded.slice(i, i + 16)}`);
    const h = r.toString(16).toUpperCase().padStart(16, '0');
    const left = fromAscii(h.slice(0, 8));
    const right = BigInt(`0x${Buffer.from(h.slice(8), 'latin1').toString('hex')}`);
    const e1 = BigInt(`0x${toHex(encryptBlock(key, left))}`);
    const x = (e1 ^ right).toString(16).padStart(16, '0');
    const e2 = toHex(encryptBlock(key, fromHex(x)));
    return e2.slice(0, 8);
  }
  test('CUP ECB MAC equals a hex-string reference for single- and double-length MAKs', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(8, 16).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
        fc.uint8Array({ maxLength: 60 }),
        (k, d) => {
          assert.equal(toAscii(macCupEcb(k, d)), cupEcbReference(toHex(k), toHex(d)));
        },
      ),
      { numRuns: RUNS },
    );
  });
  test('CUP ECB MAC is 8 upper-case hex ASCII characters; length truncates them', () => {
    const key = fromHex('2222222222222222');
    const mab = fromHex('1234567890ABCDEFABCDEF1234567890');
    assert.match(toAscii(macCupEcb(key, mab)), /^[0-9A-F]{8}$/);
    assert.equal(toAscii(macCupEcb(key, mab, { length: 4 })), 'E267');
    // Empty input: R is the zero block, the same as one block of zeros.
    assert.equal(toHex(macCupEcb(key, new Uint8Array(0))), toHex(macCupEcb(key, new Uint8Array(8))));
  });
});

describe('errors: exact code and message', () => {
  const k16 = fromHex('0123456789ABCDEFFEDCBA9876543210');
  const data = fromAscii('hello world');
  const expectError = (fn: () => unknown, code: string, message: string) =>
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof CryptoError, `not a CryptoError: ${String(e)}`);
      assert.equal(e.code, code);
      assert.equal(e.message, message);
      assert.ok(!e.message.includes(toHex(k16)) && !e.message.includes('0123456789ABCDEF'));
      return true;
    });

  const cases: [string, () => unknown, string, string][] = [
    [
      'unknown algorithm (generate)',
      () => generateMac('hmac' as MacAlgorithm, k16, data),
      'CRYPTO_ALGORITHM',
      `alg: unknown MAC algorithm (expected ${MAC_ALGORITHMS.join(', ')})`,
    ],
    [
      'unknown algorithm (verify)',
      () => verifyMac('x9.9' as MacAlgorithm, k16, data, new Uint8Array(8)),
      'CRYPTO_ALGORITHM',
      'alg: unknown MAC algorithm (expected iso9797-1-1, iso9797-1-3, cmac, cup-ecb)',
    ],
    [
      'unknown padding, algorithm 1',
      () => generateMac('iso9797-1-1', k16, data, { padding: 4 as Iso9797Padding }),
      'CRYPTO_PARAM',
      'padding: ISO/IEC 9797-1 padding method must be 1, 2 or 3',
    ],
    [
      'unknown padding, algorithm 3',
      () => macIso9797Alg3(k16, data, { padding: 0 as Iso9797Padding }),
      'CRYPTO_PARAM',
      'padding: ISO/IEC 9797-1 padding method must be 1, 2 or 3',
    ],
    [
      'unknown padding, padIso9797',
      () => padIso9797(data, 5 as Iso9797Padding),
      'CRYPTO_PARAM',
      'padding: ISO/IEC 9797-1 padding method must be 1, 2 or 3',
    ],
    [
      'unknown cipher, algorithm 1',
      () => generateMac('iso9797-1-1', k16, data, { cipher: 'sm4' as 'aes' }),
      'CRYPTO_ALGORITHM',
      'cipher: unknown MAC block cipher (expected tdes or aes)',
    ],
    [
      'unknown cipher, CMAC',
      () => generateMac('cmac', k16, data, { cipher: 'des' as 'tdes' }),
      'CRYPTO_ALGORITHM',
      'cipher: unknown MAC block cipher (expected tdes or aes)',
    ],
    [
      'algorithm 1 key length (DES/TDES)',
      () => macIso9797Alg1(new Uint8Array(7), data),
      'CRYPTO_KEY_LENGTH',
      'key: ISO/IEC 9797-1 MAC algorithm 1 needs an 8-byte (DES), 16- or 24-byte (TDES) key, got 7',
    ],
    [
      'algorithm 1 key length (AES)',
      () => macIso9797Alg1(new Uint8Array(8), data, { cipher: 'aes' }),
      'CRYPTO_KEY_LENGTH',
      'key: ISO/IEC 9797-1 MAC algorithm 1 with AES needs a 16-, 24- or 32-byte key, got 8',
    ],
    [
      'algorithm 3 key length',
      () => generateMac('iso9797-1-3', new Uint8Array(8), data),
      'CRYPTO_KEY_LENGTH',
      'key: MAC algorithm 3 (ANSI X9.19) needs a 16- or 24-byte key, got 8',
    ],
    [
      'algorithm 3 takes no cipher',
      () => generateMac('iso9797-1-3', k16, data, { cipher: 'aes' }),
      'CRYPTO_PARAM',
      'cipher: MAC algorithm 3 (ANSI X9.19) is defined over DES; cipher does not apply',
    ],
    [
      'CMAC with an ambiguous 16-byte key and no cipher',
      () => generateMac('cmac', k16, data),
      'CRYPTO_PARAM',
      'cipher: a 16-byte key fits both TDES and AES: state cipher (tdes or aes) for CMAC',
    ],
    [
      'CMAC with an ambiguous 24-byte key and no cipher',
      () => macCmac(new Uint8Array(24), data),
      'CRYPTO_PARAM',
      'cipher: a 24-byte key fits both TDES and AES: state cipher (tdes or aes) for CMAC',
    ],
    [
      'CMAC key length, cipher inferred',
      () => macCmac(new Uint8Array(8), data),
      'CRYPTO_KEY_LENGTH',
      'key: CMAC needs a 16- or 24-byte (TDES) or 16-, 24- or 32-byte (AES) key, got 8',
    ],
    [
      'TDES-CMAC key length',
      () => macCmac(new Uint8Array(32), data, { cipher: 'tdes' }),
      'CRYPTO_KEY_LENGTH',
      'key: TDES-CMAC needs a 16- or 24-byte key, got 32',
    ],
    [
      'AES-CMAC key length',
      () => macCmac(new Uint8Array(8), data, { cipher: 'aes' }),
      'CRYPTO_KEY_LENGTH',
      'key: AES-CMAC needs a 16-, 24- or 32-byte key, got 8',
    ],
    [
      'CMAC takes no padding',
      () => generateMac('cmac', k16, data, { cipher: 'aes', padding: 2 }),
      'CRYPTO_PARAM',
      'padding: CMAC pads by its own rule (SP 800-38B §6.2); padding does not apply',
    ],
    [
      'CUP ECB key length',
      () => generateMac('cup-ecb', new Uint8Array(24), data),
      'CRYPTO_KEY_LENGTH',
      'key: CUP POS MAC key (MAK) must be 8 (single length) or 16 bytes (double length), got 24',
    ],
    [
      'CUP ECB takes no padding',
      () => generateMac('cup-ecb', k16, data, { padding: 1 }),
      'CRYPTO_PARAM',
      'padding: the CUP ECB MAC always zero-pads; padding does not apply',
    ],
    [
      'CUP ECB takes no cipher',
      () => generateMac('cup-ecb', k16, data, { cipher: 'tdes' }),
      'CRYPTO_PARAM',
      'cipher: the CUP ECB MAC cipher follows the MAK length; cipher does not apply',
    ],
    [
      'MAC length below 4',
      () => generateMac('iso9797-1-3', k16, data, { length: 3 }),
      'CRYPTO_PARAM',
      'length: MAC length must be an integer from 4 to 8 bytes',
    ],
    [
      'MAC length above the TDES block',
      () => generateMac('iso9797-1-1', k16, data, { length: 9 }),
      'CRYPTO_PARAM',
      'length: MAC length must be an integer from 4 to 8 bytes',
    ],
    [
      'MAC length above the AES block',
      () => generateMac('cmac', k16, data, { cipher: 'aes', length: 17 }),
      'CRYPTO_PARAM',
      'length: MAC length must be an integer from 4 to 16 bytes',
    ],
    [
      'MAC length not an integer',
      () => generateMac('cmac', k16, data, { cipher: 'tdes', length: 6.5 }),
      'CRYPTO_PARAM',
      'length: MAC length must be an integer from 4 to 8 bytes',
    ],
    [
      'CUP ECB MAC length above 8 characters',
      () => macCupEcb(fromHex('2222222222222222'), data, { length: 9 }),
      'CRYPTO_PARAM',
      'length: MAC length must be an integer from 4 to 8 bytes',
    ],
  ];
  for (const [name, fn, code, message] of cases) test(name, () => expectError(fn, code, message));

  test('programmer misuse: non-bytes key, data or MAC is a TypeError', () => {
    assert.throws(() => macX919('00' as unknown as Uint8Array, data), TypeError);
    assert.throws(() => macCupEcb(fromHex('2222222222222222'), 'MAB' as unknown as Uint8Array), TypeError);
    assert.throws(
      () => verifyMac('cmac', k16, data, 'AB' as unknown as Uint8Array, { cipher: 'aes' }),
      TypeError,
    );
  });
});
