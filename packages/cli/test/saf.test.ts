/**
 * `posp saf list|retry|drop --dir D`: the POSP's store-and-forward queue read from the network
 * directory's POSP database (the network need not run). The database is a real POSP database with
 * advices queued through @openposp/acquirer's SafQueue.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ACQUIRER_MIGRATIONS, SafQueue } from '@openposp/acquirer';
import { openSqliteStore } from '@openposp/store';
import { runPosp } from './run.js';

let dir: string;
const PAN = '6225881234567890';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'posp-saf-'));
  mkdirSync(join(dir, 'posp'));
  const database = join(dir, 'posp', 'posp.sqlite');
  writeFileSync(
    join(dir, 'network.json'),
    JSON.stringify({ format: 'openposp-network', version: 1, posp: { database } }),
  );
  const store = await openSqliteStore(database, { migrations: ACQUIRER_MIGRATIONS });
  const q = new SafQueue(store);
  const fields = { 4: '000000001234', 11: '000042', 37: '000000000042', 41: '10000001' };
  for (const rrn of ['000000000042', '000000000043'])
    await q.enqueue(
      {
        originalRrn: rrn,
        source: 'posp',
        reason: '98',
        // What PanVault.seal stores (the list never opens it); the PAN itself is nowhere in the row.
        panSealed: `v1:${'0'.repeat(32)}:${'A'.repeat(32)}`,
        panMasked: '622588******7890',
        fields,
      },
      '2026-11-25T02:00:00.000Z',
    );
  await q.expire(2, 12, 'no-answer-NET_TIMEOUT', '2026-11-25T03:00:00.000Z');
  await store.close();
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('list: every advice, masked PAN only; --state operator; --json', async () => {
  const all = await runPosp(['saf', 'list', '--dir', dir]);
  assert.equal(all.code, 0, all.err);
  const lines = all.out.trimEnd().split('\n');
  assert.equal(lines.length, 3);
  assert.match(
    lines[0]!,
    /^id\s+state\s+source\s+reason\s+attempts\s+rrn\s+pan\s+amountMinor\s+nextAt\s+last$/,
  );
  assert.match(
    lines[1]!,
    /^1\s+pending\s+posp\s+98\s+0\s+000000000042\s+622588\*{6}7890\s+1234\s+2026-11-25T02:00:00.000Z$/,
  );
  assert.match(lines[2]!, /^2\s+operator\s+posp\s+98\s+12\s+000000000043\s+.*no-answer-NET_TIMEOUT$/);
  assert.equal(all.out.includes(PAN), false);
  const op = await runPosp(['saf', 'list', '--dir', dir, '--state', 'operator', '--json']);
  const items = JSON.parse(op.out) as { id: number; state: string; pan?: string }[];
  assert.deepEqual(
    items.map((i) => [i.id, i.state]),
    [[2, 'operator']],
  );
  assert.equal(op.out.includes(PAN), false);
});

test('retry and drop an operator advice; a wrong id or state is refused with usage', async () => {
  const r = await runPosp(['saf', 'retry', '--dir', dir, '--id', '2', '--json']);
  assert.equal(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out).state, 'pending');
  assert.equal(JSON.parse(r.out).attempts, 0);
  const d = await runPosp(['saf', 'drop', '--dir', dir, '--id', '2']);
  assert.equal(d.code, 0, d.err);
  assert.match(d.out, /^2\s+dropped/m);
  const again = await runPosp(['saf', 'drop', '--dir', dir, '--id', '2']);
  assert.equal(again.code, 1);
  assert.equal(
    again.err,
    'posp saf: ACQUIRER_SAF_ITEM_UNKNOWN: id: no operator or pending advice with this id\n',
  );
  const bad = await runPosp(['saf', 'list', '--dir', dir, '--state', 'lost']);
  assert.equal(bad.code, 2);
  assert.match(
    bad.err,
    /^posp saf: --state: must be one of pending, operator, done, dropped\nusage: posp saf list/,
  );
  const noId = await runPosp(['saf', 'retry', '--dir', dir, '--id', 'x']);
  assert.equal(noId.code, 2);
  assert.match(noId.err, /^posp saf: --id: must be a positive integer\n/);
  const noDir = await runPosp(['saf', 'list', '--dir', join(dir, 'nowhere')]);
  assert.equal(noDir.code, 2);
});
