import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { fromHex, toHex } from '../src/bytes.js';
import { decrypt, encrypt } from '../src/cipher.js';
import {
  DUKPT_AES_LAST_COUNTER,
  DukptAesDevice,
  type DukptAesKeyType,
  type DukptAesUsage,
  assertCounterUsableAes,
  counterOfKsnAes,
  deriveInitialKeyAes,
  deriveTransactionKeyAes,
  deriveTransactionKeyFromBdkAes,
  deriveUpdateKeyAes,
  deriveWorkingKeyAes,
  deriveWorkingKeyFromTransactionKeyAes,
  dukptAesStateLength,
  withCounterAes,
} from '../src/dukpt-aes.js';
import { CryptoError } from '../src/errors.js';
import { label, vectors } from './vectors.js';

const BDK128 = fromHex('FEDCBA9876543210F1F1F1F1F1F1F1F1');
const BDK256 = fromHex('FEDCBA9876543210F1F1F1F1F1F1F1F1FEDCBA9876543210F1F1F1F1F1F1F1F1');
const IKSN = fromHex('123456789012345600000000');

/** The vectors' usage names (openemv/dukpt) to this library's. */
const USAGE: Record<string, DukptAesUsage> = {
  pin_key: 'pin',
  mac_gen_key: 'mac-generation',
  data_enc_key: 'data-encrypt',
  kek: 'kek',
};

