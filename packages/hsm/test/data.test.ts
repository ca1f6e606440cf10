/**
 * M0 / M2: data encryption under a data key (usage D0), each API test run twice: in process (LocalHsm)
 * and over TCP (HsmClient against an HsmServer on the same Hsm). Ciphertexts are checked against
 * node:crypto with the clear keys (taken from the test LMK) and against NIST SP 800-38A F.2.1
 * (test/vectors/sp800-38a-cbc.json); every refusal by its payShield reply code on both paths.
 */
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { adjustOddParity, fromHex, kcvAes, kcvTdes, toHex } from '@openposp/crypto';
import fc from 'fast-check';
import type { DataPadding } from '../src/api.js';
import { HsmError } from '../src/errors.js';
import { DATA_MAX_BYTES, Hsm } from '../src/hsm.js';
import { CachedKey } from '../src/keycache.js';
import type { KeyAttributes } from '../src/keystore.js';
import { LocalHsm } from '../src/local.js';
import { auditPath, both, hsm, lmk, rawCommand, setUpBothPaths } from './paths.js';
setUpBothPaths('hsm-data-');

/** Rejects with payShield `reply`; in process also with `code` (over TCP the client's HSM_REPLY_ERROR). */
async function rejects(p: Promise<unknown>, local: boolean, reply: string, code: string): Promise<HsmError> {
  let err: HsmError | undefined;
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof HsmError, `expected HsmError, got ${String(e)}`);
    assert.equal(e.reply, reply, `reply (${e.message})`);
    assert.equal(e.code, local ? code : 'HSM_REPLY_ERROR');
    err = e;
    return true;
  });
  return err!;
}

const attrs = (
  usage: KeyAttributes['usage'],
  algorithm: KeyAttributes['algorithm'],
  modeOfUse: KeyAttributes['modeOfUse'],
): KeyAttributes => ({ usage, algorithm, modeOfUse, keyVersion: '00', exportability: 'N' });
const tdesKey = (hex: string): Uint8Array => adjustOddParity(fromHex(hex));
const clearKey = (block: string): Uint8Array => lmk.unwrapKey(block, null).key;
const ascii = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

const V = JSON.parse(readFileSync(new URL('./vectors/sp800-38a-cbc.json', import.meta.url), 'utf8')) as {
  clause: string;
  key: string;
  iv: string;
  plaintext: string[];
  ciphertext: string[];
};

// Fixed data keys under the test LMK (clear values known, so results are checked with node:crypto).
const K = {
  dekT2: lmk.wrapKey(tdesKey('0123456789ABCDEFFEDCBA9876543210'), attrs('D0', 'T', 'B')),
  dekT3: lmk.wrapKey(tdesKey('0123456789ABCDEF23456789ABCDEF01456789ABCDEF0123'), attrs('D0', 'T', 'B')),
  dekA128: lmk.wrapKey(fromHex(V.key), attrs('D0', 'A', 'B')),
  dekA256: lmk.wrapKey(
    fromHex('603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4'),
    attrs('D0', 'A', 'B'),
  ),
  dekOther: lmk.wrapKey(fromHex('000102030405060708090A0B0C0D0E0F'), attrs('D0', 'A', 'B')),
  encryptOnly: lmk.wrapKey(fromHex(V.key), attrs('D0', 'A', 'E')),
  decryptOnly: lmk.wrapKey(fromHex(V.key), attrs('D0', 'A', 'D')),
  tpk: lmk.wrapKey(tdesKey('0123456789ABCDEFFEDCBA9876543210'), attrs('P0', 'T', 'B')),
  zpkAes: lmk.wrapKey(fromHex(V.key), attrs('P0', 'A', 'B')),
  tak: lmk.wrapKey(tdesKey('0123456789ABCDEFFEDCBA9876543210'), attrs('M3', 'T', 'C')),
  zakAes: lmk.wrapKey(fromHex(V.key), attrs('M6', 'A', 'C')),
  tmk: lmk.wrapKey(tdesKey('0123456789ABCDEFFEDCBA9876543210'), attrs('K0', 'T', 'B')),
  zmkAes: lmk.wrapKey(fromHex(V.key), attrs('K0', 'A', 'B')),
  pvk: lmk.wrapKey(tdesKey('0123456789ABCDEFFEDCBA9876543210'), attrs('V2', 'T', 'C')),
  bdk: lmk.wrapKey(fromHex('0123456789ABCDEFFEDCBA9876543210'), attrs('B0', 'T', 'X')),
};
const PAN = ascii('4012345678909');

