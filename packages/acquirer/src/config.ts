/**
 * The POSP's configuration: a typed object (`startAcquirer(config)`) or a JSON file
 * (`loadAcquirerConfig(path)`), validated on load; an error names the JSON path of the first problem.
 * Relative paths in a file (database, terminals file, log) are relative to the file's folder.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isPostgresUrl } from '@openposp/store';
import type { Clock } from './clock.js';
import { AcquirerError } from './errors.js';
import { type AcquirerHsm, isAcquirerHsm } from './hsm.js';
import { type AcquirerLogger, PIPELINE_TIMEOUTS_DEFAULT, type PipelineTimeouts } from './pipeline.js';
import { SAF_OPTIONS_DEFAULT, type SafOptions } from './saf.js';
import { checkRegistration, type RegisterTerminalRequest } from './terminals.js';

/** Where the HSM is, when the POSP is not handed an `HsmApi` object. */
export interface HsmEndpoint {
  host: string;
  port: number;
  /** payShield message header length (default: the client's, 4). */
  headerLength?: number;
  /** Per-request timeout of the HSM client (default: the pipeline's `timeouts.hsmMs`). */
  timeoutMs?: number;
}

export interface AcquirerConfig {
  /** The terminal listener (cup-pos, 2-byte length, TPDU + header). */
  listen: {
    host?: string;
    /** 0 = an ephemeral port (read it from the handle). */
    port: number;
    /** Default 1000 (docs/network.md). */
    maxConnections?: number;
    /** Default 32: a terminal has one transaction at a time; this bounds a misbehaving one. */
    maxInFlightPerConnection?: number;
    /** Default 300000. */
    idleTimeoutMs?: number;
  };
  /** The switch link (iso87-binary, 2-byte length), reconnected with bounded back-off. */
  switch: {
    host: string;
    port: number;
    /** Default 256 (docs/network.md). */
    maxInFlight?: number;
    /** Default 5000. */
    connectTimeoutMs?: number;
    /** Reconnect back-off, ms. Defaults 200 and 5000. */
    reconnectDelayMs?: number;
    reconnectMaxDelayMs?: number;
  };
  /** Field 32: the acquiring institution id, 1 to 11 digits. */
  acquirerId: string;
  /** Acquirer–switch zone keys, HSM key blocks under the LMK. */
  zoneKeys: { zpk: string; zak: string };
  /**
   * The POSP's data key (a DEK, usage D0, key block under the LMK): the HSM seals under it the one PAN
   * the POSP keeps at rest, that of a reversal advice still owed (src/panvault.ts).
   */
  dataKey: string;
  /**
   * Where the terminal table, the journal and the store-and-forward queue live: a SQLite file, or a
   * `postgres://` URL (PostgreSQL: several POSP nodes may share it).
   */
  databasePath: string;
  /** An `HsmApi` (e.g. `LocalHsm`, `HsmClient`), or where to connect to one. */
  hsm: AcquirerHsm | HsmEndpoint;
  /** JSON file: an array of `{ terminalId, merchantId, merchantName?, tmk, tmkCheckValue? }`, registered at start. */
  terminalsFile?: string;
  /** Terminals registered at start (in addition to the file). */
  terminals?: RegisterTerminalRequest[];
  /** Bounds, ms: `switchMs` (20000), `hsmMs` (5000), `dbMs` (5000). */
  timeouts?: Partial<PipelineTimeouts>;
  /** Field 49 when the terminal sends none. Default '156' (CNY). */
  currency?: string;
  /** The POSP's zone for "signed in today", minutes east of UTC. Default: the process's local zone. */
  utcOffsetMinutes?: number;
  /** JSON-lines log file (through @openposp/net createLogger), when no `logger` is given. */
  logPath?: string;
  /** Programmatic only: a logger (`info(event, fields)`). */
  logger?: AcquirerLogger;
  /** Programmatic only: the clock (tests). */
  clock?: Clock;
  /** Store and forward of reversal advices (defaults in `SAF_OPTIONS_DEFAULT`); `enabled: false` stops the worker. */
  saf?: Partial<SafOptions> & { enabled?: boolean };
  /** Merchant settlement: the fee in basis points of the net (default 0; at most 10000). */
  settlement?: { feeBasisPoints?: number };
}

/** A validated config with every default filled in. */
export interface ResolvedAcquirerConfig extends AcquirerConfig {
  timeouts: PipelineTimeouts;
  currency: string;
  /** Every option filled in (validating a resolved config again gives the same: `startAcquirer(loadAcquirerConfig(f))`). */
  saf: SafOptions & { enabled: boolean };
  settlement: { feeBasisPoints: number };
}

const invalid = (path: string, rule: string): never => {
  throw new AcquirerError('ACQUIRER_CONFIG_INVALID', path, rule);
};

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function port(v: unknown, path: string, allowZero: boolean): void {
  if (!Number.isInteger(v) || (v as number) < (allowZero ? 0 : 1) || (v as number) > 65535)
    invalid(path, `must be an integer from ${allowZero ? 0 : 1} to 65535`);
}

