// Interned values (spec `intern`, field.ts "Interned values"): the generated reader hands back one shared
// string per distinct value of an interned field. Checked here: the spec rules (never b, sensitive or
// variable-length fields), that interned values equal what the reference reader gives on random messages
// of every internable layout (hits, misses, slots taken over by other values), that the cache stays
// bounded, and that a value seen before never lets a bad one through.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { INTERN_SLOTS } from '../src/field.js';
import {
  compileSpec,
  FieldCodec,
  Iso8583Error,
  Iso8583Message,
  loadSpec,
  type MessageSpec,
  pack,
} from '../src/index.js';
import { unpackWith } from '../src/message.js';
import { seededRng } from './rng.js';

const { seed, rnd } = seededRng();

/** One interned field per layout the generated reader interns, and one it does not (EBCDIC). */
const INTERN_SPEC: MessageSpec = {
  name: 'intern-mix',
  mti: { encoding: 'bcd' },
  bitmap: { encoding: 'binary', secondary: false },
  fields: {
    '3': {
      name: 'n5 bcd right',
      type: 'n',
      length: { kind: 'fixed', max: 5 },
      encoding: 'bcd',
      intern: true,
    },
    '4': {
      name: 'n7 bcd left pad F',
      type: 'n',
      length: { kind: 'fixed', max: 7 },
      encoding: 'bcd',
      bcd: { justify: 'left', pad: 'F' },
      intern: true,
    },
    '5': { name: 'n16 bcd', type: 'n', length: { kind: 'fixed', max: 16 }, encoding: 'bcd', intern: true },
    '6': { name: 'n21 bcd', type: 'n', length: { kind: 'fixed', max: 21 }, encoding: 'bcd', intern: true },
    '7': {
      name: 'n8 bcd hex nibbles',
      type: 'n',
      length: { kind: 'fixed', max: 8 },
      encoding: 'bcd',
      bcd: { justify: 'right', pad: '0', nibbles: 'hex' },
      intern: true,
    },
    '8': {
      name: 'ans8 ascii',
      type: 'ans',
      length: { kind: 'fixed', max: 8 },
      encoding: 'ascii',
      intern: true,
    },
    '9': { name: 'n6 ascii', type: 'n', length: { kind: 'fixed', max: 6 }, encoding: 'ascii', intern: true },
    '10': {
      name: 'ans40 ascii',
      type: 'ans',
      length: { kind: 'fixed', max: 40 },
      encoding: 'ascii',
      intern: true,
    },
    '11': {
      name: 'ans2 ascii',
      type: 'ans',
      length: { kind: 'fixed', max: 2 },
      encoding: 'ascii',
      intern: true,
    },
    '12': {
      name: 'ans6 ebcdic',
      type: 'ans',
      length: { kind: 'fixed', max: 6 },
      encoding: 'ebcdic',
      intern: true,
    },
    '13': { name: 'n6 not interned', type: 'n', length: { kind: 'fixed', max: 6 }, encoding: 'bcd' },
  },
};

const spec = compileSpec(INTERN_SPEC);
const HEX = '0123456789ABCDEF';
const TEXT = ' ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/.';

/** A random valid value of field `id`, from a pool of `pool` values (so that values repeat). */
function randomValue(id: number, pool: number): string {
  const c = spec.fields[id]!;
  const pick = rnd(pool);
  let s = '';
  for (let i = 0; i < c.max; i++) {
    const r = (pick * 7919 + i * 104729) % 1000003;
    if (c.spec.bcd?.nibbles === 'hex') s += HEX[r % 16];
    else if (c.type === 'n') s += String.fromCharCode(48 + (r % 10));
    else s += TEXT[r % TEXT.length];
  }
  return s;
}

function randomMessage(pool: number): { bytes: Uint8Array; values: Record<string, string> } {
  const values: Record<string, string> = {};
  // Fields 6 and 7 sometimes absent: four bitmaps, each with its generated reader.
  for (let id = 3; id <= 13; id++)
    if ((id !== 6 && id !== 7) || rnd(2) !== 0) values[String(id)] = randomValue(id, pool);
  return { bytes: pack(spec, new Iso8583Message(spec, '0200', values)), values };
}

