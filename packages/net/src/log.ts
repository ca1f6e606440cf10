/**
 * JSON-lines logs for the services. The logger is the last line of defence for card data: a
 * field named like a secret (pin, pinBlock, key, track, cvv...) is replaced by "[redacted]",
 * and every run of 13 to 19 digits in any string is masked to first 6 + last 4, so a PAN that
 * slipped into a message text is still not written. Callers still never pass secrets on purpose.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Writable } from 'node:stream';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

const SECRET_NAME =
  /^(pin|pinblock|pin_block|key|keys|clearkey|track|track2|track3|cvv|cvv2|cvc|tmk|tpk|tak|tdk|zpk|zak|zmk|lmk|pvk|bdk|ipek)$/i;
const PAN_RUN = /\d{13,19}/g;

export function maskDigits(s: string): string {
  return s.replace(PAN_RUN, (d) => `${d.slice(0, 6)}${'*'.repeat(d.length - 10)}${d.slice(-4)}`);
}

function clean(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return maskDigits(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined)
    return value;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array) return `[${value.length} bytes]`;
  if (value instanceof Error)
    return { name: value.name, code: (value as { code?: unknown }).code, message: maskDigits(value.message) };
  if (depth > 4) return '[deep]';
  if (Array.isArray(value)) return value.map((v) => clean(v, depth + 1));
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      out[k] = SECRET_NAME.test(k) ? '[redacted]' : clean(v, depth + 1);
    return out;
  }
  return String(value);
}

export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `fields` to every line. */
  child(fields: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  service: string;
  /** Where lines go: a stream, or a file appended to (created if missing). Neither: nothing is written. */
  stream?: Writable;
  path?: string;
  level?: LogLevel;
  /** For tests: the clock. */
  now?: () => Date;
}

/**
 * One descriptor per log file, opened for appending on first use and kept: a line is one write(2),
 * not an open, a write and a close. O_APPEND keeps lines whole and in order when several loggers
 * (or processes) share a file, and a `copytruncate` rotation keeps working.
 */
const logFiles = new Map<string, number>();

function appendLine(path: string, line: string): void {
  let fd = logFiles.get(path);
  if (fd === undefined) {
    fd = openSync(path, 'a');
    logFiles.set(path, fd);
  }
  try {
    writeSync(fd, line);
  } catch (e) {
    // The descriptor went bad (the file system was unmounted, the fd closed elsewhere): reopen once.
    logFiles.delete(path);
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    if ((e as NodeJS.ErrnoException).code !== 'EBADF') throw e;
    appendLine(path, line);
  }
}

export function createLogger(opts: LoggerOptions, base: Record<string, unknown> = {}): Logger {
  const min = LEVELS[opts.level ?? 'info'];
  const now = opts.now ?? (() => new Date());
  const write = (level: LogLevel, event: string, fields?: Record<string, unknown>) => {
    if (LEVELS[level] < min) return;
    const line = `${JSON.stringify({
      time: now().toISOString(),
      level,
      service: opts.service,
      event: maskDigits(event),
      ...(clean({ ...base, ...fields }, 0) as Record<string, unknown>),
    })}\n`;
    if (opts.stream) opts.stream.write(line);
    else if (opts.path) appendLine(opts.path, line);
  };
  return {
    debug: (e, f) => write('debug', e, f),
    info: (e, f) => write('info', e, f),
    warn: (e, f) => write('warn', e, f),
    error: (e, f) => write('error', e, f),
    child: (fields) => createLogger(opts, { ...base, ...fields }),
  };
}