/** CBC of whole blocks with node:crypto (2-key TDES as K1 K2 K1), computed apart from the HSM's code. */
function nodeCbc(key: Uint8Array, aes: boolean, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const name = aes ? `aes-${key.length * 8}-cbc` : key.length === 16 ? 'des-ede-cbc' : 'des-ede3-cbc';
  const c = createCipheriv(name, key, iv).setAutoPadding(false);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}
/** ISO/IEC 9797-1 padding method 2, written out here (not the crypto package's). */
function pad2(data: Uint8Array, b: number): Uint8Array {
  const out = new Uint8Array((Math.floor(data.length / b) + 1) * b);
  out.set(data);
  out[data.length] = 0x80;
  return out;
}

describe('M0/M2 known answers', () => {
  both(`AES-128-CBC: NIST SP 800-38A ${V.clause} (no padding, the caller's IV), and back`, async (api) => {
    const data = fromHex(V.plaintext.join(''));
    const iv = fromHex(V.iv);
    const e = await api.encryptData({ key: K.dekA128, data, iv, padding: 'none' });
    assert.equal(toHex(e.ciphertext), V.ciphertext.join(''));
    assert.equal(toHex(e.iv), V.iv);
    assert.equal(toHex(nodeCbc(fromHex(V.key), true, iv, data)), V.ciphertext.join(''));
    const d = await api.decryptData({ key: K.dekA128, iv, ciphertext: e.ciphertext, padding: 'none' });
    assert.equal(toHex(d), V.plaintext.join(''));
    // One block alone (F.2.1 block 1) and the last two blocks chained from block 2's ciphertext.
    const one = await api.encryptData({
      key: K.dekA128,
      data: fromHex(V.plaintext[0]!),
      iv,
      padding: 'none',
    });
    assert.equal(toHex(one.ciphertext), V.ciphertext[0]);
    const tail = await api.decryptData({
      key: K.dekA128,
      iv: fromHex(V.ciphertext[1]!),
      ciphertext: fromHex(V.ciphertext[2]! + V.ciphertext[3]!),
      padding: 'none',
    });
    assert.equal(toHex(tail), V.plaintext[2]! + V.plaintext[3]!);
  });

  both('TDES-CBC (2-key and 3-key) of a PAN with method 2 padding equals node:crypto', async (api) => {
    const iv = fromHex('0102030405060708');
    for (const block of [K.dekT2, K.dekT3]) {
      const e = await api.encryptData({ key: block, data: PAN, iv });
      const want = nodeCbc(clearKey(block), false, iv, pad2(PAN, 8));
      assert.equal(toHex(e.ciphertext), toHex(want));
      assert.equal(e.ciphertext.length, 16);
      assert.deepEqual(await api.decryptData({ key: block, iv, ciphertext: e.ciphertext }), PAN);
    }
    // The 2-key value written down (node:crypto des-ede-cbc, and des-ede3-cbc with K1 K2 K1, when this
    // test was written), so that a change in either implementation shows.
    const e = await api.encryptData({ key: K.dekT2, data: PAN, iv });
    assert.equal(toHex(e.ciphertext), 'D450C96BEFE51194A447AC113AA9BE84');
  });

  both(
    'AES-256-CBC with method 2 padding equals node:crypto; aligned data gains a whole block',
    async (api) => {
      const iv = fromHex('F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF');
      for (const data of [PAN, fromHex(V.plaintext[0]!), new Uint8Array(1)]) {
        const e = await api.encryptData({ key: K.dekA256, data, iv, padding: 'iso9797-1-pad2' });
        assert.equal(toHex(e.ciphertext), toHex(nodeCbc(clearKey(K.dekA256), true, iv, pad2(data, 16))));
        assert.equal(e.ciphertext.length, (Math.floor(data.length / 16) + 1) * 16);
        assert.deepEqual(await api.decryptData({ key: K.dekA256, iv, ciphertext: e.ciphertext }), data);
      }
    },
  );
});

