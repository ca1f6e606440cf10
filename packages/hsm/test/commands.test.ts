/**
 * The HsmApi commands, each run twice: in process (LocalHsm) and over TCP (HsmClient against an
 * HsmServer on the same Hsm). Success is checked against the crypto package with the clear keys (taken
 * from the test LMK); every error is checked by its payShield reply code on both paths, and by its
 * HsmError code and message in process.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  adjustOddParity,
  deriveInitialKeyAes,
  deriveWorkingKeyAes,
  encryptPinBlock,
  decryptPinBlock,
  fromHex,
  generateMac,
  generateOffsetIbm3624,
  generatePvvVisa,
  kcvTdes,
  tdesDecryptEcb,
  tdesEncryptEcb,
  toAscii,
  toHex,
  unwrapKeyBlock,
  wrapKeyBlock,
} from '@openposp/crypto';
import fc from 'fast-check';
import type { PinBlockFormatCode } from '../src/api.js';
import { HsmError } from '../src/errors.js';
import { Hsm } from '../src/hsm.js';
import type { KeyAttributes } from '../src/keystore.js';
import { LocalHsm } from '../src/local.js';
import { auditPath, both, client, hsm, lmk, rawCommand, setUpBothPaths } from './paths.js';

setUpBothPaths('hsm-cmds-');

/** Rejects with payShield `reply`; in process also with `code` and, when given, the exact `message`. */
async function rejects(
  p: Promise<unknown>,
  local: boolean,
  reply: string,
  code: string,
  message?: string,
): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof HsmError, `expected HsmError, got ${String(e)}`);
    assert.equal(e.reply, reply, `reply (${e.message})`);
    if (local) {
      assert.equal(e.code, code);
      if (message !== undefined) assert.equal(e.message, message);
    } else {
      assert.equal(e.code, 'HSM_REPLY_ERROR');
    }
    return true;
  });
}

const attrs = (
  usage: KeyAttributes['usage'],
  algorithm: KeyAttributes['algorithm'],
  modeOfUse: KeyAttributes['modeOfUse'],
  exportability: KeyAttributes['exportability'] = 'E',
): KeyAttributes => ({ usage, algorithm, modeOfUse, keyVersion: '00', exportability });
const clear = (block: string): Uint8Array => lmk.unwrapKey(block, null).key;
const tdesKey = (hex: string): Uint8Array => adjustOddParity(fromHex(hex));

// Fixed keys under the test LMK (clear values known, so results are checked with the crypto package).
const K = {
  tpk: lmk.wrapKey(tdesKey('0123456789ABCDEFFEDCBA9876543210'), attrs('P0', 'T', 'B')),
  zpk: lmk.wrapKey(tdesKey('89ABCDEF0123456776543210FEDCBA98'), attrs('P0', 'T', 'B')),
  zpk2: lmk.wrapKey(tdesKey('1111222233334444555566667777888811112222'.slice(0, 32)), attrs('P0', 'T', 'B')),
  tpkEncryptOnly: lmk.wrapKey(tdesKey('0123456789ABCDEFFEDCBA9876543210'), attrs('P0', 'T', 'E')),
  tpkAes: lmk.wrapKey(fromHex('000102030405060708090A0B0C0D0E0F'), attrs('P0', 'A', 'B')),
  zpkAes: lmk.wrapKey(
    fromHex('202122232425262728292A2B2C2D2E2F303132333435363738393A3B3C3D3E3F'),
    attrs('P0', 'A', 'B'),
  ),
  tak: lmk.wrapKey(
    tdesKey('0123456789ABCDEF0123456789ABCDEF'.replace(/^0123/, '1A2B')),
    attrs('M3', 'T', 'C'),
  ),
  takM1: lmk.wrapKey(tdesKey('3131313131313131C1C1C1C1C1C1C1C1'), attrs('M1', 'T', 'C')),
  takGenerateOnly: lmk.wrapKey(tdesKey('3131313131313131C1C1C1C1C1C1C1C1'), attrs('M3', 'T', 'G')),
  zakCmacT: lmk.wrapKey(tdesKey('4C4C4C4C4C4C4C4C5D5D5D5D5D5D5D5D'), attrs('M6', 'T', 'C')),
  zakCmacA: lmk.wrapKey(fromHex('2B7E151628AED2A6ABF7158809CF4F3C'), attrs('M6', 'A', 'C')),
  tdk: lmk.wrapKey(tdesKey('5E5E5E5E5E5E5E5E6F6F6F6F6F6F6F6F'), attrs('D0', 'T', 'B')),
  tmk: lmk.wrapKey(tdesKey('7A7A7A7A7A7A7A7A8B8B8B8B8B8B8B8B'), attrs('K0', 'T', 'B')),
  zmk: lmk.wrapKey(tdesKey('9C9C9C9C9C9C9C9CADADADADADADADAD'), attrs('K0', 'T', 'B')),
  zmkAes: lmk.wrapKey(
    fromHex('88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6'),
    attrs('K0', 'A', 'B'),
  ),
  tmkAes: lmk.wrapKey(fromHex('88E1AB2A2E3DD38C1FA039A536500CC8'), attrs('K0', 'A', 'B')),
  pvkIbm: lmk.wrapKey(tdesKey('0123456789ABCDEF0123456789ABCDEF'), attrs('V1', 'T', 'C')),
  pvkVisa: lmk.wrapKey(tdesKey('0123456789ABCDEFFEDCBA9876543210'), attrs('V2', 'T', 'C')),
  bdk: lmk.wrapKey(fromHex('0123456789ABCDEFFEDCBA9876543210'), attrs('B0', 'T', 'X')),
  bdkAes: lmk.wrapKey(fromHex('FEDCBA9876543210F1F1F1F1F1F1F1F1'), attrs('B0', 'A', 'X')),
  zpkNotExportable: lmk.wrapKey(tdesKey('ABABABABABABABABCDCDCDCDCDCDCDCD'), attrs('P0', 'T', 'B', 'N')),
  zpk3: lmk.wrapKey(tdesKey('ABABABABABABABABCDCDCDCDCDCDCDCDEFEFEFEFEFEFEFEF'), attrs('P0', 'T', 'B')),
};
const PAN = '4012345678909';
const DECTAB = '0123456789012345';
const VALDATA = '4012345678FFFFFF';

