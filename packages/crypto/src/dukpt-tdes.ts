/**
 * TDES DUKPT, ANSI X9.24-1:2009 Annex A (the same algorithm is ANSI X9.24-3:2017 Annex C).
 *
 * Host side (the receiving SCD, e.g. the HSM): derive the initial PIN encryption key (IPEK) from the
 * base derivation key (BDK) and the key serial number (KSN), then the transaction key for any
 * counter, then the working-key variants.
 *
 * Device side (the originating SCD, e.g. the PIN pad): `DukptTdesDevice`, the 21 future key
 * registers and the procedures of A.2 ("Load Initial Key", "Request PIN Entry", "New Key",
 * "New Key-1" to "New Key-4").
 *
 * DUKPT needs one single-DES (or TDES) operation per key step and every step has a new key, so
 * this file carries its own table-driven DES core (FIPS 46-3): a node:crypto cipher object per
 * block costs more than the whole DES computation. The core is checked against node:crypto in
 * test/dukpt-tdes.test.ts.
 */
import { concat, wipe } from './bytes.js';
import { CryptoError } from './errors.js';

// ---------------------------------------------------------------------------------------------
// DES core (FIPS 46-3). Tables are the standard's, the fast tables are built from them at load.
// ---------------------------------------------------------------------------------------------

// FIPS 46-3 "Initial Permutation IP"
const IP = [
  58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, 62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40,
  32, 24, 16, 8, 57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3, 61, 53, 45, 37, 29, 21, 13, 5,
  63, 55, 47, 39, 31, 23, 15, 7,
];
// FIPS 46-3 "Primitive function P"
const P = [
  16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10, 2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22,
  11, 4, 25,
];
// FIPS 46-3 Appendix "Permuted Choice 1" (C then D) and "Permuted Choice 2"
const PC1 = [
  57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
  63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, 14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4,
];
const PC2 = [
  14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2, 41, 52, 31, 37, 47,
  55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
];
// FIPS 46-3 key schedule: left shifts per iteration
const SHIFTS = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];
// FIPS 46-3 "Selection functions" S1..S8, each 4 rows of 16
const S = [
  '14 4 13 1 2 15 11 8 3 10 6 12 5 9 0 7 0 15 7 4 14 2 13 1 10 6 12 11 9 5 3 8 4 1 14 8 13 6 2 11 15 12 9 7 3 10 5 0 15 12 8 2 4 9 1 7 5 11 3 14 10 0 6 13',
  '15 1 8 14 6 11 3 4 9 7 2 13 12 0 5 10 3 13 4 7 15 2 8 14 12 0 1 10 6 9 11 5 0 14 7 11 10 4 13 1 5 8 12 6 9 3 2 15 13 8 10 1 3 15 4 2 11 6 7 12 0 5 14 9',
  '10 0 9 14 6 3 15 5 1 13 12 7 11 4 2 8 13 7 0 9 3 4 6 10 2 8 5 14 12 11 15 1 13 6 4 9 8 15 3 0 11 1 2 12 5 10 14 7 1 10 13 0 6 9 8 7 4 15 14 3 11 5 2 12',
  '7 13 14 3 0 6 9 10 1 2 8 5 11 12 4 15 13 8 11 5 6 15 0 3 4 7 2 12 1 10 14 9 10 6 9 0 12 11 7 13 15 1 3 14 5 2 8 4 3 15 0 6 10 1 13 8 9 4 5 11 12 7 2 14',
  '2 12 4 1 7 10 11 6 8 5 3 15 13 0 14 9 14 11 2 12 4 7 13 1 5 0 15 10 3 9 8 6 4 2 1 11 10 13 7 8 15 9 12 5 6 3 0 14 11 8 12 7 1 14 2 13 6 15 0 9 10 4 5 3',
  '12 1 10 15 9 2 6 8 0 13 3 4 14 7 5 11 10 15 4 2 7 12 9 5 6 1 13 14 0 11 3 8 9 14 15 5 2 8 12 3 7 0 4 10 1 13 11 6 4 3 2 12 9 5 15 10 11 14 1 7 6 0 8 13',
  '4 11 2 14 15 0 8 13 3 12 9 7 5 10 6 1 13 0 11 7 4 9 1 10 14 3 5 12 2 15 8 6 1 4 11 13 12 3 7 14 10 15 6 8 0 5 9 2 6 11 13 8 1 4 10 7 9 5 0 15 14 2 3 12',
  '13 2 8 4 6 15 11 1 10 9 3 14 5 0 12 7 1 15 13 8 10 3 7 4 12 5 6 11 0 14 9 2 7 11 4 1 9 12 14 2 0 6 10 13 15 3 5 8 2 1 14 7 4 10 8 13 15 12 9 0 3 5 6 11',
].map((row) => row.split(' ').map(Number));

/** Bit `pos` (1 = leftmost) of a 64-bit value held as two 32-bit halves. */
function bit64(hi: number, lo: number, pos: number): number {
  return pos <= 32 ? (hi >>> (32 - pos)) & 1 : (lo >>> (64 - pos)) & 1;
}

/**
 * A 64-bit permutation as byte tables: out(x) = OR over the 8 input bytes of T[byte index][byte value],
 * so a permutation costs 8 lookups per output half instead of 64 bit moves.
 */
function permutationTables(table: number[]): [Int32Array, Int32Array] {
  const hiT = new Int32Array(8 * 256);
  const loT = new Int32Array(8 * 256);
  for (let b = 0; b < 8; b++) {
    for (let v = 0; v < 256; v++) {
      const inHi = b < 4 ? v << (24 - 8 * b) : 0;
      const inLo = b >= 4 ? v << (24 - 8 * (b - 4)) : 0;
      let h = 0;
      let l = 0;
      for (let i = 0; i < 64; i++) {
        const x = bit64(inHi, inLo, table[i]!);
        if (i < 32) h |= x << (31 - i);
        else l |= x << (63 - i);
      }
      hiT[b * 256 + v] = h;
      loT[b * 256 + v] = l;
    }
  }
  return [hiT, loT];
}

const FP: number[] = new Array(64);
for (let i = 0; i < 64; i++) FP[IP[i]! - 1] = i + 1; // FIPS 46-3: the final permutation is IP^-1
const [IP_HI, IP_LO] = permutationTables(IP);
const [FP_HI, FP_LO] = permutationTables(FP);

// SP[box][6-bit input] = P(S-box output placed in its nibble): the S and P steps of f in one lookup.
const SP: Int32Array[] = [];
for (let box = 0; box < 8; box++) {
  const t = new Int32Array(64);
  for (let v = 0; v < 64; v++) {
    const row = ((v >> 4) & 2) | (v & 1);
    const col = (v >> 1) & 15;
    const s = S[box]![row * 16 + col]! << (28 - 4 * box);
    let out = 0;
    for (let i = 0; i < 32; i++) out |= ((s >>> (32 - P[i]!)) & 1) << (31 - i);
    t[v] = out;
  }
  SP.push(t);
}

