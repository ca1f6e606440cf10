/**
 * The switch configuration: a plain object (from code) or a JSON file (from an operator), validated on
 * load with SWITCH_CONFIG_INVALID naming the JSON path of the first bad field. Keys are HSM key blocks
 * under the LMK (never clear keys); they are checked against the HSM at start (BU), and never logged.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isPostgresUrl } from '@openposp/store';
import type { SwitchHsm } from './hsm.js';
import type { Logger } from '@openposp/net';
import { SwitchError } from './errors.js';
import { ISSUER_ID_PATTERN } from './routing.js';

/** docs/network.md "Timeouts and limits". */
export const SWITCH_ISSUER_TIMEOUT_MS_DEFAULT = 15_000;
export const SWITCH_HSM_TIMEOUT_MS_DEFAULT = 5_000;
export const SWITCH_MAX_CONNECTIONS_DEFAULT = 1000;
export const SWITCH_MAX_IN_FLIGHT_PER_LINK_DEFAULT = 256;
export const SWITCH_IDLE_TIMEOUT_MS_DEFAULT = 300_000;
export const SWITCH_CONNECT_TIMEOUT_MS_DEFAULT = 5_000;
export const SWITCH_RECONNECT_DELAY_MS_DEFAULT = 200;
export const SWITCH_RECONNECT_MAX_DELAY_MS_DEFAULT = 5_000;
/** Upper bounds a config may not exceed (a typo of 15000000 ms is refused, not obeyed). */
export const SWITCH_TIMEOUT_MS_MAX = 600_000;
export const SWITCH_LIMIT_MAX = 100_000;
export const CONFIG_FILE_MAX_BYTES = 1024 * 1024;

/** An acquirer (POSP) that connects to the switch. `id` is its field 32. */
export interface AcquirerLinkConfig {
  /** Acquiring institution id, as field 32 carries it: 1 to 11 digits. */
  id: string;
  /** Acquirer-switch zone PIN key, key block under the LMK. */
  zpk: string;
  /** Acquirer-switch zone MAC key, key block under the LMK. */
  zak: string;
}

/** An issuer the switch connects to. `id` is what the routing file names. */
export interface IssuerLinkConfig {
  id: string;
  host: string;
  port: number;
  /** Switch-issuer zone PIN key, key block under the LMK. */
  zpk: string;
  /** Switch-issuer zone MAC key, key block under the LMK. */
  zak: string;
}

export interface HsmEndpoint {
  host: string;
  port: number;
}

export interface SwitchTimeouts {
  /** How long the switch waits for an issuer's answer before answering 91 itself. */
  issuerMs?: number;
  /** One HSM call; beyond it the request is answered 96. */
  hsmMs?: number;
  /** A connection from an acquirer with no traffic for this long is closed. */
  idleMs?: number;
  /** Connecting to an issuer. */
  connectMs?: number;
  /** Reconnect back-off to an issuer: first delay and cap (doubling in between). */
  reconnectDelayMs?: number;
  reconnectMaxDelayMs?: number;
}

export interface SwitchLimits {
  /** Acquirer connections accepted at once. */
  maxConnections?: number;
  /** Requests in flight per link: per acquirer connection (reading pauses beyond it) and per issuer link (91 beyond it). */
  maxInFlightPerLink?: number;
}

export interface SwitchConfig {
  /** The switch's own institution id, set in field 33 (forwarding institution) of what it forwards: 1 to 11 digits. */
  institutionId: string;
  listen?: { host?: string; port?: number };
  acquirers: AcquirerLinkConfig[];
  issuers: IssuerLinkConfig[];
  /** The routing table file (see routing.ts); or `routing`, the same document inline. */
  routingFile?: string;
  routing?: unknown;
  /** SQLite file of the journal (`:memory:` for a throwaway one), or a `postgres://` URL. */
  databasePath: string;
  /** An HSM object (in code: LocalHsm or HsmClient, any HsmApi), or where an HSM listens (an HsmClient is opened). */
  hsm: SwitchHsm | HsmEndpoint;
  timeouts?: SwitchTimeouts;
  limits?: SwitchLimits;
  /** A logger (from @openposp/net createLogger), or a file path for JSON lines; neither: no log. */
  log?: Logger;
  logPath?: string;
}

/** The config with every default filled in. */
export interface ResolvedSwitchConfig extends SwitchConfig {
  listen: { host: string; port: number };
  timeouts: Required<SwitchTimeouts>;
  limits: Required<SwitchLimits>;
}

const INSTITUTION_ID = /^[0-9]{1,11}$/;
/** A key block under the LMK: starts with S, printable, bounded. The HSM checks the rest at start. */
const KEY_BLOCK = /^S[\x21-\x7e]{15,4095}$/;

function bad(path: string, rule: string): SwitchError {
  return new SwitchError('SWITCH_CONFIG_INVALID', path, rule);
}

function obj(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(path, 'must be an object');
  return v as Record<string, unknown>;
}

function onlyKeys(o: Record<string, unknown>, path: string, keys: readonly string[]): void {
  for (const k of Object.keys(o))
    if (!keys.includes(k)) throw bad(path, `unknown key "${k.slice(0, 40)}" (expected ${keys.join(', ')})`);
}

