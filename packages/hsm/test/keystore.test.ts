import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import { fromHex, toHex } from '@openposp/crypto';
import fc from 'fast-check';
import { HsmError } from '../src/errors.js';
import {
  deriveKeyBlockKeys,
  type KeyAttributes,
  type KeyExpectation,
  keyBlockLength,
  parseLmkKeyBlockHeader,
  unwrapLmkKeyBlock,
  wrapLmkKeyBlock,
} from '../src/keystore.js';
import { createTestLmk, formLmk, generateLmkComponent, type Lmk } from '../src/lmk.js';

const quiet = { allowTestLmk: true, warn: () => {} };
const lmk = createTestLmk(quiet);
const other = formLmk([generateLmkComponent(), generateLmkComponent()]);

function throwsHsm(fn: () => unknown, code: string, message: string, reply?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof HsmError, `expected HsmError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    if (reply !== undefined) assert.equal(e.reply, reply);
    return true;
  });
}

const attrs = (o: Partial<KeyAttributes> = {}): KeyAttributes => ({
  usage: 'P0',
  algorithm: 'T',
  modeOfUse: 'B',
  keyVersion: '00',
  exportability: 'E',
  ...o,
});

describe('KBEK/KBAK derivation (TR-31 version D, AES-256 KBPK)', () => {
  // Published vectors, read as data from the crypto package's vector file.
  const url = new URL('../../crypto/vectors/tr31.json', import.meta.url);
  const all = JSON.parse(readFileSync(url, 'utf8')) as {
    id: string;
    op: string;
    version?: string;
    kbpk?: string;
    expected: { kbek?: string; kbak?: string };
    source: string;
  }[];
  const vs = all.filter((v) => v.op === 'tr31_kbpk_derive' && v.version === 'D' && v.kbpk?.length === 64);
  test('there are AES-256 version D derivation vectors', () => assert.ok(vs.length >= 2));
  for (const v of vs) {
    test(`${v.id} (${v.source})`, () => {
      const { kbek, kbak } = deriveKeyBlockKeys(fromHex(v.kbpk!));
      assert.equal(toHex(kbek), v.expected.kbek);
      assert.equal(toHex(kbak), v.expected.kbak);
    });
  }
});

describe('key blocks under the LMK', () => {
  const algLen = fc.oneof(
    fc.record({ algorithm: fc.constant('T' as const), len: fc.constantFrom(16, 24) }),
    fc.record({ algorithm: fc.constant('A' as const), len: fc.constantFrom(16, 24, 32) }),
  );

  test('wrap then unwrap gives back the key and the attributes (property)', () => {
    fc.assert(
      fc.property(
        algLen.chain(({ algorithm, len }) =>
          fc.record({
            algorithm: fc.constant(algorithm),
            key: fc.uint8Array({ minLength: len, maxLength: len }),
            usage: fc.constantFrom(
              ...(algorithm === 'T'
                ? (['P0', 'K0', 'M3', 'D0', 'B0'] as const)
                : (['P0', 'K0', 'M6', 'D0', 'B0'] as const)),
            ),
            keyVersion: fc.stringMatching(/^[0-9A-Za-z]{2}$/),
            exportability: fc.constantFrom('E' as const, 'N' as const, 'S' as const),
          }),
        ),
        ({ algorithm, key, usage, keyVersion, exportability }) => {
          const modeOfUse = usage === 'B0' ? 'X' : usage.startsWith('M') ? 'C' : 'B';
          const a: KeyAttributes = { usage, algorithm, modeOfUse, keyVersion, exportability };
          const block = lmk.wrapKey(key, a);
          assert.equal(block.length, 1 + keyBlockLength(algorithm));
          const out = lmk.unwrapKey(block, { usage, modeOfUse });
          assert.deepEqual(out.attrs, a);
          assert.deepEqual(out.key, key);
        },
      ),
      { numRuns: 60 },
    );
  });

  test('the header is readable and carries the attributes', () => {
    const block = lmk.wrapKey(
      new Uint8Array(16).fill(1),
      attrs({ usage: 'M3', modeOfUse: 'C', keyVersion: '07' }),
    );
    assert.equal(block.slice(0, 17), 'S10144M3TC07E0000');
    assert.deepEqual(parseLmkKeyBlockHeader(block), attrs({ usage: 'M3', modeOfUse: 'C', keyVersion: '07' }));
  });

  test('two wraps of the same key differ (random IV and padding)', () => {
    const k = new Uint8Array(16).fill(7);
    assert.notEqual(lmk.wrapKey(k, attrs()), lmk.wrapKey(k, attrs()));
  });

  test('a header changed from M3 to P0 fails the MAC: usage is bound', () => {
    const block = lmk.wrapKey(new Uint8Array(16).fill(3), attrs({ usage: 'M3', modeOfUse: 'C' }));
    const forged = `${block.slice(0, 6)}P0TB${block.slice(10)}`;
    throwsHsm(
      () => lmk.unwrapKey(forged, { usage: 'P0', modeOfUse: 'B' }),
      'HSM_KEYBLOCK_MAC',
      'keyBlock: MAC does not verify (block altered, or under another LMK)',
      'A4',
    );
  });

  test('any changed hex digit of IV, ciphertext or MAC fails the MAC', () => {
    const block = lmk.wrapKey(new Uint8Array(24).fill(9), attrs());
    fc.assert(
      fc.property(fc.integer({ min: 17, max: block.length - 1 }), (i) => {
        const c = block[i] === '0' ? '1' : '0';
        const forged = block.slice(0, i) + c + block.slice(i + 1);
        throwsHsm(
          () => lmk.unwrapKey(forged, null),
          'HSM_KEYBLOCK_MAC',
          'keyBlock: MAC does not verify (block altered, or under another LMK)',
        );
      }),
      { numRuns: 50 },
    );
  });

  test('a block under another LMK fails the MAC', () => {
    const block = other.wrapKey(new Uint8Array(16).fill(3), attrs());
    throwsHsm(
      () => lmk.unwrapKey(block, null),
      'HSM_KEYBLOCK_MAC',
      'keyBlock: MAC does not verify (block altered, or under another LMK)',
    );
  });

  const block = lmk.wrapKey(new Uint8Array(16).fill(5), attrs());
  const cases: [string, string, string, string, string?][] = [
    ['no tag', block.slice(1), 'HSM_KEYBLOCK_FORMAT', 'keyBlock: must start with the key scheme tag S'],
    ['short', 'S10144', 'HSM_KEYBLOCK_FORMAT', 'keyBlock: shorter than its 16-character header'],
    [
      'version',
      `S2${block.slice(2)}`,
      'HSM_KEYBLOCK_FORMAT',
      'keyBlock.header.version: version ID must be 1',
      'BE',
    ],
    [
      'length digits',
      `S1X144${block.slice(6)}`,
      'HSM_KEYBLOCK_FORMAT',
      'keyBlock.header.length: length must be 4 decimal digits',
    ],
    [
      'usage',
      `${block.slice(0, 6)}Q9${block.slice(8)}`,
      'HSM_KEYBLOCK_FORMAT',
      'keyBlock.header.usage: unknown key usage',
      'A6',
    ],
    [
      'algorithm',
      `${block.slice(0, 8)}R${block.slice(9)}`,
      'HSM_KEYBLOCK_FORMAT',
      'keyBlock.header.algorithm: unknown key algorithm (expected T or A)',
      'A7',
    ],
    [
      'mode',
      `${block.slice(0, 9)}X${block.slice(10)}`,
      'HSM_KEYBLOCK_FORMAT',
      'keyBlock.header.modeOfUse: must be one of B, D, E for usage P0',
      'A8',
    ],
    [
      'version number',
      `${block.slice(0, 10)}!0${block.slice(12)}`,
      'HSM_KEYBLOCK_FORMAT',
      'keyBlock.header.keyVersion: must be 2 alphanumeric characters',
      'A9',
    ],
    [
      'exportability',
      `${block.slice(0, 12)}Q${block.slice(13)}`,
      'HSM_KEYBLOCK_FORMAT',
      'keyBlock.header.exportability: must be E, N or S',
      'AA',
    ],
    [
      'optional blocks',
      `${block.slice(0, 13)}0100${block.slice(17)}`,
      'HSM_KEYBLOCK_FORMAT',
      'keyBlock.header.optionalBlocks: optional blocks and reserved field must be 0000',
    ],
    [
      'declared length',
      `S10176${block.slice(6)}`,
      'HSM_KEYBLOCK_FORMAT',
      'keyBlock.header.length: length must be 144 for algorithm T, header says 176',
    ],
    [
      'actual length',
      `${block}00`,
      'HSM_KEYBLOCK_FORMAT',
      'keyBlock: has 146 characters after the tag, its header says 144',
    ],
    [
      'hex',
      `${block.slice(0, 20)}g${block.slice(21)}`,
      'HSM_KEYBLOCK_FORMAT',
      'keyBlock: non-hex character at position 20',
    ],
  ];
  for (const [name, b, code, message, reply] of cases) {
    test(`malformed block: ${name}`, () => throwsHsm(() => lmk.unwrapKey(b, null), code, message, reply));
  }

  test('wrap refuses attributes that do not fit', () => {
    const k = new Uint8Array(16);
    throwsHsm(
      () => lmk.wrapKey(k, attrs({ usage: 'M3', modeOfUse: 'B' })),
      'HSM_KEY_ATTRIBUTES',
      'attrs.modeOfUse: must be one of C, G, V for usage M3',
      'A8',
    );
    throwsHsm(
      () => lmk.wrapKey(k, attrs({ usage: 'M3', modeOfUse: 'C', algorithm: 'A' })),
      'HSM_KEY_ALGORITHM',
      'attrs.algorithm: usage M3 needs a TDES key',
      'A7',
    );
    throwsHsm(
      () => lmk.wrapKey(k, attrs({ keyVersion: '1' })),
      'HSM_KEY_ATTRIBUTES',
      'attrs.keyVersion: must be 2 alphanumeric characters',
      'A9',
    );
    throwsHsm(
      () => lmk.wrapKey(k, attrs({ exportability: 'X' as 'E' })),
      'HSM_KEY_ATTRIBUTES',
      'attrs.exportability: must be E, N or S',
      'AA',
    );
    throwsHsm(
      () => lmk.wrapKey(k, attrs({ usage: 'Z9' as 'P0' })),
      'HSM_KEY_ATTRIBUTES',
      'attrs.usage: unknown key usage',
      'A6',
    );
    throwsHsm(
      () => lmk.wrapKey(new Uint8Array(8), attrs()),
      'HSM_KEY_LENGTH',
      'key: TDES key must be 16 or 24 bytes, got 8',
      '05',
    );
    throwsHsm(
      () => lmk.wrapKey(new Uint8Array(20), attrs({ algorithm: 'A' })),
      'HSM_KEY_LENGTH',
      'key: AES key must be 16 or 24 or 32 bytes, got 20',
    );
  });
});

describe('key-use misuse matrix: every key refused for every other use', () => {
  // The operations later commands perform, each with the usage and modes it accepts.
  const operations: Record<string, KeyExpectation> = {
    'encrypt/translate a PIN block': { usage: 'P0', modeOfUse: ['B', 'E', 'D'] },
    'generate/verify a MAC': { usage: ['M1', 'M3', 'M6'], modeOfUse: ['C', 'G', 'V'] },
    'encrypt data': { usage: 'D0', modeOfUse: ['B', 'E', 'D'] },
    'wrap/unwrap a key': { usage: 'K0', modeOfUse: ['B', 'E', 'D'] },
    'verify a PIN (PVV)': { usage: 'V2', modeOfUse: ['C', 'V'] },
    'derive a DUKPT key': { usage: 'B0', modeOfUse: 'X' },
  };
  const keys: Record<string, [KeyAttributes, string]> = {
    PIN: [attrs({ usage: 'P0', modeOfUse: 'B' }), 'encrypt/translate a PIN block'],
    MAC: [attrs({ usage: 'M3', modeOfUse: 'C' }), 'generate/verify a MAC'],
    data: [attrs({ usage: 'D0', modeOfUse: 'B' }), 'encrypt data'],
    KEK: [attrs({ usage: 'K0', modeOfUse: 'B' }), 'wrap/unwrap a key'],
    PVK: [attrs({ usage: 'V2', modeOfUse: 'C' }), 'verify a PIN (PVV)'],
    BDK: [attrs({ usage: 'B0', modeOfUse: 'X' }), 'derive a DUKPT key'],
  };
  for (const [name, [a, allowed]] of Object.entries(keys)) {
    const block = lmk.wrapKey(new Uint8Array(16).fill(0x11), a);
    for (const [op, expect] of Object.entries(operations)) {
      test(`a ${name} key ${op === allowed ? 'may' : 'may not'} ${op}`, () => {
        if (op === allowed) {
          assert.equal(lmk.unwrapKey(block, expect).attrs.usage, a.usage);
        } else {
          assert.throws(
            () => lmk.unwrapKey(block, expect),
            (e: unknown) => e instanceof HsmError && e.code === 'HSM_KEY_USAGE' && e.reply === 'A6',
          );
        }
      });
    }
  }

  test('the usage error names the usage and what was expected, no key material', () => {
    const mac = lmk.wrapKey(new Uint8Array(16).fill(0x11), attrs({ usage: 'M3', modeOfUse: 'C' }));
    throwsHsm(
      () => lmk.unwrapKey(mac, { usage: 'P0', modeOfUse: 'B' }),
      'HSM_KEY_USAGE',
      'keyBlock: key usage M3 (MAC, ISO 9797-1 algorithm 3 (retail MAC)) is not accepted here (expected P0)',
    );
  });

  test('a generate-only MAC key may not verify; an encrypt-only PIN key may not decrypt', () => {
    const gen = lmk.wrapKey(new Uint8Array(16), attrs({ usage: 'M3', modeOfUse: 'G' }));
    throwsHsm(
      () => lmk.unwrapKey(gen, { usage: 'M3', modeOfUse: ['C', 'V'] }),
      'HSM_KEY_MODE_OF_USE',
      'keyBlock: mode of use G is not accepted here (expected C or V)',
      'A8',
    );
    const enc = lmk.wrapKey(new Uint8Array(16), attrs({ usage: 'P0', modeOfUse: 'E' }));
    throwsHsm(
      () => lmk.unwrapKey(enc, { usage: 'P0', modeOfUse: ['B', 'D'] }),
      'HSM_KEY_MODE_OF_USE',
      'keyBlock: mode of use E is not accepted here (expected B or D)',
    );
  });

  test('an AES key is refused where TDES is expected', () => {
    const aes = lmk.wrapKey(new Uint8Array(16), attrs({ algorithm: 'A' }));
    throwsHsm(
      () => lmk.unwrapKey(aes, { usage: 'P0', modeOfUse: 'B', algorithm: 'T' }),
      'HSM_KEY_ALGORITHM',
      'keyBlock: algorithm A is not accepted here (expected T)',
      'A7',
    );
  });
});

describe('low-level wrap/unwrap with derived keys', () => {
  test('unwrapLmkKeyBlock with the keys of another KBPK fails the MAC', () => {
    const k1 = deriveKeyBlockKeys(new Uint8Array(32).fill(1));
    const k2 = deriveKeyBlockKeys(new Uint8Array(32).fill(2));
    const b = wrapLmkKeyBlock(k1, new Uint8Array(16), attrs());
    assert.equal(unwrapLmkKeyBlock(k1, b, null).key.length, 16);
    throwsHsm(
      () => unwrapLmkKeyBlock(k2, b, null),
      'HSM_KEYBLOCK_MAC',
      'keyBlock: MAC does not verify (block altered, or under another LMK)',
    );
  });
});

describe('the Lmk object never shows its key', () => {
  test('toString, JSON and inspect give only the check value', () => {
    const l: Lmk = lmk;
    assert.equal(String(l), `Lmk(check value ${l.checkValue})`);
    assert.equal(JSON.stringify(l), `{"checkValue":"${l.checkValue}"}`);
    assert.equal(inspect(l), `Lmk(check value ${l.checkValue})`);
    assert.deepEqual(Object.keys(l), ['checkValue']);
  });
});
