/**
 * The cup-pos spec (China UnionPay POS terminal dialect) against
 * - the public sample messages in golden/cup-pos-samples.json (copied from ../shared/samples, sources kept),
 * - the golden messages in golden/cup-pos.json: one per message type, each field justified by a section of
 *   cup-pos-dialect.md, built with an independent packer (not this codec),
 * - a round-trip property over random cup-pos messages.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Iso8583Error } from '../src/errors.js';
import {
  buildCupHeader,
  buildTpdu,
  decodeFrame,
  encodeFrame,
  FrameReader,
  joinCupFrame,
  replyTpdu,
  splitCupFrame,
} from '../src/framing.js';
import { loadSpec } from '../src/load.js';
import {
  type FieldValue,
  Iso8583Message,
  packMessage,
  startResponse,
  unpackMessage,
} from '../src/message.js';
import type { FieldSpec, MessageSpec } from '../src/spec.js';

const spec = loadSpec('cup-pos');
const specJson = JSON.parse(
  readFileSync(new URL('../specs/cup-pos.json', import.meta.url), 'utf8'),
) as MessageSpec;

const fromHex = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex').toUpperCase();
const show = (v: FieldValue | undefined): string | undefined =>
  v === undefined ? undefined : v instanceof Uint8Array ? toHex(v) : v;

/** Every field of a message as display strings (bytes as hex), keyed by field number. */
function fieldsOf(m: Iso8583Message): Record<string, string> {
  const out: Record<string, string> = {};
  for (const id of m.fieldIds()) out[String(id)] = show(m.get(id))!;
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Public samples.

interface Sample {
  id: string;
  source: string;
  hex: string;
  framing: string;
  reconstructed?: boolean;
  notes?: string;
  decoded: { tpdu?: string; header?: string; mti: string; bitmap?: string; fields?: Record<string, string> };
}
const samples = (
  JSON.parse(readFileSync(new URL('./golden/cup-pos-samples.json', import.meta.url), 'utf8')) as {
    samples: Sample[];
  }
).samples;

/**
 * The samples file prints some values differently from this codec, by its own stated convention
 * ("n3 fields (22, 23) shown as the 4 packed digits"; bytes as hex). Turn a printed value into what
 * the cup-pos spec yields.
 */
function expectedFromSample(mti: string, id: string, printed: string): string {
  // n3, left-aligned: the 4th printed digit is the pad nibble (cup-pos-dialect.md 2.2: 072 is sent as 07 20).
  if (id === '22' || id === '23') {
    assert.equal(printed.length, 4);
    assert.equal(printed[3], '0', `${id}: pad nibble`);
    return printed.slice(0, 3);
  }
  // Field 62 outside 0810 is ASCII text (2.2, SpecialField62); the sample prints its bytes in hex.
  if (id === '62' && mti !== '0810') return Buffer.from(printed, 'hex').toString('latin1');
  return printed;
}

/**
 * Samples of the terminal dialect: framed ones, and the jsPOS body without framing.
 * - go8583-log-0200-qr-purchase is flagged `reconstructed`: its hex was reassembled from the values the
 *   source printed field by field. Its round trip shows that this spec agrees with the printed layout
 *   (lengths, BCD padding of 22 and 60, the ASCII MAC text in 64) and that the stated length 0x69 holds;
 *   it does not show that a host sent exactly these bytes. Its MAC is a crypto vector (cup-ecb-mac), not
 *   checked here (the codec does not compute MACs).
 * - go8583-readme-0810-signin-resp: the README's pack output that follows it is known inconsistent (its
 *   bitmap does not match its fields) and is not in the samples; the response itself is used.
 * - ajsgn-*: an issuer dialect: 25 = 65 and a date-like 60.2 are that host's values; its 0810 carries a
 *   16-byte MAK in 62.3, which is why 62.3 is 16 bytes in the spec (see its description).
 * - The alatka-* samples are the POSP-to-CUPS switch leg, a different format (2.8): tested as refused below.
 */
const terminalSamples = samples.filter((s) => s.decoded?.fields !== undefined && !s.id.startsWith('alatka'));

describe('cup-pos: public sample messages', () => {
  test('the samples file is the one in ../shared, every sample names its source', () => {
    assert.ok(terminalSamples.length >= 11);
    for (const s of samples) assert.match(s.source, /github\.com|https?:\/\//);
  });

  for (const s of terminalSamples) {
    const framed = s.decoded.tpdu !== undefined;
    const label = `${s.id}${s.reconstructed ? ' (reconstructed)' : ''}`;
    test(`${label}: unpacks to its decoded fields and re-packs to the same bytes`, () => {
      const wire = fromHex(s.hex);
      let body = wire;
      if (framed) {
        const frame = splitCupFrame(decodeFrame(wire));
        assert.equal(toHex(buildTpdu(frame.tpdu)), s.decoded.tpdu);
        assert.equal(toHex(buildCupHeader(frame.header)), s.decoded.header);
        body = frame.message;
      }
      const m = unpackMessage(spec, body);
      assert.equal(m.mti, s.decoded.mti);
      assert.equal(toHex(body.subarray(2, 10)), s.decoded.bitmap!.toUpperCase());
      const expected: Record<string, string> = {};
      for (const [id, v] of Object.entries(s.decoded.fields!))
        expected[id] = expectedFromSample(m.mti, id, v);
      assert.deepEqual(fieldsOf(m), expected);
      // Re-pack: the codec writes what it read, byte for byte, and so does the framing.
      assert.equal(toHex(packMessage(spec, m)), toHex(body));
      if (framed) {
        const frame = splitCupFrame(decodeFrame(wire));
        assert.equal(
          toHex(encodeFrame(joinCupFrame({ ...frame, message: packMessage(spec, m) }))),
          toHex(wire),
        );
      }
    });
  }

  // Fields decoded beyond the flat values: these make the subfield layout of the spec answer to real data.
  const sub = (id: string, path: string): string | undefined => {
    const s = samples.find((x) => x.id === id)!;
    const body = s.decoded.tpdu ? splitCupFrame(decodeFrame(fromHex(s.hex))).message : fromHex(s.hex);
    return show(unpackMessage(spec, body).get(path));
  };
  test('60 subfields: transaction type, batch, network management code (2.4, 2.5)', () => {
    assert.equal(sub('go8583-log1-0800-signin-req', '60.1'), '00');
    assert.equal(sub('go8583-log1-0800-signin-req', '60.3'), '003');
    assert.equal(sub('go8583-log1-0810-signin-resp', '60.2'), '006603'); // the batch the terminal adopts
    assert.equal(sub('go8583-log-0200-qr-purchase', '60.1'), '22'); // purchase
    assert.equal(sub('go8583-log-0200-qr-purchase', '60.4'), '6');
    assert.equal(sub('go8583-log-0200-qr-purchase', '60.5'), '0');
    assert.equal(sub('ajsgn-0200-balance-inquiry', '60.1'), '01'); // balance inquiry
    assert.equal(sub('ajsgn-0200-balance-inquiry', '60.3'), undefined); // the value stops after 60.2
    assert.equal(sub('csdn-maxwoods-0200-ic-purchase', '60.6'), '0');
  });
  test('61 original data of the 0400 (2.4: 233415 681186 0529)', () => {
    assert.equal(sub('ajsgn-0400-reversal', '61.1'), '233415');
    assert.equal(sub('ajsgn-0400-reversal', '61.2'), '681186');
    assert.equal(sub('ajsgn-0400-reversal', '61.3'), '0529');
    assert.equal(sub('ajsgn-0400-reversal', '39'), '98'); // reversal reason: no response in time (2.7)
  });
  test('62 working keys of the 0810: PIK(16) | CV(4) | MAK(8) + 00x8 | CV(4) (2.5)', () => {
    const id = 'go8583-log1-0810-signin-resp';
    assert.equal(sub(id, '62.1'), 'E01B3E860949EE4C0BDDD573168ED6BA');
    assert.equal(sub(id, '62.2'), '09757555');
    assert.equal(sub(id, '62.3'), '3945990F875BA4EB0000000000000000');
    assert.equal(sub(id, '62.4'), 'EDE09D04');
    assert.equal(sub(id, '62.5'), undefined);
  });
  test('55 BER-TLV of the IC purchase (2.4)', () => {
    assert.equal(sub('csdn-maxwoods-0200-ic-purchase', '55.9F26'), '95BBE372271DDA7C');
    assert.equal(sub('csdn-maxwoods-0200-ic-purchase', '55.9F36'), '0157');
    assert.equal(sub('csdn-maxwoods-0200-ic-purchase', '55.84'), 'A000000333010102');
  });
  test('63.1 operator code', () => {
    assert.equal(sub('ajsgn-0800-signin-req', '63.1'), 'CUP');
    assert.equal(sub('go8583-log-0800-signin-req-62', '63.1'), '001');
  });
  test('the CUPS switch-leg samples are another dialect (2.8): cup-pos refuses them with a typed error', () => {
    const s = samples.find((x) => x.id === 'alatka-cups-0200-switch-leg')!;
    // ASCII "0200" (30 32 30 30) read as a BCD MTI is 3032; the bitmap is then read from 30 30 E2 3A..., whose
    // first set bit without a cup-pos field is 17. Either way the message is refused, typed, never misread.
    assert.throws(
      () => unpackMessage(spec, fromHex(s.hex)),
      (e: unknown) =>
        e instanceof Iso8583Error &&
        e.code === 'ISO8583_FIELD_UNKNOWN' &&
        e.message === '17: bit 17 is set but spec cup-pos does not define the field (at byte 25)',
    );
  });
});

// ---------------------------------------------------------------------------------------------------
// Golden messages.

interface Golden {
  id: string;
  description: string;
  justification: string;
  tpdu: string;
  header: string;
  mti: string;
  hex: string;
  fields: Record<string, string>;
}
const golden = JSON.parse(readFileSync(new URL('./golden/cup-pos.json', import.meta.url), 'utf8')) as {
  messages: Golden[];
};

/** The value a JSON golden field holds, as the message API takes it. */
function valueFor(mti: string, id: string, text: string): FieldValue {
  const override = specJson.overrides?.find((o) => o.mti.includes(mti))?.fields[id];
  const f: FieldSpec = override ?? specJson.fields[id]!;
  return f.type === 'b' ? fromHex(text) : text;
}

describe('cup-pos: golden messages (one per message type)', () => {
  const byId = new Map(golden.messages.map((g) => [g.id, g]));
  test('every message type of the dialect has a golden message', () => {
    const mtis = new Set(golden.messages.map((g) => g.mti));
    for (const mti of [
      '0800',
      '0810',
      '0200',
      '0210',
      '0220',
      '0230',
      '0400',
      '0410',
      '0500',
      '0510',
      '0320',
      '0330',
      '0820',
      '0830',
    ])
      assert.ok(mtis.has(mti), mti);
    for (const g of golden.messages) assert.ok(g.justification.length > 0, g.id);
  });

  for (const g of golden.messages) {
    test(`${g.id}: unpack gives the fields, pack from the fields gives the bytes`, () => {
      const frame = splitCupFrame(decodeFrame(fromHex(g.hex)));
      assert.equal(toHex(buildTpdu(frame.tpdu)), g.tpdu);
      assert.equal(toHex(buildCupHeader(frame.header)), g.header);
      const m = unpackMessage(spec, frame.message);
      assert.equal(m.mti, g.mti);
      assert.deepEqual(fieldsOf(m), g.fields);
      // Packing from the data alone (not from an unpacked message) gives the same wire bytes.
      const built = new Iso8583Message(spec, g.mti);
      for (const [id, v] of Object.entries(g.fields)) built.set(id, valueFor(g.mti, id, v));
      const wire = encodeFrame(joinCupFrame({ ...frame, message: packMessage(spec, built) }));
      assert.equal(toHex(wire), g.hex);
    });
  }

  /** The routing key of 2.3: MTI + 3[0:2] + 25 + 60.1 for financial messages, MTI + 60.3 for management. */
  const routing: Array<[string, string]> = [
    ['cup-0200-purchase', '0200000022'],
    ['cup-0200-balance-inquiry', '0200310001'],
    ['cup-0200-void', '0200200023'],
    ['cup-0220-refund', '0220200025'],
    ['cup-0400-reversal', '0400000022'],
    ['cup-0800-signin-003', '0800003'],
    ['cup-0820-signoff', '0820002'],
    ['cup-0500-settlement', '0500201'],
    ['cup-0320-batch-upload-detail', '0320201'],
    ['cup-0320-batch-upload-end', '0320207'],
  ];
  for (const [id, key] of routing) {
    test(`${id} routes as ${key} (cup-pos-dialect.md 2.3)`, () => {
      const g = byId.get(id)!;
      const m = unpackMessage(spec, splitCupFrame(decodeFrame(fromHex(g.hex))).message);
      const got =
        m.mti[1] === '2' || m.mti[1] === '4'
          ? m.mti + String(m.get('3')).slice(0, 2) + String(m.get('25')) + String(m.get('60.1'))
          : m.mti + String(m.get('60.3'));
      assert.equal(got, key);
    });
  }

  test('every response TPDU is its request TPDU swapped (2.1)', () => {
    for (const g of golden.messages) {
      const isResponse = Number(g.mti[2]) % 2 === 1;
      if (!isResponse) continue;
      const req = golden.messages.find(
        (r) => r.mti === `${g.mti.slice(0, 2)}${Number(g.mti[2]) - 1}${g.mti[3]}`,
      )!;
      const reqTpdu = splitCupFrame(decodeFrame(fromHex(req.hex))).tpdu;
      assert.equal(toHex(buildTpdu(replyTpdu(reqTpdu))), g.tpdu, g.id);
    }
  });

  test('0810 field 62 subfields: 003 = 40 bytes, 004 = 60 bytes with the TDK', () => {
    const keys = (id: string) =>
      unpackMessage(spec, splitCupFrame(decodeFrame(fromHex(byId.get(id)!.hex))).message);
    const k3 = keys('cup-0810-signin-003');
    assert.equal((k3.get('62') as Uint8Array).length, 40);
    assert.equal(show(k3.get('62.3'))!.slice(16), '0000000000000000'); // 8-byte MAK then 8 zero bytes
    assert.equal(k3.get('62.5'), undefined);
    const k4 = keys('cup-0810-signin-004');
    assert.equal((k4.get('62') as Uint8Array).length, 60);
    assert.equal((k4.get('62.5') as Uint8Array).length, 16);
    assert.equal((k4.get('62.6') as Uint8Array).length, 4);
  });

  test('0500/0510 field 48 totals: flag 1 from the terminal, 2 from the POSP on a mismatch (2.7)', () => {
    const get = (id: string) =>
      unpackMessage(spec, splitCupFrame(decodeFrame(fromHex(byId.get(id)!.hex))).message);
    const req = get('cup-0500-settlement');
    assert.equal(req.get('48.1'), '000000012345');
    assert.equal(req.get('48.2'), '001');
    assert.equal(req.get('48.5'), '1');
    assert.equal(get('cup-0510-settlement-unbalanced').get('48.5'), '2');
    // Outside 0500/0510, 48 has no totals layout: the 0320 end-of-batch carries an n4 count.
    const end = get('cup-0320-batch-upload-end');
    assert.equal(end.get('48'), '0001');
    assert.throws(
      () => end.get('48.1'),
      (e: unknown) => e instanceof Iso8583Error && e.code === 'ISO8583_FIELD_UNKNOWN',
    );
  });

  test('startResponse on the purchase echoes what the golden 0210 carries', () => {
    const get = (id: string) =>
      unpackMessage(spec, splitCupFrame(decodeFrame(fromHex(byId.get(id)!.hex))).message);
    const resp = startResponse(get('cup-0200-purchase'));
    const golden0210 = get('cup-0210-purchase');
    assert.equal(resp.mti, '0210');
    assert.deepEqual(resp.fieldIds(), [2, 3, 4, 11, 25, 41, 42, 49, 60]);
    for (const id of resp.fieldIds()) assert.equal(show(resp.get(id)), show(golden0210.get(id)), String(id));
  });
});

// ---------------------------------------------------------------------------------------------------
// Round trip on random messages.

const DIGITS = '0123456789'.split('');
const PRINTABLE = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i));

