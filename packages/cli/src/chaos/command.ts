/**
 * `posp chaos --seed N --transactions N --fault-rate R [--json] [--dir D]`: a seeded run of the whole
 * network under faults, then the auditor of docs/invariants.md. Exit 0 when every invariant holds,
 * 1 when one fails, 2 on a usage error.
 */
import type { TerminalConnection } from '@openposp/terminal';
import { connectionFlag, describeError, parseFlags } from '../args.js';
import { CliError } from '../errors.js';
import type { Io } from '../main.js';
import { CHAOS_TRANSACTIONS_MAX, type ChaosReport, runChaos } from './run.js';

const USAGE = `usage: posp chaos --seed N --transactions N --fault-rate R [--json] [--dir D]
                  [--connection per-exchange|kept]

  Sets up a fresh network (in D, default a new posp-chaos-* folder under the OS temp dir), puts a
  fault-injecting proxy on every leg, runs N transactions on three terminals with faults at rate R
  (0..1: the share of transactions that meet a drop, delay, corrupted MAC or duplicate somewhere) and
  kills and restarts of the POSP and the issuers, then the reversals, settlement and reconciliation,
  then checks the invariants of docs/invariants.md. Prints the seed to replay. Exit 1 when one fails.
  --json prints {"seed","transactions","faultsInjected","reversals","singleSided":{"found","resolved"},
  "invariants":[{"id","ok"}],"ok"} and nothing else on stdout.
  --connection: how the terminals hold their TCP connection to the POSP (terminal config
  \`connection\`): per-exchange (the default) or kept.
`;

/** Width of the progress bar, characters. */
const BAR_WIDTH = 30;

function intFlag(v: string | undefined, name: string, lo: number, hi: number): number {
  if (v === undefined) throw new CliError('CLI_REQUEST_INVALID', `--${name}: is required`);
  if (!/^[0-9]{1,16}$/.test(v) || Number(v) < lo || Number(v) > hi)
    throw new CliError('CLI_REQUEST_INVALID', `--${name}: must be an integer from ${lo} to ${hi}`);
  return Number(v);
}

export function parseChaosArgs(args: readonly string[]): {
  seed: number;
  transactions: number;
  faultRate: number;
  json: boolean;
  dir?: string;
  connection?: TerminalConnection;
  help: boolean;
} {
  const f = parseFlags(args, {
    values: ['seed', 'transactions', 'fault-rate', 'dir', 'connection'],
    switches: ['json', 'help'],
  });
  if (f.switches.has('help')) return { seed: 0, transactions: 0, faultRate: 0, json: false, help: true };
  if (f.positional.length > 0)
    throw new CliError('CLI_REQUEST_INVALID', `chaos: unexpected argument '${f.positional[0]}'`);
  const seed = intFlag(f.values.get('seed'), 'seed', 0, 0xffff_ffff);
  const transactions = intFlag(f.values.get('transactions'), 'transactions', 1, CHAOS_TRANSACTIONS_MAX);
  const r = f.values.get('fault-rate');
  if (r === undefined) throw new CliError('CLI_REQUEST_INVALID', '--fault-rate: is required');
  const faultRate = Number(r);
  if (!/^[0-9]*\.?[0-9]+$/.test(r) || !(faultRate >= 0 && faultRate <= 1))
    throw new CliError('CLI_REQUEST_INVALID', '--fault-rate: must be a number from 0 to 1');
  const dir = f.values.get('dir');
  const connection = connectionFlag(f);
  return {
    seed,
    transactions,
    faultRate,
    json: f.switches.has('json'),
    ...(dir ? { dir } : {}),
    ...(connection !== undefined ? { connection } : {}),
    help: false,
  };
}

export function jsonOf(r: ChaosReport): string {
  return JSON.stringify({
    seed: r.seed,
    transactions: r.transactions,
    faultsInjected: r.faultsInjected,
    reversals: r.reversals,
    singleSided: { found: r.singleSided.found, resolved: r.singleSided.resolved },
    invariants: r.invariants.map((x) => ({ id: x.id, ok: x.ok })),
    ok: r.ok,
  });
}

export async function chaosCommand(args: string[], io: Io): Promise<number> {
  let opts: ReturnType<typeof parseChaosArgs>;
  try {
    opts = parseChaosArgs(args);
  } catch (e) {
    io.stderr.write(`posp chaos: ${describeError(e)}\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  const err = (s: string) => io.stderr.write(`${s}\n`);
  const tty = (io.stderr as { isTTY?: boolean }).isTTY === true;
  let lastDrawn = -1;
  const progress = (done: number, total: number, faults: number) => {
    if (opts.json) return;
    const pct = Math.floor((done / total) * 100);
    if (!tty && pct === lastDrawn) return;
    if (!tty && pct % 10 !== 0 && done !== total) return;
    lastDrawn = pct;
    const fill = Math.round((done / total) * BAR_WIDTH);
    const bar = `[${'#'.repeat(fill)}${'.'.repeat(BAR_WIDTH - fill)}] ${done}/${total} ${pct}% faults ${faults}`;
    io.stderr.write(tty ? `\r${bar}${done === total ? '\n' : ''}` : `${bar}\n`);
  };
  if (!opts.json)
    err(
      `posp chaos: seed ${opts.seed} (replay: posp chaos --seed ${opts.seed} --transactions ${opts.transactions} --fault-rate ${opts.faultRate})`,
    );
  let report: ChaosReport;
  try {
    report = await runChaos({
      seed: opts.seed,
      transactions: opts.transactions,
      faultRate: opts.faultRate,
      ...(opts.dir ? { dir: opts.dir } : {}),
      ...(opts.connection ? { connection: opts.connection } : {}),
      onProgress: progress,
      say: opts.json ? () => {} : err,
    });
  } catch (e) {
    io.stderr.write(`posp chaos: ${describeError(e)}\n`);
    return 1;
  }
  if (opts.json) {
    io.stdout.write(`${jsonOf(report)}\n`);
    return report.ok ? 0 : 1;
  }
  const d = report.details;
  const lines = [
    '',
    `chaos run, seed ${report.seed}: ${report.transactions} transactions in ${(d.durationMs / 1000).toFixed(1)} s, network in ${d.dir}`,
    `faults injected: ${report.faultsInjected}; kills: ${d.kills.length ? d.kills.join(', ') : 'none'}`,
    ...Object.entries(d.faultsByKind).map(([k, n]) => `  ${k}: ${n}`),
    'outcomes:',
    ...Object.entries(d.outcomes)
      .sort()
      .map(([k, n]) => `  ${k}: ${n}`),
    `reversals at the issuers: ${report.reversals}; single-sided accounts: ${report.singleSided.found} found, ${report.singleSided.resolved} resolved`,
    'invariants:',
    ...report.invariants.map((x) => `  ${x.ok ? 'ok  ' : 'FAIL'} ${x.id}`),
    ...d.failures.flatMap((f) => f.details.map((l) => `    ${f.id}: ${l}`)),
    report.ok
      ? 'all invariants hold'
      : `INVARIANTS FAILED (replay: posp chaos --seed ${report.seed} --transactions ${report.transactions} --fault-rate ${opts.faultRate})`,
  ];
  io.stdout.write(`${lines.join('\n')}\n`);
  return report.ok ? 0 : 1;
}
