/**
 * `posp txn show --dir D (--rrn R | --terminal ID --stan N --date MMDD) [--json]`: the true state of one
 * transaction at every party (the seed's hotline), read from their databases; the network need not run.
 *
 * - terminal: its batch entry (approved transactions of the batch) and a pending reversal record;
 * - POSP: its journal row (state received/sent/answered/unknown/declined, response code);
 * - switch: its journal rows (outcome, issuer, response code);
 * - issuer: its transaction rows (state approved/declined/voided/refunded/reversed...), the ledger
 *   postings they made and the notifications (SMS) sent.
 *
 * Everything shown is what the databases hold: masked PANs, never a full PAN, PIN block or key.
 */
import type { HsmApi } from '@openposp/hsm';
import { openAcquirerJournal } from '@openposp/acquirer';
import { Issuer, ISSUER_MIGRATIONS } from '@openposp/issuer';
import { openSqliteStore, openStore } from '@openposp/store';
import { SwitchJournal } from '@openposp/switch';
import { TERMINAL_MIGRATIONS } from '@openposp/terminal';
import { describeError, parseFlags, required } from '../args.js';
import { CliError } from '../errors.js';
import type { Io } from '../main.js';
import { type NetworkManifest, readManifest } from './layout.js';

const USAGE = `usage: posp txn show --dir D (--rrn R | --terminal ID --stan N --date MMDD) [--json]

  The state of one transaction at the terminal, the POSP, the switch and the issuer, read from their
  databases (the network need not be running).
`;

export interface TxnReport {
  rrn: string | null;
  terminal: {
    terminalId: string;
    batchEntry: Record<string, unknown> | null;
    pendingReversal: Record<string, unknown> | null;
  } | null;
  posp: Record<string, unknown> | null;
  switch: Record<string, unknown>[];
  issuer: {
    id: string;
    transactions: Record<string, unknown>[];
    postings: { postingId: number; txnId: number; kind: string; accountId: string; amountMinor: number }[];
    notifications: Record<string, unknown>[];
    /** Its void and refunds, or its original. */
    linked: Record<string, unknown>[];
  } | null;
}

/** The issuer's inquiry needs no HSM (it reads by RRN); any HSM call would be a defect here. */
const NO_HSM = new Proxy(
  {},
  {
    get: () => () =>
      Promise.reject(new CliError('CLI_INTERNAL', 'txn show: no HSM is reachable while reading')),
  },
) as HsmApi;

export type TxnKey = { rrn: string } | { terminalId: string; stan: string; date: string };

