// `bcd.nibbles: "hex"` (SPEC-FORMAT.md "BCD nibbles"): BCD data whose nibbles may be any of 0-F, read
// back as upper-case hex characters. cup-pos sets it on 35 and 36, whose 8-byte track data block the
// terminal enciphers under the TDK in place (53 position 3 = 1; packages/terminal/README.md "Track
// encryption": the 8 bytes of the packed track ending one byte before its last byte).
// Also: a variable-length BCD x+n field announced with length 0 is refused at its prefix (it used to read
// one byte past the field).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  compileSpec,
  Iso8583Error,
  Iso8583Message,
  loadSpec,
  type MessageSpec,
  pack,
  unpack,
} from '../src/index.js';

const cup = loadSpec('cup-pos');
const TRACK2 = '4761739001010010D25122011143804400000'; // 37 characters: 19 bytes, pad F
/** Stand-in for TDES-ECB(TDK, TDB): any 8 bytes; these have a nibble of every kind. */
const ENCIPHERED = Uint8Array.from(Buffer.from('A1B2C3D4E5F60718', 'hex'));

const fromHex = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex, 'hex'));

/** A cup-pos 0200 with track 2 whose TDB (bytes [n-9, n-1) of the packed track) is replaced in place. */
function encipheredPurchase(): { clear: Uint8Array; wire: Uint8Array } {
  const m = new Iso8583Message(cup, '0200', {
    '2': '4761739001010010',
    '3': '000000',
    '4': '000000012345',
    '11': '000321',
    '22': '021',
    '25': '00',
    '35': TRACK2,
    '41': 'TERM0001',
    '42': 'MERCHANT0000001',
    '49': '156',
    '53': '2610000000000000',
  });
  const clear = pack(cup, m);
  // Find the packed track: LL prefix 0x37 then the 19 bytes of TRACK2 (left-justified, pad F).
  const start = Buffer.from(clear).indexOf(Buffer.from(fromHex(`37${TRACK2}F`)));
  assert.ok(start > 0, 'the packed track is in the message');
  const data = start + 1;
  const wire = clear.slice();
  wire.set(ENCIPHERED, data + 19 - 9);
  return { clear, wire };
}

test('cup-pos 35: a track whose TDB is enciphered in place unpacks, as upper-case hex, and packs back to the same bytes', () => {
  const { wire } = encipheredPurchase();
  const m = unpack(cup, wire);
  // Bytes 0-9 of the packed track (20 characters) stay clear, then the 8 enciphered bytes, then the last
  // byte's digit (its pad F is dropped).
  assert.equal(m.get('35'), `${TRACK2.slice(0, 20)}A1B2C3D4E5F60718${TRACK2[36]}`);
  assert.deepEqual(pack(cup, m), wire);
  assert.equal(m.get('2'), '4761739001010010');
});

test('cup-pos 35: a clear track reads the same as before (D stays D)', () => {
  const { clear } = encipheredPurchase();
  const m = unpack(cup, clear);
  assert.equal(m.get('35'), TRACK2);
  assert.deepEqual(pack(cup, m), clear);
});

test('cup-pos 36 (track 3) carries hex nibbles too', () => {
  const m = new Iso8583Message(cup, '0200', { '11': '000001', '36': '996AF01234D' });
  const b = pack(cup, m);
  assert.equal(unpack(cup, b).get('36'), '996AF01234D');
});

test('iso87-binary 35 (no nibbles option) still refuses a non-digit nibble other than D', () => {
  const bin = loadSpec('iso87-binary');
  const b = pack(bin, new Iso8583Message(bin, '0200', { '35': '4761D2512' }));
  const bad = b.slice();
  bad[bad.length - 3] = 0xa1;
  assert.throws(
    () => unpack(bin, bad),
    (e: unknown) =>
      e instanceof Iso8583Error &&
      e.code === 'ISO8583_BCD_INVALID' &&
      e.field === '35' &&
      e.message === `35: a BCD nibble is not a decimal digit (at byte ${bad.length - 3})`,
  );
});

