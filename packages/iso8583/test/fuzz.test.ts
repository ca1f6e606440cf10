// Fuzz: at least 100,000 random and mutated inputs per run go to unpack (bounded at ~20 s). Each must give
// a message or an Iso8583Error, nothing else; no error message may hold the golden PANs; the masked
// describe of whatever unpacks must not show a full PAN. Seeded (FUZZ_SEED) so a failure replays.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  type CompiledSpec,
  describe,
  hexToBytes,
  Iso8583Error,
  Iso8583Message,
  loadSpec,
  unpack,
} from '../src/index.js';
import { seededRng } from './rng.js';

interface GoldenFile {
  spec: string;
  messages: Array<{
    hex: string;
    fields: Record<string, string>;
    layout: Array<{ part: string; hex: string }>;
  }>;
}

const TARGET = 100_000;
const TIME_LIMIT_MS = 20_000;

const { seed, rnd } = seededRng();

interface Seed {
  spec: CompiledSpec;
  bytes: Uint8Array;
  /** Byte offsets where a field (its length prefix, if any) starts: targets for length tampering. */
  fieldStarts: number[];
}

const seeds: Seed[] = [];
const pans = new Set<string>();
for (const name of ['iso87-binary', 'iso87-ascii']) {
  const g = JSON.parse(readFileSync(new URL(`./golden/${name}.json`, import.meta.url), 'utf8')) as GoldenFile;
  const spec = loadSpec(g.spec);
  for (const m of g.messages) {
    const starts: number[] = [];
    let at = 0;
    for (const p of m.layout) {
      starts.push(at);
      at += p.hex.length / 2;
    }
    seeds.push({ spec, bytes: hexToBytes(m.hex, 'golden'), fieldStarts: starts });
    if (m.fields['2']) pans.add(m.fields['2']);
  }
}

function mutate(s: Seed): Uint8Array {
  const b = s.bytes;
  switch (rnd(6)) {
    case 0: {
      // bit flips
      const out = b.slice();
      for (let k = 1 + rnd(4); k > 0; k--) out[rnd(out.length)]! ^= 1 << rnd(8);
      return out;
    }
    case 1:
      return b.slice(0, rnd(b.length)); // truncation
    case 2: {
      // insertion of random bytes
      const at = rnd(b.length + 1);
      const ins = Uint8Array.from({ length: 1 + rnd(8) }, () => rnd(256));
      return Uint8Array.from([...b.subarray(0, at), ...ins, ...b.subarray(at)]);
    }
    case 3: {
      // length tampering: rewrite the first byte(s) of a field: its prefix when it has one
      const out = b.slice();
      const at = s.fieldStarts[rnd(s.fieldStarts.length)]!;
      out[at] = rnd(256);
      if (rnd(2) && at + 1 < out.length) out[at + 1] = rnd(256);
      return out;
    }
    case 4: {
      // deletion of a span
      const at = rnd(b.length);
      return Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + 1 + rnd(6))]);
    }
    default:
      return Uint8Array.from({ length: rnd(200) }, () => rnd(256)); // pure random
  }
}

test(`fuzz: >= ${TARGET} random and mutated inputs to unpack (seed ${seed})`, () => {
  const start = Date.now();
  let n = 0;
  let ok = 0;
  while (n < TARGET && Date.now() - start < TIME_LIMIT_MS) {
    const s = seeds[rnd(seeds.length)]!;
    const input = mutate(s);
    n++;
    let m: Iso8583Message;
    try {
      m = unpack(s.spec, input);
    } catch (e) {
      if (!(e instanceof Iso8583Error)) assert.fail(`seed ${seed} input ${n}: non-Iso8583Error ${String(e)}`);
      for (const pan of pans) assert.ok(!e.message.includes(pan), `seed ${seed}: PAN in an error message`);
      continue;
    }
    ok++;
    assert.ok(m instanceof Iso8583Message);
    if (n % 16 === 0) {
      const pan = m.get('2');
      const d = describe(m);
      if (typeof pan === 'string' && pan.length >= 13)
        assert.ok(!d.includes(pan), `seed ${seed}: PAN in describe`);
    }
  }
  assert.ok(n >= TARGET || Date.now() - start >= TIME_LIMIT_MS);
  assert.ok(ok > 0, 'some mutated inputs still unpack (the fuzzer reaches past the first field)');
  console.log(
    `fuzz: ${n} inputs, ${ok} unpacked, ${n - ok} typed errors, ${Date.now() - start} ms, seed ${seed}`,
  );
});
