import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BATCH_MAX_LINE_BYTES } from '../src/crypto.js';
import { runPosp } from './run.js';

const TDES_KEY = '5DB50B454F8389ADCE573BE50861F2BF'; // TR-31 test key with published KCV 5C9405

describe('posp crypto subcommands', () => {
  test('kcv, readable and --json', async () => {
    const r = await runPosp(['crypto', 'kcv', '--alg', 'tdes', '--key', TDES_KEY.toLowerCase()]);
    assert.equal(r.code, 0);
    assert.equal(r.out, 'kcv  5C9405\n');
    const j = await runPosp(['crypto', 'kcv', '--alg=tdes', `--key=${TDES_KEY}`, '--length', '4', '--json']);
    assert.equal(j.code, 0);
    assert.equal(JSON.parse(j.out).kcv.slice(0, 6), '5C9405');
    assert.equal(JSON.parse(j.out).kcv.length, 8);
  });
  test('encrypt and decrypt (FIPS 197 C.1)', async () => {
    const key = '000102030405060708090a0b0c0d0e0f';
    const e = await runPosp([
      'crypto',
      'encrypt',
      '--alg',
      'aes',
      '--mode',
      'ecb',
      '--key',
      key,
      '--data',
      '00112233445566778899AABBCCDDEEFF',
      '--json',
    ]);
    assert.deepEqual(JSON.parse(e.out), { data: '69C4E0D86A7B0430D8CDB78070B4C55A' });
    const d = await runPosp([
      'crypto',
      'decrypt',
      '--alg',
      'aes',
      '--mode',
      'ecb',
      '--key',
      key,
      '--data',
      '69C4E0D86A7B0430D8CDB78070B4C55A',
    ]);
    assert.equal(d.out, 'data  00112233445566778899AABBCCDDEEFF\n');
  });
  test('a library error is printed with its code, exit 1, and no key value', async () => {
    const r = await runPosp(['crypto', 'kcv', '--alg', 'tdes', '--key', 'ABCDEF0123']);
    assert.equal(r.code, 1);
    assert.equal(r.err, 'posp crypto: CRYPTO_KEY_LENGTH: key: TDES key must be 16 or 24 bytes, got 5\n');
    assert.ok(!r.err.includes('ABCDEF0123'));
  });
  test('usage errors exit 2', async () => {
    assert.equal((await runPosp(['crypto', 'nosuch'])).code, 2);
    assert.equal((await runPosp(['crypto', 'kcv', '--alg'])).code, 2);
    assert.equal((await runPosp(['crypto', 'kcv', 'stray'])).code, 2);
    assert.equal((await runPosp(['crypto'])).code, 2);
    assert.equal((await runPosp(['crypto', '--help'])).code, 0);
  });
  test('a missing field is named', async () => {
    const r = await runPosp(['crypto', 'kcv', '--alg', 'tdes']);
    assert.equal(r.err, 'posp crypto: CLI_REQUEST_INVALID: key: required\n');
  });
});

describe('posp crypto batch', () => {
  test('one result per line, in order; bad lines get an error and the batch goes on', async () => {
    const lines = [
      JSON.stringify({ op: 'kcv', alg: 'tdes', key: TDES_KEY }),
      'not json',
      '',
      JSON.stringify({ op: 'nosuch' }),
      JSON.stringify({ op: 'kcv', alg: 'tdes', key: '00' }),
      JSON.stringify([1, 2]),
      JSON.stringify({ op: 'kcv', alg: 'rc4', key: TDES_KEY }),
      JSON.stringify({
        op: 'encrypt',
        alg: 'des',
        mode: 'ecb',
        key: '0123456789abcdef',
        data: '4e6f772069732074',
      }),
    ];
    const r = await runPosp(['crypto', 'batch'], `${lines.join('\r\n')}\n`);
    const out = r.out
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(r.code, 1);
    assert.equal(out.length, 7);
    assert.deepEqual(out[0], { kcv: '5C9405' });
    assert.deepEqual(out[1], { error: { code: 'CLI_JSON_INVALID', message: 'request: not valid JSON' } });
    assert.equal(out[2].error.code, 'CLI_OP_UNKNOWN');
    assert.deepEqual(out[3], {
      error: { code: 'CRYPTO_KEY_LENGTH', message: 'key: TDES key must be 16 or 24 bytes, got 1' },
    });
    assert.deepEqual(out[4], {
      error: { code: 'CLI_JSON_INVALID', message: 'request: must be a JSON object' },
    });
    assert.deepEqual(out[5], {
      error: { code: 'CLI_REQUEST_INVALID', message: 'alg: must be one of des, tdes, aes, sm4' },
    });
    assert.deepEqual(out[6], { data: '3FA40E8A984D4815' });
  });
  test('a last line without newline is answered; all good gives exit 0', async () => {
    const r = await runPosp(['crypto', 'batch'], JSON.stringify({ op: 'kcv', alg: 'tdes', key: TDES_KEY }));
    assert.equal(r.code, 0);
    assert.equal(r.out, '{"kcv":"5C9405"}\n');
  });
  test('an overlong line is refused without stopping the batch', async () => {
    const long = `{"op":"kcv","pad":"${'x'.repeat(BATCH_MAX_LINE_BYTES)}"}`;
    const r = await runPosp(
      ['crypto', 'batch'],
      `${long}\n${JSON.stringify({ op: 'kcv', alg: 'tdes', key: TDES_KEY })}\n`,
    );
    const out = r.out
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(out[0].error.code, 'CLI_LINE_TOO_LONG');
    assert.deepEqual(out[1], { kcv: '5C9405' });
  });
});