describe('CA translate a PIN block TPK -> ZPK', () => {
  const cases: [PinBlockFormatCode, PinBlockFormatCode, 'T' | 'A'][] = [
    [0, 0, 'T'],
    [0, 3, 'T'],
    [3, 0, 'T'],
    [1, 0, 'T'],
    [1, 1, 'T'],
    [4, 4, 'A'],
  ];
  for (const [fin, fout, alg] of cases) {
    both(`ISO ${fin} -> ISO ${fout}`, async (api) => {
      const [tpk, zpk] = alg === 'T' ? [K.tpk, K.zpk] : [K.tpkAes, K.zpkAes];
      const pinBlock = encryptPinBlock(fin, clear(tpk), '123456', PAN);
      const out = await api.translatePinTpkToZpk({
        tpk,
        zpk,
        pinBlock,
        format: fin,
        formatOut: fout,
        pan: PAN,
      });
      assert.equal(decryptPinBlock(fout, clear(zpk), out, PAN), '123456');
    });
  }

  both('a PIN translated TPK -> ZPK -> ZPK decodes to the same PIN (property)', async (api) => {
    await fc.assert(
      fc.asyncProperty(
        fc.stringMatching(/^[0-9]{4,12}$/),
        fc.stringMatching(/^[0-9]{12,19}$/),
        fc.constantFrom<PinBlockFormatCode>(0, 3),
        fc.constantFrom<PinBlockFormatCode>(0, 3),
        async (pin, pan, f1, f2) => {
          const pinBlock = encryptPinBlock(f1, clear(K.tpk), pin, pan);
          const z1 = await api.translatePinTpkToZpk({
            tpk: K.tpk,
            zpk: K.zpk,
            pinBlock,
            format: f1,
            formatOut: f2,
            pan,
          });
          const z2 = await api.translatePinZpkToZpk({
            zpkIn: K.zpk,
            zpkOut: K.zpk3,
            pinBlock: z1,
            format: f2,
            formatOut: 0,
            pan,
          });
          assert.equal(decryptPinBlock(0, clear(K.zpk3), z2, pan), pin);
        },
      ),
      { numRuns: 25 },
    );
  });

  both('downgrades are refused: 4 -> 0 and 0 -> 1 (23)', async (api, local) => {
    const b4 = encryptPinBlock(4, clear(K.tpkAes), '1234', PAN);
    await rejects(
      api.translatePinTpkToZpk({
        tpk: K.tpkAes,
        zpk: K.zpk,
        pinBlock: b4,
        format: 4,
        formatOut: 0,
        pan: PAN,
      }),
      local,
      '23',
      'HSM_PIN_DOWNGRADE',
      'formatOut: translation from ISO format 4 to format 0 is a downgrade and is not allowed on this HSM',
    );
    const b0 = encryptPinBlock(0, clear(K.tpk), '1234', PAN);
    await rejects(
      api.translatePinTpkToZpk({ tpk: K.tpk, zpk: K.zpk, pinBlock: b0, format: 0, formatOut: 1, pan: PAN }),
      local,
      '23',
      'HSM_PIN_DOWNGRADE',
      'formatOut: translation from ISO format 0 (PAN-bound) to format 1 is not allowed on this HSM',
    );
  });

  test('an HSM configured with allowPinBlockDowngrade translates 4 -> 0', () => {
    const lax = new Hsm({ lmk, allowPinBlockDowngrade: true });
    const b4 = encryptPinBlock(4, clear(K.tpkAes), '1234', PAN);
    const out = lax.translatePinTpkToZpk({
      tpk: K.tpkAes,
      zpk: K.zpk,
      pinBlock: b4,
      format: 4,
      formatOut: 0,
      pan: PAN,
    });
    assert.equal(decryptPinBlock(0, clear(K.zpk), out, PAN), '1234');
  });

  both(
    'errors: 20 wrong PAN, 22 no PAN, 24 PIN length, A7 format 4 under TDES, A6 MAC key, A8 encrypt-only source, A4 tampered',
    async (api, local) => {
      const b0 = encryptPinBlock(0, clear(K.tpk), '1234', PAN);
      const req = {
        tpk: K.tpk,
        zpk: K.zpk,
        pinBlock: b0,
        format: 0 as const,
        formatOut: 0 as const,
        pan: PAN,
      };
      await rejects(
        api.translatePinTpkToZpk({ ...req, pan: '5500000000000004' }),
        local,
        '20',
        'HSM_PIN_BLOCK',
      );
      const { pan: _, ...noPan } = req;
      await rejects(
        api.translatePinTpkToZpk(noPan),
        local,
        '22',
        'HSM_PAN_INVALID',
        'pan: is required for ISO 9564 format 0',
      );
      // A clear format 0 block whose PIN length field is 3.
      const short = tdesEncryptEcb(clear(K.tpk), fromHex('03123FFFFFFFFFFF'));
      await rejects(
        api.translatePinTpkToZpk({ ...req, pinBlock: short, pan: '0000000000000' }),
        local,
        '24',
        'HSM_PIN_LENGTH',
        'pinblock: PIN length field is not 4 to 12',
      );
      await rejects(
        api.translatePinTpkToZpk({ ...req, format: 4, formatOut: 4, pinBlock: new Uint8Array(16) }),
        local,
        'A7',
        'HSM_KEY_ALGORITHM',
        'zpk: ISO format 4 PIN blocks need an AES key',
      );
      await rejects(
        api.translatePinTpkToZpk({ ...req, tpk: K.tak }),
        local,
        'A6',
        'HSM_KEY_USAGE',
        'tpk: key usage M3 (MAC, ISO 9797-1 algorithm 3 (retail MAC)) is not accepted here (expected P0)',
      );
      await rejects(
        api.translatePinTpkToZpk({ ...req, tpk: K.tpkEncryptOnly }),
        local,
        'A8',
        'HSM_KEY_MODE_OF_USE',
        'tpk: mode of use E is not accepted here (expected B or D)',
      );
      const tampered = K.tpk.slice(0, -1) + (K.tpk.endsWith('0') ? '1' : '0');
      await rejects(api.translatePinTpkToZpk({ ...req, tpk: tampered }), local, 'A4', 'HSM_KEYBLOCK_MAC');
    },
  );

  test('in process: a PIN block of the wrong length (20) and format 2 (23)', () => {
    const req = {
      tpk: K.tpk,
      zpk: K.zpk,
      pinBlock: new Uint8Array(7),
      format: 0 as const,
      formatOut: 0 as const,
      pan: PAN,
    };
    assert.throws(
      () => hsm.translatePinTpkToZpk(req),
      (e: unknown) =>
        e instanceof HsmError &&
        e.code === 'HSM_PIN_BLOCK' &&
        e.message === 'pinBlock: must be 8 bytes for ISO format 0, got 7',
    );
    assert.throws(
      () => hsm.translatePinTpkToZpk({ ...req, format: 2 as unknown as 0 }),
      (e: unknown) =>
        e instanceof HsmError &&
        e.reply === '23' &&
        e.message === 'format: must be ISO 9564 format 0, 1, 3 or 4',
    );
  });

  test('no error message holds the PAN or the PIN block', async () => {
    const b0 = encryptPinBlock(0, clear(K.tpk), '1234', PAN);
    for (const pan of [PAN, '5500000000000004', undefined]) {
      try {
        hsm.translatePinTpkToZpk({
          tpk: K.tpk,
          zpk: K.zpk,
          pinBlock: b0,
          format: 0,
          formatOut: 0,
          ...(pan ? { pan: pan.replace(/^4/, '9') } : {}),
        });
      } catch (e) {
        const m = String((e as Error).message);
        assert.ok(!m.includes(toHex(b0)) && !m.includes('012345678') && !m.includes('1234'), m);
      }
    }
  });
});