// A small spec with one field per charset: n and z, hex nibbles, both justifications, fixed and LL.
const HEX_SPEC: MessageSpec = {
  name: 'hex-nibbles',
  mti: { encoding: 'bcd' },
  bitmap: { encoding: 'binary', secondary: false },
  fields: {
    '2': {
      name: 'z hex left F',
      type: 'z',
      length: { kind: 'LL', max: 37, prefix: 'bcd' },
      encoding: 'bcd',
      bcd: { justify: 'left', pad: 'F', nibbles: 'hex' },
    },
    '3': {
      name: 'n hex right 0',
      type: 'n',
      length: { kind: 'LLL', max: 40, prefix: 'binary' },
      encoding: 'bcd',
      bcd: { justify: 'right', pad: '0', nibbles: 'hex' },
    },
    '4': {
      name: 'n hex fixed 5',
      type: 'n',
      length: { kind: 'fixed', max: 5 },
      encoding: 'bcd',
      bcd: { justify: 'left', pad: '0', nibbles: 'hex' },
    },
    '5': {
      name: 'n decimal explicit',
      type: 'n',
      length: { kind: 'fixed', max: 4 },
      encoding: 'bcd',
      bcd: { justify: 'right', pad: '0', nibbles: 'decimal' },
    },
  },
};
const hexSpec = compileSpec(HEX_SPEC);
const HEX = '0123456789ABCDEF';

test('hex nibbles: random values round-trip (upper-case out; lower-case and = accepted in)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 15 }), { maxLength: 37 }),
      fc.array(fc.integer({ min: 0, max: 15 }), { maxLength: 40 }),
      fc.array(fc.integer({ min: 0, max: 15 }), { minLength: 5, maxLength: 5 }),
      fc.boolean(),
      (z, n, f, lower) => {
        const up = (a: number[]) => a.map((v) => HEX[v]!).join('');
        const values = { '2': up(z), '3': up(n), '4': up(f), '5': '0042' };
        const given = lower
          ? {
              ...values,
              '2': values['2'].toLowerCase().replaceAll('d', '='),
              '3': values['3'].toLowerCase(),
            }
          : values;
        const bytes = pack(hexSpec, new Iso8583Message(hexSpec, '0200', given));
        const back = unpack(hexSpec, bytes);
        for (const [k, v] of Object.entries(values)) assert.equal(back.get(k), v);
        assert.deepEqual(pack(hexSpec, back), bytes);
      },
    ),
    { numRuns: 300 },
  );
});

test('hex nibbles: exact wire bytes (odd counts, both justifications)', () => {
  const m = new Iso8583Message(hexSpec, '0200', { '2': 'abc', '3': 'F0e', '4': '9ABCD' });
  // MTI 02 00 | bitmap 70.. | 2: 03 AB CF | 3: 00 03 0F 0E | 4: 9A BC D0
  assert.equal(
    Buffer.from(pack(hexSpec, m)).toString('hex').toUpperCase(),
    `0200${'7000000000000000'}03ABCF00030F0E9ABCD0`,
  );
});

type ErrCase = [
  name: string,
  run: () => unknown,
  code: string,
  field: string,
  offset: number | undefined,
  message: string,
];

const badSpec = (bcd: Record<string, unknown>, type = 'n', unit?: 'bytes'): unknown => ({
  ...HEX_SPEC,
  fields: {
    '2': {
      name: 'x',
      type,
      length: { kind: 'LL', max: 19, prefix: 'bcd', ...(unit ? { unit } : {}) },
      encoding: 'bcd',
      bcd: { justify: 'left', pad: 'F', ...bcd },
    },
  },
});

