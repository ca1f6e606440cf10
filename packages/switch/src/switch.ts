/**
 * The switch (銀聯): listens for acquirers, routes each request by the BIN of its PAN to an issuer link,
 * translates the PIN block between zones and regenerates the MAC on every hop, and answers 14, 15, 91,
 * A0, 30 or 96 itself where the issuer cannot (docs/network.md; decisions in README.md).
 *
 * The request pipeline is a list of small steps with early returns (jPOS's transaction participants):
 * read -> identify the acquirer -> verify its MAC -> check fields -> route -> journal -> translate the
 * PIN -> MAC for the issuer -> send -> verify the issuer's MAC -> MAC for the acquirer -> answer. Every
 * failure becomes a response code; only the TCP handler boundary catches, and it logs once.
 */
import { HsmClient } from '@openposp/hsm';
import type { SwitchHsm } from './hsm.js';
import {
  type CompiledSpec,
  type Iso8583Message,
  loadSpec,
  maskPan,
  startResponse,
  unpack,
} from '@openposp/iso8583';
import {
  type ConnectionInfo,
  createLogger,
  FramedClient,
  FramedServer,
  isNetError,
  type Logger,
} from '@openposp/net';
import {
  type AcquirerLinkConfig,
  type HsmEndpoint,
  type IssuerLinkConfig,
  type ResolvedSwitchConfig,
  type SwitchConfig,
  validateSwitchConfig,
} from './config.js';
import { writeSwitchClearingFile } from './clearing.js';
import { SwitchError } from './errors.js';
import {
  type JournalEntry,
  type JournalQuery,
  type JournalRequest,
  SwitchJournal,
  type SwitchOutcome,
} from './journal.js';
import { checkMessageMac, packWithMac } from './mac.js';
import { loadRoutingTable, type RouteMatch, RoutingTable } from './routing.js';

/** The framing of both network legs: a 2-byte binary length prefix (docs/network.md "Legs and framing"). */
export const NETWORK_FRAMING = { prefix: 'binary2' } as const;
export const NETWORK_SPEC = 'iso87-binary';

/** Response codes the switch gives itself (docs/network.md "Response codes"). */
export const SWITCH_RESPONSE_CODES = {
  formatError: '30',
  noRoute: '14',
  noIssuer: '15',
  issuerInoperative: '91',
  duplicateInFlight: '94',
  systemMalfunction: '96',
  macFailed: 'A0',
} as const;

/** PIN translation replies that mean "the PIN data of this request is bad", not "the HSM is broken". */
const PIN_DATA_REPLIES = new Set(['20', '22', '23', '24']);

