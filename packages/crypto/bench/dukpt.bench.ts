/**
 * DUKPT host-side throughput: derive the PIN key from BDK + KSN, then decrypt one PIN block; the
 * TDES case side by side, in the same run, with npm's `dukpt` package (its constructor derives the
 * key, `dukptDecrypt` decrypts the same block). Both must give the same clear PIN block before
 * anything is timed.
 *
 * Run: `node --import tsx packages/crypto/bench/dukpt.bench.ts` (BENCH_MS sets the budget per case).
 */
import { createRequire } from 'node:module';
import { fromHex, toHex } from '../src/bytes.js';
import { decrypt, encrypt } from '../src/cipher.js';
import { deriveWorkingKeyAes } from '../src/dukpt-aes.js';
import { decryptPinBlockTdes } from '../src/dukpt-tdes.js';
import { type BenchRow, formatRows, measure } from './harness.js';

const budgetMs = Number(process.env.BENCH_MS ?? 1000);

/** The part of npm `dukpt` (v3) this bench uses. */
interface NpmDukpt {
  dukptDecrypt(data: string, options: { decryptionMode: '3DES'; outputEncoding: 'hex' }): string;
}
type NpmDukptCtor = new (bdk: string, ksn: string, keyMode: 'pinkey') => NpmDukpt;

const require = createRequire(import.meta.url);

/**
 * Times two functions in alternating slices (20 slices each over `budgetMs` per function, after
 * the harness warm-up), so that load from other processes on a shared machine falls on both
 * alike and the ratio stays fair.
 */
function measurePair(nameA: string, a: () => unknown, nameB: string, b: () => unknown): [BenchRow, BenchRow] {
  measure(nameA, a, 0);
  measure(nameB, b, 0);
  const slices = 20;
  let sumA = 0;
  let sumB = 0;
  for (let s = 0; s < slices; s++) {
    sumA += measure(nameA, a, budgetMs / slices, 0).opsPerSec;
    sumB += measure(nameB, b, budgetMs / slices, 0).opsPerSec;
  }
  // equal slices, so the mean of the slice rates is the rate over the whole budget
  const rowA: BenchRow = { name: nameA, opsPerSec: Math.round(sumA / slices) };
  const rowB: BenchRow = { name: nameB, opsPerSec: Math.round(sumB / slices) };
  return [rowA, rowB];
}

export async function benchDukpt(): Promise<BenchRow[]> {
  const Dukpt = require('dukpt') as NpmDukptCtor;
  const rows: BenchRow[] = [];

  // TDES: ANSI X9.24-1:2009 A.4 BDK; PIN 1234, PAN 4012345678909 (ISO 0 block 041274EDCBA9876F).
  const bdkHex = '0123456789ABCDEFFEDCBA9876543210';
  const bdk = fromHex(bdkHex);
  const clear = '041274EDCBA9876F';
  const cases = [
    { ksnHex: 'FFFF9876543210E00001', block: '1B9C1845EB993A7A', note: 'counter 000001, 1 one bit' },
    { ksnHex: 'FFFF9876543210EFF801', block: '3A86BF003F835C9D', note: 'counter 0FF801, 10 one bits' },
  ];
  for (const c of cases) {
    const ksn = fromHex(c.ksnHex);
    const block = fromHex(c.block);
    const ours = () => decryptPinBlockTdes(bdk, ksn, block);
    const theirs = () =>
      new Dukpt(bdkHex, c.ksnHex, 'pinkey').dukptDecrypt(c.block, {
        decryptionMode: '3DES',
        outputEncoding: 'hex',
      });
    const a = toHex(ours());
    const b = theirs().toUpperCase();
    if (a !== clear || b !== clear)
      throw new Error(`clear PIN blocks differ (${c.note}): ours ${a}, npm dukpt ${b}`);
    const [mine, peer] = measurePair(
      `TDES DUKPT derive PIN key + decrypt, ${c.note}`,
      ours,
      `npm dukpt 3.0.0: TDES derive + decrypt, ${c.note}`,
      theirs,
    );
    mine.vs = 'npm dukpt';
    mine.ratio = mine.opsPerSec / peer.opsPerSec;
    rows.push(mine, peer);
  }

  // AES: X9.24-3-2017 supplement AES-128 BDK; format 4 block (ISO 9564-1 9.4.2.4: decrypt, XOR the
  // PAN field, decrypt), PIN field and PAN of the supplement.
  const bdkAes = fromHex('FEDCBA9876543210F1F1F1F1F1F1F1F1');
  const panField = fromHex('44111111111111111000000000000000');
  const pinField = '441234AAAAAAAAAA2F69ADDE2E9E7ACE';
  const aesCases = [
    {
      ksnHex: '123456789012345600000001',
      block: 'A912150391AB65A67E52883D81CE2D15',
      note: 'counter 00000001',
    },
  ];
  // A heavy counter (16 one bits): the block is made here from the host key, as no vector has one.
  const heavyKsn = fromHex('1234567890123456FFFF0000');
  const heavyKey = deriveWorkingKeyAes(bdkAes, heavyKsn, 'pin', 'AES128');
  const heavyBlock = encrypt(
    'aes',
    'ecb',
    heavyKey,
    encrypt('aes', 'ecb', heavyKey, fromHex(pinField)).map((x, i) => x ^ panField[i]!),
  );
  aesCases.push({ ksnHex: toHex(heavyKsn), block: toHex(heavyBlock), note: 'counter FFFF0000, 16 one bits' });
  for (const c of aesCases) {
    const ksn = fromHex(c.ksnHex);
    const block = fromHex(c.block);
    const ours = () => {
      const key = deriveWorkingKeyAes(bdkAes, ksn, 'pin', 'AES128');
      const inner = decrypt('aes', 'ecb', key, block);
      for (let i = 0; i < 16; i++) inner[i]! ^= panField[i]!;
      const out = decrypt('aes', 'ecb', key, inner);
      key.fill(0);
      return out;
    };
    if (toHex(ours()) !== pinField) throw new Error(`AES DUKPT clear PIN field differs (${c.note})`);
    rows.push(measure(`AES-128 DUKPT derive PIN key + decrypt ISO 4, ${c.note}`, ours, budgetMs));
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(`node ${process.version}, ${budgetMs} ms per case\n`);
  console.log(formatRows(await benchDukpt()));
}
