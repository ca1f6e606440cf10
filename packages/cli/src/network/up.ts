/**
 * `posp up [--dir D]`: sets the network up in D when it holds none (key ceremonies, configs), starts
 * HSM, issuers, switch and POSP each as its own process, prints where everything is and the test
 * cards, runs until SIGINT/SIGTERM (Ctrl-C), then stops them all.
 */
import { basename } from 'node:path';
import { createPostgresDatabase, isPostgresUrl } from '@openposp/store';
import { formatAmountMinor } from '@openposp/terminal';
import { describeError, parseFlags, postgresUrlFlag } from '../args.js';
import { CliError } from '../errors.js';
import type { Io } from '../main.js';
import { waitForStopSignal } from '../signals.js';
import { DEMO_CARDS } from './cards.js';
import { hasManifest, layoutOf, type NetworkManifest, readManifest } from './layout.js';
import { startNetworkProcesses } from './processes.js';
import { DEMO_ISSUERS } from './cards.js';
import { setupNetwork } from './setup.js';

export const UP_DIR_DEFAULT = 'openposp-network';

const USAGE = `usage: posp up [--dir D] [--db postgres://USER@HOST:PORT/DB]

  Sets up a demo network in D (default ./${UP_DIR_DEFAULT}) unless it holds one, starts the HSM, two
  issuers, the switch and the POSP, each as its own process, and keeps them running until Ctrl-C.
  Drive it with \`posp terminal ... --dir D\`; inspect one transaction with \`posp txn show --dir D\`.
  --db URL: when the network is set up, the hosts (POSP, switch, each issuer) keep their state in
  PostgreSQL, a database each on that server (openposp_<D's name>_posp, _switch, _bank_a, _bank_b,
  created; an existing one is refused, never replaced; the URL's user needs CREATEDB). Give the
  password in PGPASSWORD, not in the URL (ps shows command lines). A D already set up keeps its own.
`;

/** The PostgreSQL database names of a network set up in `dir` (`--db`): one per host. */
export function upDatabaseNames(dir: string): Map<string, string> {
  const base = basename(layoutOf(dir).dir)
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .slice(0, 32);
  const names = new Map<string, string>();
  for (const service of ['posp', 'switch', ...DEMO_ISSUERS.map((i) => i.id)])
    names.set(service, `openposp_${base}_${service.replace(/-/g, '_')}`);
  return names;
}

/**
 * Reads the manifest of D, or sets a network up there first: with `db` (a postgres:// URL), the hosts'
 * databases are created on that server (never replaced: an existing one is an error).
 */
export async function ensureNetwork(
  dir: string,
  progress: (l: string) => void,
  db?: string,
): Promise<NetworkManifest> {
  if (hasManifest(dir)) {
    const m = readManifest(dir);
    if (db !== undefined && !isPostgresUrl(m.posp.database))
      progress(`note: ${layoutOf(dir).dir} was set up with SQLite files; --db applies to a new network only`);
    return m;
  }
  progress(`setting up a new network in ${layoutOf(dir).dir}`);
  let databaseOf: ((service: string) => string | undefined) | undefined;
  if (db !== undefined) {
    const made = new Map<string, string>();
    for (const [service, name] of upDatabaseNames(dir)) {
      made.set(service, await createPostgresDatabase(db, name));
      progress(`  PostgreSQL database ${name} created for ${service}`);
    }
    databaseOf = (service) => made.get(service);
  }
  return setupNetwork(dir, { progress: (l) => progress(`  ${l}`), ...(databaseOf ? { databaseOf } : {}) });
}

export function describeNetwork(m: NetworkManifest, dir: string): string {
  const lines = [
    `network directory  ${layoutOf(dir).dir}`,
    `  HSM        ${m.host}:${m.hsm.port}   LMK check value ${m.hsm.lmkCheckValue}, audit ${m.hsm.audit}`,
    ...m.issuers.map((i) => `  issuer     ${m.host}:${i.port}   ${i.id} (${i.name}), ${i.database}`),
    `  switch     ${m.host}:${m.switch.port}   routing ${m.switch.routing}, ${m.switch.database}`,
    `  POSP       ${m.host}:${m.posp.port}   terminals ${m.posp.terminals}, ${m.posp.database}`,
    ...m.terminals.map(
      (t) => `  terminal   ${t.terminalId}  merchant ${t.merchantId} ${t.merchantName}, ${t.config}`,
    ),
    `  logs       ${m.logs}`,
    'test cards (demo data):',
    ...DEMO_CARDS.map(
      (c) =>
        `  ${c.pan}  exp ${c.expiry}  PIN ${c.pin.padEnd(6)}  ${c.issuer ?? '-'}  ${c.role === 'unknown-bin' ? '' : `${formatAmountMinor(c.balanceMinor)}  `}${c.note}`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}

export async function upCommand(args: string[], io: Io): Promise<number> {
  try {
    const f = parseFlags(args, { values: ['dir', 'db'], switches: ['help'] });
    if (f.switches.has('help')) {
      io.stdout.write(USAGE);
      return 0;
    }
    if (f.positional.length > 0)
      throw new CliError('CLI_REQUEST_INVALID', `unexpected argument ${f.positional[0]}`);
    const dir = f.values.get('dir') ?? UP_DIR_DEFAULT;
    const db = postgresUrlFlag(f, 'db');
    const say = (l: string) => io.stdout.write(`${l}\n`);
    const m = await ensureNetwork(dir, say, db);
    const net = await startNetworkProcesses(m, say);
    io.stdout.write(describeNetwork(m, dir));
    const d = layoutOf(dir).dir;
    io.stdout.write(
      `\nrunning. Try:\n  npx posp terminal sign-in --dir ${d} --terminal POS00001\n` +
        `  echo 123456 | npx posp terminal purchase --dir ${d} --terminal POS00001 --card ${DEMO_CARDS[0]!.pan} --amount 12.34 --pin-stdin\n` +
        'Ctrl-C stops the network.\n',
    );
    const ended = await Promise.race([
      waitForStopSignal().then((s) => ({ signal: s })),
      net.unexpectedExit.then((x) => ({ exit: x })),
    ]);
    if ('exit' in ended) {
      io.stderr.write(
        `posp up: ${ended.exit.name} exited (code ${ended.exit.code}, signal ${ended.exit.signal}); stopping the network\n`,
      );
      await net.stop();
      return 1;
    }
    io.stdout.write(`${ended.signal}: stopping the network\n`);
    await net.stop();
    io.stdout.write('stopped\n');
    return 0;
  } catch (e) {
    if (e instanceof CliError && e.code === 'CLI_REQUEST_INVALID') {
      io.stderr.write(`posp up: ${e.message}\n`);
      return 2;
    }
    io.stderr.write(`posp up: ${describeError(e)}\n`);
    return 1;
  }
}
