/**
 * The issuer as a network service: the frame handler (unpack, verify the request MAC, parse, authorize,
 * answer with a MAC), the config (object or JSON file, validated with the path of what is wrong) and
 * `startIssuer`, which listens for the switch on a FramedServer (iso87-binary, 2-byte length prefix).
 *
 * Catching happens here only: a frame that cannot be read is dropped and logged; a readable request
 * that is malformed is answered 30; the MAC failing is answered A0; an HSM or database failure 96.
 * One log line per request, PAN masked, never a PIN block or key.
 */
import { readFileSync } from 'node:fs';
import { type HsmApi, HsmClient } from '@openposp/hsm';
import type { Iso8583Message } from '@openposp/iso8583';
import { createLogger, FramedServer, type Logger } from '@openposp/net';
import { openStore, type Store } from '@openposp/store';
import { readAccountsFile } from './cards.js';
import type { ResponseCode } from './codes.js';
import { IssuerError } from './errors.js';
import {
  ISSUER_CURRENCY_DEFAULT,
  ISSUER_HSM_TIMEOUT_MS_DEFAULT,
  Issuer,
  type IssuerAnswer,
} from './issuer.js';
import { maskPan } from './cards.js';
import { ISSUER_MIGRATIONS } from './migrations.js';
import { issuerSpec, packWithMac, parseRequest, startResponse, unpack, verifyMessageMac } from './wire.js';

export const ISSUER_MAX_CONNECTIONS_DEFAULT = 1000;
export const ISSUER_MAX_IN_FLIGHT_DEFAULT = 256;
export const ISSUER_IDLE_TIMEOUT_MS_DEFAULT = 300_000;
export const ISSUER_MAX_FRAME_BYTES_DEFAULT = 8192;

export interface IssuerConfig {
  listen: { host?: string; port: number };
  /** SQLite file (created and migrated on start), ':memory:', or a `postgres://` URL (PostgreSQL: several issuer nodes may share it). */
  databasePath: string;
  keys: {
    /** Zone PIN key shared with the switch, key block under the LMK. */
    zpk: string;
    /** Zone MAC key shared with the switch, key block under the LMK. */
    zak: string;
    /** MAC key (TAK/ZAK type) used only to derive PAN tokens; key block under the LMK. */
    panTokenKey: string;
  };
  /** Clearing account credited by purchases (the acquirer side's settlement position). */
  settlementAccountId: string;
  currency?: string;
  /** An HsmApi object (LocalHsm, HsmClient) or where to connect an HsmClient. */
  hsm: HsmApi | { host: string; port: number; timeoutMs?: number };
  /** Card list loaded on start (cards already present are kept as they are). */
  accountsFile?: string;
  /** JSON-lines log file; or give `log`. Neither: no log. */
  logPath?: string;
  log?: Logger;
  limits?: {
    maxConnections?: number;
    maxInFlightPerConnection?: number;
    idleTimeoutMs?: number;
    hsmTimeoutMs?: number;
    maxFrameBytes?: number;
  };
  /** Tests: the clock (expiry checks, timestamps). */
  now?: () => Date;
}

function bad(path: string, rule: string): IssuerError {
  return new IssuerError('ISSUER_CONFIG_INVALID', path, rule);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nonEmpty(v: unknown, path: string): string {
  if (typeof v !== 'string' || v.length === 0) throw bad(path, 'must be a non-empty string');
  return v;
}

function keyBlock(v: unknown, path: string): string {
  if (typeof v !== 'string' || !v.startsWith('S') || v.length < 17) {
    throw bad(path, 'must be a key block under the LMK (starting with S)');
  }
  return v;
}

function port(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535)
    throw bad(path, 'must be an integer 0 to 65535');
  return v;
}

function posInt(v: unknown, path: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)
    throw bad(path, 'must be a positive integer');
  return v;
}

function isHsmApi(v: unknown): v is HsmApi {
  return isObject(v) && typeof v.verifyPinIbm3624 === 'function' && typeof v.verifyMac === 'function';
}

