import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { concat, fromAscii, fromHex, toHex } from '../src/bytes.js';
import { encrypt } from '../src/cipher.js';
import { cmac } from '../src/cmac.js';
import { CryptoError, type CryptoErrorCode } from '../src/errors.js';
import {
  deriveKeyBlockKeys,
  formatKeyBlockHeader,
  KEY_BLOCK_KEY_USAGES,
  type KeyBlockHeader,
  type KeyBlockOptionalBlock,
  type KeyBlockVersion,
  parseKeyBlockHeader,
  unwrapKeyBlock,
  wrapKeyBlock,
} from '../src/tr31.js';
import { label, vectors } from './vectors.js';

/** Asserts that `fn` throws a CryptoError with exactly this code and message. */
function throwsCrypto(fn: () => unknown, code: CryptoErrorCode, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CryptoError, `expected CryptoError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    return true;
  });
}

/** A `random` that returns fixed bytes, and fails the test if asked for another length. */
function fixedRandom(bytes: Uint8Array): (n: number) => Uint8Array {
  return (n) => {
    assert.equal(n, bytes.length, 'random asked for an unexpected number of bytes');
    return bytes.slice();
  };
}

const zeros = (n: number) => new Uint8Array(n);

describe('TR-31 / X9.143 / ISO 20038 unwrap: published blocks', () => {
  for (const v of vectors('tr31_unwrap')) {
    test(label(v), () => {
      const block = v.key_block as string;
      const r = unwrapKeyBlock(fromHex(v.kbpk as string), block);
      assert.equal(toHex(r.key), v.expected.key);
      assert.equal(r.headerText, block.slice(0, r.headerText.length));
      // The parsed header writes back to the very text the MAC covers.
      assert.equal(formatKeyBlockHeader(r.header, block.length), r.headerText);
    });
  }
});

describe('KBEK/KBAK derivation (variant: TR-31:2010 §5.3.1; CMAC: TR-31:2018 §5.3.2, ISO 20038 §6.3)', () => {
  for (const v of vectors('tr31_kbpk_derive')) {
    test(label(v), () => {
      const { kbek, kbak } = deriveKeyBlockKeys(v.version as KeyBlockVersion, fromHex(v.kbpk as string));
      assert.equal(toHex(kbek), v.expected.kbek);
      assert.equal(toHex(kbak), v.expected.kbak);
    });
  }
});

describe('wrap reproduces published blocks when the padding is fixed', () => {
  for (const v of vectors('tr31_wrap')) {
    test(label(v), () => {
      const block = wrapKeyBlock(fromHex(v.kbpk as string), v.header as string, fromHex(v.key as string), {
        random: fixedRandom(fromHex(v.padding as string)),
        ...(v.maskedKeyLength === undefined ? {} : { maskedKeyLength: v.maskedKeyLength as number }),
      });
      assert.equal(block, v.expected.key_block);
    });
  }
});

// --- Generators ---------------------------------------------------------------------------

const ALNUM = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const alnumChar = fc.constantFrom(...ALNUM.split(''));
const alnum = (n: number) => fc.array(alnumChar, { minLength: n, maxLength: n }).map((a) => a.join(''));
const printable = (maxLength: number) =>
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength });

/** Optional blocks other than PB; some long enough for the extended length form. */
const optionalBlocks = fc.array(
  fc
    .record({
      id: alnum(2).filter((id) => id !== 'PB'),
      data: fc.oneof({ weight: 4, arbitrary: printable(40) }, { weight: 1, arbitrary: printable(400) }),
    })
    .map((b): KeyBlockOptionalBlock => ({ id: b.id, data: b.data })),
  { maxLength: 3 },
);

const headerOf = (versionId: KeyBlockVersion, algorithm: string) =>
  fc
    .record({
      versionId: fc.constant(versionId),
      keyUsage: fc.oneof(fc.constantFrom(...Object.keys(KEY_BLOCK_KEY_USAGES)), alnum(2)),
      algorithm: fc.constant(algorithm),
      modeOfUse: alnumChar,
      keyVersionNumber: alnum(2),
      exportability: fc.constantFrom('E', 'N', 'S'),
      keyContext: fc.constantFrom('0', '1', '2'),
      optionalBlocks,
    })
    .map((h): KeyBlockHeader => ({ ...h }));

const bytes = (lengths: number[]) =>
  fc.constantFrom(...lengths).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));

/** A case: version, KBPK, key, header, each valid together (key no stronger than the KBPK). */
const wrapCase = fc.oneof(
  // B: TDES key (8/16/24) under a TDES KBPK at least as long.
  bytes([8, 16, 24]).chain((key) =>
    fc.record({
      kbpk: bytes([16, 24].filter((n) => n >= key.length)),
      key: fc.constant(key),
      header: headerOf('B', 'T'),
    }),
  ),
  // D and E: AES key (16/24/32) under an AES KBPK at least as long, or a TDES key under any AES KBPK.
  ...(['D', 'E'] as const).flatMap((v) => [
    bytes([16, 24, 32]).chain((key) =>
      fc.record({
        kbpk: bytes([16, 24, 32].filter((n) => n >= key.length)),
        key: fc.constant(key),
        header: headerOf(v, 'A'),
      }),
    ),
    fc.record({ kbpk: bytes([16, 24, 32]), key: bytes([8, 16, 24]), header: headerOf(v, 'T') }),
  ]),
);

describe('wrap/unwrap round trip (fast-check)', () => {
  test('B (TDES) and D/E (AES): random keys, optional blocks and masking', () => {
    fc.assert(
      fc.property(wrapCase, fc.option(fc.integer({ min: 0, max: 24 })), ({ kbpk, key, header }, extra) => {
        const opts = extra === null ? {} : { maskedKeyLength: key.length + extra };
        const block = wrapKeyBlock(kbpk, header as KeyBlockHeader, key, opts);
        const r = unwrapKeyBlock(kbpk, block);
        assert.deepEqual(r.key, key);
        const n = header.optionalBlocks.length;
        assert.deepEqual({ ...r.header, optionalBlocks: r.header.optionalBlocks.slice(0, n) }, header);
        // At most one block was added, and only a PB to reach the cipher block size.
        assert.ok(r.header.optionalBlocks.length <= n + 1);
        if (r.header.optionalBlocks.length === n + 1) assert.equal(r.header.optionalBlocks[n]!.id, 'PB');
        assert.equal(r.headerText.length % (header.versionId === 'B' ? 8 : 16), 0);
        assert.equal(Number(block.slice(1, 5)), block.length);
      }),
      { numRuns: 150 },
    );
  });

  test('the CLI form: a 16-character header text whose length field is filled in', () => {
    const kbpk = fromHex('88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6');
    const key = fromHex('3F419E1CB7079442AA37474C2EFBF8B8');
    const a = wrapKeyBlock(kbpk, 'D0000P0AE00E0000', key);
    const b = wrapKeyBlock(kbpk, 'D0000P0AE00E0000', key);
    assert.equal(a.slice(0, 16), 'D0112P0AE00E0000');
    assert.notEqual(a, b, 'the padding is random, so two wraps differ');
    assert.deepEqual(unwrapKeyBlock(kbpk, a).key, key);
    assert.deepEqual(unwrapKeyBlock(kbpk, b).key, key);
  });

  test('a PB block pads the header to the cipher block; PB data comes from `random`', () => {
    const kbpk = fromHex('1D22BF32387C600AD97F9B97A51311AC');
    const key = fromHex('E8BC63E5479455E26577F715D587FE68');
    // 16 + KS (4 + 10) = 30 characters: 2 short of 32, too few for PB's own 4, so PB takes 10.
    const calls: number[] = [];
    const random = (n: number) => {
      calls.push(n);
      return zeros(n);
    };
    const block = wrapKeyBlock(kbpk, 'B0000B0TX12S0100KS0E00604B120F', key, { random });
    assert.equal(block.slice(0, 40), 'B0104B0TX12S0200KS0E00604B120FPB0A000000');
    assert.deepEqual(calls, [6, 6]);
    const r = unwrapKeyBlock(kbpk, block);
    assert.deepEqual(r.header.optionalBlocks, [
      { id: 'KS', data: '00604B120F' },
      { id: 'PB', data: '000000' },
    ]);
  });
});

describe('header parse/format', () => {
  test('round trip (fast-check), extended lengths included', () => {
    const anyHeader = fc
      .constantFrom<KeyBlockVersion>('A', 'B', 'C', 'D', 'E')
      .chain((v) => headerOf(v, 'T').chain((h) => alnumChar.map((algorithm) => ({ ...h, algorithm }))));
    fc.assert(
      fc.property(anyHeader, fc.integer({ min: 0, max: 9999 }), (h, length) => {
        const text = formatKeyBlockHeader(h, length);
        const p = parseKeyBlockHeader(text);
        assert.deepEqual(p.header, h);
        assert.equal(p.blockLength, length);
        assert.equal(p.headerLength, text.length);
        // Followed by a payload, the header still parses to the same place.
        assert.equal(parseKeyBlockHeader(`${text}0123ABCD`).headerLength, text.length);
      }),
    );
  });

  test('fields of a known header, and the 0004 extended length of X9.143:2021 §8.5', () => {
    const p = parseKeyBlockHeader('B0104B0TX12S0100KS1800604B120F9292800000');
    assert.deepEqual(p, {
      header: {
        versionId: 'B',
        keyUsage: 'B0',
        algorithm: 'T',
        modeOfUse: 'X',
        keyVersionNumber: '12',
        exportability: 'S',
        keyContext: '0',
        optionalBlocks: [{ id: 'KS', data: '00604B120F9292800000' }],
      },
      blockLength: 104,
      headerLength: 40,
    });
    const ext = parseKeyBlockHeader(`D0000S0RS00N0100CT00040010000000${'A'.repeat(6)}`);
    assert.deepEqual(ext.header.optionalBlocks, [{ id: 'CT', data: '000000' }]);
    assert.equal(ext.headerLength, 32);
  });

  test("psec's extended form (length of length 02) reads the same 4-digit length", () => {
    const p = parseKeyBlockHeader(`B0000P0TE00N0200KS0002010A${'P'.repeat(256)}PB0600`);
    assert.equal(p.header.optionalBlocks[0]!.data, 'P'.repeat(256));
    assert.equal(p.headerLength, 288);
    // Written back in the standard's form.
    assert.equal(formatKeyBlockHeader(p.header, 0), `B0000P0TE00N0200KS0004010A${'P'.repeat(256)}PB0600`);
  });
});

// --- Tampering ----------------------------------------------------------------------------

const TAMPER_IDS = [259, 260, 267, 272, 275, 277, 290, 294, 302, 305];
const tamperVectors = vectors('tr31_unwrap').filter((v) => TAMPER_IDS.includes(v.id as number));

describe('a block with any character changed never yields a key', () => {
  test('covers every version', () => {
    const versions = new Set(tamperVectors.map((v) => (v.key_block as string)[0]));
    assert.deepEqual([...versions].sort(), ['A', 'B', 'C', 'D', 'E']);
  });
  for (const v of tamperVectors) {
    const block = v.key_block as string;
    const kbpk = fromHex(v.kbpk as string);
    const key = v.expected.key as string;
    const payloadHex = block.slice(-(block.length - parseKeyBlockHeader(block).headerLength));
    const check = (i: number, c: string) => {
      const changed = block.slice(0, i) + c + block.slice(i + 1);
      try {
        unwrapKeyBlock(kbpk, changed);
      } catch (e) {
        assert.ok(e instanceof CryptoError, `position ${i}: ${String(e)}`);
        assert.ok(!e.message.includes(key), 'message holds the key');
        for (let j = 0; j + 8 <= payloadHex.length; j += 4)
          assert.ok(!e.message.includes(payloadHex.slice(j, j + 8)), 'message holds the payload');
        return;
      }
      assert.fail(`position ${i} changed to ${JSON.stringify(c)}: a key came out`);
    };
    test(`#${v.id}: every position, one hex-or-digit change each`, () => {
      for (let i = 0; i < block.length; i++) check(i, block[i] === '0' ? '1' : '0');
    });
    test(`#${v.id}: any position, any character (fast-check)`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: block.length - 1 }),
          fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c)),
          (i, c) => {
            fc.pre(c !== block[i]);
            check(i, c);
          },
        ),
        { numRuns: 200 },
      );
    });
  }
  test('a wrong KBPK is a MAC failure, and the message holds no secret', () => {
    const v = vectors('tr31_unwrap').find((x) => x.id === 288)!;
    const kbpk = fromHex(v.kbpk as string);
    kbpk[0]! ^= 1;
    throwsCrypto(
      () => unwrapKeyBlock(kbpk, v.key_block as string),
      'CRYPTO_KEYBLOCK_MAC',
      'block.mac: does not verify: the block was altered or the KBPK is not the one it was made under',
    );
  });
});

