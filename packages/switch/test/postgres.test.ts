/**
 * The switch journal on both dialects (issue 7 §1): its migration (checksums pinned), a request and its
 * answer with epoch-millisecond times (beyond 32 bits: BIGINT on PostgreSQL), inquiry by RRN and by
 * identity, the reconciliation window. One PostgreSQL per file (`@openposp/store/testing`).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { migrationChecksum } from '@openposp/store';
import { DIALECTS, type DialectName, dialectTargets } from '@openposp/store/testing';
import { SwitchJournal } from '../src/journal.js';
import { SWITCH_MIGRATIONS } from '../src/migrations.js';

const targets = dialectTargets();
after(() => targets.stop());

test('migration checksums: SQLite as released, PostgreSQL pinned', () => {
  const sum = (d: DialectName) => SWITCH_MIGRATIONS.map((m) => migrationChecksum(m, d));
  assert.deepEqual(sum('sqlite'), ['a6be7d9b6016d74a610b92810bcbb6573c6767b4ae849b9790cadc21a4c95628']);
  assert.deepEqual(sum('postgres'), ['5334134b7ad846bd14227d4f543116dcefd99488176ea9d30183cefc59edda59']);
});

for (const d of DIALECTS) {
  test(`journal: request, answer, inquiry, window [${d}]`, async () => {
    const journal = await SwitchJournal.open(await targets.fresh(d));
    try {
      const t0 = Date.UTC(2026, 10, 25, 2, 0, 0); // > 2^31: needs BIGINT on PostgreSQL
      const ids: number[] = [];
      for (let i = 0; i < 3; i++) {
        ids.push(
          await journal.recordRequest({
            receivedAtMs: t0 + i * 1000,
            mti: '0200',
            processingCode: '000000',
            acquirerId: '48020000',
            terminalId: 'TERM0001',
            merchantId: 'MERCHANT0000001',
            stan: String(i + 1).padStart(6, '0'),
            localDate: '1125',
            localTime: '100000',
            transmissionAt: '1125020000',
            rrn: `00000000000${i + 1}`,
            pan: '6222020000000015',
            amountMinor: 5_000_000_000 + i,
            currency: '156',
            hasPin: true,
          }),
        );
      }
      assert.equal(new Set(ids).size, 3);
      assert.ok(ids.every((id) => id > 0));
      await journal.recordAnswer(ids[0]!, {
        outcome: 'answered',
        responseCode: '00',
        responseMti: '0210',
        authCode: '123456',
        issuerId: 'bank-a',
        binEntry: 'routes[0]',
        forwardingId: '00010000',
        forwardedAtMs: t0 + 5,
        answeredAtMs: t0 + 42,
      });
      const [row] = await journal.inquire({ rrn: '000000000001' });
      assert.equal(row!.outcome, 'answered');
      assert.equal(row!.receivedAtMs, t0);
      assert.equal(row!.durationMs, 42);
      assert.equal(row!.amountMinor, 5_000_000_000);
      assert.equal(row!.panMasked, '622202******0015');
      assert.equal(row!.hasPin, true);
      const byId = await journal.inquire({
        acquirerId: '48020000',
        terminalId: 'TERM0001',
        stan: '000002',
        localDate: '1125',
      });
      assert.deepEqual(
        byId.map((r) => [r.id, r.outcome]),
        [[ids[1], 'pending']],
      );
      const window = await journal.between(t0 + 500, t0 + 3000);
      assert.deepEqual(
        window.map((r) => r.id),
        [ids[1], ids[2]],
      );
    } finally {
      await journal.close();
    }
  });
}
