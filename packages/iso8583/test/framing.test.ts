import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Iso8583Error } from '../src/errors.js';
import {
  buildCupHeader,
  buildTpdu,
  type CupHeader,
  decodeFrame,
  encodeFrame,
  FRAME_MAX_BYTES_DEFAULT,
  FRAME_PREFIX_BYTES,
  type FrameLengthPrefix,
  FrameReader,
  joinCupFrame,
  parseCupHeader,
  parseTpdu,
  replyTpdu,
  splitCupFrame,
  type Tpdu,
} from '../src/framing.js';

interface Sample {
  id: string;
  hex: string;
  framing: string;
  decoded: { len?: number; tpdu?: string; header?: string; mti: string };
}
const samples = (
  JSON.parse(readFileSync(new URL('./golden/cup-pos-samples.json', import.meta.url), 'utf8')) as {
    samples: Sample[];
  }
).samples;
const framedSamples = samples.filter((s) => s.decoded?.tpdu !== undefined);

const fromHex = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex').toUpperCase();
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Asserts that `fn` throws an Iso8583Error with exactly this code, field, offset and message. */
function throwsIso(
  fn: () => unknown,
  code: string,
  field: string,
  offset: number | undefined,
  message: string,
): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof Iso8583Error, `expected Iso8583Error, got ${String(e)}`);
    assert.deepEqual(
      { code: e.code, field: e.field, offset: e.offset, message: e.message },
      { code, field, offset, message },
    );
    return true;
  });
}

describe('length prefix: encodeFrame / decodeFrame', () => {
  test('binary2: big-endian length excluding itself', () => {
    assert.equal(toHex(encodeFrame(fromHex('0800'))), '00020800');
    const body = new Uint8Array(0x1a5).fill(7);
    const framed = encodeFrame(body);
    assert.equal(toHex(framed.subarray(0, 2)), '01A5');
    assert.deepEqual(decodeFrame(framed), body);
  });
  test('ascii4: four ASCII decimal digits', () => {
    assert.deepEqual(encodeFrame(ascii('hello'), { prefix: 'ascii4' }), ascii('0005hello'));
    assert.deepEqual(decodeFrame(ascii('0005hello'), { prefix: 'ascii4' }), ascii('hello'));
    const big = new Uint8Array(9999);
    assert.deepEqual(
      encodeFrame(big, { prefix: 'ascii4', maxFrameBytes: 9999 }).subarray(0, 4),
      ascii('9999'),
    );
  });
  for (const s of framedSamples) {
    test(`public sample ${s.id}: its length prefix is re-derived`, () => {
      const wire = fromHex(s.hex);
      const message = decodeFrame(wire);
      assert.equal(message.length, s.decoded.len);
      assert.equal(toHex(encodeFrame(message)), s.hex.toUpperCase());
    });
  }
  test('round trip for any message and either prefix', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 600 }),
        fc.constantFrom<FrameLengthPrefix>('binary2', 'ascii4'),
        (m, prefix) => {
          const f = encodeFrame(m, { prefix });
          assert.equal(f.length, m.length + FRAME_PREFIX_BYTES[prefix]);
          assert.deepEqual(decodeFrame(f, { prefix }), m);
        },
      ),
    );
  });
});

