import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { inspect } from 'node:util';
import fc from 'fast-check';
import {
  adjustOddParity,
  decryptPinBlock,
  kcvTdes,
  macCupEcb,
  tdesEncryptEcb,
  toHex,
  wrapKeyBlock,
} from '@openposp/crypto';
import { PINPAD_SCRYPT_N_MIN, PINPAD_SLOT_COUNT, PinPad } from '../src/pinpad.js';

const dir = mkdtempSync(join(tmpdir(), 'pinpad-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const statePath = () => join(dir, `pad-${n++}.sealed`);
const SECRET = new Uint8Array(32).fill(7);
const open = (path: string, deviceSecret = SECRET) =>
  PinPad.open({ statePath: path, deviceSecret, scryptN: PINPAD_SCRYPT_N_MIN });

const oddKey = (): Uint8Array => adjustOddParity(new Uint8Array(randomBytes(16)));

/** Injects a TMK from two components into slot 0; returns the clear TMK (the test knows it). */
function injectTmk(pad: PinPad, slot = 0): Uint8Array {
  const c1 = oddKey();
  const c2 = oddKey();
  const tmk = adjustOddParity(c1.map((b, i) => b ^ c2[i]!));
  pad.injectKeyFromComponents(slot, 'kek', [c1.slice(), c2.slice()], {
    checkValue: kcvTdes(tmk, 3),
    componentCheckValues: [kcvTdes(c1, 3), kcvTdes(c2, 3)],
  });
  return tmk;
}

function loadWorking(
  pad: PinPad,
  tmk: Uint8Array,
  keys: { slot: number; usage: 'pin' | 'mac' | 'data'; key: Uint8Array }[],
) {
  return pad.loadKeysUnderKek(
    0,
    keys.map((k) => ({
      slot: k.slot,
      usage: k.usage,
      encryptedKey: tdesEncryptEcb(tmk, k.key),
      checkValue: kcvTdes(k.key, 4),
    })),
  );
}

/** True when `hay` contains `needle` as bytes, or its hex in either case. */
function leaks(hay: string | Uint8Array, needle: Uint8Array): boolean {
  const hex = toHex(needle);
  if (typeof hay === 'string') return hay.toUpperCase().includes(hex);
  return (
    Buffer.from(hay).includes(Buffer.from(needle)) ||
    Buffer.from(hay).toString('latin1').toUpperCase().includes(hex)
  );
}

describe('PIN pad slots', () => {
  test(`has ${PINPAD_SLOT_COUNT} double-length slots (at least 30), all usable at once`, async () => {
    assert.ok(PINPAD_SLOT_COUNT >= 30);
    const pad = await open(statePath());
    const tmk = injectTmk(pad);
    const keys = Array.from({ length: PINPAD_SLOT_COUNT - 1 }, (_, i) => ({
      slot: i + 1,
      usage: (['pin', 'mac', 'data'] as const)[i % 3]!,
      key: oddKey(),
    }));
    const infos = loadWorking(pad, tmk, keys);
    assert.equal(infos.length, PINPAD_SLOT_COUNT - 1);
    assert.equal(pad.listSlots().length, PINPAD_SLOT_COUNT);
    for (const k of keys) assert.equal(pad.slotInfo(k.slot)?.checkValueHex, toHex(kcvTdes(k.key, 4)));
    pad.close();
  });

  test('slot numbers out of range are refused', async () => {
    const pad = await open(statePath());
    for (const bad of [-1, PINPAD_SLOT_COUNT, 1.5]) {
      assert.throws(() => pad.slotInfo(bad), {
        code: 'TERMINAL_PINPAD_SLOT',
        message: `slot: must be an integer from 0 to ${PINPAD_SLOT_COUNT - 1}`,
      });
    }
    assert.throws(() => pad.encryptPinBlockIso0(5, '1234', '6222021234567890123'), {
      code: 'TERMINAL_PINPAD_SLOT',
      message: 'slot: slot 5 is empty',
    });
    pad.close();
  });

  test('a key has one use: a PIN key cannot MAC, a MAC key cannot encrypt data', async () => {
    const pad = await open(statePath());
    const tmk = injectTmk(pad);
    loadWorking(pad, tmk, [
      { slot: 1, usage: 'pin', key: oddKey() },
      { slot: 2, usage: 'mac', key: oddKey() },
    ]);
    assert.throws(() => pad.generateMacCupEcb(1, new Uint8Array(8)), {
      code: 'TERMINAL_PINPAD_SLOT',
      message: 'slot: slot 1 holds a pin key, not a mac key',
    });
    assert.throws(() => pad.encryptDataTdesEcb(2, new Uint8Array(8)), {
      code: 'TERMINAL_PINPAD_SLOT',
      message: 'slot: slot 2 holds a mac key, not a data key',
    });
    assert.throws(
      () =>
        pad.loadKeysUnderKek(1, [
          { slot: 3, usage: 'pin', encryptedKey: new Uint8Array(16), checkValue: new Uint8Array(4) },
        ]),
      {
        code: 'TERMINAL_PINPAD_SLOT',
        message: 'kekSlot: slot 1 holds a pin key, not a kek key',
      },
    );
    pad.close();
  });
});

describe('key injection from clear components', () => {
  test('forms the key from two or three components and confirms its check value', async () => {
    const pad = await open(statePath());
    const c = [oddKey(), oddKey(), oddKey()];
    const key = adjustOddParity(c[0]!.map((b, i) => b ^ c[1]![i]! ^ c[2]![i]!));
    const info = pad.injectKeyFromComponents(
      4,
      'kek',
      c.map((x) => x.slice()),
      { checkValue: kcvTdes(key, 3) },
    );
    assert.deepEqual(info, { slot: 4, usage: 'kek', checkValueHex: toHex(kcvTdes(key, 4)) });
    pad.close();
  });

  test('a wrong check value leaves the slot as it was', async () => {
    const pad = await open(statePath());
    const tmk = injectTmk(pad);
    const before = pad.slotInfo(0);
    const c1 = oddKey();
    const c2 = oddKey();
    const wrong = kcvTdes(oddKey(), 3);
    assert.throws(() => pad.injectKeyFromComponents(0, 'kek', [c1, c2], { checkValue: wrong }), {
      code: 'TERMINAL_PINPAD_CHECK_VALUE',
      message: 'opts.checkValue: does not match the key formed from the components',
    });
    assert.deepEqual(pad.slotInfo(0), before);
    assert.equal(pad.slotInfo(0)?.checkValueHex, toHex(kcvTdes(tmk, 4)));
    pad.close();
  });

  test('component errors: count, length, parity, component check value', async () => {
    const pad = await open(statePath());
    const cv = new Uint8Array(3);
    assert.throws(() => pad.injectKeyFromComponents(0, 'kek', [oddKey()], { checkValue: cv }), {
      code: 'TERMINAL_PINPAD_COMPONENT',
      message: 'components: dual control needs 2 to 3 components',
    });
    assert.throws(
      () =>
        pad.injectKeyFromComponents(0, 'kek', [oddKey(), adjustOddParity(new Uint8Array(8))], {
          checkValue: cv,
        }),
      {
        code: 'TERMINAL_PINPAD_COMPONENT',
        message: 'components[1]: must be 16 bytes (double length), got 8',
      },
    );
    const even = oddKey();
    even[3]! ^= 1;
    assert.throws(() => pad.injectKeyFromComponents(0, 'kek', [even, oddKey()], { checkValue: cv }), {
      code: 'TERMINAL_PINPAD_COMPONENT',
      message: 'components[0]: must have odd parity in every byte',
    });
    const c1 = oddKey();
    assert.throws(
      () =>
        pad.injectKeyFromComponents(0, 'kek', [c1, oddKey()], {
          checkValue: cv,
          componentCheckValues: [kcvTdes(c1, 3), cv],
        }),
      { code: 'TERMINAL_PINPAD_CHECK_VALUE', message: 'components[1]: does not match its check value' },
    );
    assert.equal(pad.listSlots().length, 0);
    pad.close();
  });

  test('TR-31 key block under a KEK slot', async () => {
    const pad = await open(statePath());
    const kek = injectTmk(pad, 9);
    const pik = oddKey();
    const block = wrapKeyBlock(kek, 'B0000P0TE00N0000', pik);
    const info = pad.injectKeyBlock(1, 9, block, { checkValue: kcvTdes(pik, 3) });
    assert.deepEqual(info, { slot: 1, usage: 'pin', checkValueHex: toHex(kcvTdes(pik, 4)) });
    const tampered = block.slice(0, -1) + (block.endsWith('0') ? '1' : '0');
    assert.throws(() => pad.injectKeyBlock(2, 9, tampered), { code: 'TERMINAL_PINPAD_KEY_BLOCK' });
    const wrongUsage = wrapKeyBlock(kek, 'B0000B0TX00N0000', oddKey());
    assert.throws(() => pad.injectKeyBlock(2, 9, wrongUsage), {
      code: 'TERMINAL_PINPAD_KEY_BLOCK',
      message: 'block: must carry a 16-byte TDES key of usage K0, K1, P0, M0, M1, M3, D0',
    });
    pad.close();
  });
});

describe('working keys under the TMK (sign-in)', () => {
  test('all or nothing: one bad check value loads none and keeps the old keys', async () => {
    const pad = await open(statePath());
    const tmk = injectTmk(pad);
    const old = [oddKey(), oddKey(), oddKey()];
    loadWorking(pad, tmk, [
      { slot: 1, usage: 'pin', key: old[0]! },
      { slot: 2, usage: 'mac', key: old[1]! },
      { slot: 3, usage: 'data', key: old[2]! },
    ]);
    const before = pad.listSlots();
    const fresh = [oddKey(), oddKey(), oddKey()];
    const entries = fresh.map((k, i) => ({
      slot: i + 1,
      usage: (['pin', 'mac', 'data'] as const)[i]!,
      encryptedKey: tdesEncryptEcb(tmk, k),
      checkValue: kcvTdes(k, 4),
    }));
    entries[2]!.checkValue = kcvTdes(oddKey(), 4);
    assert.throws(() => pad.loadKeysUnderKek(0, entries), {
      code: 'TERMINAL_PINPAD_CHECK_VALUE',
      message: 'entries[2].checkValue: does not match the decrypted key',
    });
    assert.deepEqual(pad.listSlots(), before);
    // The old MAC key still works.
    const data = new Uint8Array(20).fill(3);
    assert.deepEqual(pad.generateMacCupEcb(2, data), macCupEcb(old[1]!, data));
    pad.close();
  });
});

describe('use', () => {
  test('PIN entry gives the ISO format 0 block under the PIK; MAC and track data under their keys', async () => {
    const pad = await open(statePath());
    const tmk = injectTmk(pad);
    const [pik, mak, tdk] = [oddKey(), oddKey(), oddKey()];
    loadWorking(pad, tmk, [
      { slot: 1, usage: 'pin', key: pik },
      { slot: 2, usage: 'mac', key: mak },
      { slot: 3, usage: 'data', key: tdk },
    ]);
    const pan = '6222021234567890123';
    const block = pad.encryptPinBlockIso0(1, '123456', pan);
    assert.equal(decryptPinBlock(0, pik, block, pan), '123456');
    const data = new Uint8Array(37).map((_, i) => i);
    assert.deepEqual(pad.generateMacCupEcb(2, data), macCupEcb(mak, data));
    assert.equal(pad.verifyMacCupEcb(2, data, macCupEcb(mak, data)), true);
    assert.equal(pad.verifyMacCupEcb(2, data, new Uint8Array(8)), false);
    assert.deepEqual(
      pad.encryptDataTdesEcb(3, data.subarray(0, 8)),
      tdesEncryptEcb(tdk, data.subarray(0, 8)),
    );
    assert.throws(() => pad.encryptPinBlockIso0(1, '12a4', pan), {
      code: 'TERMINAL_PIN_INVALID',
      message: 'pin: must be 4 to 12 decimal digits',
    });
    assert.throws(() => pad.encryptDataTdesEcb(3, new Uint8Array(7)), {
      code: 'TERMINAL_PINPAD_SLOT',
      message: 'data: must be a non-empty multiple of 8 bytes',
    });
    pad.close();
  });

  test('property: openRecord(sealRecord(x)) = x', async () => {
    const pad = await open(statePath());
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (x) => {
        assert.deepEqual(pad.openRecord(pad.sealRecord(x)), x);
      }),
      { numRuns: 100 },
    );
    pad.close();
  });

  test('records sealed by the pad open only in the pad', async () => {
    const pad = await open(statePath());
    const plain = new TextEncoder().encode('{"pan":"6222021234567890123"}');
    const sealed = pad.sealRecord(plain);
    assert.equal(leaks(sealed, plain), false);
    assert.deepEqual(pad.openRecord(sealed), plain);
    sealed[20]! ^= 1;
    assert.throws(() => pad.openRecord(sealed), {
      code: 'TERMINAL_PINPAD_SEALED',
      message: 'record: does not verify under this PIN pad',
    });
    pad.close();
  });
});

