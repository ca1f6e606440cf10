/**
 * SM3 hash (GB/T 32905-2016), HMAC-SM3 (GM/T 0042-2015 / RFC 2104) and the SM2 digital signature
 * (GB/T 32918.1-2016 and .2-2016, GM/T 0003-2012) on the recommended curve sm2p256v1
 * (GB/T 32918.5-2017) or on any prime curve given as data (e.g. the Fp-256 test curve of
 * GB/T 32918.2 Annex A).
 *
 * Why SM2 is implemented here and not delegated to node:crypto (OpenSSL 3.0.x in Node 20): found
 * by experiment, and kept as tests (test/sm.test.ts, "node:crypto cross-check").
 *  1. `generateKeyPairSync('ec', { namedCurve: 'SM2' })` gives a key of type 'ec' (EVP_PKEY_EC),
 *     not an SM2 key. `crypto.sign(alg, msg, thatKey)` then computes plain ECDSA (X9.62) over the
 *     SM2 curve: with SHA-256 when `alg` is null, with SM3 when it is 'sm3'. No Z_A, and the ECDSA
 *     equation, not SM2's: no SM2 verifier (ours included) accepts these signatures.
 *  2. A key read from DER/PEM (SPKI or PKCS#8 naming the SM2 curve OID 1.2.156.10197.1.301) is an
 *     EVP_PKEY_SM2 (Node reports `asymmetricKeyType` undefined). `crypto.sign(null, msg, key)` and
 *     `crypto.verify(null, ...)` with it run the real SM2 algorithm with e = SM3(Z_A || M), but
 *     Node cannot set the distinguishing identifier (EVP_PKEY_CTX_set1_id / the "distid" parameter
 *     is not exposed) and OpenSSL 3.0 then hashes an EMPTY ID (ENTL = 0000) into Z_A, not the
 *     default "1234567812345678" of GM/T 0009-2012 §10. So node:crypto rejects the published
 *     GM/T 0003.5 Annex A signature (made with the default ID), its own signatures verify
 *     elsewhere only with an empty ID, and the ALICE123@YAHOO.COM example cannot be done at all.
 * Hence sign/verify below are our own bigint arithmetic; node:crypto supplies SM3, HMAC-SM3 and
 * random bytes. Our code with `id: new Uint8Array(0)` interoperates with node:crypto's SM2 both
 * ways, which the tests check.
 *
 * Side channels, said plainly: JavaScript bigint arithmetic is NOT constant time. Signing and key
 * generation use a Montgomery ladder (the same sequence of point operations for every scalar of
 * the same bit length), but the field operations beneath leak timing that depends on the values,
 * including the private key d and the nonce k. Use this signer only where an attacker cannot time
 * many signatures (offline tools, tests, a software HSM in a trusted process); a production HSM
 * signs in hardware. Verification handles only public data and is fine. Bigints cannot be wiped;
 * byte buffers holding secrets are.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { concat, fromAscii, fromHex, toHex, wipe } from './bytes.js';
import { CryptoError } from './errors.js';

// ---------------------------------------------------------------------------------------------
// SM3 and HMAC-SM3
// ---------------------------------------------------------------------------------------------

export const SM3_DIGEST_BYTES = 32;

function checkBytes(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
}

/** SM3 digest (GB/T 32905-2016 §5), 32 bytes; OpenSSL's implementation via node:crypto. */
export function sm3(data: Uint8Array): Uint8Array {
  checkBytes(data, 'data');
  return new Uint8Array(createHash('sm3').update(data).digest());
}

/** HMAC-SM3 (RFC 2104 / ISO/IEC 9797-2 MAC algorithm 2 with SM3, as GM/T 0042-2015 §D.3), 32 bytes. */
export function hmacSm3(key: Uint8Array, data: Uint8Array): Uint8Array {
  checkBytes(key, 'key');
  checkBytes(data, 'data');
  return new Uint8Array(createHmac('sm3', key).update(data).digest());
}

// ---------------------------------------------------------------------------------------------
// Curves as data
// ---------------------------------------------------------------------------------------------

