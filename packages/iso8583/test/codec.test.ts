// Golden messages of iso87-binary and iso87-ascii (hand-assembled from the jPOS packager rules, see the
// `source` in each file), field-level encodings against hand-computed bytes, subfields, masking, responses.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe as suite, test } from 'node:test';
import {
  bytesToHex,
  compileSpec,
  describe,
  fromJson,
  hexToBytes,
  Iso8583Message,
  listSpecs,
  loadSpec,
  pack,
  startResponse,
  toJson,
  unpack,
} from '../src/index.js';
import { TEST_SPEC } from './specs.js';

interface Golden {
  spec: string;
  source: string;
  messages: Array<{ id: string; mti: string; hex: string; fields: Record<string, string> }>;
}

const goldenDir = new URL('./golden/', import.meta.url);
function golden(name: string): Golden {
  return JSON.parse(readFileSync(new URL(`${name}.json`, goldenDir), 'utf8')) as Golden;
}

for (const name of ['iso87-binary', 'iso87-ascii']) {
  const g = golden(name);
  const spec = loadSpec(g.spec);
  suite(`golden ${name}`, () => {
    assert.ok(g.messages.length >= 5);
    for (const m of g.messages) {
      test(`${m.id}: unpack gives the expected fields`, () => {
        const msg = unpack(spec, hexToBytes(m.hex, 'hex'));
        assert.equal(msg.mti, m.mti);
        assert.deepEqual(toJsonFlat(msg), m.fields);
      });
      test(`${m.id}: pack of the expected fields gives the golden bytes`, () => {
        const msg = fromJson(spec, { mti: m.mti, fields: m.fields });
        assert.equal(bytesToHex(pack(spec, msg)), m.hex);
      });
    }
  });
}

/** Field values as strings (b as hex), whole fields (not split in subfields). */
function toJsonFlat(m: Iso8583Message): Record<string, string> {
  const out: Record<string, string> = {};
  for (const id of m.fieldIds()) {
    const v = m.get(id)!;
    out[id] = v instanceof Uint8Array ? bytesToHex(v) : v;
  }
  return out;
}

const mix = compileSpec(TEST_SPEC);

/** Pack one field in a message of the test spec and return the field's bytes (after MTI 4 + bitmap 8). */
function fieldHex(id: string, value: string | Uint8Array, readBack?: string): string {
  const m = new Iso8583Message(mix, '0100', { [id]: value });
  const b = pack(mix, m);
  const back = unpack(mix, b);
  assert.deepEqual(back.get(id), readBack ?? value);
  return bytesToHex(b.subarray(12));
}

suite('field encodings (expected bytes computed by hand)', () => {
  test('EBCDIC MTI: 0100 -> F0 F1 F0 F0', () => {
    const b = pack(mix, new Iso8583Message(mix, '0100', { '3': '1' }));
    assert.equal(bytesToHex(b.subarray(0, 4)), 'F0F1F0F0');
  });
  test('BCD left-justified with pad F and a binary LL prefix (odd PAN)', () => {
    assert.equal(fieldHex('2', '4761739001010'), '0D4761739001010F');
  });
  test('BCD right-justified (jPOS LEFT_PADDED) vs left-justified (UnionPay): 072', () => {
    assert.equal(fieldHex('3', '072'), '0072');
    assert.equal(fieldHex('4', '072'), '0720');
  });
  test('fixed n is left-padded with zeros', () => {
    assert.equal(fieldHex('3', '7', '007'), '0007');
  });
  test('EBCDIC text with an EBCDIC LLL prefix (CP037)', () => {
    assert.equal(fieldHex('5', 'Ab 1.'), 'F0F0F5C18240F14B');
  });
  test('BCD LLLL prefix is 2 bytes', () => {
    assert.equal(fieldHex('6', 'xyz'), '000378797A');
  });
  test('binary LLL prefix is 2 bytes big-endian', () => {
    assert.equal(fieldHex('7', new Uint8Array(258).fill(7)).slice(0, 8), '01020707');
  });
  test('hex encoding counts bytes of the value (jPOS IFA_LLBINARY)', () => {
    assert.equal(fieldHex('8', Uint8Array.of(0xab, 0x01)), '3032' + '41423031');
  });
  test('x+n ASCII: sign kept, digits zero-padded', () => {
    assert.equal(fieldHex('9', 'D150', 'D00000150'), bytesToHex(new TextEncoder().encode('D00000150')));
  });
  test("track 2 in BCD: '=' packs as nibble D, F pad, reads back as D", () => {
    assert.equal(fieldHex('10', '4761=2512', '4761D2512'), '09' + '4761D2512F');
  });
  test('length unit bytes: the prefix counts packed bytes; an F pad marks an odd digit count', () => {
    assert.equal(fieldHex('11', '12345'), '03' + '12345F');
    assert.equal(fieldHex('11', '1234'), '02' + '1234');
  });
  test('an fixed is right-padded with spaces', () => {
    assert.equal(fieldHex('12', 'AB', 'AB    '), '414220202020');
  });
  test('n in EBCDIC', () => {
    assert.equal(fieldHex('13', '0042'), 'F0F0F4F2');
  });
  test('UnionPay field 60 (LLL BCD, digits, left-justified): 22 000024 000 -> 0011 220000240000', () => {
    assert.equal(fieldHex('60', '22000024000'), '0011220000240000');
  });
});

