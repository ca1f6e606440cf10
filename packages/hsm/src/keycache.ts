/**
 * A bounded LRU cache of unwrapped LMK key blocks, for the commands that run per transaction (PIN
 * translation, PIN verification, MAC, data encryption), so that a hot TPK, ZPK or DEK is not
 * re-authenticated and decrypted (two AES passes and a CMAC) on every request.
 *
 * - Keyed by the key block string itself: a block enters the cache only after its MAC verified under the
 *   LMK, so an entry can only be reached with the exact, authenticated text. Its attributes are checked
 *   against each operation's expectation on every hit, exactly as on a miss (a cached MAC key still
 *   cannot decrypt a PIN block).
 * - Bounded (`maxEntries`): the least recently used entry is evicted and its key wiped.
 * - Each entry keeps its ECB cipher and decipher objects (node:crypto, OpenSSL), created on first use:
 *   with padding off, `update()` of whole blocks returns the result at once and leaves the object ready
 *   for the next call, so one key schedule serves every request. `final()` is never called.
 *
 * Clear keys in this cache live in the HSM process, where keys are in clear anyway; `clear()` wipes them
 * (called when the HSM is destroyed).
 */
import { type Cipher, type Decipher, createCipheriv, createDecipheriv } from 'node:crypto';
import { type MacAlgorithm, type MacOptions, padIso9797, wipe } from '@openposp/crypto';
import type { KeyAttributes } from './keystore.js';

export const KEY_CACHE_ENTRIES_DEFAULT = 1024;

/**
 * A CBC encryptor kept between calls, so that every call is one `update()` with no new key schedule.
 * OpenSSL's CBC state after an update is the last ciphertext block; it is kept in `#last` and XORed
 * (with the call's own IV) into the next call's first clear block, which cancels it: each call is CBC
 * from its own IV (zeros when none is given, as a CBC-MAC starts).
 */
class KeptCbcEncryptor {
  readonly #cipher: Cipher;
  readonly #last: Buffer;

  /** `cipher`: a CBC cipher object with padding off, made with an all-zero IV. */
  constructor(cipher: Cipher, blockBytes: number) {
    this.#cipher = cipher;
    this.#last = Buffer.alloc(blockBytes);
  }

  /** CBC of whole blocks from `iv` (the caller checks the lengths); `data` is not changed. */
  encrypt(data: Uint8Array, iv?: Uint8Array): Buffer {
    const b = this.#last.length;
    const x = Buffer.from(data);
    for (let i = 0; i < b; i++) x[i]! ^= (iv?.[i] ?? 0) ^ this.#last[i]!;
    const out = this.#cipher.update(x);
    out.copy(this.#last, 0, out.length - b);
    wipe(x);
    return out;
  }

  destroy(): void {
    this.#last.fill(0);
  }
}

export class CachedKey {
  readonly key: Uint8Array;
  readonly attrs: KeyAttributes;
  #enc: Cipher | undefined;
  #dec: Decipher | undefined;

  constructor(key: Uint8Array, attrs: KeyAttributes) {
    this.key = key;
    this.attrs = attrs;
  }

  /** The OpenSSL name and key: 2-key TDES as 3-key EDE (K1 K2 K1), AES by length. */
  #spec(mode: 'ecb' | 'cbc' = 'ecb'): [string, Uint8Array] {
    if (this.attrs.algorithm === 'A') return [`aes-${this.key.length * 8}-${mode}`, this.key];
    if (this.key.length === 24) return [`des-ede3-${mode}`, this.key];
    const k = new Uint8Array(24);
    k.set(this.key, 0);
    k.set(this.key.subarray(0, 8), 16);
    return [`des-ede3-${mode}`, k];
  }

  /** The cipher's block: 8 bytes (TDES) or 16 (AES). */
  get blockBytes(): 8 | 16 {
    return this.attrs.algorithm === 'A' ? 16 : 8;
  }