/** A prime-field curve y^2 = x^3 + ax + b over F_p with base point G of prime order n (GB/T 32918.1 §3.2). */
export interface Sm2Curve {
  readonly name: string;
  readonly p: bigint;
  readonly a: bigint;
  readonly b: bigint;
  readonly gx: bigint;
  readonly gy: bigint;
  readonly n: bigint;
  readonly h: bigint;
  /** Bytes of a field element and of a scalar (both curves here: 32). */
  readonly byteLength: number;
}

export interface Sm2CurveHex {
  name: string;
  p: string;
  a: string;
  b: string;
  gx: string;
  gy: string;
  n: string;
  h?: string;
}

const hexToBig = (hex: string, field: string): bigint => bytesToBig(fromHex(hex.replace(/\s+/g, ''), field));

/**
 * Builds a curve from hex parameters and checks what can be checked cheaply: the discriminant
 * 4a^3 + 27b^2 != 0 (GB/T 32918.1 §5.2.2) and G on the curve. Primality of p and n is the
 * caller's promise (the standard curves come with it).
 */
export function defineSm2Curve(hex: Sm2CurveHex): Sm2Curve {
  const p = hexToBig(hex.p, 'curve.p');
  const curve: Sm2Curve = {
    name: hex.name,
    p,
    a: hexToBig(hex.a, 'curve.a'),
    b: hexToBig(hex.b, 'curve.b'),
    gx: hexToBig(hex.gx, 'curve.gx'),
    gy: hexToBig(hex.gy, 'curve.gy'),
    n: hexToBig(hex.n, 'curve.n'),
    h: hex.h === undefined ? 1n : hexToBig(hex.h, 'curve.h'),
    byteLength: Math.ceil(p.toString(16).length / 2),
  };
  const { a, b, gx, gy, n } = curve;
  if (p < 5n || p % 2n === 0n || a >= p || b >= p || n < 3n) {
    throw new CryptoError('CRYPTO_PARAM', 'curve', 'parameters out of range');
  }
  if (md(4n * a * a * a + 27n * b * b, p) === 0n) {
    throw new CryptoError('CRYPTO_PARAM', 'curve', 'singular curve (4a^3 + 27b^2 = 0 mod p)');
  }
  if (!onCurve(curve, gx, gy))
    throw new CryptoError('CRYPTO_PARAM', 'curve', 'base point G is not on the curve');
  return Object.freeze(curve);
}

/** sm2p256v1, the recommended curve of GB/T 32918.5-2017 §2 (GM/T 0003.5-2012). */
export const SM2P256V1: Sm2Curve = defineSm2Curve({
  name: 'sm2p256v1',
  p: 'FFFFFFFE FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF 00000000 FFFFFFFF FFFFFFFF',
  a: 'FFFFFFFE FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF 00000000 FFFFFFFF FFFFFFFC',
  b: '28E9FA9E 9D9F5E34 4D5A9E4B CF6509A7 F39789F5 15AB8F92 DDBCBD41 4D940E93',
  n: 'FFFFFFFE FFFFFFFF FFFFFFFF FFFFFFFF 7203DF6B 21C6052B 53BBF409 39D54123',
  gx: '32C4AE2C 1F198119 5F990446 6A39C994 8FE30BBF F2660BE1 715A4589 334C74C7',
  gy: 'BC3736A2 F4F6779C 59BDCEE3 6B692153 D0A9877C C62A4740 02DF32E5 2139F0A0',
});

/**
 * The 256-bit prime-field test curve of GB/T 32918.2-2016 Annex A.2 (also GM/T 0003.2-2012
 * Annex A and draft-shen-sm2-ecdsa-02): for checking the Annex A example only, never for keys.
 */
export const SM2_TEST_CURVE_FP256: Sm2Curve = defineSm2Curve({
  name: 'sm2-test-fp256',
  p: '8542D69E 4C044F18 E8B92435 BF6FF7DE 45728391 5C45517D 722EDB8B 08F1DFC3',
  a: '787968B4 FA32C3FD 2417842E 73BBFEFF 2F3C848B 6831D7E0 EC65228B 3937E498',
  b: '63E4C6D3 B23B0C84 9CF84241 484BFE48 F61D59A5 B16BA06E 6E12D1DA 27C5249A',
  n: '8542D69E 4C044F18 E8B92435 BF6FF7DD 29772063 0485628D 5AE74EE7 C32E79B7',
  gx: '421DEBD6 1B62EAB6 746434EB C3CC315E 32220B3B ADD50BDC 4C4E6C14 7FEDD43D',
  gy: '0680512B CBB42C07 D47349D2 153B70C4 E5D7FDFC BFA36EA1 A85841B9 E46E09A2',
});

