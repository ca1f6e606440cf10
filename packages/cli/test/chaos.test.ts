/**
 * `posp chaos`: the argument rules, a clean run (no faults: every invariant must hold, which proves the
 * auditor does not cry wolf), and a short seeded run under faults and kills in CI asserting the JSON
 * shape and every invariant M1-M8 (the money invariants under faults rely on the automatic reversals,
 * store and forward and reconciliation of issue 6).
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { jsonOf, parseChaosArgs } from '../src/chaos/command.js';
import { runChaos } from '../src/chaos/run.js';
import { main } from '../src/main.js';

const IDS = [
  'M1-card-balance-issuer-books',
  'M2-card-balance-terminal-slips',
  'M3-holds-resolved',
  'M4-issuer-ledger-balances',
  'M5-no-double-debit',
  'M6-merchant-settlement',
  'M7-no-single-sided-account',
  'M8-reversals-delivered',
];

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => {
    out += d;
  });
  stderr.on('data', (d) => {
    err += d;
  });
  const code = await main(args, { stdin: new PassThrough(), stdout, stderr });
  return { code, out, err };
}

test('arguments: each bad value is refused with its exact message, exit 2', async () => {
  const cases: [string[], string][] = [
    [['--transactions', '10', '--fault-rate', '0.1'], '--seed: is required'],
    [
      ['--seed', 'x', '--transactions', '10', '--fault-rate', '0.1'],
      '--seed: must be an integer from 0 to 4294967295',
    ],
    [
      ['--seed', '1', '--transactions', '0', '--fault-rate', '0.1'],
      '--transactions: must be an integer from 1 to 1000000',
    ],
    [['--seed', '1', '--transactions', '10'], '--fault-rate: is required'],
    [
      ['--seed', '1', '--transactions', '10', '--fault-rate', '1.5'],
      '--fault-rate: must be a number from 0 to 1',
    ],
    [
      ['--seed', '1', '--transactions', '10', '--fault-rate', '-1'],
      '--fault-rate: must be a number from 0 to 1',
    ],
  ];
  for (const [args, msg] of cases) {
    assert.throws(() => parseChaosArgs(args), { message: msg });
    const r = await run(['chaos', ...args]);
    assert.equal(r.code, 2);
    assert.equal(r.out, '');
    assert.ok(r.err.includes(msg), r.err);
  }
  assert.deepEqual(parseChaosArgs(['--seed', '3', '--transactions', '5', '--fault-rate', '.25', '--json']), {
    seed: 3,
    transactions: 5,
    faultRate: 0.25,
    json: true,
    help: false,
  });
  assert.throws(
    () =>
      parseChaosArgs(['--seed', '3', '--transactions', '5', '--fault-rate', '.1', '--connection', 'long']),
    { message: '--connection: must be per-exchange or kept' },
  );
  assert.equal(
    parseChaosArgs(['--seed', '3', '--transactions', '5', '--fault-rate', '.1', '--connection', 'kept'])
      .connection,
    'kept',
  );
});

test('no faults: every invariant holds (the auditor does not cry wolf); --json prints exactly the shape', async () => {
  const r = await run(['chaos', '--seed', '11', '--transactions', '60', '--fault-rate', '0', '--json']);
  assert.equal(r.err, '', 'nothing on stderr with --json (no progress bar)');
  const lines = r.out.trim().split('\n');
  assert.equal(lines.length, 1);
  const j = JSON.parse(lines[0]!);
  assert.deepEqual(Object.keys(j), [
    'seed',
    'transactions',
    'faultsInjected',
    'reversals',
    'singleSided',
    'invariants',
    'ok',
  ]);
  assert.deepEqual(Object.keys(j.singleSided), ['found', 'resolved']);
  assert.equal(j.seed, 11);
  assert.equal(j.transactions, 60);
  assert.equal(j.faultsInjected, 0);
  assert.deepEqual(
    j.invariants.map((x: { id: string }) => x.id),
    IDS,
  );
  for (const x of j.invariants) assert.deepEqual(Object.keys(x), ['id', 'ok']);
  assert.deepEqual(
    j.invariants.filter((x: { ok: boolean }) => !x.ok),
    [],
  );
  assert.equal(j.ok, true);
  assert.equal(r.code, 0);
});

let short: ReturnType<typeof runChaos> | undefined;
/** One short seeded run shared by the tests below: 300 transactions, seed 6, 10% faults, kills. */
const shortRun = () => {
  short ??= runChaos({ seed: 6, transactions: 300, faultRate: 0.1 });
  return short;
};
const failureOf = async (id: string) =>
  (await shortRun()).details.failures.find((f) => f.id === id)?.details.join('; ') ?? '';

test('a short chaos run (300 transactions, seed 6, 10% faults, kills): the JSON shape, faults, kills', async () => {
  const report = await shortRun();
  const j = JSON.parse(jsonOf(report));
  assert.deepEqual(Object.keys(j), [
    'seed',
    'transactions',
    'faultsInjected',
    'reversals',
    'singleSided',
    'invariants',
    'ok',
  ]);
  assert.equal(j.seed, 6);
  assert.equal(j.transactions, 300);
  assert.ok(j.faultsInjected > 0, 'faults were injected');
  assert.ok(report.details.kills.length >= 1, 'a service was killed and restarted');
  const total = Object.values(report.details.outcomes).reduce((s, n) => s + n, 0);
  assert.equal(total, 300, 'every transaction ran to an outcome');
  assert.deepEqual(
    j.invariants.map((x: { id: string }) => x.id),
    IDS,
  );
  assert.equal(
    j.ok,
    j.invariants.every((x: { ok: boolean }) => x.ok),
  );
});

// What must hold under any fault: the issuers' own books, holds, the ledger, no double debit, and (with
// the automatic reversals, the POSP's store and forward and reconcile --apply of issue 6) what the
// terminals were told, the merchants' settlement, no single-sided account, every reversal delivered.
for (const id of IDS) {
  test(`short chaos run: ${id} holds`, async () => {
    const r = await shortRun();
    assert.equal(r.invariants.find((x) => x.id === id)?.ok, true, `${id}: ${await failureOf(id)}`);
  });
}

test('a chaos run with kept terminal connections (200 transactions, seed 9, 10% faults, kills): every invariant holds', async () => {
  const r = await runChaos({ seed: 9, transactions: 200, faultRate: 0.1, connection: 'kept' });
  assert.ok(r.faultsInjected > 0, 'faults were injected');
  assert.deepEqual(
    r.details.failures.map((f) => `${f.id}: ${f.details.join('; ')}`),
    [],
  );
  assert.equal(r.ok, true);
});