describe('M0/M2 round trips', () => {
  both('without an IV the HSM generates a random one per call and returns it', async (api) => {
    for (const [block, b] of [
      [K.dekT2, 8],
      [K.dekA128, 16],
    ] as const) {
      const a = await api.encryptData({ key: block, data: PAN });
      const c = await api.encryptData({ key: block, data: PAN });
      assert.equal(a.iv.length, b);
      assert.notDeepEqual(a.iv, c.iv);
      assert.notDeepEqual(a.ciphertext, c.ciphertext);
      assert.equal(toHex(a.ciphertext), toHex(nodeCbc(clearKey(block), b === 16, a.iv, pad2(PAN, b))));
      assert.deepEqual(await api.decryptData({ key: block, iv: a.iv, ciphertext: a.ciphertext }), PAN);
      assert.deepEqual(await api.decryptData({ key: block, iv: c.iv, ciphertext: c.ciphertext }), PAN);
    }
  });

  both('the largest data: 32000 bytes each way, with and without padding', async (api) => {
    const data = new Uint8Array(randomBytes(DATA_MAX_BYTES));
    for (const padding of ['iso9797-1-pad2', 'none'] as DataPadding[]) {
      for (const [key, b] of [
        [K.dekT2, 8],
        [K.dekA256, 16],
      ] as const) {
        const e = await api.encryptData({ key, data, padding });
        assert.equal(e.ciphertext.length, padding === 'none' ? DATA_MAX_BYTES : DATA_MAX_BYTES + b);
        assert.deepEqual(await api.decryptData({ key, iv: e.iv, ciphertext: e.ciphertext, padding }), data);
      }
    }
  });

  both('an encrypt-only key (mode E) encrypts, a decrypt-only key (mode D) decrypts', async (api) => {
    const e = await api.encryptData({ key: K.encryptOnly, data: PAN });
    assert.deepEqual(await api.decryptData({ key: K.decryptOnly, iv: e.iv, ciphertext: e.ciphertext }), PAN);
  });

  test('property: any data of 1 to 100 bytes, any key, any IV, both paddings round-trip and equal node:crypto', () => {
    const keys = [K.dekT2, K.dekT3, K.dekA128, K.dekA256];
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 100 }),
        fc.constantFrom(...keys),
        fc.boolean(),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        (raw, key, padded, ivBytes) => {
          const aes = lmk.unwrapKey(key, null).attrs.algorithm === 'A';
          const b = aes ? 16 : 8;
          const iv = ivBytes.slice(0, b);
          const data = padded ? raw : raw.slice(0, Math.max(b, raw.length - (raw.length % b)));
          if (!padded && data.length % b !== 0) return;
          const padding: DataPadding = padded ? 'iso9797-1-pad2' : 'none';
          const e = hsm.encryptData({ key, data, iv, padding });
          const want = nodeCbc(clearKey(key), aes, iv, padded ? pad2(data, b) : data);
          assert.equal(toHex(e.ciphertext), toHex(want));
          assert.deepEqual(hsm.decryptData({ key, iv, ciphertext: e.ciphertext, padding }), data);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('M0/M2 refusals', () => {
  const misuse: [string, string, string, string][] = [
    ['a PIN key (TDES TPK)', K.tpk, 'A6', 'HSM_KEY_USAGE'],
    ['a PIN key (AES ZPK)', K.zpkAes, 'A6', 'HSM_KEY_USAGE'],
    ['a MAC key (TAK)', K.tak, 'A6', 'HSM_KEY_USAGE'],
    ['a MAC key (AES ZAK)', K.zakAes, 'A6', 'HSM_KEY_USAGE'],
    ['a KEK (TMK)', K.tmk, 'A6', 'HSM_KEY_USAGE'],
    ['a KEK (AES ZMK)', K.zmkAes, 'A6', 'HSM_KEY_USAGE'],
    ['a PVK', K.pvk, 'A6', 'HSM_KEY_USAGE'],
    ['a BDK', K.bdk, 'A6', 'HSM_KEY_USAGE'],
  ];
  for (const [name, key, reply, code] of misuse) {
    both(`${name} can neither encrypt nor decrypt data: ${reply}`, async (api, local) => {
      await rejects(api.encryptData({ key, data: PAN }), local, reply, code);
      await rejects(
        api.decryptData({ key, iv: new Uint8Array(16), ciphertext: new Uint8Array(16) }),
        local,
        reply,
        code,
      );
    });
  }

  both(
    'mode of use: a decrypt-only key cannot encrypt, an encrypt-only key cannot decrypt: A8',
    async (api, local) => {
      await rejects(api.encryptData({ key: K.decryptOnly, data: PAN }), local, 'A8', 'HSM_KEY_MODE_OF_USE');
      await rejects(
        api.decryptData({ key: K.encryptOnly, iv: new Uint8Array(16), ciphertext: new Uint8Array(16) }),
        local,
        'A8',
        'HSM_KEY_MODE_OF_USE',
      );
    },
  );

  both('a tampered key block: A4', async (api, local) => {
    const i = 40;
    const tampered = K.dekA128.slice(0, i) + (K.dekA128[i] === '0' ? '1' : '0') + K.dekA128.slice(i + 1);
    await rejects(api.encryptData({ key: tampered, data: PAN }), local, 'A4', 'HSM_KEYBLOCK_MAC');
    await rejects(
      api.decryptData({ key: tampered, iv: new Uint8Array(16), ciphertext: new Uint8Array(16) }),
      local,
      'A4',
      'HSM_KEYBLOCK_MAC',
    );
    // A changed header (D0 mode E made B) fails the block's MAC too: the mode cannot be edited in.
    const widened = K.encryptOnly.replace(/^(S1\d{4}D0A)E/, '$1B');
    assert.notEqual(widened, K.encryptOnly);
    await rejects(
      api.decryptData({ key: widened, iv: new Uint8Array(16), ciphertext: new Uint8Array(16) }),
      local,
      'A4',
      'HSM_KEYBLOCK_MAC',
    );
  });

  both('data lengths: empty, over 32000 bytes, not whole blocks without padding: 80', async (api, local) => {
    const L = 'HSM_DATA_LENGTH';
    await rejects(api.encryptData({ key: K.dekA128, data: new Uint8Array(0) }), local, '80', L);
    await rejects(
      api.encryptData({ key: K.dekA128, data: new Uint8Array(DATA_MAX_BYTES + 1) }),
      local,
      '80',
      L,
    );
    await rejects(api.encryptData({ key: K.dekA128, data: PAN, padding: 'none' }), local, '80', L);
    await rejects(
      api.encryptData({ key: K.dekT2, data: new Uint8Array(12), padding: 'none' }),
      local,
      '80',
      L,
    );
    const iv16 = new Uint8Array(16);
    const iv8 = new Uint8Array(8);
    await rejects(
      api.decryptData({ key: K.dekA128, iv: iv16, ciphertext: new Uint8Array(0) }),
      local,
      '80',
      L,
    );
    await rejects(
      api.decryptData({ key: K.dekA128, iv: iv16, ciphertext: new Uint8Array(24) }),
      local,
      '80',
      L,
    );
    await rejects(api.decryptData({ key: K.dekT2, iv: iv8, ciphertext: new Uint8Array(12) }), local, '80', L);
    // Longest ciphertext: 32000 without padding, 32000 plus one block with it.
    await rejects(
      api.decryptData({ key: K.dekA128, iv: iv16, ciphertext: new Uint8Array(32016), padding: 'none' }),
      local,
      '80',
      L,
    );
    await rejects(
      api.decryptData({ key: K.dekT2, iv: iv8, ciphertext: new Uint8Array(32016) }),
      local,
      '80',
      L,
    );
  });

  both('an IV that is not one block of the key: 15', async (api, local) => {
    const R = 'HSM_REQUEST_INVALID';
    await rejects(api.encryptData({ key: K.dekA128, data: PAN, iv: new Uint8Array(8) }), local, '15', R);
    await rejects(api.encryptData({ key: K.dekT2, data: PAN, iv: new Uint8Array(16) }), local, '15', R);
    await rejects(
      api.decryptData({ key: K.dekT2, iv: new Uint8Array(16), ciphertext: new Uint8Array(16) }),
      local,
      '15',
      R,
    );
  });

  both(
    'ciphertext under one key does not decrypt under another: 77 (padding), never the data',
    async (api, local) => {
      const iv = fromHex(V.iv);
      const e = await api.encryptData({ key: K.dekA128, data: PAN, iv });
      const err = await rejects(
        api.decryptData({ key: K.dekOther, iv, ciphertext: e.ciphertext }),
        local,
        '77',
        'HSM_DATA_PADDING',
      );
      assert.ok(!err.message.includes(toHex(PAN)) && !err.message.includes('4012345678909'));
      // A TDES key of another value, a changed IV, a changed last block.
      const t = await api.encryptData({ key: K.dekT2, data: PAN, iv: fromHex('0102030405060708') });
      await rejects(
        api.decryptData({ key: K.dekT3, iv: fromHex('0102030405060708'), ciphertext: t.ciphertext }),
        local,
        '77',
        'HSM_DATA_PADDING',
      );
      const flipped = e.ciphertext.slice();
      flipped[flipped.length - 1]! ^= 0x01;
      await rejects(
        api.decryptData({ key: K.dekA128, iv, ciphertext: flipped }),
        local,
        '77',
        'HSM_DATA_PADDING',
      );
    },
  );

  test('the padding check is not integrity: about 1 in 256 wrong-key decryptions pass it, with garbage', () => {
    // 400 random IVs: a wrong key is refused almost always, and never yields the data.
    let passed = 0;
    for (let i = 0; i < 400; i++) {
      const e = hsm.encryptData({ key: K.dekA128, data: PAN });
      try {
        const d = hsm.decryptData({ key: K.dekOther, iv: e.iv, ciphertext: e.ciphertext });
        assert.notDeepEqual(d, PAN);
        passed++;
      } catch (x) {
        assert.ok(x instanceof HsmError && x.code === 'HSM_DATA_PADDING');
      }
    }
    assert.ok(passed <= 12, `${passed} of 400 wrong-key decryptions passed the padding check`);
    // Without padding there is no check at all: a wrong key gives garbage of the same length.
    const iv = fromHex(V.iv);
    const data = fromHex(V.plaintext[0]!);
    const e = hsm.encryptData({ key: K.dekA128, data, iv, padding: 'none' });
    const g = hsm.decryptData({ key: K.dekOther, iv, ciphertext: e.ciphertext, padding: 'none' });
    assert.equal(g.length, 16);
    assert.notDeepEqual(g, data);
  });

  test('in process: the messages name the rule, never the data', () => {
    const cases: [() => unknown, string][] = [
      [
        () => hsm.encryptData({ key: K.dekA128, data: new Uint8Array(0) }),
        'data: must be 1 to 32000 bytes, got 0',
      ],
      [
        () => hsm.encryptData({ key: K.dekT2, data: PAN, padding: 'none' }),
        'data: without padding must be whole 8-byte blocks, got 13 bytes',
      ],
      [
        () => hsm.decryptData({ key: K.dekT2, iv: new Uint8Array(8), ciphertext: new Uint8Array(32016) }),
        'ciphertext: must be whole 8-byte blocks, 8 to 32008 bytes, got 32016',
      ],
      [
        () => hsm.encryptData({ key: K.dekA128, data: PAN, iv: new Uint8Array(8) }),
        'iv: must be one AES block (16 bytes), got 8',
      ],
      [
        () => hsm.encryptData({ key: K.dekA128, data: PAN, padding: 'pkcs7' as DataPadding }),
        'padding: must be iso9797-1-pad2 or none',
      ],
      [
        () => hsm.encryptData({ key: K.tak, data: PAN }),
        'key: key usage M3 (MAC, ISO 9797-1 algorithm 3 (retail MAC)) is not accepted here (expected D0)',
      ],
    ];
    for (const [fn, message] of cases) {
      assert.throws(fn, (e: unknown) => e instanceof HsmError && e.message === message);
    }
    assert.throws(() => hsm.encryptData({ key: K.dekA128, data: 'x' as unknown as Uint8Array }), TypeError);
  });
});

describe('M0/M2 on the host port', () => {
  const raw = rawCommand;

  test('M0 and M2 as documented: binary data, IV in hex, lengths in hex', async () => {
    const data = fromHex(V.plaintext.join(''));
    const m1 = await raw('M0', `010${K.dekA128}16${V.iv}0040${Buffer.from(data).toString('latin1')}`);
    assert.equal(m1.code, 'M100');
    assert.equal(m1.body.subarray(0, 2 + 32 + 4).toString('latin1'), `16${V.iv}0040`);
    assert.equal(toHex(m1.body.subarray(38)), V.ciphertext.join(''));
    const ct = m1.body.subarray(38).toString('latin1');
    const m3 = await raw('M2', `010${K.dekA128}16${V.iv}0040${ct}`);
    assert.equal(m3.code, 'M300');
    assert.equal(m3.body.subarray(0, 4).toString('latin1'), '0040');
    assert.equal(toHex(m3.body.subarray(4)), V.plaintext.join(''));
    // IV length 00: the HSM's own IV comes back; padding 2 adds a block to 13 bytes of PAN.
    const r = await raw('M0', `012${K.dekT2}00000D4012345678909`);
    assert.equal(r.code, 'M100');
    assert.match(r.body.subarray(0, 22).toString('latin1'), /^08[0-9A-F]{16}0010$/);
    assert.equal(r.body.length, 22 + 16);
  });

  const table: [string, string, string, string][] = [
    ['M0 empty', 'M0', '', 'M115'],
    ['M0 mode 00 (ECB is not offered)', 'M0', `000${K.dekA128}000001A`, 'M115'],
    ['M0 padding 1', 'M0', `011${K.dekA128}000001A`, 'M115'],
    ['M0 IV length 12', 'M0', `012${K.dekA128}12${'0'.repeat(24)}0001A`, 'M115'],
    ['M0 IV not hex', 'M0', `012${K.dekA128}08${'Z'.repeat(16)}0001A`, 'M115'],
    ['M0 data shorter than stated', 'M0', `012${K.dekA128}000010AB`, 'M115'],
    ['M0 trailing bytes', 'M0', `012${K.dekA128}000001AB`, 'M115'],
    ['M0 data length not hex', 'M0', `012${K.dekA128}00000G${'A'.repeat(16)}`, 'M115'],
    ['M0 IV of the wrong block for the key', 'M0', `012${K.dekA128}08${'0'.repeat(16)}0001A`, 'M115'],
    ['M0 with a MAC key', 'M0', `012${K.tak}000001A`, 'M1A6'],
    ['M0 empty data', 'M0', `012${K.dekA128}000000`, 'M180'],
    ['M2 IV length 00', 'M2', `012${K.dekA128}000010${'A'.repeat(16)}`, 'M315'],
    ['M2 with a PIN key', 'M2', `012${K.tpk}08${'0'.repeat(16)}0008${'A'.repeat(8)}`, 'M3A6'],
    ['M2 not whole blocks', 'M2', `012${K.dekA128}16${'0'.repeat(32)}000F${'A'.repeat(15)}`, 'M380'],
    ['M2 bad padding', 'M2', `012${K.dekA128}16${'0'.repeat(32)}0010${'A'.repeat(16)}`, 'M377'],
  ];
  for (const [name, cmd, body, want] of table) {
    test(name, async () => {
      const r = await raw(cmd, body);
      assert.equal(r.code, want);
      assert.equal(r.body.length, 0);
    });
  }
});

describe('data keys: A0, the key cache, the audit log', () => {
  both(
    'A0 generates a DEK (usage D0, mode B, not exportable) and returns its check value',
    async (api, local) => {
      for (const [algorithm, keyLengthBytes] of [
        ['T', 16],
        ['T', 24],
        ['A', 16],
        ['A', 32],
      ] as const) {
        const r = await api.generateKey({ keyType: 'DEK', algorithm, keyLengthBytes });
        const { key, attrs: a } = lmk.unwrapKey(r.keyBlock, null);
        assert.deepEqual(a, { usage: 'D0', algorithm, modeOfUse: 'B', keyVersion: '00', exportability: 'N' });
        assert.equal(key.length, keyLengthBytes);
        assert.equal(r.checkValue, toHex(algorithm === 'T' ? kcvTdes(key, 3) : kcvAes(key, 3)));
        assert.equal(await api.keyCheckValue(r.keyBlock), r.checkValue);
        const e = await api.encryptData({ key: r.keyBlock, data: PAN });
        assert.deepEqual(await api.decryptData({ key: r.keyBlock, iv: e.iv, ciphertext: e.ciphertext }), PAN);
      }
      // Not exportable by default; a DEK asked for with exportability E may leave under a KEK.
      await rejects(
        api.exportKeyUnderKek({ kek: K.zmkAes, keyBlock: K.dekA128 }),
        local,
        'AA',
        'HSM_KEY_NOT_EXPORTABLE',
      );
      const x = await api.generateKey({
        keyType: 'DEK',
        algorithm: 'A',
        keyLengthBytes: 16,
        usage: 'D0',
        modeOfUse: 'E',
        keyVersion: '01',
        exportability: 'E',
        exportUnder: K.zmkAes,
      });
      assert.equal(lmk.unwrapKey(x.keyBlock, null).attrs.modeOfUse, 'E');
      assert.match(x.exported ?? '', /^D\d{4}D0AE01E/);
      // TDK and ZEK (usage D0) are data keys as well.
      for (const keyType of ['TDK', 'ZEK'] as const) {
        const k = await api.generateKey({ keyType, algorithm: 'A', keyLengthBytes: 16 });
        const e = await api.encryptData({ key: k.keyBlock, data: PAN });
        assert.deepEqual(await api.decryptData({ key: k.keyBlock, iv: e.iv, ciphertext: e.ciphertext }), PAN);
      }
    },
  );

  test('M0/M2 use the key cache: one unwrap, then hits; results equal with the cache off', () => {
    const local = new Hsm({ lmk, keyCacheEntries: 8 });
    const off = new Hsm({ lmk, keyCacheEntries: 0 });
    const iv = fromHex(V.iv);
    for (let i = 0; i < 3; i++) {
      const a = local.encryptData({ key: K.dekA256, data: PAN, iv });
      const b = off.encryptData({ key: K.dekA256, data: PAN, iv });
      assert.deepEqual(a, b);
      assert.deepEqual(local.decryptData({ key: K.dekA256, iv, ciphertext: a.ciphertext }), PAN);
    }
    assert.deepEqual(local.keyCacheStats, { entries: 1, hits: 5, misses: 1, maxEntries: 8 });
    assert.equal(off.keyCacheStats.entries, 0);
    // A cached data key is still checked against each use: it cannot make a MAC.
    assert.throws(
      () => local.generateMac({ key: K.dekA256, algorithm: 'cmac', data: PAN }),
      (e: unknown) => e instanceof HsmError && e.code === 'HSM_KEY_USAGE',
    );
  });

  test("the cached key's kept CBC objects equal node:crypto call after call (each from its own IV)", () => {
    const rnd = (n: number) => new Uint8Array(randomBytes(n));
    for (const [algorithm, len] of [
      ['T', 16],
      ['T', 24],
      ['A', 16],
      ['A', 24],
      ['A', 32],
    ] as const) {
      const key = algorithm === 'T' ? adjustOddParity(rnd(len)) : rnd(len);
      const e = new CachedKey(key.slice(), attrs('D0', algorithm, 'B'));
      const b = e.blockBytes;
      for (let i = 0; i < 20; i++) {
        const iv = rnd(b);
        const data = rnd(b * (1 + (i % 5)));
        const want = nodeCbc(key, algorithm === 'A', iv, data);
        assert.deepEqual(e.encryptCbc(data, iv), want);
        assert.deepEqual(e.decryptCbc(want, iv), data);
      }
      e.destroy();
      assert.ok(e.key.every((x) => x === 0));
    }
  });

  test('M0/M2 write no audit line (per-transaction); A0 of a DEK writes one with its check value', async () => {
    const before = readFileSync(auditPath, 'utf8').trim().split('\n').length;
    const api = new LocalHsm(hsm, { who: 'test' });
    const e = await api.encryptData({ key: K.dekA128, data: PAN });
    await api.decryptData({ key: K.dekA128, iv: e.iv, ciphertext: e.ciphertext });
    await assert.rejects(api.encryptData({ key: K.tak, data: PAN }));
    assert.equal(readFileSync(auditPath, 'utf8').trim().split('\n').length, before);
    const k = await api.generateKey({ keyType: 'DEK', algorithm: 'A', keyLengthBytes: 32 });
    const lines = readFileSync(auditPath, 'utf8').trim().split('\n').slice(before);
    assert.equal(lines.length, 1);
    const l = JSON.parse(lines[0]!);
    assert.deepEqual([l.command, l.keyType, l.checkValue, l.result], ['A0', 'DEK', k.checkValue, '00']);
    assert.ok(!lines[0]!.includes(k.keyBlock.slice(20, 60)));
  });
});
