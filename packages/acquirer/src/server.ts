/**
 * The POSP as a process: the terminal listener (cup-pos: 2-byte length | TPDU | header | message), the
 * switch link (iso87-binary, 2-byte length, reconnecting), the HSM, the store (a SQLite file, or PostgreSQL
 * when `databasePath` is a postgres:// URL: then several POSP nodes may share it, README "More than one node"). The TCP handler is
 * the boundary: it never throws, logs one line per message, and answers with the TPDU swapped.
 */
import { HsmClient } from '@openposp/hsm';
import { joinCupFrame, loadSpec, replyTpdu, splitCupFrame, unpack } from '@openposp/iso8583';
import { createLogger, FramedClient, FramedServer } from '@openposp/net';
import { openStore, type Store } from '@openposp/store';
import { type Clock, localTimeOf, resolveMmdd, systemClock } from './clock.js';
import { type AcquirerConfig, loadTerminalsFile, validateAcquirerConfig } from './config.js';
import { AcquirerError } from './errors.js';
import { type AcquirerHsm, isAcquirerHsm } from './hsm.js';
import { Journal, type JournalEntry } from './journal.js';
import { ACQUIRER_MIGRATIONS } from './migrations.js';
import { PanVault } from './panvault.js';
import { type AcquirerLogger, handleTerminalMessage, type PipelineDeps } from './pipeline.js';
import { ReversalBook } from './reversal.js';
import { enableSecureDelete, type SafItem, SafQueue, type SafState, SafWorker } from './saf.js';
import {
  Batches,
  type ClearingRecord,
  type MerchantSettlement,
  merchantSettlementOf,
  writeClearingFileOf,
} from './settlement.js';
import { type RegisterTerminalRequest, type TerminalRecord, TerminalTable } from './terminals.js';

/** `inquire` by RRN (12 digits) or by identity: terminal id, STAN (6 digits), date (MMDD or YYYYMMDD). */
export type InquiryKey = string | { terminalId: string; stan: string; date: string };

export interface AcquirerHandle {
  /** The terminal listener's port. */
  readonly port: number;
  registerTerminal(req: RegisterTerminalRequest): Promise<TerminalRecord>;
  getTerminal(terminalId: string): Promise<TerminalRecord | undefined>;
  /** The true state of one transaction at the POSP (`posp txn show`), or undefined when never journaled. */
  inquire(key: InquiryKey): Promise<JournalEntry | undefined>;
  readonly journal: Journal;
  /** The store-and-forward queue: list, and the operator's retry and drop; `runOnce` sends what is due now. */
  readonly saf: SafOperator & { runOnce(): Promise<number> };
  readonly batches: Batches;
  /** What each merchant is owed for the POSP local date YYYYMMDD, less the configured fee. */
  merchantSettlement(date: string): Promise<MerchantSettlement>;
  /** Writes `clearing-acquirer-<date>.jsonl` into `dir` (docs/network.md "Clearing files"). */
  writeClearingFile(dir: string, date: string): Promise<{ path: string; records: ClearingRecord[] }>;
  close(): Promise<void>;
}

/** The operator's view of the store-and-forward queue (no PAN: items carry the masked PAN only). */
export interface SafOperator {
  list(state?: SafState): Promise<SafItem[]>;
  retry(id: number): Promise<SafItem>;
  drop(id: number): Promise<SafItem>;
}

/**
 * Opens a POSP database (a SQLite path or a postgres:// URL) for its operator queue (`posp saf list`),
 * with or without a running POSP (the POSP's worker sees a retry at its next poll).
 */
export async function openAcquirerSaf(
  databasePath: string,
  clock: Clock = systemClock,
): Promise<SafOperator & { close(): Promise<void> }> {
  const store = await openStore(databasePath, { migrations: ACQUIRER_MIGRATIONS });
  await enableSecureDelete(store);
  const q = new SafQueue(store);
  return {
    list: (state) => q.list(state),
    retry: (id) => q.retry(id, clock().toISOString()),
    drop: (id) => q.drop(id, clock().toISOString()),
    close: () => store.close(),
  };
}