function same(bytes: Uint8Array, values: Record<string, string>): void {
  const got = unpackWith(spec, bytes, undefined, true);
  const want = unpackWith(spec, bytes, undefined, false);
  assert.deepEqual(got.values, want.values, `seed ${seed}`);
  for (const [id, v] of Object.entries(values)) assert.equal(got.get(id), v, `seed ${seed}, field ${id}`);
}

test('spec: intern is refused on b, sensitive and variable-length fields', () => {
  const withField = (id: string, f: Record<string, unknown>) =>
    ({ ...INTERN_SPEC, fields: { [id]: { name: 'x', ...f, intern: true } } }) as unknown;
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['7', { type: 'b', length: { kind: 'fixed', max: 8 }, encoding: 'binary' }, 'b fields are not interned'],
    [
      '7',
      { type: 'ans', length: { kind: 'fixed', max: 8 }, encoding: 'ascii', sensitive: true },
      'sensitive fields are not interned',
    ],
    [
      '14',
      { type: 'n', length: { kind: 'fixed', max: 4 }, encoding: 'bcd' },
      'sensitive fields are not interned',
    ],
    [
      '7',
      { type: 'ans', length: { kind: 'LL', max: 8, prefix: 'bcd' }, encoding: 'ascii' },
      'only fixed-length fields are interned',
    ],
  ];
  for (const [id, f, why] of cases) {
    assert.throws(
      () => compileSpec(withField(id, f)),
      (e: unknown) =>
        e instanceof Iso8583Error &&
        e.code === 'ISO8583_SPEC_INVALID' &&
        e.field === `fields.${id}.intern` &&
        e.message === `fields.${id}.intern: ${why}`,
    );
  }
  assert.throws(
    () => compileSpec({ ...INTERN_SPEC, fields: { '7': { ...INTERN_SPEC.fields['7']!, intern: 'yes' } } }),
    /fields\.7\.intern/,
  );
  // A codec made without validation never interns card data either.
  const track = new FieldCodec('35', {
    name: 'track 2',
    type: 'z',
    length: { kind: 'fixed', max: 8 },
    encoding: 'ascii',
    intern: true,
  });
  assert.equal(track.intern, false);
});

test('the built-in specs intern codes and acceptor ids, never card data', () => {
  for (const name of ['iso87-binary', 'iso87-ascii', 'cup-pos']) {
    const s = loadSpec(name);
    const interned = s.fields.flatMap((c, id) => (c?.intern ? [id] : []));
    for (const id of [3, 41, 42, 49, 53]) assert.ok(interned.includes(id), `${name} interns ${id}`);
    for (const id of [2, 4, 11, 12, 14, 35, 36, 37, 38, 45, 52, 55, 64])
      assert.ok(!interned.includes(id), `${name} does not intern ${id}`);
  }
});

test(`interned values equal the reference reader's on random messages (seed ${seed})`, () => {
  // A few values per field (hits), then many (misses, slots taken over), then few again.
  for (const pool of [3, 100_000, 5]) {
    for (let n = 0; n < 1500; n++) {
      const { bytes, values } = randomMessage(pool);
      same(bytes, values);
    }
  }
  // The generated readers ran (their messages share ranks), and the caches hold what was read.
  const { bytes, values } = randomMessage(1);
  for (let i = 0; i < 3; i++) unpackWith(spec, bytes, undefined, true);
  const m = unpackWith(spec, bytes, undefined, true) as unknown as { ranks: Int8Array | undefined };
  assert.ok(m.ranks !== undefined, 'a generated reader unpacked the message');
  for (const id of [3, 4, 5, 6, 7, 8, 9, 10])
    assert.ok(spec.fields[id]!.internCache().values.includes(values[String(id)]), `field ${id} is cached`);
});

