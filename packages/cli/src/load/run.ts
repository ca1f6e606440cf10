/**
 * The load run: a network directory (set up once, then reused), its HSM, issuers, switch and POSP started
 * in this process over loopback TCP from their own config files (as packages/cli/src/chaos does, without
 * fault proxies), and N simulated terminals (the real `@openposp/terminal`: PIN pad, MAC, track
 * encryption, SQLite state; one kept TCP connection each, or one per exchange with `connection`) that
 * sign in, settle any batch a reused directory left open, and then buy with PINs (after `warmupS` seconds
 * of the same load that are not counted, when given).
 *
 * Closed loop (no rate): each terminal starts its next purchase when the last one is answered.
 * Open loop (rate R/s for the whole run): purchase i is due at t0 + i/R; a free terminal takes the next
 * due slot and waits for its time; latency is measured from the slot's due time, not from when a
 * terminal got to it, so a network that falls behind shows it in the percentiles (no coordinated
 * omission). Nothing queues: a slot is only a number.
 *
 * Everything, terminals included, shares this Node process (one JavaScript thread): the figure is what
 * one core carries for the whole chain plus the terminals' own work. Except with `pospNodes`: then the
 * POSP runs as that many child processes (`posp acquirer serve`, each its own port and core), the
 * terminals spread across them (terminal k talks to node k mod N), all on one database.
 *
 * `db` (a postgres:// URL): the hosts' state (POSP, switch, each issuer) in PostgreSQL, a database each
 * (`openposp_load_posp`, `openposp_load_switch`, `openposp_load_<issuer>`), made afresh on that server
 * when the network is set up; the directory remembers them (network.json) and later runs reuse them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  type AcquirerConfig,
  type AcquirerHandle,
  loadAcquirerConfig,
  startAcquirer,
} from '@openposp/acquirer';
import { fromHex } from '@openposp/crypto';
import { createPostgresDatabase, isPostgresUrl } from '@openposp/store';
import { openSealedLmk, type RunningHsm } from '@openposp/hsm';
import { type IssuerHandle, loadIssuerConfig, startIssuer } from '@openposp/issuer';
import { loadSwitchConfigFile, startSwitch, type SwitchHandle } from '@openposp/switch';
import {
  loadTerminalConfig,
  PINPAD_SCRYPT_N_MIN,
  startTerminal,
  type Terminal,
  type TerminalConnection,
} from '@openposp/terminal';
import { CliError } from '../errors.js';
import { hasManifest, layoutOf, type NetworkManifest, readManifest } from '../network/layout.js';
import {
  type RunningNetwork,
  type ServiceProcess,
  startNetworkProcesses,
  startServiceProcess,
  stopServiceProcess,
} from '../network/processes.js';
import { DEMO_ISSUERS } from '../network/cards.js';
import { freePorts, setupNetwork } from '../network/setup.js';
import { cardOfTerminal, ensureLoadSetup, type LoadTerminal, track2OfLoadCard } from './setup.js';

/** At most this many simulated terminals. */
export const LOAD_TERMINALS_MAX = 64;
/** At most this long a run, seconds. */
export const LOAD_DURATION_MAX_S = 300;
/** At most this rate, authorizations/s (open loop). */
export const LOAD_RATE_MAX = 100_000;
/** At most this many POSP processes (`--posp-nodes`). */
export const LOAD_POSP_NODES_MAX = 16;
/** The databases `--db` makes on the server: `<prefix>_posp`, `<prefix>_switch`, `<prefix>_<issuer>`. */
export const LOAD_DATABASE_PREFIX = 'openposp_load';
/** Each purchase's amount, minor units (1.00). */
export const LOAD_AMOUNT_MINOR = 100;
/**
 * A terminal settles (0500) after this many purchases (its batch holds at most 999), and before the
 * timed run when its batch is not empty (a reused directory). Settlement time is not counted as latency.
 */
export const LOAD_SETTLE_EVERY = 200;
/** How often the progress line is refreshed, ms. */
export const LOAD_PROGRESS_MS = 1_000;

export interface LoadOptions {
  terminals: number;
  durationS: number;
  /**
   * Seconds of the same load run first and not counted (0 when undefined): Node's JIT compiles the
   * hot paths of every party over the first seconds, so short runs from cold measure compilation too.
   */
  warmupS?: number;
  /** Open loop at this many authorizations/s; closed loop when undefined. */
  rate?: number;
  /** The network directory: set up here when it holds none, reused (and extended) otherwise. */
  dir: string;
  /** Progress lines (setup) and the live line (`\r`-refreshed); none when undefined. */
  progress?: (line: string, live: boolean) => void;
  /** A postgres:// server URL: the hosts' state in PostgreSQL (see the file comment). */
  db?: string;
  /** Run the POSP as this many child processes on one database instead of in this process. */
  pospNodes?: number;
  /**
   * Every party (HSM, issuers, switch, POSP) in a child process of its own, as `posp up` runs them;
   * this process keeps only the terminals. The figures then give each process's CPU per authorization.
   */
  processes?: boolean;
  /** How each terminal holds its connection to the POSP (terminal config `connection`); default `kept`. */
  connection?: TerminalConnection;
}