// Key schedule tables. PC1 maps the 8 key bytes to C (28 bits) and D (28 bits); PC2 maps C and D, in
// four 7-bit slices each, to the 8 six-bit groups of a round key (groups 0-3 come from C, 4-7 from D).
const PC1_C = new Int32Array(8 * 256);
const PC1_D = new Int32Array(8 * 256);
for (let b = 0; b < 8; b++) {
  for (let v = 0; v < 256; v++) {
    let c = 0;
    let d = 0;
    for (let i = 0; i < 56; i++) {
      const src = PC1[i]! - 1;
      if (src >> 3 === b && (v >> (7 - (src & 7))) & 1) {
        if (i < 28) c |= 1 << (27 - i);
        else d |= 1 << (55 - i);
      }
    }
    PC1_C[b * 256 + v] = c;
    PC1_D[b * 256 + v] = d;
  }
}
// PC2 tables give each round key as two words in the layout the round function uses: W0 holds the
// six-bit groups of S-boxes 1, 3, 5, 7 and W1 those of boxes 2, 4, 6, 8, each in the top six bits of
// a byte (see feistel). C only feeds boxes 1-4 (the top 16 bits of W0 and W1) and D only boxes
// 5-8 (the low 16 bits), so one 32-bit entry carries a slice's bits for both words:
// C entry = W0[31..16] | W1[31..16] >>> 16; D entry = W0[15..0] << 16 | W1[15..0].
// Index: [C or D][slice 0..3 of 7 bits][7-bit value].
const PC2_T = new Int32Array(2 * 4 * 128);
for (let half = 0; half < 2; half++) {
  for (let slice = 0; slice < 4; slice++) {
    for (let v = 0; v < 128; v++) {
      let w0 = 0;
      let w1 = 0;
      for (let i = 0; i < 48; i++) {
        const src = PC2[i]! - 1; // 0..55 over C|D
        if ((src < 28 ? 0 : 1) !== half) continue;
        const pos = src - 28 * half; // 0..27 from the left of C or D
        if (((pos / 7) | 0) !== slice || ((v >> (6 - (pos % 7))) & 1) === 0) continue;
        const box = (i / 6) | 0; // 0..7
        const shift = 26 - 8 * (box >> 1) + (5 - (i % 6));
        if ((box & 1) === 0) w0 |= 1 << shift;
        else w1 |= 1 << shift;
      }
      PC2_T[(half * 4 + slice) * 128 + v] =
        half === 0 ? (w0 & 0xffff0000) | (w1 >>> 16) : (w0 << 16) | (w1 & 0xffff);
    }
  }
}

/**
 * The eight SP tables in one array (box n at 64 * n): one base pointer in the round loop. Entries
 * are rotated right by one bit, as the rounds keep both halves rotated (see feistel).
 */
const SPT = new Int32Array(512);
for (let box = 0; box < 8; box++) {
  for (let v = 0; v < 64; v++) {
    const x = SP[box]![v]!;
    SPT[64 * box + v] = (x >>> 1) | (x << 31);
  }
}

/** Output of the word-level DES functions. Module scratch, read right after each call. */
const OUT = new Int32Array(4);

/**
 * Left rotation (within 28 bits) of C and D before each round, FIPS 46-3 key schedule. Encryption
 * uses the standard's shifts. Decryption needs the round keys backwards: K16 is C0 D0 itself (the
 * shifts add up to 28), and each earlier key is a right rotation by that round's shift, i.e. a left
 * rotation by 28 minus it.
 */
const ROT_ENC = Int32Array.from(SHIFTS);
const ROT_DEC = Int32Array.from(SHIFTS, (_, i) => (i === 0 ? 0 : 28 - SHIFTS[16 - i]!));

/**
 * FIPS 46-3 f(R, K): E expansion XOR the round key, S-boxes and P through the SP tables.
 *
 * E expansion by rotation: R rotated right by 1 has the six input bits of S-boxes 1, 3, 5, 7 in the
 * top six bits of its four bytes, R rotated left by 3 those of boxes 2, 4, 6, 8; the round key comes
 * as two words (k0, k1) in the same layout (see PC2_T). The rounds hold both halves rotated right
 * by 1 (rotation commutes with XOR), so `rr` is already the first of these words and the SPT
 * entries come out rotated the same way: one rotation per round instead of two.
 */
function feistel(rr: number, k0: number, k1: number): number {
  const u = rr ^ k0;
  const v = ((rr << 4) | (rr >>> 28)) ^ k1;
  return (
    SPT[u >>> 26]! |
    SPT[128 + ((u >>> 18) & 63)]! |
    SPT[256 + ((u >>> 10) & 63)]! |
    SPT[384 + ((u >>> 2) & 63)]! |
    SPT[64 + (v >>> 26)]! |
    SPT[192 + ((v >>> 18) & 63)]! |
    SPT[320 + ((v >>> 10) & 63)]! |
    SPT[448 + ((v >>> 2) & 63)]!
  );
}

/** FIPS 46-3 PC-1 through byte tables `tc`, `td` (PC1_C/PC1_D or their IP-domain twins); C in OUT[0], D in OUT[1]. */
function pc1(hi: number, lo: number, tc: Int32Array, td: Int32Array): void {
  const b0 = (hi >>> 24) & 255;
  const b1 = 256 + ((hi >>> 16) & 255);
  const b2 = 512 + ((hi >>> 8) & 255);
  const b3 = 768 + (hi & 255);
  const b4 = 1024 + ((lo >>> 24) & 255);
  const b5 = 1280 + ((lo >>> 16) & 255);
  const b6 = 1536 + ((lo >>> 8) & 255);
  const b7 = 1792 + (lo & 255);
  OUT[0] = tc[b0]! | tc[b1]! | tc[b2]! | tc[b3]! | tc[b4]! | tc[b5]! | tc[b6]! | tc[b7]!;
  OUT[1] = td[b0]! | td[b1]! | td[b2]! | td[b3]! | td[b4]! | td[b5]! | td[b6]! | td[b7]!;
}

/**
 * The 16 rounds on (l, r) after IP, under the key whose PC-1 halves are (c, d); the round keys are
 * made on the fly (FIPS 46-3 key schedule: rotate C and D, then PC-2), so no schedule is written
 * to memory (nothing to wipe, and DUKPT has a new key at every step). `decrypt` walks the keys
 * backwards. Leaves the pre-output block [R16, L16] in OUT[0..1] (FIPS 46-3: the halves are
 * swapped before IP^-1).
 */
