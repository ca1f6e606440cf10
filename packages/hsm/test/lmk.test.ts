import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { kcvAes, toHex, xor } from '@openposp/crypto';
import {
  initLmkFromComponentFiles,
  openSealedLmk,
  readLmkComponentFile,
  writeLmkComponentFile,
} from '../src/ceremony.js';
import { HsmError } from '../src/errors.js';
import {
  createTestLmk,
  formLmk,
  generateLmkComponent,
  type LmkComponent,
  lmkComponentCheckValue,
  parseSealedLmk,
  sealLmk,
  unsealLmk,
} from '../src/lmk.js';

const FAST = { N: 1024, r: 8, p: 1 };

function throwsHsm(fn: () => unknown, code: string, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof HsmError, `expected HsmError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    return true;
  });
}

const comp = (fill: number): LmkComponent => {
  const component = new Uint8Array(32).fill(fill);
  return { component, checkValue: lmkComponentCheckValue(component) };
};

describe('LMK ceremony', () => {
  test('the LMK is the XOR of the components; its check value is the AES CMAC KCV (8 bytes)', () => {
    const a = generateLmkComponent();
    const b = generateLmkComponent();
    const c = generateLmkComponent();
    const lmk = formLmk([a, b, c]);
    const expected = xor(xor(a.component, b.component), c.component);
    assert.equal(lmk.checkValue, toHex(kcvAes(expected, 8)));
    assert.match(a.checkValue, /^[0-9A-F]{10}$/);
    assert.equal(a.checkValue, toHex(kcvAes(a.component, 5)));
  });

  test('component order does not matter', () => {
    const a = generateLmkComponent();
    const b = generateLmkComponent();
    assert.equal(formLmk([a, b]).checkValue, formLmk([b, a]).checkValue);
  });

  test('a component whose check value does not match is refused, naming its position', () => {
    const a = comp(1);
    const b = { ...comp(2), checkValue: comp(3).checkValue };
    throwsHsm(
      () => formLmk([a, b]),
      'HSM_LMK_COMPONENT',
      'components[1].checkValue: does not match the check value of the component entered (re-enter the component)',
    );
  });

  test('check value in lower case is accepted', () => {
    const a = comp(1);
    assert.ok(formLmk([{ ...a, checkValue: a.checkValue.toLowerCase() }, comp(2)]));
  });

  const errors: [string, () => unknown, string, string][] = [
    [
      'one component',
      () => formLmk([comp(1)]),
      'HSM_LMK_COMPONENTS',
      'components: need 2 to 9 components, got 1',
    ],
    [
      'ten components',
      () => formLmk(Array.from({ length: 10 }, (_, i) => comp(i + 1))),
      'HSM_LMK_COMPONENTS',
      'components: need 2 to 9 components, got 10',
    ],
    [
      'short component',
      () => formLmk([comp(1), { component: new Uint8Array(16), checkValue: '0000000000' }]),
      'HSM_LMK_COMPONENT',
      'components[1]: must be 32 bytes, got 16',
    ],
    [
      'check value format',
      () => formLmk([comp(1), { ...comp(2), checkValue: 'XYZ' }]),
      'HSM_LMK_COMPONENT',
      'components[1].checkValue: must be 10 hex digits',
    ],
    [
      'duplicate',
      () => formLmk([comp(1), comp(2), comp(1)]),
      'HSM_LMK_COMPONENTS',
      'components[2]: is equal to components[0]',
    ],
    [
      'all zero result',
      () => formLmk([comp(1), comp(2), comp(3)]),
      'HSM_LMK_COMPONENTS',
      'components: combine to a key of all zeros',
    ],
    [
      'component check value of a short component',
      () => lmkComponentCheckValue(new Uint8Array(31)),
      'HSM_LMK_COMPONENT',
      'component: must be 32 bytes, got 31',
    ],
  ];
  for (const [name, fn, code, message] of errors)
    test(`refused: ${name}`, () => throwsHsm(fn, code, message));
});

describe('test LMK', () => {
  test('refused without the explicit option', () => {
    throwsHsm(
      () => createTestLmk({ allowTestLmk: false }),
      'HSM_LMK_TEST_NOT_ALLOWED',
      'allowTestLmk: the test LMK needs allowTestLmk: true',
    );
  });

  test('warns loudly, and is fixed (its check value is stable)', () => {
    const lines: string[] = [];
    const a = createTestLmk({ allowTestLmk: true, warn: (l) => lines.push(l) });
    const b = createTestLmk({ allowTestLmk: true, warn: (l) => lines.push(l) });
    assert.equal(a.checkValue, b.checkValue);
    const key = new Uint8Array(32).map((_, i) => i + 1);
    assert.equal(a.checkValue, toHex(kcvAes(key, 8)));
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^WARNING: the HSM is using the FIXED TEST LMK \(check value [0-9A-F]{16}\)/);
  });

  test('warns on stderr by default', () => {
    const orig = process.stderr.write.bind(process.stderr);
    let out = '';
    process.stderr.write = ((s: string) => {
      out += s;
      return true;
    }) as typeof process.stderr.write;
    try {
      createTestLmk({ allowTestLmk: true });
    } finally {
      process.stderr.write = orig;
    }
    assert.match(out, /FIXED TEST LMK/);
    assert.match(out, /!{78}/);
  });
});

describe('sealing the LMK at rest', () => {
  const a = generateLmkComponent();
  const b = generateLmkComponent();
  const lmk = formLmk([a, b]);
  const sealedP = sealLmk(lmk, { passphrase: 'correct horse battery' }, { kdf: FAST });
  const sealedC = sealLmk(lmk, { components: [a, b] }, { kdf: FAST });

  test('the sealed file holds no clear LMK, no component', () => {
    const text = JSON.stringify([sealedP, sealedC]);
    for (const secret of [a.component, b.component, xor(a.component, b.component)]) {
      assert.ok(!text.toUpperCase().includes(toHex(secret)));
    }
    assert.deepEqual(Object.keys(sealedP), [
      'format',
      'version',
      'kdf',
      'salt',
      'lmkCheckValue',
      'nonce',
      'ciphertext',
      'tag',
    ]);
    assert.deepEqual(sealedP.kdf, { name: 'scrypt', N: 1024, r: 8, p: 1, secret: 'passphrase' });
  });

  test('opens with the passphrase, or with the components in any order', () => {
    assert.equal(unsealLmk(sealedP, { passphrase: 'correct horse battery' }).checkValue, lmk.checkValue);
    assert.equal(unsealLmk(JSON.stringify(sealedC), { components: [b, a] }).checkValue, lmk.checkValue);
  });

  test('a wrong passphrase or wrong components do not open it', () => {
    const msg = 'sealed: does not open (wrong secret, or the file was altered)';
    throwsHsm(() => unsealLmk(sealedP, { passphrase: 'wrong horse battery' }), 'HSM_LMK_UNSEAL', msg);
    throwsHsm(() => unsealLmk(sealedC, { components: [a, generateLmkComponent()] }), 'HSM_LMK_UNSEAL', msg);
    throwsHsm(
      () => unsealLmk(sealedC, { passphrase: 'correct horse battery' }),
      'HSM_LMK_UNSEAL',
      'secret: this file is sealed under components, not passphrase',
    );
  });

  test('any edited field makes it refuse to open', () => {
    const msg = 'sealed: does not open (wrong secret, or the file was altered)';
    const flip = (h: string): string => (h[0] === '0' ? '1' : '0') + h.slice(1);
    for (const f of ['salt', 'nonce', 'ciphertext', 'tag', 'lmkCheckValue'] as const) {
      throwsHsm(
        () => unsealLmk({ ...sealedP, [f]: flip(sealedP[f]) }, { passphrase: 'correct horse battery' }),
        'HSM_LMK_UNSEAL',
        msg,
      );
    }
    throwsHsm(
      () =>
        unsealLmk({ ...sealedP, kdf: { ...sealedP.kdf, N: 2048 } }, { passphrase: 'correct horse battery' }),
      'HSM_LMK_UNSEAL',
      msg,
    );
  });

  test('sealing under components that do not form this LMK is refused', () => {
    throwsHsm(
      () => sealLmk(lmk, { components: [a, generateLmkComponent()] }, { kdf: FAST }),
      'HSM_LMK_COMPONENTS',
      'components: do not form this LMK',
    );
  });

  test('a short passphrase is refused', () => {
    throwsHsm(
      () => sealLmk(lmk, { passphrase: 'short' }, { kdf: FAST }),
      'HSM_LMK_UNSEAL',
      'passphrase: must be at least 8 characters',
    );
  });

  const malformed: [string, unknown, string][] = [
    ['not JSON', '{', 'sealed: is not JSON'],
    ['array', '[]', 'sealed: must be a JSON object'],
    ['format', { ...sealedP, format: 'x' }, 'sealed.format: must be openposp-hsm-sealed-lmk'],
    ['version', { ...sealedP, version: 2 }, 'sealed.version: must be 1'],
    ['kdf name', { ...sealedP, kdf: { ...sealedP.kdf, name: 'pbkdf2' } }, 'sealed.kdf.name: must be scrypt'],
    [
      'kdf secret',
      { ...sealedP, kdf: { ...sealedP.kdf, secret: 'x' } },
      'sealed.kdf.secret: must be passphrase or components',
    ],
    [
      'N too big',
      { ...sealedP, kdf: { ...sealedP.kdf, N: 2 ** 21 } },
      'sealed.kdf.N: must be a power of 2 from 2^10 to 2^20',
    ],
    [
      'N not a power of 2',
      { ...sealedP, kdf: { ...sealedP.kdf, N: 1500 } },
      'sealed.kdf.N: must be a power of 2 from 2^10 to 2^20',
    ],
    ['r', { ...sealedP, kdf: { ...sealedP.kdf, r: 17 } }, 'sealed.kdf.r: must be an integer from 1 to 16'],
    ['p', { ...sealedP, kdf: { ...sealedP.kdf, p: 0 } }, 'sealed.kdf.p: must be an integer from 1 to 4'],
    ['salt', { ...sealedP, salt: 'AB' }, 'sealed.salt: must be 32 hex digits'],
    ['nonce', { ...sealedP, nonce: 'ZZ' }, 'sealed.nonce: must be 24 hex digits'],
    ['ciphertext', { ...sealedP, ciphertext: '' }, 'sealed.ciphertext: must be 64 hex digits'],
    ['tag', { ...sealedP, tag: 1 }, 'sealed.tag: must be 32 hex digits'],
    ['check value', { ...sealedP, lmkCheckValue: 'ABC' }, 'sealed.lmkCheckValue: must be 16 hex digits'],
  ];
  for (const [name, input, message] of malformed) {
    test(`malformed sealed file: ${name}`, () =>
      throwsHsm(() => parseSealedLmk(input), 'HSM_LMK_SEALED_FORMAT', message));
  }
});

describe('ceremony from component files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hsm-lmk-'));

  test('init writes a sealed file that opens with the passphrase and with the component files', async () => {
    const files = [join(dir, 'c1.json'), join(dir, 'c2.json')];
    const kcvs = files.map((f) => writeLmkComponentFile(f));
    assert.match(kcvs[0]!, /^[0-9A-F]{10}$/);
    const r1 = await initLmkFromComponentFiles({
      componentFiles: files,
      sealWith: { passphrase: 'a long passphrase' },
      sealedPath: join(dir, 'lmk-p.json'),
      auditPath: join(dir, 'audit.log'),
      kdf: FAST,
    });
    const r2 = await initLmkFromComponentFiles({
      componentFiles: files,
      sealWith: 'components',
      sealedPath: join(dir, 'lmk-c.json'),
      kdf: FAST,
    });
    assert.equal(r1.lmkCheckValue, r2.lmkCheckValue);
    assert.equal(
      openSealedLmk(join(dir, 'lmk-p.json'), { passphrase: 'a long passphrase' }).checkValue,
      r1.lmkCheckValue,
    );
    assert.equal(
      openSealedLmk(join(dir, 'lmk-c.json'), { componentFiles: files }).checkValue,
      r1.lmkCheckValue,
    );
    const audit = readFileSync(join(dir, 'audit.log'), 'utf8').trim().split('\n');
    assert.equal(audit.length, 2);
    assert.equal(JSON.parse(audit[1]!).command, 'LMK_FORM');
    const comp1 = readLmkComponentFile(files[0]!);
    assert.ok(!audit.join('').includes(toHex(comp1.component)));
  });

  test('an existing sealed file is never overwritten', async () => {
    const files = [join(dir, 'd1.json'), join(dir, 'd2.json')];
    for (const f of files) writeLmkComponentFile(f);
    writeFileSync(join(dir, 'exists.json'), 'keep');
    await assert.rejects(
      initLmkFromComponentFiles({
        componentFiles: files,
        sealWith: 'components',
        sealedPath: join(dir, 'exists.json'),
        kdf: FAST,
      }),
      /EEXIST/,
    );
    assert.equal(readFileSync(join(dir, 'exists.json'), 'utf8'), 'keep');
  });

  test('a malformed component file is refused by position', () => {
    writeFileSync(
      join(dir, 'bad.json'),
      '{"format":"openposp-hsm-lmk-component","component":"12","checkValue":"00"}',
    );
    throwsHsm(
      () => readLmkComponentFile(join(dir, 'bad.json')),
      'HSM_LMK_COMPONENT',
      'componentFile.component: must be 64 hex digits',
    );
    writeFileSync(join(dir, 'bad2.json'), 'nope');
    throwsHsm(
      () => readLmkComponentFile(join(dir, 'bad2.json')),
      'HSM_LMK_COMPONENT',
      'componentFile: is not a JSON component file',
    );
    writeFileSync(join(dir, 'bad3.json'), '{"format":"x"}');
    throwsHsm(
      () => readLmkComponentFile(join(dir, 'bad3.json')),
      'HSM_LMK_COMPONENT',
      'componentFile.format: must be openposp-hsm-lmk-component',
    );
  });
});