/** The terminals' connection when `connection` is not given: one kept connection each. */
export const LOAD_CONNECTION_DEFAULT: TerminalConnection = 'kept';

export interface LoadResult {
  tps: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  approved: number;
  errors: number;
  /** Not approved, by outcome (declined 51, no-answer, TERMINAL_..., ...). */
  errorKinds: Record<string, number>;
  elapsedS: number;
  /** With `processes`: CPU ms per approved authorization of each service process (user + system). */
  cpuMsPerAuthByProcess?: Record<string, number>;
  /** CPU time this process used per approved authorization during the timed run, ms (user + system). */
  cpuMsPerAuth: number;
  terminals: number;
  rate?: number;
  /** Where the hosts kept their state. */
  database: 'sqlite' | 'postgres';
  /** POSP child processes, when the POSP did not run in this process. */
  pospNodes?: number;
  /** How the terminals held their connections. */
  connection: TerminalConnection;
  /** Seconds of load run before the counted run, when any. */
  warmupS?: number;
}

/** Nearest-rank percentile of sorted values (0 when empty). */
export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

const round2 = (x: number) => Math.round(x * 100) / 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Services {
  hsm: RunningHsm;
  issuers: IssuerHandle[];
  sw: SwitchHandle;
  /** The POSP in this process, or its nodes as child processes. */
  posp: AcquirerHandle | undefined;
  nodes: ServiceProcess[];
  /** The port terminal k talks to: `ports[k % ports.length]`. */
  ports: number[];
}

/** Refuses a directory whose network is running (`posp up`): this run binds the same ports. */
async function assertPortsFree(m: NetworkManifest): Promise<void> {
  const { createServer } = await import('node:net');
  for (const port of [m.hsm.port, m.posp.port, m.switch.port, ...m.issuers.map((i) => i.port)]) {
    await new Promise<void>((resolve, reject) => {
      const s = createServer();
      s.once('error', () =>
        reject(
          new CliError(
            'CLI_REQUEST_INVALID',
            `--dir: port ${port} of this network is in use (is posp up running on it? posp load starts the network itself: stop it first)`,
          ),
        ),
      );
      s.listen(port, m.host, () => s.close(() => resolve()));
    });
  }
}

async function startServices(m: NetworkManifest, hsm: RunningHsm, pospNodes?: number): Promise<Services> {
  const issuers: IssuerHandle[] = [];
  let sw: SwitchHandle | undefined;
  const nodes: ServiceProcess[] = [];
  try {
    for (const i of m.issuers) issuers.push(await startIssuer(loadIssuerConfig(i.config)));
    sw = await startSwitch(await loadSwitchConfigFile(m.switch.config));
    loadAcquirerConfig(m.posp.config);
    const pospConfig = JSON.parse(readFileSync(m.posp.config, 'utf8')) as AcquirerConfig;
    if (pospNodes === undefined) {
      const posp = await startAcquirer(pospConfig);
      return { hsm, issuers, sw, posp, nodes, ports: [posp.port] };
    }
    // Each node: the POSP's config with its own port and log, the same database, its own process.
    const ports = await freePorts(pospNodes, m.host);
    for (const [k, port] of ports.entries()) {
      const config = join(dirname(m.posp.config), `load-node-${k + 1}.json`);
      const node = {
        ...pospConfig,
        listen: { ...pospConfig.listen, port },
        logPath: join(m.logs, `posp-load-node-${k + 1}.log`),
      };
      writeFileSync(config, `${JSON.stringify(node, null, 2)}\n`, { mode: 0o600 });
      nodes.push(
        await startServiceProcess(
          `posp-load-node-${k + 1}`,
          ['acquirer', 'serve', '--config', config],
          port,
          m.host,
          m.logs,
        ),
      );
    }
    return { hsm, issuers, sw, posp: undefined, nodes, ports };
  } catch (e) {
    for (const n of nodes) await stopServiceProcess(n).catch(() => {});
    if (sw) await sw.close().catch(() => {});
    for (const i of issuers) await i.close().catch(() => {});
    throw e;
  }
}

