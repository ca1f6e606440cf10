/**
 * `npm run bench`: ops/s of the payment-crypto hot paths, and DUKPT side by side with npm's
 * `dukpt` package in the same run. Figures and the command go to docs/performance.md.
 */
import { fromHex } from '../src/bytes.js';
import { kcvTdes } from '../src/kcv.js';
import { macX919 } from '../src/mac.js';
import { decryptPinBlock, encryptPinBlock } from '../src/pinblock.js';
import { unwrapKeyBlock, wrapKeyBlock } from '../src/tr31.js';
import { benchDukpt } from './dukpt.bench.js';
import { type BenchRow, formatRows, measure } from './harness.js';

const budgetMs = Number(process.env.BENCH_MS ?? 1000);

export function benchPrimitives(): BenchRow[] {
  const tdesKey = fromHex('0123456789ABCDEFFEDCBA9876543210');
  const aesKey = fromHex('AF8CB133A78F8DC2D1359F18527593FB');
  const pan = '4111111111111111';
  const block0 = encryptPinBlock(0, tdesKey, '1234', pan);
  const block4 = encryptPinBlock(4, aesKey, '1234', pan);
  const data256 = new Uint8Array(256).map((_, i) => i);
  const kbpkAes = fromHex('88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6');
  const blockD = wrapKeyBlock(kbpkAes, 'D0000P0AE00E0000', tdesKey);
  const blockB = wrapKeyBlock(tdesKey, 'B0000P0TE00E0000', fromHex('89B07B35A1B3F47E89B07B35A1B3F47E'));
  return [
    measure('KCV TDES (3 bytes)', () => kcvTdes(tdesKey), budgetMs),
    measure('PIN block ISO 0 encrypt (TDES)', () => encryptPinBlock(0, tdesKey, '1234', pan), budgetMs),
    measure('PIN block ISO 0 decrypt (TDES)', () => decryptPinBlock(0, tdesKey, block0, pan), budgetMs),
    measure('PIN block ISO 4 encrypt (AES)', () => encryptPinBlock(4, aesKey, '1234', pan), budgetMs),
    measure('PIN block ISO 4 decrypt (AES)', () => decryptPinBlock(4, aesKey, block4, pan), budgetMs),
    measure('X9.19 MAC over 256 bytes', () => macX919(tdesKey, data256), budgetMs),
    measure('TR-31 unwrap, version D (AES-256 KBPK)', () => unwrapKeyBlock(kbpkAes, blockD), budgetMs),
    measure('TR-31 unwrap, version B (TDES KBPK)', () => unwrapKeyBlock(tdesKey, blockB), budgetMs),
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = [...benchPrimitives(), ...(await benchDukpt())];
  console.log(`node ${process.version}, ${budgetMs} ms per case\n`);
  console.log(formatRows(rows));
}
