// The generated readers of unpack (field.ts "Generated readers") against the reference reader
// (FieldCodec.readFields: one general read per field): on the golden messages and on seeded mutations of
// them, both give the same message, or the same Iso8583Error (code, field, offset, message). Inputs are
// views into a larger buffer whose tail is random, so a read past the end of the input would show.
// Then: sensitive values (2, 14, 35, 36, 45, 52, 55, `sensitive: true`) share no memory with other
// fields, checked in a V8 heap snapshot.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { getHeapSnapshot } from 'node:v8';
import { READERS_PER_TABLE, readerSource } from '../src/field.js';
import {
  type CompiledSpec,
  compileSpec,
  hexToBytes,
  Iso8583Error,
  Iso8583Message,
  loadSpec,
  pack,
} from '../src/index.js';
import { unpackWith } from '../src/message.js';
import { TEST_SPEC } from './specs.js';
import { seededRng } from './rng.js';

const { seed, rnd } = seededRng();

interface Golden {
  messages: Array<{ hex: string; tpdu?: string }>;
}
const golden = (name: string): Golden =>
  JSON.parse(readFileSync(new URL(`./golden/${name}.json`, import.meta.url), 'utf8')) as Golden;

const seeds: Array<{ spec: CompiledSpec; bytes: Uint8Array }> = [];
for (const name of ['iso87-binary', 'iso87-ascii', 'cup-pos']) {
  const spec = loadSpec(name);
  for (const m of golden(name).messages) {
    // cup-pos golden messages are framed: 2-byte length, 5-byte TPDU, 6-byte header.
    const hex = m.tpdu === undefined ? m.hex : m.hex.slice(26);
    seeds.push({ spec, bytes: hexToBytes(hex, 'golden') });
  }
}
{
  // The test spec: every encoding combination, subfields of both kinds.
  const mix = compileSpec(TEST_SPEC);
  const m = new Iso8583Message(mix, '0800', {
    '2': '4761739001010010',
    '3': '123',
    '4': '456',
    '5': 'EBCDIC text',
    '6': 'ascii with a BCD LLLL prefix',
    '7': Uint8Array.of(1, 2, 3),
    '8': Uint8Array.of(0xab, 0xcd),
    '9': 'D00001234',
    '10': '4761739001010010D2512201',
    '11': '1234567',
    '12': 'ABC123',
    '13': '2024',
    '14': '2512',
    '60': '22000024000',
    '62': Uint8Array.of(1, 2, 3, 4, 2, 9, 9),
    '63': '00105hello rest',
  });
  seeds.push({ spec: mix, bytes: pack(mix, m) });
}

type Outcome = { error: string } | { mti: string; values: unknown; bytes: Uint8Array };

function outcome(
  spec: CompiledSpec,
  input: Uint8Array,
  generated: boolean,
  checkSubfields: boolean,
): Outcome {
  try {
    const m = unpackWith(spec, input, { checkSubfields }, generated);
    return { mti: m.mti, values: m.values, bytes: pack(spec, m) };
  } catch (e) {
    if (!(e instanceof Iso8583Error)) throw e;
    return { error: `${e.code} ${e.field} ${e.offset} ${e.message}` };
  }
}

/** `bytes` as a view into a larger buffer whose tail is random (a read past the end would see it). */
function inBiggerBuffer(bytes: Uint8Array): Uint8Array {
  const buf = new Uint8Array(bytes.length + 64);
  buf.set(bytes);
  for (let i = bytes.length; i < buf.length; i++) buf[i] = rnd(256);
  return buf.subarray(0, bytes.length);
}

function mutate(b: Uint8Array): Uint8Array {
  switch (rnd(5)) {
    case 0: {
      const out = b.slice();
      for (let k = 1 + rnd(3); k > 0; k--) out[rnd(out.length)]! ^= 1 << rnd(8);
      return out;
    }
    case 1: {
      const out = b.slice();
      out[rnd(out.length)] = rnd(256);
      return out;
    }
    case 2:
      return b.slice(0, rnd(b.length + 1));
    case 3: {
      const at = rnd(b.length + 1);
      return Uint8Array.from([
        ...b.subarray(0, at),
        ...Array.from({ length: 1 + rnd(4) }, () => rnd(256)),
        ...b.subarray(at),
      ]);
    }
    default: {
      const at = rnd(b.length);
      return Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + 1 + rnd(4))]);
    }
  }
}

