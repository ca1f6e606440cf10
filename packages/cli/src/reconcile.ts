/**
 * `posp reconcile --date YYYYMMDD --dir D [--apply] [--json]`: end-of-day reconciliation (對賬, issue 6
 * §4) of a network directory laid out by `posp up`/`posp demo` (network/setup.ts).
 *
 * 1. Each party writes its clearing file of the date into D/clearing/, from its own database (opened
 *    here; the network may be running or not): the POSP (`writeClearingFileOf` of @openposp/acquirer),
 *    the switch (its journal), every issuer (its transactions).
 * 2. @openposp/recon joins and classifies them; the mismatches are printed by class.
 * 3. With --apply, each resolution is performed where it can be:
 *    - refund: the issuer reverses its side through its own API on its database
 *      (`Issuer.reverseByIdentity`): the same decision, lock, unique key and double-entry postings as a
 *      0420 from the wire, so its ledger balances, and it is idempotent with any 0400/0420 of that
 *      identity the POSP's store and forward delivers later (that one gets the first answer). Not
 *      through the network: a 0420 needs the full PAN (field 2, routed by BIN), and no clearing record or
 *      journal holds it; and it must also work when the network is down. The POSP needs no change for
 *      these classes: its journal already has the transaction as not approved (unknown, declined,
 *      refused) or reversed, so merchant settlement already excludes it.
 *    - exclude / confirm: the POSP's to apply, through `markReconciled` of @openposp/acquirer on its
 *      database: recorded in its journal, an excluded transaction is no longer settled to the merchant
 *      and is not approved in the POSP's clearing file; a confirmed one is settled (and cleared) at the
 *      issuer's amount. Idempotent. Without --apply they are listed as `awaitingAcquirer`.
 *    Then the files are written again and reconciled again: `unexplained` lists every mismatch still
 *    to refund, exclude or confirm (must be empty) — the exit status is 1 otherwise.
 * 4. The report is written to D/reconcile-<date>.json (and printed with --json).
 *
 * No full PAN, PIN block or key is read or written here: clearing records carry masked PANs only.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ACQUIRER_MIGRATIONS,
  loadAcquirerConfig,
  markReconciled,
  writeClearingFileOf,
} from '@openposp/acquirer';
import type { HsmApi } from '@openposp/hsm';
import { Issuer, ISSUER_MIGRATIONS, loadIssuerConfig, writeIssuerClearingFile } from '@openposp/issuer';
import {
  actionable,
  checkClearingDate,
  MISMATCH_CLASSES,
  type Mismatch,
  type ReconcileResult,
  readClearingFiles,
  reconcile,
} from '@openposp/recon';
import { openStore } from '@openposp/store';
import { SwitchJournal, writeSwitchClearingFile } from '@openposp/switch';
import { describeError, parseFlags, required } from './args.js';
import { CliError } from './errors.js';
import type { Io } from './main.js';
import { type NetworkManifest, readManifest } from './network/layout.js';

const USAGE = `usage: posp reconcile --date YYYYMMDD --dir D [--apply] [--json]

  Each party (POSP, switch, every issuer) writes its clearing file of the date into D/clearing/; the
  files are compared by transaction identity and every mismatch is listed by class with its resolution
  (refund, exclude, confirm). --apply performs the refunds at the issuers and records exclude/confirm at
  the POSP (merchant settlement follows), then reconciles again. The
  report goes to D/reconcile-<date>.json. Exit status 1 when something is left unexplained after --apply.
`;

/** Refunds apply through the issuer's database: no HSM call is needed, and any would be a defect. */
const NO_HSM = new Proxy(
  {},
  {
    get: () => () =>
      Promise.reject(new CliError('CLI_INTERNAL', 'reconcile: no HSM is used to apply a refund')),
  },
) as HsmApi;

export interface AppliedResolution {
  class: Mismatch['class'];
  identity: Mismatch['identity'];
  type: Mismatch['type'];
  rrn: string;
  action: 'refund' | 'exclude' | 'confirm';
  /** Where it was applied: the issuer's id for a refund, `acquirer` for exclude/confirm. */
  issuer: string;
  /** 00 applied (or already), 25 the party has no such transaction. */
  responseCode: string;
  /** True when the issuer had already reversed it (nothing moved this time). */
  replay: boolean;
  reason: string;
}

export interface ReconcileReport {
  date: string;
  files: { party: string; path: string; records: number }[];
  before: { matched: number; mismatches: Mismatch[] };
  applied: AppliedResolution[];
  /** exclude / confirm resolutions the POSP must apply (listed without --apply; applied with it). */
  awaitingAcquirer: Mismatch[];
  after: { matched: number; mismatches: Mismatch[] } | null;
  /** After --apply: mismatches still to refund, exclude or confirm. Must be empty. */
  unexplained: Mismatch[];
  reportPath: string;
}

