import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { adjustOddParity, fromHex, kcvAes, kcvTdes, toHex, xor } from '@openposp/crypto';
import { AuditLog, verifyAuditLog } from '../src/audit.js';
import { Authorization, hashCustodianCredential } from '../src/auth.js';
import { HsmError } from '../src/errors.js';
import { FIRMWARE_VERSION, Hsm } from '../src/hsm.js';
import { KEY_TYPES, type KeyType } from '../src/keytypes.js';
import { createTestLmk } from '../src/lmk.js';

const lmk = createTestLmk({ allowTestLmk: true, warn: () => {} });
const P = { N: 1024, r: 8, p: 1 };
const custodians = [
  hashCustodianCredential('alice', 'alice-secret-1', P),
  hashCustodianCredential('bob', 'bob-secret-22', P),
];
const creds = [
  { id: 'alice', secret: 'alice-secret-1' },
  { id: 'bob', secret: 'bob-secret-22' },
];

async function fixture() {
  const dir = mkdtempSync(join(tmpdir(), 'hsm-cmd-'));
  const auditPath = join(dir, 'audit.jsonl');
  const audit = await AuditLog.open(auditPath, { lmkCheckValue: lmk.checkValue });
  const authorization = new Authorization({ custodians, quorum: 2, maxDurationMs: 60_000 });
  const hsm = new Hsm({ lmk, audit, authorization });
  return { hsm, audit, auditPath };
}