/** Validates a config object; the error names the path (`keys.zak`, `listen.port`). */
export function validateIssuerConfig(v: unknown): IssuerConfig {
  if (!isObject(v)) throw bad('config', 'must be an object');
  if (!isObject(v.listen)) throw bad('listen', 'must be an object { host?, port }');
  const listen: IssuerConfig['listen'] = { port: port(v.listen.port, 'listen.port') };
  if (v.listen.host !== undefined) listen.host = nonEmpty(v.listen.host, 'listen.host');
  if (!isObject(v.keys)) throw bad('keys', 'must be an object { zpk, zak, panTokenKey }');
  const keys = {
    zpk: keyBlock(v.keys.zpk, 'keys.zpk'),
    zak: keyBlock(v.keys.zak, 'keys.zak'),
    panTokenKey: keyBlock(v.keys.panTokenKey, 'keys.panTokenKey'),
  };
  let hsm: IssuerConfig['hsm'];
  if (isHsmApi(v.hsm)) hsm = v.hsm;
  else if (isObject(v.hsm)) {
    hsm = { host: nonEmpty(v.hsm.host, 'hsm.host'), port: port(v.hsm.port, 'hsm.port') };
    const t = posInt(v.hsm.timeoutMs, 'hsm.timeoutMs');
    if (t !== undefined) hsm.timeoutMs = t;
  } else throw bad('hsm', 'must be an HsmApi object or { host, port, timeoutMs? }');
  const out: IssuerConfig = {
    listen,
    databasePath: nonEmpty(v.databasePath, 'databasePath'),
    keys,
    settlementAccountId: nonEmpty(v.settlementAccountId, 'settlementAccountId'),
    hsm,
  };
  if (v.currency !== undefined) {
    if (typeof v.currency !== 'string' || !/^\d{3}$/.test(v.currency))
      throw bad('currency', 'must be 3 digits (ISO 4217)');
    out.currency = v.currency;
  }
  if (v.accountsFile !== undefined) out.accountsFile = nonEmpty(v.accountsFile, 'accountsFile');
  if (v.logPath !== undefined) out.logPath = nonEmpty(v.logPath, 'logPath');
  if (v.log !== undefined) {
    if (!isObject(v.log) || typeof v.log.info !== 'function') throw bad('log', 'must be a Logger');
    out.log = v.log as unknown as Logger;
  }
  if (v.now !== undefined) {
    if (typeof v.now !== 'function') throw bad('now', 'must be a function returning a Date');
    out.now = v.now as () => Date;
  }
  if (v.limits !== undefined) {
    if (!isObject(v.limits)) throw bad('limits', 'must be an object');
    const l = v.limits;
    const limits: NonNullable<IssuerConfig['limits']> = {};
    for (const k of [
      'maxConnections',
      'maxInFlightPerConnection',
      'idleTimeoutMs',
      'hsmTimeoutMs',
      'maxFrameBytes',
    ] as const) {
      const n = posInt(l[k], `limits.${k}`);
      if (n !== undefined) limits[k] = n;
    }
    out.limits = limits;
  }
  const known = [
    'listen',
    'databasePath',
    'keys',
    'settlementAccountId',
    'currency',
    'hsm',
    'accountsFile',
    'logPath',
    'log',
    'limits',
    'now',
  ];
  for (const k of Object.keys(v)) if (!known.includes(k)) throw bad(k, 'unknown property');
  return out;
}

/** Reads a JSON config file and validates it. */
export function loadIssuerConfig(path: string): IssuerConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new IssuerError('ISSUER_CONFIG_INVALID', 'config', `cannot read ${path}`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new IssuerError('ISSUER_CONFIG_INVALID', 'config', `${path} is not JSON`);
  }
  return validateIssuerConfig(json);
}

export interface FrameOutcome {
  response: Uint8Array | null;
  /** What was logged (tests read it). */
  responseCode?: ResponseCode;
  answer?: IssuerAnswer;
}

