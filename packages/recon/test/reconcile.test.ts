/**
 * Reconciliation, table-driven: each test/cases/*.json holds the clearing records of every party (the
 * keys a case leaves out take the defaults below) and the expected matches and mismatches. Each case is
 * written as real clearing files, read back with `readClearingFiles`, and reconciled. Then: every class
 * of MISMATCH_CLASSES has a case and a README row; the result does not depend on file or record order;
 * applying the resolutions to the records leaves nothing to refund, exclude or confirm; the reader's
 * error paths with exact messages.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { ReconError } from '../src/errors.js';
import { actionable, MISMATCH_CLASSES, reconcile } from '../src/reconcile.js';
import {
  type ClearingFile,
  type ClearingRecord,
  checkClearingDate,
  parseClearingFile,
  readClearingFiles,
} from '../src/record.js';

const DATE = '20261125';
const casesDir = new URL('./cases/', import.meta.url).pathname;

interface Case {
  description: string;
  files: Record<string, Partial<ClearingRecord>[]>;
  expected: { matched: [string, string, string][]; mismatches: (string | number)[][] };
}

const CODE_OF: Record<string, string> = {
  approved: '00',
  reversed: '00',
  declined: '05',
  unknown: '',
  refused: 'A0',
};

function fill(party: string, r: Partial<ClearingRecord>): ClearingRecord {
  const stan = r.stan ?? '000001';
  const state = r.state ?? 'approved';
  return {
    party,
    acquirerId: '48020000',
    terminalId: 'POS00001',
    stan,
    localDate: '1125',
    transmissionTime: `1125${stan.slice(2)}00`,
    rrn: `000000${stan}`,
    type: 'purchase',
    amountMinor: 1000,
    currency: '156',
    responseCode: CODE_OF[state]!,
    state,
    pan: '621234******0019',
    ...r,
  };
}

const cases = readdirSync(casesDir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({ name: f, c: JSON.parse(readFileSync(join(casesDir, f), 'utf8')) as Case }));

function filesOf(c: Case): ClearingFile[] {
  return Object.entries(c.files).map(([party, recs]) => ({
    party,
    records: recs.map((r) => fill(party, r)),
  }));
}

/** Writes the files as `clearing-<party>-<date>.jsonl` and reads them back the way the CLI does. */
function roundTrip(files: ClearingFile[]): ClearingFile[] {
  const dir = mkdtempSync(join(tmpdir(), 'recon-'));
  for (const f of files)
    writeFileSync(
      join(dir, `clearing-${f.party}-${DATE}.jsonl`),
      f.records.map((r) => `${JSON.stringify(r)}\n`).join(''),
    );
  writeFileSync(join(dir, `clearing-acquirer-20261124.jsonl`), 'not read: another date\n');
  return readClearingFiles(dir, DATE).map(({ party, records }) => ({ party, records }));
}

const summary = (files: ClearingFile[]) => {
  const r = reconcile(files);
  return {
    matched: r.matched.map((m) => [m.identity.stan, m.type, m.outcome]),
    mismatches: r.mismatches.map((m) => {
      const row: (string | number)[] = [m.identity.stan, m.type, m.class, m.resolution.action];
      if (m.resolution.action === 'refund') row.push(m.resolution.reversal.amountMinor);
      if (m.resolution.action === 'confirm') row.push(m.resolution.amountMinor);
      return row;
    }),
  };
};

for (const { name, c } of cases) {
  test(`case ${name}: ${c.description.slice(0, 80)}`, () => {
    const files = roundTrip(filesOf(c));
    assert.deepEqual(summary(files), c.expected);
  });
}

test('every class has a case, a resolution rule and a row in README.md', () => {
  const seen = new Set(cases.flatMap(({ c }) => c.expected.mismatches.map((m) => m[2])));
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  for (const [cls, rule] of Object.entries(MISMATCH_CLASSES)) {
    assert.ok(seen.has(cls), `no case expects ${cls}`);
    assert.match(
      readme,
      new RegExp(`\\| \`${cls}\` \\|[^\\n]*\\| ${rule.resolution} \\|`),
      `README row of ${cls}`,
    );
  }
});