describe('CC translate ZPK -> ZPK', () => {
  both('ISO 3 -> ISO 0 under another ZPK', async (api) => {
    const pinBlock = encryptPinBlock(3, clear(K.zpk), '98765', PAN);
    const out = await api.translatePinZpkToZpk({
      zpkIn: K.zpk,
      zpkOut: K.zpk2,
      pinBlock,
      format: 3,
      formatOut: 0,
      pan: PAN,
    });
    assert.equal(decryptPinBlock(0, clear(K.zpk2), out, PAN), '98765');
  });
  both('a data key cannot take part (A6)', async (api, local) => {
    const pinBlock = encryptPinBlock(0, clear(K.zpk), '98765', PAN);
    await rejects(
      api.translatePinZpkToZpk({ zpkIn: K.zpk, zpkOut: K.tdk, pinBlock, format: 0, formatOut: 0, pan: PAN }),
      local,
      'A6',
      'HSM_KEY_USAGE',
    );
  });
});

describe('G0 / CI translate from DUKPT to a ZPK', () => {
  // ANSI X9.24-1:2009 Annex A test data: BDK 0123456789ABCDEFFEDCBA9876543210, KSN FFFF9876543210E00001,
  // PIN 1234 on PAN 4012345678909 (format 0), encrypted PIN block 1B9C1845EB993A7A.
  const ksn = fromHex('FFFF9876543210E00001');
  const pinBlock = fromHex('1B9C1845EB993A7A');
  both('TDES DUKPT: the X9.24-1 vector translates to a ZPK block that decodes to 1234', async (api) => {
    const out = await api.translatePinDukptToZpk({
      scheme: 'tdes',
      bdk: K.bdk,
      ksn,
      pinBlock,
      format: 0,
      zpk: K.zpk,
      formatOut: 0,
      pan: PAN,
    });
    assert.equal(decryptPinBlock(0, clear(K.zpk), out, PAN), '1234');
  });
  test('CI (TDES DUKPT, no scheme field) over TCP gives the same PIN', async () => {
    const out = await client.translatePinTdesDukptToZpk({
      scheme: 'tdes',
      bdk: K.bdk,
      ksn,
      pinBlock,
      format: 0,
      zpk: K.zpk,
      formatOut: 3,
      pan: PAN,
    });
    assert.equal(decryptPinBlock(3, clear(K.zpk), out, PAN), '1234');
  });
  both('AES DUKPT: format 4 under the AES-128 PIN key, and format 0 under the TDES2 PIN key', async (api) => {
    const aksn = fromHex('123456789012345600000001');
    const bdk = clear(K.bdkAes);
    const k4 = deriveWorkingKeyAes(bdk, aksn, 'pin', 'AES128');
    const b4 = encryptPinBlock(4, k4, '4321', PAN);
    const o4 = await api.translatePinDukptToZpk({
      scheme: 'aes',
      bdk: K.bdkAes,
      ksn: aksn,
      pinBlock: b4,
      format: 4,
      zpk: K.zpkAes,
      formatOut: 4,
      pan: PAN,
    });
    assert.equal(decryptPinBlock(4, clear(K.zpkAes), o4, PAN), '4321');
    const k0 = deriveWorkingKeyAes(bdk, aksn, 'pin', 'TDES2');
    const b0 = encryptPinBlock(0, k0, '4321', PAN);
    const o0 = await api.translatePinDukptToZpk({
      scheme: 'aes',
      bdk: K.bdkAes,
      ksn: aksn,
      pinBlock: b0,
      format: 0,
      zpk: K.zpk,
      formatOut: 0,
      pan: PAN,
    });
    assert.equal(decryptPinBlock(0, clear(K.zpk), o0, PAN), '4321');
  });
  both(
    'errors: 15 KSN counter 0, 23 format 4 under TDES DUKPT, A6 a ZPK as BDK, A7 an AES BDK for TDES DUKPT',
    async (api, local) => {
      const req = {
        scheme: 'tdes' as const,
        bdk: K.bdk,
        ksn,
        pinBlock,
        format: 0 as const,
        zpk: K.zpk,
        formatOut: 0 as const,
        pan: PAN,
      };
      await rejects(
        api.translatePinDukptToZpk({ ...req, ksn: fromHex('FFFF9876543210E00000') }),
        local,
        '15',
        'HSM_KSN_INVALID',
        'ksn: counter must not be 0',
      );
      await rejects(
        api.translatePinDukptToZpk({
          ...req,
          format: 4,
          formatOut: 4,
          zpk: K.zpkAes,
          pinBlock: new Uint8Array(16),
        }),
        local,
        '23',
        'HSM_PIN_FORMAT',
        'format: TDES DUKPT PIN blocks are ISO format 0, 1 or 3',
      );
      await rejects(api.translatePinDukptToZpk({ ...req, bdk: K.zpk }), local, 'A6', 'HSM_KEY_USAGE');
      await rejects(api.translatePinDukptToZpk({ ...req, bdk: K.bdkAes }), local, 'A7', 'HSM_KEY_ALGORITHM');
    },
  );
});