function desRounds(l: number, r: number, c: number, d: number, decrypt: boolean): void {
  const rot = decrypt ? ROT_DEC : ROT_ENC;
  l = (l >>> 1) | (l << 31); // halves held rotated right by 1 (see feistel)
  r = (r >>> 1) | (r << 31);
  for (let i = 0; i < 16; i++) {
    const s = rot[i]!;
    c = ((c << s) | (c >>> (28 - s))) & 0x0fffffff;
    d = ((d << s) | (d >>> (28 - s))) & 0x0fffffff;
    const cw =
      PC2_T[(c >>> 21) & 127]! |
      PC2_T[128 + ((c >>> 14) & 127)]! |
      PC2_T[256 + ((c >>> 7) & 127)]! |
      PC2_T[384 + (c & 127)]!;
    const dw =
      PC2_T[512 + ((d >>> 21) & 127)]! |
      PC2_T[640 + ((d >>> 14) & 127)]! |
      PC2_T[768 + ((d >>> 7) & 127)]! |
      PC2_T[896 + (d & 127)]!;
    const t = l ^ feistel(r, (cw & 0xffff0000) | (dw >>> 16), (cw << 16) | (dw & 0xffff));
    l = r;
    r = t;
  }
  OUT[0] = (r << 1) | (r >>> 31);
  OUT[1] = (l << 1) | (l >>> 31);
}

/**
 * Two blocks at once: lane A under the key (c, d) as in `desRounds`, lane B under the key whose
 * schedule is that of A XOR `kb` (the key schedule is a bit selection, so the schedule of K XOR M
 * is schedule(K) XOR schedule(M)). With kb = KS_C0_* lane B runs under K XOR C0C0C0C000000000,
 * the DUKPT key variant; with kb = KS_ZERO both lanes share the key. One round key serves both
 * lanes, and the two independent Feistel chains overlap in the CPU. Pre-outputs in OUT[0..1] (A)
 * and OUT[2..3] (B).
 */
function desRoundsPair(
  la: number,
  ra: number,
  lb: number,
  rb: number,
  c: number,
  d: number,
  decrypt: boolean,
  kb: Int32Array,
): void {
  const rot = decrypt ? ROT_DEC : ROT_ENC;
  la = (la >>> 1) | (la << 31); // halves held rotated right by 1 (see feistel)
  ra = (ra >>> 1) | (ra << 31);
  lb = (lb >>> 1) | (lb << 31);
  rb = (rb >>> 1) | (rb << 31);
  for (let i = 0; i < 16; i++) {
    const s = rot[i]!;
    c = ((c << s) | (c >>> (28 - s))) & 0x0fffffff;
    d = ((d << s) | (d >>> (28 - s))) & 0x0fffffff;
    const cw =
      PC2_T[(c >>> 21) & 127]! |
      PC2_T[128 + ((c >>> 14) & 127)]! |
      PC2_T[256 + ((c >>> 7) & 127)]! |
      PC2_T[384 + (c & 127)]!;
    const dw =
      PC2_T[512 + ((d >>> 21) & 127)]! |
      PC2_T[640 + ((d >>> 14) & 127)]! |
      PC2_T[768 + ((d >>> 7) & 127)]! |
      PC2_T[896 + (d & 127)]!;
    const k0 = (cw & 0xffff0000) | (dw >>> 16);
    const k1 = (cw << 16) | (dw & 0xffff);
    const ta = la ^ feistel(ra, k0, k1);
    const tb = lb ^ feistel(rb, k0 ^ kb[2 * i]!, k1 ^ kb[2 * i + 1]!);
    la = ra;
    ra = ta;
    lb = rb;
    rb = tb;
  }
  OUT[0] = (ra << 1) | (ra >>> 31);
  OUT[1] = (la << 1) | (la >>> 31);
  OUT[2] = (rb << 1) | (rb >>> 31);
  OUT[3] = (lb << 1) | (lb >>> 31);
}

function ipApply(hi: number, lo: number): void {
  OUT[0] =
    IP_HI[(hi >>> 24) & 255]! |
    IP_HI[256 + ((hi >>> 16) & 255)]! |
    IP_HI[512 + ((hi >>> 8) & 255)]! |
    IP_HI[768 + (hi & 255)]! |
    IP_HI[1024 + ((lo >>> 24) & 255)]! |
    IP_HI[1280 + ((lo >>> 16) & 255)]! |
    IP_HI[1536 + ((lo >>> 8) & 255)]! |
    IP_HI[1792 + (lo & 255)]!;
  OUT[1] =
    IP_LO[(hi >>> 24) & 255]! |
    IP_LO[256 + ((hi >>> 16) & 255)]! |
    IP_LO[512 + ((hi >>> 8) & 255)]! |
    IP_LO[768 + (hi & 255)]! |
    IP_LO[1024 + ((lo >>> 24) & 255)]! |
    IP_LO[1280 + ((lo >>> 16) & 255)]! |
    IP_LO[1536 + ((lo >>> 8) & 255)]! |
    IP_LO[1792 + (lo & 255)]!;
}

function fpApply(hi: number, lo: number): void {
  OUT[0] =
    FP_HI[(hi >>> 24) & 255]! |
    FP_HI[256 + ((hi >>> 16) & 255)]! |
    FP_HI[512 + ((hi >>> 8) & 255)]! |
    FP_HI[768 + (hi & 255)]! |
    FP_HI[1024 + ((lo >>> 24) & 255)]! |
    FP_HI[1280 + ((lo >>> 16) & 255)]! |
    FP_HI[1536 + ((lo >>> 8) & 255)]! |
    FP_HI[1792 + (lo & 255)]!;
  OUT[1] =
    FP_LO[(hi >>> 24) & 255]! |
    FP_LO[256 + ((hi >>> 16) & 255)]! |
    FP_LO[512 + ((hi >>> 8) & 255)]! |
    FP_LO[768 + (hi & 255)]! |
    FP_LO[1024 + ((lo >>> 24) & 255)]! |
    FP_LO[1280 + ((lo >>> 16) & 255)]! |
    FP_LO[1536 + ((lo >>> 8) & 255)]! |
    FP_LO[1792 + (lo & 255)]!;
}

/**
 * PC-1 tables for a key held in the IP domain (as IP(key)): PC1(IP^-1(x)). Both steps are bit
 * selections, so their composition is one, and the DUKPT counter walk can keep the left key half
 * through IP from one step to the next instead of undoing IP at every step.
 */
