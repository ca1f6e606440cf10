/**
 * `posp load --terminals N --duration S [--rate R] [--json] [--dir D] [--db URL] [--posp-nodes N]`: simulated terminals doing the
 * whole chain over loopback TCP (sign-in, then 1.00 purchases with PINs) against the network started
 * in this process (see run.ts), a live progress line on stderr, then the figures.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectionFlag, describeError, parseFlags, postgresUrlFlag, required } from '../args.js';
import { CliError } from '../errors.js';
import type { Io } from '../main.js';
import {
  LOAD_DATABASE_PREFIX,
  LOAD_DURATION_MAX_S,
  LOAD_POSP_NODES_MAX,
  LOAD_RATE_MAX,
  LOAD_TERMINALS_MAX,
  type LoadOptions,
  type LoadResult,
  runLoad,
} from './run.js';

const USAGE = `usage: posp load --terminals N --duration S [--rate R] [--json] [--dir D]
                 [--db postgres://USER@HOST:PORT/DB] [--posp-nodes N] [--processes]
                 [--connection kept|per-exchange] [--warmup S]

  Starts the network (HSM, two issuers, switch, POSP) in this process over loopback TCP and drives it
  with N simulated terminals (1..${LOAD_TERMINALS_MAX}) for S seconds (1..${LOAD_DURATION_MAX_S}): each signs in,
  then buys 1.00 with its own load card and PIN, back to back (closed loop), or at R authorizations/s
  for the whole run (open loop, 1..${LOAD_RATE_MAX}; latency counted from each purchase's due time).
  Prints throughput (approved authorizations/s), p50/p95/p99 latency (ms), approvals and errors;
  --json prints {"tps":x,"p50Ms":x,"p95Ms":x,"p99Ms":x,"approved":n,"errors":n} only.
  --dir D: a network directory to set up once and reuse (load terminals and cards are added to it);
  it must not be running (posp up): this command binds its ports itself. Without --dir, a temporary
  directory is set up and removed.
  --db URL: the hosts' state (POSP, switch, issuers) in PostgreSQL: when the network is set up, the
  databases ${LOAD_DATABASE_PREFIX}_posp, _switch, _bank_a, _bank_b are made afresh on that server (the
  URL's user needs CREATEDB); a --dir set up with --db keeps using them. Give the password in
  PGPASSWORD, not in the URL (ps shows command lines).
  --posp-nodes N: the POSP as N child processes (1..${LOAD_POSP_NODES_MAX}), each its own port, on one database;
  terminal k talks to node k mod N. More than one needs --db.
  --processes: every party (HSM, issuers, switch, POSP) in a process of its own, as posp up runs
  them; this process keeps the terminals. Also prints each process's CPU ms per authorization.
  --connection: how each terminal holds its TCP connection to the POSP: kept (the default: one long
  connection, as LAN/IP terminals do) or per-exchange (a new one for every exchange, as dial-up and
  GPRS terminals do).
  --warmup S: run the same load S seconds first (0..${LOAD_DURATION_MAX_S}), not counted: Node compiles
  each party's hot paths over the first seconds, so a short run from cold measures compilation too.
`;

function intFlag(v: string, name: string, min: number, max: number): number {
  const n = Number(v);
  if (!/^[0-9]{1,9}$/.test(v) || n < min || n > max)
    throw new CliError('CLI_REQUEST_INVALID', `--${name}: must be an integer from ${min} to ${max}`);
  return n;
}

export interface LoadArgs extends Omit<LoadOptions, 'dir' | 'progress'> {
  json: boolean;
  dir?: string;
}

export function parseLoadArgs(args: string[]): LoadArgs | 'help' {
  const f = parseFlags(args, {
    values: ['terminals', 'duration', 'rate', 'dir', 'db', 'posp-nodes', 'connection', 'warmup'],
    switches: ['json', 'help', 'processes'],
  });
  if (f.switches.has('help')) return 'help';
  if (f.positional.length > 0)
    throw new CliError('CLI_REQUEST_INVALID', `unexpected argument ${f.positional[0]}`);
  const rate = f.values.get('rate');
  const dir = f.values.get('dir');
  const db = postgresUrlFlag(f, 'db');
  const nodes = f.values.get('posp-nodes');
  const connection = connectionFlag(f);
  const warmup = f.values.get('warmup');
  const pospNodes = nodes === undefined ? undefined : intFlag(nodes, 'posp-nodes', 1, LOAD_POSP_NODES_MAX);
  if (pospNodes !== undefined && f.switches.has('processes'))
    throw new CliError(
      'CLI_REQUEST_INVALID',
      '--processes runs one POSP process: it does not take --posp-nodes',
    );
  if (pospNodes !== undefined && pospNodes > 1 && db === undefined && dir === undefined)
    throw new CliError(
      'CLI_REQUEST_INVALID',
      '--posp-nodes: more than one POSP node needs --db postgres://…',
    );
  return {
    terminals: intFlag(required(f, 'terminals'), 'terminals', 1, LOAD_TERMINALS_MAX),
    durationS: intFlag(required(f, 'duration'), 'duration', 1, LOAD_DURATION_MAX_S),
    ...(rate !== undefined ? { rate: intFlag(rate, 'rate', 1, LOAD_RATE_MAX) } : {}),
    json: f.switches.has('json'),
    ...(dir !== undefined ? { dir } : {}),
    ...(db !== undefined ? { db } : {}),
    ...(pospNodes !== undefined ? { pospNodes } : {}),
    ...(f.switches.has('processes') ? { processes: true } : {}),
    ...(connection !== undefined ? { connection } : {}),
    ...(warmup !== undefined ? { warmupS: intFlag(warmup, 'warmup', 0, LOAD_DURATION_MAX_S) } : {}),
  };
}

/** The --json line: exactly these six keys, in this order. */
export function jsonOfLoad(r: LoadResult): string {
  const { tps, p50Ms, p95Ms, p99Ms, approved, errors } = r;
  return JSON.stringify({ tps, p50Ms, p95Ms, p99Ms, approved, errors });
}

