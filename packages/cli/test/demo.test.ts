/**
 * The real thing as a user runs it: `posp demo --json` as a child process (which itself starts the HSM,
 * two issuers, the switch and the POSP as child processes), its JSON checked, then `posp txn show`
 * and `posp hsm audit verify` on what it left, and the secret scan of its directory. Then `posp up`
 * as a child process driven by `posp terminal`, and stopped with SIGINT.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DEMO_CARDS, demoCard, track2Of } from '../src/network/cards.js';
import { readManifest } from '../src/network/layout.js';
import { POSP_BIN } from '../src/network/processes.js';
import { cardNeedles, keyNeedles, type Needle, scanDirectory } from './network-harness.js';
import { runPosp } from './run.js';

function runNode(args: string[], timeoutMs: number): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { timeout: timeoutMs, maxBuffer: 4 << 20 }, (e, out, err) => {
      const code = e ? ((e as { code?: unknown }).code as number) : 0;
      resolve({ code: typeof code === 'number' ? code : -1, out, err });
    });
  });
}

function demoNeedles(dir: string): Needle[] {
  const m = readManifest(dir);
  const needles = DEMO_CARDS.flatMap((c) => cardNeedles({ pan: c.pan, track2: track2Of(c) }));
  for (const f of m.hsm.components) {
    const hex = JSON.parse(readFileSync(f, 'utf8')).component as string;
    needles.push(...keyNeedles('LMK component', Buffer.from(hex, 'hex'), /lmk-component-[0-9]\.json$/));
  }
  return needles;
}

test('posp demo --json (child processes): the day, its codes, txn show, the audit chain, the secret scan', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'posp-demo-test-'));
  const started = Date.now();
  const r = await runNode([POSP_BIN, 'demo', '--json', '--dir', dir], 60_000);
  assert.equal(r.code, 0, r.err);
  assert.ok(Date.now() - started < 60_000);
  const report = JSON.parse(r.out);
  assert.equal(r.out.trim().split('\n').length, 1, 'nothing but the JSON on stdout');
  assert.deepEqual(Object.keys(report).sort(), ['dir', 'summary', 'transactions']);
  assert.equal(report.dir, dir);
  for (const t of report.transactions)
    assert.deepEqual(Object.keys(t).sort(), ['amountMinor', 'responseCode', 'rrn', 'terminal', 'type']);
  const codes = report.transactions.map((t: { responseCode: string }) => t.responseCode);
  for (const c of ['00', '55', '51']) assert.ok(codes.includes(c), `response code ${c} in ${codes}`);
  const types = new Set(report.transactions.map((t: { type: string }) => t.type));
  assert.deepEqual([...types].sort(), ['balance-inquiry', 'purchase', 'refund', 'void']);
  assert.deepEqual(
    new Set(report.transactions.map((t: { terminal: string }) => t.terminal)),
    new Set(['POS00001', 'POS00002', 'POS00003']),
  );
  assert.deepEqual(report.summary, { approved: 7, declined: 2 });
  for (const t of report.transactions) assert.match(t.rrn, /^[0-9]{12}$/);

  // The void: at every party, and its original shown as voided.
  const v = report.transactions.find((t: { type: string }) => t.type === 'void');
  const shown = await runPosp(['txn', 'show', '--dir', dir, '--rrn', v.rrn, '--json']);
  assert.equal(shown.code, 0, shown.err);
  const s = JSON.parse(shown.out);
  assert.equal(s.posp.state, 'answered');
  assert.equal(s.posp.responseCode, '00');
  assert.equal(s.switch[0].responseCode, '00');
  assert.equal(s.issuer.transactions[0].type, 'void');
  assert.equal(s.issuer.transactions[0].responseCode, '00');
  assert.deepEqual(
    s.issuer.linked.map((t: { type: string; state: string }) => [t.type, t.state]),
    [['purchase', 'voided']],
  );

  const audit = await runPosp(['hsm', 'audit', 'verify', join(dir, 'hsm', 'audit.log')]);
  assert.equal(audit.code, 0, audit.out + audit.err);
  assert.match(audit.out, /^ok: [0-9]+ lines, chain intact/);

  // Every service stopped cleanly on SIGTERM.
  for (const name of ['hsm', 'issuer-bank-a', 'issuer-bank-b', 'switch', 'posp'])
    assert.match(readFileSync(join(dir, 'logs', `${name}.out`), 'utf8'), /SIGTERM, stopping/);

  assert.deepEqual(
    scanDirectory(
      dir,
      demoNeedles(dir),
      DEMO_CARDS.map((c) => c.pin),
    ),
    [],
  );
});

/** Waits until `child` has printed a line matching `re` on stdout. */
function waitFor(child: ChildProcess, re: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`no ${re} within ${timeoutMs} ms:\n${seen}`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      seen += d.toString('utf8');
      if (re.test(seen)) {
        clearTimeout(timer);
        resolve(seen);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code} before ${re}:\n${seen}`));
    });
  });
}

test('posp up runs the network as processes; posp terminal drives it (PIN on stdin); Ctrl-C stops it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'posp-up-test-'));
  const up = spawn(process.execPath, [POSP_BIN, 'up', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  up.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  try {
    const out = await waitFor(up, /Ctrl-C stops the network/, 60_000);
    assert.match(out, /POSP {7}127\.0\.0\.1:[0-9]+/);
    const ok = demoCard('ok');
    const signIn = await runPosp(['terminal', 'sign-in', '--dir', dir, '--terminal', 'POS00002', '--json']);
    assert.equal(signIn.code, 0, signIn.err);
    assert.equal(JSON.parse(signIn.out).status, 'approved');
    const buy = await runPosp(
      [
        'terminal',
        'purchase',
        '--dir',
        dir,
        '--terminal',
        'POS00002',
        '--card',
        ok.pan,
        '--amount',
        '12.34',
        '--pin-stdin',
      ],
      `${ok.pin}\n`,
    );
    assert.equal(buy.code, 0, buy.err);
    assert.match(buy.out, /MERCHANT COPY/);
    assert.match(buy.out, /CARDHOLDER COPY/);
    assert.match(buy.out, /RMB 12\.34/);
    assert.match(buy.out, /622202\*{6}0015/);
    assert.doesNotMatch(buy.out, new RegExp(ok.pan));
    const wrong = await runPosp(
      [
        'terminal',
        'purchase',
        '--dir',
        dir,
        '--terminal',
        'POS00002',
        '--card',
        ok.pan,
        '--amount',
        '1',
        '--pin-stdin',
        '--json',
      ],
      '000000\n',
    );
    assert.equal(wrong.code, 1, 'declined');
    assert.equal(JSON.parse(wrong.out).responseCode, '55');
    // The PIN is never taken from argv.
    const argvPin = await runPosp([
      'terminal',
      'purchase',
      '--dir',
      dir,
      '--terminal',
      'POS00002',
      '--card',
      ok.pan,
      '--amount',
      '1',
      '--pin',
      ok.pin,
    ]);
    assert.equal(argvPin.code, 2);
    assert.match(argvPin.err, /--pin: unknown option/);
  } finally {
    const exited = new Promise<number | null>((r) => up.once('exit', (code) => r(code)));
    up.kill('SIGINT');
    assert.equal(await exited, 0, err);
  }
  for (const name of ['hsm', 'issuer-bank-a', 'issuer-bank-b', 'switch', 'posp'])
    assert.match(readFileSync(join(dir, 'logs', `${name}.out`), 'utf8'), /SIGTERM, stopping/);
});
