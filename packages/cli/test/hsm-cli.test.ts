/**
 * `posp hsm`: component files, the LMK ceremony (files and prompts), `serve` as a child process
 * (sealed LMK opened with the components; the test LMK with its loud warning), `audit verify` naming
 * the first broken line.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { HsmClient } from '@openposp/hsm';
import { POSP_BIN } from '../src/network/processes.js';
import { runPosp } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'posp-hsm-cli-'));
const c1 = join(dir, 'c1.json');
const c2 = join(dir, 'c2.json');
const sealed = join(dir, 'lmk.sealed');
const audit = join(dir, 'audit.log');
let lmkCheckValue = '';

test('hsm component new: one custodian file (0600) and its check value; never overwritten', async () => {
  for (const f of [c1, c2]) {
    const r = await runPosp(['hsm', 'component', 'new', '--out', f]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /check value {2}[0-9A-F]{10}\n$/);
    const file = JSON.parse(readFileSync(f, 'utf8'));
    assert.equal(file.checkValue, /check value {2}([0-9A-F]{10})/.exec(r.out)![1]);
    assert.doesNotMatch(r.out, new RegExp(file.component, 'i'), 'the component is never printed');
  }
  const again = await runPosp(['hsm', 'component', 'new', '--out', c1]);
  assert.equal(again.code, 2);
  assert.match(again.err, /already exists/);
});

test('hsm init from component files: sealed LMK, its check value, the ceremony in the audit log', async () => {
  const one = await runPosp(['hsm', 'init', '--component', c1, '--sealed', sealed]);
  assert.equal(one.code, 2);
  assert.match(one.err, /at least 2 component files/);
  const r = await runPosp([
    'hsm',
    'init',
    '--component',
    c1,
    '--component',
    c2,
    '--sealed',
    sealed,
    '--audit',
    audit,
  ]);
  assert.equal(r.code, 0, r.err);
  lmkCheckValue = /LMK check value {2}([0-9A-F]{16})/.exec(r.out)![1]!;
  assert.ok(existsSync(sealed));
  const text = readFileSync(sealed, 'utf8');
  for (const f of [c1, c2]) assert.ok(!text.includes(JSON.parse(readFileSync(f, 'utf8')).component));
  assert.match(readFileSync(audit, 'utf8'), /LMK_FORM/);
  const over = await runPosp(['hsm', 'init', '--component', c1, '--component', c2, '--sealed', sealed]);
  assert.equal(over.code, 2);
  assert.match(over.err, /never overwritten/);
});

test('hsm init --prompt: components typed on stdin, each check value shown, sealed under a passphrase', async () => {
  const a = 'A1'.repeat(32);
  const b = '5C'.repeat(32);
  const out = join(dir, 'prompt.sealed');
  const r = await runPosp(
    ['hsm', 'init', '--prompt', '--passphrase-stdin', '--sealed', out],
    `${a}\n${b}\ncorrect horse battery staple\n`,
  );
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /component 1 check value {2}[0-9A-F]{10}\ncomponent 2 check value {2}[0-9A-F]{10}\n/);
  assert.match(r.out, /LMK check value {2}[0-9A-F]{16}/);
  assert.doesNotMatch(r.out + r.err, /A1A1A1|5C5C5C|horse/);
  const bad = await runPosp(
    ['hsm', 'init', '--prompt', '--passphrase-stdin', '--sealed', join(dir, 'x.sealed')],
    `${a}\nnot-hex\npass phrase\n`,
  );
  assert.equal(bad.code, 2);
  assert.match(bad.err, /component 2: must be 64 hex digits/);
  assert.doesNotMatch(bad.err, /not-hex/);
});

function waitForLine(child: ChildProcess, re: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`timeout: ${seen}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      seen += d.toString();
      const m = re.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.once('exit', (c) => reject(new Error(`exited ${c}: ${seen}`)));
  });
}

test('hsm serve: unseals with the components, answers host commands, stops on SIGTERM', async () => {
  const child = spawn(
    process.execPath,
    [
      POSP_BIN,
      'hsm',
      'serve',
      '--sealed',
      sealed,
      '--component',
      c1,
      '--component',
      c2,
      '--port',
      '0',
      '--audit',
      audit,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const m = await waitForLine(child, /listening on 127\.0\.0\.1:([0-9]+) \(LMK check value ([0-9A-F]{16})\)/);
  assert.equal(m[2], lmkCheckValue);
  const client = await HsmClient.connect('127.0.0.1', Number(m[1]));
  try {
    assert.equal((await client.diagnostics()).lmkCheckValue, lmkCheckValue);
    const k = await client.generateKey({ keyType: 'TAK', algorithm: 'T', keyLengthBytes: 16 });
    assert.equal(await client.keyCheckValue(k.keyBlock), k.checkValue);
  } finally {
    await client.close();
  }
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});

test('hsm serve --test-lmk warns loudly; a wrong component does not open the sealed LMK', async () => {
  const child = spawn(process.execPath, [POSP_BIN, 'hsm', 'serve', '--test-lmk', '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  await waitForLine(child, /listening on/);
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  child.kill('SIGINT');
  assert.equal(await exited, 0);
  assert.match(err, /!{78}\nWARNING: the HSM is using the FIXED TEST LMK/);
  const other = join(dir, 'other.json');
  await runPosp(['hsm', 'component', 'new', '--out', other]);
  const r = await runPosp([
    'hsm',
    'serve',
    '--sealed',
    sealed,
    '--component',
    c1,
    '--component',
    other,
    '--port',
    '0',
  ]);
  assert.equal(r.code, 1);
  assert.match(r.err, /^posp hsm: HSM_/);
});

test('hsm audit verify: ok on an intact chain; names the first broken line and exits 1', async () => {
  const ok = await runPosp(['hsm', 'audit', 'verify', audit, '--lmk-check-value', lmkCheckValue]);
  assert.equal(ok.code, 0, ok.out);
  assert.match(ok.out, /^ok: [0-9]+ lines, chain intact/);
  const lines = readFileSync(audit, 'utf8').split('\n');
  assert.ok(lines.length >= 3);
  lines[1] = lines[1]!.replace('"result":"00"', '"result":"01"');
  const edited = join(dir, 'edited.log');
  writeFileSync(edited, lines.join('\n'));
  const r = await runPosp(['hsm', 'audit', 'verify', edited]);
  assert.equal(r.code, 1);
  assert.equal(r.out, 'broken: line 2: hash does not match the line (line edited)\n');
});