describe('length prefix errors', () => {
  test('an empty message is refused', () => {
    throwsIso(
      () => encodeFrame(new Uint8Array(0)),
      'ISO8583_FRAME_EMPTY',
      'frame.length',
      undefined,
      'frame.length: length is 0',
    );
    throwsIso(
      () => decodeFrame(fromHex('0000')),
      'ISO8583_FRAME_EMPTY',
      'frame.length',
      0,
      'frame.length: length is 0 (at byte 0)',
    );
    throwsIso(
      () => decodeFrame(ascii('0000'), { prefix: 'ascii4' }),
      'ISO8583_FRAME_EMPTY',
      'frame.length',
      0,
      'frame.length: length is 0 (at byte 0)',
    );
  });
  test('a message above the maximum is refused', () => {
    throwsIso(
      () => encodeFrame(new Uint8Array(FRAME_MAX_BYTES_DEFAULT + 1)),
      'ISO8583_FRAME_TOO_LARGE',
      'frame.length',
      undefined,
      'frame.length: length 8193 is above the maximum of 8192 bytes',
    );
    throwsIso(
      () => decodeFrame(fromHex('0011'), { maxFrameBytes: 16 }),
      'ISO8583_FRAME_TOO_LARGE',
      'frame.length',
      0,
      'frame.length: length 17 is above the maximum of 16 bytes (at byte 0)',
    );
    assert.equal(encodeFrame(new Uint8Array(16), { maxFrameBytes: 16 }).length, 18);
  });
  test('an ASCII prefix with a non-digit is refused at the offending byte', () => {
    throwsIso(
      () => decodeFrame(ascii('00x5hello'), { prefix: 'ascii4' }),
      'ISO8583_LENGTH_INVALID',
      'frame.length',
      2,
      'frame.length: an ASCII length prefix must be 4 decimal digits (at byte 2)',
    );
  });
  test('fewer bytes than declared, or inside the prefix', () => {
    throwsIso(
      () => decodeFrame(fromHex('00')),
      'ISO8583_FRAME_TRUNCATED',
      'frame.length',
      1,
      'frame.length: input ends inside the 2-byte length prefix (at byte 1)',
    );
    throwsIso(
      () => decodeFrame(fromHex('0004080000')),
      'ISO8583_FRAME_TRUNCATED',
      'frame',
      5,
      'frame: length says 4 bytes but only 3 follow (at byte 5)',
    );
  });
  test('bytes after the declared frame', () => {
    throwsIso(
      () => decodeFrame(fromHex('0002080000')),
      'ISO8583_FRAME_TRAILING',
      'frame',
      4,
      'frame: 1 byte after the 2-byte frame (at byte 4)',
    );
  });
  test('misuse: an impossible maximum is a RangeError', () => {
    assert.throws(() => encodeFrame(fromHex('00'), { maxFrameBytes: 0 }), RangeError);
    assert.throws(() => new FrameReader({ prefix: 'ascii4', maxFrameBytes: 10000 }), RangeError);
    assert.throws(() => new FrameReader({ maxFrameBytes: 0x10000 }), RangeError);
    assert.throws(() => new FrameReader({ prefix: 'ebcdic' as FrameLengthPrefix }), TypeError);
  });
});

/** Cuts `stream` at the given sorted positions. */
function cut(stream: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of [...points, stream.length]) {
    out.push(stream.slice(from, p));
    from = p;
  }
  return out;
}

describe('FrameReader: partial and coalesced TCP reads', () => {
  test('every public sample, fed one byte at a time, comes out whole', () => {
    const reader = new FrameReader();
    const got: Uint8Array[] = [];
    for (const s of framedSamples) for (const b of fromHex(s.hex)) got.push(...reader.push(Uint8Array.of(b)));
    assert.deepEqual(
      got.map(toHex),
      framedSamples.map((s) => s.hex.toUpperCase().slice(4)),
    );
    assert.equal(reader.bufferedBytes, 0);
    reader.end();
  });
  test('every public sample in one coalesced read', () => {
    const reader = new FrameReader();
    const stream = Buffer.concat(framedSamples.map((s) => fromHex(s.hex)));
    assert.deepEqual(
      reader.push(stream).map(toHex),
      framedSamples.map((s) => s.hex.toUpperCase().slice(4)),
    );
  });
  test('property: any messages, any chunking, either prefix: the same messages in order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.constantFrom<FrameLengthPrefix>('binary2', 'ascii4'),
        (messages, cuts, prefix) => {
          const maxFrameBytes = 300;
          const stream = Buffer.concat(messages.map((m) => encodeFrame(m, { prefix, maxFrameBytes })));
          const reader = new FrameReader({ prefix, maxFrameBytes });
          const got: Uint8Array[] = [];
          for (const chunk of cut(stream, cuts)) {
            got.push(...reader.push(chunk));
            assert.ok(reader.bufferedBytes <= FRAME_PREFIX_BYTES[prefix] + maxFrameBytes);
          }
          assert.deepEqual(got, messages);
          reader.end();
        },
      ),
    );
  });
  test('a returned message does not alias the caller chunk or the internal buffer', () => {
    const reader = new FrameReader();
    const chunk = Buffer.from('0002AABB', 'hex'); // a socket delivers Buffers, whose slice() is a view
    const [m] = reader.push(chunk);
    assert.equal(Object.getPrototypeOf(m), Uint8Array.prototype);
    chunk[2] = 0;
    assert.equal(toHex(m!), 'AABB');
    const r2 = new FrameReader();
    r2.push(fromHex('0002AA'));
    const [m2] = r2.push(fromHex('BB'));
    r2.push(fromHex('0002CCDD'));
    assert.equal(toHex(m2!), 'AABB');
  });
});