/** Answers one frame (an iso87-binary message without its length prefix). Never throws. */
export async function answerFrame(issuer: Issuer, frame: Uint8Array, log?: Logger): Promise<FrameOutcome> {
  const started = Date.now();
  let req: Iso8583Message;
  try {
    req = unpack(issuerSpec(), frame);
  } catch (e) {
    log?.warn('frame.unreadable', { error: e, bytes: frame.length });
    return { response: null };
  }
  const fn = req.mti.charCodeAt(2) - 48;
  if (fn % 2 !== 0) {
    log?.warn('frame.not_a_request', { mti: req.mti });
    return { response: null };
  }
  const resp = startResponse(req);
  let code: ResponseCode;
  let answer: IssuerAnswer | undefined;
  let reason: string | undefined;
  let macOk: boolean;
  // Read now, acted on only once the MAC has verified: the PAN token goes to the HSM beside the MAC
  // check (one trip instead of two); `authorize` reads it, and answers 96 when it failed, as before.
  const parsed = parseRequest(req);
  const panToken = parsed.ok ? issuer.panToken(parsed.request.pan) : undefined;
  panToken?.catch(() => {});
  try {
    macOk = await verifyMessageMac(issuer.hsm, issuer.zak, req, frame);
  } catch (e) {
    macOk = false;
    code = '96';
    reason = `MAC check: ${(e as { code?: string }).code ?? 'error'}`;
  }
  if (reason !== undefined) code = '96';
  else if (!macOk) {
    code = 'A0';
    reason = 'request MAC does not verify';
  } else {
    if (!parsed.ok) {
      code = '30';
      reason = `field ${parsed.field}: ${parsed.rule}`;
    } else {
      answer = await issuer.authorize(parsed.request, panToken ? { panToken } : {});
      code = answer.responseCode;
      reason = answer.reason;
    }
  }
  resp.set(39, code!);
  if (answer?.authCode !== undefined) resp.set(38, answer.authCode);
  if (answer?.additionalAmounts !== undefined) resp.set(54, answer.additionalAmounts);
  let response: Uint8Array | null = null;
  try {
    response = await packWithMac(issuer.hsm, issuer.zak, resp);
  } catch (e) {
    log?.error('answer.not_sent', { error: e, mti: req.mti, responseCode: code! });
  }
  const pan = req.get(2);
  log?.info('txn', {
    mti: req.mti,
    type: answer?.type,
    processingCode: req.get(3),
    acquirer: req.get(32),
    terminal: req.get(41),
    stan: req.get(11),
    localDate: req.get(13),
    rrn: req.get(37),
    pan: typeof pan === 'string' ? maskPan(pan) : undefined,
    amountMinor: answer === undefined ? undefined : Number(req.get(4) ?? 0),
    responseCode: code!,
    replay: answer?.replay ?? false,
    reason,
    txnId: answer?.txnId,
    ms: Date.now() - started,
  });
  return { response, responseCode: code!, ...(answer === undefined ? {} : { answer }) };
}

export interface IssuerHandle {
  readonly port: number;
  readonly issuer: Issuer;
  readonly store: Store;
  close(): Promise<void>;
}

/** Starts the issuer from a config: store (migrated), HSM, cards file, TCP listener for the switch. */
export async function startIssuer(config: IssuerConfig): Promise<IssuerHandle> {
  const cfg = validateIssuerConfig(config);
  const log =
    cfg.log ??
    createLogger(
      cfg.logPath === undefined ? { service: 'issuer' } : { service: 'issuer', path: cfg.logPath },
    );
  let client: HsmClient | undefined;
  let hsm: HsmApi;
  if (isHsmApi(cfg.hsm)) hsm = cfg.hsm;
  else {
    client = await HsmClient.connect(cfg.hsm.host, cfg.hsm.port, {
      timeoutMs: cfg.hsm.timeoutMs ?? ISSUER_HSM_TIMEOUT_MS_DEFAULT,
    });
    hsm = client;
  }
  const store = await openStore(cfg.databasePath, { migrations: ISSUER_MIGRATIONS });
  let server: FramedServer | undefined;
  try {
    const issuer = await Issuer.open({
      store,
      hsm,
      zpk: cfg.keys.zpk,
      zak: cfg.keys.zak,
      panTokenKey: cfg.keys.panTokenKey,
      settlementAccountId: cfg.settlementAccountId,
      currency: cfg.currency ?? ISSUER_CURRENCY_DEFAULT,
      hsmTimeoutMs: cfg.limits?.hsmTimeoutMs ?? ISSUER_HSM_TIMEOUT_MS_DEFAULT,
      log,
      ...(cfg.now === undefined ? {} : { now: cfg.now }),
    });
    if (cfg.accountsFile !== undefined) {
      const { added, existing } = await issuer.loadCards(readAccountsFile(cfg.accountsFile).cards);
      log.info('cards.loaded', { added, existing });
    }
    server = await FramedServer.listen({
      host: cfg.listen.host ?? '127.0.0.1',
      port: cfg.listen.port,
      framing: {
        prefix: 'binary2',
        maxFrameBytes: cfg.limits?.maxFrameBytes ?? ISSUER_MAX_FRAME_BYTES_DEFAULT,
      },
      maxConnections: cfg.limits?.maxConnections ?? ISSUER_MAX_CONNECTIONS_DEFAULT,
      maxInFlightPerConnection: cfg.limits?.maxInFlightPerConnection ?? ISSUER_MAX_IN_FLIGHT_DEFAULT,
      idleTimeoutMs: cfg.limits?.idleTimeoutMs ?? ISSUER_IDLE_TIMEOUT_MS_DEFAULT,
      handler: async (frame) => (await answerFrame(issuer, frame, log)).response,
      onError: (error, conn) => log.warn('connection.error', { error, connection: conn.id }),
    });
    const srv = server;
    log.info('issuer.listening', { port: srv.port });
    return {
      port: srv.port,
      issuer,
      store,
      close: async () => {
        await srv.close();
        await store.close();
        await client?.close();
      },
    };
  } catch (e) {
    await server?.close();
    await store.close();
    await client?.close();
    throw e;
  }
}
