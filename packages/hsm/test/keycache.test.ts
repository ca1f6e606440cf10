import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adjustOddParity, encryptPinBlock, fromHex } from '@openposp/crypto';
import { HsmError } from '../src/errors.js';
import { Hsm } from '../src/hsm.js';
import { CachedKey, KeyCache } from '../src/keycache.js';
import type { KeyAttributes } from '../src/keystore.js';
import { createTestLmk } from '../src/lmk.js';

const a: KeyAttributes = {
  usage: 'P0',
  algorithm: 'T',
  modeOfUse: 'B',
  keyVersion: '00',
  exportability: 'E',
};

test('the LRU cache is bounded: the least recently used entry is evicted and its key wiped', () => {
  const c = new KeyCache(2);
  const e = ['a', 'b', 'c'].map(() => new CachedKey(fromHex('0123456789ABCDEF0123456789ABCDEF'), a));
  c.set('a', e[0]!);
  c.set('b', e[1]!);
  assert.equal(c.get('a'), e[0]); // a is now the most recently used
  c.set('c', e[2]!);
  assert.equal(c.size, 2);
  assert.equal(c.get('b'), undefined);
  assert.ok(e[1]!.key.every((x) => x === 0));
  assert.ok(e[0]!.key.some((x) => x !== 0));
  c.clear();
  assert.ok(e[0]!.key.every((x) => x === 0) && e[2]!.key.every((x) => x === 0));
  assert.throws(() => new KeyCache(-1), RangeError);
});

test('a cached key is checked against every operation; a tampered block never reaches the cache', () => {
  const lmk = createTestLmk({ allowTestLmk: true, warn: () => {} });
  const hsm = new Hsm({ lmk, keyCacheEntries: 4 });
  const key = adjustOddParity(fromHex('0123456789ABCDEFFEDCBA9876543210'));
  const tpk = lmk.wrapKey(key, a);
  const pinBlock = encryptPinBlock(0, key, '1234', '4012345678909');
  const req = { tpk, zpk: tpk, pinBlock, format: 0 as const, formatOut: 0 as const, pan: '4012345678909' };
  hsm.translatePinTpkToZpk(req);
  hsm.translatePinTpkToZpk(req);
  assert.deepEqual(hsm.keyCacheStats, { entries: 1, hits: 3, misses: 1, maxEntries: 4 });
  assert.throws(
    () => hsm.generateMac({ key: tpk, algorithm: 'iso9797-1-3', data: new Uint8Array(8) }),
    (e: unknown) => e instanceof HsmError && e.code === 'HSM_KEY_USAGE',
  );
  const tampered = tpk.slice(0, -1) + (tpk.endsWith('0') ? '1' : '0');
  assert.throws(
    () => hsm.translatePinTpkToZpk({ ...req, tpk: tampered }),
    (e: unknown) => e instanceof HsmError && e.code === 'HSM_KEYBLOCK_MAC',
  );
  assert.equal(hsm.keyCacheStats.entries, 1);
  const off = new Hsm({ lmk, keyCacheEntries: 0 });
  off.translatePinTpkToZpk(req);
  assert.equal(off.keyCacheStats.entries, 0);
});

test('the cached-cipher MACs equal @openposp/crypto on random keys and data (X9.19 paddings 1-3, CUP ECB; lengths 4-8)', async () => {
  const { randomBytes } = await import('node:crypto');
  const { macCupEcb, macIso9797Alg3 } = await import('@openposp/crypto');
  const tak: KeyAttributes = { ...a, usage: 'M1', modeOfUse: 'C' };
  for (let n = 0; n < 300; n++) {
    const keyLen = n % 3 === 0 ? 24 : 16;
    const key = new Uint8Array(randomBytes(keyLen));
    const data = new Uint8Array(randomBytes(n % 70));
    const length = 4 + (n % 5);
    const padding = ((n % 3) + 1) as 1 | 2 | 3;
    const k = new CachedKey(new Uint8Array(key), tak);
    // Twice: the kept cipher objects must be as fresh on the second call as on the first.
    for (let rep = 0; rep < 2; rep++) {
      assert.deepEqual(
        k.macTdes('iso9797-1-3', data, { padding, length }),
        macIso9797Alg3(key, data, { padding, length }),
        `X9.19 key ${keyLen} bytes, ${data.length} bytes, padding ${padding}`,
      );
      if (keyLen === 16)
        assert.deepEqual(k.macTdes('cup-ecb', data, { length }), macCupEcb(key, data, { length }));
    }
    assert.equal(k.macTdes('cup-ecb', data, { padding: 1 }), undefined, 'left to crypto, which refuses it');
    assert.equal(k.macTdes('cmac', data, {}), undefined);
  }
  const aes = new CachedKey(new Uint8Array(randomBytes(16)), { ...tak, algorithm: 'A' });
  assert.equal(aes.macTdes('iso9797-1-3', new Uint8Array(8), {}), undefined);
});

test('one kept X9.19 chain serves many messages in a row, each from a zero IV', async () => {
  const { randomBytes } = await import('node:crypto');
  const { macIso9797Alg3 } = await import('@openposp/crypto');
  const key = new Uint8Array(randomBytes(16));
  const k = new CachedKey(new Uint8Array(key), { ...a, usage: 'M1', modeOfUse: 'C' });
  for (let n = 0; n < 200; n++) {
    const data = new Uint8Array(randomBytes((n * 7) % 300));
    assert.deepEqual(k.macTdes('iso9797-1-3', data, {}), macIso9797Alg3(key, data), `message ${n}`);
  }
});
