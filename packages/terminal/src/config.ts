/**
 * The terminal's configuration: a JSON file or an object, validated on load. Every error names the
 * path of the bad value (`config.posp.port`) and the rule, never a secret: the device secret that
 * seals the PIN pad is NOT part of the config (it is given to `startTerminal` separately).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TerminalError } from './errors.js';

/** How long the terminal waits for an answer (docs/network.md, "Timeouts and limits"). */
export const TERMINAL_ANSWER_TIMEOUT_MS_DEFAULT = 30_000;
/** How long the terminal waits for the TCP connection to the POSP. */
export const TERMINAL_CONNECT_TIMEOUT_MS_DEFAULT = 5_000;
/** Reversal 0400 tries per occasion (cup-pos-dialect.md 2.7: public terminal code uses 3). */
export const TERMINAL_REVERSAL_MAX_ATTEMPTS_DEFAULT = 3;
/** 0500 and each 0320 of a settlement: tries per message before the settlement gives up. */
export const TERMINAL_SETTLEMENT_MAX_ATTEMPTS_DEFAULT = 3;
/** Pause between two tries of the same reversal or settlement message. */
export const TERMINAL_RETRY_DELAY_MS_DEFAULT = 1_000;
/** Upper bound of every retry count setting. */
export const TERMINAL_MAX_ATTEMPTS_LIMIT = 10;
/** Largest config file read. */
export const TERMINAL_CONFIG_MAX_BYTES = 64 * 1024;

/**
 * How the terminal holds its TCP connection to the POSP: `per-exchange` opens one for every exchange
 * and closes it after (short connection, as dial-up and GPRS terminals do); `kept` keeps one open and
 * reuses it while it is up (long connection, as LAN/IP terminals do).
 */
export type TerminalConnection = 'per-exchange' | 'kept';
/** The allowed values of `connection`, in the order an error names them. */
export const TERMINAL_CONNECTIONS: readonly TerminalConnection[] = ['per-exchange', 'kept'];

export interface TerminalConfig {
  /** Field 41: 8 printable characters. */
  terminalId: string;
  /** Field 42: 15 printable characters. */
  merchantId: string;
  /** Printed on the slip. */
  merchantName: string;
  /** The POSP (acquirer host) this terminal talks to. */
  posp: { host: string; port: number };
  /** TPDU addresses (cup-pos-dialect.md 2.1): 0..0xFFFF each; the reply comes back swapped. */
  tpdu: { destination: number; source: number };
  /** The 12-digit application header, e.g. `603100311003`. */
  header: string;
  /** Directory for the state: `terminal.sqlite` and `pinpad.sealed` unless the paths below are given. */
  stateDir: string;
  databasePath: string;
  pinpadStatePath: string;
  answerTimeoutMs: number;
  connectTimeoutMs: number;
  /** Short connection per exchange (the default) or one kept connection. */
  connection: TerminalConnection;
  /** Tries of a pending reversal each time it is due (before a transaction, sign-in, settlement). */
  reversalMaxAttempts: number;
  /** How long one reversal try waits for its 0410. */
  reversalAnswerTimeoutMs: number;
  /** Tries of the 0500 and of each 0320 of a settlement. */
  settlementMaxAttempts: number;
  /** Pause between two tries of a reversal or settlement message. */
  retryDelayMs: number;
  /** `tdk`: track 2 enciphered under the TDK (53 position 3 = 1); `none`: sent in clear. */
  trackEncryption: 'tdk' | 'none';
  /** 63.1 operator code, 3 characters. */
  operator: string;
  /** Field 49, ISO 4217 numeric. */
  currency: string;
}

/** The config as written in JSON: optional values have defaults; TPDU addresses may be 4 hex digits. */
export interface TerminalConfigInput {
  terminalId: string;
  merchantId: string;
  merchantName: string;
  posp: { host: string; port: number };
  tpdu: { destination: number | string; source: number | string };
  header: string;
  stateDir: string;
  databasePath?: string;
  pinpadStatePath?: string;
  answerTimeoutMs?: number;
  connectTimeoutMs?: number;
  connection?: TerminalConnection;
  reversalMaxAttempts?: number;
  reversalAnswerTimeoutMs?: number;
  settlementMaxAttempts?: number;
  retryDelayMs?: number;
  trackEncryption?: 'tdk' | 'none';
  operator?: string;
  currency?: string;
}

function fail(path: string, rule: string): never {
  throw new TerminalError('TERMINAL_CONFIG_INVALID', path, rule);
}

function str(v: unknown, path: string): string {
  if (typeof v !== 'string') fail(path, 'must be a string');
  return v;
}

function printable(v: unknown, path: string, length: number): string {
  const s = str(v, path);
  if (s.length !== length || !/^[\x20-\x7e]+$/.test(s))
    fail(path, `must be exactly ${length} printable ASCII characters`);
  return s;
}

function int(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    fail(path, `must be an integer from ${min} to ${max}`);
  return v;
}

function address(v: unknown, path: string): number {
  if (typeof v === 'string') {
    if (!/^[0-9A-Fa-f]{4}$/.test(v)) fail(path, 'must be 4 hex digits or an integer from 0 to 65535');
    return Number.parseInt(v, 16);
  }
  return int(v, path, 0, 0xffff);
}

function object(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'must be an object');
  return v as Record<string, unknown>;
}

