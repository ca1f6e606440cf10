/**
 * Block ciphers over node:crypto (OpenSSL 3): DES, TDES (2- and 3-key), AES-128/192/256 and SM4,
 * in ECB and CBC, without padding (payment messages pad by their own rules).
 *
 * - DES: FIPS 46-3. OpenSSL 3 has no single DES in its default provider, so a DES key K runs as
 *   TDES EDE with K|K|K, which is the same permutation (ANSI X9.52 keying option 3).
 * - TDES: ANSI X9.52 / ISO/IEC 18033-3; a 2-key TDES key K1|K2 runs as K1|K2|K1.
 * - AES: FIPS 197. SM4: GB/T 32907-2016.
 * - Modes: ECB and CBC as in NIST SP 800-38A.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { CryptoError } from './errors.js';

export type BlockAlgorithm = 'des' | 'tdes' | 'aes' | 'sm4';
export type CipherMode = 'ecb' | 'cbc';

export const BLOCK_ALGORITHMS: readonly BlockAlgorithm[] = ['des', 'tdes', 'aes', 'sm4'];
export const CIPHER_MODES: readonly CipherMode[] = ['ecb', 'cbc'];

/** Block size in bytes. */
export function blockSize(alg: BlockAlgorithm): 8 | 16 {
  return alg === 'des' || alg === 'tdes' ? 8 : 16;
}

const KEY_LENGTHS: Record<BlockAlgorithm, readonly number[]> = {
  des: [8],
  tdes: [16, 24],
  aes: [16, 24, 32],
  sm4: [16],
};

/** Throws CRYPTO_KEY_LENGTH unless `key` has a length `alg` accepts. */
export function checkKeyLength(alg: BlockAlgorithm, key: Uint8Array, field = 'key'): void {
  const ok = KEY_LENGTHS[alg];
  if (!ok.includes(key.length)) {
    throw new CryptoError(
      'CRYPTO_KEY_LENGTH',
      field,
      `${alg.toUpperCase()} key must be ${ok.join(' or ')} bytes, got ${key.length}`,
    );
  }
}

