/**
 * `posp demo [--dir D] [--json]`: a short business day on a fresh network. Sets the network up (key
 * ceremonies, configs), starts HSM, two issuers, switch and POSP as child processes (as `posp up`
 * does), then on three terminals: sign-in each, purchases on both issuers, a wrong PIN (55),
 * insufficient funds (51), a balance inquiry, a void and a refund. Prints each slip and a summary table
 * (or, with --json, one JSON object and nothing else on stdout), stops the network, and leaves the
 * logs and databases in the directory it names.
 *
 * Default directory: a new folder under the OS temp dir (`openposp-demo-XXXXXX`), so that a demo never
 * writes into the clone; --dir picks another (reused if it already holds a network).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  formatAmountMinor,
  RESPONSE_CODE_LABELS,
  type Terminal,
  type TransactionResult,
} from '@openposp/terminal';
import { describeError, parseFlags, postgresUrlFlag } from '../args.js';
import { CliError } from '../errors.js';
import type { Io } from '../main.js';
import { demoCard, track2Of } from './cards.js';
import { layoutOf, type NetworkManifest } from './layout.js';
import { startNetworkProcesses } from './processes.js';
import { describeSignIn, openNetworkTerminal } from './terminal-cmd.js';
import { ensureNetwork } from './up.js';

const USAGE = `usage: posp demo [--dir D] [--json] [--db postgres://USER@HOST:PORT/DB]

  Sets up and starts a demo network (HSM, two issuers, switch, POSP as child processes), runs a short
  day on three terminals, prints each slip and a summary, stops the network. Logs and databases stay
  in the directory it prints (default: a new openposp-demo-* folder under the OS temp dir).
  --json prints {"dir","transactions":[{"terminal","type","amountMinor","responseCode","rrn"}],
  "summary":{"approved","declined"}} and nothing else on stdout.
  --db URL: the hosts keep their state in PostgreSQL, a database each created on that server (as
  posp up --db; an existing one is refused).
`;

export interface DemoTransaction {
  terminal: string;
  type: string;
  amountMinor: number;
  responseCode: string | null;
  rrn: string | null;
}

export interface DemoReport {
  dir: string;
  transactions: DemoTransaction[];
  summary: { approved: number; declined: number };
}

interface Step {
  terminal: string;
  what: string;
  run: (t: Terminal, done: TransactionResult[]) => Promise<TransactionResult>;
}

/** The day: each step names its terminal and what it shows. */
function dayOf(): Step[] {
  const ok = demoCard('ok');
  const pvv = demoCard('pvv');
  const low = demoCard('low-funds');
  const byTrack = (c: typeof ok) => ({ track2: track2Of(c) });
  return [
    {
      terminal: 'POS00001',
      what: 'purchase 12.34, Bank A card, PIN verified by IBM 3624 offset',
      run: (t) => t.purchase({ card: byTrack(ok), amountMinor: 1234, pin: ok.pin }),
    },
    {
      terminal: 'POS00002',
      what: 'purchase 88.00, Bank B card, PIN verified by Visa PVV',
      run: (t) => t.purchase({ card: byTrack(pvv), amountMinor: 8800, pin: pvv.pin }),
    },
    {
      terminal: 'POS00003',
      what: 'purchase 100.00 (refunded below)',
      run: (t) => t.purchase({ card: byTrack(ok), amountMinor: 10000, pin: ok.pin }),
    },
    {
      terminal: 'POS00001',
      what: 'purchase with a wrong PIN: 55',
      run: (t) => t.purchase({ card: byTrack(ok), amountMinor: 500, pin: wrongPin(ok.pin) }),
    },
    {
      terminal: 'POS00002',
      what: 'purchase 20.00 on a card holding 5.00: 51',
      run: (t) => t.purchase({ card: byTrack(low), amountMinor: 2000, pin: low.pin }),
    },
    {
      terminal: 'POS00001',
      what: 'balance inquiry',
      run: (t) => t.balanceInquiry({ card: byTrack(ok), pin: ok.pin }),
    },
    {
      terminal: 'POS00001',
      what: 'purchase 56.78 (voided below)',
      run: (t) => t.purchase({ card: byTrack(ok), amountMinor: 5678, pin: ok.pin }),
    },
    {
      terminal: 'POS00001',
      what: 'void of the 56.78 purchase',
      run: (t, done) => t.voidPurchase({ card: byTrack(ok), originalStan: done[6]!.stan }),
    },
    {
      terminal: 'POS00003',
      what: 'refund 30.00 of the 100.00 purchase',
      run: (t, done) =>
        t.refund({
          card: byTrack(ok),
          amountMinor: 3000,
          original: {
            rrn: done[2]!.rrn!,
            date: done[2]!.localDate,
            stan: done[2]!.stan,
            batchNumber: done[2]!.batchNumber,
          },
        }),
    },
  ];
}