async function batchOf(reqs: object[]): Promise<Record<string, unknown>[]> {
  const r = await runPosp(['crypto', 'batch'], reqs.map((q) => JSON.stringify(q)).join('\n'));
  return r.out
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('posp crypto: PIN blocks and PIN verification (published vectors)', () => {
  const pvk = '0123456789ABCDEFFEDCBA9876543210';
  test('PIN blocks: X9.24-1 A.4 clear format 0; format 1 decode; random formats round-trip under a key', async () => {
    const out = await batchOf([
      { op: 'pinblock.encode', format: 0, pin: '1234', pan: '4012345678909' },
      { op: 'pinblock.decode', format: 1, block: '1512345EDCBA9876' },
      { op: 'pinblock.encode', format: '2', pin: '1234' },
      { op: 'pinblock.decode', format: 0, block: '041274edcba9876f', pan: '4012345678909' },
      { op: 'pinblock.encode', format: 0, pin: '12', pan: '4012345678909' },
    ]);
    assert.deepEqual(out[0], { block: '041274EDCBA9876F' });
    assert.deepEqual(out[1], { pin: '12345' });
    assert.deepEqual(out[2], { block: '241234FFFFFFFFFF' });
    assert.deepEqual(out[3], { pin: '1234' });
    assert.equal((out[4] as { error: { code: string } }).error.code, 'CRYPTO_PIN_INVALID');
    for (const [format, key] of [
      [3, '0123456789ABCDEFFEDCBA9876543210'],
      [4, 'AF8CB133A78F8DC2D1359F18527593FB'],
    ] as const) {
      const enc = (
        await batchOf([{ op: 'pinblock.encode', format, pin: '987654', pan: '4111111111111111', key }])
      )[0]!;
      const dec = await batchOf([
        { op: 'pinblock.decode', format, block: enc.block, pan: '4111111111111111', key },
      ]);
      assert.deepEqual(dec[0], { pin: '987654' });
    }
  });
  test('clear format 4 shows the PIN field and the PAN field (X9.24-3 supplement)', async () => {
    const [r] = await batchOf([{ op: 'pinblock.encode', format: 4, pin: '1234', pan: '4111111111111111' }]);
    assert.equal((r!.block as string).slice(0, 16), '441234AAAAAAAAAA');
    assert.equal(r!.panField, '44111111111111111000000000000000');
  });
  test('PVV, IBM 3624 offset and PIN, CVV (psec and Visa test data)', async () => {
    const out = await batchOf([
      { op: 'pvv', pvk, pvki: '1', pin: '4524', pan: '1122334455667788' },
      { op: 'ibm3624.offset', pvk, decimalisation: '1234567890123456', pin: '4524', pan: '1122334455667788' },
      { op: 'ibm3624.pin', pvk, decimalisation: '1234567890123456', offset: '0000', pan: '1122334455667788' },
      { op: 'cvv', cvk: pvk, pan: '4123456789012', expiry: '8701', serviceCode: '101' },
      { op: 'ibm3624.pin', pvk, decimalisation: '12345678901234', offset: '0000', pan: '1122334455667788' },
    ]);
    assert.deepEqual(out.slice(0, 4), [{ pvv: '8523' }, { offset: '0000' }, { pin: '4524' }, { cvv: '370' }]);
    assert.equal((out[4] as { error: { code: string } }).error.code, 'CRYPTO_DECIMALISATION');
  });
});

describe('posp crypto mac', () => {
  test('UnionPay ECB MAC (solo123/pgate worked example), X9.19 (psec), CMAC needs a cipher for 16-byte keys', async () => {
    const out = await batchOf([
      { op: 'mac', alg: 'cup-ecb', key: '2222222222222222', data: '1234567890ABCDEFABCDEF1234567890' },
      {
        op: 'mac',
        alg: 'iso9797-1-3',
        key: '41414141414141414242424242424242',
        data: '68656c6c6f20776f726c64',
        padding: 1,
      },
      { op: 'mac', alg: 'cmac', key: '2B7E151628AED2A6ABF7158809CF4F3C', data: '', cipher: 'aes' },
      { op: 'mac', alg: 'cmac', key: '2B7E151628AED2A6ABF7158809CF4F3C', data: '' },
    ]);
    assert.deepEqual(out[0], { mac: '4532363742364532', macText: 'E267B6E2' });
    assert.deepEqual(out[1], { mac: '3DDE5C5511661CBF' });
    assert.deepEqual(out[2], { mac: 'BB1D6929E95937287FA37D129B756746' }); // SP 800-38B D.1 example 1
    assert.equal((out[3] as { error: { code: string } }).error.code, 'CRYPTO_PARAM');
  });
});

test('posp crypto sm3 (GB/T 32905-2016 Annex A.1)', async () => {
  const r = await runPosp(['crypto', 'sm3', '--data', '616263', '--json']);
  assert.deepEqual(JSON.parse(r.out), {
    digest: '66C7F0F462EEEDD9D1F2D46BDC10E4E24167C4875CF2F7A2297DA02B8F4BA8E0',
  });
});

describe('posp crypto tr31', () => {
  test('unwrap a published block (psec known value), wrap and unwrap round trip, tampering refused', async () => {
    const kbpk = 'AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB';
    const block =
      'B0096M3TC00E0000B6CD513680EF255FC0DC590726FD0129A7CF6602E7F271631AB4EE7350642F11181AF4CC12F12FD9';
    const aesKbpk = '88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6';
    const tampered = `${block.slice(0, 40)}${block[40] === '0' ? '1' : '0'}${block.slice(41)}`;
    const out = await batchOf([
      { op: 'tr31.unwrap', kbpk, block },
      { op: 'tr31.wrap', kbpk: aesKbpk, key: '3F419E1CB7079442AA37474C2EFBF8B8', header: 'D0000P0AE00E0000' },
      { op: 'tr31.unwrap', kbpk, block: tampered },
    ]);
    assert.deepEqual(out[0], { key: 'EEEEEEEEEEEEEEEE', header: 'B0096M3TC00E0000' });
    const wrapped = out[1]!.block as string;
    assert.match(wrapped, /^D\d{4}P0AE00E0000/);
    assert.equal(Number(wrapped.slice(1, 5)), wrapped.length);
    assert.equal((out[2] as { error: { code: string } }).error.code, 'CRYPTO_KEYBLOCK_MAC');
    const [back] = await batchOf([{ op: 'tr31.unwrap', kbpk: aesKbpk, block: wrapped }]);
    assert.equal(back!.key, '3F419E1CB7079442AA37474C2EFBF8B8');
  });
});

test('posp crypto dukpt derive: X9.24-1 A.4 and X9.24-3 supplement vectors', async () => {
  const out = await batchOf([
    {
      op: 'dukpt.derive',
      scheme: 'tdes',
      bdk: '0123456789ABCDEFFEDCBA9876543210',
      ksn: 'FFFF9876543210E00001',
      usage: 'pin',
    },
    {
      op: 'dukpt.derive',
      scheme: 'aes',
      bdk: 'FEDCBA9876543210F1F1F1F1F1F1F1F1',
      ksn: '123456789012345600000001',
      usage: 'pin',
      keyType: 'aes128',
    },
    {
      op: 'dukpt.derive',
      scheme: 'tdes',
      bdk: '0123456789ABCDEFFEDCBA9876543210',
      ksn: 'FFFF9876543210E0',
      usage: 'pin',
    },
    {
      op: 'dukpt.derive',
      scheme: 'aes',
      bdk: 'FEDCBA9876543210F1F1F1F1F1F1F1F1',
      ksn: '123456789012345600000001',
      usage: 'pin',
      keyType: 'des',
    },
  ]);
  // Transaction key 042666B49184CFA368DE9628D0397BC9 with the PIN variant (X9.24-1 A.4.1 Table A-1).
  assert.deepEqual(out[0], {
    ipek: '6AC292FAA1315B4D858AB3A3D7D5933A',
    key: '042666B49184CF5C68DE9628D0397B36',
  });
  assert.deepEqual(out[1], {
    ipek: '1273671EA26AC29AFA4D1084127652A1',
    key: 'AF8CB133A78F8DC2D1359F18527593FB',
  });
  assert.equal((out[2] as { error: { code: string } }).error.code, 'CRYPTO_KSN_INVALID');
  assert.deepEqual(out[3], {
    error: {
      code: 'CLI_REQUEST_INVALID',
      message: 'keyType: must be one of tdes2, tdes3, aes128, aes192, aes256',
    },
  });
});