suite('subfields', () => {
  test('positional in a BCD field: get, set, fill of missing earlier subfields', () => {
    const m = new Iso8583Message(mix, '0800');
    m.set('60.3', '003');
    assert.equal(m.get('60'), '00000000003');
    m.set('60.2', '000172');
    assert.equal(m.get('60'), '00000172003');
    assert.equal(m.get('60.1'), '00');
    assert.equal(m.get('60.4'), undefined);
    m.set('60.1', '22');
    m.unset('60.3');
    assert.equal(m.get('60'), '22000172');
  });
  test('positional with an inner LL and a rest subfield (text)', () => {
    const m = new Iso8583Message(mix, '0800');
    m.set('63.2', 'hello');
    m.set('63.3', 'tail');
    assert.equal(m.get('63'), '   05hellotail');
    m.set('63.1', '001');
    assert.equal(m.get('63.1'), '001');
    assert.equal(m.get('63.2'), 'hello');
    assert.equal(m.get('63.3'), 'tail');
  });
  test('positional in a b field: fixed bytes then a 1-byte LL', () => {
    const m = new Iso8583Message(mix, '0810');
    m.set('62.1', Uint8Array.of(1, 2, 3, 4));
    m.set('62.2', Uint8Array.of(9, 9));
    assert.equal(bytesToHex(m.get('62') as Uint8Array), '01020304020909');
    assert.deepEqual(m.get('62.2'), Uint8Array.of(9, 9));
  });
  test('field 90 of iso87-binary: five original data elements', () => {
    const s = loadSpec('iso87-binary');
    const m = new Iso8583Message(s, '0400', { '90': '020000032112251030150001234567800000000000' });
    assert.equal(m.get('90.1'), '0200');
    assert.equal(m.get('90.2'), '000321');
    assert.equal(m.get('90.3'), '1225103015');
    assert.equal(m.get('90.4'), '00012345678');
    assert.equal(m.get('90.5'), '00000000000');
    m.set('90.2', '000999');
    assert.equal(m.get('90'), '020000099912251030150001234567800000000000');
  });
  test('BER-TLV in field 55: 1, 2 and long-form lengths, set keeps order and replaces', () => {
    const s = loadSpec('iso87-binary');
    const m = new Iso8583Message(s, '0200');
    m.set('55.9F26', Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
    m.set('55.82', Uint8Array.of(0x19, 0x80));
    m.set('55.9F10', new Uint8Array(200).fill(0x11));
    const v = bytesToHex(m.get('55') as Uint8Array);
    assert.equal(v.slice(0, 38), '9F2608010203040506070882021980' + '9F1081C8');
    m.set('55.9f26', Uint8Array.of(0xaa));
    assert.equal(bytesToHex(m.get('55') as Uint8Array).slice(0, 8), '9F2601AA');
    m.unset('55.82');
    assert.equal(m.get('55.82'), undefined);
    const back = unpack(s, pack(s, m));
    assert.deepEqual(back.get('55.9F10'), new Uint8Array(200).fill(0x11));
  });
  test('TLV: 3-byte tags and 0x00 padding between objects', () => {
    const s = loadSpec('iso87-binary');
    const m = new Iso8583Message(s, '0200', { '55': hexToBytes('00DF810102AABB009F0200', 'x') });
    assert.deepEqual(m.get('55.DF8101'), Uint8Array.of(0xaa, 0xbb));
    assert.deepEqual(m.get('55.9F02'), new Uint8Array(0));
  });
});

suite('describe, toJson, masking', () => {
  const s = loadSpec('iso87-binary');
  const g = golden('iso87-binary').messages[0]!;
  const m = unpack(s, hexToBytes(g.hex, 'hex'));
  const pan = g.fields['2']!;
  test('describe masks PAN (6+4), expiry, track 2, PIN block, ICC data', () => {
    const d = describe(m);
    assert.match(d, /476173\*\*\*\*\*\*0010/);
    assert.ok(!d.includes(pan));
    assert.ok(!d.includes('D2512'));
    assert.ok(!d.includes('0123456789ABCDEF'));
    assert.ok(!d.includes('A1B2C3D4E5F60718'));
    assert.match(d, / 14 +Date, expiration +\*\*\*\*$/m);
  });
  test('toString, JSON.stringify and util.inspect are masked', async () => {
    const { inspect } = await import('node:util');
    for (const text of [String(m), JSON.stringify(m), inspect(m)]) assert.ok(!text.includes(pan), text);
  });
  test('reveal shows everything, with 55 split into tags', () => {
    const j = toJson(m, { reveal: true });
    assert.equal(j.fields['2'], pan);
    assert.equal((j.fields['55'] as Record<string, string>)['9F26'], 'A1B2C3D4E5F60718');
    assert.match(describe(m, { reveal: true }), /55\.9F26 {2}Application cryptogram/);
  });
  test('masked JSON view', () => {
    const j = toJson(m);
    assert.equal(j.fields['2'], '476173******0010');
    assert.equal(j.fields['52'], '****************');
    assert.equal(j.fields['3'], '000000');
  });
  test('sensitive subfields are masked on their own', () => {
    const x = new Iso8583Message(mix, '0810');
    x.set('62.1', Uint8Array.of(1, 2, 3, 4)).set('62.2', Uint8Array.of(5));
    assert.deepEqual(toJson(x).fields['62'], { '1': '********', '2': '05' });
  });
});

suite('startResponse', () => {
  const s = loadSpec('iso87-binary');
  test('0200 -> 0210 with the echoed fields only (no track, PIN, MAC)', () => {
    const g = golden('iso87-binary').messages[0]!;
    const r = startResponse(unpack(s, hexToBytes(g.hex, 'hex')));
    assert.equal(r.mti, '0210');
    assert.deepEqual(r.fieldIds(), [2, 3, 4, 7, 11, 12, 13, 41, 42, 49]);
  });
  for (const [req, resp] of [
    ['0800', '0810'],
    ['0400', '0410'],
    ['0401', '0410'],
    ['0220', '0230'],
    ['0100', '0110'],
  ]) {
    test(`${req} -> ${resp}`, () => assert.equal(startResponse(new Iso8583Message(s, req!)).mti, resp));
  }
  test('the echo list comes from the spec', () => {
    const custom = compileSpec({ ...TEST_SPEC, response: { echo: ['3'] } });
    const r = startResponse(new Iso8583Message(custom, '0100', { '3': '1', '4': '2' }));
    assert.deepEqual(r.fieldIds(), [3]);
  });
});

suite('specs', () => {
  test('built-in specs are listed and load by name; all 128 fields of ISO 8583:1987', () => {
    assert.ok(listSpecs().includes('iso87-binary'));
    assert.ok(listSpecs().includes('iso87-ascii'));
    for (const n of ['iso87-binary', 'iso87-ascii']) {
      const s = loadSpec(n);
      for (let i = 2; i <= 128; i++) assert.ok(s.fields[i], `${n} field ${i}`);
      assert.equal(loadSpec(n), s, 'cached');
    }
  });
  test('a spec loads from a path and from an object', () => {
    const path = new URL('../specs/iso87-ascii.json', import.meta.url).pathname;
    assert.equal(loadSpec(path).name, 'iso87-ascii');
    assert.equal(loadSpec(TEST_SPEC).name, 'test-mix');
  });
});