// --- Error paths ----------------------------------------------------------------------------

const TDES_KBPK = fromHex('DD7515F2BFC17F85CE48F3CA25CB21F6');
const AES_KBPK = fromHex('88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6');
const B_BLOCK = 'B0080P0TE00E000094B420079CC80BA3461F86FE26EFC4A3B8E4FA4C5F5341176EED7B727B8A248E';
const D_BLOCK =
  'D0112P0AE00E0000B82679114F470F540165EDFBF7E250FCEA43F810D215F8D207E2E417C07156A27E8E31DA05F7425509593D03A457DC34';

/** A version D block with a chosen clear payload and a valid MAC, to reach the checks after it. */
function craftD(headerText: string, clear: Uint8Array): string {
  const { kbek, kbak } = deriveKeyBlockKeys('D', AES_KBPK);
  const text = `D${String(headerText.length + clear.length * 2 + 32).padStart(4, '0')}${headerText.slice(5)}`;
  const mac = cmac('aes', kbak, concat(fromAscii(text), clear));
  return text + toHex(encrypt('aes', 'cbc', kbek, clear, mac)) + toHex(mac);
}

describe('unwrap errors: exact code and message', () => {
  const cases: [string, Uint8Array, string, CryptoErrorCode, string][] = [
    [
      'non-printable',
      TDES_KBPK,
      `${B_BLOCK.slice(0, 20)}\n${B_BLOCK.slice(21)}`,
      'CRYPTO_KEYBLOCK_FORMAT',
      'block: character at position 20 is not printable ASCII',
    ],
    [
      'too short',
      TDES_KBPK,
      'B0016P0TE00E',
      'CRYPTO_KEYBLOCK_FORMAT',
      'block: must be at least 16 characters (the fixed header), got 12',
    ],
    [
      'unknown version',
      TDES_KBPK,
      `X${B_BLOCK.slice(1)}`,
      'CRYPTO_KEYBLOCK_VERSION',
      'header.versionId: unknown key block version (expected A, B, C, D or E)',
    ],
    [
      'length not digits',
      TDES_KBPK,
      `B00A0${B_BLOCK.slice(5)}`,
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.blockLength: must be 4 decimal digits',
    ],
    [
      'declared length differs',
      TDES_KBPK,
      `${B_BLOCK}00`,
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.blockLength: declares 80 characters but the block has 82',
    ],
    [
      'version B, AES-256 KBPK',
      AES_KBPK,
      B_BLOCK,
      'CRYPTO_KEY_LENGTH',
      'kbpk: version B needs a TDES KBPK of 16 or 24 bytes, got 32',
    ],
    [
      'version D, 8-byte KBPK',
      TDES_KBPK.subarray(0, 8),
      D_BLOCK,
      'CRYPTO_KEY_LENGTH',
      'kbpk: version D needs an AES KBPK of 16, 24 or 32 bytes, got 8',
    ],
    [
      'header not a multiple of the block',
      TDES_KBPK,
      `B0087P0TE00E0100KS07000${'A'.repeat(64)}`,
      'CRYPTO_KEYBLOCK_FORMAT',
      'header: 23 characters is not a multiple of 8 (pad it with a PB block)',
    ],
    [
      'odd payload',
      TDES_KBPK,
      `B0079${B_BLOCK.slice(5, 20)}${B_BLOCK.slice(21)}`,
      'CRYPTO_KEYBLOCK_FORMAT',
      'payload: odd number of hex characters (47)',
    ],
    [
      'lower-case hex',
      TDES_KBPK,
      `${B_BLOCK.slice(0, 16)}94b4${B_BLOCK.slice(20)}`,
      'CRYPTO_KEYBLOCK_FORMAT',
      'block: character at position 18 is not an upper-case hex digit',
    ],
    [
      'not hex',
      TDES_KBPK,
      `${B_BLOCK.slice(0, 30)}G${B_BLOCK.slice(31)}`,
      'CRYPTO_KEYBLOCK_FORMAT',
      'block: character at position 30 is not an upper-case hex digit',
    ],
    [
      'payload not whole blocks',
      TDES_KBPK,
      `B0084${B_BLOCK.slice(5)}ABCD`,
      'CRYPTO_KEYBLOCK_FORMAT',
      'payload: 26 bytes is not a multiple of the 8-byte cipher block',
    ],
    [
      'no room for a payload',
      TDES_KBPK,
      'B0040P0TE00E00000123456789ABCDEF01234567',
      'CRYPTO_KEYBLOCK_FORMAT',
      'block: too short for a payload and a 16-character MAC',
    ],
    [
      'MAC altered',
      TDES_KBPK,
      `${B_BLOCK.slice(0, -1)}F`,
      'CRYPTO_KEYBLOCK_MAC',
      'block.mac: does not verify: the block was altered or the KBPK is not the one it was made under',
    ],
    [
      'payload altered (A: MAC checked before decryption)',
      fromHex('89E88CF7931444F334BD7547FC3F380C'),
      'A0072P0TE00E0000F5160ED902807AF26F1D62263644BD24192FDB3193C730301CEE8701',
      'CRYPTO_KEYBLOCK_MAC',
      'block.mac: does not verify: the block was altered or the KBPK is not the one it was made under',
    ],
    [
      'reserved position',
      TDES_KBPK,
      `${B_BLOCK.slice(0, 15)}1${B_BLOCK.slice(16)}`,
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.reserved: position 15 is reserved and must be 0',
    ],
  ];
  for (const [name, kbpk, block, code, message] of cases) {
    test(name, () => throwsCrypto(() => unwrapKeyBlock(kbpk, block), code, message));
  }

  const header = 'D0000P0AE00E0000';
  const payload = (bits: number, keyLength: number, total: number) => {
    const p = new Uint8Array(total);
    p[0] = bits >> 8;
    p[1] = bits & 0xff;
    p.fill(0x11, 2, 2 + keyLength);
    return p;
  };
  test('crafted block with a valid MAC unwraps (the helper is right)', () => {
    assert.equal(toHex(unwrapKeyBlock(AES_KBPK, craftD(header, payload(128, 16, 32))).key), '11'.repeat(16));
  });
  const lengthCases: [string, string, Uint8Array, string][] = [
    [
      'key length 0',
      header,
      payload(0, 16, 32),
      'payload.keyLength: is not a positive whole number of bytes',
    ],
    [
      'key length not whole bytes',
      header,
      payload(132, 16, 32),
      'payload.keyLength: is not a positive whole number of bytes',
    ],
    [
      'key longer than the payload',
      header,
      payload(31 * 8, 16, 32),
      'payload.keyLength: gives 31 bytes but the payload holds at most 30',
    ],
    [
      'length the algorithm does not take',
      'D0000P0TE00E0000',
      payload(32 * 8, 32, 48),
      'payload.keyLength: gives 32 bytes, which algorithm T does not take (8, 16, 24)',
    ],
  ];
  for (const [name, h, clear, message] of lengthCases) {
    test(name, () =>
      throwsCrypto(() => unwrapKeyBlock(AES_KBPK, craftD(h, clear)), 'CRYPTO_KEYBLOCK_KEY_LENGTH', message),
    );
  }
  test('programmer misuse is a TypeError', () => {
    assert.throws(() => unwrapKeyBlock('00' as unknown as Uint8Array, B_BLOCK), TypeError);
    assert.throws(() => unwrapKeyBlock(TDES_KBPK, 42 as unknown as string), TypeError);
  });
});