/** Asks every party to write its clearing file of `date` into `out`; returns what was written. */
export async function writeClearingFiles(
  m: NetworkManifest,
  date: string,
  out: string,
): Promise<{ party: string; path: string; records: number }[]> {
  const written: { party: string; path: string; records: number }[] = [];
  const pospConfig = loadAcquirerConfig(m.posp.config);
  const posp = await openStore(m.posp.database, { migrations: ACQUIRER_MIGRATIONS });
  try {
    const r = await writeClearingFileOf(posp, out, date, pospConfig.utcOffsetMinutes);
    written.push({ party: 'acquirer', path: r.path, records: r.records.length });
  } finally {
    await posp.close();
  }
  const journal = await SwitchJournal.open(m.switch.database);
  try {
    written.push({ party: 'switch', ...(await writeSwitchClearingFile(journal, { dir: out, date })) });
  } finally {
    await journal.close();
  }
  for (const i of m.issuers) {
    const cfg = loadIssuerConfig(i.config);
    const store = await openStore(i.database, { migrations: ISSUER_MIGRATIONS });
    try {
      const r = await writeIssuerClearingFile(store, {
        dir: out,
        date,
        party: i.id,
        currency: cfg.currency ?? '156',
      });
      written.push({ party: i.id, ...r });
    } finally {
      await store.close();
    }
  }
  return written;
}

/** Performs the refunds of `mismatches` at their issuers (idempotent: a second run changes nothing). */
export async function applyRefunds(
  m: NetworkManifest,
  mismatches: readonly Mismatch[],
): Promise<AppliedResolution[]> {
  const applied: AppliedResolution[] = [];
  const byIssuer = new Map<string, Mismatch[]>();
  for (const x of mismatches) {
    if (x.resolution.action !== 'refund') continue;
    const id = x.resolution.reversal.issuer;
    byIssuer.set(id, [...(byIssuer.get(id) ?? []), x]);
  }
  for (const [id, list] of byIssuer) {
    const entry = m.issuers.find((i) => i.id === id);
    if (entry === undefined)
      throw new CliError('CLI_REQUEST_INVALID', `reconcile: no issuer ${id} in the network`);
    const cfg = loadIssuerConfig(entry.config);
    const store = await openStore(entry.database, { migrations: ISSUER_MIGRATIONS });
    try {
      const issuer = await Issuer.open({
        store,
        hsm: NO_HSM,
        zpk: cfg.keys.zpk,
        zak: cfg.keys.zak,
        panTokenKey: cfg.keys.panTokenKey,
        settlementAccountId: cfg.settlementAccountId,
        ...(cfg.currency === undefined ? {} : { currency: cfg.currency }),
      });
      for (const x of list) {
        if (x.resolution.action !== 'refund') continue;
        const a = await issuer.reverseByIdentity(x.resolution.reversal.identity, {
          note: `reconciliation: ${x.class}`,
        });
        applied.push({
          class: x.class,
          identity: x.identity,
          type: x.type,
          rrn: x.rrn,
          action: 'refund',
          issuer: id,
          responseCode: a.responseCode,
          replay: a.replay,
          reason: a.reason ?? '',
        });
      }
      const audit = await issuer.auditLedger();
      if (!audit.ok)
        throw new CliError(
          'CLI_INTERNAL',
          `reconcile: issuer ${id} ledger audit fails after refunds (${audit.problems.length} problems)`,
        );
    } finally {
      await store.close();
    }
  }
  return applied;
}

/** Records the exclude / confirm resolutions of `mismatches` in the POSP's journal (idempotent). */
export async function applyAcquirerResolutions(
  m: NetworkManifest,
  mismatches: readonly Mismatch[],
): Promise<AppliedResolution[]> {
  const list = mismatches.filter(
    (x) => x.resolution.action === 'exclude' || x.resolution.action === 'confirm',
  );
  if (list.length === 0) return [];
  const applied: AppliedResolution[] = [];
  const posp = await openStore(m.posp.database, { migrations: ACQUIRER_MIGRATIONS });
  try {
    for (const x of list) {
      const r = x.resolution;
      if (r.action !== 'exclude' && r.action !== 'confirm') continue;
      const out = await markReconciled(
        posp,
        x.identity,
        r.action === 'confirm'
          ? { class: x.class, action: 'confirm', amountMinor: r.amountMinor }
          : { class: x.class, action: 'exclude' },
      );
      applied.push({
        class: x.class,
        identity: x.identity,
        type: x.type,
        rrn: x.rrn,
        action: r.action,
        issuer: 'acquirer',
        responseCode: out === 'not-found' ? '25' : '00',
        replay: out === 'already',
        reason: `reconciliation: ${x.class}${out === 'not-found' ? ' (no such transaction at the POSP)' : ''}`,
      });
    }
  } finally {
    await posp.close();
  }
  return applied;
}