const PC1_IP_C = new Int32Array(8 * 256);
const PC1_IP_D = new Int32Array(8 * 256);
for (let b = 0; b < 8; b++) {
  for (let v = 0; v < 256; v++) {
    fpApply(b < 4 ? v << (24 - 8 * b) : 0, b >= 4 ? v << (24 - 8 * (b - 4)) : 0);
    pc1(OUT[0]!, OUT[1]!, PC1_C, PC1_D);
    PC1_IP_C[b * 256 + v] = OUT[0]!;
    PC1_IP_D[b * 256 + v] = OUT[1]!;
  }
}

/** A key schedule written out (two words per round, see PC2_T): only for the constant keys below. */
function scheduleOf(hi: number, lo: number, decrypt: boolean): Int32Array {
  pc1(hi, lo, PC1_C, PC1_D);
  let c = OUT[0]!;
  let d = OUT[1]!;
  const rot = decrypt ? ROT_DEC : ROT_ENC;
  const ks = new Int32Array(32);
  for (let i = 0; i < 16; i++) {
    const s = rot[i]!;
    c = ((c << s) | (c >>> (28 - s))) & 0x0fffffff;
    d = ((d << s) | (d >>> (28 - s))) & 0x0fffffff;
    const cw =
      PC2_T[(c >>> 21) & 127]! |
      PC2_T[128 + ((c >>> 14) & 127)]! |
      PC2_T[256 + ((c >>> 7) & 127)]! |
      PC2_T[384 + (c & 127)]!;
    const dw =
      PC2_T[512 + ((d >>> 21) & 127)]! |
      PC2_T[640 + ((d >>> 14) & 127)]! |
      PC2_T[768 + ((d >>> 7) & 127)]! |
      PC2_T[896 + (d & 127)]!;
    ks[2 * i] = (cw & 0xffff0000) | (dw >>> 16);
    ks[2 * i + 1] = (cw << 16) | (dw & 0xffff);
  }
  return ks;
}

/**
 * The schedule of the DES key C0C0C0C000000000 (X9.24-1:2009 A.2 and A.6 key variant), in
 * encryption and in decryption order, for lane B of `desRoundsPair`; and the zero schedule.
 */
const KS_C0_ENC = scheduleOf(0xc0c0c0c0 | 0, 0, false);
const KS_C0_DEC = scheduleOf(0xc0c0c0c0 | 0, 0, true);
const KS_ZERO = new Int32Array(32);

/**
 * ANSI X9.52 TDEA of (hi, lo): E(K3, D(K2, E(K1, x))), or its inverse, the keys given by their
 * PC-1 halves; result in OUT[0..1]. Between the three DES passes IP and IP^-1 cancel, so only the
 * half swap of the pre-output remains.
 */
function tdesWords(
  c1: number,
  d1: number,
  c2: number,
  d2: number,
  c3: number,
  d3: number,
  decrypt: boolean,
  hi: number,
  lo: number,
): void {
  ipApply(hi, lo);
  if (!decrypt) {
    desRounds(OUT[0]!, OUT[1]!, c1, d1, false);
    desRounds(OUT[0]!, OUT[1]!, c2, d2, true);
    desRounds(OUT[0]!, OUT[1]!, c3, d3, false);
  } else {
    desRounds(OUT[0]!, OUT[1]!, c3, d3, true);
    desRounds(OUT[0]!, OUT[1]!, c2, d2, false);
    desRounds(OUT[0]!, OUT[1]!, c1, d1, true);
  }
  fpApply(OUT[0]!, OUT[1]!);
}

function readU32(b: Uint8Array, o: number): number {
  return (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
}

function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 255;
  b[o + 2] = (v >>> 8) & 255;
  b[o + 3] = v & 255;
}

/** ECB over whole 8-byte blocks with a DES (8), 2-key (16) or 3-key (24) TDES key. */
function desEcb(key: Uint8Array, data: Uint8Array, decrypt: boolean): Uint8Array {
  pc1(readU32(key, 0), readU32(key, 4), PC1_C, PC1_D);
  const c1 = OUT[0]!;
  const d1 = OUT[1]!;
  let c2 = 0;
  let d2 = 0;
  let c3 = c1;
  let d3 = d1;
  if (key.length > 8) {
    pc1(readU32(key, 8), readU32(key, 12), PC1_C, PC1_D);
    c2 = OUT[0]!;
    d2 = OUT[1]!;
  }
  if (key.length === 24) {
    pc1(readU32(key, 16), readU32(key, 20), PC1_C, PC1_D);
    c3 = OUT[0]!;
    d3 = OUT[1]!;
  }
  const out = new Uint8Array(data.length);
  for (let o = 0; o < data.length; o += 8) {
    const hi = readU32(data, o);
    const lo = readU32(data, o + 4);
    if (key.length > 8) {
      tdesWords(c1, d1, c2, d2, c3, d3, decrypt, hi, lo);
    } else {
      ipApply(hi, lo);
      desRounds(OUT[0]!, OUT[1]!, c1, d1, decrypt);
      fpApply(OUT[0]!, OUT[1]!);
    }
    writeU32(out, o, OUT[0]!);
    writeU32(out, o + 4, OUT[1]!);
  }
  OUT.fill(0);
  return out;
}

/** Local fast DES/TDES ECB (no argument checks: callers in this file pass checked lengths). */
export function dukptDesEcbEncrypt(key: Uint8Array, data: Uint8Array): Uint8Array {
  return desEcb(key, data, false);
}
export function dukptDesEcbDecrypt(key: Uint8Array, data: Uint8Array): Uint8Array {
  return desEcb(key, data, true);
}

// ---------------------------------------------------------------------------------------------
// KSN
// ---------------------------------------------------------------------------------------------

/** X9.24-1:2009 A.1: an 80-bit KSN = 59-bit initial KSN (key set ID, TRSM ID) + 21-bit counter. */
export const DUKPT_TDES_KSN_LENGTH = 10;
/** X9.24-1:2009 A.1: the encryption counter is the rightmost 21 bits. */
export const DUKPT_TDES_COUNTER_BITS = 21;
export const DUKPT_TDES_COUNTER_MASK = 0x1fffff;
/** X9.24-1:2009 A.3: a device never uses a counter with more than 10 "one" bits. */
export const DUKPT_TDES_MAX_ONE_BITS = 10;
/** The last counter a device uses: ten one bits in the leftmost positions (X9.24-1:2009 A.2 "New Key-4"). */
export const DUKPT_TDES_LAST_COUNTER = 0x1ff800;

export function assertKsnTdes(ksn: Uint8Array, field = 'ksn'): void {
  if (!(ksn instanceof Uint8Array)) throw new TypeError(`${field} must be a Uint8Array`);
  if (ksn.length !== DUKPT_TDES_KSN_LENGTH) {
    throw new CryptoError(
      'CRYPTO_KSN_INVALID',
      field,
      `must be 10 bytes (20 hex digits) for TDES DUKPT, got ${ksn.length}`,
    );
  }
}