describe('DA/EA IBM 3624 offset, DC/EC Visa PVV, BK, FW', () => {
  const pvkIbm = () => clear(K.pvkIbm);
  const offset = () => generateOffsetIbm3624(pvkIbm(), DECTAB, fromHex(VALDATA), '4729');
  both('IBM 3624: BK gives the offset, DA verifies it; a wrong PIN is { ok: false }', async (api) => {
    const pinBlock = encryptPinBlock(0, clear(K.tpk), '4729', PAN);
    const base = {
      pinKey: K.tpk,
      pvk: K.pvkIbm,
      pinBlock,
      format: 0 as const,
      pan: PAN,
      decimalisationTable: DECTAB,
      validationData: VALDATA,
    };
    assert.deepEqual(await api.generateIbm3624Offset(base), { offset: offset() });
    assert.deepEqual(await api.verifyPinIbm3624({ ...base, offset: offset() }), { ok: true });
    const wrong = encryptPinBlock(0, clear(K.tpk), '4728', PAN);
    assert.deepEqual(await api.verifyPinIbm3624({ ...base, pinBlock: wrong, offset: offset() }), {
      ok: false,
    });
  });
  test('EA (ZPK) over TCP', async () => {
    const pinBlock = encryptPinBlock(3, clear(K.zpk), '4729', PAN);
    const r = await client.verifyPinIbm3624(
      {
        pinKey: K.zpk,
        pvk: K.pvkIbm,
        pinBlock,
        format: 3,
        pan: PAN,
        decimalisationTable: DECTAB,
        validationData: VALDATA,
        offset: offset(),
      },
      'zpk',
    );
    assert.deepEqual(r, { ok: true });
  });
  both('Visa PVV: FW gives the PVV, DC verifies it; a wrong PIN is { ok: false }', async (api) => {
    const pvv = generatePvvVisa(clear(K.pvkVisa), '1', '1234', PAN);
    const pinBlock = encryptPinBlock(0, clear(K.tpk), '1234', PAN);
    const base = { pinKey: K.tpk, pvk: K.pvkVisa, pinBlock, format: 0 as const, pan: PAN, pvki: '1' };
    assert.deepEqual(await api.generatePvv(base), { pvv });
    assert.deepEqual(await api.verifyPinPvv({ ...base, pvv }), { ok: true });
    const wrong = encryptPinBlock(0, clear(K.tpk), '1235', PAN);
    assert.deepEqual(await api.verifyPinPvv({ ...base, pinBlock: wrong, pvv }), { ok: false });
  });
  test('EC (ZPK) over TCP', async () => {
    const pvv = generatePvvVisa(clear(K.pvkVisa), '1', '1234', PAN);
    const pinBlock = encryptPinBlock(0, clear(K.zpk), '1234', PAN);
    assert.deepEqual(
      await client.verifyPinPvv(
        { pinKey: K.zpk, pvk: K.pvkVisa, pinBlock, format: 0, pan: PAN, pvki: '1', pvv },
        'zpk',
      ),
      { ok: true },
    );
  });
  both(
    'errors: 25 decimalisation table, A6 PVV key for IBM, 22 PAN too short for PVV, A6 MAC key as PIN key',
    async (api, local) => {
      const pinBlock = encryptPinBlock(1, clear(K.tpk), '4729');
      const base = {
        pinKey: K.tpk,
        pvk: K.pvkIbm,
        pinBlock,
        format: 1 as const,
        decimalisationTable: DECTAB,
        validationData: VALDATA,
        offset: '0000',
      };
      await rejects(
        api.verifyPinIbm3624({ ...base, decimalisationTable: '0123456789ABCDEF' }),
        local,
        '25',
        'HSM_DECIMALISATION',
        'decimalisationTable: must be 16 decimal digits',
      );
      await rejects(api.verifyPinIbm3624({ ...base, pvk: K.pvkVisa }), local, 'A6', 'HSM_KEY_USAGE');
      await rejects(api.verifyPinIbm3624({ ...base, pinKey: K.tak }), local, 'A6', 'HSM_KEY_USAGE');
      const pb = encryptPinBlock(1, clear(K.tpk), '1234');
      await rejects(
        api.verifyPinPvv({
          pinKey: K.tpk,
          pvk: K.pvkVisa,
          pinBlock: pb,
          format: 1,
          pan: '12345678',
          pvki: '1',
          pvv: '0000',
        }),
        local,
        '22',
        'HSM_PAN_INVALID',
      );
    },
  );
});