const counts = (r: ReconcileResult) => ({ matched: r.matched.length, mismatches: r.mismatches });

/** The whole command as a function (tests call it; the CLI prints its result). */
export async function runReconcile(opts: {
  dir: string;
  date: string;
  apply: boolean;
}): Promise<ReconcileReport> {
  checkClearingDate(opts.date);
  const m = readManifest(opts.dir);
  const out = join(opts.dir, 'clearing');
  const files = await writeClearingFiles(m, opts.date, out);
  const before = reconcile(readClearingFiles(out, opts.date));
  const reportPath = join(opts.dir, `reconcile-${opts.date}.json`);
  const report: ReconcileReport = {
    date: opts.date,
    files,
    before: counts(before),
    applied: [],
    awaitingAcquirer: actionable(before).filter((x) => x.resolution.action !== 'refund'),
    after: null,
    unexplained: [],
    reportPath,
  };
  if (opts.apply) {
    report.applied = [
      ...(await applyRefunds(m, before.mismatches)),
      ...(await applyAcquirerResolutions(m, before.mismatches)),
    ];
    report.awaitingAcquirer = [];
    await writeClearingFiles(m, opts.date, out);
    const after = reconcile(readClearingFiles(out, opts.date));
    report.after = counts(after);
    report.unexplained = actionable(after);
  }
  writeFileSync(reportPath, `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

function line(x: Mismatch): string {
  const id = x.identity;
  const p = x.parties;
  const side = (v: { state: string; responseCode: string; amountMinor: number | null }) =>
    `${v.state}${v.responseCode ? ` ${v.responseCode}` : ''}${v.amountMinor === null ? '' : ` ${v.amountMinor}`}`;
  return (
    `  ${x.type} rrn ${x.rrn || '-'} terminal ${id.terminalId} stan ${id.stan} date ${id.localDate}: ` +
    `acquirer ${side(p.acquirer)}, switch ${side(p.switch)}, ${p.issuer.party} ${side(p.issuer)} -> ${x.resolution.action}`
  );
}

function printText(io: Io, r: ReconcileReport): void {
  const w = (s: string) => io.stdout.write(`${s}\n`);
  w(`reconcile ${r.date}`);
  for (const f of r.files) w(`  ${f.party}: ${f.records} records (${f.path})`);
  const byClass = (list: Mismatch[]) => {
    for (const cls of Object.keys(MISMATCH_CLASSES) as Mismatch['class'][]) {
      const of = list.filter((x) => x.class === cls);
      if (of.length === 0) continue;
      w(`${cls} (${of.length}, ${MISMATCH_CLASSES[cls].resolution}):`);
      for (const x of of) w(line(x));
    }
  };
  w(`matched ${r.before.matched}, mismatches ${r.before.mismatches.length}`);
  byClass(r.before.mismatches);
  for (const a of r.applied)
    w(
      `applied ${a.action} at ${a.issuer}: rrn ${a.rrn || '-'} stan ${a.identity.stan} -> ${a.responseCode}${a.replay ? ' (already reversed)' : ''}`,
    );
  if (r.awaitingAcquirer.length > 0)
    w(`awaiting the acquirer (exclude/confirm): ${r.awaitingAcquirer.length}`);
  if (r.after !== null) {
    w(
      `after: matched ${r.after.matched}, mismatches ${r.after.mismatches.length}, unexplained ${r.unexplained.length}`,
    );
    byClass(r.after.mismatches);
  }
  w(`report: ${r.reportPath}`);
}

export async function reconcileCommand(args: string[], io: Io): Promise<number> {
  if (args[0] === '--help' || args[0] === 'help') {
    io.stdout.write(USAGE);
    return 0;
  }
  try {
    const f = parseFlags(args, { values: ['date', 'dir'], switches: ['apply', 'json'] });
    if (f.positional.length > 0)
      throw new CliError('CLI_REQUEST_INVALID', `unexpected argument '${f.positional[0]}'`);
    const date = required(f, 'date');
    if (!/^\d{8}$/.test(date)) throw new CliError('CLI_REQUEST_INVALID', '--date: must be YYYYMMDD');
    const report = await runReconcile({ dir: required(f, 'dir'), date, apply: f.switches.has('apply') });
    if (f.switches.has('json')) io.stdout.write(`${JSON.stringify(report)}\n`);
    else printText(io, report);
    return report.unexplained.length > 0 ? 1 : 0;
  } catch (e) {
    io.stderr.write(`posp reconcile: ${describeError(e)}\n`);
    if (e instanceof CliError && e.code === 'CLI_REQUEST_INVALID') io.stderr.write(USAGE);
    return 2;
  }
}
