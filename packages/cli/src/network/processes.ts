/**
 * Runs a network directory's services, each as its own child process (`posp <service> serve ...`), as
 * in production: HSM, then the issuers, the switch, the POSP. Each child's output goes to
 * logs/<name>.out; a service counts as up when it has printed its "listening on" line and its port
 * accepts a TCP connection. Stopping sends SIGTERM in reverse order and waits (bounded) for each exit.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NetworkManifest } from './layout.js';

/** How long one service may take to print its ready line. */
export const SERVICE_START_TIMEOUT_MS = 30_000;
/** How long a stopped service may take to exit before it is killed. */
export const SERVICE_STOP_TIMEOUT_MS = 10_000;
/** The last characters of a child's stderr kept for an error message. */
const STDERR_TAIL_CHARS = 2000;

/** A service did not come up (its output file says why); not a usage error. */
export class ServiceStartError extends Error {
  override name = 'ServiceStartError';
}

/** The `posp` entry point the children run (bin/posp.js, which loads the built dist). */
export const POSP_BIN = fileURLToPath(new URL('../../bin/posp.js', import.meta.url));

export interface ServiceProcess {
  name: string;
  port: number;
  child: ChildProcess;
  outFile: string;
}

export interface RunningNetwork {
  services: ServiceProcess[];
  /** Resolves with the first service that exits on its own (not by stop()). */
  unexpectedExit: Promise<{ name: string; code: number | null; signal: string | null }>;
  stop(): Promise<void>;
}

function probePort(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

/** Starts one `posp <args>` child and waits for its ready line and port (also `posp load --posp-nodes`). */
export function startServiceProcess(
  name: string,
  args: string[],
  port: number,
  host: string,
  logsDir: string,
): Promise<ServiceProcess> {
  const outFile = join(logsDir, `${name}.out`);
  const out: WriteStream = createWriteStream(outFile, { flags: 'a' });
  // Each service in its own process group: Ctrl-C at the terminal reaches `posp up` alone, which then
  // stops the services in order (POSP first, HSM last) instead of all of them racing at once.
  // OPENPOSP_CPU_PROF_DIR: each service writes a V8 CPU profile there when it exits (for `posp load
  // --processes`: where each party's time goes). NODE_OPTIONS may not carry --cpu-prof.
  const profDir = process.env.OPENPOSP_CPU_PROF_DIR;
  const nodeArgs = profDir
    ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${name}.cpuprofile`]
    : [];
  const child = spawn(process.execPath, [...nodeArgs, POSP_BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
    detached: true,
  });
  // Should this process end without stop() (an uncaught error), its services do not outlive it.
  const killOnExit = () => child.kill('SIGTERM');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
  child.once('exit', () => out.end());
  let seen = '';
  let errTail = '';
  child.stderr!.on('data', (d: Buffer) => {
    errTail = (errTail + d.toString('utf8')).slice(-STDERR_TAIL_CHARS);
  });
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new ServiceStartError(`${name}: ${why}${errTail ? `\n${errTail.trim()}` : ''}`));
    };
    const timer = setTimeout(
      () => fail(`not ready within ${SERVICE_START_TIMEOUT_MS} ms (see ${outFile})`),
      SERVICE_START_TIMEOUT_MS,
    );
    child.once('exit', (code) => fail(`exited with code ${code} before it was ready (see ${outFile})`));
    child.once('error', (e) => fail(`could not start: ${e.message}`));
    const onData = async (d: Buffer) => {
      seen += d.toString('utf8');
      if (!/listening on /.test(seen)) return;
      child.stdout!.off('data', onData);
      if (!(await probePort(host, port)))
        return fail(`printed its ready line but port ${port} does not answer`);
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      child.once('exit', () => out.end());
      resolve({ name, port, child, outFile });
    };
    child.stdout!.on('data', onData);
  });
}

/** SIGTERM, and SIGKILL after SERVICE_STOP_TIMEOUT_MS; resolves when the child has exited. */
export function stopServiceProcess(s: ServiceProcess): Promise<void> {
  return new Promise((resolve) => {
    if (s.child.exitCode !== null || s.child.signalCode !== null) return resolve();
    const timer = setTimeout(() => s.child.kill('SIGKILL'), SERVICE_STOP_TIMEOUT_MS);
    s.child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    s.child.kill('SIGTERM');
  });
}

/** Starts every service of the manifest as a child process; on any failure stops those already up. */
export async function startNetworkProcesses(
  m: NetworkManifest,
  progress: (line: string) => void = () => {},
): Promise<RunningNetwork> {
  const services: ServiceProcess[] = [];
  let stopping = false;
  const stop = async () => {
    stopping = true;
    for (const s of [...services].reverse()) await stopServiceProcess(s);
  };
  // A Ctrl-C while the services start stops those already up instead of leaving them orphaned.
  let interrupted: string | undefined;
  const onSignal = (sig: string) => {
    interrupted = sig;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const checkInterrupted = () => {
    if (interrupted) throw new ServiceStartError(`${interrupted} while starting the network`);
  };
  /** One service started, kept for stop(), and reported up. */
  const up = (s: ServiceProcess) =>
    progress(`${s.name.padEnd(13)} up on ${m.host}:${s.port} (pid ${s.child.pid})`);
  const start = async (name: string, args: string[], port: number): Promise<ServiceProcess> => {
    const s = await startServiceProcess(name, args, port, m.host, m.logs);
    services.push(s);
    return s;
  };
  try {
    const hsmArgs = [
      'hsm',
      'serve',
      '--sealed',
      m.hsm.sealed,
      '--host',
      m.host,
      '--port',
      String(m.hsm.port),
    ];
    for (const c of m.hsm.components) hsmArgs.push('--component', c);
    hsmArgs.push('--audit', m.hsm.audit);
    const hsm = await start('hsm', hsmArgs, m.hsm.port);
    checkInterrupted();
    up(hsm);
    // Started together, kept in the manifest's order.
    const issuers = await Promise.allSettled(
      m.issuers.map((i) =>
        startServiceProcess(
          `issuer-${i.id}`,
          ['issuer', 'serve', '--config', i.config],
          i.port,
          m.host,
          m.logs,
        ),
      ),
    );
    for (const r of issuers) if (r.status === 'fulfilled') services.push(r.value);
    const failed = issuers.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    for (const s of services.slice(1)) up(s);
    up(await start('switch', ['switch', 'serve', '--config', m.switch.config], m.switch.port));
    up(await start('posp', ['acquirer', 'serve', '--config', m.posp.config], m.posp.port));
    checkInterrupted();
  } catch (e) {
    await stop();
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const unexpectedExit = new Promise<{ name: string; code: number | null; signal: string | null }>(
    (resolve) => {
      for (const s of services)
        s.child.once('exit', (code, signal) => {
          if (!stopping) resolve({ name: s.name, code, signal });
        });
    },
  );
  return { services, unexpectedExit, stop };
}
