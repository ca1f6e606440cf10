import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { concat, fromAscii, fromHex, toHex } from '../src/bytes.js';
import { type CryptoErrorCode, CryptoError } from '../src/errors.js';
import {
  decodeSm2SignatureDer,
  defineSm2Curve,
  deriveSm2PublicKey,
  encodeSm2PublicKey,
  encodeSm2SignatureDer,
  generateSm2KeyPair,
  hmacSm3,
  SM2_DEFAULT_ID,
  SM2_ID_MAX_BYTES,
  SM2_TEST_CURVE_FP256,
  SM2P256V1,
  type Sm2Curve,
  sm2ComputeDigest,
  sm2ComputeZ,
  sm2Sign,
  sm2Verify,
  sm3,
} from '../src/sm.js';
import { label, type Vector, vectors } from './vectors.js';

const CURVES: Record<string, Sm2Curve> = {
  sm2p256v1: SM2P256V1,
  'sm2-test-fp256': SM2_TEST_CURVE_FP256,
};
const curveOf = (v: Vector): Sm2Curve => {
  const c = CURVES[v.curve as string];
  if (!c) throw new Error(`unknown curve ${String(v.curve)}`);
  return c;
};
/** Bytes of a vector input given as `text` (ASCII) or `data` (hex). */
const inputOf = (v: Vector): Uint8Array =>
  typeof v.text === 'string' ? fromAscii(v.text) : fromHex(v.data as string, 'data');