/** Lengths a value may have: fields with positional subfields take any length up to their max too. */
function valueArb(f: FieldSpec): fc.Arbitrary<FieldValue> {
  if (f.subfields?.kind === 'tlv-ber') return tlvArb;
  const fixed = f.length.kind === 'fixed';
  const minLength = fixed ? f.length.max : 0;
  const maxLength = f.length.max;
  if (f.type === 'b') return fc.uint8Array({ minLength: fixed ? minLength : 0, maxLength });
  const chars =
    f.type === 'z'
      ? fc.constantFrom(...DIGITS, 'D')
      : f.type === 'n'
        ? fc.constantFrom(...DIGITS)
        : fc.constantFrom(...PRINTABLE);
  return fc.array(chars, { minLength, maxLength }).map((a) => a.join(''));
}

/** Field 55 must hold BER-TLV: a few EMV data objects with short-form lengths (EMV 4.3 Book 3 Annex B). */
const tlvArb: fc.Arbitrary<FieldValue> = fc
  .array(
    fc.tuple(
      fc.constantFrom('9F26', '9F27', '9F10', '95', '9A', '82', '5F2A', '84'),
      fc.uint8Array({ maxLength: 24 }),
    ),
    {
      maxLength: 8,
    },
  )
  .map((items) =>
    Buffer.concat(items.map(([tag, v]) => Buffer.concat([fromHex(tag), Uint8Array.of(v.length), v]))),
  )
  .map((b) => Uint8Array.from(b));

