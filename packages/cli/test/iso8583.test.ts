import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { PassThrough } from 'node:stream';
import { ISO8583_INPUT_MAX_BYTES, iso8583Command } from '../src/iso8583.js';

/** Runs `posp iso8583 ...` in process with in-memory streams. */
async function run(argv: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  const input = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  input.end(stdin);
  const code = await iso8583Command(argv, { stdin: input, stdout, stderr });
  return { code, out, err };
}

interface Sample {
  id: string;
  hex: string;
}
const samples = (
  JSON.parse(
    readFileSync(new URL('../../iso8583/test/golden/cup-pos-samples.json', import.meta.url), 'utf8'),
  ) as { samples: Sample[] }
).samples;
const hexOf = (id: string): string => samples.find((s) => s.id === id)!.hex.toUpperCase();

const BALANCE = hexOf('ajsgn-0200-balance-inquiry'); // PAN 6258091350440751, track 2, PIN block
const SIGNIN = hexOf('go8583-log1-0800-signin-req');
const PAN = '6258091350440751';

describe('posp iso8583 describe', () => {
  test('--framed --json: tpdu, header, mti, fields with subfields; card data masked', async () => {
    const r = await run(['describe', '--framed', '--json', BALANCE]);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out);
    assert.deepEqual(Object.keys(j), ['tpdu', 'header', 'mti', 'fields']);
    assert.equal(j.tpdu, '6010120000');
    assert.equal(j.header, '602200000000');
    assert.equal(j.mti, '0200');
    assert.equal(j.fields['2'], '625809******0751');
    assert.equal(j.fields['3'], '310000');
    assert.deepEqual(j.fields['60'], { '1': '01', '2': '160530' });
    assert.equal(j.fields['35'], '*'.repeat(37));
    assert.equal(j.fields['52'], '*'.repeat(16));
    assert.ok(!r.out.includes(PAN), 'full PAN in output');
    assert.ok(!r.out.includes('73586D9C99D3E922'), 'PIN block in output');
  });
  test('--reveal shows the card data', async () => {
    const r = await run(['describe', '--framed', '--json', '--reveal', BALANCE]);
    const j = JSON.parse(r.out);
    assert.equal(j.fields['2'], PAN);
    assert.equal(j.fields['35'], '6258091350440751D20052010000005700000');
    assert.equal(j.fields['52'], '73586D9C99D3E922');
  });
  test('table: TPDU and header lines, then the fields; the PAN masked', async () => {
    const r = await run(['describe', '--spec', 'cup-pos', '--framed', SIGNIN]);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trimEnd().split('\n');
    assert.equal(lines[0], 'TPDU    6006010000  (destination 0601, source 0000)');
    assert.equal(
      lines[1],
      'header  603100311812  (application type, version, terminal status, processing requirement, reserved: 60 31 0 0 311812)',
    );
    assert.match(lines[2]!, /^MTI {2}0800/);
    assert.ok(
      lines.some((l) => /^\s+60\.3\s.*\s003$/.test(l)),
      r.out,
    );
    const b = await run(['describe', '--framed', BALANCE]);
    assert.ok(b.out.includes('625809******0751'));
    assert.ok(!b.out.includes(PAN));
  });
  test('hex from stdin with -, whitespace and lower case allowed; body without framing', async () => {
    const body = SIGNIN.slice(4 + 22)
      .toLowerCase()
      .replace(/(..)/g, '$1 ');
    const r = await run(['describe', '--json', '-'], `${body}\n`);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out), {
      mti: '0800',
      fields: {
        '11': '000000',
        '41': '22003600',
        '42': '104512541110001',
        '60': { '1': '00', '2': '000000', '3': '003' },
        '63': { '1': '000' },
      },
    });
  });
  test('another built-in spec by name', async () => {
    // iso87-ascii: ASCII MTI, hex bitmap (bit 11 only), field 11 as 6 ASCII digits.
    const msg = Buffer.from('08000020000000000000000001').toString('hex');
    const r = await run(['describe', '--spec', 'iso87-ascii', '--json', msg]);
    assert.equal(r.code, 0, r.err);
    assert.equal(JSON.parse(r.out).mti, '0800');
  });
});

describe('posp iso8583 pack', () => {
  test('pack --framed rebuilds the sample byte for byte from describe --reveal --json', async () => {
    const d = await run(['describe', '--framed', '--json', '--reveal', BALANCE]);
    const p = await run(['pack', '--spec', 'cup-pos', '--framed'], d.out);
    assert.equal(p.code, 0, p.err);
    assert.equal(p.out, `${BALANCE}\n`);
  });
  test('pack without framing', async () => {
    const json = JSON.stringify({
      mti: '0820',
      fields: { '11': '000110', '41': 'POS00001', '60': { '1': '00', '2': '000001', '3': '002' } },
    });
    const r = await run(['pack', '--spec=cup-pos'], json);
    assert.equal(r.code, 0, r.err);
    // 0820 | bitmap 11, 41, 60 | 000110 | "POS00001" | LLL 0011 digits 00000001002 padded with 0
    assert.equal(r.out, '08200020000000800010000110504F5330303030310011000000010020\n');
  });
});

