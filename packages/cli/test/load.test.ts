/**
 * `posp load`: the argument bounds, the percentile rule, and a short real run (2 terminals, 2 s) over
 * the whole chain in process, asserting the JSON shape, approvals, no errors and ordered percentiles.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseLoadArgs } from '../src/load/command.js';
import { LOAD_DURATION_MAX_S, LOAD_TERMINALS_MAX, percentile } from '../src/load/run.js';
import { runPosp } from './run.js';

test('posp load: bounds on --terminals, --duration and --rate are named errors', async () => {
  const cases: [string[], string][] = [
    [['--duration', '2'], 'posp load: --terminals: is required\n'],
    [
      ['--terminals', String(LOAD_TERMINALS_MAX + 1), '--duration', '2'],
      `posp load: --terminals: must be an integer from 1 to ${LOAD_TERMINALS_MAX}\n`,
    ],
    [
      ['--terminals', '2', '--duration', String(LOAD_DURATION_MAX_S + 1)],
      `posp load: --duration: must be an integer from 1 to ${LOAD_DURATION_MAX_S}\n`,
    ],
    [
      ['--terminals', '2', '--duration', '2', '--rate', '0'],
      'posp load: --rate: must be an integer from 1 to 100000\n',
    ],
    [['--terminals', '2', '--duration', '2', '--bogus'], 'posp load: --bogus: unknown option\n'],
    [
      ['--terminals', '2', '--duration', '2', '--db', 'x.sqlite'],
      'posp load: --db: must be a postgres:// or postgresql:// URL\n',
    ],
    [
      ['--terminals', '2', '--duration', '2', '--posp-nodes', '0'],
      'posp load: --posp-nodes: must be an integer from 1 to 16\n',
    ],
    [
      ['--terminals', '2', '--duration', '2', '--posp-nodes', '2'],
      'posp load: --posp-nodes: more than one POSP node needs --db postgres://…\n',
    ],
    [
      ['--terminals', '2', '--duration', '2', '--posp-nodes', '1', '--processes'],
      'posp load: --processes runs one POSP process: it does not take --posp-nodes\n',
    ],
    [
      ['--terminals', '2', '--duration', '2', '--warmup', '-1'],
      `posp load: --warmup: must be an integer from 0 to ${LOAD_DURATION_MAX_S}\n`,
    ],
    [
      ['--terminals', '2', '--duration', '2', '--connection', 'long'],
      'posp load: --connection: must be per-exchange or kept\n',
    ],
  ];
  for (const [args, err] of cases) {
    const r = await runPosp(['load', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.err, err);
    assert.equal(r.out, '');
  }
  assert.deepEqual(parseLoadArgs(['--terminals', '3', '--duration', '5', '--rate', '50', '--json']), {
    terminals: 3,
    durationS: 5,
    rate: 50,
    json: true,
  });
  assert.deepEqual(parseLoadArgs(['--terminals', '3', '--duration', '5', '--connection', 'per-exchange']), {
    terminals: 3,
    durationS: 5,
    json: false,
    connection: 'per-exchange',
  });
});

test('percentile: nearest rank', () => {
  const xs = Float64Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(xs, 50), 50);
  assert.equal(percentile(xs, 95), 95);
  assert.equal(percentile(xs, 99), 99);
  assert.equal(percentile(xs, 100), 100);
  assert.equal(percentile([7], 99), 7);
  assert.equal(percentile([], 50), 0);
});

test('posp load --terminals 2 --duration 2 --json: the whole chain, approvals, no errors', async () => {
  const r = await runPosp(['load', '--terminals', '2', '--duration', '2', '--json']);
  assert.equal(r.err, '', 'no progress line with --json');
  assert.equal(r.code, 0);
  const lines = r.out.trim().split('\n');
  assert.equal(lines.length, 1);
  const j = JSON.parse(lines[0]!) as Record<string, number>;
  assert.deepEqual(Object.keys(j), ['tps', 'p50Ms', 'p95Ms', 'p99Ms', 'approved', 'errors']);
  for (const v of Object.values(j)) assert.equal(typeof v, 'number');
  assert.ok(j.approved! > 0, 'approved > 0');
  assert.equal(j.errors, 0);
  assert.ok(j.tps! > 0);
  assert.ok(j.p50Ms! > 0 && j.p50Ms! <= j.p95Ms! && j.p95Ms! <= j.p99Ms!, 'p50 <= p95 <= p99');
});

test('posp load --processes: every party in its own process, the CPU each one used per authorization; a reused --dir settles open batches first', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'openposp-load-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = await runPosp(['load', '--terminals', '2', '--duration', '2', '--processes', '--dir', dir]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^posp {8}every party in its own process, state in SQLite$/m);
  const line = /^ {12}(.*) ms per authorization \(service processes\)$/m.exec(r.out);
  assert.ok(line, r.out);
  const byProcess = Object.fromEntries(
    line[1]!.split(', ').map((kv) => {
      const [k, v] = kv.split(' ');
      return [k, Number(v)];
    }),
  );
  assert.deepEqual(Object.keys(byProcess), ['hsm', 'issuer-bank-a', 'issuer-bank-b', 'switch', 'posp']);
  // Every service worked for every authorization: none of them can have used no CPU at all.
  for (const [k, v] of Object.entries(byProcess)) assert.ok(v > 0, `${k}: ${v}`);
  assert.match(r.out, /^errors {6}0$/m);
  assert.match(r.out, /connection kept$/m);
  // The same directory again: both terminals' purchases of the first run are still in open batches.
  const again = await runPosp([
    'load',
    '--terminals',
    '2',
    '--duration',
    '1',
    '--warmup',
    '1',
    '--connection',
    'per-exchange',
    '--dir',
    dir,
  ]);
  assert.equal(again.code, 0, again.err);
  assert.match(again.err, /^2 terminals settled their open batches$/m);
  assert.match(again.out, /after 1 s of warm-up, connection per-exchange$/m);
  assert.match(again.err, /^warm-up: \d+ approved, 0 errors/m);
  assert.match(again.out, /^errors {6}0$/m);
});