  /** ECB encryption of whole blocks (the caller checks the length). */
  encryptEcb(data: Uint8Array): Uint8Array {
    if (this.#enc === undefined) {
      const [name, k] = this.#spec();
      this.#enc = createCipheriv(name, k, null).setAutoPadding(false);
      if (k !== this.key) wipe(k);
    }
    return this.#enc.update(data);
  }

  /** ECB decryption of whole blocks (the caller checks the length). */
  decryptEcb(data: Uint8Array): Uint8Array {
    if (this.#dec === undefined) {
      const [name, k] = this.#spec();
      this.#dec = createDecipheriv(name, k, null).setAutoPadding(false);
      if (k !== this.key) wipe(k);
    }
    return this.#dec.update(data);
  }

  /**
   * CBC objects kept between calls (data encryption, M0/M2), created once with a zero IV. Encryption
   * is a KeptCbcEncryptor; decryption tracks the last ciphertext block the same way (`#cbcDecLast`)
   * and XORs it, with the request's IV, out of the first clear block.
   */
  #cbcEnc: KeptCbcEncryptor | undefined;
  #cbcDec: Decipher | undefined;
  #cbcDecLast: Buffer | undefined;

  #cbc<T extends Cipher | Decipher>(decrypt: boolean): T {
    const [name, k] = this.#spec('cbc');
    try {
      return (decrypt ? createDecipheriv : createCipheriv)(
        name,
        k,
        Buffer.alloc(this.blockBytes),
      ).setAutoPadding(false) as T;
    } finally {
      if (k !== this.key) wipe(k);
    }
  }

  /** CBC encryption of whole blocks from `iv` (the caller checks the lengths). */
  encryptCbc(data: Uint8Array, iv: Uint8Array): Uint8Array {
    this.#cbcEnc ??= new KeptCbcEncryptor(this.#cbc<Cipher>(false), this.blockBytes);
    const out = this.#cbcEnc.encrypt(data, iv);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }

  /** CBC decryption of whole blocks from `iv` (the caller checks the lengths). */
  decryptCbc(data: Uint8Array, iv: Uint8Array): Uint8Array {
    const b = this.blockBytes;
    if (this.#cbcDec === undefined) {
      this.#cbcDec = this.#cbc<Decipher>(true);
      this.#cbcDecLast = Buffer.alloc(b);
    }
    const last = this.#cbcDecLast!;
    const out = this.#cbcDec.update(data);
    for (let i = 0; i < b; i++) out[i]! ^= iv[i]! ^ last[i]!;
    last.set(data.subarray(data.length - b));
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }

  /**
   * Single-DES objects of the key's halves (DES as EDE with the half repeated), for MAC algorithm 3:
   * K1 in CBC for the chain (a KeptCbcEncryptor: each MAC from a zero IV), K2 (decrypt) and K3 or K1
   * in ECB for the output transformation.
   */
  #cbcK1: KeptCbcEncryptor | undefined;
  #desK1: Cipher | undefined;
  #desK2: Decipher | undefined;
  #desK3: Cipher | undefined;

  #des<T extends Cipher | Decipher>(part: number, mode: 'ecb' | 'cbc', decrypt: boolean): T {
    const half = this.key.subarray(part * 8, part * 8 + 8);
    const k = new Uint8Array(24);
    k.set(half, 0);
    k.set(half, 8);
    k.set(half, 16);
    const iv = mode === 'cbc' ? Buffer.alloc(8) : null;
    try {
      return (decrypt ? createDecipheriv : createCipheriv)(`des-ede3-${mode}`, k, iv).setAutoPadding(
        false,
      ) as T;
    } finally {
      wipe(k);
    }
  }

  /**
   * The per-transaction MACs of a TDES key from this entry's kept cipher objects: ISO/IEC 9797-1 MAC
   * algorithm 3 (X9.19: DES-CBC under K1, then decrypt under K2, encrypt under K3 or K1) and the UnionPay
   * POS ECB MAC (what `@openposp/crypto`'s macIso9797Alg3 and macCupEcb compute; a test holds them
   * equal on random keys and data). Undefined for any other algorithm or key, which the caller computes
   * through `@openposp/crypto`. The caller has validated length and padding.
   */
  macTdes(alg: MacAlgorithm, data: Uint8Array, opts: MacOptions): Uint8Array | undefined {
    if (this.attrs.algorithm !== 'T' || (this.key.length !== 16 && this.key.length !== 24)) return undefined;
    const length = opts.length ?? 8;
    if (alg === 'cup-ecb') {
      // A padding option is refused by @openposp/crypto for this MAC: leave that answer to it.
      if (this.key.length !== 16 || opts.padding !== undefined) return undefined;
      const r = new Uint8Array(8);
      for (let i = 0; i < data.length; i++) r[i & 7]! ^= data[i]!;
      const h = Buffer.from(Buffer.from(r).toString('hex').toUpperCase(), 'latin1');
      const e1 = this.encryptEcb(h.subarray(0, 8));
      for (let i = 0; i < 8; i++) e1[i]! ^= h[8 + i]!;
      const e2 = this.encryptEcb(e1);
      const mac = Buffer.from(Buffer.from(e2).toString('hex').toUpperCase().slice(0, length), 'latin1');
      wipe(r, h, e1, e2);
      return new Uint8Array(mac);
    }
    if (alg !== 'iso9797-1-3') return undefined;
    this.#cbcK1 ??= new KeptCbcEncryptor(this.#des<Cipher>(0, 'cbc', false), 8);
    this.#desK1 ??= this.#des<Cipher>(0, 'ecb', false);
    this.#desK2 ??= this.#des<Decipher>(1, 'ecb', true);
    if (this.key.length === 24) this.#desK3 ??= this.#des<Cipher>(2, 'ecb', false);
    const padded = padIso9797(data, opts.padding ?? 1, 8);
    const chain = this.#cbcK1.encrypt(padded);
    const h = chain.subarray(chain.length - 8);
    const d = this.#desK2.update(h);
    const g = (this.#desK3 ?? this.#desK1).update(d);
    const mac = new Uint8Array(g.subarray(0, length));
    wipe(padded, chain, d, g);
    return mac;
  }

  destroy(): void {
    wipe(this.key);
    this.#enc = undefined;
    this.#dec = undefined;
    this.#cbcK1?.destroy();
    this.#cbcK1 = undefined;
    this.#desK1 = undefined;
    this.#desK2 = undefined;
    this.#desK3 = undefined;
    this.#cbcEnc?.destroy();
    this.#cbcEnc = undefined;
    this.#cbcDec = undefined;
    this.#cbcDecLast?.fill(0);
  }
}