/** The 21-bit encryption counter of a KSN. */
export function counterOfKsnTdes(ksn: Uint8Array): number {
  assertKsnTdes(ksn);
  return ((ksn[7]! & 0x1f) << 16) | (ksn[8]! << 8) | ksn[9]!;
}

/** A copy of `ksn` with its counter replaced by `counter`. */
export function withCounterTdes(ksn: Uint8Array, counter: number): Uint8Array {
  assertKsnTdes(ksn);
  const out = ksn.slice();
  out[7] = (out[7]! & 0xe0) | ((counter >>> 16) & 0x1f);
  out[8] = (counter >>> 8) & 0xff;
  out[9] = counter & 0xff;
  return out;
}

export function popcount32(x: number): number {
  let v = x >>> 0;
  let n = 0;
  while (v) {
    v &= v - 1;
    n++;
  }
  return n;
}

/**
 * Throws CRYPTO_KSN_INVALID unless the counter is one a device can send (X9.24-1:2009 A.3): not zero
 * (zero is the initial key itself) and at most 10 one bits. A host may call it to refuse KSNs that no
 * genuine device produces.
 */
export function assertCounterUsableTdes(ksn: Uint8Array, field = 'ksn'): void {
  const counter = counterOfKsnTdes(ksn);
  if (counter === 0) throw new CryptoError('CRYPTO_KSN_INVALID', field, 'counter must not be 0');
  const ones = popcount32(counter);
  if (ones > DUKPT_TDES_MAX_ONE_BITS) {
    throw new CryptoError(
      'CRYPTO_KSN_INVALID',
      field,
      `counter has ${ones} one bits, at most ${DUKPT_TDES_MAX_ONE_BITS} are allowed (X9.24-1 A.3)`,
    );
  }
}