async function openLoadTerminal(
  t: LoadTerminal,
  pospPort: number,
  connection: TerminalConnection,
): Promise<Terminal> {
  const base = loadTerminalConfig(t.config);
  const config = { ...base, posp: { ...base.posp, port: pospPort }, connection };
  const secret = fromHex(readFileSync(t.deviceSecretFile, 'utf8').trim(), 'deviceSecret');
  try {
    return await startTerminal(config, { deviceSecret: secret, pinPadScryptN: PINPAD_SCRYPT_N_MIN });
  } finally {
    secret.fill(0);
  }
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const say = (l: string) => opts.progress?.(l, false);
  const dir = layoutOf(opts.dir).dir;
  let m: NetworkManifest;
  if (hasManifest(dir)) {
    m = readManifest(dir);
    if (opts.db !== undefined && !isPostgresUrl(m.posp.database))
      throw new CliError(
        'CLI_REQUEST_INVALID',
        '--db: this directory keeps its state in SQLite files; give a new --dir (or none) with --db',
      );
    await assertPortsFree(m);
  } else {
    let databaseOf: ((service: string) => string | undefined) | undefined;
    if (opts.db !== undefined) {
      const made = new Map<string, string>();
      for (const service of ['posp', 'switch', ...DEMO_ISSUERS.map((i) => i.id)]) {
        const name = `${LOAD_DATABASE_PREFIX}_${service.replace(/-/g, '_')}`;
        made.set(service, await createPostgresDatabase(opts.db, name, { replace: true }));
      }
      say(
        `PostgreSQL: databases ${[...made.values()].map((u) => new URL(u).pathname.slice(1)).join(', ')} made afresh`,
      );
      databaseOf = (service) => made.get(service);
    }
    say(`setting up a network in ${dir} (key ceremonies, demo cards)`);
    m = await setupNetwork(dir, {
      pinPadScryptN: PINPAD_SCRYPT_N_MIN,
      ...(databaseOf ? { databaseOf } : {}),
    });
  }
  if (opts.pospNodes !== undefined && opts.pospNodes > 1 && !isPostgresUrl(m.posp.database))
    throw new CliError(
      'CLI_REQUEST_INVALID',
      '--posp-nodes: more than one POSP node needs the state in PostgreSQL (--db postgres://…)',
    );
  const lmk = openSealedLmk(m.hsm.sealed, { componentFiles: m.hsm.components });
  let services: Services | undefined;
  let network: RunningNetwork | undefined;
  const terminals: Terminal[] = [];
  try {
    const { hsm, load } = await ensureLoadSetup(dir, m, lmk, opts.terminals, say);
    let ports: number[];
    if (opts.processes) {
      // The setup's HSM (custodians' authorized state for the load TMKs) gives way to its own process.
      await hsm.stop();
      network = await startNetworkProcesses(m, say);
      ports = [m.posp.port];
    } else {
      try {
        services = await startServices(m, hsm, opts.pospNodes);
      } catch (e) {
        await hsm.stop();
        throw e;
      }
      ports = services.ports;
    }
    for (const [k, t] of load.terminals.slice(0, opts.terminals).entries())
      terminals.push(
        await openLoadTerminal(t, ports[k % ports.length]!, opts.connection ?? LOAD_CONNECTION_DEFAULT),
      );
    for (const [k, t] of terminals.entries()) {
      const r = await t.signIn();
      if (r.status !== 'approved')
        throw new CliError('CLI_INTERNAL', `sign-in of load terminal ${k + 1}: ${r.status}`);
    }
    // Each run starts from closed batches: a directory reused run after run would otherwise carry each
    // terminal's unsettled purchases over until the batch is full (TERMINAL_BATCH_FULL).
    let settled = 0;
    for (const [k, t] of terminals.entries()) {
      if ((await t.batchEntries()).length === 0) continue;
      const s = await t.settle();
      if (s.status !== 'balanced' && s.status !== 'uploaded')
        throw new CliError(
          'CLI_INTERNAL',
          `settlement of load terminal ${k + 1} before the run: ${s.status}`,
        );
      settled++;
    }
    if (settled > 0) say(`${settled} terminals settled their open batches`);
    const children = network?.services ?? [];
    if (opts.warmupS !== undefined && opts.warmupS > 0) {
      say(`${terminals.length} terminals signed in; warming up ${opts.warmupS} s (not counted)`);
      const w = await drive(terminals, { ...opts, durationS: opts.warmupS }, []);
      say(`warm-up: ${w.approved} approved, ${w.errors} errors, ${w.tps} auth/s`);
    }
    say(`${terminals.length} terminals signed in; running ${opts.durationS} s`);
    return {
      ...(await drive(terminals, opts, children)),
      ...(opts.warmupS !== undefined && opts.warmupS > 0 ? { warmupS: opts.warmupS } : {}),
      database: isPostgresUrl(m.posp.database) ? 'postgres' : 'sqlite',
      connection: opts.connection ?? LOAD_CONNECTION_DEFAULT,
      ...(opts.pospNodes !== undefined ? { pospNodes: opts.pospNodes } : {}),
    };
  } finally {
    for (const t of terminals) await t.close().catch(() => {});
    if (network) await network.stop().catch(() => {});
    if (services) {
      await services.posp?.close().catch(() => {});
      for (const n of services.nodes) await stopServiceProcess(n).catch(() => {});
      await services.sw.close().catch(() => {});
      for (const i of services.issuers) await i.close().catch(() => {});
      await services.hsm.stop().catch(() => {});
    }
    lmk.destroy();
  }
}