export class KeyCache {
  readonly maxEntries: number;
  readonly #map = new Map<string, CachedKey>();
  hits = 0;
  misses = 0;

  /** `maxEntries` 0 disables caching (every `get` misses, `set` keeps nothing). */
  constructor(maxEntries = KEY_CACHE_ENTRIES_DEFAULT) {
    if (!Number.isInteger(maxEntries) || maxEntries < 0)
      throw new RangeError('keyCacheEntries: must be an integer of 0 or more');
    this.maxEntries = maxEntries;
  }

  get size(): number {
    return this.#map.size;
  }

  get(block: string): CachedKey | undefined {
    const e = this.#map.get(block);
    if (e === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Map keeps insertion order: re-inserting makes this the most recently used.
    this.#map.delete(block);
    this.#map.set(block, e);
    return e;
  }

  /** Adds an entry (a block whose MAC has just verified); evicts and wipes the least recently used. */
  set(block: string, entry: CachedKey): void {
    if (this.maxEntries === 0) return;
    const old = this.#map.get(block);
    if (old !== undefined && old !== entry) old.destroy();
    this.#map.delete(block);
    this.#map.set(block, entry);
    while (this.#map.size > this.maxEntries) {
      const [k, v] = this.#map.entries().next().value as [string, CachedKey];
      this.#map.delete(k);
      v.destroy();
    }
  }

  clear(): void {
    for (const v of this.#map.values()) v.destroy();
    this.#map.clear();
  }
}
