import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { verifyAuditLog } from '../src/audit.js';
import { serveHsm } from '../src/ceremony.js';
import { HsmClient } from '../src/client.js';
import { HSM_ERROR_CODES, HSM_REPLY_BY_CODE } from '../src/errors.js';
import { createTestLmk } from '../src/lmk.js';

test('docs/hsm.md lists every HSM error code with its reply, and no other', () => {
  const doc = readFileSync(new URL('../../../docs/hsm.md', import.meta.url), 'utf8');
  const rows = new Map(
    [...doc.matchAll(/^\|\s*`(HSM_[A-Z_]+)`\s*\|\s*([^|]+)\|/gm)].map((m) => [m[1]!, m[2]!.trim()]),
  );
  assert.deepEqual([...rows.keys()].sort(), Object.keys(HSM_ERROR_CODES).sort());
  for (const [code, reply] of Object.entries(HSM_REPLY_BY_CODE)) {
    assert.ok(rows.get(code)!.startsWith(reply!), `${code}: doc says ${rows.get(code)}, code says ${reply}`);
  }
});

test('serveHsm: the CLI entry point serves the commands and audits them', async () => {
  const auditPath = join(mkdtempSync(join(tmpdir(), 'hsm-serve-')), 'audit.jsonl');
  const lmk = createTestLmk({ allowTestLmk: true, warn: () => {} });
  const running = await serveHsm({ lmk, port: 0, auditPath, maxConnections: 4 });
  const c = await HsmClient.connect('127.0.0.1', running.address.port);
  assert.equal((await c.nc()).lmkCheckValue, lmk.checkValue);
  const k = await c.a0({ keyType: 'TPK', algorithm: 'A', keyLengthBytes: 16 });
  await c.close();
  await running.stop();
  const v = await verifyAuditLog(auditPath, { lmkCheckValue: lmk.checkValue });
  assert.ok(v.ok && v.lines === 2);
  const last = JSON.parse(readFileSync(auditPath, 'utf8').trim().split('\n')[1]!);
  assert.deepEqual(
    [last.command, last.keyType, last.checkValue, last.result],
    ['A0', 'TPK', k.checkValue, '00'],
  );
  assert.match(last.who, /^host:/);
});
