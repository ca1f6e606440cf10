/**
 * A small flag parser for the network commands: `--name value`, `--name=value`, repeatable flags,
 * boolean switches, positionals. Unknown flags are an error (a typo must not become a default).
 */
import { isPostgresUrl } from '@openposp/store';
import { TERMINAL_CONNECTIONS, type TerminalConnection } from '@openposp/terminal';
import { CliError } from './errors.js';

export interface FlagSpec {
  /** Flags that take a value. */
  values?: readonly string[];
  /** Flags that take a value and may be repeated. */
  lists?: readonly string[];
  /** Flags without a value. */
  switches?: readonly string[];
}

export interface ParsedFlags {
  values: Map<string, string>;
  lists: Map<string, string[]>;
  switches: Set<string>;
  positional: string[];
}

export function parseFlags(args: readonly string[], spec: FlagSpec): ParsedFlags {
  const out: ParsedFlags = { values: new Map(), lists: new Map(), switches: new Set(), positional: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) {
      out.positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
    const inline = eq < 0 ? undefined : a.slice(eq + 1);
    if (spec.switches?.includes(name)) {
      if (inline !== undefined) throw new CliError('CLI_REQUEST_INVALID', `--${name}: takes no value`);
      out.switches.add(name);
      continue;
    }
    const isList = spec.lists?.includes(name) === true;
    if (!isList && !spec.values?.includes(name))
      throw new CliError('CLI_REQUEST_INVALID', `--${name}: unknown option`);
    const v = inline ?? args[++i];
    if (v === undefined || v === '') throw new CliError('CLI_REQUEST_INVALID', `--${name}: needs a value`);
    if (isList) out.lists.set(name, [...(out.lists.get(name) ?? []), v]);
    else {
      if (out.values.has(name)) throw new CliError('CLI_REQUEST_INVALID', `--${name}: given twice`);
      out.values.set(name, v);
    }
  }
  return out;
}

/** A required value flag. */
export function required(f: ParsedFlags, name: string): string {
  const v = f.values.get(name);
  if (v === undefined) throw new CliError('CLI_REQUEST_INVALID', `--${name}: is required`);
  return v;
}

/** An optional PostgreSQL URL flag (`--db`): postgres:// or postgresql://, or undefined when absent. */
export function postgresUrlFlag(f: ParsedFlags, name: string): string | undefined {
  const v = f.values.get(name);
  if (v !== undefined && !isPostgresUrl(v))
    throw new CliError('CLI_REQUEST_INVALID', `--${name}: must be a postgres:// or postgresql:// URL`);
  return v;
}

/** An optional `--connection` flag: how terminals hold their TCP connection to the POSP. */
export function connectionFlag(f: ParsedFlags): TerminalConnection | undefined {
  const v = f.values.get('connection');
  if (v !== undefined && !(TERMINAL_CONNECTIONS as readonly string[]).includes(v))
    throw new CliError('CLI_REQUEST_INVALID', `--connection: must be ${TERMINAL_CONNECTIONS.join(' or ')}`);
  return v as TerminalConnection | undefined;
}

/** An optional TCP port flag (1..65535, or 0 when allowed). */
export function portFlag(f: ParsedFlags, name: string, dflt: number): number {
  const v = f.values.get(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!/^[0-9]{1,5}$/.test(v) || n > 65535)
    throw new CliError('CLI_REQUEST_INVALID', `--${name}: must be a port number from 0 to 65535`);
  return n;
}

/** Reads at most `maxBytes` of a stream (a PIN, a passphrase, component hex). */
export async function readAll(stream: AsyncIterable<Buffer | string>, maxBytes = 4096): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of stream) {
    const b = typeof c === 'string' ? Buffer.from(c) : c;
    total += b.length;
    if (total > maxBytes) throw new CliError('CLI_REQUEST_INVALID', `stdin: longer than ${maxBytes} bytes`);
    chunks.push(b);
  }
  const buf = Buffer.concat(chunks);
  const text = buf.toString('utf8');
  buf.fill(0);
  return text;
}

/**
 * The first line of a stream (a PIN typed at a terminal ends with Enter, not with Ctrl-D); at most
 * `maxBytes`. The bytes read are wiped.
 */
export async function readFirstLine(stream: AsyncIterable<Buffer | string>, maxBytes = 256): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of stream) {
    const b = typeof c === 'string' ? Buffer.from(c) : c;
    chunks.push(b);
    total += b.length;
    if (b.includes(0x0a)) break;
    if (total > maxBytes) break;
  }
  const buf = Buffer.concat(chunks);
  for (const c of chunks) c.fill(0);
  const nl = buf.indexOf(0x0a);
  if (nl < 0 && buf.length > maxBytes)
    throw new CliError('CLI_REQUEST_INVALID', `stdin: first line longer than ${maxBytes} bytes`);
  const line = buf.subarray(0, nl < 0 ? buf.length : nl).toString('utf8');
  buf.fill(0);
  return line.replace(/\r$/, '');
}

/** The error's code and message for one stderr line: never a value, as every library error is built. */
export function describeError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${e.message}` : `${e.name}: ${e.message}`;
  }
  return String(e);
}