function throwsCrypto(fn: () => unknown, code: CryptoErrorCode, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CryptoError, `expected CryptoError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    return true;
  });
}

const EMPTY_ID = new Uint8Array(0);
const n = SM2P256V1.n;
const big32 = (x: bigint): Uint8Array => fromHex(x.toString(16).padStart(64, '0'));

// The GM/T 0003.5 Annex A key and signature (vectors/sm.json sm2-sign-2), reused below.
const annexA = vectors('sm2_sign').find((v) => v.curve === 'sm2p256v1')!;
const D = fromHex(annexA.privateKey as string);
const PUB = fromHex(annexA.expected.publicKey as string);
const MSG = fromAscii(annexA.message as string);
const SIG = fromHex(`${annexA.expected.r}${annexA.expected.s}`);

describe('SM3 (GB/T 32905-2016 Annex A)', () => {
  for (const v of vectors('sm3')) {
    test(label(v), () => {
      assert.equal(toHex(sm3(inputOf(v))), v.expected.digest);
    });
  }
  test('a digest is 32 bytes and a non-Uint8Array is a TypeError', () => {
    assert.equal(sm3(new Uint8Array(0)).length, 32);
    assert.throws(() => sm3('abc' as unknown as Uint8Array), TypeError);
  });
});

describe('HMAC-SM3 (GM/T 0042-2015 Appendix D.3)', () => {
  for (const v of vectors('hmac_sm3')) {
    test(label(v), () => {
      assert.equal(toHex(hmacSm3(fromHex(v.key as string, 'key'), inputOf(v))), v.expected.mac);
    });
  }
});

describe('SM2 signature known answers (GB/T 32918.2 Annex A, GB/T 32918.5 Annex A)', () => {
  for (const v of vectors('sm2_sign')) {
    test(label(v), () => {
      const curve = curveOf(v);
      const d = fromHex(v.privateKey as string);
      const id = fromAscii(v.userId as string);
      const msg = fromAscii(v.message as string);
      const k = BigInt(`0x${v.k}`);
      const pub = deriveSm2PublicKey(d, { curve });
      assert.equal(toHex(pub), v.expected.publicKey);
      assert.equal(toHex(sm2ComputeZ(pub, id, curve)), v.expected.z);
      assert.equal(toHex(sm2ComputeDigest(pub, msg, { id, curve })), v.expected.e);
      const raw = sm2Sign(d, msg, { id, k, curve });
      assert.equal(toHex(raw), `${v.expected.r}${v.expected.s}`);
      const der = sm2Sign(d, msg, { id, k, curve, format: 'der' });
      assert.equal(toHex(der), v.expected.signatureDer);
      assert.equal(sm2Verify(pub, msg, raw, { id, curve }), true);
      assert.equal(sm2Verify(pub, msg, der, { id, curve, format: 'der' }), true);
      // The identity is part of what is signed: another ID does not verify.
      assert.equal(sm2Verify(pub, msg, raw, { id: fromAscii('BOB'), curve }), false);
    });
  }
  test('the default ID is 1234567812345678 and the default curve sm2p256v1', () => {
    assert.equal(toHex(sm2Sign(D, MSG, { k: BigInt(`0x${annexA.k}`) })), toHex(SIG));
    assert.equal(toHex(sm2ComputeZ(PUB)), annexA.expected.z);
    assert.equal(Buffer.from(SM2_DEFAULT_ID).toString('latin1'), '1234567812345678');
  });
  test('changing the exported SM2_DEFAULT_ID copy does not change the default', () => {
    const saved = SM2_DEFAULT_ID.slice();
    SM2_DEFAULT_ID.fill(0x41);
    try {
      assert.equal(sm2Verify(PUB, MSG, SIG), true);
    } finally {
      SM2_DEFAULT_ID.set(saved);
    }
  });
});

describe('SM2 verification vectors', () => {
  for (const v of vectors('sm2_verify')) {
    test(label(v), () => {
      const curve = curveOf(v);
      const pub = deriveSm2PublicKey(fromHex(v.privateKey as string), { curve });
      const msg = fromAscii(v.message as string);
      const der = fromHex(v.signatureDer as string);
      const id = fromAscii(v.userId as string);
      assert.equal(sm2Verify(pub, msg, der, { id, curve, format: 'der' }), v.expected.valid);
      assert.equal(sm2Verify(pub, msg, decodeSm2SignatureDer(der, curve), { id, curve }), v.expected.valid);
      assert.equal(toHex(encodeSm2SignatureDer(decodeSm2SignatureDer(der))), v.signatureDer);
      assert.equal(sm2Verify(pub, concat(msg, fromAscii('.')), der, { id, curve, format: 'der' }), false);
    });
  }
});

describe('SM2 public keys (GB/T 32918.1 §4.2.9-4.2.10, §6.2.1)', () => {
  for (const v of vectors('sm2_public_key')) {
    test(label(v), () => {
      const key = fromHex(v.publicKey as string);
      if (v.expected.valid) {
        assert.equal(toHex(encodeSm2PublicKey(key, 'uncompressed', curveOf(v))), v.publicKey);
      } else {
        throwsCrypto(
          () => encodeSm2PublicKey(key, 'uncompressed', curveOf(v)),
          v.expected.code as CryptoErrorCode,
          v.expected.message as string,
        );
      }
    });
  }
  test('compress / decompress the Annex A key, both parities', () => {
    const compressed = encodeSm2PublicKey(PUB, 'compressed');
    assert.equal(toHex(compressed), `03${toHex(PUB.subarray(1, 33))}`); // y ends in ...13: odd
    assert.equal(toHex(encodeSm2PublicKey(compressed)), toHex(PUB));
    assert.equal(toHex(deriveSm2PublicKey(D, { format: 'compressed' })), toHex(compressed));
    assert.equal(sm2Verify(compressed, MSG, SIG), true);
    assert.equal(toHex(sm2ComputeZ(compressed)), annexA.expected.z);
  });
  test('property: compress then decompress gives the key back', () => {
    fc.assert(
      fc.property(fc.integer(), () => {
        const { publicKey } = generateSm2KeyPair();
        const c = encodeSm2PublicKey(publicKey, 'compressed');
        assert.equal(c.length, 33);
        assert.equal(toHex(encodeSm2PublicKey(c, 'uncompressed')), toHex(publicKey));
      }),
      { numRuns: 8 },
    );
  });
  test('generated key pairs: 32-byte d in [1, n-2], P = [d]G', () => {
    for (let i = 0; i < 3; i++) {
      const { privateKey, publicKey } = generateSm2KeyPair();
      assert.equal(privateKey.length, 32);
      const d = BigInt(`0x${toHex(privateKey)}`);
      assert.ok(d >= 1n && d <= n - 2n);
      assert.equal(toHex(deriveSm2PublicKey(privateKey)), toHex(publicKey));
    }
  });
});

describe('SM2 sign / verify properties', () => {
  const keys = [generateSm2KeyPair(), generateSm2KeyPair()];
  test('round trip: random message and ID, raw and DER', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...keys),
        fc.uint8Array({ maxLength: 200 }),
        fc.uint8Array({ maxLength: 40 }),
        ({ privateKey, publicKey }, msg, id) => {
          const raw = sm2Sign(privateKey, msg, { id });
          assert.equal(raw.length, 64);
          assert.equal(sm2Verify(publicKey, msg, raw, { id }), true);
          const der = encodeSm2SignatureDer(raw);
          assert.equal(sm2Verify(publicKey, msg, der, { id, format: 'der' }), true);
        },
      ),
      { numRuns: 10 },
    );
  });
  test('tampering with the message, the signature, the ID or the key fails verification', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        (msg, at, bit) => {
          const { privateKey, publicKey } = keys[0]!;
          const sig = sm2Sign(privateKey, msg);
          const m2 = msg.slice();
          m2[at % m2.length]! ^= 1 << bit;
          assert.equal(sm2Verify(publicKey, m2, sig), false);
          const s2 = sig.slice();
          s2[at % 64]! ^= 1 << bit;
          assert.equal(sm2Verify(publicKey, msg, s2), false);
          assert.equal(sm2Verify(publicKey, msg, sig, { id: EMPTY_ID }), false);
          assert.equal(sm2Verify(keys[1]!.publicKey, msg, sig), false);
        },
      ),
      { numRuns: 6 },
    );
  });
  test('two signatures of one message differ (random k)', () => {
    assert.notEqual(toHex(sm2Sign(D, MSG)), toHex(sm2Sign(D, MSG)));
  });
  test('r or s out of [1, n-1], or r + s = n, is well-formed but does not verify (§7.1 B1, B2, B5)', () => {
    const r = SIG.subarray(0, 32);
    const s = SIG.subarray(32);
    const zero = new Uint8Array(32);
    assert.equal(sm2Verify(PUB, MSG, concat(zero, s)), false);
    assert.equal(sm2Verify(PUB, MSG, concat(r, zero)), false);
    assert.equal(sm2Verify(PUB, MSG, concat(big32(n), s)), false);
    assert.equal(sm2Verify(PUB, MSG, concat(r, big32(n))), false);
    assert.equal(sm2Verify(PUB, MSG, concat(big32(n + 5n), s)), false);
    const rInt = BigInt(`0x${toHex(r)}`);
    assert.equal(sm2Verify(PUB, MSG, concat(r, big32(n - rInt))), false);
    // DER of r = 0 (020100) is a valid encoding of a failing signature, not a malformed one.
    const derZero = encodeSm2SignatureDer(concat(zero, s));
    assert.equal(toHex(derZero).slice(0, 10), '3026020100');
    assert.equal(sm2Verify(PUB, MSG, derZero, { format: 'der' }), false);
  });
});

describe('SM2 signature DER (GM/T 0009-2012 SM2Signature, X.690)', () => {
  test('property: decode(encode(r||s)) = r||s, minimal encoding, 8 to 72 bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), (raw) => {
        const der = encodeSm2SignatureDer(raw);
        assert.ok(der.length >= 8 && der.length <= 72);
        assert.equal(toHex(decodeSm2SignatureDer(der)), toHex(raw));
      }),
      { numRuns: 300 },
    );
  });
  test('small values: leading zeros are dropped, zero is 020100', () => {
    const raw = concat(new Uint8Array(31), Uint8Array.of(0x80), new Uint8Array(32));
    assert.equal(toHex(encodeSm2SignatureDer(raw)), '300702020080020100');
  });
  const r32 = '7F'.repeat(32);
  const cases: [string, string, string][] = [
    ['empty', '', 'signature: DER SEQUENCE expected'],
    ['not a SEQUENCE', `31440220${r32}0220${r32}`, 'signature: DER SEQUENCE expected'],
    [
      'SEQUENCE length too long',
      `30450220${r32}0220${r32}`,
      'signature: DER SEQUENCE length does not match the data',
    ],
    ['trailing byte', `30440220${r32}0220${r32}00`, 'signature: DER SEQUENCE length does not match the data'],
    ['only r', `30220220${r32}`, 'signature: DER INTEGER expected'],
    ['s not an INTEGER', `30440220${r32}0420${r32}`, 'signature: DER INTEGER expected'],
    ['extra element', `30470220${r32}0220${r32}020101`, 'signature: DER SEQUENCE has data after s'],
    ['empty INTEGER', `302402000220${r32}`, 'signature: DER INTEGER is empty'],
    ['negative INTEGER', `3006020180020101`, 'signature: DER INTEGER is negative'],
    ['non-minimal INTEGER', `300702020001020101`, 'signature: DER INTEGER is not minimally encoded'],
    [
      'INTEGER longer than 32 bytes',
      `3026022101${'00'.repeat(32)}020101`,
      'signature: DER INTEGER is longer than 32 bytes',
    ],
    ['INTEGER runs past the end', `3006020501020101`, 'signature: DER is truncated'],
    [
      'long-form length 81 with a short value',
      `308106020101020101`,
      'signature: DER length is not minimally encoded',
    ],
    ['length form 82', `30820006020101020101`, 'signature: DER length form is not supported'],
    ['truncated after the tag', `30`, 'signature: DER is truncated'],
  ];
  for (const [name, hex, message] of cases) {
    test(`malformed: ${name}`, () => {
      throwsCrypto(() => decodeSm2SignatureDer(fromHex(hex)), 'CRYPTO_SIGNATURE_INVALID', message);
      throwsCrypto(
        () => sm2Verify(PUB, MSG, fromHex(hex), { format: 'der' }),
        'CRYPTO_SIGNATURE_INVALID',
        message,
      );
    });
  }
  test('raw signature of the wrong length', () => {
    throwsCrypto(
      () => encodeSm2SignatureDer(new Uint8Array(63)),
      'CRYPTO_SIGNATURE_INVALID',
      'signature: raw signature must be 64 bytes (r||s), got 63',
    );
    throwsCrypto(
      () => sm2Verify(PUB, MSG, SIG.subarray(0, 63)),
      'CRYPTO_SIGNATURE_INVALID',
      'signature: raw signature must be 64 bytes (r||s), got 63',
    );
    throwsCrypto(
      () => sm2Verify(PUB, MSG, encodeSm2SignatureDer(SIG)),
      'CRYPTO_SIGNATURE_INVALID',
      'signature: raw signature must be 64 bytes (r||s), got 72',
    );
  });
});

describe('SM2 errors', () => {
  test('private key length and range', () => {
    throwsCrypto(
      () => sm2Sign(new Uint8Array(31), MSG),
      'CRYPTO_KEY_LENGTH',
      'privateKey: SM2 private key must be 32 bytes, got 31',
    );
    for (const d of [0n, n - 1n, n, 2n ** 256n - 1n]) {
      throwsCrypto(
        () => sm2Sign(big32(d), MSG),
        'CRYPTO_PARAM',
        'privateKey: must be in [1, n-2] (GB/T 32918.1 §6.1)',
      );
      throwsCrypto(
        () => deriveSm2PublicKey(big32(d)),
        'CRYPTO_PARAM',
        'privateKey: must be in [1, n-2] (GB/T 32918.1 §6.1)',
      );
    }
    assert.equal(deriveSm2PublicKey(big32(n - 2n)).length, 65);
    assert.equal(
      toHex(deriveSm2PublicKey(big32(1n))),
      `04${SM2P256V1.gx.toString(16).toUpperCase()}${SM2P256V1.gy.toString(16).toUpperCase()}`,
    );
  });
  test('an error message never holds the private key', () => {
    const d = big32(n);
    try {
      sm2Sign(d, MSG);
      assert.fail('should throw');
    } catch (e) {
      assert.ok(!(e as Error).message.includes(toHex(d)));
      assert.ok(!(e as Error).message.toUpperCase().includes('FFFFFFFE'));
    }
  });
  test('k out of [1, n-1]', () => {
    for (const k of [0n, n, -1n]) {
      throwsCrypto(
        () => sm2Sign(D, MSG, { k }),
        'CRYPTO_PARAM',
        'k: must be in [1, n-1] (GB/T 32918.2 §6.1 A3)',
      );
    }
  });
  test('ID longer than 8191 bytes (ENTL is 16 bits)', () => {
    const long = new Uint8Array(SM2_ID_MAX_BYTES + 1);
    const msg = 'id: must be at most 8191 bytes (ENTL is 16 bits)';
    throwsCrypto(() => sm2Sign(D, MSG, { id: long }), 'CRYPTO_PARAM', msg);
    throwsCrypto(() => sm2Verify(PUB, MSG, SIG, { id: long }), 'CRYPTO_PARAM', msg);
    throwsCrypto(() => sm2ComputeZ(PUB, long), 'CRYPTO_PARAM', msg);
    const max = new Uint8Array(SM2_ID_MAX_BYTES).fill(0x41);
    assert.equal(sm2Verify(PUB, MSG, sm2Sign(D, MSG, { id: max }), { id: max }), true);
  });
  test('malformed public keys', () => {
    const x = toHex(PUB.subarray(1, 33));
    const y = toHex(PUB.subarray(33));
    const p = SM2P256V1.p;
    const cases: [string, string][] = [
      [`05${x}${y}`, 'publicKey: an uncompressed point must start with 04'],
      [`04${x}`, 'publicKey: a compressed point must start with 02 or 03'],
      [`04${toHex(big32(p))}${y}`, 'publicKey: x coordinate is not less than p'],
      [`04${x}${toHex(big32(p))}`, 'publicKey: y coordinate is not less than p'],
      [`02${toHex(big32(p + 1n))}`, 'publicKey: x coordinate is not less than p'],
      [`04${x}${toHex(big32(BigInt(`0x${y}`) ^ 1n))}`, 'publicKey: point is not on the curve'],
      [`02${toHex(big32(2n))}`, 'publicKey: x is not the abscissa of a curve point'],
      ['', 'publicKey: must be 65 bytes (04||x||y) or 33 bytes (02/03||x), got 0'],
      [`00`, 'publicKey: must be 65 bytes (04||x||y) or 33 bytes (02/03||x), got 1'],
    ];
    for (const [hex, message] of cases) {
      const key = fromHex(hex);
      throwsCrypto(() => encodeSm2PublicKey(key), 'CRYPTO_SIGNATURE_INVALID', message);
      throwsCrypto(() => sm2Verify(key, MSG, SIG), 'CRYPTO_SIGNATURE_INVALID', message);
      throwsCrypto(() => sm2ComputeZ(key), 'CRYPTO_SIGNATURE_INVALID', message);
    }
  });
  test('unknown formats', () => {
    throwsCrypto(
      () => sm2Sign(D, MSG, { format: 'pem' as 'der' }),
      'CRYPTO_ALGORITHM',
      'format: unknown signature format (expected raw or der)',
    );
    throwsCrypto(
      () => sm2Verify(PUB, MSG, SIG, { format: 'b64' as 'raw' }),
      'CRYPTO_ALGORITHM',
      'format: unknown signature format (expected raw or der)',
    );
    throwsCrypto(
      () => encodeSm2PublicKey(PUB, 'hybrid' as 'compressed'),
      'CRYPTO_ALGORITHM',
      'format: unknown point format (expected uncompressed or compressed)',
    );
  });
  test('programmer misuse is a TypeError', () => {
    assert.throws(() => sm2Sign(D, 'abc' as unknown as Uint8Array), TypeError);
    assert.throws(() => sm2Verify(PUB, MSG, 'sig' as unknown as Uint8Array), TypeError);
    assert.throws(() => hmacSm3('k' as unknown as Uint8Array, MSG), TypeError);
    assert.throws(() => sm2Sign(D, MSG, { curve: {} as Sm2Curve }), TypeError);
  });
});

describe('curves as data', () => {
  // A toy curve y^2 = x^3 + 2x + 2 over F_17, G = (5, 1) of prime order 19 (a textbook example):
  // small enough that every nonce can be tried, which reaches the retry branches of §6.1 A5/A6.
  const toy = defineSm2Curve({ name: 'toy17', p: '11', a: '02', b: '02', gx: '05', gy: '01', n: '13' });
  test('every (d, k) on a toy curve either signs (and verifies) or is refused with the exact error', () => {
    const msg = fromAscii('abc');
    let refused = 0;
    let signed = 0;
    for (let d = 1; d <= Number(toy.n) - 2; d++) {
      const priv = Uint8Array.of(d);
      const pub = deriveSm2PublicKey(priv, { curve: toy });
      for (let k = 1n; k < toy.n; k++) {
        let sig: Uint8Array;
        try {
          sig = sm2Sign(priv, msg, { k, curve: toy });
        } catch (e) {
          assert.ok(e instanceof CryptoError);
          assert.equal(e.code, 'CRYPTO_PARAM');
          assert.equal(e.message, 'k: gives r = 0, r + k = n or s = 0; another k is needed');
          refused++;
          continue;
        }
        signed++;
        // A5 refuses r + k = n, which is exactly t = r + s = 0 (§7.1 B5): every signature verifies.
        assert.equal(sm2Verify(pub, msg, sig, { curve: toy }), true);
        // r + n and s + n name the same residues but are outside [1, n-1] (§7.1 B1, B2): no malleability.
        assert.equal(sm2Verify(pub, msg, Uint8Array.of(sig[0]! + 19, sig[1]!), { curve: toy }), false);
        assert.equal(sm2Verify(pub, msg, Uint8Array.of(sig[0]!, sig[1]! + 19), { curve: toy }), false);
      }
    }
    assert.ok(refused > 0 && signed > 0, `refused ${refused}, signed ${signed}`);
    // Random k retries past the refused ones.
    for (let i = 0; i < 20; i++) assert.equal(sm2Sign(Uint8Array.of(7), msg, { curve: toy }).length, 2);
  });
  test('a forged (r, n - r) never verifies on a toy curve (§7.1 B5: t = 0 is rejected)', () => {
    const pub = deriveSm2PublicKey(Uint8Array.of(7), { curve: toy });
    for (let m = 0; m < 20; m++) {
      for (let r = 1; r < 19; r++) {
        assert.equal(sm2Verify(pub, fromAscii(`m${m}`), Uint8Array.of(r, 19 - r), { curve: toy }), false);
      }
    }
  });
  test('compressed points need p = 3 mod 4', () => {
    throwsCrypto(
      () => encodeSm2PublicKey(Uint8Array.of(0x02, 0x05), 'uncompressed', toy),
      'CRYPTO_SIGNATURE_INVALID',
      'publicKey: compressed points are supported only when p = 3 mod 4',
    );
  });
  test('bad curve parameters', () => {
    throwsCrypto(
      () => defineSm2Curve({ name: 'x', p: '11', a: '02', b: '02', gx: '05', gy: '02', n: '13' }),
      'CRYPTO_PARAM',
      'curve: base point G is not on the curve',
    );
    throwsCrypto(
      () => defineSm2Curve({ name: 'x', p: '11', a: '00', b: '00', gx: '00', gy: '00', n: '13' }),
      'CRYPTO_PARAM',
      'curve: singular curve (4a^3 + 27b^2 = 0 mod p)',
    );
    throwsCrypto(
      () => defineSm2Curve({ name: 'x', p: '11', a: '12', b: '02', gx: '05', gy: '01', n: '13' }),
      'CRYPTO_PARAM',
      'curve: parameters out of range',
    );
  });
});

describe('node:crypto cross-check (what OpenSSL 3 does with SM2; see the comment atop src/sm.ts)', () => {
  // SubjectPublicKeyInfo / PKCS#8 for an EC key on the SM2 curve (OID 1.2.156.10197.1.301).
  const SPKI_PREFIX = fromHex('3059301306072A8648CE3D020106082A811CCF5501822D034200');
  const PKCS8_PREFIX = fromHex('308187020100301306072A8648CE3D020106082A811CCF5501822D046D306B0201010420');
  const nodePublic = createPublicKey({
    key: Buffer.from(concat(SPKI_PREFIX, PUB)),
    format: 'der',
    type: 'spki',
  });
  const nodePrivate = createPrivateKey({
    key: Buffer.from(concat(PKCS8_PREFIX, D, fromHex('A144034200'), PUB)),
    format: 'der',
    type: 'pkcs8',
  });

  test('node sees an SM2 key read from DER as a non-EC key type', () => {
    assert.equal(nodePublic.asymmetricKeyType, undefined);
  });
  test('node rejects the published default-ID signature: it does not use 1234567812345678', () => {
    assert.equal(verify(null, MSG, nodePublic, encodeSm2SignatureDer(SIG)), false);
  });
  test('node verifies our signatures made with an EMPTY ID', () => {
    for (let i = 0; i < 3; i++) {
      const msg = fromAscii(`message ${i}`);
      const der = sm2Sign(D, msg, { id: EMPTY_ID, format: 'der' });
      assert.equal(verify(null, msg, nodePublic, der), true);
      assert.equal(verify(null, msg, nodePublic, sm2Sign(D, msg, { format: 'der' })), false);
    }
  });
  test('node signatures verify with our code under an EMPTY ID only (e = SM3(Z_A || M), ENTL = 0)', () => {
    for (let i = 0; i < 3; i++) {
      const msg = fromAscii(`node message ${i}`);
      const der = new Uint8Array(sign(null, msg, nodePrivate));
      assert.equal(sm2Verify(PUB, msg, der, { id: EMPTY_ID, format: 'der' }), true);
      assert.equal(sm2Verify(PUB, msg, der, { format: 'der' }), false);
    }
  });
  test("generateKeyPairSync('ec', SM2) signs ECDSA, not SM2: no SM2 verifier accepts it", () => {
    const kp = generateKeyPairSync('ec', { namedCurve: 'SM2' });
    assert.equal(kp.privateKey.asymmetricKeyType, 'ec');
    const spki = new Uint8Array(kp.publicKey.export({ format: 'der', type: 'spki' }));
    const pub = spki.subarray(spki.length - 65);
    for (const alg of [null, 'sm3']) {
      const der = new Uint8Array(sign(alg, MSG, kp.privateKey));
      assert.equal(verify(alg, MSG, kp.publicKey, der), true); // node agrees with itself
      assert.equal(sm2Verify(pub, MSG, der, { format: 'der' }), false);
      assert.equal(sm2Verify(pub, MSG, der, { id: EMPTY_ID, format: 'der' }), false);
    }
  });
});