/** A PIN that is surely not `pin`: each digit moved by one. */
function wrongPin(pin: string): string {
  return pin.replace(/[0-9]/g, (d) => String((Number(d) + 1) % 10));
}

/** Runs the day against a running network; `show` gets each step and its slip. */
export async function runDemoDay(
  m: NetworkManifest,
  show: (line: string) => void,
): Promise<{ results: { step: Step; result: TransactionResult }[] }> {
  const terminals = new Map<string, Terminal>();
  try {
    for (const t of m.terminals) terminals.set(t.terminalId, await openNetworkTerminal(m, t.terminalId));
    for (const [id, t] of terminals) {
      const r = await t.signIn();
      show(`${id} sign-in: ${describeSignIn(r)}`);
      if (r.status !== 'approved') throw new CliError('CLI_INTERNAL', `${id}: sign-in ${r.status}`);
    }
    const done: TransactionResult[] = [];
    const results: { step: Step; result: TransactionResult }[] = [];
    for (const step of dayOf()) {
      const t = terminals.get(step.terminal)!;
      const r = await step.run(t, done);
      done.push(r);
      results.push({ step, result: r });
      show(`=== ${step.terminal}: ${step.what}\n${t.slips(r).cardholder}\n`);
    }
    return { results };
  } finally {
    for (const t of terminals.values()) await t.close();
  }
}

export function summaryTable(results: { step: Step; result: TransactionResult }[]): string {
  const rows = results.map(({ step, result: r }) => [
    step.terminal,
    r.type,
    r.type === 'balance-inquiry' ? '' : formatAmountMinor(r.amountMinor),
    r.responseCode ?? '--',
    r.rrn ?? '',
    r.status === 'approved'
      ? 'approved'
      : `${r.status} ${RESPONSE_CODE_LABELS[r.responseCode ?? ''] ?? ''}`.trim(),
  ]);
  const head = ['terminal', 'type', 'amount', 'rc', 'rrn', 'result'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export async function demoCommand(args: string[], io: Io): Promise<number> {
  let json = false;
  try {
    const f = parseFlags(args, { values: ['dir', 'db'], switches: ['json', 'help'] });
    if (f.switches.has('help')) {
      io.stdout.write(USAGE);
      return 0;
    }
    if (f.positional.length > 0)
      throw new CliError('CLI_REQUEST_INVALID', `unexpected argument ${f.positional[0]}`);
    json = f.switches.has('json');
    const db = postgresUrlFlag(f, 'db');
    const dir = layoutOf(f.values.get('dir') ?? mkdtempSync(join(tmpdir(), 'openposp-demo-'))).dir;
    // With --json, stdout carries the JSON only; progress and slips go to stderr.
    const say = (l: string) => (json ? io.stderr : io.stdout).write(`${l}\n`);
    const started = Date.now();
    say(`openposp demo in ${dir}`);
    const m = await ensureNetwork(dir, say, db);
    const net = await startNetworkProcesses(m, say);
    let results: { step: Step; result: TransactionResult }[];
    // Ctrl-C during the day: the services (in their own process groups) are stopped before exiting.
    const onSignal = (sig: NodeJS.Signals) => {
      io.stderr.write(`posp demo: ${sig}, stopping the network\n`);
      void net.stop().then(() => process.exit(130));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      results = (await runDemoDay(m, (l) => (json ? io.stderr : io.stdout).write(`${l}\n`))).results;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await net.stop();
    }
    const approved = results.filter((r) => r.result.status === 'approved').length;
    const report: DemoReport = {
      dir,
      transactions: results.map(({ step, result: r }) => ({
        terminal: step.terminal,
        type: r.type,
        amountMinor: r.amountMinor,
        responseCode: r.responseCode ?? null,
        rrn: r.rrn ?? null,
      })),
      summary: { approved, declined: results.length - approved },
    };
    if (json) {
      io.stdout.write(`${JSON.stringify(report)}\n`);
      return 0;
    }
    io.stdout.write(
      `${summaryTable(results)}\n\napproved ${approved}, declined ${results.length - approved}; ` +
        `network stopped after ${((Date.now() - started) / 1000).toFixed(1)} s\n` +
        `logs, databases and configs: ${dir}\n` +
        `one transaction at every party:  npx posp txn show --dir ${dir} --rrn ${report.transactions[0]?.rrn ?? 'RRN'}\n` +
        `run it again and keep it up:     npx posp up --dir ${dir}\n`,
    );
    return 0;
  } catch (e) {
    if (e instanceof CliError && e.code === 'CLI_REQUEST_INVALID') {
      io.stderr.write(`posp demo: ${e.message}\n${USAGE}`);
      return 2;
    }
    io.stderr.write(`posp demo: ${describeError(e)}\n`);
    return 1;
  }
}
