// Every error code of ISO8583_ERROR_CODES triggered, with its exact code, field path, byte offset and message.
// Offsets are counted by hand on the golden 0200 of iso87-binary:
//   0-1 MTI | 2-9 bitmap | 10 field 2 prefix (0x16) | 11-18 PAN | 19-21 f3 | 22-27 f4 | 28-32 f7 | 33-35 f11 |
//   36-38 f12 | 39-40 f13 | 41-42 f14 | 43-44 f22 | 45 f25 | 46 f35 prefix (0x37) | 47-65 track 2 | 66-73 f41 ...
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  compileSpec,
  hexToBytes,
  ISO8583_ERROR_CODES,
  Iso8583Error,
  Iso8583Message,
  loadSpec,
  type MessageSpec,
  macInputOf,
  pack,
  unpack,
} from '../src/index.js';
import { TEST_SPEC } from './specs.js';

const bin = loadSpec('iso87-binary');
const asc = loadSpec('iso87-ascii');
const mix = compileSpec(TEST_SPEC);
const golden = JSON.parse(readFileSync(new URL('./golden/iso87-binary.json', import.meta.url), 'utf8')) as {
  messages: Array<{ hex: string }>;
};
const g0200 = hexToBytes(golden.messages[0]!.hex, 'golden');

function mutate(at: number, byte: number): Uint8Array {
  const b = g0200.slice();
  b[at] = byte;
  return b;
}

function bad(hex: string): Uint8Array {
  return hexToBytes(hex, 'test');
}

/** A message of the test spec whose raw values bypass `set` checks (to reach pack-time errors). */
function raw(spec: typeof mix, mti: string, id: number, v: string | Uint8Array): Iso8583Message {
  const m = new Iso8583Message(spec, mti);
  m.values[id] = v;
  return m;
}

const brokenSpec = JSON.parse(JSON.stringify(bin.source)) as MessageSpec;
brokenSpec.fields['35']!.length.max = 0;

type Case = [
  name: string,
  run: () => unknown,
  code: string,
  field: string,
  offset: number | undefined,
  message: string,
];