test('the golden messages get generated readers, which give what the reference gives', () => {
  for (const { spec, bytes } of seeds) {
    for (let i = 0; i < 3; i++) {
      for (const sub of [true, false])
        assert.deepEqual(outcome(spec, bytes, true, sub), outcome(spec, bytes, false, sub));
    }
    // After a few successful unpacks of its bitmap, the generated reader runs (not only the reference).
    const m = unpackWith(spec, bytes, undefined, true) as unknown as { ranks: Int8Array | undefined };
    assert.ok(m.ranks !== undefined, `${spec.name}: a generated reader unpacked the message`);
  }
});

test(`generated and reference readers agree on 30,000 mutated inputs (seed ${seed})`, () => {
  const start = Date.now();
  let errors = 0;
  for (let n = 0; n < 30_000 && Date.now() - start < 15_000; n++) {
    const s = seeds[rnd(seeds.length)]!;
    const input = inBiggerBuffer(mutate(s.bytes));
    const sub = rnd(4) !== 0;
    const want = outcome(s.spec, input, false, sub);
    const got = outcome(s.spec, input, true, sub);
    assert.deepEqual(got, want, `seed ${seed}, input ${n}: ${Buffer.from(input).toString('hex')}`);
    if ('error' in want) errors++;
  }
  assert.ok(errors > 0);
});

test('bitmaps with the top bit of a word set (fields 33, 65, 97) get generated readers too', () => {
  const spec = loadSpec('iso87-binary');
  const cases: Record<string, string>[] = [
    { '3': '000000', '33': '12345' },
    { '3': '000000', '97': 'C0000000000000001' },
  ];
  for (const fields of cases) {
    const bytes = pack(spec, new Iso8583Message(spec, '0200', fields));
    let last: unknown;
    for (let i = 0; i < 4; i++)
      last = (unpackWith(spec, bytes, undefined, true) as unknown as { ranks: unknown }).ranks;
    assert.ok(last !== undefined, `fields ${Object.keys(fields)}: a generated reader unpacked the message`);
    assert.deepEqual(outcome(spec, bytes, true, true), outcome(spec, bytes, false, true));
  }
});

test('a message from a generated reader reads the same after changes (set, unset, mti)', () => {
  const spec = loadSpec('iso87-binary');
  const fields = { '2': '4761739001010010', '3': '000000', '11': '000321', '41': 'TERM0001', '70': '301' };
  const bytes = pack(spec, new Iso8583Message(spec, '0800', fields));
  for (let i = 0; i < 3; i++) unpackWith(spec, bytes, undefined, true);
  const change = (m: Iso8583Message) =>
    m.set('4', '000000000100').unset('11').set('12', '101010').set('66', '1');
  const a = change(unpackWith(spec, bytes, undefined, true));
  const b = change(unpackWith(spec, bytes, undefined, false));
  assert.deepEqual(a.values, b.values);
  for (const id of ['2', '3', '4', '11', '12', '41', '66', '70']) assert.equal(a.get(id), b.get(id), id);
  const c = unpackWith(spec, bytes, undefined, true);
  c.mti = '0810';
  c.set('39', '00');
  assert.equal(c.get('70'), '301');
  assert.equal(c.get('39'), '00');
  assert.equal(c.get('41'), 'TERM0001');
});