describe('posp iso8583 errors', () => {
  const cases: Array<[string, string[], string, number, string]> = [
    ['no subcommand', [], '', 2, ''],
    ['unknown subcommand', ['explain'], '', 2, "posp iso8583: unknown subcommand 'explain'\n"],
    ['unknown option', ['describe', '--verbose', '00'], '', 2, 'posp iso8583: unknown option --verbose\n'],
    [
      'describe without hex',
      ['describe'],
      '',
      2,
      'posp iso8583: describe takes one HEX argument, or - for stdin\n',
    ],
    ['pack without spec', ['pack'], '{}', 2, 'posp iso8583: pack needs --spec\n'],
    ['--spec without value', ['pack', '--spec'], '', 2, 'posp iso8583: option --spec needs a value\n'],
    [
      'bad hex',
      ['describe', '0X00'],
      '',
      1,
      'posp iso8583: ISO8583_VALUE_INVALID: message: hex character near 0 is not 0-9/A-F\n',
    ],
    [
      'empty stdin',
      ['describe', '-'],
      ' \n',
      1,
      'posp iso8583: CLI_REQUEST_INVALID: message: no hex given\n',
    ],
    [
      'unknown spec',
      ['describe', '--spec', 'visa', '0800'],
      '',
      1,
      'posp iso8583: ISO8583_SPEC_NOT_FOUND: visa: no built-in spec has this name (cup-pos, iso87-ascii, iso87-binary)\n',
    ],
    [
      'frame length 0',
      ['describe', '--framed', '0000'],
      '',
      1,
      'posp iso8583: ISO8583_FRAME_EMPTY: frame.length: length is 0 (at byte 0)\n',
    ],
    [
      'TPDU ID not 0x60',
      ['describe', '--framed', '000B6100000000603100311812'],
      '',
      1,
      'posp iso8583: ISO8583_TPDU_INVALID: tpdu.id: the TPDU ID must be 0x60 (at byte 0)\n',
    ],
    [
      'truncated message',
      ['describe', '08000020'],
      '',
      1,
      'posp iso8583: ISO8583_TRUNCATED: bitmap: primary bitmap needs 8 bytes, 2 remain (at byte 2)\n',
    ],
    [
      'pack: not JSON',
      ['pack', '--spec', 'cup-pos'],
      '{',
      1,
      'posp iso8583: CLI_REQUEST_INVALID: stdin: not valid JSON\n',
    ],
    [
      'pack --framed without TPDU',
      ['pack', '--spec', 'cup-pos', '--framed'],
      '{"mti":"0800","fields":{}}',
      1,
      'posp iso8583: CLI_REQUEST_INVALID: tpdu, header: --framed needs both, as hex strings\n',
    ],
    [
      'pack: TPDU without --framed',
      ['pack', '--spec', 'cup-pos'],
      '{"tpdu":"6000000000","mti":"0800","fields":{}}',
      1,
      'posp iso8583: CLI_REQUEST_INVALID: tpdu, header: only with --framed\n',
    ],
    [
      'pack: field the spec lacks',
      ['pack', '--spec', 'cup-pos'],
      '{"mti":"0800","fields":{"90":"1"}}',
      1,
      'posp iso8583: ISO8583_FIELD_UNKNOWN: 90: spec cup-pos does not define this field\n',
    ],
  ];
  for (const [name, argv, stdin, code, err] of cases) {
    test(name, async () => {
      const r = await run(argv, stdin);
      assert.equal(r.code, code);
      if (code === 2) {
        assert.ok(r.err.startsWith(err), r.err);
        if (argv.length > 0) assert.ok(r.err.includes('usage: posp iso8583 describe'));
      } else assert.equal(r.err, err);
      assert.equal(r.out, code === 2 && argv.length === 0 ? r.out : '');
    });
  }
  test('an error about a message never echoes its card data', async () => {
    // The balance inquiry with one byte cut off the end: the MAC is truncated; the PAN must not appear.
    const r = await run(['describe', '--framed', BALANCE.slice(0, -2)]);
    assert.equal(r.code, 1);
    assert.match(r.err, /^posp iso8583: ISO8583_FRAME_TRUNCATED: /);
    assert.ok(!r.err.includes(PAN));
    const body = BALANCE.slice(26, -2);
    const r2 = await run(['describe', body]);
    assert.match(r2.err, /^posp iso8583: ISO8583_TRUNCATED: 64: /);
    assert.ok(!r2.err.includes(PAN));
  });
  test('stdin longer than the limit is refused', async () => {
    const r = await run(['describe', '-'], '0'.repeat(ISO8583_INPUT_MAX_BYTES + 2));
    assert.equal(r.code, 1);
    assert.equal(
      r.err,
      `posp iso8583: CLI_REQUEST_INVALID: stdin: input longer than ${ISO8583_INPUT_MAX_BYTES} bytes\n`,
    );
  });
});