describe('FrameReader errors', () => {
  test('a declared length above the maximum is refused before any body is buffered', () => {
    const reader = new FrameReader({ maxFrameBytes: 1024 });
    assert.deepEqual(reader.push(fromHex('04')), []);
    throwsIso(
      () => reader.push(fromHex('01')),
      'ISO8583_FRAME_TOO_LARGE',
      'frame.length',
      0,
      'frame.length: length 1025 is above the maximum of 1024 bytes (at byte 0)',
    );
    assert.equal(reader.bufferedBytes, 0);
    assert.equal(reader.failed, true);
  });
  test('a zero length after good frames: error offset is the stream position of the bad prefix', () => {
    const reader = new FrameReader();
    assert.deepEqual(reader.push(fromHex('0001AA')).map(toHex), ['AA']);
    throwsIso(
      () => reader.push(fromHex('0000')),
      'ISO8583_FRAME_EMPTY',
      'frame.length',
      3,
      'frame.length: length is 0 (at byte 3)',
    );
  });
  test('good messages before a bad prefix in the same read are returned; the error comes next', () => {
    const reader = new FrameReader();
    assert.deepEqual(reader.push(fromHex('0001AA0001BBFFFF')).map(toHex), ['AA', 'BB']);
    assert.equal(reader.failed, true);
    const tooLarge = 'frame.length: length 65535 is above the maximum of 8192 bytes';
    throwsIso(
      () => reader.push(fromHex('0001CC')),
      'ISO8583_FRAME_TOO_LARGE',
      'frame.length',
      6,
      `${tooLarge} (at byte 6)`,
    );
    throwsIso(() => reader.end(), 'ISO8583_FRAME_TOO_LARGE', 'frame.length', 6, `${tooLarge} (at byte 6)`);
  });
  test('ascii4: a non-digit in the prefix', () => {
    const reader = new FrameReader({ prefix: 'ascii4' });
    throwsIso(
      () => reader.push(ascii('000Z')),
      'ISO8583_LENGTH_INVALID',
      'frame.length',
      3,
      'frame.length: an ASCII length prefix must be 4 decimal digits (at byte 3)',
    );
  });
  test('end inside a frame', () => {
    const reader = new FrameReader();
    reader.push(fromHex('0001AA0003BB'));
    throwsIso(
      () => reader.end(),
      'ISO8583_FRAME_TRUNCATED',
      'frame',
      6,
      'frame: stream ended 3 bytes into an unfinished frame (at byte 6)',
    );
    reader.end(); // the unfinished frame is dropped: a second end() is clean
  });
  test('hostile stream: random bytes give messages or a typed error, never more than the bound buffered', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }), (chunks) => {
        const reader = new FrameReader({ maxFrameBytes: 128 });
        try {
          for (const c of chunks) {
            for (const m of reader.push(c)) assert.ok(m.length >= 1 && m.length <= 128);
            assert.ok(reader.bufferedBytes <= 130);
          }
        } catch (e) {
          assert.ok(e instanceof Iso8583Error);
        }
      }),
    );
  });
});