describe('keys are never readable', () => {
  const EXPECTED_METHODS = [
    'constructor',
    'eraseAll',
    'eraseSlot',
    'encryptDataTdesEcb',
    'encryptPinBlockIso0',
    'generateMacCupEcb',
    'injectKeyBlock',
    'injectKeyFromComponents',
    'listSlots',
    'loadKeysUnderKek',
    'openRecord',
    'sealRecord',
    'slotCount',
    'slotInfo',
    'toJSON',
    'toString',
    'verifyMacCupEcb',
    'close',
  ].sort();

  test('no public method, property, inspect, JSON or string form returns key bytes', async () => {
    const path = statePath();
    const pad = await open(path);
    const tmk = injectTmk(pad);
    const keys = [oddKey(), oddKey(), oddKey()];
    const loaded = loadWorking(pad, tmk, [
      { slot: 1, usage: 'pin', key: keys[0]! },
      { slot: 2, usage: 'mac', key: keys[1]! },
      { slot: 3, usage: 'data', key: keys[2]! },
    ]);
    const fromBlock = pad.injectKeyBlock(4, 0, wrapKeyBlock(tmk, 'B0000M3TC00N0000', keys[1]!));
    const secrets = [tmk, ...keys];
    // The method list is pinned: a new method fails this test until it is added to the sweep below.
    assert.deepEqual(Object.getOwnPropertyNames(PinPad.prototype).sort(), EXPECTED_METHODS);
    assert.deepEqual(Object.keys(pad), []);
    const outputs: unknown[] = [
      loaded,
      fromBlock,
      pad.listSlots(),
      pad.slotInfo(0),
      pad.slotInfo(1),
      pad.slotCount,
      pad.toJSON(),
      pad.toString(),
      String(pad),
      `${pad}`,
      JSON.stringify(pad),
      inspect(pad),
      inspect(pad, { showHidden: true, depth: 10, getters: true }),
      pad.encryptPinBlockIso0(1, '1234', '6222021234567890123'),
      pad.generateMacCupEcb(2, new Uint8Array(16)),
      pad.verifyMacCupEcb(2, new Uint8Array(16), new Uint8Array(8)),
      pad.encryptDataTdesEcb(3, new Uint8Array(8)),
      pad.sealRecord(new Uint8Array(4)),
      pad.openRecord(pad.sealRecord(new Uint8Array(4))),
      readFileSync(path),
    ];
    for (const out of outputs) {
      const text =
        out instanceof Uint8Array
          ? out
          : typeof out === 'string'
            ? out
            : (JSON.stringify(out) ?? String(out));
      for (const k of secrets) assert.equal(leaks(text, k), false, 'a key leaked');
    }
    pad.close();
  });

  test('the string forms show slot numbers, usages and check values', async () => {
    const pad = await open(statePath());
    const tmk = injectTmk(pad);
    const cv = toHex(kcvTdes(tmk, 4));
    assert.equal(String(pad), `PinPad(${PINPAD_SLOT_COUNT} slots; loaded 0:kek:${cv})`);
    assert.equal(inspect(pad), `PinPad(${PINPAD_SLOT_COUNT} slots; loaded 0:kek:${cv})`);
    assert.equal(
      JSON.stringify(pad),
      `{"slotCount":${PINPAD_SLOT_COUNT},"slots":[{"slot":0,"usage":"kek","checkValueHex":"${cv}"}]}`,
    );
    pad.close();
  });
});