export function textOfLoad(r: LoadResult): string {
  const kinds = Object.entries(r.errorKinds)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  return [
    `terminals   ${r.terminals}, ${r.rate !== undefined ? `open loop at ${r.rate}/s` : 'closed loop'}, ${r.elapsedS} s${r.warmupS ? ` after ${r.warmupS} s of warm-up` : ''}, connection ${r.connection}`,
    `posp        ${r.cpuMsPerAuthByProcess ? 'every party in its own process' : r.pospNodes === undefined ? 'in this process' : `${r.pospNodes} node${r.pospNodes > 1 ? 's' : ''} (processes)`}, state in ${r.database === 'postgres' ? 'PostgreSQL' : 'SQLite'}`,
    `throughput  ${r.tps} authorizations/s (approved)`,
    `latency     p50 ${r.p50Ms} ms  p95 ${r.p95Ms} ms  p99 ${r.p99Ms} ms`,
    `cpu         ${r.cpuMsPerAuth} ms per authorization (this process, user + system)`,
    ...(r.cpuMsPerAuthByProcess
      ? [
          `            ${Object.entries(r.cpuMsPerAuthByProcess)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')} ms per authorization (service processes)`,
        ]
      : []),
    `approved    ${r.approved}`,
    `errors      ${r.errors}${kinds ? ` (${kinds})` : ''}`,
    '',
  ].join('\n');
}

export async function loadCommand(args: string[], io: Io): Promise<number> {
  let temp: string | undefined;
  try {
    const a = parseLoadArgs(args);
    if (a === 'help') {
      io.stdout.write(USAGE);
      return 0;
    }
    if (a.dir === undefined) temp = mkdtempSync(join(tmpdir(), 'posp-load-'));
    const dir = a.dir ?? join(temp!, 'network');
    let live = false;
    const r = await runLoad({
      terminals: a.terminals,
      durationS: a.durationS,
      ...(a.rate !== undefined ? { rate: a.rate } : {}),
      ...(a.db !== undefined ? { db: a.db } : {}),
      ...(a.pospNodes !== undefined ? { pospNodes: a.pospNodes } : {}),
      ...(a.processes ? { processes: true } : {}),
      ...(a.connection !== undefined ? { connection: a.connection } : {}),
      ...(a.warmupS !== undefined ? { warmupS: a.warmupS } : {}),
      dir,
      ...(a.json
        ? {}
        : {
            progress: (line: string, isLive: boolean) => {
              if (isLive) io.stderr.write(`\r${line}\x1b[K`);
              else io.stderr.write(`${live ? '\n' : ''}${line}\n`);
              live = isLive;
            },
          }),
    });
    if (live) io.stderr.write('\n');
    io.stdout.write(a.json ? `${jsonOfLoad(r)}\n` : textOfLoad(r));
    return r.errors === 0 ? 0 : 1;
  } catch (e) {
    if (e instanceof CliError && e.code === 'CLI_REQUEST_INVALID') {
      io.stderr.write(`posp load: ${e.message}\n`);
      return 2;
    }
    io.stderr.write(`posp load: ${describeError(e)}\n`);
    return 1;
  } finally {
    if (temp) rmSync(temp, { recursive: true, force: true });
  }
}
