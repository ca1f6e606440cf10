// The MAC field and MAC input rule of docs/network.md ("MAC field and input (MAB), every leg"):
// 64 without a secondary bitmap, 128 with one; MAB = packed bytes minus their last 8, packed with the MAC
// field's bit set. Every case states the expected field; every error its exact code, field, offset, message.
import assert from 'node:assert/strict';
import { describe as suite, test } from 'node:test';
import fc from 'fast-check';
import {
  compileSpec,
  hexToBytes,
  Iso8583Error,
  Iso8583Message,
  loadSpec,
  MAC_BYTES,
  type MessageSpec,
  macFieldOf,
  macInputOf,
  pack,
  packForMac,
  unpack,
} from '../src/index.js';

const bin = loadSpec('iso87-binary');
const asc = loadSpec('iso87-ascii');
const cup = loadSpec('cup-pos');

/** iso87-ascii (hex bitmaps, ASCII MTI) with its MAC fields as 8 binary bytes: the hex-bitmap path. */
const ascBinMacSource = structuredClone(asc.source) as MessageSpec;
for (const f of ['64', '128']) ascBinMacSource.fields[f]!.encoding = 'binary';
const ascBinMac = compileSpec({ ...ascBinMacSource, name: 'iso87-ascii-binary-mac' });

const F90 = '020012345612251030450000048020000000000000'; // 4 + 6 + 10 + 11 + 11 digits
const MAC = hexToBytes('0102030405060708', 'mac');

function purchase(): Iso8583Message {
  return new Iso8583Message(bin, '0200', {
    2: '6225880123456789',
    3: '000000',
    4: '000000012345',
    11: '000123',
    41: 'TERM0001',
    42: 'MERCHANT0000001',
  });
}

function voidWith90(): Iso8583Message {
  return purchase().set(3, '020000').set(90, F90);
}

/** The bitmap byte and bit of field `id` in a packed message whose MTI takes `mtiBytes`. */
function bitOf(id: number, mtiBytes = 2): [at: number, mask: number] {
  return [mtiBytes + ((id - 1) >> 3), 0x80 >> ((id - 1) & 7)];
}