function str(v: unknown, path: string, re: RegExp, rule: string): string {
  if (typeof v !== 'string' || !re.test(v)) throw bad(path, rule);
  return v;
}

function int(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw bad(path, `must be an integer from ${min} to ${max}`);
  return v;
}

function optInt(v: unknown, path: string, min: number, max: number, d: number): number {
  return v === undefined ? d : int(v, path, min, max);
}

function keyBlock(v: unknown, path: string): string {
  return str(
    v,
    path,
    KEY_BLOCK,
    'must be a key block under the LMK (S followed by 15 to 4095 printable characters)',
  );
}

function hostName(v: unknown, path: string): string {
  return str(v, path, /^[A-Za-z0-9.:_-]{1,253}$/, 'must be a host name or address');
}

function isHsmApi(v: unknown): v is SwitchHsm {
  const o = v as Partial<SwitchHsm>;
  return (
    typeof o.verifyMac === 'function' &&
    typeof o.generateMac === 'function' &&
    typeof o.translatePinZpkToZpk === 'function' &&
    typeof o.keyCheckValue === 'function'
  );
}

/**
 * Validates a switch configuration (from code or parsed JSON) and fills in the defaults. `base` prefixes
 * the paths in errors (`config.issuers[1].port`).
 */
export function validateSwitchConfig(raw: unknown, base = 'config'): ResolvedSwitchConfig {
  const c = obj(raw, base);
  onlyKeys(c, base, [
    'institutionId',
    'listen',
    'acquirers',
    'issuers',
    'routingFile',
    'routing',
    'databasePath',
    'hsm',
    'timeouts',
    'limits',
    'log',
    'logPath',
  ]);
  const institutionId = str(
    c.institutionId,
    `${base}.institutionId`,
    INSTITUTION_ID,
    'must be 1 to 11 digits',
  );

  const listenRaw = c.listen === undefined ? {} : obj(c.listen, `${base}.listen`);
  onlyKeys(listenRaw, `${base}.listen`, ['host', 'port']);
  const listen = {
    host: listenRaw.host === undefined ? '127.0.0.1' : hostName(listenRaw.host, `${base}.listen.host`),
    port: optInt(listenRaw.port, `${base}.listen.port`, 0, 65535, 0),
  };

  if (!Array.isArray(c.acquirers) || c.acquirers.length === 0)
    throw bad(`${base}.acquirers`, 'must be a non-empty array');
  const acquirers = c.acquirers.map((a, i): AcquirerLinkConfig => {
    const p = `${base}.acquirers[${i}]`;
    const o = obj(a, p);
    onlyKeys(o, p, ['id', 'zpk', 'zak']);
    return {
      id: str(o.id, `${p}.id`, INSTITUTION_ID, 'must be 1 to 11 digits (the field 32 it sends)'),
      zpk: keyBlock(o.zpk, `${p}.zpk`),
      zak: keyBlock(o.zak, `${p}.zak`),
    };
  });
  const seenA = new Set<string>();
  acquirers.forEach((a, i) => {
    if (seenA.has(a.id)) throw bad(`${base}.acquirers[${i}].id`, `duplicates another acquirer's id ${a.id}`);
    seenA.add(a.id);
  });

  if (!Array.isArray(c.issuers)) throw bad(`${base}.issuers`, 'must be an array');
  const issuers = c.issuers.map((a, i): IssuerLinkConfig => {
    const p = `${base}.issuers[${i}]`;
    const o = obj(a, p);
    onlyKeys(o, p, ['id', 'host', 'port', 'zpk', 'zak']);
    return {
      id: str(o.id, `${p}.id`, ISSUER_ID_PATTERN, 'must be 1 to 32 characters A-Z a-z 0-9 _ . -'),
      host: hostName(o.host, `${p}.host`),
      port: int(o.port, `${p}.port`, 1, 65535),
      zpk: keyBlock(o.zpk, `${p}.zpk`),
      zak: keyBlock(o.zak, `${p}.zak`),
    };
  });
  const seenI = new Set<string>();
  issuers.forEach((a, i) => {
    if (seenI.has(a.id)) throw bad(`${base}.issuers[${i}].id`, `duplicates another issuer's id ${a.id}`);
    seenI.add(a.id);
  });

  if ((c.routingFile === undefined) === (c.routing === undefined))
    throw bad(
      `${base}.routingFile`,
      'give exactly one of routingFile (a path) and routing (the table inline)',
    );
  if (c.routingFile !== undefined && (typeof c.routingFile !== 'string' || c.routingFile.length === 0))
    throw bad(`${base}.routingFile`, 'must be a file path');
  if (typeof c.databasePath !== 'string' || c.databasePath.length === 0)
    throw bad(`${base}.databasePath`, 'must be a file path (or :memory:) or a postgres:// URL');

  let hsm: SwitchHsm | HsmEndpoint;
  if (isHsmApi(c.hsm)) hsm = c.hsm;
  else {
    const h = obj(c.hsm, `${base}.hsm`);
    onlyKeys(h, `${base}.hsm`, ['host', 'port']);
    hsm = { host: hostName(h.host, `${base}.hsm.host`), port: int(h.port, `${base}.hsm.port`, 1, 65535) };
  }

  const t = c.timeouts === undefined ? {} : obj(c.timeouts, `${base}.timeouts`);
  onlyKeys(t, `${base}.timeouts`, [
    'issuerMs',
    'hsmMs',
    'idleMs',
    'connectMs',
    'reconnectDelayMs',
    'reconnectMaxDelayMs',
  ]);
  const tp = `${base}.timeouts`;
  const timeouts: Required<SwitchTimeouts> = {
    issuerMs: optInt(
      t.issuerMs,
      `${tp}.issuerMs`,
      1,
      SWITCH_TIMEOUT_MS_MAX,
      SWITCH_ISSUER_TIMEOUT_MS_DEFAULT,
    ),
    hsmMs: optInt(t.hsmMs, `${tp}.hsmMs`, 1, SWITCH_TIMEOUT_MS_MAX, SWITCH_HSM_TIMEOUT_MS_DEFAULT),
    idleMs: optInt(t.idleMs, `${tp}.idleMs`, 1, 86_400_000, SWITCH_IDLE_TIMEOUT_MS_DEFAULT),
    connectMs: optInt(
      t.connectMs,
      `${tp}.connectMs`,
      1,
      SWITCH_TIMEOUT_MS_MAX,
      SWITCH_CONNECT_TIMEOUT_MS_DEFAULT,
    ),
    reconnectDelayMs: optInt(
      t.reconnectDelayMs,
      `${tp}.reconnectDelayMs`,
      1,
      SWITCH_TIMEOUT_MS_MAX,
      SWITCH_RECONNECT_DELAY_MS_DEFAULT,
    ),
    reconnectMaxDelayMs: optInt(
      t.reconnectMaxDelayMs,
      `${tp}.reconnectMaxDelayMs`,
      1,
      SWITCH_TIMEOUT_MS_MAX,
      SWITCH_RECONNECT_MAX_DELAY_MS_DEFAULT,
    ),
  };
  const l = c.limits === undefined ? {} : obj(c.limits, `${base}.limits`);
  onlyKeys(l, `${base}.limits`, ['maxConnections', 'maxInFlightPerLink']);
  const limits: Required<SwitchLimits> = {
    maxConnections: optInt(
      l.maxConnections,
      `${base}.limits.maxConnections`,
      1,
      SWITCH_LIMIT_MAX,
      SWITCH_MAX_CONNECTIONS_DEFAULT,
    ),
    maxInFlightPerLink: optInt(
      l.maxInFlightPerLink,
      `${base}.limits.maxInFlightPerLink`,
      1,
      SWITCH_LIMIT_MAX,
      SWITCH_MAX_IN_FLIGHT_PER_LINK_DEFAULT,
    ),
  };
  if (c.logPath !== undefined && (typeof c.logPath !== 'string' || c.logPath.length === 0))
    throw bad(`${base}.logPath`, 'must be a file path');
  if (c.log !== undefined && typeof (c.log as Logger).info !== 'function')
    throw bad(`${base}.log`, 'must be a Logger (createLogger of @openposp/net)');

  return {
    institutionId,
    listen,
    acquirers,
    issuers,
    ...(c.routingFile !== undefined ? { routingFile: c.routingFile as string } : { routing: c.routing }),
    databasePath: c.databasePath,
    hsm,
    timeouts,
    limits,
    ...(c.log !== undefined ? { log: c.log as Logger } : {}),
    ...(c.logPath !== undefined ? { logPath: c.logPath as string } : {}),
  };
}