function checkAlgorithm(alg: string): asserts alg is BlockAlgorithm {
  if (!(BLOCK_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new CryptoError(
      'CRYPTO_ALGORITHM',
      'alg',
      `unknown block cipher (expected ${BLOCK_ALGORITHMS.join(', ')})`,
    );
  }
}

function checkMode(mode: string): asserts mode is CipherMode {
  if (!(CIPHER_MODES as readonly string[]).includes(mode)) {
    throw new CryptoError(
      'CRYPTO_ALGORITHM',
      'mode',
      `unknown cipher mode (expected ${CIPHER_MODES.join(', ')})`,
    );
  }
}

/** The OpenSSL cipher name and the key it takes, expanding DES and 2-key TDES to 3-key EDE. */
function opensslCipher(alg: BlockAlgorithm, mode: CipherMode, key: Uint8Array): [string, Uint8Array] {
  switch (alg) {
    case 'des': {
      const k = new Uint8Array(24);
      k.set(key, 0);
      k.set(key, 8);
      k.set(key, 16);
      return [`des-ede3-${mode}`, k];
    }
    case 'tdes': {
      if (key.length === 24) return [`des-ede3-${mode}`, key];
      const k = new Uint8Array(24);
      k.set(key, 0);
      k.set(key.subarray(0, 8), 16);
      return [`des-ede3-${mode}`, k];
    }
    case 'aes':
      return [`aes-${key.length * 8}-${mode}`, key];
    case 'sm4':
      return [`sm4-${mode}`, key];
  }
}

function run(
  decrypting: boolean,
  alg: BlockAlgorithm,
  mode: CipherMode,
  key: Uint8Array,
  data: Uint8Array,
  iv: Uint8Array | undefined,
): Uint8Array {
  checkAlgorithm(alg);
  checkMode(mode);
  checkKeyLength(alg, key);
  const bs = blockSize(alg);
  if (data.length % bs !== 0) {
    throw new CryptoError(
      'CRYPTO_DATA_LENGTH',
      'data',
      `must be a multiple of the ${bs}-byte ${alg.toUpperCase()} block, got ${data.length} bytes`,
    );
  }
  let ivBytes: Uint8Array | null = null;
  if (mode === 'cbc') {
    ivBytes = iv ?? new Uint8Array(bs);
    if (ivBytes.length !== bs) {
      throw new CryptoError(
        'CRYPTO_IV_LENGTH',
        'iv',
        `must be ${bs} bytes for ${alg.toUpperCase()}, got ${ivBytes.length}`,
      );
    }
  } else if (iv !== undefined && iv.length !== 0) {
    throw new CryptoError('CRYPTO_IV_LENGTH', 'iv', 'ECB takes no IV');
  }
  const [name, k] = opensslCipher(alg, mode, key);
  const c = decrypting ? createDecipheriv(name, k, ivBytes) : createCipheriv(name, k, ivBytes);
  c.setAutoPadding(false);
  const out = Buffer.concat([c.update(data), c.final()]);
  if (k !== key) k.fill(0);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Encrypts whole blocks; CBC's IV defaults to zeros (the payment-industry convention for MAC/key wrapping). */
export function encrypt(
  alg: BlockAlgorithm,
  mode: CipherMode,
  key: Uint8Array,
  data: Uint8Array,
  iv?: Uint8Array,
): Uint8Array {
  return run(false, alg, mode, key, data, iv);
}

/** Decrypts whole blocks; see `encrypt`. */
export function decrypt(
  alg: BlockAlgorithm,
  mode: CipherMode,
  key: Uint8Array,
  data: Uint8Array,
  iv?: Uint8Array,
): Uint8Array {
  return run(true, alg, mode, key, data, iv);
}

/** Single DES ECB (FIPS 46-3), for DUKPT and the retail MAC. */
export const desEncryptEcb = (key: Uint8Array, data: Uint8Array): Uint8Array =>
  encrypt('des', 'ecb', key, data);
export const desDecryptEcb = (key: Uint8Array, data: Uint8Array): Uint8Array =>
  decrypt('des', 'ecb', key, data);
/** TDES ECB with a 16- or 24-byte key. */
export const tdesEncryptEcb = (key: Uint8Array, data: Uint8Array): Uint8Array =>
  encrypt('tdes', 'ecb', key, data);
export const tdesDecryptEcb = (key: Uint8Array, data: Uint8Array): Uint8Array =>
  decrypt('tdes', 'ecb', key, data);
export const tdesEncryptCbc = (key: Uint8Array, data: Uint8Array, iv?: Uint8Array): Uint8Array =>
  encrypt('tdes', 'cbc', key, data, iv);
export const tdesDecryptCbc = (key: Uint8Array, data: Uint8Array, iv?: Uint8Array): Uint8Array =>
  decrypt('tdes', 'cbc', key, data, iv);
export const aesEncryptEcb = (key: Uint8Array, data: Uint8Array): Uint8Array =>
  encrypt('aes', 'ecb', key, data);
export const aesDecryptEcb = (key: Uint8Array, data: Uint8Array): Uint8Array =>
  decrypt('aes', 'ecb', key, data);
export const aesEncryptCbc = (key: Uint8Array, data: Uint8Array, iv?: Uint8Array): Uint8Array =>
  encrypt('aes', 'cbc', key, data, iv);
export const aesDecryptCbc = (key: Uint8Array, data: Uint8Array, iv?: Uint8Array): Uint8Array =>
  decrypt('aes', 'cbc', key, data, iv);
export const sm4EncryptEcb = (key: Uint8Array, data: Uint8Array): Uint8Array =>
  encrypt('sm4', 'ecb', key, data);
export const sm4DecryptEcb = (key: Uint8Array, data: Uint8Array): Uint8Array =>
  decrypt('sm4', 'ecb', key, data);

// --- DES key parity (FIPS 46-3 §"key": the low bit of each byte makes its parity odd) ---

function oddParityByte(b: number): number {
  let x = b & 0xfe;
  let ones = 0;
  for (let v = x; v; v >>= 1) ones += v & 1;
  x |= ones % 2 === 0 ? 1 : 0;
  return x;
}

/** True when every byte of a DES/TDES key has odd parity. */
export function hasOddParity(key: Uint8Array): boolean {
  for (const b of key) if (oddParityByte(b) !== b) return false;
  return true;
}

/** Returns a copy of `key` with each byte's low bit set so that the byte has odd parity. */
export function adjustOddParity(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) out[i] = oddParityByte(key[i]!);
  return out;
}

/** Throws CRYPTO_KEY_PARITY naming the first byte (its position, never its value) without odd parity. */
export function assertOddParity(key: Uint8Array, field = 'key'): void {
  for (let i = 0; i < key.length; i++) {
    if (oddParityByte(key[i]!) !== key[i]) {
      throw new CryptoError('CRYPTO_KEY_PARITY', field, `byte ${i} does not have odd parity`);
    }
  }
}
