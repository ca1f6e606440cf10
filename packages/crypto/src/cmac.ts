/**
 * CMAC (NIST SP 800-38B; ISO/IEC 9797-1:2011 MAC algorithm 5) over TDES, AES or SM4.
 * Kept apart from mac.ts because key check values (ANSI X9.24-3 §"KCV") and TR-31/X9.143
 * key blocks (version D) use it too.
 */
import { type BlockAlgorithm, blockSize, encrypt } from './cipher.js';

/** SP 800-38B §6.1: doubling in GF(2^b) with Rb = 0x87 (128-bit) or 0x1B (64-bit). */
function dbl(block: Uint8Array): Uint8Array {
  const out = new Uint8Array(block.length);
  let carry = 0;
  for (let i = block.length - 1; i >= 0; i--) {
    const b = block[i]!;
    out[i] = ((b << 1) | carry) & 0xff;
    carry = b >> 7;
  }
  if (carry) out[block.length - 1]! ^= block.length === 16 ? 0x87 : 0x1b;
  return out;
}

/** SP 800-38B §6.1 subkey generation. */
export function cmacSubkeys(alg: BlockAlgorithm, key: Uint8Array): [Uint8Array, Uint8Array] {
  const l = encrypt(alg, 'ecb', key, new Uint8Array(blockSize(alg)));
  const k1 = dbl(l);
  const k2 = dbl(k1);
  l.fill(0);
  return [k1, k2];
}

/** SP 800-38B §6.2: the full-length CMAC tag (truncate with `subarray` as the caller's scheme says). */
export function cmac(alg: BlockAlgorithm, key: Uint8Array, data: Uint8Array): Uint8Array {
  const bs = blockSize(alg);
  const [k1, k2] = cmacSubkeys(alg, key);
  const n = data.length === 0 ? 1 : Math.ceil(data.length / bs);
  const complete = data.length > 0 && data.length % bs === 0;
  const m = new Uint8Array(n * bs);
  m.set(data);
  if (!complete) m[data.length] = 0x80;
  const last = m.subarray((n - 1) * bs);
  const sub = complete ? k1 : k2;
  for (let i = 0; i < bs; i++) last[i]! ^= sub[i]!;
  const c = encrypt(alg, 'cbc', key, m, new Uint8Array(bs));
  const tag = c.slice((n - 1) * bs);
  k1.fill(0);
  k2.fill(0);
  m.fill(0);
  return tag;
}