describe('UnionPay TPDU', () => {
  test('parse and build: 60 | destination | source', () => {
    assert.deepEqual(parseTpdu(fromHex('6006010000')), { destination: 0x0601, source: 0 });
    assert.equal(toHex(buildTpdu({ destination: 0x0601, source: 0 })), '6006010000');
  });
  test('the reply swaps the addresses (go8583 log1.txt: 6006010000 is answered by 6000000601)', () => {
    const req = samples.find((s) => s.id === 'go8583-log1-0800-signin-req')!;
    const resp = samples.find((s) => s.id === 'go8583-log1-0810-signin-resp')!;
    const reply = replyTpdu(splitCupFrame(decodeFrame(fromHex(req.hex))).tpdu);
    assert.equal(toHex(buildTpdu(reply)), resp.decoded.tpdu);
  });
  test('property: build/parse round trip, reply is an involution', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), (d, s) => {
        const t: Tpdu = { destination: d, source: s };
        assert.deepEqual(parseTpdu(buildTpdu(t)), t);
        assert.deepEqual(replyTpdu(replyTpdu(t)), t);
      }),
    );
  });
  test('errors', () => {
    throwsIso(
      () => parseTpdu(fromHex('60000000')),
      'ISO8583_TPDU_INVALID',
      'tpdu',
      4,
      'tpdu: a TPDU is 5 bytes, got 4 (at byte 4)',
    );
    throwsIso(
      () => parseTpdu(fromHex('6800000000')),
      'ISO8583_TPDU_INVALID',
      'tpdu.id',
      0,
      'tpdu.id: the TPDU ID must be 0x60 (at byte 0)',
    );
    assert.throws(() => buildTpdu({ destination: 0x10000, source: 0 }), RangeError);
  });
});

describe('UnionPay application header', () => {
  test('parse: application type, software version, terminal status, processing requirement, reserved', () => {
    assert.deepEqual(parseCupHeader(fromHex('603100311003')), {
      applicationType: '60',
      softwareVersion: '31',
      terminalStatus: '0',
      processingRequirement: '0',
      reserved: '311003',
    });
  });
  test('property: build/parse round trip on any 12 digits', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{12}$/), (digits) => {
        const h = parseCupHeader(fromHex(digits));
        assert.equal(toHex(buildCupHeader(h)), digits);
      }),
    );
  });
  test('errors', () => {
    throwsIso(
      () => parseCupHeader(fromHex('6031003110')),
      'ISO8583_HEADER_INVALID',
      'header',
      5,
      'header: the application header is 6 bytes, got 5 (at byte 5)',
    );
    throwsIso(
      () => parseCupHeader(fromHex('60310031100A')),
      'ISO8583_HEADER_INVALID',
      'header',
      5,
      'header: the application header must be BCD digits (at byte 5)',
    );
    const good: CupHeader = parseCupHeader(fromHex('603100311003'));
    throwsIso(
      () => buildCupHeader({ ...good, processingRequirement: '10' }),
      'ISO8583_HEADER_INVALID',
      'header.processingRequirement',
      undefined,
      'header.processingRequirement: must be 1 decimal digit',
    );
    throwsIso(
      () => buildCupHeader({ ...good, reserved: '31100' }),
      'ISO8583_HEADER_INVALID',
      'header.reserved',
      undefined,
      'header.reserved: must be 6 decimal digits',
    );
  });
});

describe('UnionPay frame: TPDU + header + message', () => {
  for (const s of framedSamples) {
    test(`public sample ${s.id}`, () => {
      const payload = decodeFrame(fromHex(s.hex));
      const frame = splitCupFrame(payload);
      assert.equal(toHex(buildTpdu(frame.tpdu)), s.decoded.tpdu);
      assert.equal(toHex(buildCupHeader(frame.header)), s.decoded.header);
      assert.equal(toHex(frame.message.subarray(0, 2)), s.decoded.mti);
      assert.deepEqual(joinCupFrame(frame), payload);
    });
  }
  test('errors carry the offset within the payload', () => {
    throwsIso(
      () => splitCupFrame(fromHex('60000000006022')),
      'ISO8583_FRAME_TRUNCATED',
      'frame',
      7,
      'frame: a UnionPay frame starts with 11 bytes of TPDU and header, got 7 (at byte 7)',
    );
    throwsIso(
      () => splitCupFrame(fromHex('6000000000602200F000000800')),
      'ISO8583_HEADER_INVALID',
      'header',
      8,
      'header: the application header must be BCD digits (at byte 8)',
    );
    throwsIso(
      () => splitCupFrame(fromHex('0000000000602200000000')),
      'ISO8583_TPDU_INVALID',
      'tpdu.id',
      0,
      'tpdu.id: the TPDU ID must be 0x60 (at byte 0)',
    );
  });
});