/** Finds one journal entry. Throws ACQUIRER_INQUIRY_INVALID on a malformed key. */
export async function inquireJournal(
  journal: Journal,
  key: InquiryKey,
  now: Date = new Date(),
  utcOffsetMinutes?: number,
): Promise<JournalEntry | undefined> {
  if (typeof key === 'string') {
    if (!/^\d{12}$/.test(key))
      throw new AcquirerError('ACQUIRER_INQUIRY_INVALID', 'rrn', 'must be 12 digits');
    return journal.byRrn(key);
  }
  if (typeof key !== 'object' || key === null)
    throw new AcquirerError(
      'ACQUIRER_INQUIRY_INVALID',
      'key',
      'must be an RRN or { terminalId, stan, date }',
    );
  if (typeof key.terminalId !== 'string' || key.terminalId.length !== 8)
    throw new AcquirerError('ACQUIRER_INQUIRY_INVALID', 'terminalId', 'must be 8 characters');
  if (typeof key.stan !== 'string' || !/^\d{1,6}$/.test(key.stan))
    throw new AcquirerError('ACQUIRER_INQUIRY_INVALID', 'stan', 'must be 1 to 6 digits');
  let date: string;
  if (typeof key.date === 'string' && /^\d{8}$/.test(key.date)) date = key.date;
  else if (typeof key.date === 'string' && /^\d{4}$/.test(key.date))
    date = resolveMmdd(key.date, localTimeOf(now, utcOffsetMinutes).date);
  else throw new AcquirerError('ACQUIRER_INQUIRY_INVALID', 'date', 'must be MMDD or YYYYMMDD');
  return journal.byIdentity(key.terminalId, key.stan.padStart(6, '0'), date);
}

/** Opens a POSP database for reading its journal (`posp txn show` without a running POSP). */
export async function openAcquirerJournal(databasePath: string): Promise<{
  journal: Journal;
  inquire(key: InquiryKey): Promise<JournalEntry | undefined>;
  close(): Promise<void>;
}> {
  const store = await openStore(databasePath, { migrations: ACQUIRER_MIGRATIONS });
  const journal = new Journal(store);
  return { journal, inquire: (k) => inquireJournal(journal, k), close: () => store.close() };
}

/** The match key of an iso87-binary frame on the switch link: terminal, STAN, RRN (all echoed). */
function switchKeyOf(frame: Uint8Array): string {
  const m = unpack(loadSpec('iso87-binary'), frame, { checkSubfields: false });
  const g = (f: number): string => {
    const v = m.get(f);
    return typeof v === 'string' ? v : '';
  };
  return `${g(41)}|${g(11)}|${g(37)}`;
}

const silentLogger: AcquirerLogger = { info() {} };