function expectError(
  run: () => unknown,
  code: string,
  field: string,
  offset: number | undefined,
  message: string,
) {
  assert.throws(run, (e: unknown) => {
    assert.ok(e instanceof Iso8583Error, `not an Iso8583Error: ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.field, field);
    assert.equal(e.offset, offset);
    assert.equal(e.message, message);
    return true;
  });
}

suite('macFieldOf', () => {
  const cases: Array<[name: string, run: () => number, expected: 64 | 128]> = [
    ['iso87-binary purchase fields', () => macFieldOf(bin, [2, 3, 4, 11, 41, 42]), 64],
    ['iso87-binary fields with 90 (void, refund, reversal)', () => macFieldOf(bin, [2, 3, 4, 11, 90]), 128],
    ['field ids as strings', () => macFieldOf(bin, ['3', '90']), 128],
    ['a fields object', () => macFieldOf(bin, { 3: '020000', 90: F90 }), 128],
    ['a fields object whose 90 is undefined', () => macFieldOf(bin, { 3: '020000', 90: undefined }), 64],
    ['only 64', () => macFieldOf(bin, [64]), 64],
    ['128 itself is a secondary-bitmap field', () => macFieldOf(bin, [128]), 128],
    ['65 (the first secondary field)', () => macFieldOf(bin, [3, 65]), 128],
    ['no field at all', () => macFieldOf(bin, []), 64],
    ['cup-pos subfield paths', () => macFieldOf(cup, ['3', '60.2', '64'], '0200'), 64],
    ['a purchase message', () => macFieldOf(purchase()), 64],
    ['a purchase message with 64', () => macFieldOf(purchase().set(64, MAC)), 64],
    ['a void message with 90', () => macFieldOf(voidWith90()), 128],
    [
      'an unpacked void with 90 and 128',
      () => macFieldOf(unpack(bin, pack(bin, voidWith90().set(128, MAC)))),
      128,
    ],
    [
      'a cup-pos purchase',
      () => macFieldOf(new Iso8583Message(cup, '0200', { 3: '000000', 11: '000001' })),
      64,
    ],
  ];
  for (const [name, run, expected] of cases)
    test(`${name}: ${expected}`, () => assert.equal(run(), expected));

  test('a spec without field 128 (cup-pos) and a field above 64', () =>
    expectError(
      () => macFieldOf(cup, [3, 90]),
      'ISO8583_MAC_FIELD_INVALID',
      '128',
      undefined,
      '128: spec cup-pos does not define the MAC field (64 without a secondary bitmap, 128 with one)',
    ));
  test('a spec whose MAC field is hex on the wire (iso87-ascii)', () =>
    expectError(
      () => macFieldOf(new Iso8583Message(asc, '0200', { 3: '000000' })),
      'ISO8583_MAC_FIELD_INVALID',
      '64',
      undefined,
      '64: spec iso87-ascii must define the MAC field as 8 binary bytes (type b, fixed length 8, binary encoding)',
    ));
  test('a field id out of range', () =>
    expectError(
      () => macFieldOf(bin, [3, 129]),
      'ISO8583_FIELD_UNKNOWN',
      '129',
      undefined,
      '129: a field id is a number from 2 to 128',
    ));
  test('a field path that is no field', () =>
    expectError(
      () => macFieldOf(bin, { x: '1' }),
      'ISO8583_FIELD_UNKNOWN',
      'x',
      undefined,
      'x: a field id is a number from 2 to 128',
    ));
  test('programmer misuse: no fields', () => {
    assert.throws(
      () => (macFieldOf as unknown as (s: unknown) => number)(bin),
      new TypeError('macFieldOf: pass a message, or a spec and its fields'),
    );
  });
});

suite('macInputOf', () => {
  test('64: primary bitmap only, MAB = bytes minus the last 8 with bit 64 set', () => {
    const bytes = pack(bin, purchase().set(64, MAC));
    const mab = macInputOf(bin, bytes);
    assert.deepEqual(mab, bytes.subarray(0, bytes.length - 8));
    assert.equal(bytes[2]! & 0x80, 0, 'no secondary bitmap');
    const [at, mask] = bitOf(64);
    assert.equal(mab[at]! & mask, mask, 'bit 64 set in the MAB');
    assert.deepEqual(bytes.subarray(bytes.length - 8), MAC);
  });

  test('128: a secondary bitmap, MAB covers field 90 and has bit 128 set, not 64', () => {
    const bytes = pack(bin, voidWith90().set(128, MAC));
    const mab = macInputOf(bin, bytes);
    assert.equal(mab.length, bytes.length - 8);
    assert.equal(bytes[2]! & 0x80, 0x80, 'bit 1: secondary bitmap');
    const [at128, mask128] = bitOf(128);
    assert.equal(mab[at128]! & mask128, mask128, 'bit 128 set in the MAB');
    const [at64, mask64] = bitOf(64);
    assert.equal(mab[at64]! & mask64, 0, 'bit 64 clear');
    // Field 90 (42 BCD digits = 21 bytes) ends right where the MAC starts.
    assert.deepEqual(mab.subarray(mab.length - 21), hexToBytes(F90, 'f90'));
  });

  test('a view of the input: bytes as received, not a re-packing', () => {
    const bytes = pack(bin, purchase().set(64, MAC));
    const mab = macInputOf(bin, bytes);
    assert.equal(mab.buffer, bytes.buffer);
    assert.equal(mab.byteOffset, bytes.byteOffset);
  });

  test('hex bitmaps (ASCII MTI): 64 and 128', () => {
    const m64 = new Iso8583Message(ascBinMac, '0200', { 3: '000000', 11: '000001' }).set(64, MAC);
    const b64 = pack(ascBinMac, m64);
    assert.deepEqual(macInputOf(ascBinMac, b64), b64.subarray(0, b64.length - 8));
    const m128 = new Iso8583Message(ascBinMac, '0400', { 3: '000000', 90: F90 }).set(128, MAC);
    const b128 = pack(ascBinMac, m128);
    assert.equal(Number.parseInt(String.fromCharCode(b128[4]!), 16) & 8, 8, 'hex bitmap: bit 1 set');
    assert.deepEqual(macInputOf(ascBinMac, b128), b128.subarray(0, b128.length - 8));
  });

  test('cup-pos: always 64', () => {
    const m = new Iso8583Message(cup, '0200', { 3: '000000', 11: '000001', 41: 'TERM0001' }).set(64, MAC);
    const bytes = pack(cup, m);
    assert.deepEqual(macInputOf(cup, bytes), bytes.subarray(0, bytes.length - 8));
  });

  const MAC_RULE = 'the MAC field (64 without a secondary bitmap, 128 with one)';
  const errors: Array<
    [
      name: string,
      run: () => unknown,
      code: string,
      field: string,
      offset: number | undefined,
      message: string,
    ]
  > = [
    [
      '64 followed by 90: the MAC is not the last field',
      () => macInputOf(bin, pack(bin, voidWith90().set(64, MAC))),
      'ISO8583_MAC_FIELD_INVALID',
      '128',
      undefined,
      `128: the last field must be ${MAC_RULE}; it is 90`,
    ],
    [
      'no MAC field (a message that was never MACed)',
      () => macInputOf(bin, pack(bin, purchase())),
      'ISO8583_MAC_FIELD_INVALID',
      '64',
      undefined,
      `64: the last field must be ${MAC_RULE}; it is 42`,
    ],
    [
      'no field at all',
      () => macInputOf(bin, hexToBytes('02000000000000000000', 'm')),
      'ISO8583_MAC_FIELD_INVALID',
      '64',
      undefined,
      `64: the last field must be ${MAC_RULE}; the message has no field`,
    ],
    [
      'a secondary bitmap with no field in it',
      () =>
        macInputOf(bin, hexToBytes(`0200${'8000000000000001'}${'0000000000000000'}${'00'.repeat(8)}`, 'm')),
      'ISO8583_MAC_FIELD_INVALID',
      '128',
      undefined,
      `128: the last field must be ${MAC_RULE}; it is 64`,
    ],
    [
      'a spec whose MAC field is hex (iso87-ascii)',
      () => macInputOf(asc, new TextEncoder().encode(`0200${'0000000000000001'}${'AB'.repeat(8)}`)),
      'ISO8583_MAC_FIELD_INVALID',
      '64',
      undefined,
      '64: spec iso87-ascii must define the MAC field as 8 binary bytes (type b, fixed length 8, binary encoding)',
    ],
    [
      'empty input',
      () => macInputOf(bin, new Uint8Array(0)),
      'ISO8583_TRUNCATED',
      'mti',
      0,
      'mti: MTI needs 2 bytes, 0 remain (at byte 0)',
    ],
    [
      'short primary bitmap',
      () => macInputOf(bin, hexToBytes('0200000000', 'm')),
      'ISO8583_TRUNCATED',
      'bitmap',
      2,
      'bitmap: primary bitmap needs 8 bytes, 3 remain (at byte 2)',
    ],
    [
      'short secondary bitmap',
      () => macInputOf(bin, hexToBytes('0200800000000000000000', 'm')),
      'ISO8583_TRUNCATED',
      'bitmap',
      10,
      'bitmap: secondary bitmap needs 8 bytes, 1 remain (at byte 10)',
    ],
    [
      'a MAC field shorter than 8 bytes',
      () => macInputOf(bin, hexToBytes('02000000000000000001AABBCCDDEE', 'm')),
      'ISO8583_TRUNCATED',
      '64',
      10,
      '64: the MAC needs 8 bytes, 5 remain (at byte 10)',
    ],
    [
      'MTI not BCD digits',
      () => macInputOf(bin, hexToBytes('0A000000000000000001', 'm')),
      'ISO8583_MTI_INVALID',
      'mti',
      0,
      'mti: MTI is not 4 digits (at byte 0)',
    ],
    [
      'a secondary bitmap in cup-pos',
      () => macInputOf(cup, hexToBytes(`0200${'8000000000000001'}${'00'.repeat(16)}`, 'm')),
      'ISO8583_BITMAP_INVALID',
      'bitmap',
      2,
      'bitmap: bit 1 announces a secondary bitmap, which spec cup-pos does not allow (at byte 2)',
    ],
    [
      'a hex bitmap with a character that is not hex',
      () => macInputOf(ascBinMac, new TextEncoder().encode(`0200${'000000000000000G'}${'AB'.repeat(4)}`)),
      'ISO8583_BITMAP_INVALID',
      'bitmap',
      19,
      'bitmap: bitmap is not hex (at byte 19)',
    ],
  ];
  for (const [name, run, code, field, offset, message] of errors)
    test(`${code}: ${name}`, () => expectError(run, code, field, offset, message));

  test('programmer misuse: not bytes', () => {
    assert.throws(
      () => macInputOf(bin, 'CAFE' as unknown as Uint8Array),
      new TypeError('macInputOf: packed must be a Uint8Array'),
    );
  });

  test('no error message holds the PAN', () => {
    const bytes = pack(bin, purchase());
    try {
      macInputOf(bin, bytes);
      assert.fail('expected a throw');
    } catch (e) {
      assert.ok(!String((e as Error).message).includes('6225880123456789'));
    }
  });
});

suite('packForMac', () => {
  test('a purchase: 64, 8 zero bytes last, MAB = bytes minus them, placeholder in the message', () => {
    const m = purchase();
    const { bytes, mab, macField } = packForMac(bin, m);
    assert.equal(macField, 64);
    assert.deepEqual(bytes.subarray(bytes.length - MAC_BYTES), new Uint8Array(8));
    assert.deepEqual(mab, bytes.subarray(0, bytes.length - MAC_BYTES));
    assert.deepEqual(macInputOf(bin, bytes), mab);
    assert.deepEqual(m.get(64), new Uint8Array(8));
  });

  test('a void with 90 and a stale 64: 128, and 64 is gone', () => {
    const m = voidWith90().set(64, MAC);
    const { bytes, macField } = packForMac(bin, m);
    assert.equal(macField, 128);
    assert.equal(m.has(64), false);
    bytes.set(MAC, bytes.length - MAC_BYTES);
    const back = unpack(bin, bytes);
    assert.deepEqual(back.get(128), MAC);
    assert.equal(back.has(64), false);
  });

  test('a stale 128 and nothing else above 64: back to 64, no secondary bitmap', () => {
    const m = purchase().set(128, MAC);
    const { bytes, macField } = packForMac(bin, m);
    assert.equal(macField, 64);
    assert.equal(m.has(128), false);
    assert.equal(bytes[2]! & 0x80, 0);
  });

  test('cup-pos: 64', () => {
    const m = new Iso8583Message(cup, '0200', { 3: '000000', 11: '000001', 41: 'TERM0001' });
    assert.equal(packForMac(cup, m).macField, 64);
  });

  test('a spec whose MAC field is not 8 binary bytes', () =>
    expectError(
      () => packForMac(asc, new Iso8583Message(asc, '0200', { 3: '000000' })),
      'ISO8583_MAC_FIELD_INVALID',
      '64',
      undefined,
      '64: spec iso87-ascii must define the MAC field as 8 binary bytes (type b, fixed length 8, binary encoding)',
    ));

  test('cup-pos cannot carry field 90 (and so no MAC for it)', () => {
    const m = voidWith90();
    expectError(
      () => packForMac(cup, m),
      'ISO8583_MAC_FIELD_INVALID',
      '128',
      undefined,
      '128: spec cup-pos does not define the MAC field (64 without a secondary bitmap, 128 with one)',
    );
  });

  // Fields of iso87-binary with a value generator each; 90, 95 and 102 live in the secondary bitmap.
  const digits = (n: number) => fc.stringMatching(new RegExp(`^[0-9]{${n}}$`));
  const text = (n: number) => fc.stringMatching(new RegExp(`^[A-Z0-9 ]{${n}}$`));
  const gens: Record<number, fc.Arbitrary<string | Uint8Array>> = {
    2: fc.stringMatching(/^[0-9]{12,19}$/),
    3: digits(6),
    4: digits(12),
    11: digits(6),
    13: digits(4),
    37: text(12),
    41: text(8),
    42: text(15),
    52: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    90: digits(42),
    95: text(42),
    102: fc.stringMatching(/^[A-Z0-9]{1,28}$/),
  };
  const message = fc
    .record(Object.fromEntries(Object.entries(gens).map(([k, g]) => [k, fc.option(g, { nil: undefined })])))
    .map((fields) => {
      const m = new Iso8583Message(bin, '0200');
      for (const [k, v] of Object.entries(fields)) if (v !== undefined) m.set(k, v);
      return m;
    });

  test('property: packForMac, write a MAC in the last 8 bytes, unpack: the MAC is in the right field', () => {
    fc.assert(
      fc.property(message, fc.boolean(), fc.uint8Array({ minLength: 8, maxLength: 8 }), (m, stale, mac) => {
        if (stale) m.set(64, mac); // a stale MAC field never decides or survives
        const secondary = m.fieldIds().some((id) => id > 64);
        const without = m.clone();
        if (stale) without.unset(64);
        const { bytes, mab, macField } = packForMac(bin, m);
        assert.equal(macField, secondary ? 128 : 64);
        // The docs' definition, independently: the message packed without its MAC, MAC bit set.
        const expected = pack(bin, without).slice();
        const [at, mask] = bitOf(macField);
        expected[at]! |= mask;
        assert.deepEqual(mab, expected);
        const mabCopy = mab.slice();
        bytes.set(mac, bytes.length - MAC_BYTES);
        assert.deepEqual(mab, mabCopy, 'writing the MAC leaves the MAB alone');
        assert.deepEqual(macInputOf(bin, bytes), mabCopy);
        const back = unpack(bin, bytes);
        assert.deepEqual(back.get(macField), mac);
        assert.equal(back.has(macField === 64 ? 128 : 64), false);
        assert.equal(macFieldOf(back), macField);
        const ids = back.fieldIds();
        assert.equal(ids[ids.length - 1], macField);
      }),
      { numRuns: 300 },
    );
  });

  test('property: cup-pos messages always MAC in 64', () => {
    fc.assert(
      fc.property(
        fc.record({ 3: digits(6), 11: digits(6), 41: text(8), 42: text(15) }),
        fc.uint8Array({ minLength: 8, maxLength: 8 }),
        (fields, mac) => {
          const m = new Iso8583Message(cup, '0200', fields);
          const { bytes, macField } = packForMac(cup, m);
          assert.equal(macField, 64);
          bytes.set(mac, bytes.length - MAC_BYTES);
          assert.deepEqual(unpack(cup, bytes).get(64), mac);
        },
      ),
      { numRuns: 100 },
    );
  });
});