export async function showTransaction(m: NetworkManifest, key: TxnKey): Promise<TxnReport> {
  // POSP first: it resolves a terminal identity to the RRN the other parties know the transaction by.
  const posp = await openAcquirerJournal(m.posp.database);
  let entry: Awaited<ReturnType<typeof posp.inquire>>;
  try {
    entry = await posp.inquire(
      'rrn' in key ? key.rrn : { terminalId: key.terminalId, stan: key.stan, date: key.date },
    );
  } finally {
    await posp.close();
  }
  const rrn = entry?.rrn ?? ('rrn' in key ? key.rrn : null);
  const report: TxnReport = {
    rrn,
    terminal: null,
    posp: entry ? { ...entry } : null,
    switch: [],
    issuer: null,
  };

  const terminalId = entry?.terminalId ?? ('terminalId' in key ? key.terminalId : undefined);
  const t = m.terminals.find((x) => x.terminalId === terminalId);
  if (t) {
    const store = await openSqliteStore(t.database, { migrations: TERMINAL_MIGRATIONS });
    try {
      const batch = rrn
        ? await store.get<Record<string, unknown>>(
            `SELECT batch_number, stan, txn_type, mti, processing_code, amount_minor, pan_masked, local_date,
               local_time, rrn, auth_code, response_code, original_stan, voided, created_at
             FROM batch_entries WHERE rrn = ? ORDER BY id DESC LIMIT 1`,
            [rrn],
          )
        : undefined;
      const rev = await store.get<Record<string, unknown>>(
        `SELECT stan, batch_number, txn_type, mti, amount_minor, pan_masked, local_date, reason, attempts, created_at
         FROM pending_reversals WHERE id = 1`,
      );
      const stan = Number(entry?.stan ?? ('stan' in key ? key.stan : Number.NaN));
      report.terminal = {
        terminalId: t.terminalId,
        batchEntry: batch ?? null,
        pendingReversal: rev && Number(rev.stan) === stan ? rev : null,
      };
    } finally {
      await store.close();
    }
  }

  if (rrn) {
    const sw = await SwitchJournal.open(m.switch.database);
    try {
      report.switch = (await sw.inquire({ rrn })).map((r) => ({ ...r }));
    } finally {
      await sw.close();
    }
    for (const iss of m.issuers) {
      const store = await openStore(iss.database, { migrations: ISSUER_MIGRATIONS });
      try {
        const issuer = await Issuer.open({
          store,
          hsm: NO_HSM,
          zpk: 'S',
          zak: 'S',
          panTokenKey: 'S',
          settlementAccountId: 'clearing-switch',
        });
        const txns = await issuer.inquire({ rrn });
        if (txns.length === 0) continue;
        const ids = txns.map((x) => x.id);
        const marks = ids.map(() => '?').join(',');
        // Aliases quoted: PostgreSQL folds unquoted identifiers to lower case.
        const postings = await store.all<{
          postingId: number;
          txnId: number;
          kind: string;
          accountId: string;
          amountMinor: number;
        }>(
          `SELECT p.id AS "postingId", p.txn_id AS "txnId", p.kind AS kind, e.account_id AS "accountId", e.amount_minor AS "amountMinor"
           FROM postings p JOIN ledger_entries e ON e.posting_id = p.id WHERE p.txn_id IN (${marks}) ORDER BY p.id, e.id`,
          ids,
        );
        const notifications = await store.all<Record<string, unknown>>(
          `SELECT id, txn_id AS "txnId", masked_pan AS "maskedPan", type, amount_minor AS "amountMinor", text, created_at AS "createdAt"
           FROM notifications WHERE txn_id IN (${marks}) ORDER BY id`,
          ids,
        );
        // The transactions linked to it: a purchase's void and refunds, or a void's or refund's original.
        const originals = txns.map((x) => x.originalTxnId).filter((x): x is number => x !== null);
        const linkedRrns = await store.all<{ rrn: string | null }>(
          `SELECT DISTINCT rrn FROM transactions WHERE (original_txn_id IN (${marks})${
            originals.length ? ` OR id IN (${originals.map(() => '?').join(',')})` : ''
          }) AND id NOT IN (${marks})`,
          [...ids, ...originals, ...ids],
        );
        const linked: Record<string, unknown>[] = [];
        for (const l of linkedRrns)
          if (l.rrn)
            for (const v of await issuer.inquire({ rrn: l.rrn }))
              if (!ids.includes(v.id)) linked.push({ ...v });
        report.issuer = {
          id: iss.id,
          transactions: txns.map((x) => ({ ...x })),
          postings,
          notifications,
          linked,
        };
        break;
      } finally {
        await store.close();
      }
    }
  }
  return report;
}