/** Starts the POSP. Validates the config first (ACQUIRER_CONFIG_INVALID naming the path). */
export async function startAcquirer(input: AcquirerConfig): Promise<AcquirerHandle> {
  const config = validateAcquirerConfig(input);
  const clock: Clock = config.clock ?? systemClock;
  const log: AcquirerLogger =
    config.logger ??
    (config.logPath !== undefined
      ? createLogger({ service: 'acquirer', path: config.logPath })
      : silentLogger);
  const terminalsFromFile = config.terminalsFile !== undefined ? loadTerminalsFile(config.terminalsFile) : [];

  const closers: (() => Promise<void>)[] = [];
  const closeAll = async (): Promise<void> => {
    for (const c of closers.splice(0).reverse()) {
      try {
        await c();
      } catch {
        // Closing is best effort: each resource is closed once, whatever the others do.
      }
    }
  };
  try {
    let hsm: AcquirerHsm;
    if (isAcquirerHsm(config.hsm)) hsm = config.hsm;
    else {
      const ep = config.hsm;
      let client: HsmClient;
      try {
        client = await HsmClient.connect(ep.host, ep.port, {
          ...(ep.headerLength !== undefined ? { headerLength: ep.headerLength } : {}),
          timeoutMs: ep.timeoutMs ?? config.timeouts.hsmMs,
        });
      } catch {
        throw new AcquirerError('ACQUIRER_HSM_UNAVAILABLE', 'hsm', `no connection to ${ep.host}:${ep.port}`);
      }
      closers.push(() => client.close());
      if (!isAcquirerHsm(client))
        throw new AcquirerError(
          'ACQUIRER_HSM_UNAVAILABLE',
          'hsm',
          'the client lacks operations the POSP needs',
        );
      hsm = client;
    }

    const store: Store = await openStore(config.databasePath, { migrations: ACQUIRER_MIGRATIONS });
    closers.push(() => store.close());
    await enableSecureDelete(store);
    const saf = new SafQueue(store);
    const reversals = new ReversalBook(store);
    const batches = new Batches(store);
    const terminals = new TerminalTable(store, hsm, () => clock().toISOString());
    const journal = new Journal(store);
    for (const t of [...terminalsFromFile, ...(config.terminals ?? [])]) await terminals.register(t);

    const switchLink = await FramedClient.connect({
      host: config.switch.host,
      port: config.switch.port,
      framing: { prefix: 'binary2' },
      timeoutMs: config.timeouts.switchMs,
      maxInFlight: config.switch.maxInFlight ?? 256,
      connectTimeoutMs: config.switch.connectTimeoutMs ?? 5000,
      keyOf: switchKeyOf,
      reconnect: {
        delayMs: config.switch.reconnectDelayMs ?? 200,
        maxDelayMs: config.switch.reconnectMaxDelayMs ?? 5000,
      },
      onUnmatched: (_frame, reason) => log.warn?.('switch_answer_unmatched', { reason }),
    });
    closers.push(() => switchLink.close());

    const vault = new PanVault(hsm, config.dataKey);
    const deps: PipelineDeps = {
      hsm,
      terminals,
      journal,
      switchLink,
      clock,
      config: {
        acquirerId: config.acquirerId,
        zpk: config.zoneKeys.zpk,
        zak: config.zoneKeys.zak,
        currency: config.currency,
        timeouts: config.timeouts,
        utcOffsetMinutes: config.utcOffsetMinutes,
      },
      cupSpec: loadSpec('cup-pos'),
      netSpec: loadSpec('iso87-binary'),
      inFlight: new Map(),
      saf,
      vault,
      reversals,
      batches,
    };

    // Closed before the store (closers run in reverse): a pass in progress finishes first.
    const worker = new SafWorker({
      queue: saf,
      vault,
      hsm,
      switchLink,
      netSpec: deps.netSpec,
      zak: config.zoneKeys.zak,
      switchMs: config.timeouts.switchMs,
      hsmMs: config.timeouts.hsmMs,
      clock,
      options: config.saf,
      log,
    });
    if (config.saf.enabled) worker.start();
    closers.push(() => worker.stop());

    const server = await FramedServer.listen({
      ...(config.listen.host !== undefined ? { host: config.listen.host } : {}),
      port: config.listen.port,
      framing: { prefix: 'binary2' },
      maxConnections: config.listen.maxConnections ?? 1000,
      maxInFlightPerConnection: config.listen.maxInFlightPerConnection ?? 32,
      idleTimeoutMs: config.listen.idleTimeoutMs ?? 300_000,
      handler: async (frame, conn) => {
        const started = Date.now();
        let cup: ReturnType<typeof splitCupFrame>;
        try {
          cup = splitCupFrame(frame);
        } catch (e) {
          log.warn?.('terminal_frame_dropped', { conn: conn.id, code: (e as { code?: unknown }).code });
          return null;
        }
        try {
          const r = await handleTerminalMessage(deps, cup.message);
          const ctx = r.ctx;
          const fields: Record<string, unknown> = {
            conn: conn.id,
            mti: ctx?.req.mti,
            type: ctx?.kind,
            terminalId: ctx?.terminal?.terminalId ?? safeText(ctx?.req.get(41)),
            stan: safeText(ctx?.req.get(11)),
            rrn: ctx?.entry?.rrn,
            panMasked: ctx?.panMasked,
            amountMinor: ctx?.amountMinor,
            responseCode: r.responseCode,
            stoppedAt: ctx?.stoppedAt,
            notes: ctx?.notes.length ? ctx.notes.join(',') : undefined,
            errorCode:
              ctx?.error === undefined ? undefined : ((ctx.error as { code?: unknown }).code ?? 'error'),
            ms: Date.now() - started,
          };
          if (r.answer === null) {
            log.warn?.('terminal_message_dropped', { ...fields, reason: r.dropped });
            return null;
          }
          const packed = r.answer.pack();
          log.info(ctx?.kind === 'signin' ? 'sign_in' : 'transaction', fields);
          return joinCupFrame({ tpdu: replyTpdu(cup.tpdu), header: cup.header, message: packed });
        } catch (e) {
          // A defect: logged by code only, and the terminal gets no answer (it reverses by itself).
          log.error?.('terminal_handler_failed', {
            conn: conn.id,
            code: (e as { code?: unknown }).code ?? 'error',
          });
          return null;
        }
      },
      onError: (e, conn) =>
        log.warn?.('terminal_link_error', { conn: conn.id, code: (e as { code?: unknown }).code ?? 'error' }),
    });
    closers.push(() => server.close());
    log.info('started', { port: server.port, acquirerId: config.acquirerId });

    return {
      port: server.port,
      registerTerminal: (req) => terminals.register(req),
      getTerminal: (id) => terminals.get(id),
      inquire: (key) => inquireJournal(journal, key, clock(), config.utcOffsetMinutes),
      journal,
      saf: {
        list: (state) => saf.list(state),
        retry: (id) => saf.retry(id, clock().toISOString()),
        drop: (id) => saf.drop(id, clock().toISOString()),
        runOnce: () => worker.runOnce(),
      },
      batches,
      merchantSettlement: (date) =>
        merchantSettlementOf(store, date, config.settlement.feeBasisPoints, config.utcOffsetMinutes),
      writeClearingFile: (dir, date) => writeClearingFileOf(store, dir, date, config.utcOffsetMinutes),
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** A printable field value for the log (terminal id, STAN), or undefined. */
function safeText(v: unknown): string | undefined {
  return typeof v === 'string' && /^[\x20-\x7e]{1,15}$/.test(v) ? v : undefined;
}
