/**
 * Byte helpers. Bytes are `Uint8Array` inside the library; hex appears only at
 * the edges (CLI, JSON, test vectors). Output hex is upper case.
 */
import { CryptoError } from './errors.js';

const HEX_RE = /^[0-9a-fA-F]*$/;

/** Parses hex (either case) into bytes; `field` names the input in the error. */
export function fromHex(hex: string, field = 'hex'): Uint8Array {
  if (typeof hex !== 'string') throw new TypeError(`${field} must be a string`);
  if (hex.length % 2 !== 0) {
    throw new CryptoError('CRYPTO_HEX_INVALID', field, `odd number of hex digits (${hex.length})`);
  }
  if (!HEX_RE.test(hex)) {
    const at = hex.search(/[^0-9a-fA-F]/);
    throw new CryptoError('CRYPTO_HEX_INVALID', field, `non-hex character at position ${at}`);
  }
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** Upper-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex').toUpperCase();
}

/** `a XOR b`, over the length of the shorter one... unless lengths differ, which is a programming error. */
export function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length !== b.length) throw new RangeError(`xor: lengths differ (${a.length} and ${b.length})`);
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Overwrites a secret buffer with zeros once it is no longer needed. */
export function wipe(...bufs: (Uint8Array | undefined)[]): void {
  for (const b of bufs) b?.fill(0);
}

/** Constant-time equality of two byte strings (lengths are not secret). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** Bytes of an ASCII string (for MAC input and test texts). */
export function fromAscii(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'latin1'));
}

export function toAscii(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}