/** A link to one issuer. `FramedClient` in production; anything that speaks the same in a test. */
export interface IssuerLink {
  readonly id: string;
  readonly zpk: string;
  readonly zak: string;
  readonly connected: boolean;
  readonly inFlight: number;
  request(frame: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/**
 * The key that pairs a request with its response on a network link: message class and function pair
 * (0200/0210 -> "020", 0400/0410 -> "040"), then the transaction identity (32, 41, 11, 13). Both the
 * switch's issuer links and an acquirer can use it.
 */
export function matchKeyOf(spec: CompiledSpec, frame: Uint8Array): string {
  const m = unpack(spec, frame, { checkSubfields: false });
  const fn = Math.floor((m.mti.charCodeAt(2) - 48) / 2);
  const part = (id: number) => {
    const v = m.get(id);
    return typeof v === 'string' ? v : '';
  };
  return `${m.mti.slice(0, 2)}${fn}|${part(32)}|${part(41)}|${part(11)}|${part(13)}`;
}

/** A request MTI: message function digit (third) even: 0100, 0200, 0220, 0400, 0420, 0800... */
function isRequestMti(mti: string): boolean {
  return (mti.charCodeAt(2) - 48) % 2 === 0;
}

/**
 * The response MTI of a request MTI (0200 -> 0210, 0420 -> 0430). A repeat (0201, 0421) is answered
 * as its first transmission (0210, 0430): ISO 8583:1987 has no "repeat response", and startResponse of
 * @openposp/iso8583 clears the repeat digit the same way.
 */
function responseMtiOf(mti: string): string {
  const origin = mti.charCodeAt(3) - 48;
  return (
    mti.slice(0, 2) +
    String(mti.charCodeAt(2) - 48 + 1) +
    String(origin <= 5 ? origin - (origin % 2) : origin)
  );
}

function text(m: Iso8583Message, id: number): string | undefined {
  const v = m.get(id);
  return typeof v === 'string' ? v : undefined;
}

/** The code of an error, for logs: never its whole object (a driver message could quote a value). */
function errorCode(e: unknown): string {
  const c = (e as { code?: unknown })?.code;
  return typeof c === 'string' ? c : e instanceof Error ? e.name : 'unknown';
}

/** Identity and money facts of a request, read once: the journal and the log take them from here. */
interface Facts {
  mti: string;
  processingCode: string | undefined;
  acquirerId: string | undefined;
  terminalId: string | undefined;
  merchantId: string | undefined;
  stan: string | undefined;
  localDate: string | undefined;
  localTime: string | undefined;
  transmissionAt: string | undefined;
  rrn: string | undefined;
  pan: string | undefined;
  amountMinor: number | undefined;
  currency: string | undefined;
  originalData: string | undefined;
  hasPin: boolean;
}

function factsOf(m: Iso8583Message): Facts {
  const amount = text(m, 4);
  const n = amount !== undefined && /^[0-9]{1,12}$/.test(amount) ? Number(amount) : undefined;
  return {
    mti: m.mti,
    processingCode: text(m, 3),
    acquirerId: text(m, 32),
    terminalId: text(m, 41),
    merchantId: text(m, 42),
    stan: text(m, 11),
    localDate: text(m, 13),
    localTime: text(m, 12),
    transmissionAt: text(m, 7),
    rrn: text(m, 37),
    pan: text(m, 2),
    amountMinor: n !== undefined && Number.isSafeInteger(n) ? n : undefined,
    currency: text(m, 49),
    originalData: text(m, 90),
    hasPin: m.get(52) !== undefined,
  };
}

/** How one request ends: the answer frame (or none) and what the journal and log record. */
interface Outcome {
  frame: Uint8Array | null;
  outcome: SwitchOutcome;
  responseCode: string;
  responseMti?: string | undefined;
  authCode?: string | undefined;
}

/** What the pipeline learned of one request so far. */
interface Tx {
  req: Iso8583Message;
  frame: Uint8Array;
  conn: ConnectionInfo;
  facts: Facts;
  receivedAtMs: number;
  journalId: number | undefined;
  acquirer: AcquirerLinkConfig | undefined;
  route: RouteMatch | undefined;
  forwardedAtMs: number | undefined;
}

export interface SwitchHandle {
  /** The port the switch listens on for acquirers. */
  readonly port: number;
  readonly journal: SwitchJournal;
  /** The switch's record of one transaction (`posp txn show`): by RRN, or identity (32, 41, 11, 13). */
  inquire(q: JournalQuery): Promise<JournalEntry[]>;
  /** Issuer links and whether each is connected, with its requests in flight. */
  links(): { id: string; connected: boolean; inFlight: number }[];
  /** Writes `clearing-switch-<date>.jsonl` in `dir` from the journal (clearing.ts). */
  writeClearingFile(dir: string, date: string): Promise<{ path: string; records: number }>;
  close(): Promise<void>;
}

/**
 * Bound on remembered connection -> acquirer bindings. The server gives no close event, so bindings
 * of closed connections are dropped oldest first (connection ids only grow); a live connection whose
 * binding was dropped is bound again by its next authenticated request.
 */
function bindingsMax(cfg: ResolvedSwitchConfig): number {
  return cfg.limits.maxConnections * 2;
}

export class SwitchService {
  readonly #cfg: ResolvedSwitchConfig;
  readonly #spec: CompiledSpec;
  readonly #hsm: SwitchHsm;
  readonly #routing: RoutingTable;
  readonly #journal: SwitchJournal;
  readonly #log: Logger;
  readonly #acquirers: Map<string, AcquirerLinkConfig>;
  readonly #issuers: Map<string, IssuerLink>;
  readonly #bindings = new Map<number, string>();
  readonly #now: () => number;

  constructor(opts: {
    config: ResolvedSwitchConfig;
    hsm: SwitchHsm;
    routing: RoutingTable;
    journal: SwitchJournal;
    log: Logger;
    issuers: IssuerLink[];
    now?: () => number;
  }) {
    this.#cfg = opts.config;
    this.#spec = loadSpec(NETWORK_SPEC);
    this.#hsm = opts.hsm;
    this.#routing = opts.routing;
    this.#journal = opts.journal;
    this.#log = opts.log;
    this.#acquirers = new Map(opts.config.acquirers.map((a) => [a.id, a]));
    this.#issuers = new Map(opts.issuers.map((l) => [l.id, l]));
    this.#now = opts.now ?? Date.now;
  }

  /** An HSM call bounded by the HSM timeout (SWITCH_HSM_TIMEOUT beyond it: the request is answered 96). */
  #hsmCall<T>(what: string, call: () => Promise<T>): Promise<T> {
    const ms = this.#cfg.timeouts.hsmMs;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new SwitchError('SWITCH_HSM_TIMEOUT', what, `no HSM answer within ${ms} ms`)),
        ms,
      );
    });
    return Promise.race([call(), timeout]).finally(() => clearTimeout(timer));
  }

  /**
   * The TCP handler: one frame from an acquirer in, one frame (or none) out. It never throws: a
   * failure anywhere is an answer code, and the request is journaled and logged once here.
   */
  async handle(frame: Uint8Array, conn: ConnectionInfo): Promise<Uint8Array | null> {
    const receivedAtMs = this.#now();
    let req: Iso8583Message;
    try {
      req = unpack(this.#spec, frame);
    } catch (e) {
      // Not even the identity can be read: nothing to answer to (docs/network.md, services rules).
      this.#log.warn('request_unreadable', { conn: conn.id, bytes: frame.length, error: errorCode(e) });
      return null;
    }
    if (!isRequestMti(req.mti)) {
      this.#log.warn('request_not_a_request', { conn: conn.id, mti: req.mti });
      return null;
    }
    const tx: Tx = {
      req,
      frame,
      conn,
      facts: factsOf(req),
      receivedAtMs,
      journalId: undefined,
      acquirer: undefined,
      route: undefined,
      forwardedAtMs: undefined,
    };
    let out: Outcome;
    try {
      out = await this.#pipeline(tx);
    } catch (e) {
      // A defect (the steps map every expected failure): answer 96, MACed when the acquirer is known.
      this.#log.error('pipeline_failed', { conn: conn.id, error: errorCode(e) });
      out = await this.#refuse(tx, '96', 'hsm_failed', tx.acquirer !== undefined);
    }
    await this.#finish(tx, out);
    return out.frame;
  }

  async #pipeline(tx: Tx): Promise<Outcome> {
    const { req, facts } = tx;
    // 1. Who sent it: field 32 names the acquirer, whose keys check the MAC.
    if (facts.acquirerId === undefined || !/^[0-9]{1,11}$/.test(facts.acquirerId))
      return this.#refuse(tx, '30', 'format_error', false);
    const acquirer = this.#acquirers.get(facts.acquirerId);
    if (acquirer === undefined) return this.#refuse(tx, 'A0', 'unknown_acquirer', false);
    const bound = this.#bindings.get(tx.conn.id);
    if (bound !== undefined && bound !== acquirer.id)
      return this.#refuse(tx, 'A0', 'acquirer_mismatch', false);

    // 2. Its MAC under the acquirer's ZAK; from here on our answers carry a MAC under that ZAK.
    let mac: Awaited<ReturnType<typeof checkMessageMac>>;
    try {
      mac = await this.#hsmCall('verifyMac', () => checkMessageMac(this.#hsm, acquirer.zak, req, tx.frame));
    } catch (e) {
      this.#log.error('hsm_failed', { conn: tx.conn.id, step: 'verify_request_mac', error: errorCode(e) });
      tx.acquirer = acquirer;
      return this.#refuse(tx, '96', 'hsm_failed', true);
    }
    tx.acquirer = acquirer;
    if (mac !== 'ok') return this.#refuse(tx, 'A0', mac === 'missing' ? 'mac_missing' : 'mac_failed', true);
    // Check and bind in one synchronous step, so two first requests on one connection cannot both bind.
    const boundNow = this.#bindings.get(tx.conn.id);
    if (boundNow !== undefined && boundNow !== acquirer.id) {
      tx.acquirer = undefined;
      return this.#refuse(tx, 'A0', 'acquirer_mismatch', false);
    }
    if (boundNow === undefined) this.#bind(tx.conn.id, acquirer.id);

    // 3. The fields the switch needs: PAN to route, the identity for the journal and the issuer link.
    if (
      facts.pan === undefined ||
      !/^[0-9]{12,19}$/.test(facts.pan) ||
      facts.stan === undefined ||
      facts.terminalId === undefined ||
      facts.localDate === undefined
    )
      return this.#refuse(tx, '30', 'format_error', true);

    // 4. Route by BIN: no entry 14; an issuer with no link 15 (no such issuer); a configured link that is
    //    down 91 (issuer inoperative, docs/network.md: the acquirer treats it as retryable/unknown).
    const route = this.#routing.route(facts.pan);
    if (route === undefined) return this.#refuse(tx, '14', 'no_route', true);
    tx.route = route;
    const link = this.#issuers.get(route.issuerId);
    if (link === undefined) return this.#refuse(tx, '15', 'no_issuer', true);
    if (!link.connected) return this.#refuse(tx, '91', 'issuer_down', true);

    // 5. Journal before anything leaves: a crash after sending must leave a visible pending row. The PIN
    //    translation (6) runs in the HSM meanwhile: it changes nothing anywhere, and its result is used
    //    only once the journal row is written (a journal failure still answers 96 first, as before).
    const fwd = req.clone();
    fwd.set(33, this.#cfg.institutionId);
    const pinBlock = req.get(52);
    const [journaled, translated] = await Promise.allSettled([
      this.#journal.recordRequest(this.#journalRequest(tx)),
      pinBlock instanceof Uint8Array
        ? this.#hsmCall('translatePinZpkToZpk', () =>
            this.#hsm.translatePinZpkToZpk({
              pinBlock,
              format: 0,
              pan: facts.pan!,
              zpkIn: acquirer.zpk,
              zpkOut: link.zpk,
              formatOut: 0,
            }),
          )
        : Promise.resolve(undefined),
    ]);
    if (journaled.status === 'rejected') {
      this.#log.error('journal_failed', {
        conn: tx.conn.id,
        step: 'record_request',
        error: errorCode(journaled.reason),
      });
      return this.#refuse(tx, '96', 'hsm_failed', true);
    }
    tx.journalId = journaled.value;

    // 6. The message for the issuer: field 33, the PIN block under the issuer's ZPK, a MAC under its ZAK.
    if (translated.status === 'rejected') {
      const e: unknown = translated.reason;
      const reply = (e as { reply?: unknown }).reply;
      if (typeof reply === 'string' && PIN_DATA_REPLIES.has(reply))
        return this.#refuse(tx, '30', 'pin_invalid', true);
      this.#log.error('hsm_failed', { conn: tx.conn.id, step: 'translate_pin', error: errorCode(e) });
      return this.#refuse(tx, '96', 'hsm_failed', true);
    }
    if (translated.value !== undefined) fwd.set(52, translated.value);
    let fwdFrame: Uint8Array;
    try {
      fwdFrame = await this.#hsmCall('generateMac', () => packWithMac(this.#hsm, link.zak, fwd));
    } catch (e) {
      this.#log.error('hsm_failed', { conn: tx.conn.id, step: 'mac_for_issuer', error: errorCode(e) });
      return this.#refuse(tx, '96', 'hsm_failed', true);
    }

    // 7. Send and wait at most the issuer timeout. Anything but a verified answer is no answer: 91
    //    (the acquirer reverses; the issuer's journal and reconciliation settle what it did).
    let respFrame: Uint8Array;
    tx.forwardedAtMs = this.#now();
    try {
      respFrame = await link.request(fwdFrame, this.#cfg.timeouts.issuerMs);
    } catch (e) {
      const code = isNetError(e) ? e.code : undefined;
      if (code === 'NET_BUSY') {
        tx.forwardedAtMs = undefined;
        return this.#refuse(tx, '91', 'issuer_busy', true);
      }
      if (code === 'NET_KEY_IN_USE') {
        tx.forwardedAtMs = undefined;
        return this.#refuse(tx, '94', 'duplicate_in_flight', true);
      }
      if (code !== 'NET_TIMEOUT' && code !== 'NET_CLOSED')
        this.#log.error('issuer_send_failed', { conn: tx.conn.id, issuer: link.id, error: errorCode(e) });
      return this.#refuse(tx, '91', 'issuer_timeout', true);
    }
    let resp: Iso8583Message;
    try {
      resp = unpack(this.#spec, respFrame);
    } catch {
      return this.#refuse(tx, '91', 'issuer_malformed', true);
    }
    if (resp.mti !== responseMtiOf(req.mti) || text(resp, 39) === undefined)
      return this.#refuse(tx, '91', 'issuer_malformed', true);
    // 8. The issuer's MAC is checked, and the answer for the acquirer MACed under its ZAK, in one trip to
    //    the HSM: the answer's MAC is used only when the issuer's verified (otherwise 91, as before). A PIN
    //    block never travels back.
    const out = resp.clone();
    out.unset(52);
    const [verified, maced] = await Promise.allSettled([
      this.#hsmCall('verifyMac', () => checkMessageMac(this.#hsm, link.zak, resp, respFrame)),
      this.#hsmCall('generateMac', () => packWithMac(this.#hsm, acquirer.zak, out)),
    ]);
    if (verified.status === 'rejected') {
      this.#log.error('hsm_failed', {
        conn: tx.conn.id,
        step: 'verify_issuer_mac',
        error: errorCode(verified.reason),
      });
      return this.#refuse(tx, '96', 'hsm_failed', true);
    }
    if (verified.value !== 'ok') return this.#refuse(tx, '91', 'issuer_mac_failed', true);
    if (maced.status === 'rejected') {
      this.#log.error('hsm_failed', {
        conn: tx.conn.id,
        step: 'mac_for_acquirer',
        error: errorCode(maced.reason),
      });
      return this.#refuse(tx, '96', 'hsm_failed', true);
    }
    return {
      frame: maced.value,
      outcome: 'answered',
      responseCode: text(out, 39)!,
      responseMti: out.mti,
      authCode: text(out, 38),
    };
  }

  #bind(connId: number, acquirerId: string): void {
    this.#bindings.set(connId, acquirerId);
    const max = bindingsMax(this.#cfg);
    while (this.#bindings.size > max) {
      const oldest = this.#bindings.keys().next().value as number;
      this.#bindings.delete(oldest);
    }
  }

  /**
   * The switch's own answer: the request's echo fields, 39 = `code`, 33 = the switch's institution id,
   * and a MAC under the acquirer's ZAK when `withMac` (the acquirer is known and authenticated, or at
   * least named by a configured field 32). If even that MAC cannot be made, the answer goes without one:
   * the acquirer then treats it as no answer, as it must.
   */
  async #refuse(tx: Tx, code: string, outcome: SwitchOutcome, withMac: boolean): Promise<Outcome> {
    const resp = startResponse(tx.req);
    resp.set(39, code);
    resp.set(33, this.#cfg.institutionId);
    resp.unset(52);
    let frame: Uint8Array | null = null;
    const acquirer = tx.acquirer;
    if (withMac && acquirer !== undefined) {
      try {
        frame = await this.#hsmCall('generateMac', () => packWithMac(this.#hsm, acquirer.zak, resp));
      } catch (e) {
        this.#log.error('hsm_failed', { conn: tx.conn.id, step: 'mac_for_refusal', error: errorCode(e) });
      }
    }
    if (frame === null) {
      try {
        // No MAC: not even the placeholder a failed packWithMac left (in 64, or 128 beside field 90).
        resp.unset(64);
        resp.unset(128);
        frame = resp.pack().slice();
      } catch (e) {
        // An echo field the request carried does not pack (the request was odd): nothing to send.
        this.#log.warn('answer_unpackable', { conn: tx.conn.id, error: errorCode(e) });
      }
    }
    return { frame, outcome, responseCode: code, responseMti: resp.mti };
  }

  #journalRequest(tx: Tx): JournalRequest {
    const { pan: _pan, ...rest } = tx.facts;
    return {
      ...rest,
      receivedAtMs: tx.receivedAtMs,
      // Masked inside the journal; only a plausible PAN is passed at all.
      pan: tx.facts.pan !== undefined && /^[0-9]{12,19}$/.test(tx.facts.pan) ? tx.facts.pan : undefined,
    };
  }

  /** Completes the journal row (creating it for requests refused before routing) and logs the request once. */
  async #finish(tx: Tx, out: Outcome): Promise<void> {
    const answeredAtMs = this.#now();
    try {
      if (tx.journalId === undefined)
        tx.journalId = await this.#journal.recordRequest(this.#journalRequest(tx));
      await this.#journal.recordAnswer(tx.journalId, {
        outcome: out.outcome,
        responseCode: out.responseCode,
        responseMti: out.responseMti,
        authCode: out.authCode,
        issuerId: tx.route?.issuerId,
        binEntry: tx.route ? `routes[${tx.route.entry.index}]` : undefined,
        forwardingId: tx.forwardedAtMs !== undefined ? this.#cfg.institutionId : undefined,
        forwardedAtMs: tx.forwardedAtMs,
        answeredAtMs,
      });
    } catch (e) {
      // The answer still goes: after the issuer moved money, the acquirer must hear it. The row stays
      // pending (or absent) and reconciliation finds it.
      this.#log.error('journal_failed', { conn: tx.conn.id, step: 'record_answer', error: errorCode(e) });
    }
    const f = tx.facts;
    const fields = {
      conn: tx.conn.id,
      mti: f.mti,
      processingCode: f.processingCode,
      acquirer: f.acquirerId,
      terminal: f.terminalId,
      stan: f.stan,
      localDate: f.localDate,
      rrn: f.rrn,
      pan: f.pan !== undefined ? maskPan(f.pan) : undefined,
      amountMinor: f.amountMinor,
      issuer: tx.route?.issuerId,
      binEntry: tx.route ? `routes[${tx.route.entry.index}]` : undefined,
      responseCode: out.responseCode,
      outcome: out.outcome,
      answered: out.frame !== null,
      durationMs: answeredAtMs - tx.receivedAtMs,
    };
    if (out.outcome === 'answered') this.#log.info('request', fields);
    else this.#log.warn('request', fields);
  }
}