/**
 * Reads a JSON config file and validates it. Relative `routingFile`, `databasePath` and `logPath` are
 * resolved against the file's directory, so a config and its routing table can travel together.
 */
export async function loadSwitchConfigFile(path: string): Promise<ResolvedSwitchConfig> {
  let doc: unknown;
  try {
    const buf = await readFile(path);
    if (buf.length > CONFIG_FILE_MAX_BYTES)
      throw new SwitchError('SWITCH_FILE_READ', 'config', `larger than ${CONFIG_FILE_MAX_BYTES} bytes`);
    doc = JSON.parse(buf.toString('utf8'));
  } catch (e) {
    if (e instanceof SwitchError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new SwitchError(
      'SWITCH_FILE_READ',
      'config',
      code ? `cannot read ${path} (${code})` : `${path} is not JSON`,
      { cause: e },
    );
  }
  const cfg = validateSwitchConfig(doc, 'config');
  const dir = dirname(resolve(path));
  const rel = (p: string) => (p === ':memory:' || isAbsolute(p) || isPostgresUrl(p) ? p : resolve(dir, p));
  return {
    ...cfg,
    ...(cfg.routingFile !== undefined ? { routingFile: rel(cfg.routingFile) } : {}),
    databasePath: rel(cfg.databasePath),
    ...(cfg.logPath !== undefined ? { logPath: rel(cfg.logPath) } : {}),
  };
}