function host(v: unknown, path: string): void {
  if (typeof v !== 'string' || v.length === 0 || v.length > 255)
    invalid(path, 'must be a host name or address');
}

function posInt(v: unknown, path: string, max = 2 ** 31 - 1): void {
  if (v !== undefined && (!Number.isInteger(v) || (v as number) < 1 || (v as number) > max))
    invalid(path, `must be an integer from 1 to ${max}`);
}

function keyBlock(v: unknown, path: string): void {
  if (typeof v !== 'string' || !/^S[\x21-\x7e]{16,}$/.test(v))
    invalid(path, 'must be an HSM key block under the LMK (starts with S)');
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const k of Object.keys(o))
    if (!allowed.includes(k)) invalid(path === '' ? k : `${path}.${k}`, 'unknown key');
}

const TOP_KEYS = [
  'listen',
  'switch',
  'acquirerId',
  'zoneKeys',
  'dataKey',
  'databasePath',
  'hsm',
  'terminalsFile',
  'terminals',
  'timeouts',
  'currency',
  'utcOffsetMinutes',
  'logPath',
  'logger',
  'clock',
  'saf',
  'settlement',
  '$schema',
];

/** Checks a config object and fills in the defaults. Throws ACQUIRER_CONFIG_INVALID naming the path. */
export function validateAcquirerConfig(input: unknown): ResolvedAcquirerConfig {
  if (!isObj(input)) return invalid('$', 'must be an object');
  const c = input;
  onlyKeys(c, TOP_KEYS, '');
  if (!isObj(c.listen)) invalid('listen', 'must be an object');
  const l = c.listen as Record<string, unknown>;
  onlyKeys(l, ['host', 'port', 'maxConnections', 'maxInFlightPerConnection', 'idleTimeoutMs'], 'listen');
  if (l.host !== undefined) host(l.host, 'listen.host');
  port(l.port, 'listen.port', true);
  posInt(l.maxConnections, 'listen.maxConnections', 100_000);
  posInt(l.maxInFlightPerConnection, 'listen.maxInFlightPerConnection', 10_000);
  posInt(l.idleTimeoutMs, 'listen.idleTimeoutMs');
  if (!isObj(c.switch)) invalid('switch', 'must be an object');
  const s = c.switch as Record<string, unknown>;
  onlyKeys(
    s,
    ['host', 'port', 'maxInFlight', 'connectTimeoutMs', 'reconnectDelayMs', 'reconnectMaxDelayMs'],
    'switch',
  );
  host(s.host, 'switch.host');
  port(s.port, 'switch.port', false);
  posInt(s.maxInFlight, 'switch.maxInFlight', 100_000);
  posInt(s.connectTimeoutMs, 'switch.connectTimeoutMs');
  posInt(s.reconnectDelayMs, 'switch.reconnectDelayMs');
  posInt(s.reconnectMaxDelayMs, 'switch.reconnectMaxDelayMs');
  if (typeof c.acquirerId !== 'string' || !/^\d{1,11}$/.test(c.acquirerId))
    invalid('acquirerId', 'must be 1 to 11 digits');
  if (!isObj(c.zoneKeys)) invalid('zoneKeys', 'must be an object with zpk and zak');
  const z = c.zoneKeys as Record<string, unknown>;
  onlyKeys(z, ['zpk', 'zak'], 'zoneKeys');
  keyBlock(z.zpk, 'zoneKeys.zpk');
  keyBlock(z.zak, 'zoneKeys.zak');
  if (c.dataKey === undefined)
    invalid(
      'dataKey',
      'is required: a data key block (HSM A0, key type DEK) to seal the PAN of an owed reversal advice (posp setup makes one)',
    );
  keyBlock(c.dataKey, 'dataKey');
  if (typeof c.databasePath !== 'string' || c.databasePath.length === 0)
    invalid('databasePath', 'must be a file path or a postgres:// URL');
  if (!isAcquirerHsm(c.hsm)) {
    if (!isObj(c.hsm)) invalid('hsm', 'must be an HsmApi object or { host, port }');
    const h = c.hsm as Record<string, unknown>;
    onlyKeys(h, ['host', 'port', 'headerLength', 'timeoutMs'], 'hsm');
    host(h.host, 'hsm.host');
    port(h.port, 'hsm.port', false);
    if (
      h.headerLength !== undefined &&
      (!Number.isInteger(h.headerLength) || (h.headerLength as number) < 0 || (h.headerLength as number) > 32)
    )
      invalid('hsm.headerLength', 'must be an integer from 0 to 32');
    posInt(h.timeoutMs, 'hsm.timeoutMs');
  }
  if (c.terminalsFile !== undefined && (typeof c.terminalsFile !== 'string' || c.terminalsFile === ''))
    invalid('terminalsFile', 'must be a file path');
  if (c.terminals !== undefined) {
    if (!Array.isArray(c.terminals)) invalid('terminals', 'must be an array');
    for (const [i, t] of (c.terminals as unknown[]).entries()) checkTerminalEntry(t, `terminals[${i}]`);
  }
  const t = c.timeouts ?? {};
  if (!isObj(t)) invalid('timeouts', 'must be an object');
  onlyKeys(t as Record<string, unknown>, ['switchMs', 'hsmMs', 'dbMs'], 'timeouts');
  for (const k of ['switchMs', 'hsmMs', 'dbMs'])
    posInt((t as Record<string, unknown>)[k], `timeouts.${k}`, 600_000);
  if (c.currency !== undefined && (typeof c.currency !== 'string' || !/^\d{3}$/.test(c.currency)))
    invalid('currency', 'must be 3 digits (ISO 4217 numeric)');
  if (
    c.utcOffsetMinutes !== undefined &&
    (!Number.isInteger(c.utcOffsetMinutes) || Math.abs(c.utcOffsetMinutes as number) > 14 * 60)
  )
    invalid('utcOffsetMinutes', 'must be an integer from -840 to 840');
  if (c.logPath !== undefined && (typeof c.logPath !== 'string' || c.logPath === ''))
    invalid('logPath', 'must be a file path');
  if (
    c.logger !== undefined &&
    (!isObj(c.logger) || typeof (c.logger as { info?: unknown }).info !== 'function')
  )
    invalid('logger', 'must have info(event, fields)');
  if (c.clock !== undefined && typeof c.clock !== 'function')
    invalid('clock', 'must be a function returning a Date');
  const safKeys = [
    'baseDelayMs',
    'maxDelayMs',
    'maxAttempts',
    'maxAgeMs',
    'pollMs',
    'batchSize',
    'concurrency',
  ] as const;
  const saf = c.saf ?? {};
  if (!isObj(saf)) invalid('saf', 'must be an object');
  onlyKeys(saf as Record<string, unknown>, [...safKeys, 'enabled'], 'saf');
  for (const k of safKeys) posInt((saf as Record<string, unknown>)[k], `saf.${k}`);
  const enabled = (saf as Record<string, unknown>).enabled;
  if (enabled !== undefined && typeof enabled !== 'boolean') invalid('saf.enabled', 'must be true or false');
  const st = c.settlement ?? {};
  if (!isObj(st)) invalid('settlement', 'must be an object');
  onlyKeys(st as Record<string, unknown>, ['feeBasisPoints'], 'settlement');
  const fee = (st as Record<string, unknown>).feeBasisPoints;
  if (fee !== undefined && (!Number.isInteger(fee) || (fee as number) < 0 || (fee as number) > 10_000))
    invalid('settlement.feeBasisPoints', 'must be an integer from 0 to 10000');
  const cfg = c as unknown as AcquirerConfig;
  const safOptions: SafOptions = { ...SAF_OPTIONS_DEFAULT };
  for (const k of safKeys) {
    const v = (saf as Partial<SafOptions>)[k];
    if (v !== undefined) safOptions[k] = v;
  }
  return {
    ...cfg,
    timeouts: { ...PIPELINE_TIMEOUTS_DEFAULT, ...(cfg.timeouts ?? {}) },
    currency: cfg.currency ?? '156',
    saf: { ...safOptions, enabled: enabled !== false },
    settlement: { feeBasisPoints: (fee as number | undefined) ?? 0 },
  };
}

