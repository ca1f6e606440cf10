// Round-trip property: for every spec, a random message packs, unpacks and packs again to the same
// values and the same bytes. Values are derived from random bytes so that fast-check can shrink them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type CompiledSpec,
  compileSpec,
  type FieldCodec,
  Iso8583Message,
  loadSpec,
  pack,
  unpack,
} from '../src/index.js';
import { TEST_SPEC } from './specs.js';

const PRINTABLE =
  ' !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~';

/** Characters a field may carry, for a random byte `b`. */
function charFor(c: FieldCodec, b: number): string {
  const enc = c.spec.encoding;
  switch (c.type) {
    case 'n':
      return String.fromCharCode(48 + (b % 10));
    case 'z':
      return b % 11 === 10 ? (enc === 'bcd' ? 'D' : b & 1 ? '=' : 'D') : String.fromCharCode(48 + (b % 10));
    default:
      return enc === 'ebcdic' ? PRINTABLE[b % PRINTABLE.length]! : String.fromCharCode(b);
  }
}

/** A valid value of field codec `c` made from `seed` bytes (lengths capped to keep messages small). */
function valueFor(c: FieldCodec, seed: Uint8Array): string | Uint8Array {
  const cap = c.spec.length.unit === 'bytes' && c.spec.encoding === 'bcd' ? 2 * c.max : c.max;
  const len = c.fixed ? c.max : (seed[0] ?? 0) % (Math.min(cap, 40) + 1);
  if (c.binary) {
    const out = new Uint8Array(len);
    for (let i = 0; i < len; i++) out[i] = seed[(i + 1) % Math.max(seed.length, 1)] ?? i;
    return out;
  }
  if (c.type === 'x+n') {
    let s = (seed[0] ?? 0) & 1 ? 'C' : 'D';
    for (let i = 1; i < len; i++) s += String.fromCharCode(48 + ((seed[i % seed.length] ?? i) % 10));
    return s;
  }
  let s = '';
  for (let i = 0; i < len; i++) s += charFor(c, (seed[(i + 1) % Math.max(seed.length, 1)] ?? i * 7) ^ i);
  return s;
}

function build(spec: CompiledSpec, mti: string, picks: Array<[number, Uint8Array]>): Iso8583Message {
  const m = new Iso8583Message(spec, mti);
  const table = spec.fieldsFor(mti);
  const ids = table.map((c, i) => (c ? i : 0)).filter((i) => i > 0);
  for (const [k, seed] of picks) {
    const id = ids[k % ids.length]!;
    const c = table[id]!;
    if (c.sub?.kind === 'tlv') {
      const tags = ['9F26', '82', '5F2A', 'DF8101', '9F10'];
      for (let i = 0; i < Math.min(3, seed.length); i++)
        m.set(`${id}.${tags[seed[i]! % tags.length]}`, seed.subarray(i, i + (seed[i]! % 20)));
    } else if (c.sub?.kind === 'positional') {
      const n = c.fixed ? c.sub.parts.length : 1 + ((seed[0] ?? 0) % c.sub.parts.length);
      for (let i = 0; i < n; i++) {
        const p = c.sub.parts[i]!;
        const fake = {
          ...c,
          type: c.type,
          spec: c.spec,
          binary: c.binary,
          fixed: true,
          max: Math.min(p.len, 8),
        } as FieldCodec;
        m.set(`${id}.${p.id}`, valueFor(fake, seed.subarray(i)));
      }
    } else m.set(String(id), valueFor(c, seed));
  }
  return m;
}

const specs: CompiledSpec[] = [loadSpec('iso87-binary'), loadSpec('iso87-ascii'), compileSpec(TEST_SPEC)];
for (const spec of specs) {
  test(`round trip: random ${spec.name} messages pack -> unpack -> pack identically`, () => {
    fc.assert(
      fc.property(
        fc.constantFrom('0100', '0200', '0210', '0400', '0800', '0810'),
        fc.array(fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 24 })), { maxLength: 25 }),
        (mti, picks) => {
          const m = build(spec, mti, picks);
          const bytes = pack(spec, m);
          const back = unpack(spec, bytes);
          assert.equal(back.mti, m.mti);
          assert.deepEqual(back.values, m.values);
          assert.deepEqual(pack(spec, back), bytes);
        },
      ),
      { numRuns: 300 },
    );
  });
}