/** One line per party: the state each holds. */
export function describeReport(r: TxnReport): string {
  const out: string[] = [`transaction RRN ${r.rrn ?? '(none)'}`];
  const tb = r.terminal?.batchEntry;
  out.push(
    `  terminal ${r.terminal?.terminalId ?? '?'}: ${
      tb
        ? `batch ${tb.batch_number} STAN ${tb.stan} ${tb.txn_type} ${tb.amount_minor} rc ${tb.response_code}${tb.voided ? ' (voided)' : ''} card ${tb.pan_masked}`
        : 'no batch entry (not approved, or not this terminal)'
    }${r.terminal?.pendingReversal ? `; REVERSAL PENDING (reason ${r.terminal.pendingReversal.reason})` : ''}`,
  );
  const p = r.posp;
  out.push(
    `  POSP: ${p ? `${p.txnType} ${p.amountMinor ?? ''} state ${p.state} rc ${p.responseCode ?? '-'} terminal ${p.terminalId} STAN ${p.stan} date ${p.txnDate} card ${p.panMasked}${p.voidedByRrn ? ` voided by ${p.voidedByRrn}` : ''}` : 'no journal row'}`,
  );
  if (r.switch.length === 0) out.push('  switch: no journal row');
  for (const s of r.switch)
    out.push(
      `  switch: ${s.mti} outcome ${s.outcome} issuer ${s.issuerId ?? '-'} rc ${s.responseCode ?? '-'}`,
    );
  if (!r.issuer) out.push('  issuer: no transaction');
  else {
    for (const t of r.issuer.transactions)
      out.push(
        `  issuer ${r.issuer.id}: #${t.id} ${t.type} ${t.amountMinor} state ${t.state} rc ${t.responseCode} auth ${t.authCode ?? '-'} card ${t.maskedPan}`,
      );
    for (const p of r.issuer.postings)
      out.push(
        `    posting #${p.postingId} ${p.kind}: ${p.accountId} ${p.amountMinor > 0 ? '+' : ''}${p.amountMinor}`,
      );
    for (const n of r.issuer.notifications) out.push(`    notification (${n.type}): ${n.text}`);
    for (const t of r.issuer.linked)
      out.push(
        `    linked: #${t.id} ${t.type} ${t.amountMinor} RRN ${t.rrn} state ${t.state} rc ${t.responseCode}`,
      );
  }
  return `${out.join('\n')}\n`;
}

export async function txnCommand(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  try {
    if (sub === undefined || sub === 'help' || sub === '--help') {
      io.stdout.write(USAGE);
      return sub === undefined ? 2 : 0;
    }
    if (sub !== 'show') throw new CliError('CLI_REQUEST_INVALID', `unknown txn subcommand '${sub}'`);
    const f = parseFlags(rest, { values: ['dir', 'rrn', 'terminal', 'stan', 'date'], switches: ['json'] });
    const m = readManifest(required(f, 'dir'));
    const rrn = f.values.get('rrn');
    let key: TxnKey;
    if (rrn !== undefined) {
      if (f.values.has('terminal') || f.values.has('stan') || f.values.has('date'))
        throw new CliError(
          'CLI_REQUEST_INVALID',
          'give --rrn, or --terminal with --stan and --date, not both',
        );
      if (!/^[0-9]{12}$/.test(rrn)) throw new CliError('CLI_REQUEST_INVALID', '--rrn: must be 12 digits');
      key = { rrn };
    } else {
      const stan = required(f, 'stan');
      const date = required(f, 'date');
      if (!/^[0-9]{1,6}$/.test(stan))
        throw new CliError('CLI_REQUEST_INVALID', '--stan: must be 1 to 6 digits');
      if (!/^[0-9]{4}$/.test(date)) throw new CliError('CLI_REQUEST_INVALID', '--date: must be MMDD');
      key = { terminalId: required(f, 'terminal'), stan: stan.padStart(6, '0'), date };
    }
    const r = await showTransaction(m, key);
    if (f.switches.has('json')) io.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    else io.stdout.write(describeReport(r));
    return r.posp || r.issuer || r.switch.length > 0 ? 0 : 1;
  } catch (e) {
    if (e instanceof CliError && e.code === 'CLI_REQUEST_INVALID') {
      io.stderr.write(`posp txn: ${e.message}\n${USAGE}`);
      return 2;
    }
    io.stderr.write(`posp txn: ${describeError(e)}\n`);
    return 1;
  }
}
