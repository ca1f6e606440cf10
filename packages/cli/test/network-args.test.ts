/**
 * The network commands' argument handling, without a network: exact messages for what a user can get
 * wrong (checked before any terminal, STAN or key is touched), amount parsing, the demo cards.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { DEMO_CARDS, luhnDigit, track2Of } from '../src/network/cards.js';
import { parseAmountMinor } from '../src/network/terminal-cmd.js';
import { runPosp } from './run.js';

const empty = mkdtempSync(join(tmpdir(), 'posp-args-'));

test('amounts: decimal major units to integer minor units, both ways, never a float', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 99_999_999_999 }), (minor) => {
      const text = `${Math.floor(minor / 100)}.${String(minor % 100).padStart(2, '0')}`;
      assert.equal(parseAmountMinor(text), minor);
    }),
  );
  assert.equal(parseAmountMinor('12.3'), 1230);
  assert.equal(parseAmountMinor('5'), 500);
  for (const bad of ['', '1.234', '-1', '1e3', '0.00', '12,34', ' 1'])
    assert.throws(() => parseAmountMinor(bad), { code: 'CLI_REQUEST_INVALID' });
  assert.throws(() => parseAmountMinor('0'), { message: '--amount: must be above zero' });
  assert.throws(() => parseAmountMinor('1.234'), { message: '--amount: must be an amount like 12.34' });
});

test('demo cards: Luhn-valid PANs, track 2 within ISO/IEC 7813 length, distinct PINs', () => {
  assert.equal(luhnDigit('7992739871'), '3'); // the ISO/IEC 7812-1 annex B example 79927398713
  for (const c of DEMO_CARDS) {
    assert.equal(luhnDigit(c.pan.slice(0, -1)), c.pan.at(-1), c.pan.slice(0, 6));
    assert.ok(track2Of(c).length <= 37);
  }
  assert.equal(new Set(DEMO_CARDS.map((c) => c.pin)).size, DEMO_CARDS.length);
});

const cases: { argv: string[]; stdin?: string; code: number; err: RegExp }[] = [
  { argv: ['terminal', 'purchase'], code: 2, err: /^posp terminal: --dir: is required\n/ },
  { argv: ['terminal', 'purchase', '--dir', empty], code: 2, err: /holds no network \(no network\.json/ },
  {
    argv: ['terminal', 'pay', '--dir', empty],
    code: 2,
    err: /^posp terminal: unknown terminal operation 'pay'\n/,
  },
  {
    argv: ['terminal', 'purchase', '--pin', '1234'],
    code: 2,
    err: /^posp terminal: --pin: unknown option\n/,
  },
  { argv: ['txn', 'show', '--dir', empty, '--rrn', '12'], code: 2, err: /holds no network/ },
  { argv: ['txn', 'list'], code: 2, err: /^posp txn: unknown txn subcommand 'list'\n/ },
  { argv: ['up', 'now'], code: 2, err: /^posp up: unexpected argument now\n/ },
  { argv: ['demo', '--fast'], code: 2, err: /^posp demo: --fast: unknown option\n/ },
  { argv: ['issuer', 'serve'], code: 2, err: /^posp issuer: --config: is required\n/ },
  { argv: ['switch', 'start'], code: 2, err: /^posp switch: expected `switch serve`\n/ },
  {
    argv: ['acquirer', 'serve', '--config', join(empty, 'none.json')],
    code: 1,
    err: /^posp acquirer: ACQUIRER_CONFIG_READ: config: the file cannot be read\n$/,
  },
  {
    argv: ['hsm', 'serve', '--port', '99999', '--test-lmk'],
    code: 2,
    err: /--port: must be a port number from 0 to 65535/,
  },
  {
    argv: ['hsm', 'serve', '--sealed', 'x'],
    code: 2,
    err: /give either --component FILE \(each custodian\) or --passphrase-stdin/,
  },
  { argv: ['hsm', 'audit', 'verify', join(empty, 'none.log')], code: 1, err: /no such file/ },
];

test('usage errors: exact messages, exit 2 (1 for a failure past the arguments)', async () => {
  for (const c of cases) {
    const r = await runPosp(c.argv, c.stdin ?? '');
    assert.equal(r.code, c.code, `${c.argv.join(' ')}: ${r.err}`);
    assert.match(r.err, c.err, c.argv.join(' '));
  }
});

test('help lists the network commands', async () => {
  const r = await runPosp(['help']);
  assert.equal(r.code, 0);
  for (const c of ['demo', 'up', 'terminal', 'txn', 'hsm', 'issuer', 'switch', 'acquirer'])
    assert.match(r.out, new RegExp(`^  ${c} `, 'm'));
});
