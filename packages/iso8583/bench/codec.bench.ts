// Pack and unpack ops/s of a typical 0200 (fields 2 3 4 11 12 13 14 22 25 35 41 42 49 52 53 60 64) under
// iso87-binary, side by side in the same run with npm's `iso_8583` (2.6.7) on the same fields.
// Run directly: `node --import tsx packages/iso8583/bench/codec.bench.ts` prints a table;
// `benchCodec()` returns the rows for the combined benchmark.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Iso8583Message, loadSpec, pack, unpack } from '../src/index.js';

export interface BenchRow {
  /** What was measured, e.g. "0200 pack". */
  case: string;
  /** `@openposp/iso8583 (iso87-binary)` or `iso_8583 2.6.7`. */
  library: string;
  opsPerSec: number;
  /** ops/s of ours divided by ops/s of iso_8583 on the same case (on our rows only). */
  speedup?: number;
}

const FIELDS: Record<string, string> = {
  '2': '4761739001010010',
  '3': '000000',
  '4': '000000012345',
  '11': '000321',
  '12': '103015',
  '13': '1225',
  '14': '2512',
  '22': '051',
  '25': '00',
  '35': '4761739001010010D25122011143804400000',
  '41': 'TERM0001',
  '42': 'MERCHANT0000001',
  '49': '840',
  '52': '0123456789ABCDEF',
  '53': '2600000000000000',
  '60': 'POS 1.0',
  '64': '1122334455667788',
};
const BINARY = new Set(['52', '64']);

/** Run `fn` repeatedly for about `ms` milliseconds (after a warm-up) and return calls per second. */
function measure(fn: () => unknown, ms: number): number {
  const warm = performance.now() + Math.min(200, ms / 4);
  while (performance.now() < warm) fn();
  let n = 0;
  const start = performance.now();
  let now = start;
  const end = start + ms;
  while (now < end) {
    for (let i = 0; i < 100; i++) fn();
    n += 100;
    now = performance.now();
  }
  return (n * 1000) / (now - start);
}

export function benchCodec(options?: { ms?: number }): BenchRow[] {
  const ms = options?.ms ?? 1000;
  const spec = loadSpec('iso87-binary');
  const ours = '@openposp/iso8583 (iso87-binary)';
  const values: Record<string, string | Uint8Array> = {};
  for (const [k, v] of Object.entries(FIELDS)) values[k] = BINARY.has(k) ? Buffer.from(v, 'hex') : v;
  const packOurs = () => pack(spec, new Iso8583Message(spec, '0200', values));
  const bytes = packOurs();
  const unpackOurs = () => unpack(spec, bytes);
  if (unpackOurs().get('35') !== FIELDS['35']) throw new Error('bench: our round trip failed');

  // iso_8583 (CommonJS, no types). Its defaults follow ISO 8583:1993 for 53 and 64: give it the 1987 sizes.
  const Iso = createRequire(import.meta.url)('iso_8583') as new (
    data?: Record<string, string>,
    formats?: Record<string, unknown>,
  ) => { getRawMessage(): Buffer; getIsoJSON(b: Buffer, c: unknown): Record<string, string> };
  const formats = {
    '53': { ContentType: 'n', Label: 'Security related control information', LenType: 'fixed', MaxLen: 16 },
    '64': { ContentType: 'b', Label: 'Message authentication code', LenType: 'fixed', MaxLen: 16 },
  };
  const theirData = { '0': '0200', ...FIELDS };
  const packTheirs = () => new Iso(theirData, formats).getRawMessage();
  const raw = packTheirs();
  if (!Buffer.isBuffer(raw)) throw new Error('bench: iso_8583 refused the message');
  const unpackTheirs = () => new Iso(undefined, formats).getIsoJSON(raw, { lenHeader: false });
  if (unpackTheirs()['35'] !== FIELDS['35']) throw new Error('bench: iso_8583 round trip failed');

  const rows: BenchRow[] = [];
  for (const [name, a, b] of [
    ['0200 pack', packOurs, packTheirs],
    ['0200 unpack', unpackOurs, unpackTheirs],
  ] as const) {
    const theirs = measure(b, ms);
    const mine = measure(a, ms);
    rows.push({
      case: name,
      library: ours,
      opsPerSec: Math.round(mine),
      speedup: Math.round((mine / theirs) * 10) / 10,
    });
    rows.push({ case: name, library: 'iso_8583 2.6.7', opsPerSec: Math.round(theirs) });
  }
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const rows = benchCodec();
  console.log(`node ${process.version}, ${new Date().toISOString()}`);
  console.log(`| case | library | ops/s | speed-up |\n|---|---|---:|---:|`);
  for (const r of rows)
    console.log(
      `| ${r.case} | ${r.library} | ${r.opsPerSec.toLocaleString('en-US')} | ${r.speedup ? `${r.speedup}x` : ''} |`,
    );
}
