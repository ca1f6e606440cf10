/**
 * The PAN vault: the one PAN the POSP keeps at rest (an owed reversal advice) is sealed by the HSM
 * (M0 under the POSP's DEK), opened only by the store-and-forward worker (M2), and never stored in clear.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTestLmk, Hsm, LocalHsm } from '@openposp/hsm';
import { isAcquirerError, PanVault } from '../src/index.js';

const lmk = createTestLmk({ allowTestLmk: true, warn: () => {} });
const hsm = new LocalHsm(new Hsm({ lmk, sensitiveActivities: [] }));
const dek = () => hsm.hsm.generateKey({ keyType: 'DEK', algorithm: 'A', keyLengthBytes: 32 }).keyBlock;
const PAN = '6225881234567890';
const refused = (e: unknown) => isAcquirerError(e) && e.code === 'ACQUIRER_PAN_SEALED';

test('seal then open gives the PAN back; the sealed text holds no run of its digits', async () => {
  const v = new PanVault(hsm, dek());
  for (const pan of [PAN, '622202123456', '6222021234567890123']) {
    const sealed = await v.seal(pan);
    assert.match(sealed, /^v1:[0-9A-F]{32}:([0-9A-F]{32})+$/);
    assert.equal(sealed.includes(pan.slice(0, 6)) && sealed.includes(pan.slice(-4)), false);
    assert.equal(await v.open(sealed), pan);
  }
});

test('the same PAN sealed twice gives unrelated values (a fresh IV each time)', async () => {
  const v = new PanVault(hsm, dek());
  const a = await v.seal(PAN);
  const b = await v.seal(PAN);
  assert.notEqual(a, b);
  assert.notEqual(a.split(':')[2], b.split(':')[2]);
});

test('a PAN that is not 12-19 digits is refused before the HSM sees it', async () => {
  const v = new PanVault(hsm, dek());
  for (const bad of ['', '12345678901', '62258812345678901234', '6225 8812 3456 7890', '622588123456789X'])
    await assert.rejects(v.seal(bad), refused, JSON.stringify(bad));
});

test('an altered row or another data key does not open to a PAN: ACQUIRER_PAN_SEALED, never another card', async () => {
  const v = new PanVault(hsm, dek());
  const sealed = await v.seal(PAN);
  await assert.rejects(v.open('v1:zz'), refused);
  await assert.rejects(v.open(PAN), refused);
  const other = new PanVault(hsm, dek());
  let wrongKeyRefused = 0;
  for (let i = 0; i < 20; i++) {
    const s = await v.seal(PAN);
    await other.open(s).then(
      (pan) => assert.notEqual(pan, PAN),
      (e) => {
        assert.ok(refused(e), String(e));
        wrongKeyRefused++;
      },
    );
  }
  // CBC has no integrity: a wrong key is caught by the padding check or the digits check, nearly always.
  assert.ok(wrongKeyRefused >= 19, `refused ${wrongKeyRefused} of 20`);
  const [, iv, ct] = sealed.split(':');
  const flipped = `v1:${iv}:${ct!.slice(0, -2)}${ct!.slice(-2) === '00' ? '01' : '00'}`;
  await assert.rejects(v.open(flipped), refused);
});