describe('M6/M8 MAC', () => {
  const data = new Uint8Array(Buffer.from('0200 purchase 000000010000 terminal 12345678', 'latin1'));
  const cases = [
    ['iso9797-1-1', 'takM1', {}],
    ['iso9797-1-3', 'tak', { padding: 2, length: 4 }],
    ['cmac', 'zakCmacT', {}],
    ['cmac', 'zakCmacA', { length: 8 }],
    ['cup-ecb', 'tak', {}],
  ] as const;
  for (const [alg, key, opts] of cases) {
    both(
      `${alg} under ${key} ${JSON.stringify(opts)}: equals the crypto package, verifies, fails when altered`,
      async (api) => {
        const k = clear(K[key]);
        const cipher =
          alg === 'cmac'
            ? { cipher: k.length === 16 && key === 'zakCmacA' ? ('aes' as const) : ('tdes' as const) }
            : {};
        const want = generateMac(alg, k, data, { ...opts, ...cipher });
        const mac = await api.generateMac({ key: K[key], algorithm: alg, data, ...opts });
        assert.equal(toHex(mac), toHex(want));
        assert.equal(await api.verifyMac({ key: K[key], algorithm: alg, data, mac, ...opts }), true);
        const altered = data.slice();
        altered[3]! ^= 1;
        assert.equal(
          await api.verifyMac({ key: K[key], algorithm: alg, data: altered, mac, ...opts }),
          false,
        );
      },
    );
  }
  test('the UnionPay MAC is 8 ASCII hex characters', async () => {
    const mac = await client.generateMac({ key: K.tak, algorithm: 'cup-ecb', data });
    assert.match(toAscii(mac), /^[0-9A-F]{8}$/);
  });
  both(
    'errors: A6 PIN key, A6 M3 key for CMAC, A8 generate-only key verifying, 80 MAC length 3',
    async (api, local) => {
      await rejects(
        api.generateMac({ key: K.tpk, algorithm: 'iso9797-1-3', data }),
        local,
        'A6',
        'HSM_KEY_USAGE',
        'key: key usage P0 (PIN encryption) is not accepted here (expected M3)',
      );
      await rejects(api.generateMac({ key: K.tak, algorithm: 'cmac', data }), local, 'A6', 'HSM_KEY_USAGE');
      await rejects(
        api.verifyMac({ key: K.takGenerateOnly, algorithm: 'iso9797-1-3', data, mac: new Uint8Array(8) }),
        local,
        'A8',
        'HSM_KEY_MODE_OF_USE',
        'key: mode of use G is not accepted here (expected C or V)',
      );
      await rejects(
        api.generateMac({ key: K.tak, algorithm: 'iso9797-1-3', data, length: 3 }),
        local,
        '80',
        'HSM_DATA_LENGTH',
        'length: MAC length must be 4 to 8 bytes',
      );
    },
  );
  test('in process: data over the maximum is 80', () => {
    assert.throws(
      () => hsm.generateMac({ key: K.tak, algorithm: 'iso9797-1-3', data: new Uint8Array(32001) }),
      (e: unknown) =>
        e instanceof HsmError && e.reply === '80' && e.message === 'data: must be at most 32000 bytes',
    );
  });
});

