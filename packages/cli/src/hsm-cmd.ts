/**
 * `posp hsm`: the LMK ceremony, the HSM server, the audit log check (issue 4 §1, §5).
 *
 *   posp hsm component new --out FILE
 *   posp hsm init (--component FILE --component FILE [...] | --prompt [--components N])
 *                 [--sealed FILE] [--passphrase-stdin] [--audit FILE]
 *   posp hsm serve --sealed FILE (--component FILE... | --passphrase-stdin) [--host H] [--port N] [--audit FILE]
 *   posp hsm serve --test-lmk [--host H] [--port N]
 *   posp hsm audit verify FILE [--lmk-check-value CV]
 *
 * No component, passphrase or key is ever printed or taken from argv: components come from files
 * (one per custodian) or stdin, a passphrase from stdin. Check values are printed so that custodians
 * can confirm what they entered.
 */
import { closeSync, existsSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { fromHex } from '@openposp/crypto';
import {
  AuditLog,
  createTestLmk,
  formLmk,
  initLmkFromComponentFiles,
  LMK_BYTES,
  type Lmk,
  type LmkComponent,
  lmkComponentCheckValue,
  openSealedLmk,
  sealLmk,
  serveHsm,
  verifyAuditLog,
  writeLmkComponentFile,
} from '@openposp/hsm';
import { describeError, parseFlags, portFlag, readAll, required } from './args.js';
import { CliError } from './errors.js';
import type { Io } from './main.js';
import { waitForStopSignal } from './signals.js';

export const HSM_PORT_DEFAULT = 1500;

const USAGE = `usage: posp hsm component new --out FILE
       posp hsm init (--component FILE --component FILE [...] | --prompt [--components N])
                     [--sealed FILE] [--passphrase-stdin] [--audit FILE]
       posp hsm serve --sealed FILE (--component FILE... | --passphrase-stdin)
                      [--host H] [--port N] [--audit FILE]
       posp hsm serve --test-lmk [--host H] [--port N]
       posp hsm audit verify FILE [--lmk-check-value CV]

  component new  one custodian's LMK component, written to a new file (mode 0600); prints its check value
  init           the LMK ceremony: forms the LMK from 2 to 9 components (files, or typed on stdin with
                 --prompt, one 64-hex line each), seals it to --sealed (default lmk.sealed) under the
                 components or, with --passphrase-stdin, under a passphrase (the last stdin line);
                 prints the LMK check value
  serve          unseals the LMK and serves payShield-framed host commands on --port (default ${HSM_PORT_DEFAULT})
                 until SIGINT/SIGTERM; --test-lmk uses the fixed, publicly known test LMK (never with real keys)
  audit verify   checks the hash chain of an audit log; names the first broken line (exit 1)
`;

export async function hsmCommand(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case 'component':
        return await componentCommand(rest, io);
      case 'init':
        return await initCommand(rest, io);
      case 'serve':
        return await serveCommand(rest, io);
      case 'audit':
        return await auditCommand(rest, io);
      case undefined:
      case 'help':
      case '--help':
        io.stdout.write(USAGE);
        return sub === undefined ? 2 : 0;
      default:
        io.stderr.write(`posp hsm: unknown subcommand '${sub}'\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof CliError && e.code === 'CLI_REQUEST_INVALID') {
      io.stderr.write(`posp hsm: ${e.message}\n${USAGE}`);
      return 2;
    }
    io.stderr.write(`posp hsm: ${describeError(e)}\n`);
    return 1;
  }
}

async function componentCommand(args: string[], io: Io): Promise<number> {
  const f = parseFlags(args, { values: ['out'] });
  if (f.positional[0] !== 'new' || f.positional.length !== 1)
    throw new CliError('CLI_REQUEST_INVALID', 'component: expected `component new --out FILE`');
  const out = required(f, 'out');
  if (existsSync(out)) throw new CliError('CLI_REQUEST_INVALID', `--out: ${out} already exists`);
  const cv = writeLmkComponentFile(out);
  io.stdout.write(`component written to ${out}\ncheck value  ${cv}\n`);
  return 0;
}

/** Lines of stdin, each trimmed, without empty lines. */
async function stdinLines(io: Io): Promise<string[]> {
  const text = await readAll(io.stdin as AsyncIterable<Buffer>, 8192);
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

async function initCommand(args: string[], io: Io): Promise<number> {
  const f = parseFlags(args, {
    values: ['sealed', 'audit', 'components', 'who'],
    lists: ['component'],
    switches: ['prompt', 'passphrase-stdin'],
  });
  const sealedPath = f.values.get('sealed') ?? 'lmk.sealed';
  if (existsSync(sealedPath))
    throw new CliError('CLI_REQUEST_INVALID', `--sealed: ${sealedPath} already exists (never overwritten)`);
  const files = f.lists.get('component') ?? [];
  const prompt = f.switches.has('prompt');
  const auditPath = f.values.get('audit');
  const who = f.values.get('who') ?? 'console';
  if (prompt === files.length > 0)
    throw new CliError('CLI_REQUEST_INVALID', 'give either --component FILE (2 or more) or --prompt');
  if (!prompt) {
    if (files.length < 2)
      throw new CliError('CLI_REQUEST_INVALID', '--component: at least 2 component files (dual control)');
    let passphrase: string | undefined;
    if (f.switches.has('passphrase-stdin')) passphrase = await readPassphrase(io);
    const r = await initLmkFromComponentFiles({
      componentFiles: files,
      sealWith: passphrase === undefined ? 'components' : { passphrase },
      sealedPath,
      ...(auditPath ? { auditPath } : {}),
      who,
    });
    io.stdout.write(`sealed LMK written to ${sealedPath}\nLMK check value  ${r.lmkCheckValue}\n`);
    return 0;
  }
  // Interactive: each custodian types a component (64 hex) on its own line; the last line is the
  // passphrase the LMK is sealed under (there are no component files to seal it under).
  if (!f.switches.has('passphrase-stdin'))
    throw new CliError(
      'CLI_REQUEST_INVALID',
      '--prompt needs --passphrase-stdin (no component files to seal under)',
    );
  const n = Number(f.values.get('components') ?? '2');
  if (!Number.isInteger(n) || n < 2 || n > 9)
    throw new CliError('CLI_REQUEST_INVALID', '--components: must be 2 to 9');
  io.stderr.write(`enter ${n} components (64 hex digits each, one per line), then the passphrase\n`);
  const lines = await stdinLines(io);
  if (lines.length !== n + 1)
    throw new CliError('CLI_REQUEST_INVALID', `stdin: expected ${n} component lines and a passphrase line`);
  const components: LmkComponent[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const c = fromHexComponent(lines[i]!, `component ${i + 1}`);
      const cv = lmkComponentCheckValue(c);
      components.push({ component: c, checkValue: cv });
      io.stderr.write(`component ${i + 1} check value  ${cv}\n`);
    }
    const r = await sealComponents(components, { passphrase: lines[n]! }, sealedPath, auditPath, who);
    io.stdout.write(`sealed LMK written to ${sealedPath}\nLMK check value  ${r}\n`);
    return 0;
  } finally {
    for (const c of components) c.component.fill(0);
  }
}

async function sealComponents(
  components: LmkComponent[],
  secret: { passphrase: string },
  sealedPath: string,
  auditPath: string | undefined,
  who: string,
): Promise<string> {
  const lmk = formLmk(components);
  try {
    writeSealedFile(sealedPath, sealLmk(lmk, secret));
    if (auditPath !== undefined) {
      const audit = await AuditLog.open(auditPath, { lmkCheckValue: lmk.checkValue });
      audit.append({ who, command: 'LMK_FORM', checkValue: lmk.checkValue, result: '00' });
      audit.close();
    }
    return lmk.checkValue;
  } finally {
    lmk.destroy();
  }
}

/** A component typed at the console: exactly LMK_BYTES of hex (the message names the line, never its text). */
function fromHexComponent(text: string, field: string): Uint8Array {
  if (!new RegExp(`^[0-9A-Fa-f]{${LMK_BYTES * 2}}$`).test(text))
    throw new CliError('CLI_REQUEST_INVALID', `${field}: must be ${LMK_BYTES * 2} hex digits`);
  return fromHex(text, field);
}

/** The sealed LMK goes to a new file (never overwritten), mode 0600, fsync'ed. */
function writeSealedFile(path: string, sealed: unknown): void {
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(sealed, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

async function readPassphrase(io: Io): Promise<string> {
  const lines = await stdinLines(io);
  if (lines.length !== 1) throw new CliError('CLI_REQUEST_INVALID', 'stdin: expected one passphrase line');
  return lines[0]!;
}

async function serveCommand(args: string[], io: Io): Promise<number> {
  const f = parseFlags(args, {
    values: ['sealed', 'host', 'port', 'audit', 'key-cache'],
    lists: ['component'],
    switches: ['test-lmk', 'passphrase-stdin'],
  });
  const host = f.values.get('host') ?? '127.0.0.1';
  const port = portFlag(f, 'port', HSM_PORT_DEFAULT);
  let lmk: Lmk;
  if (f.switches.has('test-lmk')) {
    if (f.values.has('sealed') || f.lists.has('component'))
      throw new CliError('CLI_REQUEST_INVALID', '--test-lmk: takes no --sealed or --component');
    lmk = createTestLmk({
      allowTestLmk: true,
      warn: (line) => io.stderr.write(`\n${'!'.repeat(78)}\n${line}\n${'!'.repeat(78)}\n\n`),
    });
  } else {
    const sealed = required(f, 'sealed');
    const files = f.lists.get('component') ?? [];
    const byPassphrase = f.switches.has('passphrase-stdin');
    if (byPassphrase === files.length > 0)
      throw new CliError(
        'CLI_REQUEST_INVALID',
        'give either --component FILE (each custodian) or --passphrase-stdin',
      );
    lmk = byPassphrase
      ? openSealedLmk(sealed, { passphrase: await readPassphrase(io) })
      : openSealedLmk(sealed, { componentFiles: files });
  }
  const auditPath = f.values.get('audit');
  const running = await serveHsm({
    lmk,
    port,
    host,
    ...(auditPath ? { auditPath } : {}),
    onError: (e, c) => io.stderr.write(`posp hsm: internal error in ${c.command}: ${describeError(e)}\n`),
  });
  // Listen for the stop signal before saying "listening": a supervisor may signal at once.
  const stopped = waitForStopSignal();
  io.stdout.write(
    `posp hsm: listening on ${host}:${running.address.port} (LMK check value ${lmk.checkValue})\n`,
  );
  const sig = await stopped;
  io.stdout.write(`posp hsm: ${sig}, stopping\n`);
  await running.stop();
  lmk.destroy();
  return 0;
}

async function auditCommand(args: string[], io: Io): Promise<number> {
  const f = parseFlags(args, { values: ['lmk-check-value'] });
  if (f.positional[0] !== 'verify' || f.positional.length !== 2)
    throw new CliError('CLI_REQUEST_INVALID', 'audit: expected `audit verify FILE`');
  const path = f.positional[1]!;
  if (!existsSync(path)) {
    io.stderr.write(`posp hsm audit: ${path}: no such file\n`);
    return 1;
  }
  const cv = f.values.get('lmk-check-value');
  const r = await verifyAuditLog(path, cv ? { lmkCheckValue: cv } : {});
  if (r.ok) {
    io.stdout.write(`ok: ${r.lines} lines, chain intact (last hash ${r.lastHash})\n`);
    return 0;
  }
  io.stdout.write(`broken: line ${r.line}: ${r.reason}\n`);
  return 1;
}
