import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { AuditLog, auditGenesisHash, verifyAuditLog } from '../src/audit.js';
import { HsmError } from '../src/errors.js';

const KCV = '0123456789ABCDEF';
const dir = mkdtempSync(join(tmpdir(), 'hsm-audit-'));
let n = 0;
const clock = () => {
  let t = Date.UTC(2026, 0, 1);
  return () => {
    t += 1000;
    return new Date(t);
  };
};

/** A log with genesis + 5 events; returns its path and lines. */
async function makeLog(): Promise<{ path: string; lines: string[] }> {
  const path = join(dir, `log-${++n}.jsonl`);
  const log = await AuditLog.open(path, { lmkCheckValue: KCV, now: clock() });
  for (let i = 0; i < 5; i++) {
    log.append({
      who: `host:10.0.0.${i}:4000`,
      command: 'A0',
      keyType: 'ZPK',
      checkValue: `ABCDE${i}`,
      result: '00',
    });
  }
  log.close();
  return { path, lines: readFileSync(path, 'utf8').split('\n').slice(0, -1) };
}
const write = (path: string, lines: string[], trailingNewline = true): void =>
  writeFileSync(path, lines.join('\n') + (trailingNewline ? '\n' : ''));

describe('audit log', () => {
  test('lines are JSON with the fixed fields and the chain verifies', async () => {
    const { path, lines } = await makeLog();
    assert.equal(lines.length, 6);
    const g = JSON.parse(lines[0]!);
    assert.deepEqual(Object.keys(g), ['seq', 'time', 'who', 'command', 'lmkCheckValue', 'prev', 'hash']);
    assert.equal(g.command, 'GENESIS');
    assert.equal(g.prev, auditGenesisHash(KCV));
    const e = JSON.parse(lines[1]!);
    assert.deepEqual(Object.keys(e), [
      'seq',
      'time',
      'who',
      'command',
      'keyType',
      'checkValue',
      'result',
      'prev',
      'hash',
    ]);
    assert.equal(e.time, '2026-01-01T00:00:02.000Z');
    const v = await verifyAuditLog(path, { lmkCheckValue: KCV });
    assert.equal(v.ok, true);
    assert.equal(v.ok && v.lines, 6);
  });

  test('an edited line is found at that line', async () => {
    const { path, lines } = await makeLog();
    lines[3] = lines[3]!.replace('"keyType":"ZPK"', '"keyType":"ZMK"');
    write(path, lines);
    assert.deepEqual(await verifyAuditLog(path), {
      ok: false,
      line: 4,
      reason: 'hash does not match the line (line edited)',
    });
  });

  test('an edited line with a recomputed hash is found at the next line', async () => {
    const { path, lines } = await makeLog();
    const r = JSON.parse(lines[2]!);
    r.checkValue = 'FFFFFF';
    delete r.hash;
    const { createHash } = await import('node:crypto');
    r.hash = createHash('sha256').update(JSON.stringify(r)).digest('hex');
    lines[2] = JSON.stringify(r);
    write(path, lines);
    assert.deepEqual(await verifyAuditLog(path), {
      ok: false,
      line: 4,
      reason: 'prev does not match the SHA-256 of line 3 (a line was deleted, reordered or edited)',
    });
  });

  test('a deleted line is found where the sequence breaks', async () => {
    const { path, lines } = await makeLog();
    lines.splice(2, 1);
    write(path, lines);
    assert.deepEqual(await verifyAuditLog(path), {
      ok: false,
      line: 3,
      reason: 'sequence number is 4, expected 3',
    });
  });

  test('two swapped lines are found at the first of them', async () => {
    const { path, lines } = await makeLog();
    [lines[3], lines[4]] = [lines[4]!, lines[3]!];
    write(path, lines);
    assert.deepEqual(await verifyAuditLog(path), {
      ok: false,
      line: 4,
      reason: 'sequence number is 5, expected 4',
    });
  });

  test('a truncated last line is found at that line', async () => {
    const { path, lines } = await makeLog();
    lines[5] = lines[5]!.slice(0, 40);
    write(path, lines, false);
    assert.deepEqual(await verifyAuditLog(path), {
      ok: false,
      line: 6,
      reason: 'does not end with a newline (truncated)',
    });
    write(path, lines, true);
    assert.deepEqual(await verifyAuditLog(path), { ok: false, line: 6, reason: 'is not JSON' });
  });

  test('lines removed at the end are found against the anchored last hash', async () => {
    const { path, lines } = await makeLog();
    const full = await verifyAuditLog(path);
    assert.ok(full.ok);
    write(path, lines.slice(0, 4));
    assert.equal((await verifyAuditLog(path)).ok, true);
    assert.deepEqual(await verifyAuditLog(path, { expectLastHash: full.lastHash }), {
      ok: false,
      line: 5,
      reason: 'the log ends before the anchored last line (lines removed at the end)',
    });
  });

  test('the genesis is bound to the LMK check value', async () => {
    const { path, lines } = await makeLog();
    assert.deepEqual(await verifyAuditLog(path, { lmkCheckValue: 'FFFFFFFFFFFFFFFF' }), {
      ok: false,
      line: 1,
      reason: 'genesis is bound to another LMK check value',
    });
    write(path, lines.slice(1));
    assert.deepEqual(await verifyAuditLog(path), {
      ok: false,
      line: 1,
      reason: 'sequence number is 2, expected 1',
    });
  });

  test('a reformatted (non-canonical) line is refused', async () => {
    const { path, lines } = await makeLog();
    lines[2] = lines[2]!.replace('{"seq":3,', '{"seq": 3,');
    write(path, lines);
    assert.deepEqual(await verifyAuditLog(path), {
      ok: false,
      line: 3,
      reason: 'is not in the canonical form the writer makes',
    });
  });

  test('an empty log is refused', async () => {
    const path = join(dir, 'empty.jsonl');
    writeFileSync(path, '');
    assert.deepEqual(await verifyAuditLog(path), {
      ok: false,
      line: 1,
      reason: 'the log is empty (no genesis record)',
    });
  });

  test('reopening continues the chain; a broken log is not reopened', async () => {
    const { path, lines } = await makeLog();
    const log = await AuditLog.open(path, { lmkCheckValue: KCV });
    assert.equal(log.lines, 6);
    log.append({ who: 'console', command: 'AUTH_EXIT', result: '00' });
    log.close();
    const v = await verifyAuditLog(path);
    assert.equal(v.ok && v.lines, 7);
    await assert.rejects(AuditLog.open(path, { lmkCheckValue: 'FFFFFFFFFFFFFFFF' }), (e: unknown) => {
      assert.ok(e instanceof HsmError);
      assert.equal(e.code, 'HSM_AUDIT_BROKEN');
      assert.equal(e.message, 'audit line 1: genesis is bound to another LMK check value');
      return true;
    });
    write(path, lines.slice(0, 3).concat(lines.slice(4)));
    await assert.rejects(
      AuditLog.open(path, { lmkCheckValue: KCV }),
      /audit line 4: sequence number is 5, expected 4/,
    );
  });

  test('events admit identifiers only: no field can carry a key', async () => {
    const log = await AuditLog.open(join(dir, 'strict.jsonl'), { lmkCheckValue: KCV });
    const bad: [Record<string, unknown>, string][] = [
      [{ who: 'x', command: 'A0', key: '0123' }, 'event.key: is not an audit field'],
      [{ command: 'A0' }, 'event.who: must be 1-64 printable characters without spaces'],
      [{ who: 'a b', command: 'A0' }, 'event.who: must be 1-64 printable characters without spaces'],
      [{ who: 'x', command: 'a0' }, 'event.command: must be 1-32 of A-Z, 0-9, _ and .'],
      [
        { who: 'x', command: 'A0', checkValue: '0123456789ABCDEF0123456789ABCDEF' },
        'event.checkValue: must be 1-16 upper-case hex digits',
      ],
      [{ who: 'x', command: 'A0', keyType: 'zpk' }, 'event.keyType: must be 1-8 of A-Z and 0-9'],
      [{ who: 'x', command: 'A0', result: '0' }, 'event.result: must be 2 characters of 0-9 and A-Z'],
    ];
    for (const [event, message] of bad) {
      assert.throws(
        () => log.append(event as never),
        (e: unknown) => e instanceof HsmError && e.code === 'HSM_AUDIT_EVENT' && e.message === message,
        message,
      );
    }
    log.close();
  });
});