test('a refund carries the reversal instruction: issuer, identity, type, amount, RRN', () => {
  const c = cases.find((x) => x.name === 'issuer-debited-acquirer-failed.json')!.c;
  const m = reconcile(filesOf(c)).mismatches[0]!;
  assert.deepEqual(m.resolution, {
    action: 'refund',
    reversal: {
      issuer: 'bank-a',
      identity: { acquirerId: '48020000', terminalId: 'POS00001', stan: '000011', localDate: '1125' },
      type: 'purchase',
      amountMinor: 1234,
      rrn: '000000000011',
    },
  });
  assert.deepEqual(m.parties.acquirer, {
    party: 'acquirer',
    state: 'unknown',
    responseCode: '',
    amountMinor: 1000,
  });
  assert.equal(m.parties.switch.responseCode, '91');
  assert.equal(m.parties.issuer.state, 'approved');
});

test('the result does not depend on the order of files or records', () => {
  const all = cases.map(({ c }) => filesOf(c));
  fc.assert(
    fc.property(fc.integer({ min: 0, max: all.length - 1 }), fc.integer(), (i, seed) => {
      const files = all[i]!;
      const rnd = fc.sample(fc.shuffledSubarray(files, { minLength: files.length }), {
        seed,
        numRuns: 1,
      })[0]!;
      const shuffled = rnd.map((f) => ({
        party: f.party,
        records: fc.sample(fc.shuffledSubarray(f.records, { minLength: f.records.length }), {
          seed: seed + 1,
          numRuns: 1,
        })[0]!,
      }));
      assert.deepEqual(summary(shuffled), summary(files));
    }),
    { numRuns: 60 },
  );
});

/**
 * The resolutions as the parties apply them: a refund makes the issuer reverse (its record reversed, a
 * reversal approved); an exclude makes the acquirer drop it from settlement (modelled as declined); a
 * confirm makes the acquirer take the issuer's amount. Afterwards nothing actionable is left.
 */
test('applying every resolution leaves nothing to refund, exclude or confirm', () => {
  for (const { name, c } of cases) {
    const files = filesOf(c);
    const result = reconcile(files);
    const fileOf = (party: string) => {
      let f = files.find((x) => x.party === party);
      if (f === undefined) {
        f = { party, records: [] };
        files.push(f);
      }
      return f;
    };
    for (const m of actionable(result)) {
      const same = (r: ClearingRecord) => r.stan === m.identity.stan && r.type === m.type;
      if (m.resolution.action === 'refund') {
        const f = fileOf(m.resolution.reversal.issuer);
        for (const r of f.records.filter(same)) r.state = 'reversed';
        f.records.push(fill(f.party, { stan: m.identity.stan, type: 'reversal', state: 'approved' }));
      } else if (m.resolution.action === 'exclude') {
        for (const r of fileOf('acquirer').records.filter(same)) r.state = 'declined';
      } else if (m.resolution.action === 'confirm') {
        const amount = m.resolution.amountMinor;
        for (const r of fileOf('acquirer').records.filter(same)) r.amountMinor = amount;
      }
    }
    assert.deepEqual(actionable(reconcile(files)), [], name);
  }
});

test('reader: each malformed record or file is RECON_FILE_INVALID naming file, line and key', () => {
  const good = fill('acquirer', {});
  const line = (o: unknown) => `${JSON.stringify(o)}\n`;
  const bad: [string, string][] = [
    ['{not json\n', 'f:1: not JSON'],
    ['[1]\n', 'f:1: must be a JSON object'],
    [line({ ...good, stan: '12' }), 'f:1.stan: must be 6 digits'],
    [line({ ...good, pan: '6212340000000019' }), 'f:1.pan: must be masked (first 6, last 4) or ""'],
    [line({ ...good, amountMinor: 10.5 }), 'f:1.amountMinor: must be a safe integer >= 0 (minor units)'],
    [line({ ...good, type: 'inquiry' }), 'f:1.type: must be one of purchase, void, refund, reversal'],
    [
      line({ ...good, state: 'pending' }),
      'f:1.state: must be one of approved, declined, reversed, unknown, refused',
    ],
    [`\n${line({ ...good, party: 'switch' })}`, "f:2.party: must be acquirer (the file's party)"],
    [`${'x'.repeat(5000)}\n`, 'f:1: line longer than 4096 bytes'],
  ];
  for (const [text, message] of bad)
    assert.throws(
      () => parseClearingFile(text, 'acquirer', 'f'),
      (e: unknown) => e instanceof ReconError && e.code === 'RECON_FILE_INVALID' && e.message === message,
    );
  for (const d of ['2026112', '20261131', '', '2026-11-25'])
    assert.throws(
      () => checkClearingDate(d),
      (e: unknown) =>
        e instanceof ReconError &&
        e.code === 'RECON_DATE_INVALID' &&
        e.message === 'date: must be a date YYYYMMDD',
    );
});