describe('sealed state', () => {
  test('survives a restart: same slots, same results', async () => {
    const path = statePath();
    const pad = await open(path);
    const tmk = injectTmk(pad);
    const mak = oddKey();
    loadWorking(pad, tmk, [{ slot: 2, usage: 'mac', key: mak }]);
    const slots = pad.listSlots();
    pad.close();
    assert.throws(() => pad.listSlots(), {
      code: 'TERMINAL_CLOSED',
      message: 'pinpad: the PIN pad has been closed',
    });
    const again = await open(path);
    assert.deepEqual(again.listSlots(), slots);
    const data = new Uint8Array(30).fill(9);
    assert.deepEqual(again.generateMacCupEcb(2, data), macCupEcb(mak, data));
    again.close();
  });

  test('a wrong device secret or an altered file is refused', async () => {
    const path = statePath();
    const pad = await open(path);
    injectTmk(pad);
    pad.close();
    await assert.rejects(open(path, new Uint8Array(32).fill(8)), {
      code: 'TERMINAL_PINPAD_SEALED',
      message: 'pinpad.state: cannot be opened: wrong device secret, or the file was altered',
    });
    const doc = JSON.parse(readFileSync(path, 'utf8'));
    const ct: string = doc.ciphertextHex;
    doc.ciphertextHex = (ct[0] === '0' ? '1' : '0') + ct.slice(1);
    writeFileSync(path, JSON.stringify(doc));
    await assert.rejects(open(path), {
      code: 'TERMINAL_PINPAD_SEALED',
      message: 'pinpad.state: cannot be opened: wrong device secret, or the file was altered',
    });
    // A lowered KDF cost is a downgrade, refused before any work.
    doc.kdf.N = 1024;
    writeFileSync(path, JSON.stringify(doc));
    await assert.rejects(open(path), {
      code: 'TERMINAL_PINPAD_SEALED',
      message: 'pinpad.state: kdf.N must be a power of two from 16384 to 4194304',
    });
    writeFileSync(path, 'not json');
    await assert.rejects(open(path), {
      code: 'TERMINAL_PINPAD_SEALED',
      message: 'pinpad.state: file is not a sealed PIN pad state (not JSON)',
    });
  });

  test('a short device secret is programmer misuse', async () => {
    await assert.rejects(
      PinPad.open({ statePath: statePath(), deviceSecret: new Uint8Array(8) }),
      RangeError,
    );
  });

  test('eraseAll (tamper response) empties every slot, also after a restart', async () => {
    const path = statePath();
    const pad = await open(path);
    injectTmk(pad);
    pad.eraseAll();
    assert.deepEqual(pad.listSlots(), []);
    pad.close();
    const again = await open(path);
    assert.deepEqual(again.listSlots(), []);
    again.close();
  });
});
