/**
 * A seeded pseudo-random generator for replayable fault runs: xoshiro128** (Blackman and Vigna,
 * "Scrambled linear pseudorandom number generators", 2018, reference xoshiro128starstar.c) seeded
 * through splitmix32 so that any 32-bit seed, including 0, gives a non-zero state. Not for keys or
 * anything secret: node:crypto is the only source of key material in this repository.
 */

/** One splitmix32 step (the seeding function the xoshiro authors recommend): returns [output, next state]. */
function splitmix32(state: number): [number, number] {
  const s = (state + 0x9e3779b9) >>> 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return [(z ^ (z >>> 16)) >>> 0, s];
}

/** FNV-1a 32 of a label: names a sub-stream (`fork`). */
function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

export interface Prng {
  /** The seed this generator started from (print it to replay a run). */
  readonly seed: number;
  /** Next 32-bit unsigned integer. */
  nextUint32(): number;
  /** A float in [0, 1) with 32 bits of randomness. */
  float(): number;
  /** An integer in [0, n); n a positive safe integer up to 2^32. */
  int(n: number): number;
  /** An integer in [lo, hi] inclusive. */
  between(lo: number, hi: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T;
  /** An independent generator for a named sub-stream (the same seed and label always give the same stream). */
  fork(label: string): Prng;
}

/** xoshiro128** seeded from `seed` (an integer; taken modulo 2^32). */
export function createPrng(seed: number): Prng {
  if (!Number.isSafeInteger(seed)) throw new TypeError('seed must be a safe integer');
  const seed32 = ((seed % 0x1_0000_0000) + 0x1_0000_0000) % 0x1_0000_0000;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let st = seed32;
  for (let i = 0; i < 4; i++) {
    const [out, next] = splitmix32(st);
    st = next;
    if (i === 0) s0 = out;
    else if (i === 1) s1 = out;
    else if (i === 2) s2 = out;
    else s3 = out;
  }
  const nextUint32 = (): number => {
    // xoshiro128**: result = rotl(s1 * 5, 7) * 9; then the linear engine step.
    const result = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s2 = (s2 ^ s0) >>> 0;
    s3 = (s3 ^ s1) >>> 0;
    s1 = (s1 ^ s2) >>> 0;
    s0 = (s0 ^ s3) >>> 0;
    s2 = (s2 ^ t) >>> 0;
    s3 = rotl(s3, 11);
    return result;
  };
  const float = (): number => nextUint32() / 0x1_0000_0000;
  const int = (n: number): number => {
    if (!Number.isSafeInteger(n) || n <= 0 || n > 0x1_0000_0000) throw new RangeError('n must be 1..2^32');
    return Math.floor(float() * n);
  };
  return {
    seed,
    nextUint32,
    float,
    int,
    between: (lo, hi) => lo + int(hi - lo + 1),
    chance: (p) => float() < p,
    pick: <T>(items: readonly T[]): T => {
      if (items.length === 0) throw new RangeError('pick from an empty array');
      return items[int(items.length)]!;
    },
    fork: (label) => createPrng((seed32 ^ fnv1a32(label)) >>> 0),
  };
}
