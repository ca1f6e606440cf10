/**
 * A bounded LRU cache of unwrapped LMK key blocks, for the commands that run per transaction (PIN
 * translation, PIN verification, MAC), so that a hot TPK or ZPK is not re-authenticated and decrypted
 * (two AES passes and a CMAC) on every request.
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
import { wipe } from '@openposp/crypto';
import type { KeyAttributes } from './keystore.js';

export const KEY_CACHE_ENTRIES_DEFAULT = 1024;

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
  #spec(): [string, Uint8Array] {
    if (this.attrs.algorithm === 'A') return [`aes-${this.key.length * 8}-ecb`, this.key];
    if (this.key.length === 24) return ['des-ede3-ecb', this.key];
    const k = new Uint8Array(24);
    k.set(this.key, 0);
    k.set(this.key.subarray(0, 8), 16);
    return ['des-ede3-ecb', k];
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

  destroy(): void {
    wipe(this.key);
    this.#enc = undefined;
    this.#dec = undefined;
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