/** A FramedClient to one issuer, with reconnect, as an IssuerLink. */
async function connectIssuer(
  cfg: ResolvedSwitchConfig,
  issuer: IssuerLinkConfig,
  spec: CompiledSpec,
  log: Logger,
): Promise<IssuerLink> {
  const client = await FramedClient.connect({
    host: issuer.host,
    port: issuer.port,
    framing: NETWORK_FRAMING,
    timeoutMs: cfg.timeouts.issuerMs,
    connectTimeoutMs: cfg.timeouts.connectMs,
    maxInFlight: cfg.limits.maxInFlightPerLink,
    keyOf: (frame) => matchKeyOf(spec, frame),
    reconnect: { delayMs: cfg.timeouts.reconnectDelayMs, maxDelayMs: cfg.timeouts.reconnectMaxDelayMs },
    onUnmatched: (frame, reason) =>
      log.warn('issuer_unmatched_answer', { issuer: issuer.id, bytes: frame.length, reason }),
  });
  return {
    id: issuer.id,
    zpk: issuer.zpk,
    zak: issuer.zak,
    get connected() {
      return client.connected;
    },
    get inFlight() {
      return client.inFlight;
    },
    request: (frame, timeoutMs) => client.request(frame, timeoutMs),
    close: () => client.close(),
  };
}

