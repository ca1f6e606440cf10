// Pack and unpack ops/s of a typical 0200 (fields 2 3 4 11 12 13 14 22 25 35 41 42 49 52 53 60 64) under
// iso87-binary, side by side in the same run with npm's `iso_8583` (2.6.7) on the same fields.
// Run directly: `node --import tsx packages/iso8583/bench/codec.bench.ts` prints a table;
// `benchCodec()` returns the rows for the combined benchmark.
//
// Same work on both sides: pack builds a message object from the same field values and packs it;
// unpack turns the same kind of bytes into a message object; "unpack + read all fields" also reads every
// field back once (ours with `get`, theirs from the object it returns), so that no decoding can be left
// for later unseen. Ours and theirs run in alternating slices so that both see the same machine load
// (this is a shared 2-core box: a slow second on one side would otherwise skew the ratio), and a full
// garbage collection runs before each slice, outside the measured time, so that neither side pays for
// collecting the other's garbage (iso_8583 makes much more of it: without this, our slices absorb its
// major collections). Each side still pays for collecting its own garbage within its slices.
//
// Unpack generates a reader per spec and bitmap after a message with that bitmap has unpacked twice
// (field.ts "Generated readers"): the warm-up covers it, as a first few messages do in a running host.
//
// Unpack interns the values of the fields the spec marks `intern` (field.ts "Interned values"): in this
// 0200, the processing code (3), the terminal and merchant ids (41, 42) and 53 take a shared string from
// a cache after their first message, as they do for a terminal's traffic. The "4,096 terminals" cases
// unpack 4,096 messages in turn, each with its own 41, 42 and 11, so that 41 and 42 (nearly) never find
// their value in the cache (1,024 slots per field): the cost of values that do not repeat.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { bytesToHex, Iso8583Message, loadSpec, pack, unpack } from '../src/index.js';

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
/** Terminals (a power of two) of the cases whose 41, 42 and 11 differ in every message. */
const TERMINALS = 4096;
const IDS = Object.keys(FIELDS);

// A handle on V8's gc() without a command-line flag (the documented --expose-gc, set at run time).
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/** Calls of `fn` in `ms` milliseconds, in batches of 100, after a full GC (the caller warms up). */
function slice(fn: () => unknown, ms: number): { n: number; ms: number } {
  collectGarbage();
  let n = 0;
  const start = performance.now();
  let now = start;
  const end = start + ms;
  while (now < end) {
    for (let i = 0; i < 100; i++) fn();
    n += 100;
    now = performance.now();
  }
  return { n, ms: now - start };
}

/**
 * ops/s of `a` and `b`, each given about `ms` milliseconds in total, in alternating slices after a
 * warm-up of both.
 */
function measurePair(a: () => unknown, b: () => unknown, ms: number): [number, number] {
  const warm = Math.min(200, ms / 4);
  slice(a, warm);
  slice(b, warm);
  const rounds = 10;
  let na = 0;
  let ta = 0;
  let nb = 0;
  let tb = 0;
  for (let r = 0; r < rounds; r++) {
    const sb = slice(b, ms / rounds);
    nb += sb.n;
    tb += sb.ms;
    const sa = slice(a, ms / rounds);
    na += sa.n;
    ta += sa.ms;
  }
  return [(na * 1000) / ta, (nb * 1000) / tb];
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
  const readOurs = () => {
    const m = unpack(spec, bytes);
    for (let i = 0; i < IDS.length; i++)
      if (m.get(IDS[i]!) === undefined) throw new Error('bench: field lost');
    return m;
  };
  const back = unpackOurs();
  for (const id of IDS) {
    const v = back.get(id);
    if ((v instanceof Uint8Array ? bytesToHex(v) : v) !== FIELDS[id])
      throw new Error(`bench: our round trip changed field ${id}`);
  }

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
  const readTheirs = () => {
    const o = unpackTheirs();
    for (let i = 0; i < IDS.length; i++) if (o[IDS[i]!] === undefined) throw new Error('bench: field lost');
    return o;
  };
  const theirBack = unpackTheirs();
  for (const id of IDS)
    if (theirBack[id]?.toUpperCase() !== FIELDS[id]) throw new Error(`bench: iso_8583 changed field ${id}`);

  // The same 0200 from 4,096 terminals, taken in turn (both sides the same messages, checked equal).
  const oursMany: Uint8Array[] = [];
  const theirsMany: Buffer[] = [];
  for (let i = 0; i < TERMINALS; i++) {
    const n = String(i).padStart(6, '0');
    const f: Record<string, string> = {
      ...FIELDS,
      '11': n,
      '41': `TERM${n.slice(2)}`,
      '42': `MERCHANT${n}0`,
    };
    const v: Record<string, string | Uint8Array> = { ...values, '11': f['11'], '41': f['41'], '42': f['42'] };
    oursMany.push(pack(spec, new Iso8583Message(spec, '0200', v)));
    theirsMany.push(new Iso({ '0': '0200', ...f }, formats).getRawMessage());
    if (i % 512 === 0) {
      const a = unpack(spec, oursMany[i]!);
      const b = new Iso(undefined, formats).getIsoJSON(theirsMany[i]!, { lenHeader: false });
      for (const id of IDS) {
        const x = a.get(id);
        if ((x instanceof Uint8Array ? bytesToHex(x) : x) !== f[id] || b[id]?.toUpperCase() !== f[id])
          throw new Error(`bench: field ${id} of terminal ${i} differs`);
      }
    }
  }
  let nextOurs = 0;
  let nextTheirs = 0;
  const unpackOursMany = () => {
    nextOurs = (nextOurs + 1) & (TERMINALS - 1);
    return unpack(spec, oursMany[nextOurs]!);
  };
  const unpackTheirsMany = () => {
    nextTheirs = (nextTheirs + 1) & (TERMINALS - 1);
    return new Iso(undefined, formats).getIsoJSON(theirsMany[nextTheirs]!, { lenHeader: false });
  };
  const readOursMany = () => {
    const m = unpackOursMany();
    for (let i = 0; i < IDS.length; i++)
      if (m.get(IDS[i]!) === undefined) throw new Error('bench: field lost');
    return m;
  };
  const readTheirsMany = () => {
    const o = unpackTheirsMany();
    for (let i = 0; i < IDS.length; i++) if (o[IDS[i]!] === undefined) throw new Error('bench: field lost');
    return o;
  };

  const rows: BenchRow[] = [];
  for (const [name, a, b] of [
    ['0200 pack (build + pack)', packOurs, packTheirs],
    ['0200 unpack', unpackOurs, unpackTheirs],
    ['0200 unpack + read all fields', readOurs, readTheirs],
    ['0200 unpack, 4,096 terminals in turn', unpackOursMany, unpackTheirsMany],
    ['0200 unpack + read all fields, 4,096 terminals in turn', readOursMany, readTheirsMany],
  ] as const) {
    const [mine, theirs] = measurePair(a, b, ms);
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
  const rows = benchCodec({ ms: Number(process.env.BENCH_MS ?? 2000) });
  console.log(`node ${process.version}, ${new Date().toISOString()}`);
  console.log(`| case | library | ops/s | speed-up |\n|---|---|---:|---:|`);
  for (const r of rows)
    console.log(
      `| ${r.case} | ${r.library} | ${r.opsPerSec.toLocaleString('en-US')} | ${r.speedup ? `${r.speedup}x` : ''} |`,
    );
}