const cases: Case[] = [
  [
    'spec with a zero max length',
    () => compileSpec(brokenSpec),
    'ISO8583_SPEC_INVALID',
    'fields.35.length.max',
    undefined,
    'fields.35.length.max: must be a positive integer',
  ],
  [
    'spec with an unknown key',
    () => compileSpec({ ...TEST_SPEC, bitmap: { encoding: 'binary', secondary: false, tertiary: true } }),
    'ISO8583_SPEC_INVALID',
    'bitmap.tertiary',
    undefined,
    'bitmap.tertiary: unknown key',
  ],
  [
    'spec: bcd encoding on a b field',
    () =>
      compileSpec({
        ...TEST_SPEC,
        fields: { '52': { name: 'x', type: 'b', length: { kind: 'fixed', max: 8 }, encoding: 'bcd' } },
      }),
    'ISO8583_SPEC_INVALID',
    'fields.52.encoding',
    undefined,
    'fields.52.encoding: bcd does not apply to type b',
  ],
  [
    'spec: LL prefix too small for max',
    () =>
      compileSpec({
        ...TEST_SPEC,
        fields: {
          '2': { name: 'x', type: 'n', length: { kind: 'LL', max: 100, prefix: 'ascii' }, encoding: 'ascii' },
        },
      }),
    'ISO8583_SPEC_INVALID',
    'fields.2.length.max',
    undefined,
    'fields.2.length.max: must be at most 99 for a ascii LL prefix',
  ],
  [
    'unknown built-in spec',
    () => loadSpec('no-such-spec'),
    'ISO8583_SPEC_NOT_FOUND',
    'no-such-spec',
    undefined,
    '',
  ],
  [
    'spec path that does not exist',
    () => loadSpec('/nonexistent/x.json'),
    'ISO8583_SPEC_NOT_FOUND',
    '/nonexistent/x.json',
    undefined,
    '/nonexistent/x.json: no spec file can be read there',
  ],
  [
    'MTI not BCD digits',
    () => unpack(bin, mutate(0, 0x0a)),
    'ISO8583_MTI_INVALID',
    'mti',
    0,
    'mti: MTI is not 4 BCD digits (at byte 0)',
  ],
  [
    'MTI not 4 digits (API)',
    () => new Iso8583Message(bin, '200'),
    'ISO8583_MTI_INVALID',
    'mti',
    undefined,
    'mti: must be 4 decimal digits',
  ],
  [
    'ASCII MTI with a letter',
    () => unpack(asc, bad('303230413030')),
    'ISO8583_MTI_INVALID',
    'mti',
    0,
    'mti: MTI is not 4 digits (at byte 0)',
  ],
  [
    'hex bitmap with a non-hex character',
    () => unpack(asc, new TextEncoder().encode('08008G20000000000000')),
    'ISO8583_BITMAP_INVALID',
    'bitmap',
    5,
    'bitmap: bitmap is not hex (at byte 5)',
  ],
  [
    'secondary bitmap announced where the spec has none',
    () => unpack(mix, bad('F0F8F0F0' + '8000000000000000')),
    'ISO8583_BITMAP_INVALID',
    'bitmap',
    4,
    'bitmap: bit 1 announces a secondary bitmap, which spec test-mix does not allow (at byte 4)',
  ],
  [
    'bit set for a field the spec lacks',
    () => unpack(mix, bad('F0F8F0F0' + '0000100000000000')),
    'ISO8583_FIELD_UNKNOWN',
    '20',
    12,
    '20: bit 20 is set but spec test-mix does not define the field (at byte 12)',
  ],
  [
    'set a field the spec lacks',
    () => new Iso8583Message(mix, '0800').set('20', '1'),
    'ISO8583_FIELD_UNKNOWN',
    '20',
    undefined,
    '20: spec test-mix does not define this field',
  ],
  [
    'field id out of range',
    () => new Iso8583Message(bin, '0800').get('129'),
    'ISO8583_FIELD_UNKNOWN',
    '129',
    undefined,
    '129: a field id is a number from 2 to 128',
  ],
  [
    'subfield the spec lacks',
    () => new Iso8583Message(mix, '0800').get('60.6'),
    'ISO8583_FIELD_UNKNOWN',
    '60.6',
    undefined,
    '60.6: the spec does not define this subfield',
  ],
  [
    'subfield of a field without subfields',
    () => new Iso8583Message(bin, '0800').get('3.1'),
    'ISO8583_FIELD_UNKNOWN',
    '3.1',
    undefined,
    '3.1: the field has no subfields',
  ],
  [
    'LL prefix above the maximum (20 > 19)',
    () => unpack(bin, mutate(10, 0x20)),
    'ISO8583_LENGTH_EXCEEDED',
    '2',
    10,
    '2: length 20 exceeds max 19 (at byte 10)',
  ],
  [
    'pack a PAN longer than 19',
    () => pack(bin, new Iso8583Message(bin, '0200', { '2': '12345678901234567890' })),
    'ISO8583_LENGTH_EXCEEDED',
    '2',
    undefined,
    '2: length 20 exceeds max 19',
  ],
  [
    'pack a fixed field longer than its length',
    () => pack(bin, new Iso8583Message(bin, '0200', { '3': '0000000' })),
    'ISO8583_LENGTH_EXCEEDED',
    '3',
    undefined,
    '3: length 7 exceeds max 6',
  ],
  [
    'subfield longer than its length',
    () => new Iso8583Message(mix, '0800').set('60.1', '123'),
    'ISO8583_LENGTH_EXCEEDED',
    '60.1',
    undefined,
    '60.1: length 3 exceeds max 2',
  ],
  [
    'LL prefix that is not BCD',
    () => unpack(bin, mutate(10, 0x1a)),
    'ISO8583_LENGTH_INVALID',
    '2',
    10,
    '2: length prefix is not BCD digits (at byte 10)',
  ],
  [
    'ASCII LL prefix that is not digits',
    () => unpack(asc, new TextEncoder().encode('02004000000000000000 9')),
    'ISO8583_LENGTH_INVALID',
    '2',
    20,
    '2: length prefix is not decimal digits (at byte 20)',
  ],
  [
    'pack a fixed b field of the wrong size',
    () => pack(bin, new Iso8583Message(bin, '0200', { '52': new Uint8Array(7) })),
    'ISO8583_LENGTH_INVALID',
    '52',
    undefined,
    '52: must be exactly 8 bytes, got 7',
  ],
  [
    'input shorter than the MTI',
    () => unpack(bin, bad('02')),
    'ISO8583_TRUNCATED',
    'mti',
    0,
    'mti: MTI needs 2 bytes, 1 remain (at byte 0)',
  ],
  [
    'input shorter than the bitmap',
    () => unpack(bin, bad('02007238')),
    'ISO8583_TRUNCATED',
    'bitmap',
    2,
    'bitmap: primary bitmap needs 8 bytes, 2 remain (at byte 2)',
  ],
  [
    'input cut inside track 2',
    () => unpack(bin, g0200.subarray(0, 50)),
    'ISO8583_TRUNCATED',
    '35',
    47,
    '35: field data needs 19 bytes, 3 remain (at byte 47)',
  ],
  [
    'input cut before a length prefix',
    () => unpack(bin, g0200.subarray(0, 10)),
    'ISO8583_TRUNCATED',
    '2',
    10,
    '2: length prefix needs 1 bytes, 0 remain (at byte 10)',
  ],
  [
    'invalid BCD nibble in the PAN',
    () => unpack(bin, mutate(12, 0xab)),
    'ISO8583_BCD_INVALID',
    '2',
    12,
    '2: a BCD nibble is not a decimal digit (at byte 12)',
  ],
  [
    'invalid pad nibble (not 0 or F) of odd BCD',
    () => unpack(bin, bad('0200' + '0000040000000000' + 'A051')),
    'ISO8583_BCD_INVALID',
    '22',
    10,
    '22: a BCD nibble is not a decimal digit (at byte 10)',
  ],
  [
    'EBCDIC byte outside CP037 printable',
    () => unpack(mix, bad('F0F8F0F0' + '0800000000000000' + 'F0F0F1' + '00')),
    'ISO8583_ENCODING_INVALID',
    '5',
    15,
    '5: byte is not an EBCDIC (CP037) character (at byte 15)',
  ],
  [
    'hex-encoded b field with a non-hex byte',
    () => unpack(asc, new TextEncoder().encode('0200' + '0000000000001000' + 'ABCDEF012345678Z')),
    'ISO8583_ENCODING_INVALID',
    '52',
    35,
    '52: byte is not an ASCII hex character (at byte 35)',
  ],
  [
    'character outside EBCDIC subset when packing',
    () => pack(mix, new Iso8583Message(mix, '0800', { '5': 'é' })),
    'ISO8583_ENCODING_INVALID',
    '5',
    undefined,
    '5: character 0 has no EBCDIC (CP037) code',
  ],
  [
    'letter in a numeric field',
    () => pack(bin, new Iso8583Message(bin, '0200', { '3': '00A000' })),
    'ISO8583_VALUE_INVALID',
    '3',
    undefined,
    '3: character 2 is not a digit',
  ],
  [
    'string for a b field',
    () => new Iso8583Message(bin, '0200').set('52', 'ABCD'),
    'ISO8583_VALUE_INVALID',
    '52',
    undefined,
    '52: a b field takes bytes (Uint8Array)',
  ],
  [
    'signed amount without C/D',
    () => pack(bin, new Iso8583Message(bin, '0200', { '28': 'X00000150' })),
    'ISO8583_VALUE_INVALID',
    '28',
    undefined,
    '28: a signed amount starts with C or D',
  ],
  [
    'ASCII numeric field with a space on the wire',
    () => unpack(asc, new TextEncoder().encode('0200' + '2000000000000000' + '00 000')),
    'ISO8583_VALUE_INVALID',
    '3',
    22,
    '3: byte is not a digit (at byte 22)',
  ],
  [
    'BER-TLV length past the end of field 55',
    () => unpack(bin, pack(bin, raw(bin, '0200', 55, bad('9F26090102')))),
    'ISO8583_TLV_INVALID',
    '55',
    14,
    '55: tag 9F26 value needs 9 bytes, 2 remain (at byte 14)',
  ],
  [
    'BER-TLV tag longer than 3 bytes',
    () => unpack(bin, pack(bin, raw(bin, '0200', 55, bad('9F8181010100')))),
    'ISO8583_TLV_INVALID',
    '55',
    12,
    '55: tag is longer than 3 bytes (at byte 12)',
  ],
  [
    'byte after the last field',
    () => unpack(bin, Uint8Array.from([...g0200, 0])),
    'ISO8583_TRAILING_BYTES',
    'message',
    g0200.length,
    `message: 1 bytes remain after the last field (at byte ${g0200.length})`,
  ],
  [
    'MAC input of a message whose last field is not the MAC field',
    () =>
      macInputOf(bin, pack(bin, new Iso8583Message(bin, '0200', { '3': '000000', '90': '0'.repeat(42) }))),
    'ISO8583_MAC_FIELD_INVALID',
    '128',
    undefined,
    '128: the last field must be the MAC field (64 without a secondary bitmap, 128 with one); it is 90',
  ],
];

for (const [name, run, code, field, offset, message] of cases) {
  test(`${code}: ${name}`, () => {
    assert.throws(run, (e: unknown) => {
      assert.ok(e instanceof Iso8583Error, `not an Iso8583Error: ${String(e)}`);
      assert.equal(e.code, code);
      assert.equal(e.field, field);
      assert.equal(e.offset, offset);
      if (message) assert.equal(e.message, message);
      else assert.ok(e.message.startsWith(`${field}: no built-in spec has this name (`));
      return true;
    });
  });
}

test('every codec code in ISO8583_ERROR_CODES is triggered above (framing codes: framing.test.ts)', () => {
  const framing = /^ISO8583_(FRAME|TPDU|HEADER)_/;
  const hit = new Set(cases.map((c) => c[2]));
  assert.deepEqual(
    Object.keys(ISO8583_ERROR_CODES).filter((c) => !framing.test(c) && !hit.has(c)),
    [],
  );
});

test('no error message holds the PAN of the message that caused it', () => {
  const pan = '4761739001010010';
  for (const [, run] of cases) {
    try {
      run();
    } catch (e) {
      assert.ok(!(e as Error).message.includes(pan));
      assert.ok(!(e as Error).message.includes('476173900101'));
    }
  }
});