describe('A0 mode 1, A6, A8, GC: TR-31 key exchange', () => {
  both(
    'A0 mode 1: the exported TR-31 block (B under a TDES ZMK) unwraps with the crypto package to the same key',
    async (api) => {
      const r = await api.generateKey({
        keyType: 'ZPK',
        algorithm: 'T',
        keyLengthBytes: 16,
        exportUnder: K.zmk,
      });
      assert.ok(r.exported?.startsWith('B0080P0TB00E'));
      const u = unwrapKeyBlock(clear(K.zmk), r.exported!);
      assert.equal(toHex(u.key), toHex(clear(r.keyBlock)));
    },
  );
  both('A8 under an AES ZMK gives version D; the crypto package opens it', async (api) => {
    const r = await api.exportKeyUnderKek({ kek: K.zmkAes, keyBlock: K.zpkAes });
    assert.equal(r.tr31[0], 'D');
    assert.equal(toHex(unwrapKeyBlock(clear(K.zmkAes), r.tr31).key), toHex(clear(K.zpkAes)));
  });
  both('A6 imports a block wrapped by the crypto package (B and D)', async (api) => {
    const key = tdesKey('0F1E2D3C4B5A69788796A5B4C3D2E1F0');
    const b = wrapKeyBlock(clear(K.zmk), 'B0000P0TB00E0000', key);
    const r = await api.importKeyFromZmk({ kek: K.zmk, tr31: b, keyType: 'ZPK' });
    assert.equal(toHex(clear(r.keyBlock)), toHex(key));
    assert.equal(r.checkValue, toHex(kcvTdes(key, 3)));
    const aesKey = fromHex('00112233445566778899AABBCCDDEEFF');
    const d = wrapKeyBlock(clear(K.zmkAes), 'D0000M6AC00E0000', aesKey);
    const r2 = await api.importKeyFromZmk({ kek: K.zmkAes, tr31: d, keyType: 'ZAK' });
    assert.equal(toHex(clear(r2.keyBlock)), toHex(aesKey));
  });
  both(
    "errors: A4 tampered TR-31, A6 usage not the type's, BB version D under a TDES KEK, 10 parity, A6 data key as KEK",
    async (api, local) => {
      const key = tdesKey('0F1E2D3C4B5A69788796A5B4C3D2E1F0');
      const b = wrapKeyBlock(clear(K.zmk), 'B0000P0TB00E0000', key);
      const bad = b.slice(0, -1) + (b.endsWith('0') ? '1' : '0');
      await rejects(
        api.importKeyFromZmk({ kek: K.zmk, tr31: bad, keyType: 'ZPK' }),
        local,
        'A4',
        'HSM_KEYBLOCK_MAC',
      );
      await rejects(
        api.importKeyFromZmk({ kek: K.zmk, tr31: b, keyType: 'ZAK' }),
        local,
        'A6',
        'HSM_KEY_USAGE',
        'tr31: key usage P0 is not one a ZAK takes (M3 or M1 or M6)',
      );
      const d = wrapKeyBlock(clear(K.zmkAes), 'D0000P0TB00E0000', key);
      await rejects(
        api.importKeyFromZmk({ kek: K.zmk, tr31: d, keyType: 'ZPK' }),
        local,
        'BB',
        'HSM_WRAPPING_KEY',
        'tr31: a TDES key-encrypting key opens TR-31 version B blocks only',
      );
      const noParity = wrapKeyBlock(
        clear(K.zmk),
        'B0000P0TB00E0000',
        fromHex('00000000000000000000000000000000'.replace(/^00/, '02')),
      );
      await rejects(
        api.importKeyFromZmk({ kek: K.zmk, tr31: noParity, keyType: 'ZPK' }),
        local,
        '10',
        'HSM_COMPONENT_PARITY',
      );
      await rejects(
        api.importKeyFromZmk({ kek: K.tdk, tr31: b, keyType: 'ZPK' }),
        local,
        'A6',
        'HSM_KEY_USAGE',
      );
    },
  );
  both(
    'export errors: AA not exportable, BB AES key under a TDES KEK, BB 3-key TDES under a 2-key KEK, A6 data key cannot wrap',
    async (api, local) => {
      await rejects(
        api.exportKeyUnderKek({ kek: K.zmk, keyBlock: K.zpkNotExportable }),
        local,
        'AA',
        'HSM_KEY_NOT_EXPORTABLE',
        'keyBlock: exportability N: the key may not leave the HSM',
      );
      await rejects(
        api.exportKeyUnderKek({ kek: K.zmk, keyBlock: K.zpkAes }),
        local,
        'BB',
        'HSM_WRAPPING_KEY',
        'kek: a TDES key-encrypting key cannot wrap an AES key',
      );
      await rejects(
        api.exportKeyUnderKek({ kek: K.zmk, keyBlock: K.zpk3 }),
        local,
        'BB',
        'HSM_WRAPPING_KEY',
        'kek: the key-encrypting key is weaker than the key to wrap',
      );
      await rejects(
        api.exportKeyUnderKek({ kek: K.tdk, keyBlock: K.zpk }),
        local,
        'A6',
        'HSM_KEY_USAGE',
        'kek: key usage D0 (symmetric data encryption) is not accepted here (expected K0)',
      );
    },
  );
  test('GC exports zone keys only (over TCP: a K0 key is A6)', async () => {
    const r = await client.exportZoneKey({ kek: K.zmk, keyBlock: K.zpk });
    assert.equal(toHex(unwrapKeyBlock(clear(K.zmk), r.tr31).key), toHex(clear(K.zpk)));
    await rejects(client.exportZoneKey({ kek: K.zmk, keyBlock: K.tmk }), false, 'A6', 'HSM_KEY_USAGE');
  });
});