test('short digit fields (up to 4 digits, BCD and ASCII): every byte value gives what the reference gives', () => {
  const fixed = (max: number, encoding: 'bcd' | 'ascii', type: 'n' | 'ans', justify?: 'left' | 'right') => ({
    name: `${type}${max}`,
    type,
    length: { kind: 'fixed' as const, max },
    encoding,
    ...(justify ? { bcd: { justify, pad: 'F' } } : {}),
  });
  const spec = compileSpec({
    name: 'short-digits',
    mti: { encoding: 'ascii' },
    bitmap: { encoding: 'binary', secondary: false },
    fields: {
      '3': fixed(1, 'bcd', 'n', 'right'),
      '4': fixed(1, 'bcd', 'n', 'left'),
      '5': fixed(2, 'bcd', 'n'),
      '6': fixed(3, 'bcd', 'n', 'right'),
      '7': fixed(3, 'bcd', 'n', 'left'),
      '8': fixed(4, 'bcd', 'n'),
      '9': fixed(3, 'ascii', 'ans'),
      '10': fixed(4, 'ascii', 'n'),
      '11': fixed(1, 'ascii', 'ans'),
    },
  });
  const values = {
    '3': '7',
    '4': '7',
    '5': '42',
    '6': '123',
    '7': '123',
    '8': '2512',
    '9': '840',
    '10': '0051',
    '11': '5',
  };
  const bytes = pack(spec, new Iso8583Message(spec, '0200', values));
  for (let i = 0; i < 3; i++) unpackWith(spec, bytes, undefined, true);
  // MTI 4 bytes, bitmap 8: the fields' bytes are 12 to the end.
  for (let at = 12; at < bytes.length; at++) {
    for (let v = 0; v < 256; v++) {
      const b = bytes.slice();
      b[at] = v;
      assert.deepEqual(outcome(spec, b, true, true), outcome(spec, b, false, true), `byte ${at} = ${v}`);
    }
  }
});

test('readerSource: one block per present field, no bit tests, no codec lookups on the fast layouts', () => {
  const spec = loadSpec('iso87-binary');
  // Fields 2, 3, 4, 52, 64: bits 2-4 of word 0, 52 and 64 of word 1.
  const src = readerSource(spec.fields, 0x70000000, 0x00001001, 0, 0)!;
  assert.deepEqual(
    [...src.matchAll(/^F(\d+): \{/gm)].map((m) => m[1]),
    ['2', '3', '4', '52', '64'],
  );
  assert.ok(!/\bC\[/.test(src), 'no general read for these layouts');
  assert.ok(!/w[0-3] & \d+\) !== 0/.test(src), 'no bit tests');
  // A bit the spec lacks: no reader (such messages never unpack).
  assert.equal(readerSource(compileSpec(TEST_SPEC).fields, 0x00020000, 0, 0, 0), undefined); // field 15
});

test(`at most ${READERS_PER_TABLE} generated readers per table; other bitmaps keep the reference reader`, () => {
  const spec = compileSpec({ ...TEST_SPEC, name: 'many-bitmaps' });
  let generated = 0;
  // 100 distinct bitmaps over fields 3, 4, 12, 13, 14 and 2 (fixed or simple fields), 3 unpacks each.
  const ids = ['2', '3', '4', '12', '13', '14', '11'];
  for (let mask = 1; mask < 128; mask++) {
    const m = new Iso8583Message(spec, '0800');
    ids.forEach((id, i) => {
      if (mask & (1 << i))
        m.set(
          id,
          { '2': '476173', '3': '123', '4': '456', '12': 'ABC', '13': '2024', '14': '2512', '11': '12' }[id]!,
        );
    });
    const b = pack(spec, m);
    let last: unknown;
    for (let i = 0; i < 3; i++)
      last = (unpackWith(spec, b, undefined, true) as unknown as { ranks: unknown }).ranks;
    if (last !== undefined) generated++;
  }
  assert.equal(generated, READERS_PER_TABLE);
});

// ------------------------------------------------------------------------------------------------
// Sensitive values own their memory.
// ------------------------------------------------------------------------------------------------

interface Snapshot {
  /** Type ("string", "sliced string", "concatenated string"...) of every string node, by its text. */
  flat: Map<string, string[]>;
  /** Texts of the parents of sliced strings and of the parts of concatenated strings. */
  backing: string[];
}

async function snapshotStrings(): Promise<Snapshot> {
  const chunks: string[] = [];
  for await (const c of getHeapSnapshot()) chunks.push(String(c));
  const snap = JSON.parse(chunks.join('')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[] } };
    nodes: number[];
    edges: number[];
    strings: string[];
  };
  const nf = snap.snapshot.meta.node_fields;
  const ef = snap.snapshot.meta.edge_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [ti, ni, ci] = [nf.indexOf('type'), nf.indexOf('name'), nf.indexOf('edge_count')];
  const [eti, etn] = [ef.indexOf('to_node'), ef.length];
  const flat = new Map<string, string[]>();
  const backing: string[] = [];
  let edge = 0;
  for (let i = 0; i < snap.nodes.length; i += nf.length) {
    const type = types[snap.nodes[i + ti]!]!;
    const count = snap.nodes[i + ci]!;
    if (type === 'string') {
      const name = snap.strings[snap.nodes[i + ni]!]!;
      flat.set(name, [...(flat.get(name) ?? []), type]);
    } else if (type === 'sliced string' || type === 'concatenated string') {
      for (let e = 0; e < count; e++) {
        const to = snap.edges[(edge + e) * etn + eti]!;
        backing.push(snap.strings[snap.nodes[to + ni]!]!);
      }
    }
    edge += count;
  }
  return { flat, backing };
}

