import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { concat, fromAscii, fromHex, toHex } from '../src/bytes.js';
import { decrypt, encrypt } from '../src/cipher.js';
import { cmac } from '../src/cmac.js';
import { CryptoError } from '../src/errors.js';
import {
  DUKPT_TDES_LAST_COUNTER,
  DUKPT_TDES_STATE_LENGTH,
  DukptTdesDevice,
  type DukptTdesUsage,
  assertCounterUsableTdes,
  counterOfKsnTdes,
  decryptPinBlockTdes,
  deriveIpekTdes,
  deriveTransactionKeyFromBdkTdes,
  deriveTransactionKeyTdes,
  deriveWorkingKeyFromTransactionKeyTdes,
  deriveWorkingKeyTdes,
  dukptDesEcbDecrypt,
  dukptDesEcbEncrypt,
  popcount32,
  withCounterTdes,
} from '../src/dukpt-tdes.js';
import { label, vectors } from './vectors.js';

const BDK = fromHex('0123456789ABCDEFFEDCBA9876543210');
const IKSN = fromHex('FFFF9876543210E00000');

function expectError(fn: () => unknown, code: string, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CryptoError, `expected CryptoError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    return true;
  });
}

/** ISO 9564-1 format 0 PIN block (inline: pinblock.ts is written by another engineer). */
function pinBlockIso0(pin: string, pan: string): Uint8Array {
  const pinField = fromHex(`0${pin.length.toString(16)}${pin}`.padEnd(16, 'F'));
  const panField = fromHex(`0000${pan.slice(-13, -1)}`);
  return pinField.map((b, i) => b ^ panField[i]!);
}

function zeroPad(data: Uint8Array, block: number): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.length / block) * block);
  out.set(data);
  return out;
}

/** ISO 9797-1 MAC algorithm 3 (ANSI X9.19 retail MAC), padding method 1, from cipher primitives. */
function retailMac(key: Uint8Array, data: Uint8Array): Uint8Array {
  const k1 = key.subarray(0, 8);
  const k2 = key.subarray(8, 16);
  const cbc = encrypt('des', 'cbc', k1, zeroPad(data, 8));
  const last = cbc.subarray(cbc.length - 8);
  return encrypt('des', 'ecb', k1, decrypt('des', 'ecb', k2, last));
}

/**
 * A device state at counter `c`, built from host derivation (an independent formulation of the
 * future key register contents): the register of c's rightmost one bit holds the key of c; a
 * register s to its left whose bit is clear in c holds the key of (c's bits left of s) | s; the
 * others are erased. Layout: version, KSN register, flags, 21 x (key, LRC = XOR of the key bytes).
 */
function stateAtCounter(ipek: Uint8Array, iksn: Uint8Array, c: number): Uint8Array {
  const state = new Uint8Array(DUKPT_TDES_STATE_LENGTH);
  state[0] = 1;
  state.set(withCounterTdes(iksn, c), 1);
  const lsb = c & -c;
  for (let i = 0; i < 21; i++) {
    const s = 1 << (20 - i);
    const o = 12 + i * 17;
    let v = -1;
    if (s === lsb) v = c;
    else if (s > lsb && !(c & s)) v = (c & ~(2 * s - 1)) | s;
    if (v < 0) {
      state[o + 16] = 0xff;
      continue;
    }
    const key = deriveTransactionKeyTdes(ipek, withCounterTdes(iksn, v));
    state.set(key, o);
    state[o + 16] = key.reduce((a, b) => a ^ b, 0);
  }
  return state;
}

describe('local DES core (FIPS 46-3) against node:crypto', () => {
  it('DES, 2-key and 3-key TDES ECB, both directions', () => {
    fc.assert(
      fc.property(
        fc
          .constantFrom(8, 16, 24)
          .chain((n) =>
            fc.tuple(fc.uint8Array({ minLength: n, maxLength: n }), fc.integer({ min: 1, max: 4 })),
          ),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        ([key, blocks], buf) => {
          const data = buf.subarray(0, blocks * 8);
          const alg = key.length === 8 ? 'des' : 'tdes';
          assert.equal(toHex(dukptDesEcbEncrypt(key, data)), toHex(encrypt(alg, 'ecb', key, data)));
          assert.equal(toHex(dukptDesEcbDecrypt(key, data)), toHex(decrypt(alg, 'ecb', key, data)));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('TDES DUKPT host side: ANSI X9.24-1:2009 Annex A vectors', () => {
  for (const v of vectors('dukpt_tdes')) {
    const e = v.expected as Record<string, string>;
    it(label(v), () => {
      const bdk = fromHex(v.bdk as string, 'bdk');
      const ksn = fromHex(v.ksn as string, 'ksn');
      if (e.ipek !== undefined) assert.equal(toHex(deriveIpekTdes(bdk, ksn)), e.ipek);
      const ipek = deriveIpekTdes(bdk, ksn);
      const text = fromAscii((v.text as string | undefined) ?? '');
      if (e.txn_key !== undefined) {
        assert.equal(toHex(deriveTransactionKeyFromBdkTdes(bdk, ksn)), e.txn_key);
        assert.equal(toHex(deriveTransactionKeyTdes(ipek, ksn)), e.txn_key);
      }
      if (e.encrypted_pinblock !== undefined) {
        const clear = pinBlockIso0(v.pin as string, v.pan as string);
        const pinKey = deriveWorkingKeyTdes(bdk, ksn, 'pin');
        assert.equal(toHex(encrypt('tdes', 'ecb', pinKey, clear)), e.encrypted_pinblock);
        assert.equal(toHex(decryptPinBlockTdes(bdk, ksn, fromHex(e.encrypted_pinblock))), toHex(clear));
      }
      if (e.mac_request !== undefined) {
        const mac = retailMac(deriveWorkingKeyTdes(bdk, ksn, 'mac'), text);
        assert.equal(toHex(mac.subarray(0, 4)), e.mac_request);
      }
      if (e.mac_response !== undefined) {
        const mac = retailMac(deriveWorkingKeyTdes(bdk, ksn, 'mac-response'), text);
        assert.equal(toHex(mac.subarray(0, 4)), e.mac_response);
      }
      if (e.data_request_encrypted !== undefined) {
        const dataKey = deriveWorkingKeyTdes(bdk, ksn, 'data');
        assert.equal(toHex(encrypt('tdes', 'cbc', dataKey, zeroPad(text, 8))), e.data_request_encrypted);
      }
      if (e.cmac_request !== undefined) {
        assert.equal(toHex(cmac('tdes', deriveWorkingKeyTdes(bdk, ksn, 'mac'), text)), e.cmac_request);
      }
      if (e.cmac_response !== undefined) {
        assert.equal(
          toHex(cmac('tdes', deriveWorkingKeyTdes(bdk, ksn, 'mac-response'), text)),
          e.cmac_response,
        );
      }
    });
  }

  it('uses every field of every vector', () => {
    const known = new Set([
      'ipek',
      'txn_key',
      'encrypted_pinblock',
      'mac_request',
      'mac_response',
      'data_request_encrypted',
      'cmac_request',
      'cmac_response',
    ]);
    for (const v of vectors('dukpt_tdes'))
      for (const k of Object.keys(v.expected)) assert.ok(known.has(k), k);
  });

  it('variants: working key = transaction key XOR the Table A-1 mask; data keys then encrypt under themselves', () => {
    const ksn = fromHex('FFFF9876543210E00001');
    const txn = deriveTransactionKeyFromBdkTdes(BDK, ksn);
    const masks: Record<string, string> = {
      pin: '00000000000000FF00000000000000FF',
      mac: '000000000000FF00000000000000FF00',
      'mac-response': '00000000FF00000000000000FF000000',
      data: '0000000000FF00000000000000FF0000',
      'data-response': '000000FF00000000000000FF00000000',
    };
    for (const [usage, mask] of Object.entries(masks)) {
      const variant = txn.map((b, i) => b ^ fromHex(mask)[i]!);
      const expected = usage.startsWith('data') ? encrypt('tdes', 'ecb', variant, variant) : variant;
      const got = deriveWorkingKeyFromTransactionKeyTdes(txn, usage as DukptTdesUsage);
      assert.equal(toHex(got), toHex(expected), usage);
      assert.equal(toHex(deriveWorkingKeyTdes(BDK, ksn, usage as DukptTdesUsage)), toHex(expected), usage);
    }
  });

  it('property: transaction key via the IPEK equals via the BDK, for any counter', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ minLength: 10, maxLength: 10 }),
        (bdk, ksn) => {
          const ipek = deriveIpekTdes(bdk, ksn);
          assert.equal(
            toHex(deriveTransactionKeyTdes(ipek, ksn)),
            toHex(deriveTransactionKeyFromBdkTdes(bdk, ksn)),
          );
        },
      ),
      { numRuns: 100 },
    );
  });

  it('property: keys equal X9.24-1 A.6 and A.2 written out over node:crypto DES (independent of the local core)', () => {
    const xorBytes = (a: Uint8Array, b: Uint8Array) => a.map((x, i) => x ^ b[i]!);
    const variantC0 = fromHex('C0C0C0C000000000C0C0C0C000000000');
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ minLength: 10, maxLength: 10 }),
        (bdk, ksn) => {
          // A.6: the KSN's leftmost 8 bytes, counter cleared, TDES under BDK and BDK ^ C0C0...
          const reg = ksn.slice(2);
          reg[5]! &= 0xe0;
          reg[6] = 0;
          reg[7] = 0;
          const top = ksn.slice(0, 8);
          top[7]! &= 0xe0;
          let key = concat(
            encrypt('tdes', 'ecb', bdk, top),
            encrypt('tdes', 'ecb', xorBytes(bdk, variantC0), top),
          );
          assert.equal(toHex(deriveIpekTdes(bdk, ksn)), toHex(key));
          // A.2 non-reversible key generation for each counter one bit, from the left
          const counter = counterOfKsnTdes(ksn);
          for (let bit = 0x100000; bit > 0; bit >>>= 1) {
            if ((counter & bit) === 0) continue;
            reg[5]! |= bit >>> 16;
            reg[6]! |= (bit >>> 8) & 255;
            reg[7]! |= bit & 255;
            const step = (k: Uint8Array) => {
              const kr = k.subarray(8);
              return xorBytes(encrypt('des', 'ecb', k.subarray(0, 8), xorBytes(reg, kr)), kr);
            };
            key = concat(step(xorBytes(key, variantC0)), step(key));
          }
          assert.equal(toHex(deriveTransactionKeyFromBdkTdes(bdk, ksn)), toHex(key));
          const pinKey = xorBytes(key, fromHex('00000000000000FF00000000000000FF'));
          assert.equal(toHex(deriveWorkingKeyTdes(bdk, ksn, 'pin')), toHex(pinKey));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('property: a PIN block encrypted under the PIN key decrypts with decryptPinBlockTdes', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ minLength: 10, maxLength: 10 }),
        fc.uint8Array({ minLength: 8, maxLength: 8 }),
        (bdk, ksn, block) => {
          const enc = encrypt('tdes', 'ecb', deriveWorkingKeyTdes(bdk, ksn, 'pin'), block);
          assert.equal(toHex(decryptPinBlockTdes(bdk, ksn, enc)), toHex(block));
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('TDES DUKPT device side: X9.24-1:2009 A.2', () => {
  const ipek = deriveIpekTdes(BDK, IKSN);

  it('the first transactions carry the A.4.2 vector keys', () => {
    const device = DukptTdesDevice.loadInitialKey(ipek, IKSN);
    const byKsn = new Map<string, string>();
    for (const v of vectors('dukpt_tdes')) {
      const e = v.expected as Record<string, string>;
      if (e.txn_key) byKsn.set(v.ksn as string, e.txn_key);
    }
    let matched = 0;
    for (let i = 0; i < 40; i++) {
      const t = device.nextTransaction();
      const want = byKsn.get(toHex(t.ksn));
      if (want) {
        assert.equal(toHex(t.transactionKey()), want);
        matched++;
      }
    }
    assert.ok(matched >= 20, `matched ${matched} vectors`);
  });

  it('for 1200 transactions the device key equals the host key; skipped counters have > 10 one bits', () => {
    const device = DukptTdesDevice.loadInitialKey(ipek, withCounterTdes(IKSN, 0x1234)); // counter is cleared
    let previous = 0;
    for (let i = 0; i < 1200; i++) {
      const t = device.nextTransaction();
      assert.equal(t.counter, previous + 1 + skipCount(previous + 1));
      assert.ok(popcount32(t.counter) <= 10);
      assert.equal(counterOfKsnTdes(t.ksn), t.counter);
      assert.equal(toHex(t.transactionKey()), toHex(deriveTransactionKeyFromBdkTdes(BDK, t.ksn)));
      assert.equal(toHex(t.workingKey('pin')), toHex(deriveWorkingKeyTdes(BDK, t.ksn, 'pin')));
      previous = t.counter;
    }
  });

  /** How many counters from `c` on have more than 10 one bits (the device must skip them). */
  function skipCount(c: number): number {
    let n = 0;
    while (popcount32(c + n) > 10) n++;
    return n;
  }

  it('the A.4.3 rollover sequence from counter 0FF800 skips to the vector counters', () => {
    const device = DukptTdesDevice.importState(stateAtCounter(ipek, IKSN, 0x0ff800));
    const seen: string[] = [];
    const byKsn = new Map<string, string>();
    for (const v of vectors('dukpt_tdes')) {
      const e = v.expected as Record<string, string>;
      if (e.txn_key) byKsn.set(v.ksn as string, e.txn_key);
    }
    for (let i = 0; i < 12; i++) {
      const t = device.nextTransaction();
      seen.push(toHex(t.ksn).slice(-5));
      const want = byKsn.get(toHex(t.ksn));
      if (want) assert.equal(toHex(t.transactionKey()), want);
      assert.equal(toHex(t.transactionKey()), toHex(deriveTransactionKeyFromBdkTdes(BDK, t.ksn)));
    }
    assert.deepEqual(seen, [
      'FF800',
      'FF801',
      'FF802',
      'FF804',
      'FF808',
      'FF810',
      'FF820',
      'FF840',
      'FF880',
      'FF900',
      'FFA00',
      'FFC00',
    ]);
  });

  it('property: a device restored at any usable counter produces the host keys', () => {
    const usable = fc.integer({ min: 1, max: DUKPT_TDES_LAST_COUNTER }).filter((c) => popcount32(c) <= 10);
    fc.assert(
      fc.property(usable, (c) => {
        const device = DukptTdesDevice.importState(stateAtCounter(ipek, IKSN, c));
        for (let i = 0; i < 3 && !device.exhausted; i++) {
          const t = device.nextTransaction();
          assert.ok(t.counter >= c);
          assert.equal(toHex(t.transactionKey()), toHex(deriveTransactionKeyTdes(ipek, t.ksn)));
        }
      }),
      { numRuns: 40 },
    );
  });

  it('export then import continues with the same keys', () => {
    const a = DukptTdesDevice.loadInitialKey(ipek, IKSN);
    for (let i = 0; i < 37; i++) a.nextTransaction();
    const b = DukptTdesDevice.importState(a.exportState());
    for (let i = 0; i < 20; i++) {
      const ta = a.nextTransaction();
      const tb = b.nextTransaction();
      assert.equal(toHex(ta.ksn), toHex(tb.ksn));
      assert.equal(toHex(ta.transactionKey()), toHex(tb.transactionKey()));
    }
  });

  it('end of life: counters from 1F0000 run out after the last usable counter 1FF800', () => {
    const device = DukptTdesDevice.importState(stateAtCounter(ipek, IKSN, 0x1f0000));
    // the top five bits are set, so the low 16 bits take at most five more: sum C(16, 0..5)
    let n = 0;
    let last = 0;
    while (!device.exhausted) {
      const t = device.nextTransaction();
      assert.ok(t.counter > last && popcount32(t.counter) <= 10);
      last = t.counter;
      n++;
    }
    assert.equal(n, 1 + 16 + 120 + 560 + 1820 + 4368);
    assert.equal(last, DUKPT_TDES_LAST_COUNTER);
    expectError(
      () => device.nextTransaction(),
      'CRYPTO_DUKPT_EXHAUSTED',
      'device: encryption counter is exhausted (X9.24-1 A.2 New Key-4): load a new initial key',
    );
    const restored = DukptTdesDevice.importState(device.exportState());
    assert.equal(restored.exhausted, true);
    expectError(
      () => restored.nextTransaction(),
      'CRYPTO_DUKPT_EXHAUSTED',
      'device: encryption counter is exhausted (X9.24-1 A.2 New Key-4): load a new initial key',
    );
  });

  it('a register with a bad LRC is skipped with every counter that descends from it', () => {
    const state = stateAtCounter(ipek, IKSN, 0x000100);
    state[12 + 12 * 17 + 3]! ^= 1; // register #13 (counter bit 0x100) corrupted
    const device = DukptTdesDevice.importState(state);
    const t = device.nextTransaction();
    assert.equal(t.counter, 0x000200);
    assert.equal(toHex(t.transactionKey()), toHex(deriveTransactionKeyTdes(ipek, t.ksn)));
  });

  it('the device holds no IPEK and shows no key in toString, JSON or inspect', () => {
    const device = DukptTdesDevice.loadInitialKey(ipek, IKSN);
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
      assert.ok(!s.includes(key) && !s.includes(toHex(ipek)), s);
    }
    assert.ok(!toHex(device.exportState()).includes(toHex(ipek)));
    t.wipe();
    assert.equal(toHex(t.transactionKey()), '00'.repeat(16));
  });
});

describe('TDES DUKPT errors', () => {
  const ksn = fromHex('FFFF9876543210E00001');

  it('KSN length', () => {
    const msg = 'ksn: must be 10 bytes (20 hex digits) for TDES DUKPT, got 9';
    expectError(() => deriveIpekTdes(BDK, new Uint8Array(9)), 'CRYPTO_KSN_INVALID', msg);
    expectError(() => deriveWorkingKeyTdes(BDK, new Uint8Array(9), 'pin'), 'CRYPTO_KSN_INVALID', msg);
    expectError(() => DukptTdesDevice.loadInitialKey(BDK, new Uint8Array(9)), 'CRYPTO_KSN_INVALID', msg);
    expectError(
      () => deriveTransactionKeyTdes(BDK, new Uint8Array(12)),
      'CRYPTO_KSN_INVALID',
      'ksn: must be 10 bytes (20 hex digits) for TDES DUKPT, got 12',
    );
  });

  it('key lengths', () => {
    expectError(
      () => deriveIpekTdes(new Uint8Array(24), ksn),
      'CRYPTO_KEY_LENGTH',
      'bdk: BDK must be 16 bytes (double-length TDES) for TDES DUKPT, got 24',
    );
    expectError(
      () => deriveWorkingKeyTdes(new Uint8Array(8), ksn, 'pin'),
      'CRYPTO_KEY_LENGTH',
      'bdk: BDK must be 16 bytes (double-length TDES) for TDES DUKPT, got 8',
    );
    expectError(
      () => deriveTransactionKeyTdes(new Uint8Array(8), ksn),
      'CRYPTO_KEY_LENGTH',
      'ipek: IPEK must be 16 bytes (double-length TDES) for TDES DUKPT, got 8',
    );
    expectError(
      () => DukptTdesDevice.loadInitialKey(new Uint8Array(24), ksn),
      'CRYPTO_KEY_LENGTH',
      'ipek: IPEK must be 16 bytes (double-length TDES) for TDES DUKPT, got 24',
    );
    expectError(
      () => deriveWorkingKeyFromTransactionKeyTdes(new Uint8Array(15), 'pin'),
      'CRYPTO_KEY_LENGTH',
      'transactionKey: transaction key must be 16 bytes (double-length TDES) for TDES DUKPT, got 15',
    );
  });

  it('unknown usage', () => {
    const msg = 'usage: unknown TDES DUKPT key usage (expected pin, mac, mac-response, data, data-response)';
    expectError(() => deriveWorkingKeyTdes(BDK, ksn, 'pin_key' as DukptTdesUsage), 'CRYPTO_ALGORITHM', msg);
    expectError(
      () => deriveWorkingKeyFromTransactionKeyTdes(BDK, 'toString' as DukptTdesUsage),
      'CRYPTO_ALGORITHM',
      msg,
    );
  });

  it('encrypted PIN block length', () => {
    expectError(
      () => decryptPinBlockTdes(BDK, ksn, new Uint8Array(16)),
      'CRYPTO_DATA_LENGTH',
      'encryptedPinBlock: must be 8 bytes (one TDES block), got 16',
    );
  });

  it('counters a device never sends', () => {
    assertCounterUsableTdes(withCounterTdes(ksn, 0x1ff800));
    expectError(
      () => assertCounterUsableTdes(withCounterTdes(ksn, 0)),
      'CRYPTO_KSN_INVALID',
      'ksn: counter must not be 0',
    );
    expectError(
      () => assertCounterUsableTdes(withCounterTdes(ksn, 0x0007ff)),
      'CRYPTO_KSN_INVALID',
      'ksn: counter has 11 one bits, at most 10 are allowed (X9.24-1 A.3)',
    );
  });

  it('device state', () => {
    const ipek = deriveIpekTdes(BDK, IKSN);
    const good = stateAtCounter(ipek, IKSN, 1);
    expectError(
      () => DukptTdesDevice.importState(good.subarray(0, 100)),
      'CRYPTO_DATA_LENGTH',
      `state: must be ${DUKPT_TDES_STATE_LENGTH} bytes for a TDES DUKPT device, got 100`,
    );
    const v2 = good.slice();
    v2[0] = 2;
    expectError(() => DukptTdesDevice.importState(v2), 'CRYPTO_PARAM', 'state.version: must be 1');
    const flags = good.slice();
    flags[11] = 7;
    expectError(() => DukptTdesDevice.importState(flags), 'CRYPTO_PARAM', 'state.flags: must be 0 or 1');
    expectError(
      () => DukptTdesDevice.importState(stateAtCounter(ipek, IKSN, 0)),
      'CRYPTO_KSN_INVALID',
      'state.ksn: counter must not be 0',
    );
    const tooMany = good.slice();
    tooMany.set(withCounterTdes(IKSN, 0x000fff), 1);
    expectError(
      () => DukptTdesDevice.importState(tooMany),
      'CRYPTO_KSN_INVALID',
      'state.ksn: counter has 12 one bits, at most 10 are allowed (X9.24-1 A.3)',
    );
  });

  it('no error message holds key material', () => {
    try {
      deriveIpekTdes(BDK, new Uint8Array(9));
      assert.fail('no error');
    } catch (e) {
      assert.ok(!(e as Error).message.includes(toHex(BDK)));
    }
  });
});
