/**
 * `posp crypto`: the payment-crypto calculator.
 *
 *   posp crypto <family> [verb] --field value ... [--json]
 *   posp crypto batch            JSON Lines requests on stdin, one JSON result per line, in order
 *
 * Options map to request fields (`--key-type` -> `keyType`), so a subcommand and a batch line
 * run the same code (crypto-ops.ts).
 */
import { isCryptoError } from '@openposp/crypto';
import { CliError } from './errors.js';
import { OPS, runCryptoRequest } from './crypto-ops.js';
import type { Io } from './main.js';

/** The longest batch line accepted; a longer one gets CLI_LINE_TOO_LONG and the batch goes on. */
export const BATCH_MAX_LINE_BYTES = 1 << 20;

function usage(): string {
  const lines = [
    'usage: posp crypto <operation> [--field value ...] [--json]',
    '       posp crypto batch < requests.jsonl',
    '',
    'operations:',
  ];
  for (const [name, def] of Object.entries(OPS)) {
    lines.push(`  ${name.replace('.', ' ').padEnd(18)} ${def.summary}`, `  ${''.padEnd(18)}   ${def.fields}`);
  }
  lines.push(
    '',
    'Hex in either case; upper case out. Keys and PINs on a command line are visible to other',
    'local users (ps): prefer `batch` with a file or pipe for real keys.',
    '',
  );
  return lines.join('\n');
}

function camel(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** An error as the batch and the command line show it. */
export function errorObject(e: unknown): { code: string; message: string } {
  if (e instanceof CliError || isCryptoError(e)) return { code: e.code, message: e.message };
  const message = e instanceof Error ? e.message : String(e);
  return { code: 'CLI_INTERNAL', message };
}

function formatReadable(result: Record<string, string>): string {
  const width = Math.max(...Object.keys(result).map((k) => k.length));
  return `${Object.entries(result)
    .map(([k, v]) => `${k.padEnd(width)}  ${v}`)
    .join('\n')}\n`;
}

export async function cryptoCommand(argv: string[], io: Io): Promise<number> {
  const [family, ...rest] = argv;
  if (family === undefined || family === '--help' || family === '-h' || family === 'help') {
    io.stdout.write(usage());
    return family === undefined ? 2 : 0;
  }
  if (family === 'batch') return batch(io);

  let op = family;
  let args = rest;
  const verb = rest[0];
  if (verb !== undefined && !verb.startsWith('-') && Object.hasOwn(OPS, `${family}.${verb}`)) {
    op = `${family}.${verb}`;
    args = rest.slice(1);
  } else if (!Object.hasOwn(OPS, family)) {
    const only = Object.keys(OPS).filter((k) => k.startsWith(`${family}.`));
    if (only.length === 1) op = only[0]!;
  }
  if (!Object.hasOwn(OPS, op)) {
    io.stderr.write(
      `posp crypto: unknown operation '${[family, verb].filter(Boolean).join(' ')}'\n\n${usage()}`,
    );
    return 2;
  }
  const req: Record<string, unknown> = { op };
  let json = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json') json = true;
    else if (a === '--help' || a === '-h') {
      io.stdout.write(`posp crypto ${op.replace('.', ' ')}: ${OPS[op]!.summary}\n  ${OPS[op]!.fields}\n`);
      return 0;
    } else if (a.startsWith('--') && a.length > 2) {
      const eq = a.indexOf('=');
      if (eq > 0) req[camel(a.slice(2, eq))] = a.slice(eq + 1);
      else {
        const v = args[i + 1];
        if (v === undefined) {
          io.stderr.write(`posp crypto: option ${a} needs a value\n`);
          return 2;
        }
        req[camel(a.slice(2))] = v;
        i++;
      }
    } else {
      io.stderr.write(`posp crypto: unexpected argument at position ${i + 1}; options are --name value\n`);
      return 2;
    }
  }
  try {
    const result = runCryptoRequest(req);
    io.stdout.write(json ? `${JSON.stringify(result)}\n` : formatReadable(result));
    return 0;
  } catch (e) {
    const err = errorObject(e);
    if (json) io.stdout.write(`${JSON.stringify({ error: err })}\n`);
    else io.stderr.write(`posp crypto: ${err.code}: ${err.message}\n`);
    return 1;
  }
}

/** One batch line's answer; `ok` is false when it is an error object. */
function answer(line: string): { text: string; ok: boolean } {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return {
      text: JSON.stringify({ error: { code: 'CLI_JSON_INVALID', message: 'request: not valid JSON' } }),
      ok: false,
    };
  }
  try {
    return { text: JSON.stringify(runCryptoRequest(req)), ok: true };
  } catch (e) {
    return { text: JSON.stringify({ error: errorObject(e) }), ok: false };
  }
}

/**
 * JSON Lines in, JSON Lines out, in order. Blank lines are skipped; a line longer than
 * BATCH_MAX_LINE_BYTES is answered with CLI_LINE_TOO_LONG without being buffered whole.
 * Exit code 0 when every line succeeded, 1 when any line got an error.
 */
async function batch(io: Io): Promise<number> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let overlong = false;
  let failed = false;
  const emit = async ({ text, ok }: { text: string; ok: boolean }) => {
    if (!ok) failed = true;
    if (!io.stdout.write(`${text}\n`)) await new Promise((r) => io.stdout.once('drain', r));
  };
  const endLine = async () => {
    if (overlong) {
      const error = {
        code: 'CLI_LINE_TOO_LONG',
        message: `request: line longer than ${BATCH_MAX_LINE_BYTES} bytes`,
      };
      await emit({ text: JSON.stringify({ error }), ok: false });
    } else {
      const line = Buffer.concat(pending).toString('utf8').replace(/\r$/, '');
      if (line.trim().length > 0) await emit(answer(line));
    }
    pending = [];
    pendingBytes = 0;
    overlong = false;
  };
  for await (const chunk of io.stdin as AsyncIterable<Buffer | string>) {
    let buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10)) {
      if (!overlong) pending.push(buf.subarray(0, nl));
      pendingBytes += nl;
      if (pendingBytes > BATCH_MAX_LINE_BYTES) overlong = true;
      await endLine();
      buf = buf.subarray(nl + 1);
    }
    pendingBytes += buf.length;
    if (pendingBytes > BATCH_MAX_LINE_BYTES) {
      overlong = true;
      pending = [];
    } else if (buf.length > 0) pending.push(buf);
  }
  if (pendingBytes > 0 || overlong) await endLine();
  return failed ? 1 : 0;
}