const MTIS = [
  '0200',
  '0210',
  '0220',
  '0230',
  '0320',
  '0330',
  '0400',
  '0410',
  '0500',
  '0510',
  '0800',
  '0810',
  '0820',
  '0830',
];

function fieldsFor(mti: string): Record<string, FieldSpec> {
  const out = { ...specJson.fields };
  for (const o of specJson.overrides ?? []) if (o.mti.includes(mti)) Object.assign(out, o.fields);
  return out;
}

const messageArb = fc.constantFrom(...MTIS).chain((mti) => {
  const fields = fieldsFor(mti);
  const record: Record<string, fc.Arbitrary<FieldValue>> = {};
  for (const [id, f] of Object.entries(fields)) record[id] = valueArb(f);
  return fc.tuple(fc.constant(mti), fc.record(record, { requiredKeys: [] }));
});

describe('cup-pos: round trip on random messages', () => {
  test('pack -> frame -> FrameReader -> split -> unpack gives the same message and the same bytes', () => {
    fc.assert(
      fc.property(messageArb, fc.integer({ min: 0, max: 0xffff }), ([mti, fields], address) => {
        const present: Record<string, FieldValue> = {};
        for (const [id, v] of Object.entries(fields)) if (v !== undefined) present[id] = v;
        const m = new Iso8583Message(spec, mti, present);
        const packed = packMessage(spec, m);
        const header = {
          applicationType: '60',
          softwareVersion: '31',
          terminalStatus: '0',
          processingRequirement: '0',
          reserved: '311003',
        };
        const wire = encodeFrame(
          joinCupFrame({ tpdu: { destination: address, source: 0 }, header, message: packed }),
        );
        const [payload] = new FrameReader().push(wire);
        const back = unpackMessage(spec, splitCupFrame(payload!).message);
        assert.equal(back.mti, mti);
        const expected: Record<string, string> = {};
        for (const [id, v] of Object.entries(present)) expected[id] = show(v)!;
        assert.deepEqual(fieldsOf(back), expected);
        assert.deepEqual(packMessage(spec, back), packed);
      }),
      { numRuns: 300 },
    );
  });
});