function assertDoubleLengthKey(key: Uint8Array, field: string, what: string): void {
  if (!(key instanceof Uint8Array)) throw new TypeError(`${field} must be a Uint8Array`);
  if (key.length !== 16) {
    throw new CryptoError(
      'CRYPTO_KEY_LENGTH',
      field,
      `${what} must be 16 bytes (double-length TDES) for TDES DUKPT, got ${key.length}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------------------------

/** The key variant C0C0C0C000000000C0C0C0C000000000 (X9.24-1:2009 A.2, A.6), per 32-bit word. */
const C0 = 0xc0c0c0c0 | 0;

/** A double-length key as 4 big-endian words (KL hi, KL lo, KR hi, KR lo). Module scratch. */
const KEY = new Int32Array(4);

function keyToWords(key: Uint8Array, off: number, k: Int32Array): void {
  k[0] = readU32(key, off);
  k[1] = readU32(key, off + 4);
  k[2] = readU32(key, off + 8);
  k[3] = readU32(key, off + 12);
}

function wordsToBytes(k: Int32Array, out: Uint8Array, off: number): void {
  writeU32(out, off, k[0]!);
  writeU32(out, off + 4, k[1]!);
  writeU32(out, off + 8, k[2]!);
  writeU32(out, off + 12, k[3]!);
}

/** Takes the result out of KEY as bytes and wipes the module scratch. */
function takeKey(): Uint8Array {
  const out = new Uint8Array(16);
  wordsToBytes(KEY, out, 0);
  KEY.fill(0);
  OUT.fill(0);
  return out;
}

/** Both halves of `k` through IP (the DUKPT walk works in the IP domain, see walkCounterIp). */
function keyToIp(k: Int32Array): void {
  ipApply(k[0]!, k[1]!);
  k[0] = OUT[0]!;
  k[1] = OUT[1]!;
  ipApply(k[2]!, k[3]!);
  k[2] = OUT[0]!;
  k[3] = OUT[1]!;
}

/** Both halves of `k` back through IP^-1. */
function keyFromIp(k: Int32Array): void {
  fpApply(k[0]!, k[1]!);
  k[0] = OUT[0]!;
  k[1] = OUT[1]!;
  fpApply(k[2]!, k[3]!);
  k[2] = OUT[0]!;
  k[3] = OUT[1]!;
}

/**
 * X9.24-1:2009 A.6 "Derivation of the Initial Key" into `k`, held in the IP domain (each half as
 * IP(half)): the leftmost 64 bits of the KSN with the counter cleared, TDES-encrypted under the BDK
 * (left half) and under BDK XOR C0C0C0C000000000C0C0C0C000000000 (right half). Both encryptions
 * run side by side in one pass (the second key's schedule is the first's XOR that of C0C0C0C0...).
 * The halves are left as pre-outputs, which are IP of the ciphertexts.
 */
function ipekIp(bdk: Uint8Array, ksn: Uint8Array, k: Int32Array): void {
  pc1(readU32(bdk, 0), readU32(bdk, 4), PC1_C, PC1_D);
  const c1 = OUT[0]!;
  const d1 = OUT[1]!;
  pc1(readU32(bdk, 8), readU32(bdk, 12), PC1_C, PC1_D);
  const c2 = OUT[0]!;
  const d2 = OUT[1]!;
  ipApply(readU32(ksn, 0), readU32(ksn, 4) & 0xffffffe0); // counter bits of byte 7 cleared
  const x0 = OUT[0]!;
  const x1 = OUT[1]!;
  desRoundsPair(x0, x1, x0, x1, c1, d1, false, KS_C0_ENC);
  desRoundsPair(OUT[0]!, OUT[1]!, OUT[2]!, OUT[3]!, c2, d2, true, KS_C0_DEC);
  desRoundsPair(OUT[0]!, OUT[1]!, OUT[2]!, OUT[3]!, c1, d1, false, KS_C0_ENC);
  k[0] = OUT[0]!;
  k[1] = OUT[1]!;
  k[2] = OUT[2]!;
  k[3] = OUT[3]!;
}

/** IP of the right-half variant C0C0C0C000000000. */
ipApply(C0, 0);
const IP_C0_HI = OUT[0]!;
const IP_C0_LO = OUT[1]!;

/**
 * X9.24-1:2009 A.2 "Non-reversible Key Generation Process", in place on the Key Register `k`, with
 * Crypto Register-1 given through IP as (cp0, cp1):
 *   CR2 = DES(KL, CR1 ^ KR) ^ KR;  K ^= C0C0...;  CR1 = DES(KL', CR1 ^ KR') ^ KR';  key = CR1 | CR2.
 * `k` and the crypto register stay in the IP domain: IP is a bit permutation, so it commutes with
 * XOR, and IP(DES(K, x)) is the pre-output of the rounds on IP(x). So no permutation is needed at
 * all, PC-1 reads the left key half through IP (PC1_IP_*), and both DES operations run side by side
 * under one round-key computation (KL' = KL ^ C0C0C0C000000000 is lane B of desRoundsPair).
 */
function keyGenStepIp(k: Int32Array, cp0: number, cp1: number): void {
  const kr0 = k[2]!;
  const kr1 = k[3]!;
  const m0 = kr0 ^ IP_C0_HI;
  const m1 = kr1 ^ IP_C0_LO;
  pc1(k[0]!, k[1]!, PC1_IP_C, PC1_IP_D);
  desRoundsPair(cp0 ^ kr0, cp1 ^ kr1, cp0 ^ m0, cp1 ^ m1, OUT[0]!, OUT[1]!, false, KS_C0_ENC);
  k[0] = OUT[2]! ^ m0;
  k[1] = OUT[3]! ^ m1;
  k[2] = OUT[0]! ^ kr0;
  k[3] = OUT[1]! ^ kr1;
}

/** IP of each counter bit alone (bit n of the KSN's last word): IP is linear, so IP(x | bit) = IP(x) ^ IP(bit). */
const IP_COUNTER_BIT = new Int32Array(2 * DUKPT_TDES_COUNTER_BITS);
for (let n = 0; n < DUKPT_TDES_COUNTER_BITS; n++) {
  ipApply(0, 1 << n);
  IP_COUNTER_BIT[2 * n] = OUT[0]!;
  IP_COUNTER_BIT[2 * n + 1] = OUT[1]!;
}

/**
 * From the key of counter `from` in `k` (IP domain), the key of counter `to` (whose one bits include
 * those of `from`): for each further one bit, from the left, set it in the KSN register and run the
 * non-reversible key generation process. Crypto Register-1 is the rightmost 64 bits of the KSN
 * register (bytes 2..9), kept through IP and updated one counter bit at a time.
 */
function walkCounterIp(k: Int32Array, ksn: Uint8Array, from: number, to: number): void {
  ipApply(readU32(ksn, 2), (readU32(ksn, 6) & ~DUKPT_TDES_COUNTER_MASK) | from);
  let cp0 = OUT[0]!;
  let cp1 = OUT[1]!;
  for (let n = DUKPT_TDES_COUNTER_BITS - 1; n >= 0; n--) {
    const bit = 1 << n;
    if ((to & bit) === 0 || (from & bit) !== 0) continue;
    cp0 ^= IP_COUNTER_BIT[2 * n]!;
    cp1 ^= IP_COUNTER_BIT[2 * n + 1]!;
    keyGenStepIp(k, cp0, cp1);
  }
}

/** X9.24-1:2009 A.6: the IPEK (initial key) of the device whose KSN is `ksn`. */
export function deriveIpekTdes(bdk: Uint8Array, ksn: Uint8Array): Uint8Array {
  assertDoubleLengthKey(bdk, 'bdk', 'BDK');
  assertKsnTdes(ksn);
  ipekIp(bdk, ksn, KEY);
  keyFromIp(KEY);
  return takeKey();
}

/**
 * The transaction key ("current key") for the KSN's counter, from the IPEK: X9.24-1:2009 A.3 / A.2
 * applied at the host, walking the counter's one bits from the leftmost. Any 21-bit counter is
 * accepted (use `assertCounterUsableTdes` to refuse counters a device never sends).
 */
export function deriveTransactionKeyTdes(ipek: Uint8Array, ksn: Uint8Array): Uint8Array {
  assertDoubleLengthKey(ipek, 'ipek', 'IPEK');
  const counter = counterOfKsnTdes(ksn);
  keyToWords(ipek, 0, KEY);
  keyToIp(KEY);
  walkCounterIp(KEY, ksn, 0, counter);
  keyFromIp(KEY);
  return takeKey();
}

/** BDK and KSN to the transaction key (IPEK, then the counter walk). */
export function deriveTransactionKeyFromBdkTdes(bdk: Uint8Array, ksn: Uint8Array): Uint8Array {
  assertDoubleLengthKey(bdk, 'bdk', 'BDK');
  const counter = counterOfKsnTdes(ksn);
  ipekIp(bdk, ksn, KEY);
  walkCounterIp(KEY, ksn, 0, counter);
  keyFromIp(KEY);
  return takeKey();
}

/** Working-key usages of TDES DUKPT (request = device to host, response = host to device). */
export type DukptTdesUsage = 'pin' | 'mac' | 'mac-response' | 'data' | 'data-response';
export const DUKPT_TDES_USAGES: readonly DukptTdesUsage[] = [
  'pin',
  'mac',
  'mac-response',
  'data',
  'data-response',
];

/**
 * X9.24-1:2009 A.4.1 Table A-1 (and X9.24-3:2017 C.5.2 Table 5): the variant of each usage, as
 * [word of each half, mask]; both halves take the same mask.
 */
const VARIANT: Record<DukptTdesUsage, readonly [number, number]> = {
  pin: [1, 0x000000ff], // 00000000000000FF 00000000000000FF
  mac: [1, 0x0000ff00], // 000000000000FF00 000000000000FF00 (MAC, request or both ways)
  'mac-response': [1, 0xff000000 | 0], // 00000000FF000000 00000000FF000000
  data: [1, 0x00ff0000], // 0000000000FF0000 0000000000FF0000 (data, request or both ways)
  'data-response': [0, 0x000000ff], // 000000FF00000000 000000FF00000000
};

function assertUsageTdes(usage: string): asserts usage is DukptTdesUsage {
  if (typeof usage !== 'string' || !Object.hasOwn(VARIANT, usage)) {
    throw new CryptoError(
      'CRYPTO_ALGORITHM',
      'usage',
      `unknown TDES DUKPT key usage (expected ${DUKPT_TDES_USAGES.join(', ')})`,
    );
  }
}

/**
 * The working key of `usage`, in place on `k`. PIN and MAC keys are the variant (X9.24-1:2009
 * A.4.1); a data encryption key is the variant TDES-encrypted under itself, each half separately
 * (X9.24-1:2009 A.4.1 "Data Encryption", the one-way function of the 2009 edition).
 */
function applyVariant(k: Int32Array, usage: DukptTdesUsage): void {
  const [w, mask] = VARIANT[usage];
  k[w]! ^= mask;
  k[2 + w]! ^= mask;
  if (usage === 'data' || usage === 'data-response') {
    // both halves are TDES-encrypted under the same key: two lanes of desRoundsPair, no variant
    pc1(k[0]!, k[1]!, PC1_C, PC1_D);
    const c1 = OUT[0]!;
    const d1 = OUT[1]!;
    pc1(k[2]!, k[3]!, PC1_C, PC1_D);
    const c2 = OUT[0]!;
    const d2 = OUT[1]!;
    keyToIp(k);
    desRoundsPair(k[0]!, k[1]!, k[2]!, k[3]!, c1, d1, false, KS_ZERO);
    desRoundsPair(OUT[0]!, OUT[1]!, OUT[2]!, OUT[3]!, c2, d2, true, KS_ZERO);
    desRoundsPair(OUT[0]!, OUT[1]!, OUT[2]!, OUT[3]!, c1, d1, false, KS_ZERO);
    k[0] = OUT[0]!;
    k[1] = OUT[1]!;
    k[2] = OUT[2]!;
    k[3] = OUT[3]!;
    keyFromIp(k);
  }
}

/** The working key of `usage` from a transaction key (see `applyVariant`). */
export function deriveWorkingKeyFromTransactionKeyTdes(
  txnKey: Uint8Array,
  usage: DukptTdesUsage,
): Uint8Array {
  assertDoubleLengthKey(txnKey, 'transactionKey', 'transaction key');
  assertUsageTdes(usage);
  keyToWords(txnKey, 0, KEY);
  applyVariant(KEY, usage);
  return takeKey();
}

/** BDK + KSN to the working key of `usage` (host side). */
export function deriveWorkingKeyTdes(bdk: Uint8Array, ksn: Uint8Array, usage: DukptTdesUsage): Uint8Array {
  assertDoubleLengthKey(bdk, 'bdk', 'BDK');
  assertUsageTdes(usage);
  const counter = counterOfKsnTdes(ksn);
  ipekIp(bdk, ksn, KEY);
  walkCounterIp(KEY, ksn, 0, counter);
  keyFromIp(KEY);
  applyVariant(KEY, usage);
  return takeKey();
}

/**
 * Host side PIN step in one call: derive the PIN key for `ksn` and TDES-ECB decrypt the 8-byte
 * encrypted PIN block. The caller decodes the clear PIN block (pinblock.ts) and wipes it.
 */
export function decryptPinBlockTdes(
  bdk: Uint8Array,
  ksn: Uint8Array,
  encryptedPinBlock: Uint8Array,
): Uint8Array {
  assertDoubleLengthKey(bdk, 'bdk', 'BDK');
  if (!(encryptedPinBlock instanceof Uint8Array))
    throw new TypeError('encryptedPinBlock must be a Uint8Array');
  if (encryptedPinBlock.length !== 8) {
    throw new CryptoError(
      'CRYPTO_DATA_LENGTH',
      'encryptedPinBlock',
      `must be 8 bytes (one TDES block), got ${encryptedPinBlock.length}`,
    );
  }
  const counter = counterOfKsnTdes(ksn);
  ipekIp(bdk, ksn, KEY);
  walkCounterIp(KEY, ksn, 0, counter);
  keyFromIp(KEY);
  applyVariant(KEY, 'pin');
  pc1(KEY[0]!, KEY[1]!, PC1_C, PC1_D);
  const c1 = OUT[0]!;
  const d1 = OUT[1]!;
  pc1(KEY[2]!, KEY[3]!, PC1_C, PC1_D);
  const c2 = OUT[0]!;
  const d2 = OUT[1]!;
  tdesWords(c1, d1, c2, d2, c1, d1, true, readU32(encryptedPinBlock, 0), readU32(encryptedPinBlock, 4));
  const out = new Uint8Array(8);
  writeU32(out, 0, OUT[0]!);
  writeU32(out, 4, OUT[1]!);
  OUT.fill(0);
  KEY.fill(0);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Device side: X9.24-1:2009 A.2
// ---------------------------------------------------------------------------------------------

/** The keys of one device transaction (X9.24-1:2009 A.2 "Request PIN Entry 2" and A.4.1 variants). */
export class DukptTdesTransaction {
  /** The KSN to send with this transaction (initial KSN + the counter used). */
  readonly ksn: Uint8Array;
  readonly counter: number;
  readonly #key: Uint8Array;

  constructor(ksn: Uint8Array, counter: number, transactionKey: Uint8Array) {
    this.ksn = ksn;
    this.counter = counter;
    this.#key = transactionKey;
  }

  /** The working key of `usage` for this transaction (a new buffer: wipe it after use). */
  workingKey(usage: DukptTdesUsage): Uint8Array {
    return deriveWorkingKeyFromTransactionKeyTdes(this.#key, usage);
  }

  /** A copy of the transaction key itself (the "current key"). */
  transactionKey(): Uint8Array {
    return this.#key.slice();
  }

  /** Overwrites the transaction key. */
  wipe(): void {
    wipe(this.#key);
  }

  toString(): string {
    return `DukptTdesTransaction(counter ${this.counter})`;
  }

  toJSON(): { counter: number } {
    return { counter: this.counter };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

const STATE_VERSION_TDES = 1;
const FKR_COUNT = 21;
const FKR_SIZE = 17; // 16-byte key + LRC
/** Exported device state: version, KSN register (10), flags (1), 21 future key registers (17 each). */
export const DUKPT_TDES_STATE_LENGTH = 1 + 10 + 1 + FKR_COUNT * FKR_SIZE;

/** The LRC on a future key register (X9.24-1:2009 A.1 "Future Key Registers"): XOR of its 16 bytes. */
function lrc(key: Uint8Array, off: number): number {
  let x = 0;
  for (let i = 0; i < 16; i++) x ^= key[off + i]!;
  return x;
}

/** Register index 0..20 of the single one bit `sr` (#1 = leftmost counter bit, stored at index 0). */
function registerIndex(sr: number): number {
  return DUKPT_TDES_COUNTER_BITS - 1 - (31 - Math.clz32(sr));
}

/**
 * The originating device of X9.24-1:2009 A.2. It holds the KSN register and the 21 future key
 * registers (each with its LRC), never the IPEK after loading, and erases each key as soon as it
 * has been used and the keys it seeds have been generated.
 *
 * `exportState()` returns these registers as bytes for persistence: THEY ARE KEYS. The caller must
 * seal them (encrypt and authenticate under a device-bound key) and must not keep an older copy:
 * restoring an old state would reuse transaction keys.
 */
export class DukptTdesDevice {
  /** The KSN register: initial KSN (59 bits) + encryption counter (21 bits). */
  readonly #ksn: Uint8Array;
  /** 21 future key registers of 16 bytes + 1 LRC byte; index 0 is register #1 (counter bit 0x100000). */
  readonly #fkr: Uint8Array;
  #exhausted: boolean;

  private constructor(ksn: Uint8Array, fkr: Uint8Array, exhausted: boolean) {
    this.#ksn = ksn;
    this.#fkr = fkr;
    this.#exhausted = exhausted;
  }

  /**
   * X9.24-1:2009 A.2 "Load Initial Key": the IPEK and the initial KSN (its counter is cleared), then
   * "New Key-3" for every register #1..#21 from the IPEK, which is then erased ("New Key-2"; the
   * IPEK is the key of counter 0 and is never used for a transaction). The first transaction has
   * counter 1.
   */
  static loadInitialKey(ipek: Uint8Array, ksn: Uint8Array): DukptTdesDevice {
    assertDoubleLengthKey(ipek, 'ipek', 'IPEK');
    const ksnReg = withCounterTdes(ksn, 0);
    const fkr = new Uint8Array(FKR_COUNT * FKR_SIZE);
    const device = new DukptTdesDevice(ksnReg, fkr, false);
    const keyReg = ipek.slice();
    device.#generateFutureKeys(keyReg, 0, 1 << (DUKPT_TDES_COUNTER_BITS - 1));
    wipe(keyReg);
    device.#setCounter(1);
    return device;
  }

  /** Restores a device from `exportState()` bytes (see the class comment: they hold keys). */
  static importState(state: Uint8Array): DukptTdesDevice {
    if (!(state instanceof Uint8Array)) throw new TypeError('state must be a Uint8Array');
    if (state.length !== DUKPT_TDES_STATE_LENGTH) {
      throw new CryptoError(
        'CRYPTO_DATA_LENGTH',
        'state',
        `must be ${DUKPT_TDES_STATE_LENGTH} bytes for a TDES DUKPT device, got ${state.length}`,
      );
    }
    if (state[0] !== STATE_VERSION_TDES) {
      throw new CryptoError('CRYPTO_PARAM', 'state.version', `must be ${STATE_VERSION_TDES}`);
    }
    const flags = state[11]!;
    if (flags > 1) throw new CryptoError('CRYPTO_PARAM', 'state.flags', 'must be 0 or 1');
    const ksn = state.slice(1, 11);
    const exhausted = flags === 1;
    if (!exhausted) assertCounterUsableTdes(ksn, 'state.ksn');
    return new DukptTdesDevice(ksn, state.slice(12), exhausted);
  }

  /** The registers as bytes, to persist sealed (see the class comment). */
  exportState(): Uint8Array {
    return concat(
      new Uint8Array([STATE_VERSION_TDES]),
      this.#ksn,
      new Uint8Array([this.#exhausted ? 1 : 0]),
      this.#fkr,
    );
  }

  /** The KSN the next transaction will send (a copy). */
  get ksn(): Uint8Array {
    return this.#ksn.slice();
  }

  /** The counter of the next transaction. */
  get counter(): number {
    return counterOfKsnTdes(this.#ksn);
  }

  /** True once the last counter (0x1FF800) has been used: the device needs a new initial key. */
  get exhausted(): boolean {
    return this.#exhausted;
  }

  /**
   * X9.24-1:2009 A.2 "Request PIN Entry" then "New Key": takes the current key (the future key
   * register of the counter's rightmost one bit), checks its LRC, returns it with the KSN, and
   * prepares the next counter. Throws CRYPTO_DUKPT_EXHAUSTED after the last counter.
   */
  nextTransaction(): DukptTdesTransaction {
    for (;;) {
      if (this.#exhausted) {
        throw new CryptoError(
          'CRYPTO_DUKPT_EXHAUSTED',
          'device',
          'encryption counter is exhausted (X9.24-1 A.2 New Key-4): load a new initial key',
        );
      }
      const counter = this.counter;
      // "Set Bit": the Shift Register takes the counter's rightmost one bit.
      const sr = counter & -counter;
      const off = registerIndex(sr) * FKR_SIZE;
      const ksnOut = this.#ksn.slice();
      if (lrc(this.#fkr, off) !== this.#fkr[off + 16]) {
        // "Request PIN Entry 1": a corrupted register; skip every counter that descends from it.
        this.#eraseRegister(off);
        this.#advance(counter + sr);
        continue;
      }
      const key = this.#fkr.slice(off, off + 16);
      this.#newKey(counter, sr, off, key);
      return new DukptTdesTransaction(ksnOut, counter, key);
    }
  }

  /** Overwrites every register (e.g. on tamper or decommissioning). */
  wipe(): void {
    wipe(this.#fkr);
    this.#exhausted = true;
  }

  toString(): string {
    return `DukptTdesDevice(counter ${this.counter}${this.#exhausted ? ', exhausted' : ''})`;
  }

  toJSON(): { counter: number; exhausted: boolean } {
    return { counter: this.counter, exhausted: this.#exhausted };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }

  /**
   * "New Key": with fewer than 10 one bits, "New Key-1"/"New Key-3" fill the registers right of the
   * current one from the current key, then "New Key-2" erases it and adds one to the counter. With
   * 10 one bits no key may descend from this one, so it is erased and the Shift Register is added
   * to the counter, skipping every counter with more than 10 one bits.
   */
  #newKey(counter: number, sr: number, off: number, key: Uint8Array): void {
    if (popcount32(counter) < DUKPT_TDES_MAX_ONE_BITS) {
      const keyReg = key.slice();
      this.#generateFutureKeys(keyReg, counter, sr >>> 1);
      wipe(keyReg);
      this.#eraseRegister(off);
      this.#advance(counter + 1);
    } else {
      this.#eraseRegister(off);
      this.#advance(counter + sr);
    }
  }

  /** "New Key-3" for the Shift Register values `firstSr`, `firstSr >> 1`, ... 1, from `keyReg`. */
  #generateFutureKeys(keyReg: Uint8Array, counter: number, firstSr: number): void {
    const c0 = readU32(this.#ksn, 2);
    const base = readU32(this.#ksn, 6) & ~DUKPT_TDES_COUNTER_MASK;
    for (let sr = firstSr; sr > 0; sr >>>= 1) {
      keyToWords(keyReg, 0, KEY);
      keyToIp(KEY);
      ipApply(c0, base | counter | sr);
      keyGenStepIp(KEY, OUT[0]!, OUT[1]!);
      keyFromIp(KEY);
      const o = registerIndex(sr) * FKR_SIZE;
      wordsToBytes(KEY, this.#fkr, o);
      this.#fkr[o + 16] = lrc(this.#fkr, o);
    }
    KEY.fill(0);
    OUT.fill(0);
  }

  /** Erases a register and makes its LRC invalid (X9.24-1:2009 A.2 "New Key-2" steps 1-2). */
  #eraseRegister(off: number): void {
    this.#fkr.fill(0, off, off + 16);
    this.#fkr[off + 16] = 0xff; // the LRC of sixteen zero bytes is 00, so FF never verifies
  }

  /** "New Key-4": past the 21-bit counter the device ceases operation. */
  #advance(next: number): void {
    if (next > DUKPT_TDES_COUNTER_MASK) {
      this.#exhausted = true;
      this.#setCounter(0);
      return;
    }
    this.#setCounter(next);
  }

  #setCounter(counter: number): void {
    this.#ksn.set(withCounterTdes(this.#ksn, counter));
  }
}
