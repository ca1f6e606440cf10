/**
 * `posp issuer serve`, `posp switch serve`, `posp acquirer serve` (alias `posp posp serve`): one service
 * alone, from its JSON config file (the HSM reached over TCP at the config's `hsm: {host, port}`),
 * until SIGINT/SIGTERM, then closed cleanly (listener, links, database, HSM client).
 *
 * On start it prints one line, `posp <service>: listening on 127.0.0.1:PORT`, which `posp up` waits for.
 *
 * `--db TARGET` replaces the config's `databasePath`: a SQLite file, or a `postgres://` URL (the state in
 * PostgreSQL; several POSP or issuer processes may share one database). Put the password in PGPASSWORD
 * (or ~/.pgpass), not in the URL: other local users see command lines (`ps`).
 */
import { describeError, parseFlags, required } from './args.js';
import { CliError } from './errors.js';
import type { Io } from './main.js';
import { waitForStopSignal } from './signals.js';

export type ServiceName = 'issuer' | 'switch' | 'acquirer';

interface Running {
  port: number;
  host: string;
  close(): Promise<void>;
}

/**
 * Starts one service from its config file (also used in process by the tests). Each service's package is
 * loaded only when that service is started: a process runs one service and loads only its code.
 */
export async function startServiceFromFile(
  service: ServiceName,
  configPath: string,
  opts: { db?: string | undefined } = {},
): Promise<Running> {
  const db = opts.db === undefined ? {} : { databasePath: opts.db };
  switch (service) {
    case 'issuer': {
      const { loadIssuerConfig, startIssuer } = await import('@openposp/issuer');
      const c = loadIssuerConfig(configPath);
      const h = await startIssuer({ ...c, ...db });
      return { port: h.port, host: c.listen.host ?? '127.0.0.1', close: () => h.close() };
    }
    case 'switch': {
      const { loadSwitchConfigFile, startSwitch } = await import('@openposp/switch');
      const c = await loadSwitchConfigFile(configPath);
      const h = await startSwitch({ ...c, ...db });
      return { port: h.port, host: c.listen.host ?? '127.0.0.1', close: () => h.close() };
    }
    case 'acquirer': {
      const { loadAcquirerConfig, startAcquirer } = await import('@openposp/acquirer');
      const c = loadAcquirerConfig(configPath);
      const h = await startAcquirer({ ...c, ...db });
      return { port: h.port, host: c.listen.host ?? '127.0.0.1', close: () => h.close() };
    }
  }
}

export async function serveCommand(service: ServiceName, args: string[], io: Io): Promise<number> {
  const usage = `usage: posp ${service} serve --config FILE [--db PATH|postgres://…]\n`;
  let running: Running;
  try {
    if (args[0] !== 'serve') throw new CliError('CLI_REQUEST_INVALID', `expected \`${service} serve\``);
    const f = parseFlags(args.slice(1), { values: ['config', 'db'] });
    if (f.positional.length > 0)
      throw new CliError('CLI_REQUEST_INVALID', 'serve takes no positional argument');
    running = await startServiceFromFile(service, required(f, 'config'), { db: f.values.get('db') });
  } catch (e) {
    if (e instanceof CliError && e.code === 'CLI_REQUEST_INVALID') {
      io.stderr.write(`posp ${service}: ${e.message}\n${usage}`);
      return 2;
    }
    io.stderr.write(`posp ${service}: ${describeError(e)}\n`);
    return 1;
  }
  // Listen for the stop signal before saying "listening": a supervisor may signal at once.
  const stopped = waitForStopSignal();
  io.stdout.write(`posp ${service}: listening on ${running.host}:${running.port}\n`);
  const sig = await stopped;
  io.stdout.write(`posp ${service}: ${sig}, stopping\n`);
  try {
    await running.close();
  } catch (e) {
    io.stderr.write(`posp ${service}: close: ${describeError(e)}\n`);
    return 1;
  }
  return 0;
}