const errors: ErrCase[] = [
  [
    'pack: a character that is not hex (z)',
    () => pack(hexSpec, new Iso8583Message(hexSpec, '0200', { '2': 'ABCG' })),
    'ISO8583_VALUE_INVALID',
    '2',
    undefined,
    '2: character 3 is not a hex digit or the separator =',
  ],
  [
    'pack: = in an n field with hex nibbles',
    () => pack(hexSpec, new Iso8583Message(hexSpec, '0200', { '3': '12=4' })),
    'ISO8583_VALUE_INVALID',
    '3',
    undefined,
    '3: character 2 is not a hex digit',
  ],
  [
    'unpack: pad nibble of a left-justified odd count is not 0 or F',
    () => unpack(hexSpec, fromHex(`0200${'4000000000000000'}03ABCE`)),
    'ISO8583_BCD_INVALID',
    '2',
    12,
    '2: the BCD pad nibble is not 0 or F (at byte 12)',
  ],
  [
    'unpack: pad nibble of a right-justified odd count is not 0 or F',
    () => unpack(hexSpec, fromHex(`0200${'2000000000000000'}0003AF0E`)),
    'ISO8583_BCD_INVALID',
    '3',
    12,
    '3: the BCD pad nibble is not 0 or F (at byte 12)',
  ],
  [
    'unpack: decimal nibbles (explicit) still refuse A-F',
    () => unpack(hexSpec, fromHex(`0200${'0800000000000000'}00A1`)),
    'ISO8583_BCD_INVALID',
    '5',
    11,
    '5: a BCD nibble is not a decimal digit (at byte 11)',
  ],
  [
    'spec: nibbles is not decimal or hex',
    () => compileSpec(badSpec({ nibbles: 'HEX' })),
    'ISO8583_SPEC_INVALID',
    'fields.2.bcd.nibbles',
    undefined,
    'fields.2.bcd.nibbles: must be one of decimal, hex',
  ],
  [
    'spec: hex nibbles on x+n',
    () => compileSpec(badSpec({ nibbles: 'hex' }, 'x+n')),
    'ISO8583_SPEC_INVALID',
    'fields.2.bcd.nibbles',
    undefined,
    'fields.2.bcd.nibbles: hex nibbles apply to types n and z only',
  ],
  [
    'spec: hex nibbles with length.unit bytes',
    () => compileSpec(badSpec({ nibbles: 'hex' }, 'z', 'bytes')),
    'ISO8583_SPEC_INVALID',
    'fields.2.bcd.nibbles',
    undefined,
    'fields.2.bcd.nibbles: hex nibbles need length.unit chars',
  ],
];

// x+n in BCD with an LL prefix: length 0 leaves no room for the sign.
const SIGNED_SPEC: MessageSpec = {
  name: 'signed-ll',
  mti: { encoding: 'bcd' },
  bitmap: { encoding: 'binary', secondary: false },
  fields: {
    '2': { name: 'amount', type: 'x+n', length: { kind: 'LL', max: 13, prefix: 'bcd' }, encoding: 'bcd' },
    '3': { name: 'next', type: 'n', length: { kind: 'fixed', max: 2 }, encoding: 'bcd' },
  },
};
const signed = compileSpec(SIGNED_SPEC);
errors.push(
  [
    'unpack: a variable BCD x+n announced with length 0 (was: read one byte past the field)',
    () => unpack(signed, fromHex(`0200${'6000000000000000'}004312`)),
    'ISO8583_LENGTH_INVALID',
    '2',
    10,
    '2: a signed amount needs its sign (at byte 10)',
  ],
  [
    'unpack: the same at the very end of the input',
    () => unpack(signed, fromHex(`0200${'4000000000000000'}00`)),
    'ISO8583_LENGTH_INVALID',
    '2',
    10,
    '2: a signed amount needs its sign (at byte 10)',
  ],
);

for (const [name, run, code, field, offset, message] of errors) {
  test(`error: ${name}`, () => {
    assert.throws(run, (e: unknown) => {
      assert.ok(e instanceof Iso8583Error, `not an Iso8583Error: ${String(e)}`);
      assert.equal(e.code, code);
      assert.equal(e.field, field);
      assert.equal(e.offset, offset);
      assert.equal(e.message, message);
      return true;
    });
  });
}

test('x+n in BCD with an LL prefix: lengths 1 (sign only) and 4 unpack and round-trip', () => {
  for (const v of ['C', 'D123', 'C000000001234']) {
    const b = pack(signed, new Iso8583Message(signed, '0200', { '2': v, '3': '12' }));
    const m = unpack(signed, b);
    assert.equal(m.get('2'), v);
    assert.equal(m.get('3'), '12');
  }
});