function expectError(fn: () => unknown, code: string, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CryptoError, `expected CryptoError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    return true;
  });
}

function popcount(x: number): number {
  let n = 0;
  for (let v = x >>> 0; v; v = (v & (v - 1)) >>> 0) n++;
  return n;
}

/**
 * ISO 9564-1:2017 format 4 PAN field (inline: pinblock.ts is written by another engineer): the PAN
 * length minus 12 (0 for 12 digits or fewer, then left-padded with zeros to 12), the PAN, zeros.
 */
function panFieldIso4(pan: string): Uint8Array {
  const m = Math.max(pan.length - 12, 0);
  return fromHex(`${m}${pan.padStart(12, '0')}`.padEnd(32, '0'));
}

/** ISO 9564-1:2017 9.4.2.3: encrypt the PIN field, XOR the PAN field, encrypt again (AES ECB). */
function encryptPinBlockIso4(key: Uint8Array, pinField: Uint8Array, pan: string): Uint8Array {
  const a = encrypt('aes', 'ecb', key, pinField);
  const b = a.map((x, i) => x ^ panFieldIso4(pan)[i]!);
  return encrypt('aes', 'ecb', key, b);
}

function decryptPinBlockIso4(key: Uint8Array, block: Uint8Array, pan: string): Uint8Array {
  const b = decrypt('aes', 'ecb', key, block);
  const a = b.map((x, i) => x ^ panFieldIso4(pan)[i]!);
  return decrypt('aes', 'ecb', key, a);
}

/**
 * A device state at counter `c`, built from host derivation: the register of c's rightmost one bit
 * holds the key of c; a register s to its left whose bit is clear in c holds the key of (c's bits
 * left of s) | s; the others are invalid. Layout: version, key length, KSN, flags, 32 x (valid, key).
 */
function stateAtCounter(ik: Uint8Array, iksn: Uint8Array, c: number): Uint8Array {
  const n = ik.length;
  const state = new Uint8Array(dukptAesStateLength(n));
  state[0] = 1;
  state[1] = n;
  state.set(withCounterAes(iksn, c), 2);
  const lsb = (c & -c) >>> 0;
  for (let i = 0; i < 32; i++) {
    const s = 2 ** (31 - i);
    const o = 15 + i * (1 + n);
    let v = -1;
    if (s === lsb) v = c;
    else if (s > lsb && !(c & s)) v = (c - (c % (2 * s)) + s) >>> 0;
    if (v < 0) continue;
    state[o] = 1;
    state.set(deriveTransactionKeyAes(ik, withCounterAes(iksn, v)), o + 1);
  }
  return state;
}

describe('AES DUKPT host side: ANSI X9.24-3-2017 supplement vectors', () => {
  for (const v of vectors('dukpt_aes')) {
    const e = v.expected as Record<string, string>;
    it(`dukpt_aes ${label(v)}`, () => {
      const ksn = fromHex(v.ksn as string, 'ksn');
      let checked = 0;
      if (e.ik !== undefined) {
        assert.equal(toHex(deriveInitialKeyAes(fromHex(v.bdk as string), ksn)), e.ik);
        checked++;
      }
      if (e.txn_key !== undefined) {
        const bdk = fromHex(v.bdk as string);
        assert.equal(toHex(deriveTransactionKeyFromBdkAes(bdk, ksn)), e.txn_key);
        assert.equal(toHex(deriveTransactionKeyAes(deriveInitialKeyAes(bdk, ksn), ksn)), e.txn_key);
        checked++;
      }
      if (e.encrypted_pinblock !== undefined) {
        const pinKey = deriveWorkingKeyAes(
          fromHex(v.bdk as string),
          ksn,
          'pin',
          v.key_type as DukptAesKeyType,
        );
        const pinField = fromHex(v.pin_field as string);
        const block = encryptPinBlockIso4(pinKey, pinField, v.pan as string);
        assert.equal(toHex(block), e.encrypted_pinblock);
        assert.equal(toHex(decryptPinBlockIso4(pinKey, block, v.pan as string)), toHex(pinField));
        checked++;
      }
      if (e.update_key !== undefined) {
        const got = deriveUpdateKeyAes(fromHex(v.ik as string), ksn, v.key_type as DukptAesKeyType);
        assert.equal(toHex(got), e.update_key);
        checked++;
      }
      assert.equal(checked, Object.keys(e).length);
    });
  }

  for (const v of vectors('dukpt_aes_working_key')) {
    it(`dukpt_aes_working_key ${v.usage} ${v.key_type} ${label(v)}`, () => {
      const usage = USAGE[v.usage as string];
      assert.ok(usage, `usage ${v.usage}`);
      const bdk = fromHex(v.bdk as string);
      const ksn = fromHex(v.ksn as string);
      const keyType = v.key_type as DukptAesKeyType;
      const want = (v.expected as Record<string, string>).working_key;
      assert.equal(toHex(deriveWorkingKeyAes(bdk, ksn, usage, keyType)), want);
      const txn = deriveTransactionKeyFromBdkAes(bdk, ksn);
      assert.equal(toHex(deriveWorkingKeyFromTransactionKeyAes(txn, ksn, usage, keyType)), want);
    });
  }

  it('the TDES update keys equal the KEK working keys of counter FFFFFFFF', () => {
    const ik = deriveInitialKeyAes(BDK128, IKSN);
    for (const keyType of ['TDES2', 'TDES3', 'AES128'] as const) {
      assert.equal(
        toHex(deriveUpdateKeyAes(ik, IKSN, keyType)),
        toHex(deriveWorkingKeyAes(BDK128, withCounterAes(IKSN, 0xffffffff), 'kek', keyType)),
      );
    }
  });

  it('every usage and key type has its own key of the right length', () => {
    const ksn = withCounterAes(IKSN, 5);
    const seen = new Set<string>();
    const usages: DukptAesUsage[] = [
      'kek',
      'pin',
      'mac-generation',
      'mac-verification',
      'mac-both',
      'data-encrypt',
      'data-decrypt',
      'data-both',
    ];
    const lengths: Record<DukptAesKeyType, number> = {
      TDES2: 16,
      TDES3: 24,
      AES128: 16,
      AES192: 24,
      AES256: 32,
    };
    for (const usage of usages) {
      for (const [keyType, n] of Object.entries(lengths) as [DukptAesKeyType, number][]) {
        const k = deriveWorkingKeyAes(BDK256, ksn, usage, keyType);
        assert.equal(k.length, n);
        seen.add(toHex(k));
      }
    }
    assert.equal(seen.size, usages.length * 5);
  });

  it('property: transaction key via the IK equals via the BDK (AES-128/192/256), for any counter', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(16, 24, 32).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        (bdk, ksn) => {
          const ik = deriveInitialKeyAes(bdk, ksn);
          assert.equal(ik.length, bdk.length);
          assert.equal(
            toHex(deriveTransactionKeyAes(ik, ksn)),
            toHex(deriveTransactionKeyFromBdkAes(bdk, ksn)),
          );
        },
      ),
      { numRuns: 25 },
    );
  });

  it('property: format 4 PIN block round trip under the DUKPT PIN key', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.stringMatching(/^[0-9]{12,19}$/),
        (pinField, pan) => {
          const key = deriveWorkingKeyAes(BDK128, withCounterAes(IKSN, 3), 'pin', 'AES128');
          const block = encryptPinBlockIso4(key, pinField, pan);
          assert.equal(toHex(decryptPinBlockIso4(key, block, pan)), toHex(pinField));
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('AES DUKPT device side', () => {
  const ik128 = deriveInitialKeyAes(BDK128, IKSN);
  const ik256 = deriveInitialKeyAes(BDK256, IKSN);

  it('the first transactions carry the supplement vector keys (AES-128 and AES-256 BDK)', () => {
    for (const [bdk, ik] of [
      [BDK128, ik128],
      [BDK256, ik256],
    ] as const) {
      const want = new Map<string, string>();
      for (const v of vectors('dukpt_aes')) {
        const e = v.expected as Record<string, string>;
        if (e.txn_key && v.bdk === toHex(bdk)) want.set(v.ksn as string, e.txn_key);
      }
      const device = DukptAesDevice.loadInitialKey(ik, IKSN);
      let matched = 0;
      for (let i = 0; i < 10; i++) {
        const t = device.nextTransaction();
        const w = want.get(toHex(t.ksn));
        if (w) {
          assert.equal(toHex(t.transactionKey()), w);
          matched++;
        }
      }
      assert.ok(matched >= 8, `matched ${matched}`);
    }
  });

  it('for 300 transactions the device key equals the host key and counters are consecutive', () => {
    const device = DukptAesDevice.loadInitialKey(ik128, withCounterAes(IKSN, 77)); // counter is cleared
    for (let i = 1; i <= 300; i++) {
      const t = device.nextTransaction();
      assert.equal(t.counter, i);
      assert.equal(counterOfKsnAes(t.ksn), i);
      assert.equal(toHex(t.transactionKey()), toHex(deriveTransactionKeyAes(ik128, t.ksn)));
      assert.equal(
        toHex(t.workingKey('pin', 'AES128')),
        toHex(deriveWorkingKeyAes(BDK128, t.ksn, 'pin', 'AES128')),
      );
    }
  });

  it('skips from 0001FFFE (16 one bits) to 00020000, as the supplement vectors do', () => {
    const device = DukptAesDevice.importState(stateAtCounter(ik256, IKSN, 0x0001fffe));
    const want = new Map<string, string>();
    for (const v of vectors('dukpt_aes')) {
      const e = v.expected as Record<string, string>;
      if (e.txn_key && v.bdk === toHex(BDK256)) want.set(v.ksn as string, e.txn_key);
    }
    const counters: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = device.nextTransaction();
      counters.push(t.counter);
      assert.equal(toHex(t.transactionKey()), want.get(toHex(t.ksn)));
    }
    assert.deepEqual(counters, [0x0001fffe, 0x00020000, 0x00020001]);
  });

  it('property: a device restored at any usable counter produces the host keys; skipped counters have > 16 one bits', () => {
    const usable = fc.integer({ min: 1, max: DUKPT_AES_LAST_COUNTER }).filter((c) => popcount(c) <= 16);
    fc.assert(
      fc.property(usable, (c) => {
        const device = DukptAesDevice.importState(stateAtCounter(ik128, IKSN, c));
        let prev = c - 1;
        for (let i = 0; i < 3 && !device.exhausted; i++) {
          const t = device.nextTransaction();
          assert.ok(popcount(t.counter) <= 16);
          for (let s = prev + 1; s < t.counter; s++) assert.ok(popcount(s) > 16);
          prev = t.counter;
          assert.equal(toHex(t.transactionKey()), toHex(deriveTransactionKeyAes(ik128, t.ksn)));
        }
      }),
      { numRuns: 15 },
    );
  });

  it('end of life: from FFFE0000 there are 18 transactions, the last FFFF0000', () => {
    const device = DukptAesDevice.importState(stateAtCounter(ik128, IKSN, 0xfffe0000));
    const counters: number[] = [];
    while (!device.exhausted) {
      const t = device.nextTransaction();
      counters.push(t.counter);
      assert.equal(toHex(t.transactionKey()), toHex(deriveTransactionKeyAes(ik128, t.ksn)));
    }
    assert.equal(counters.length, 18);
    assert.equal(counters.at(-1), DUKPT_AES_LAST_COUNTER);
    const msg = 'device: transaction counter is exhausted (X9.24-3 6.6): load a new initial key';
    expectError(() => device.nextTransaction(), 'CRYPTO_DUKPT_EXHAUSTED', msg);
    expectError(
      () => DukptAesDevice.importState(device.exportState()).nextTransaction(),
      'CRYPTO_DUKPT_EXHAUSTED',
      msg,
    );
  });

  it('export then import continues with the same keys', () => {
    const a = DukptAesDevice.loadInitialKey(ik256, IKSN);
    for (let i = 0; i < 21; i++) a.nextTransaction();
    const b = DukptAesDevice.importState(a.exportState());
    for (let i = 0; i < 10; i++) {
      const ta = a.nextTransaction();
      const tb = b.nextTransaction();
      assert.equal(toHex(ta.ksn), toHex(tb.ksn));
      assert.equal(toHex(ta.transactionKey()), toHex(tb.transactionKey()));
    }
  });

  it('the device holds no IK and shows no key in toString, JSON or inspect', () => {
    const device = DukptAesDevice.loadInitialKey(ik128, IKSN);
    const t = device.nextTransaction();
    const key = toHex(t.transactionKey());
    for (const s of [
      String(device),
      JSON.stringify(device),
      inspect(device),
      String(t),
      JSON.stringify(t),
      inspect(t),
    ]) {
      assert.ok(!s.includes(key) && !s.includes(toHex(ik128)), s);
    }
    assert.ok(!toHex(device.exportState()).includes(toHex(ik128)));
  });
});

describe('AES DUKPT errors', () => {
  const ksn = withCounterAes(IKSN, 1);

  it('KSN length', () => {
    expectError(
      () => deriveInitialKeyAes(BDK128, new Uint8Array(10)),
      'CRYPTO_KSN_INVALID',
      'ksn: must be 12 bytes (24 hex digits) for AES DUKPT, got 10',
    );
    expectError(
      () => deriveWorkingKeyAes(BDK128, new Uint8Array(11), 'pin', 'AES128'),
      'CRYPTO_KSN_INVALID',
      'ksn: must be 12 bytes (24 hex digits) for AES DUKPT, got 11',
    );
    expectError(
      () => DukptAesDevice.loadInitialKey(ik(), new Uint8Array(10)),
      'CRYPTO_KSN_INVALID',
      'ksn: must be 12 bytes (24 hex digits) for AES DUKPT, got 10',
    );
  });

  function ik(): Uint8Array {
    return deriveInitialKeyAes(BDK128, IKSN);
  }

  it('key lengths', () => {
    expectError(
      () => deriveInitialKeyAes(new Uint8Array(20), ksn),
      'CRYPTO_KEY_LENGTH',
      'bdk: BDK must be 16, 24 or 32 bytes (AES-128, AES-192, AES-256) for AES DUKPT, got 20',
    );
    expectError(
      () => deriveWorkingKeyAes(new Uint8Array(8), ksn, 'pin', 'TDES2'),
      'CRYPTO_KEY_LENGTH',
      'bdk: BDK must be 16, 24 or 32 bytes (AES-128, AES-192, AES-256) for AES DUKPT, got 8',
    );
    expectError(
      () => deriveTransactionKeyAes(new Uint8Array(15), ksn),
      'CRYPTO_KEY_LENGTH',
      'ik: initial key must be 16, 24 or 32 bytes (AES-128, AES-192, AES-256) for AES DUKPT, got 15',
    );
    expectError(
      () => DukptAesDevice.loadInitialKey(new Uint8Array(0), ksn),
      'CRYPTO_KEY_LENGTH',
      'ik: initial key must be 16, 24 or 32 bytes (AES-128, AES-192, AES-256) for AES DUKPT, got 0',
    );
  });

  it('unknown usage and key type', () => {
    expectError(
      () => deriveWorkingKeyAes(BDK128, ksn, 'pin_key' as DukptAesUsage, 'AES128'),
      'CRYPTO_ALGORITHM',
      'usage: unknown AES DUKPT key usage (expected kek, pin, mac-generation, mac-verification, mac-both, data-encrypt, data-decrypt, data-both)',
    );
    expectError(
      () => deriveWorkingKeyAes(BDK128, ksn, 'pin', 'AES512' as DukptAesKeyType),
      'CRYPTO_ALGORITHM',
      'keyType: unknown AES DUKPT key type (expected TDES2, TDES3, AES128, AES192, AES256)',
    );
    expectError(
      () => deriveUpdateKeyAes(ik(), ksn, 'HMAC128' as DukptAesKeyType),
      'CRYPTO_ALGORITHM',
      'keyType: unknown AES DUKPT key type (expected TDES2, TDES3, AES128, AES192, AES256)',
    );
  });

  it('a working key stronger than the BDK (X9.24-3 6.1.3)', () => {
    expectError(
      () => deriveWorkingKeyAes(BDK128, ksn, 'pin', 'AES256'),
      'CRYPTO_PARAM',
      'keyType: working key type AES-256 is stronger than the AES-128 derivation key (X9.24-3 6.1.3)',
    );
    expectError(
      () => deriveWorkingKeyAes(fromHex('00'.repeat(24)), ksn, 'data-both', 'AES256'),
      'CRYPTO_PARAM',
      'keyType: working key type AES-256 is stronger than the AES-192 derivation key (X9.24-3 6.1.3)',
    );
    expectError(
      () => deriveUpdateKeyAes(ik(), ksn, 'AES192'),
      'CRYPTO_PARAM',
      'keyType: working key type AES-192 is stronger than the AES-128 derivation key (X9.24-3 6.1.3)',
    );
    // weaker types are allowed: 3-key TDES (112-bit strength) from an AES-128 BDK
    assert.equal(deriveWorkingKeyAes(BDK128, ksn, 'kek', 'TDES3').length, 24);
  });

  it('counters a device never sends', () => {
    assertCounterUsableAes(withCounterAes(IKSN, DUKPT_AES_LAST_COUNTER));
    expectError(() => assertCounterUsableAes(IKSN), 'CRYPTO_KSN_INVALID', 'ksn: counter must not be 0');
    expectError(
      () => assertCounterUsableAes(withCounterAes(IKSN, 0xffffffff)),
      'CRYPTO_KSN_INVALID',
      'ksn: counter has 32 one bits, at most 16 are allowed (X9.24-3 6.1)',
    );
  });

  it('device state', () => {
    const good = stateAtCounter(ik(), IKSN, 1);
    expectError(
      () => DukptAesDevice.importState(good.subarray(0, 40)),
      'CRYPTO_DATA_LENGTH',
      'state: must be 559, 815 or 1071 bytes with a matching key length, got 40',
    );
    const v2 = good.slice();
    v2[0] = 9;
    expectError(() => DukptAesDevice.importState(v2), 'CRYPTO_PARAM', 'state.version: must be 1');
    const flags = good.slice();
    flags[14] = 2;
    expectError(() => DukptAesDevice.importState(flags), 'CRYPTO_PARAM', 'state.flags: must be 0 or 1');
    const zero = good.slice();
    zero.set(IKSN, 2);
    expectError(
      () => DukptAesDevice.importState(zero),
      'CRYPTO_KSN_INVALID',
      'state.ksn: counter must not be 0',
    );
    const many = good.slice();
    many.set(withCounterAes(IKSN, 0x0001ffff), 2);
    expectError(
      () => DukptAesDevice.importState(many),
      'CRYPTO_KSN_INVALID',
      'state.ksn: counter has 17 one bits, at most 16 are allowed (X9.24-3 6.1)',
    );
  });
});