describe('FI/FA zone keys', () => {
  for (const type of ['ZPK', 'ZAK', 'ZEK'] as const) {
    both(`FI ${type} under TDES and AES ZMKs, FA imports it back`, async (api) => {
      for (const zmk of [K.zmk, K.zmkAes]) {
        const z = await api.generateZoneKey(zmk, type);
        const u = unwrapKeyBlock(clear(zmk), z.underZmk);
        assert.equal(toHex(u.key), toHex(clear(z.keyBlock)));
        const back = await api.importZoneKey(zmk, type, z.underZmk);
        assert.equal(back.checkValue, z.checkValue);
      }
    });
  }
  both('errors: 04 not a zone key type, A6 a TPK as ZMK', async (api, local) => {
    await rejects(
      api.generateZoneKey(K.zmk, 'TPK' as 'ZPK'),
      local,
      '04',
      'HSM_KEY_TYPE',
      'keyType: must be ZPK, ZAK, ZEK',
    );
    await rejects(api.generateZoneKey(K.tpk, 'ZPK'), local, 'A6', 'HSM_KEY_USAGE');
  });
});

describe('HC and sign-in (WK)', () => {
  both(
    'sign-in: TPK, TAK, TDK under the TMK decrypt to the keys under the LMK; 4-byte check values',
    async (api) => {
      const r = await api.generateTerminalWorkingKeys(K.tmk);
      for (const [name, k, usage] of [
        ['tpk', r.tpk, 'P0'],
        ['tak', r.tak, 'M3'],
        ['tdk', r.tdk, 'D0'],
      ] as const) {
        const key = tdesDecryptEcb(clear(K.tmk), fromHex(k.underTmk));
        assert.equal(toHex(key), toHex(clear(k.keyBlock)), name);
        assert.equal(k.checkValue, toHex(kcvTdes(key, 4)), name);
        assert.equal(await api.keyCheckValue(k.keyBlock), k.checkValue.slice(0, 6), name);
        assert.equal(lmk.unwrapKey(k.keyBlock, null).attrs.usage, usage);
      }
    },
  );
  both('HC: a new TMK under the current TMK', async (api) => {
    const r = await api.generateTerminalKey(K.tmk, 'TMK');
    assert.equal(toHex(tdesDecryptEcb(clear(K.tmk), fromHex(r.underTmk))), toHex(clear(r.keyBlock)));
  });
  both('errors: A7 AES TMK, A6 a ZPK as TMK, 04 key type', async (api, local) => {
    await rejects(api.generateTerminalWorkingKeys(K.tmkAes), local, 'A7', 'HSM_KEY_ALGORITHM');
    await rejects(api.generateTerminalWorkingKeys(K.zpk), local, 'A6', 'HSM_KEY_USAGE');
    await rejects(api.generateTerminalKey(K.tmk, 'ZPK' as 'TPK'), local, '04', 'HSM_KEY_TYPE');
  });
});

describe('IK DUKPT initial keys', () => {
  both(
    'TDES: the X9.24-1 IPEK 6AC292FAA1315B4D858AB3A3D7D5933A, exported under a TMK as TR-31 B1',
    async (api) => {
      const r = await api.deriveDukptInitialKey({
        scheme: 'tdes',
        bdk: K.bdk,
        ksn: fromHex('FFFF9876543210E00000'),
        exportUnder: K.tmk,
      });
      assert.equal(toHex(clear(r.keyBlock)), '6AC292FAA1315B4D858AB3A3D7D5933A');
      const u = unwrapKeyBlock(clear(K.tmk), r.exported!);
      assert.equal(u.header.keyUsage, 'B1');
      assert.equal(toHex(u.key), '6AC292FAA1315B4D858AB3A3D7D5933A');
    },
  );
  both(
    "AES: the initial key equals the crypto package's; refused under a TDES KEK (BB)",
    async (api, local) => {
      const ksn = fromHex('123456789012345600000000');
      const r = await api.deriveDukptInitialKey({ scheme: 'aes', bdk: K.bdkAes, ksn, exportUnder: K.zmkAes });
      assert.equal(toHex(clear(r.keyBlock)), toHex(deriveInitialKeyAes(clear(K.bdkAes), ksn)));
      await rejects(
        api.deriveDukptInitialKey({ scheme: 'aes', bdk: K.bdkAes, ksn, exportUnder: K.zmk }),
        local,
        'BB',
        'HSM_WRAPPING_KEY',
      );
      await rejects(
        api.deriveDukptInitialKey({ scheme: 'tdes', bdk: K.zpk, ksn: fromHex('FFFF9876543210E00000') }),
        local,
        'A6',
        'HSM_KEY_USAGE',
      );
    },
  );
});