/** The timed part: every terminal's loop, the progress line, the figures. */
/** CPU time (user + system) a child has used, ms, from /proc/<pid>/stat (Linux); undefined elsewhere. */
export function processCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, so split after its closing parenthesis).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]); // utime, stime: fields 14 and 15 of proc(5)
    return Number.isFinite(ticks) ? (ticks * 1000) / CLOCK_TICKS_PER_S : undefined;
  } catch {
    return undefined;
  }
}

/** USER_HZ: the unit of /proc/<pid>/stat times, 100 on Linux on every architecture Node runs on. */
const CLOCK_TICKS_PER_S = 100;

async function drive(
  terminals: Terminal[],
  opts: LoadOptions,
  children: readonly ServiceProcess[] = [],
): Promise<Omit<LoadResult, 'database' | 'pospNodes' | 'connection' | 'warmupS'>> {
  const childCpu0 = children.map((c) => processCpuMs(c.child.pid));
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  let approved = 0;
  const errorKinds: Record<string, number> = {};
  const fail = (kind: string) => {
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
  };
  const record = (ms: number) => {
    if (count === latencies.length) {
      const bigger = new Float64Array(latencies.length * 2);
      bigger.set(latencies);
      latencies = bigger;
    }
    latencies[count++] = ms;
  };

  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const endAt = t0 + opts.durationS * 1000;
  let nextSlot = 0;
  const slotMs = opts.rate !== undefined ? 1000 / opts.rate : 0;

  const progress = opts.progress;
  const timer =
    progress &&
    setInterval(() => {
      const s = (performance.now() - t0) / 1000;
      const errors = Object.values(errorKinds).reduce((a, b) => a + b, 0);
      progress(
        `${s.toFixed(0)}/${opts.durationS} s  approved ${approved}  errors ${errors}  ${(approved / s).toFixed(0)} auth/s`,
        true,
      );
    }, LOAD_PROGRESS_MS);

  const loop = async (t: Terminal, k: number) => {
    const card = cardOfTerminal(k);
    const track2 = track2OfLoadCard(card);
    let sinceSettle = 0;
    for (;;) {
      let start: number;
      if (opts.rate !== undefined) {
        start = t0 + nextSlot++ * slotMs;
        if (start >= endAt) return;
        const wait = start - performance.now();
        if (wait > 0) await sleep(wait);
      } else {
        start = performance.now();
        if (start >= endAt) return;
      }
      try {
        const r = await t.purchase({ card: { track2 }, amountMinor: LOAD_AMOUNT_MINOR, pin: card.pin });
        record(performance.now() - start);
        if (r.status === 'approved') approved++;
        else fail(r.status === 'declined' ? `declined ${r.responseCode}` : r.status);
      } catch (e) {
        record(performance.now() - start);
        const code = (e as { code?: unknown }).code;
        fail(typeof code === 'string' ? code : 'exception');
      }
      if (++sinceSettle >= LOAD_SETTLE_EVERY) {
        sinceSettle = 0;
        const s = await t.settle().catch(() => undefined);
        if (!s || (s.status !== 'balanced' && s.status !== 'uploaded'))
          fail(`settlement ${s?.status ?? 'error'}`);
      }
    }
  };
  try {
    await Promise.all(terminals.map((t, k) => loop(t, k)));
  } finally {
    if (timer) clearInterval(timer);
  }
  const elapsedS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const byProcess: Record<string, number> = {};
  for (const [i, c] of children.entries()) {
    const before = childCpu0[i];
    const now = processCpuMs(c.child.pid);
    if (before !== undefined && now !== undefined && approved > 0)
      byProcess[c.name] = round2((now - before) / approved);
  }
  const sorted = latencies.subarray(0, count).sort();
  const errors = Object.values(errorKinds).reduce((a, b) => a + b, 0);
  return {
    tps: round2(approved / elapsedS),
    p50Ms: round2(percentile(sorted, 50)),
    p95Ms: round2(percentile(sorted, 95)),
    p99Ms: round2(percentile(sorted, 99)),
    approved,
    errors,
    errorKinds,
    elapsedS: round2(elapsedS),
    cpuMsPerAuth: approved === 0 ? 0 : round2((cpu.user + cpu.system) / 1000 / approved),
    ...(children.length > 0 ? { cpuMsPerAuthByProcess: byProcess } : {}),
    terminals: terminals.length,
    ...(opts.rate !== undefined ? { rate: opts.rate } : {}),
  };
}