function checkTerminalEntry(t: unknown, path: string): void {
  if (!isObj(t)) invalid(path, 'must be an object');
  onlyKeys(
    t as Record<string, unknown>,
    ['terminalId', 'merchantId', 'merchantName', 'tmk', 'tmkCheckValue', 'batchNo', 'status'],
    path,
  );
  try {
    checkRegistration(t as unknown as RegisterTerminalRequest, path);
  } catch (e) {
    const err = e as AcquirerError;
    throw new AcquirerError('ACQUIRER_CONFIG_INVALID', err.field, err.message.slice(err.field.length + 2));
  }
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new AcquirerError('ACQUIRER_CONFIG_READ', what, 'the file cannot be read');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new AcquirerError('ACQUIRER_CONFIG_READ', what, 'the file is not valid JSON');
  }
}

/** Reads and validates a terminals file: `[{ terminalId, merchantId, merchantName?, tmk, tmkCheckValue? }]`. */
export function loadTerminalsFile(path: string): RegisterTerminalRequest[] {
  const data = readJson(path, 'terminalsFile');
  if (!Array.isArray(data)) invalid('terminalsFile', 'must hold a JSON array of terminals');
  for (const [i, t] of (data as unknown[]).entries()) checkTerminalEntry(t, `terminalsFile[${i}]`);
  return data as RegisterTerminalRequest[];
}

/** Reads a JSON config file, resolves its relative paths against its folder, and validates it. */
export function loadAcquirerConfig(path: string): ResolvedAcquirerConfig {
  const data = readJson(path, 'config');
  if (!isObj(data)) return invalid('$', 'must be an object');
  for (const k of ['logger', 'clock']) if (k in data) invalid(k, 'cannot be given in a file');
  const dir = dirname(resolve(path));
  const out: Record<string, unknown> = { ...data };
  for (const k of ['databasePath', 'terminalsFile', 'logPath']) {
    const v = out[k];
    if (typeof v === 'string' && v !== '' && v !== ':memory:' && !isPostgresUrl(v)) out[k] = resolve(dir, v);
  }
  return validateAcquirerConfig(out);
}