const KNOWN_KEYS = new Set([
  'terminalId',
  'merchantId',
  'merchantName',
  'posp',
  'tpdu',
  'header',
  'stateDir',
  'databasePath',
  'pinpadStatePath',
  'answerTimeoutMs',
  'connectTimeoutMs',
  'connection',
  'reversalMaxAttempts',
  'reversalAnswerTimeoutMs',
  'settlementMaxAttempts',
  'retryDelayMs',
  'trackEncryption',
  'operator',
  'currency',
]);

/** Validates a config object and fills in the defaults. Throws TERMINAL_CONFIG_INVALID naming the path. */
export function validateTerminalConfig(input: unknown): TerminalConfig {
  const c = object(input, 'config');
  for (const k of Object.keys(c)) if (!KNOWN_KEYS.has(k)) fail(`config.${k}`, 'is not a known setting');
  const terminalId = printable(c.terminalId, 'config.terminalId', 8);
  const merchantId = printable(c.merchantId, 'config.merchantId', 15);
  const merchantName = str(c.merchantName, 'config.merchantName');
  if (merchantName.length === 0 || merchantName.length > 40)
    fail('config.merchantName', 'must be 1 to 40 characters');
  const posp = object(c.posp, 'config.posp');
  const host = str(posp.host, 'config.posp.host');
  if (host.length === 0) fail('config.posp.host', 'must not be empty');
  const port = int(posp.port, 'config.posp.port', 1, 65535);
  const tpdu = object(c.tpdu, 'config.tpdu');
  const header = str(c.header, 'config.header');
  if (!/^[0-9]{12}$/.test(header)) fail('config.header', 'must be 12 decimal digits');
  const stateDir = str(c.stateDir, 'config.stateDir');
  if (stateDir.length === 0) fail('config.stateDir', 'must not be empty');
  const optPath = (k: 'databasePath' | 'pinpadStatePath', def: string): string => {
    if (c[k] === undefined) return def;
    const s = str(c[k], `config.${k}`);
    if (s.length === 0) fail(`config.${k}`, 'must not be empty');
    return s;
  };
  const trackEncryption = c.trackEncryption ?? 'tdk';
  if (trackEncryption !== 'tdk' && trackEncryption !== 'none')
    fail('config.trackEncryption', 'must be tdk or none');
  const connection = c.connection ?? 'per-exchange';
  if (!TERMINAL_CONNECTIONS.includes(connection as TerminalConnection))
    fail('config.connection', `must be ${TERMINAL_CONNECTIONS.join(' or ')}`);
  const operator = c.operator === undefined ? '001' : printable(c.operator, 'config.operator', 3);
  const currency = c.currency === undefined ? '156' : str(c.currency, 'config.currency');
  if (!/^[0-9]{3}$/.test(currency)) fail('config.currency', 'must be 3 digits (ISO 4217 numeric)');
  const answerTimeoutMs =
    c.answerTimeoutMs === undefined
      ? TERMINAL_ANSWER_TIMEOUT_MS_DEFAULT
      : int(c.answerTimeoutMs, 'config.answerTimeoutMs', 100, 300_000);
  return {
    terminalId,
    merchantId,
    merchantName,
    posp: { host, port },
    tpdu: {
      destination: address(tpdu.destination, 'config.tpdu.destination'),
      source: address(tpdu.source, 'config.tpdu.source'),
    },
    header,
    stateDir,
    databasePath: optPath('databasePath', join(stateDir, 'terminal.sqlite')),
    pinpadStatePath: optPath('pinpadStatePath', join(stateDir, 'pinpad.sealed')),
    answerTimeoutMs,
    connectTimeoutMs:
      c.connectTimeoutMs === undefined
        ? TERMINAL_CONNECT_TIMEOUT_MS_DEFAULT
        : int(c.connectTimeoutMs, 'config.connectTimeoutMs', 100, 60_000),
    connection: connection as TerminalConnection,
    reversalMaxAttempts:
      c.reversalMaxAttempts === undefined
        ? TERMINAL_REVERSAL_MAX_ATTEMPTS_DEFAULT
        : int(c.reversalMaxAttempts, 'config.reversalMaxAttempts', 1, TERMINAL_MAX_ATTEMPTS_LIMIT),
    reversalAnswerTimeoutMs:
      c.reversalAnswerTimeoutMs === undefined
        ? answerTimeoutMs
        : int(c.reversalAnswerTimeoutMs, 'config.reversalAnswerTimeoutMs', 100, 300_000),
    settlementMaxAttempts:
      c.settlementMaxAttempts === undefined
        ? TERMINAL_SETTLEMENT_MAX_ATTEMPTS_DEFAULT
        : int(c.settlementMaxAttempts, 'config.settlementMaxAttempts', 1, TERMINAL_MAX_ATTEMPTS_LIMIT),
    retryDelayMs:
      c.retryDelayMs === undefined
        ? TERMINAL_RETRY_DELAY_MS_DEFAULT
        : int(c.retryDelayMs, 'config.retryDelayMs', 0, 60_000),
    trackEncryption,
    operator,
    currency,
  };
}

/** Reads and validates a JSON config file. */
export function loadTerminalConfig(path: string): TerminalConfig {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (e) {
    fail('config', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (text.length > TERMINAL_CONFIG_MAX_BYTES)
    fail('config', `file is above ${TERMINAL_CONFIG_MAX_BYTES} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(text.toString('utf8'));
  } catch {
    fail('config', `${path} is not valid JSON`);
  }
  return validateTerminalConfig(json);
}