describe('key-use misuse matrix over the new commands', () => {
  // Each operation with the key slot under test; every key of another use must be refused (A6/A7).
  const keys = { tpk: K.tpk, tak: K.tak, tdk: K.tdk, tmk: K.tmk, pvk: K.pvkVisa, bdk: K.bdk } as const;
  const pin = () => encryptPinBlock(0, clear(K.tpk), '1234', PAN);
  const encryptedUnderTdk = () =>
    hsm.encryptData({ key: K.tdk, data: new Uint8Array(13), iv: new Uint8Array(8) }).ciphertext;
  const ops: Record<string, [keyof typeof keys, (k: string) => unknown]> = {
    'decrypt a PIN block': [
      'tpk',
      (k) =>
        hsm.translatePinTpkToZpk({ tpk: k, zpk: K.zpk, pinBlock: pin(), format: 0, formatOut: 0, pan: PAN }),
    ],
    'make a MAC': [
      'tak',
      (k) => hsm.generateMac({ key: k, algorithm: 'iso9797-1-3', data: new Uint8Array(8) }),
    ],
    'wrap a key': ['tmk', (k) => hsm.exportKeyUnderKek({ kek: k, keyBlock: K.zpk })],
    'issue sign-in keys': ['tmk', (k) => hsm.generateTerminalWorkingKeys(k)],
    'verify a PVV': [
      'pvk',
      (k) =>
        hsm.verifyPinPvv({
          pinKey: K.tpk,
          pvk: k,
          pinBlock: pin(),
          format: 0,
          pan: PAN,
          pvki: '1',
          pvv: '0000',
        }),
    ],
    'derive DUKPT keys': [
      'bdk',
      (k) => hsm.deriveDukptInitialKey({ scheme: 'tdes', bdk: k, ksn: fromHex('FFFF9876543210E00000') }),
    ],
    'encrypt data': ['tdk', (k) => hsm.encryptData({ key: k, data: new Uint8Array(13) })],
    'decrypt data': [
      'tdk',
      (k) => hsm.decryptData({ key: k, iv: new Uint8Array(8), ciphertext: encryptedUnderTdk() }),
    ],
  };
  for (const [op, [allowed, run]] of Object.entries(ops)) {
    for (const [name, block] of Object.entries(keys)) {
      test(`a ${name} ${name === allowed ? 'may' : 'may not'} ${op}`, () => {
        if (name === allowed) {
          run(block);
          return;
        }
        assert.throws(
          () => run(block),
          (e: unknown) => e instanceof HsmError && e.code === 'HSM_KEY_USAGE' && e.reply === 'A6',
        );
      });
    }
  }
});

describe('host port: malformed requests of the new commands', () => {
  const raw = async (body: string): Promise<string> =>
    (await rawCommand(body.slice(0, 2), body.slice(2))).code;
  const table: [string, string, string][] = [
    ['CA empty', 'CA', 'CB15'],
    ['CA unknown PIN format code', `CA${K.tpk}${K.zpk}02${'0'.repeat(16)}0113${PAN}`, 'CB23'],
    ['CA PIN block not hex', `CA${K.tpk}${K.zpk}01${'Z'.repeat(16)}0113${PAN}`, 'CB15'],
    ['CA trailing bytes', `CA${K.tpk}${K.zpk}01${'0'.repeat(16)}0113${PAN}X`, 'CB15'],
    ['G0 bad scheme', `G0X${K.bdk}`, 'G115'],
    ['M6 bad algorithm', `M6200${K.tak}0000`, 'M715'],
    ['M6 data shorter than stated', `M6300${K.tak}0010AB`, 'M715'],
    ['M8 MAC odd length', `M8300${K.tak}0001A123456789`, 'M915'],
    ['A6 not a TR-31 block', `A6ZPK${K.zmk}XYZ`, 'A715'],
    ['FI unknown zone key type', `FITPK${K.zmk}`, 'FJ04'],
    ['HC unknown key type', `HCZPK${K.tmk}`, 'HD04'],
    [
      'DA offset not digits',
      `DA${K.tpk}${K.pvkIbm}01${'0'.repeat(16)}13${PAN}${DECTAB}${VALDATA}ABCDFFFFFFFF`,
      'DB15',
    ],
    ['IK KSN too short', `IKT${K.bdk}FFFF`, 'IL15'],
  ];
  for (const [name, req, want] of table) test(name, async () => assert.equal(await raw(req), want));
});

describe('audit', () => {
  test('every key-management command writes a line; none holds a key block, TR-31 block or PIN block', async () => {
    const before = readFileSync(auditPath, 'utf8').trim().split('\n').length;
    const api = new LocalHsm(hsm, { who: 'test' });
    const z = await api.generateZoneKey(K.zmk, 'ZPK');
    await api.importZoneKey(K.zmk, 'ZPK', z.underZmk);
    const x = await api.exportKeyUnderKek({ kek: K.zmk, keyBlock: K.zpk });
    await api.importKeyFromZmk({ kek: K.zmk, tr31: x.tr31, keyType: 'ZPK' });
    const w = await api.generateTerminalWorkingKeys(K.tmk);
    await api.generateTerminalKey(K.tmk, 'TPK');
    await api.deriveDukptInitialKey({ scheme: 'tdes', bdk: K.bdk, ksn: fromHex('FFFF9876543210E00000') });
    await assert.rejects(api.exportKeyUnderKek({ kek: K.zmk, keyBlock: K.zpkNotExportable }));
    const lines = readFileSync(auditPath, 'utf8')
      .trim()
      .split('\n')
      .slice(before)
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => `${l.command}:${l.keyType}:${l.result}`),
      [
        'FI:ZPK:00',
        'FA:ZPK:00',
        'A8:P0:00',
        'A6:ZPK:00',
        'WK:TPK:00',
        'WK:TAK:00',
        'WK:TDK:00',
        'HC:TPK:00',
        'IK:IPEK:00',
        'A8:P0:AA',
      ],
    );
    assert.equal(lines[4].checkValue, w.tpk.checkValue);
    const text = readFileSync(auditPath, 'utf8');
    for (const secret of [z.underZmk, z.keyBlock, x.tr31, w.tpk.underTmk, w.tak.keyBlock.slice(20, 60)]) {
      assert.ok(!text.includes(secret));
    }
  });
});