function isEndpoint(h: SwitchHsm | HsmEndpoint): h is HsmEndpoint {
  return typeof (h as HsmEndpoint).host === 'string' && typeof (h as SwitchHsm).verifyMac !== 'function';
}

/**
 * Starts a switch: validates the config, loads the routing table, opens the journal, checks every zone
 * key block with the HSM (BU; a bad one is SWITCH_CONFIG_INVALID naming it), connects the issuer links
 * (in the background when an issuer is not up yet) and listens for acquirers.
 */
export async function startSwitch(config: SwitchConfig): Promise<SwitchHandle> {
  const cfg = validateSwitchConfig(config);
  const log =
    cfg.log ??
    createLogger(
      cfg.logPath !== undefined ? { service: 'switch', path: cfg.logPath } : { service: 'switch' },
    );
  const routing =
    cfg.routingFile !== undefined
      ? await loadRoutingTable(cfg.routingFile)
      : RoutingTable.fromJson(cfg.routing);
  const configured = new Set(cfg.issuers.map((i) => i.id));
  for (const id of routing.issuerIds())
    if (!configured.has(id)) log.warn('routing_issuer_unconfigured', { issuer: id, answer: '15' });

  const cleanups: (() => Promise<void>)[] = [];
  const undo = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  try {
    let hsm: SwitchHsm;
    if (isEndpoint(cfg.hsm)) {
      const client = await HsmClient.connect(cfg.hsm.host, cfg.hsm.port, { timeoutMs: cfg.timeouts.hsmMs });
      cleanups.push(() => client.close());
      hsm = client;
    } else hsm = cfg.hsm;

    const keys: [string, string][] = [
      ...cfg.acquirers.flatMap((a, i): [string, string][] => [
        [`config.acquirers[${i}].zpk`, a.zpk],
        [`config.acquirers[${i}].zak`, a.zak],
      ]),
      ...cfg.issuers.flatMap((a, i): [string, string][] => [
        [`config.issuers[${i}].zpk`, a.zpk],
        [`config.issuers[${i}].zak`, a.zak],
      ]),
    ];
    for (const [path, block] of keys) {
      try {
        const kcv = await hsm.keyCheckValue(block);
        log.info('zone_key', { path, checkValue: kcv });
      } catch (e) {
        throw new SwitchError(
          'SWITCH_CONFIG_INVALID',
          path,
          `the HSM refuses this key block (${errorCode(e)})`,
          {
            cause: e,
          },
        );
      }
    }

    const journal = await SwitchJournal.open(cfg.databasePath);
    cleanups.push(() => journal.close());
    const spec = loadSpec(NETWORK_SPEC);
    const links: IssuerLink[] = [];
    for (const issuer of cfg.issuers) {
      const link = await connectIssuer(cfg, issuer, spec, log);
      cleanups.push(() => link.close());
      links.push(link);
    }
    const service = new SwitchService({ config: cfg, hsm, routing, journal, log, issuers: links });
    const server = await FramedServer.listen({
      host: cfg.listen.host,
      port: cfg.listen.port,
      framing: NETWORK_FRAMING,
      maxConnections: cfg.limits.maxConnections,
      maxInFlightPerConnection: cfg.limits.maxInFlightPerLink,
      idleTimeoutMs: cfg.timeouts.idleMs,
      handler: (frame, conn) => service.handle(frame, conn),
      onError: (e, conn) => log.warn('connection_error', { conn: conn.id, error: errorCode(e) }),
    });
    cleanups.push(() => server.close());
    log.info('started', {
      port: server.port,
      acquirers: cfg.acquirers.map((a) => a.id),
      issuers: cfg.issuers.map((i) => i.id),
      routes: routing.entries.length,
    });
    let closed = false;
    return {
      port: server.port,
      journal,
      inquire: (q) => journal.inquire(q),
      links: () => links.map((l) => ({ id: l.id, connected: l.connected, inFlight: l.inFlight })),
      writeClearingFile: (dir, date) => writeSwitchClearingFile(journal, { dir, date }),
      close: async () => {
        if (closed) return;
        closed = true;
        await undo();
        log.info('stopped', {});
      },
    };
  } catch (e) {
    await undo();
    throw e;
  }
}