function throwsHsm(fn: () => unknown, code: string, message: string, reply?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof HsmError, `expected HsmError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    if (reply !== undefined) assert.equal(e.reply, reply);
    return true;
  });
}

describe('NC diagnostics', () => {
  test('gives the LMK check value and firmware version', async () => {
    const { hsm } = await fixture();
    assert.deepEqual(hsm.diagnostics(), { lmkCheckValue: lmk.checkValue, firmwareVersion: FIRMWARE_VERSION });
  });
});

describe('A0 generate a key', () => {
  const expected: Record<KeyType, [string, string]> = {
    TMK: ['K0', 'B'],
    ZMK: ['K0', 'B'],
    TPK: ['P0', 'B'],
    ZPK: ['P0', 'B'],
    TAK: ['M3', 'C'],
    ZAK: ['M3', 'C'],
    TDK: ['D0', 'B'],
    ZEK: ['D0', 'B'],
    PVK: ['V2', 'C'],
    BDK: ['B0', 'X'],
    DEK: ['D0', 'B'],
  };
  for (const type of Object.keys(KEY_TYPES) as KeyType[]) {
    test(`${type}: TDES key with odd parity, usage ${expected[type][0]}, check value matches BU`, async () => {
      const { hsm } = await fixture();
      if (type === 'ZMK') hsm.authorize(creds, ['A0.ZMK'], 1000);
      const r = hsm.generateKey({ keyType: type, algorithm: 'T', keyLengthBytes: 16 });
      const { key, attrs } = lmk.unwrapKey(r.keyBlock, null);
      assert.equal(attrs.usage, expected[type][0]);
      assert.equal(attrs.modeOfUse, expected[type][1]);
      // A DEK (data at rest, never exchanged) is not exportable unless asked for.
      assert.equal(attrs.exportability, type === 'DEK' ? 'N' : 'E');
      assert.deepEqual(key, adjustOddParity(key));
      assert.equal(r.checkValue, toHex(kcvTdes(key, 3)));
      assert.equal(hsm.keyCheckValue(r.keyBlock), r.checkValue);
    });
  }

  test('AES keys: MAC keys get usage M6 (CMAC), check value is the AES CMAC KCV', async () => {
    const { hsm } = await fixture();
    const r = hsm.generateKey({ keyType: 'ZAK', algorithm: 'A', keyLengthBytes: 32 });
    const { key, attrs } = lmk.unwrapKey(r.keyBlock, { usage: 'M6', modeOfUse: 'C' });
    assert.equal(attrs.algorithm, 'A');
    assert.equal(key.length, 32);
    assert.equal(r.checkValue, toHex(kcvAes(key, 3)));
  });

  test('optional attributes: a PVK for IBM 3624, generate-only, version 02, not exportable', async () => {
    const { hsm } = await fixture();
    const r = hsm.generateKey({
      keyType: 'PVK',
      algorithm: 'T',
      keyLengthBytes: 16,
      usage: 'V1',
      modeOfUse: 'G',
      keyVersion: '02',
      exportability: 'N',
    });
    assert.deepEqual(lmk.unwrapKey(r.keyBlock, null).attrs, {
      usage: 'V1',
      algorithm: 'T',
      modeOfUse: 'G',
      keyVersion: '02',
      exportability: 'N',
    });
  });

  test('errors', async () => {
    const { hsm } = await fixture();
    throwsHsm(
      () => hsm.generateKey({ keyType: 'XYZ' as KeyType, algorithm: 'T', keyLengthBytes: 16 }),
      'HSM_KEY_TYPE',
      'keyType: unknown key type (expected TMK, ZMK, TPK, ZPK, TAK, ZAK, TDK, ZEK, DEK, PVK, BDK)',
      '04',
    );
    throwsHsm(
      () => hsm.generateKey({ keyType: 'TPK', algorithm: 'S' as 'T', keyLengthBytes: 16 }),
      'HSM_KEY_ALGORITHM',
      'algorithm: must be T (TDES) or A (AES)',
      'A7',
    );
    throwsHsm(
      () => hsm.generateKey({ keyType: 'PVK', algorithm: 'A', keyLengthBytes: 16 }),
      'HSM_KEY_ALGORITHM',
      'algorithm: key type PVK does not exist for algorithm A',
    );
    throwsHsm(
      () => hsm.generateKey({ keyType: 'TPK', algorithm: 'T', keyLengthBytes: 8 }),
      'HSM_KEY_LENGTH',
      'keyLength: TDES key must be 16 or 24 bytes, got 8',
      '05',
    );
    throwsHsm(
      () => hsm.generateKey({ keyType: 'TPK', algorithm: 'T', keyLengthBytes: 16, usage: 'M3' }),
      'HSM_KEY_ATTRIBUTES',
      'usage: key type TPK with algorithm T takes usage P0',
      'A6',
    );
    throwsHsm(
      () => hsm.generateKey({ keyType: 'TPK', algorithm: 'T', keyLengthBytes: 16, modeOfUse: 'C' }),
      'HSM_KEY_ATTRIBUTES',
      'request.modeOfUse: must be one of B, D, E for usage P0',
      'A8',
    );
    throwsHsm(
      () => hsm.generateKey({ keyType: 'ZMK', algorithm: 'T', keyLengthBytes: 16 }),
      'HSM_NOT_AUTHORIZED',
      'A0.ZMK: needs the authorized state, which is not entered',
      '17',
    );
  });

  test('without custodians configured, a sensitive activity is refused', () => {
    const hsm = new Hsm({ lmk });
    throwsHsm(
      () => hsm.generateKey({ keyType: 'ZMK', algorithm: 'T', keyLengthBytes: 16 }),
      'HSM_NOT_AUTHORIZED',
      'A0.ZMK: needs the authorized state, and no custodians are configured',
    );
    assert.match(
      hsm.generateKey({ keyType: 'ZPK', algorithm: 'T', keyLengthBytes: 16 }).checkValue,
      /^[0-9A-F]{6}$/,
    );
  });
});

describe('A4 form a key from components', () => {
  const c1 = fromHex('0123456789ABCDEFFEDCBA9876543210');
  const c2 = fromHex('1C1C1C1C1C1C1C1C2A2A2A2A2A2A2A2A');
  const c3 = fromHex('4C4C4C4C4C4C4C4C3D3D3D3D3D3D3D3D');

  test('a ZMK from 2 TDES components is their XOR with odd parity', async () => {
    const { hsm } = await fixture();
    hsm.authorize(creds, ['A4.*'], 1000);
    const r = hsm.formKeyFromComponents({ keyType: 'ZMK', algorithm: 'T', components: [c1, c2] });
    const { key, attrs } = lmk.unwrapKey(r.keyBlock, { usage: 'K0', modeOfUse: 'B' });
    assert.deepEqual(key, adjustOddParity(xor(c1, c2)));
    assert.equal(attrs.usage, 'K0');
    assert.equal(r.checkValue, toHex(kcvTdes(key, 3)));
  });

  test('a TMK from 3 components; an AES ZMK from 2', async () => {
    const { hsm } = await fixture();
    hsm.authorize(creds, ['A4.TMK', 'A4.ZMK'], 1000);
    const r = hsm.formKeyFromComponents({ keyType: 'TMK', algorithm: 'T', components: [c1, c2, c3] });
    assert.deepEqual(lmk.unwrapKey(r.keyBlock, null).key, xor(xor(c1, c2), c3));
    const a1 = new Uint8Array(32).fill(0x5a);
    const a2 = new Uint8Array(32).fill(0x33);
    const ra = hsm.formKeyFromComponents({ keyType: 'ZMK', algorithm: 'A', components: [a1, a2] });
    assert.deepEqual(lmk.unwrapKey(ra.keyBlock, null).key, xor(a1, a2));
  });

  test('errors', async () => {
    const { hsm } = await fixture();
    throwsHsm(
      () => hsm.formKeyFromComponents({ keyType: 'ZMK', algorithm: 'T', components: [c1, c2] }),
      'HSM_NOT_AUTHORIZED',
      'A4.ZMK: needs the authorized state, which is not entered',
      '17',
    );
    hsm.authorize(creds, ['A4.*'], 1000);
    throwsHsm(
      () => hsm.formKeyFromComponents({ keyType: 'ZPK', algorithm: 'T', components: [c1, c2] }),
      'HSM_KEY_TYPE',
      'keyType: only ZMK or TMK are formed from components',
      '04',
    );
    throwsHsm(
      () => hsm.formKeyFromComponents({ keyType: 'ZMK', algorithm: 'T', components: [c1] }),
      'HSM_COMPONENTS_INVALID',
      'components: need 2 or 3 components',
      '15',
    );
    throwsHsm(
      () =>
        hsm.formKeyFromComponents({ keyType: 'ZMK', algorithm: 'T', components: [c1, c2.subarray(0, 8)] }),
      'HSM_KEY_LENGTH',
      'components[1]: TDES key must be 16 or 24 bytes, got 8',
      '05',
    );
    throwsHsm(
      () =>
        hsm.formKeyFromComponents({
          keyType: 'ZMK',
          algorithm: 'T',
          components: [c1, new Uint8Array(24).fill(1)],
        }),
      'HSM_COMPONENTS_INVALID',
      'components[1]: differs in length from components[0]',
      '15',
    );
    const even = c2.slice();
    even[3] ^= 1;
    throwsHsm(
      () => hsm.formKeyFromComponents({ keyType: 'ZMK', algorithm: 'T', components: [c1, even] }),
      'HSM_COMPONENT_PARITY',
      'components[1]: does not have odd parity',
      '10',
    );
    throwsHsm(
      () => hsm.formKeyFromComponents({ keyType: 'ZMK', algorithm: 'T', components: [c1, c1] }),
      'HSM_COMPONENTS_INVALID',
      'components: combine to a key of all zeros',
      '11',
    );
  });
});

describe('audit of key-management commands', () => {
  test('every A0/A4 and authorization event is one line with check value, and no key material', async () => {
    const { hsm, audit, auditPath } = await fixture();
    const r = hsm.generateKey({ keyType: 'TPK', algorithm: 'T', keyLengthBytes: 16 }, 'host:127.0.0.1:5000');
    assert.throws(() => hsm.generateKey({ keyType: 'ZMK', algorithm: 'T', keyLengthBytes: 16 }));
    hsm.authorize(creds, ['A0.ZMK'], 1000);
    hsm.generateKey({ keyType: 'ZMK', algorithm: 'T', keyLengthBytes: 16 });
    hsm.deauthorize();
    audit.close();
    const lines = readFileSync(auditPath, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => [l.command, l.who, l.keyType, l.result]),
      [
        ['GENESIS', 'hsm', undefined, undefined],
        ['A0', 'host:127.0.0.1:5000', 'TPK', '00'],
        ['A0', 'api', 'ZMK', '17'],
        ['AUTH_ENTER', 'custodians:alice+bob', undefined, '00'],
        ['A0', 'api', 'ZMK', '00'],
        ['AUTH_EXIT', 'console', undefined, '00'],
      ],
    );
    assert.equal(lines[1].checkValue, r.checkValue);
    const { key } = lmk.unwrapKey(r.keyBlock, null);
    const text = readFileSync(auditPath, 'utf8');
    assert.ok(!text.includes(toHex(key)));
    assert.ok(!text.includes(r.keyBlock.slice(17, 49)));
    assert.equal((await verifyAuditLog(auditPath, { lmkCheckValue: lmk.checkValue })).ok, true);
  });

  test('a failed authorization is recorded', async () => {
    const { hsm, audit, auditPath } = await fixture();
    assert.throws(() => hsm.authorize([creds[0]!, { id: 'bob', secret: 'nope-nope' }], ['A0.ZMK'], 1000));
    audit.close();
    const last = JSON.parse(readFileSync(auditPath, 'utf8').trim().split('\n').at(-1)!);
    assert.deepEqual([last.command, last.result], ['AUTH_ENTER', '17']);
  });
});