describe('header errors: exact code and message', () => {
  const base = 'B0000P0TE00N0';
  const cases: [string, string, CryptoErrorCode, string][] = [
    [
      'key usage',
      'B0000P_TE00N0000',
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.keyUsage: must be 2 alphanumeric characters',
    ],
    [
      'algorithm',
      'B0000P0_E00N0000',
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.algorithm: must be 1 alphanumeric character',
    ],
    [
      'mode of use',
      'B0000P0T_00N0000',
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.modeOfUse: must be 1 alphanumeric character',
    ],
    [
      'key version number',
      'B0000P0TE0_N0000',
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.keyVersionNumber: must be 2 alphanumeric characters (00 = no versioning)',
    ],
    [
      'exportability',
      'B0000P0TE00X0000',
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.exportability: must be E, N or S',
    ],
    [
      'optional block count',
      'B0000P0TE00N0X00',
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.optionalBlockCount: must be 2 decimal digits',
    ],
    ['key context', 'B0000P0TE00N0030', 'CRYPTO_KEYBLOCK_FORMAT', 'header.keyContext: must be 0, 1 or 2'],
    [
      'too short',
      'B0000P0TE00N00',
      'CRYPTO_KEYBLOCK_FORMAT',
      'header: must be at least 16 characters, got 14',
    ],
    [
      'non-printable',
      'B0000P0TE00N0000\u00e9',
      'CRYPTO_KEYBLOCK_FORMAT',
      'header: character at position 16 is not printable ASCII',
    ],
    [
      'block truncated',
      `${base}100KS`,
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.optionalBlocks[0]: truncated at position 16 (needs an ID and a length)',
    ],
    [
      'block ID',
      `${base}100**04`,
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.optionalBlocks[0].id: must be 2 alphanumeric characters',
    ],
    [
      'block length not hex',
      `${base}100KS1Y`,
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.optionalBlocks[0].length: must be 2 hex digits',
    ],
    [
      'block length too small',
      `${base}100KS02`,
      'CRYPTO_KEYBLOCK_FORMAT',
      "header.optionalBlocks[0].length: 2 is shorter than the block's own ID and length",
    ],
    [
      'block past the end',
      `${base}100KS071`,
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.optionalBlocks[0].length: 7 runs past the end of the header (position 16)',
    ],
    [
      'extended truncated',
      `${base}100KS0004`,
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.optionalBlocks[0]: truncated at position 16 (extended length needs 10 characters)',
    ],
    [
      'extended length of length',
      `${base}100KS00030010`,
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.optionalBlocks[0].length: extended length must give its length of length as 04',
    ],
    [
      'extended length not hex',
      `${base}100KS00040X10`,
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.optionalBlocks[0].length: extended length must be 4 hex digits',
    ],
    [
      'second block',
      `${base}200KS04TT03`,
      'CRYPTO_KEYBLOCK_FORMAT',
      "header.optionalBlocks[1].length: 3 is shorter than the block's own ID and length",
    ],
  ];
  for (const [name, text, code, message] of cases) {
    test(name, () => throwsCrypto(() => parseKeyBlockHeader(text), code, message));
  }

  const h: KeyBlockHeader = parseKeyBlockHeader('B0000P0TE00N0000').header;
  const formatCases: [string, () => unknown, CryptoErrorCode, string][] = [
    [
      'length field range',
      () => formatKeyBlockHeader(h, 10000),
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.blockLength: must be an integer from 0 to 9999',
    ],
    [
      'version',
      () => formatKeyBlockHeader({ ...h, versionId: 'F' as KeyBlockVersion }),
      'CRYPTO_KEYBLOCK_VERSION',
      'header.versionId: unknown key block version (expected A, B, C, D or E)',
    ],
    [
      'too many blocks',
      () =>
        formatKeyBlockHeader({
          ...h,
          optionalBlocks: Array.from({ length: 100 }, () => ({ id: 'LB', data: '' })),
        }),
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.optionalBlocks: at most 99 optional blocks, got 100',
    ],
    [
      'block data not printable',
      () => formatKeyBlockHeader({ ...h, optionalBlocks: [{ id: 'LB', data: 'a\tb' }] }),
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.optionalBlocks[0].data: character at position 1 is not printable ASCII',
    ],
    [
      'block data too long',
      () => formatKeyBlockHeader({ ...h, optionalBlocks: [{ id: 'LB', data: 'x'.repeat(65526) }] }),
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.optionalBlocks[0].data: 65526 characters do not fit an optional block (at most 65525)',
    ],
    [
      'block ID',
      () => formatKeyBlockHeader({ ...h, optionalBlocks: [{ id: 'L', data: '' }] }),
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.optionalBlocks[0].id: must be 2 alphanumeric characters',
    ],
  ];
  for (const [name, fn, code, message] of formatCases) {
    test(`format: ${name}`, () => throwsCrypto(fn, code, message));
  }
  test('format: a block of 251 characters is short, 252 extended', () => {
    const short = formatKeyBlockHeader({ ...h, optionalBlocks: [{ id: 'LB', data: 'x'.repeat(251) }] });
    assert.equal(short.slice(16, 20), 'LBFF');
    const long = formatKeyBlockHeader({ ...h, optionalBlocks: [{ id: 'LB', data: 'x'.repeat(252) }] });
    assert.equal(long.slice(16, 26), 'LB00040106');
  });
  test('format: programmer misuse is a TypeError', () => {
    assert.throws(
      () => formatKeyBlockHeader({ ...h, optionalBlocks: [{ id: 1 } as unknown as KeyBlockOptionalBlock] }),
      TypeError,
    );
    assert.throws(() => formatKeyBlockHeader({ ...h, keyUsage: undefined as unknown as string }), TypeError);
  });
});