/** The default distinguishing identifier "1234567812345678" (GM/T 0009-2012 §10, GB/T 35276-2017 §10). */
const DEFAULT_ID = fromAscii('1234567812345678');
/** A copy of the default ID for callers; the functions use their own copy, so changing this one changes nothing. */
export const SM2_DEFAULT_ID: Uint8Array = DEFAULT_ID.slice();

/** ENTL is two bytes holding the ID's length in bits (GB/T 32918.2 §5.5), so an ID has at most 8191 bytes. */
export const SM2_ID_MAX_BYTES = 8191;

// ---------------------------------------------------------------------------------------------
// Integer and field arithmetic
// ---------------------------------------------------------------------------------------------

function md(x: bigint, m: bigint): bigint {
  const r = x % m;
  return r < 0n ? r + m : r;
}

function bytesToBig(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt(`0x${toHex(b)}`);
}

function bigToBytes(x: bigint, length: number): Uint8Array {
  return fromHex(x.toString(16).padStart(length * 2, '0'));
}

/** Inverse of a modulo the prime m, by the extended Euclidean algorithm (a != 0 mod m). */
function invert(a: bigint, m: bigint): bigint {
  let [r0, r1] = [md(a, m), m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new Error('invert: not invertible'); // unreachable for a prime modulus and a != 0
  return md(s0, m);
}

function powMod(base: bigint, exp: bigint, m: bigint): bigint {
  let result = 1n;
  let b = md(base, m);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return result;
}

function onCurve(c: Sm2Curve, x: bigint, y: bigint): boolean {
  return md(y * y - (x * x * x + c.a * x + c.b), c.p) === 0n;
}

// ---------------------------------------------------------------------------------------------
// Points in Jacobian coordinates (X, Y, Z) <-> affine (X/Z^2, Y/Z^3); Z = 0 is the point at infinity
// (GB/T 32918.1 Annex A.1.2.3.2).
// ---------------------------------------------------------------------------------------------

type Jacobian = readonly [bigint, bigint, bigint];
const INFINITY: Jacobian = [1n, 1n, 0n];

/** Point doubling for a general a (the test curve's a is not -3). */
function pointDouble(c: Sm2Curve, P: Jacobian): Jacobian {
  const { p, a } = c;
  const [X, Y, Z] = P;
  if (Z === 0n || Y === 0n) return INFINITY;
  const yy = (Y * Y) % p;
  const zz = (Z * Z) % p;
  const s = (4n * X * yy) % p;
  const m = md(3n * X * X + a * ((zz * zz) % p), p);
  const x3 = md(m * m - 2n * s, p);
  const y3 = md(m * (s - x3) - 8n * ((yy * yy) % p), p);
  const z3 = (2n * Y * Z) % p;
  return [x3, y3, z3];
}

function pointAdd(c: Sm2Curve, P: Jacobian, Q: Jacobian): Jacobian {
  const { p } = c;
  const [X1, Y1, Z1] = P;
  const [X2, Y2, Z2] = Q;
  if (Z1 === 0n) return Q;
  if (Z2 === 0n) return P;
  const z1z1 = (Z1 * Z1) % p;
  const z2z2 = (Z2 * Z2) % p;
  const u1 = (X1 * z2z2) % p;
  const u2 = (X2 * z1z1) % p;
  const s1 = (((Y1 * Z2) % p) * z2z2) % p;
  const s2 = (((Y2 * Z1) % p) * z1z1) % p;
  if (u1 === u2) return s1 === s2 ? pointDouble(c, P) : INFINITY;
  const h = md(u2 - u1, p);
  const r = md(s2 - s1, p);
  const hh = (h * h) % p;
  const hhh = (h * hh) % p;
  const v = (u1 * hh) % p;
  const x3 = md(r * r - hhh - 2n * v, p);
  const y3 = md(r * (v - x3) - s1 * hhh, p);
  const z3 = (((Z1 * Z2) % p) * h) % p;
  return [x3, y3, z3];
}

function toAffine(c: Sm2Curve, P: Jacobian): { x: bigint; y: bigint } | null {
  const [X, Y, Z] = P;
  if (Z === 0n) return null;
  const zi = invert(Z, c.p);
  const zi2 = (zi * zi) % c.p;
  return { x: (X * zi2) % c.p, y: (((Y * zi2) % c.p) * zi) % c.p };
}

/**
 * [k]P by a Montgomery ladder over a fixed number of bits (the bit length of n), used with secret
 * scalars: the point-operation sequence does not depend on k's bits, the bigint operations do.
 */
function multiplyLadder(c: Sm2Curve, k: bigint, P: Jacobian): Jacobian {
  let r0: Jacobian = INFINITY;
  let r1: Jacobian = P;
  for (let i = c.n.toString(2).length - 1; i >= 0; i--) {
    if ((k >> BigInt(i)) & 1n) {
      r0 = pointAdd(c, r0, r1);
      r1 = pointDouble(c, r1);
    } else {
      r1 = pointAdd(c, r0, r1);
      r0 = pointDouble(c, r0);
    }
  }
  return r0;
}

/** [u]G + [v]Q by Shamir's trick (joint double-and-add): public scalars only (verification). */
function multiplyTwo(c: Sm2Curve, u: bigint, v: bigint, Q: Jacobian): Jacobian {
  const G: Jacobian = [c.gx, c.gy, 1n];
  const GQ = pointAdd(c, G, Q);
  let R: Jacobian = INFINITY;
  const bits = Math.max(u.toString(2).length, v.toString(2).length);
  for (let i = bits - 1; i >= 0; i--) {
    R = pointDouble(c, R);
    const bu = (u >> BigInt(i)) & 1n;
    const bv = (v >> BigInt(i)) & 1n;
    if (bu && bv) R = pointAdd(c, R, GQ);
    else if (bu) R = pointAdd(c, R, G);
    else if (bv) R = pointAdd(c, R, Q);
  }
  return R;
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

export interface Sm2KeyPair {
  /** d as big-endian bytes, `curve.byteLength` long; a secret: wipe() it when done. */
  privateKey: Uint8Array;
  /** Uncompressed point 04 || x || y (GB/T 32918.1 §4.2.9). */
  publicKey: Uint8Array;
}

export type Sm2PointFormat = 'uncompressed' | 'compressed';

function checkCurve(curve: Sm2Curve): void {
  if (typeof curve !== 'object' || curve === null || typeof curve.p !== 'bigint') {
    throw new TypeError('curve must be an Sm2Curve (see defineSm2Curve)');
  }
}

/** d from bytes, in [1, n-2] as GB/T 32918.1 §6.1 requires (1 + d must be invertible mod n). */
function privateScalar(privateKey: Uint8Array, c: Sm2Curve): bigint {
  checkBytes(privateKey, 'privateKey');
  if (privateKey.length !== c.byteLength) {
    throw new CryptoError(
      'CRYPTO_KEY_LENGTH',
      'privateKey',
      `SM2 private key must be ${c.byteLength} bytes, got ${privateKey.length}`,
    );
  }
  const d = bytesToBig(privateKey);
  if (d < 1n || d > c.n - 2n) {
    throw new CryptoError('CRYPTO_PARAM', 'privateKey', 'must be in [1, n-2] (GB/T 32918.1 §6.1)');
  }
  return d;
}

function encodePoint(c: Sm2Curve, x: bigint, y: bigint, format: Sm2PointFormat): Uint8Array {
  if (format === 'compressed') {
    return concat(Uint8Array.of(y & 1n ? 0x03 : 0x02), bigToBytes(x, c.byteLength));
  }
  return concat(Uint8Array.of(0x04), bigToBytes(x, c.byteLength), bigToBytes(y, c.byteLength));
}

function checkFormat(format: unknown): asserts format is Sm2PointFormat {
  if (format !== 'uncompressed' && format !== 'compressed') {
    throw new CryptoError(
      'CRYPTO_ALGORITHM',
      'format',
      'unknown point format (expected uncompressed or compressed)',
    );
  }
}

/**
 * Decodes and validates a public key (GB/T 32918.1 §4.2.10 point decoding, §6.2.1 public key
 * verification): 04||x||y or 02/03||x, coordinates in [0, p-1], the point on the curve. Q != O
 * holds for any affine point, and [n]Q = O follows from being on the curve when h = 1 (both curves
 * here); for h > 1 it is checked.
 */
function decodePoint(publicKey: Uint8Array, c: Sm2Curve): { x: bigint; y: bigint } {
  checkBytes(publicKey, 'publicKey');
  const L = c.byteLength;
  const bad = (rule: string): CryptoError => new CryptoError('CRYPTO_SIGNATURE_INVALID', 'publicKey', rule);
  if (publicKey.length !== 1 + 2 * L && publicKey.length !== 1 + L) {
    throw bad(`must be ${1 + 2 * L} bytes (04||x||y) or ${1 + L} bytes (02/03||x), got ${publicKey.length}`);
  }
  const prefix = publicKey[0]!;
  const x = bytesToBig(publicKey.subarray(1, 1 + L));
  if (x >= c.p) throw bad('x coordinate is not less than p');
  let y: bigint;
  if (publicKey.length === 1 + 2 * L) {
    if (prefix !== 0x04) throw bad('an uncompressed point must start with 04');
    y = bytesToBig(publicKey.subarray(1 + L));
    if (y >= c.p) throw bad('y coordinate is not less than p');
    if (!onCurve(c, x, y)) throw bad('point is not on the curve');
  } else {
    if (prefix !== 0x02 && prefix !== 0x03) throw bad('a compressed point must start with 02 or 03');
    // Square root for p = 3 mod 4 (GB/T 32918.1 Annex B.1.4 case 1): y = alpha^((p+1)/4).
    if (c.p % 4n !== 3n) throw bad('compressed points are supported only when p = 3 mod 4');
    const alpha = md(x * x * x + c.a * x + c.b, c.p);
    const beta = powMod(alpha, (c.p + 1n) / 4n, c.p);
    if ((beta * beta) % c.p !== alpha) throw bad('x is not the abscissa of a curve point');
    const wantOdd = prefix === 0x03;
    y = (beta & 1n) === (wantOdd ? 1n : 0n) ? beta : md(-beta, c.p);
  }
  if (c.h !== 1n && toAffine(c, multiplyLadder(c, c.n, [x, y, 1n])) !== null) {
    throw bad('point is not in the subgroup of order n');
  }
  return { x, y };
}

/** Random d in [1, n-2] from node:crypto (GB/T 32918.1 §6.1), by rejection sampling; wipes the draw. */
function randomScalar(c: Sm2Curve, max: bigint): bigint {
  const bits = max.toString(2).length;
  const topMask = (1 << (bits % 8 || 8)) - 1;
  const MAX_DRAWS = 128; // each draw succeeds with probability > 1/2; 128 failures mean a broken RNG
  for (let i = 0; i < MAX_DRAWS; i++) {
    const buf = new Uint8Array(randomBytes(c.byteLength));
    buf[0]! &= topMask;
    const v = bytesToBig(buf);
    wipe(buf);
    if (v >= 1n && v <= max) return v;
  }
  throw new Error('randomScalar: the random source keeps returning out-of-range values');
}

/** New key pair on `curve` (GB/T 32918.1 §6.1): d random in [1, n-2], P = [d]G. */
export function generateSm2KeyPair(curve: Sm2Curve = SM2P256V1): Sm2KeyPair {
  checkCurve(curve);
  const d = randomScalar(curve, curve.n - 2n);
  const P = toAffine(curve, multiplyLadder(curve, d, [curve.gx, curve.gy, 1n]))!;
  return {
    privateKey: bigToBytes(d, curve.byteLength),
    publicKey: encodePoint(curve, P.x, P.y, 'uncompressed'),
  };
}

/** The public key [d]G of a private key (GB/T 32918.1 §6.1), uncompressed unless asked otherwise. */
export function deriveSm2PublicKey(
  privateKey: Uint8Array,
  opts: { curve?: Sm2Curve; format?: Sm2PointFormat } = {},
): Uint8Array {
  const curve = opts.curve ?? SM2P256V1;
  checkCurve(curve);
  const format = opts.format ?? 'uncompressed';
  checkFormat(format);
  const d = privateScalar(privateKey, curve);
  const P = toAffine(curve, multiplyLadder(curve, d, [curve.gx, curve.gy, 1n]))!;
  return encodePoint(curve, P.x, P.y, format);
}

/**
 * Validates a public key (either encoding) and re-encodes it in `format`: decompresses 02/03||x to
 * 04||x||y or compresses (GB/T 32918.1 §4.2.9-4.2.10). Throws CRYPTO_SIGNATURE_INVALID when the key
 * is malformed or not a curve point.
 */
export function encodeSm2PublicKey(
  publicKey: Uint8Array,
  format: Sm2PointFormat = 'uncompressed',
  curve: Sm2Curve = SM2P256V1,
): Uint8Array {
  checkCurve(curve);
  checkFormat(format);
  const { x, y } = decodePoint(publicKey, curve);
  return encodePoint(curve, x, y, format);
}

// ---------------------------------------------------------------------------------------------
// Z_A and e
// ---------------------------------------------------------------------------------------------

function checkId(id: Uint8Array): void {
  checkBytes(id, 'id');
  if (id.length > SM2_ID_MAX_BYTES) {
    throw new CryptoError(
      'CRYPTO_PARAM',
      'id',
      `must be at most ${SM2_ID_MAX_BYTES} bytes (ENTL is 16 bits)`,
    );
  }
}

function computeZ(c: Sm2Curve, id: Uint8Array, x: bigint, y: bigint): Uint8Array {
  const bits = id.length * 8;
  const L = c.byteLength;
  return sm3(
    concat(
      Uint8Array.of(bits >> 8, bits & 0xff),
      id,
      bigToBytes(c.a, L),
      bigToBytes(c.b, L),
      bigToBytes(c.gx, L),
      bigToBytes(c.gy, L),
      bigToBytes(x, L),
      bigToBytes(y, L),
    ),
  );
}

/**
 * Z_A = SM3(ENTL_A || ID_A || a || b || x_G || y_G || x_A || y_A) (GB/T 32918.2-2016 §5.5), the
 * hash of the signer's identity that binds an SM2 signature to who signed it. `id` defaults to
 * "1234567812345678" (GM/T 0009-2012 §10).
 */
export function sm2ComputeZ(
  publicKey: Uint8Array,
  id: Uint8Array = DEFAULT_ID,
  curve: Sm2Curve = SM2P256V1,
): Uint8Array {
  checkCurve(curve);
  checkId(id);
  const { x, y } = decodePoint(publicKey, curve);
  return computeZ(curve, id, x, y);
}

/** e = SM3(Z_A || M) (GB/T 32918.2-2016 §6.1 steps A1-A2 and §7.1 steps B3-B4), 32 bytes. */
export function sm2ComputeDigest(
  publicKey: Uint8Array,
  message: Uint8Array,
  opts: { id?: Uint8Array; curve?: Sm2Curve } = {},
): Uint8Array {
  checkBytes(message, 'message');
  return sm3(concat(sm2ComputeZ(publicKey, opts.id ?? DEFAULT_ID, opts.curve ?? SM2P256V1), message));
}

// ---------------------------------------------------------------------------------------------
// Signature encodings
// ---------------------------------------------------------------------------------------------

export type Sm2SignatureFormat = 'raw' | 'der';

function checkSignatureFormat(format: unknown): asserts format is Sm2SignatureFormat {
  if (format !== 'raw' && format !== 'der') {
    throw new CryptoError('CRYPTO_ALGORITHM', 'format', 'unknown signature format (expected raw or der)');
  }
}

function derLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  if (n < 0x100) return Uint8Array.of(0x81, n);
  return Uint8Array.of(0x82, n >> 8, n & 0xff);
}

function derInteger(v: Uint8Array): Uint8Array {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  let body = v.subarray(i);
  if (body[0]! & 0x80) body = concat(Uint8Array.of(0), body);
  return concat(Uint8Array.of(0x02), derLength(body.length), body);
}

function checkRawSignature(raw: Uint8Array, c: Sm2Curve): void {
  checkBytes(raw, 'signature');
  if (raw.length !== 2 * c.byteLength) {
    throw new CryptoError(
      'CRYPTO_SIGNATURE_INVALID',
      'signature',
      `raw signature must be ${2 * c.byteLength} bytes (r||s), got ${raw.length}`,
    );
  }
}

/**
 * r||s -> DER SEQUENCE { r INTEGER, s INTEGER } (GM/T 0009-2012 §7.3 SM2Signature, GB/T 35276-2017;
 * X.690 DER: minimal, positive INTEGERs).
 */
export function encodeSm2SignatureDer(raw: Uint8Array, curve: Sm2Curve = SM2P256V1): Uint8Array {
  checkCurve(curve);
  checkRawSignature(raw, curve);
  const L = curve.byteLength;
  const body = concat(derInteger(raw.subarray(0, L)), derInteger(raw.subarray(L)));
  return concat(Uint8Array.of(0x30), derLength(body.length), body);
}

/**
 * DER SM2Signature -> r||s, strictly (X.690 DER): one SEQUENCE of two minimal non-negative
 * INTEGERs of at most `curve.byteLength` bytes, definite minimal lengths, nothing after.
 * Anything else is CRYPTO_SIGNATURE_INVALID. Range checks of r and s against n belong to
 * verification (a well-formed signature with r = 0 does not verify; it is not malformed).
 */
export function decodeSm2SignatureDer(der: Uint8Array, curve: Sm2Curve = SM2P256V1): Uint8Array {
  checkCurve(curve);
  checkBytes(der, 'signature');
  const L = curve.byteLength;
  const bad = (rule: string): CryptoError => new CryptoError('CRYPTO_SIGNATURE_INVALID', 'signature', rule);
  let pos = 0;
  const readLength = (): number => {
    if (pos >= der.length) throw bad('DER is truncated');
    const first = der[pos++]!;
    if (first < 0x80) return first;
    if (first === 0x81) {
      if (pos >= der.length) throw bad('DER is truncated');
      const n = der[pos++]!;
      if (n < 0x80) throw bad('DER length is not minimally encoded');
      return n;
    }
    throw bad('DER length form is not supported');
  };
  const readInteger = (): Uint8Array => {
    if (pos >= der.length || der[pos] !== 0x02) throw bad('DER INTEGER expected');
    pos++;
    const len = readLength();
    if (len === 0) throw bad('DER INTEGER is empty');
    if (pos + len > der.length) throw bad('DER is truncated');
    const body = der.subarray(pos, pos + len);
    pos += len;
    if (body[0]! & 0x80) throw bad('DER INTEGER is negative');
    if (len > 1 && body[0] === 0 && !(body[1]! & 0x80)) throw bad('DER INTEGER is not minimally encoded');
    const value = body[0] === 0 && len > 1 ? body.subarray(1) : body;
    if (value.length > L) throw bad(`DER INTEGER is longer than ${L} bytes`);
    const out = new Uint8Array(L);
    out.set(value, L - value.length);
    return out;
  };
  if (der.length === 0 || der[0] !== 0x30) throw bad('DER SEQUENCE expected');
  pos = 1;
  const seqLen = readLength();
  if (pos + seqLen !== der.length) throw bad('DER SEQUENCE length does not match the data');
  const r = readInteger();
  const s = readInteger();
  if (pos !== der.length) throw bad('DER SEQUENCE has data after s');
  return concat(r, s);
}

// ---------------------------------------------------------------------------------------------
// Sign and verify
// ---------------------------------------------------------------------------------------------

export interface Sm2SignOptions {
  /** Distinguishing identifier; default "1234567812345678" (GM/T 0009-2012 §10). */
  id?: Uint8Array;
  /** Nonce k in [1, n-1], for known-answer tests only; default: random from node:crypto. */
  k?: bigint;
  curve?: Sm2Curve;
  /** 'raw' r||s (default) or 'der'. */
  format?: Sm2SignatureFormat;
}

export interface Sm2VerifyOptions {
  id?: Uint8Array;
  curve?: Sm2Curve;
  /** Encoding of `signature`: 'raw' r||s (default) or 'der'. */
  format?: Sm2SignatureFormat;
}

/** Bounds the retries of steps A3-A6 with random k; each retry happens with probability ~2^-255. */
const SM2_SIGN_MAX_TRIES = 16;

/**
 * SM2 signature of `message` (GB/T 32918.2-2016 §6.1): e = SM3(Z_A || M); k random in [1, n-1];
 * (x1, y1) = [k]G; r = (e + x1) mod n, retry if r = 0 or r + k = n; s = (1 + d)^-1 (k - r d) mod n,
 * retry if s = 0. Z_A is computed from the public key derived from d, so it cannot be mismatched.
 * Returns r||s (2 x 32 bytes) or DER. Not constant time: see the comment at the top of this file.
 */
export function sm2Sign(privateKey: Uint8Array, message: Uint8Array, opts: Sm2SignOptions = {}): Uint8Array {
  const c = opts.curve ?? SM2P256V1;
  checkCurve(c);
  const id = opts.id ?? DEFAULT_ID;
  checkId(id);
  checkBytes(message, 'message');
  const format = opts.format ?? 'raw';
  checkSignatureFormat(format);
  if (opts.k !== undefined && (typeof opts.k !== 'bigint' || opts.k < 1n || opts.k > c.n - 1n)) {
    throw new CryptoError('CRYPTO_PARAM', 'k', 'must be in [1, n-1] (GB/T 32918.2 §6.1 A3)');
  }
  const d = privateScalar(privateKey, c);
  const G: Jacobian = [c.gx, c.gy, 1n];
  const P = toAffine(c, multiplyLadder(c, d, G))!;
  const eBytes = sm3(concat(computeZ(c, id, P.x, P.y), message)); // A1-A2
  const e = bytesToBig(eBytes);
  const dInv = invert(1n + d, c.n);
  for (let attempt = 0; attempt < SM2_SIGN_MAX_TRIES; attempt++) {
    const k = opts.k ?? randomScalar(c, c.n - 1n); // A3
    const x1 = toAffine(c, multiplyLadder(c, k, G))!.x; // A4 (k in [1, n-1] so [k]G != O)
    const r = md(e + x1, c.n); // A5
    if (r !== 0n && r + k !== c.n) {
      const s = md(dInv * md(k - r * d, c.n), c.n); // A6
      if (s !== 0n) {
        const raw = concat(bigToBytes(r, c.byteLength), bigToBytes(s, c.byteLength)); // A7
        return format === 'der' ? encodeSm2SignatureDer(raw, c) : raw;
      }
    }
    if (opts.k !== undefined) {
      throw new CryptoError('CRYPTO_PARAM', 'k', 'gives r = 0, r + k = n or s = 0; another k is needed');
    }
  }
  throw new Error('sm2Sign: no valid signature after the retry limit (broken random source)');
}

/**
 * SM2 verification (GB/T 32918.2-2016 §7.1): r, s in [1, n-1]; e = SM3(Z_A || M); t = (r + s) mod n
 * != 0; (x1, y1) = [s]G + [t]P_A; accept iff (e + x1) mod n = r. Returns false for a well-formed
 * signature that does not verify; throws CRYPTO_SIGNATURE_INVALID for a malformed public key or
 * signature encoding.
 */
export function sm2Verify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  opts: Sm2VerifyOptions = {},
): boolean {
  const c = opts.curve ?? SM2P256V1;
  checkCurve(c);
  const id = opts.id ?? DEFAULT_ID;
  checkId(id);
  checkBytes(message, 'message');
  const format = opts.format ?? 'raw';
  checkSignatureFormat(format);
  const Q = decodePoint(publicKey, c);
  const raw = format === 'der' ? decodeSm2SignatureDer(signature, c) : signature;
  checkRawSignature(raw, c);
  const r = bytesToBig(raw.subarray(0, c.byteLength));
  const s = bytesToBig(raw.subarray(c.byteLength));
  if (r < 1n || r > c.n - 1n || s < 1n || s > c.n - 1n) return false; // B1, B2
  const e = bytesToBig(sm3(concat(computeZ(c, id, Q.x, Q.y), message))); // B3, B4
  const t = md(r + s, c.n); // B5
  if (t === 0n) return false;
  const X = toAffine(c, multiplyTwo(c, s, t, [Q.x, Q.y, 1n])); // B6
  if (X === null) return false;
  return md(e + X.x, c.n) === r; // B7
}