/** A flat digit string made at run time (no source text or literal holds it; no concatenation parts). */
function runtimeDigits(n: number): string {
  return Array.from({ length: n }, (_, i) => (i === 0 ? 4 + rnd(5) : rnd(10))).join('');
}

/** Problems: a string other than the value itself holds its text, or a slice/part is cut from one. */
function leaks(snap: Snapshot, value: string, allowed: string[]): string[] {
  const out: string[] = [];
  for (const [name] of snap.flat)
    if (name.includes(value) && !allowed.includes(name)) out.push(`a string holds it: ${name.length} chars`);
  for (const b of snap.backing)
    if (b.includes(value)) out.push(`a slice or part is cut from a string holding it`);
  if (!snap.flat.has(value)) out.push('no flat string of its own');
  return out;
}

test('sensitive text values (PAN, track 2) share no string with other fields (heap snapshot)', async () => {
  const spec = loadSpec('iso87-binary');
  const held: Iso8583Message[] = [];
  const cases: Array<{ pan: string; track: string }> = [];
  for (const generated of [true, false]) {
    const pan = runtimeDigits(16);
    const track = [pan, 'D', runtimeDigits(20)].join('');
    cases.push({ pan, track });
    const bytes = pack(
      spec,
      new Iso8583Message(spec, '0200', {
        '2': pan,
        '3': '000000',
        '35': track,
        '41': 'TERM0001',
        '42': 'MERCHANT0000001',
        '43': 'A CARD ACCEPTOR NAME AND LOCATION OF 40C',
        '44': 'ADDITIONAL RESPONSE DATA',
        '60': 'A LONGER VARIABLE FIELD',
      }),
    );
    for (let i = 0; i < 3; i++) unpackWith(spec, bytes, undefined, generated);
    const m = unpackWith(spec, bytes, undefined, generated);
    assert.equal(m.get('2'), pan);
    assert.equal(m.get('35'), track);
    held.push(m);
  }
  // The detector can fail: a 16-digit slice of a longer string is found.
  const controlPan = runtimeDigits(16);
  const control = { slice: `HEADER ${controlPan} TRAILER AND MORE`.slice(7, 23) };
  const snap = await snapshotStrings();
  assert.notDeepEqual(leaks(snap, controlPan, []), []);
  for (const { pan, track } of cases) {
    assert.deepEqual(leaks(snap, pan, [pan, track]), [], 'PAN');
    assert.deepEqual(leaks(snap, track, [track]), [], 'track 2');
  }
  // Keep everything alive through the snapshot.
  assert.equal(held.length, 2);
  assert.equal(control.slice, controlPan);
});

test('sensitive b values (PIN block) have an ArrayBuffer of their own, also from a Buffer input', () => {
  const spec = loadSpec('iso87-binary');
  const pin = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
  const bytes = pack(spec, new Iso8583Message(spec, '0200', { '52': pin, '64': pin }));
  for (const generated of [true, true, true, false]) {
    for (const input of [bytes, Buffer.from(bytes)]) {
      const m = unpackWith(spec, input, undefined, generated);
      const v = m.get('52') as Uint8Array;
      assert.deepEqual([...v], [...pin]);
      assert.equal(v.byteOffset, 0);
      assert.equal(v.buffer.byteLength, 8, 'the PIN block is alone in its ArrayBuffer');
      assert.equal(Buffer.isBuffer(v), Buffer.isBuffer(input));
    }
  }
});