describe('wrap errors: exact code and message', () => {
  const tdesKey = fromHex('3F419E1CB7079442AA37474C2EFBF8B8');
  const cases: [string, () => unknown, CryptoErrorCode, string][] = [
    [
      'version A refused',
      () => wrapKeyBlock(TDES_KBPK, 'A0000P0TE00E0000', tdesKey),
      'CRYPTO_KEYBLOCK_VERSION',
      'header.versionId: version A (TDES key variant binding) is legacy: it is unwrapped only; wrap with version B (TDES KBPK) or D (AES KBPK)',
    ],
    [
      'version C refused',
      () => wrapKeyBlock(TDES_KBPK, 'C0000P0TE00E0000', tdesKey),
      'CRYPTO_KEYBLOCK_VERSION',
      'header.versionId: version C (TDES key variant binding) is legacy: it is unwrapped only; wrap with version B (TDES KBPK) or D (AES KBPK)',
    ],
    [
      'unknown version',
      () => wrapKeyBlock(TDES_KBPK, 'Z0000P0TE00E0000', tdesKey),
      'CRYPTO_KEYBLOCK_VERSION',
      'header.versionId: unknown key block version (expected A, B, C, D or E)',
    ],
    [
      'B with an AES-256 KBPK',
      () => wrapKeyBlock(AES_KBPK, 'B0000P0TE00E0000', tdesKey),
      'CRYPTO_KEY_LENGTH',
      'kbpk: version B needs a TDES KBPK of 16 or 24 bytes, got 32',
    ],
    [
      'D with a single-DES KBPK',
      () => wrapKeyBlock(TDES_KBPK.subarray(0, 8), 'D0000P0TE00E0000', tdesKey),
      'CRYPTO_KEY_LENGTH',
      'kbpk: version D needs an AES KBPK of 16, 24 or 32 bytes, got 8',
    ],
    [
      'empty key',
      () => wrapKeyBlock(TDES_KBPK, 'B0000P0TE00E0000', new Uint8Array(0)),
      'CRYPTO_KEY_LENGTH',
      'key: must not be empty',
    ],
    [
      'length the algorithm does not take',
      () => wrapKeyBlock(AES_KBPK, 'D0000P0AE00E0000', zeros(20)),
      'CRYPTO_KEY_LENGTH',
      'key: algorithm A takes 16, 24, 32 bytes, got 20',
    ],
    [
      'AES key under a TDES KBPK',
      () => wrapKeyBlock(TDES_KBPK, 'B0000P0AE00E0000', zeros(16)),
      'CRYPTO_KEYBLOCK_VERSION',
      'header.versionId: an AES key must not be wrapped under a TDES KBPK (version B); use version D',
    ],
    [
      'key stronger than the KBPK (TDES)',
      () => wrapKeyBlock(TDES_KBPK, 'B0000P0TE00E0000', zeros(24)),
      'CRYPTO_KEY_LENGTH',
      'key: a 24-byte key must not be wrapped under a weaker 16-byte KBPK',
    ],
    [
      'key stronger than the KBPK (AES)',
      () => wrapKeyBlock(AES_KBPK.subarray(0, 16), 'D0000P0AE00E0000', zeros(32)),
      'CRYPTO_KEY_LENGTH',
      'key: a 32-byte key must not be wrapped under a weaker 16-byte KBPK',
    ],
    [
      'masked length below the key',
      () => wrapKeyBlock(TDES_KBPK, 'B0000P0TE00E0000', tdesKey, { maskedKeyLength: 8 }),
      'CRYPTO_PARAM',
      'opts.maskedKeyLength: must be an integer from the key length (16) to 8191',
    ],
    [
      'masked length not an integer',
      () => wrapKeyBlock(TDES_KBPK, 'B0000P0TE00E0000', tdesKey, { maskedKeyLength: 16.5 }),
      'CRYPTO_PARAM',
      'opts.maskedKeyLength: must be an integer from the key length (16) to 8191',
    ],
    [
      'text after the header',
      () => wrapKeyBlock(TDES_KBPK, 'B0000P0TE00E0000ABCD', tdesKey),
      'CRYPTO_KEYBLOCK_FORMAT',
      'header: has 4 characters after its optional blocks',
    ],
    [
      'PB not last',
      () => wrapKeyBlock(TDES_KBPK, 'B0000P0TE00E0200PB04LB04', tdesKey),
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.optionalBlocks: PB (padding block) must be the last optional block',
    ],
    [
      'PB that does not pad',
      () => wrapKeyBlock(TDES_KBPK, 'B0000P0TE00E0100PB05x', tdesKey),
      'CRYPTO_KEYBLOCK_FORMAT',
      'header: 21 characters, PB included, is not a multiple of 8',
    ],
    [
      'bad header field in an object',
      () =>
        wrapKeyBlock(
          TDES_KBPK,
          { ...parseKeyBlockHeader('B0000P0TE00E0000').header, exportability: 'Q' },
          tdesKey,
        ),
      'CRYPTO_KEYBLOCK_FORMAT',
      'header.exportability: must be E, N or S',
    ],
  ];
  for (const [name, fn, code, message] of cases) {
    test(name, () => throwsCrypto(fn, code, message));
  }
  test('block too long: the limit is the 4-digit length field', () => {
    throwsCrypto(
      // 3856-character header + 2 * 3104-byte payload + 32-character MAC.
      () => wrapKeyBlock(AES_KBPK, `D0000D0RN00N0100LB00040F00${'x'.repeat(0xf00 - 10)}`, zeros(3100)),
      'CRYPTO_KEYBLOCK_FORMAT',
      'block: would be 10096 characters, more than the 9999 the length field holds',
    );
  });
  test('a `random` that returns the wrong length is a RangeError', () => {
    assert.throws(
      () => wrapKeyBlock(TDES_KBPK, 'B0000P0TE00E0000', tdesKey, { random: () => zeros(1) }),
      RangeError,
    );
  });
  test('programmer misuse is a TypeError', () => {
    assert.throws(() => wrapKeyBlock('k' as unknown as Uint8Array, 'B0000P0TE00E0000', tdesKey), TypeError);
    assert.throws(() => wrapKeyBlock(TDES_KBPK, 'B0000P0TE00E0000', 'k' as unknown as Uint8Array), TypeError);
  });
});