test(`an intern cache holds at most ${INTERN_SLOTS} values`, () => {
  const s = compileSpec({ ...INTERN_SPEC, name: 'intern-bounded' });
  const seen = new Set<string>();
  for (let i = 0; i < 3 * INTERN_SLOTS; i++) {
    const v = String(100000 + i).slice(1, 6);
    const bytes = pack(s, new Iso8583Message(s, '0200', { '3': v, '4': '1234567', '5': '0'.repeat(16) }));
    for (let k = 0; k < 3; k++) assert.equal(unpackWith(s, bytes, undefined, true).get('3'), v);
    seen.add(v);
  }
  const cache = s.fields[3]!.internCache();
  assert.equal(cache.values.length, INTERN_SLOTS);
  const held = cache.values.filter((v) => v !== undefined);
  assert.ok(held.length <= INTERN_SLOTS && held.length > INTERN_SLOTS / 2, `${held.length} values held`);
  for (const v of held) assert.ok(seen.has(v!));
});

test('values that do not repeat are not kept, and do not displace one that does', () => {
  const s = compileSpec({ ...INTERN_SPEC, name: 'intern-one-offs' });
  const message = (v: string) =>
    pack(s, new Iso8583Message(s, '0200', { '3': v, '4': '1234567', '5': '0'.repeat(16) }));
  const hot = message('55555');
  for (let i = 0; i < 4; i++) assert.equal(unpackWith(s, hot, undefined, true).get('3'), '55555');
  const cache = s.fields[3]!.internCache();
  assert.ok(cache.values.includes('55555'), 'a value seen twice in a row is kept');
  // (Not 00000: its key, all zero bytes, is the candidate of an unused slot, so it is kept at once.)
  for (let i = 1; i <= 5000; i++) {
    const v = String(100000 + i).slice(1);
    assert.equal(unpackWith(s, message(v), undefined, true).get('3'), v);
  }
  assert.deepEqual(
    cache.values.filter((v) => v !== undefined),
    ['55555'],
    'one-off values are not kept; the kept one stays',
  );
  assert.equal(unpackWith(s, hot, undefined, true).get('3'), '55555');
});

test('a value seen before does not let a bad one through (same error as the reference reader)', () => {
  const values = { '3': '12345', '4': '7654321', '5': '1234567890123456', '8': 'TERM0001', '9': '000321' };
  const good = pack(spec, new Iso8583Message(spec, '0200', values));
  for (let i = 0; i < 4; i++) same(good, values);
  const outcome = (bytes: Uint8Array, generated: boolean) => {
    try {
      unpackWith(spec, bytes, undefined, generated);
      return 'ok';
    } catch (e) {
      if (!(e instanceof Iso8583Error)) throw e;
      return `${e.code} ${e.field} ${e.offset} ${e.message}`;
    }
  };
  // Each byte of fields 3, 4, 5 (BCD): a bad nibble, a bad pad, or valid.
  const layout = [
    { at: 10, n: 3 },
    { at: 13, n: 4 },
    { at: 17, n: 8 },
  ];
  let errors = 0;
  for (const { at, n } of layout) {
    for (let i = 0; i < n; i++) {
      for (const bad of [0xa0, 0x0b, 0xff, 0x1f, 0xf1]) {
        const b = good.slice();
        b[at + i] = bad;
        const want = outcome(b, false);
        assert.equal(outcome(b, true), want, `byte ${at + i} = ${bad.toString(16)}`);
        if (want !== 'ok') errors++;
      }
    }
  }
  // Field 9 (n6 ASCII) follows 3, 4, 5, 8 (3 + 4 + 8 + 8 bytes from 10): a letter.
  for (let i = 0; i < 6; i++) {
    const b = good.slice();
    b[33 + i] = 0x41;
    const want = outcome(b, false);
    assert.match(want, /^ISO8583_VALUE_INVALID 9 /);
    assert.equal(outcome(b, true), want);
  }
  assert.ok(errors > 20);
});
