/**
 * Store and forward (SAF): the reversal advices the POSP owes the switch, in a persistent SQLite queue
 * (docs/network.md "Reversals, store and forward"). Two sources put an advice here:
 * - a terminal's 0400 the switch did not answer in time (the terminal got 00 once it was queued);
 * - a financial request of the POSP's own that went `unknown` (no answer, or an answer whose MAC failed):
 *   the terminal got 91 and will not reverse it, so the POSP does.
 * A worker sends each due advice as an iso87-binary 0420 (the 0400's content, field 90, MAC in 128) with
 * exponential back-off (`baseDelayMs` doubling up to `maxDelayMs`) until a valid 0430/0410 arrives, or
 * the advice expires (`maxAttempts` sends or `maxAgeMs` old) into the operator queue, which an operator
 * lists, retries or drops (`posp saf list`).
 *
 * The full PAN: the issuer matches a reversal by card (field 2), so the row keeps it while the advice is
 * owed, sealed by the HSM under the POSP's data key (`pan_sealed`, src/panvault.ts); the worker opens it
 * just before packing the 0420. It is set to NULL when the advice is acknowledged or dropped. Rows queued
 * by an earlier version hold a clear `pan`, cleared the same way, with SQLite `secure_delete` on.
 */
import type { Iso8583Message, CompiledSpec } from '@openposp/iso8583';
import { Iso8583Message as Message, unpack } from '@openposp/iso8583';
import type { Queryable, Store } from '@openposp/store';
import { type Clock, transmissionDateTimeOf } from './clock.js';
import { AcquirerError } from './errors.js';
import type { AcquirerHsm } from './hsm.js';
import type { JournalEntry } from './journal.js';
import { checkMessageMac, packWithMac } from './mac.js';
import type { PanVault } from './panvault.js';

/** Bounds of the store-and-forward worker, ms unless named otherwise. */
export interface SafOptions {
  /** Delay after the first failed send; doubles at every further one. Default 2000. */
  baseDelayMs: number;
  /** The back-off never waits longer than this. Default 60000. */
  maxDelayMs: number;
  /**
   * Sends before the advice goes to the operator queue. Default 12. Only sends that left the POSP count:
   * one refused before writing (link down: `SAF_NOT_SENT_NET_CODES`, NET_CLOSED "not connected") does not.
   */
  maxAttempts: number;
  /**
   * Age after which a still unacknowledged advice goes to the operator queue, sent or not. Default
   * 86400000 (24 h). The only bound for an advice the link never let out.
   */
  maxAgeMs: number;
  /** How often the worker looks for due advices. Default 1000. */
  pollMs: number;
  /** Advices sent per poll at most. Default 32. */
  batchSize: number;
  /**
   * Sends of one poll in flight at once (the switch link multiplexes). Default 8. One at a time, an advice
   * whose answer times out (switchMs) held up every advice behind it: under a burst (chaos seed 42, 10000
   * transactions) the queue filled faster than it drained and advices expired by maxAgeMs unsent.
   */
  concurrency: number;
}

export const SAF_OPTIONS_DEFAULT: Readonly<SafOptions> = {
  baseDelayMs: 2_000,
  maxDelayMs: 60_000,
  maxAttempts: 12,
  maxAgeMs: 24 * 3600_000,
  pollMs: 1_000,
  batchSize: 32,
  concurrency: 8,
};

export type SafState = 'pending' | 'operator' | 'done' | 'dropped';
export type SafSource = 'terminal' | 'posp';

/** One advice as listed (never the PAN: only its mask). */
export interface SafItem {
  id: number;
  originalRrn: string;
  source: SafSource;
  /** 98 no answer, A0 answer MAC failed, 06 other (the terminal's 39, or the POSP's own reading). */
  reason: string;
  state: SafState;
  panMasked: string;
  /** The network fields of the advice except 2, 7 and the MAC. */
  fields: Record<string, string>;
  attempts: number;
  nextAt: string;
  createdAt: string;
  lastAttemptAt: string | undefined;
  lastError: string | undefined;
  responseCode: string | undefined;
  transmissionDateTime: string | undefined;
  finishedAt: string | undefined;
}

type Row = Record<string, string | number | null>;
const s = (v: string | number | null | undefined): string | undefined =>
  v === null || v === undefined ? undefined : String(v);

function rowToItem(r: Row): SafItem {
  return {
    id: Number(r.id),
    originalRrn: String(r.original_rrn),
    source: r.source as SafSource,
    reason: String(r.reason),
    state: r.state as SafState,
    panMasked: String(r.pan_masked),
    fields: JSON.parse(String(r.fields)) as Record<string, string>,
    attempts: Number(r.attempts),
    nextAt: String(r.next_at),
    createdAt: String(r.created_at),
    lastAttemptAt: s(r.last_attempt_at),
    lastError: s(r.last_error),
    responseCode: s(r.response_code),
    transmissionDateTime: s(r.transmission_dt),
    finishedAt: s(r.finished_at),
  };
}

const pad11 = (id: string): string => id.padStart(11, '0');

/** Processing code on the network leg of each journaled type (docs/network.md). */
const NET_PC: Record<string, string> = {
  purchase: '000000',
  inquiry: '310000',
  void: '020000',
  refund: '200000',
};

/**
 * The network fields of the reversal of a journaled request (docs/network.md: the identity of the
 * original's reversal is 32, 41, 11 of the original and 13; 90 = original data elements). Without 2
 * (the PAN is added when packing) and 7 (the time of each send).
 */
export function reversalFieldsOf(o: JournalEntry): Record<string, string> {
  const f: Record<string, string> = {
    3: NET_PC[o.txnType] ?? '000000',
    11: o.stan,
    12: o.localTime,
    13: o.txnDate.slice(4),
    22: o.entryMode,
    25: '00',
    32: o.acquirerId,
    37: o.rrn,
    41: o.terminalId,
    42: o.merchantId,
    49: o.currency,
    90: `${o.networkMti ?? '0200'}${o.stan}${o.transmissionDateTime ?? '0000000000'}${pad11(o.acquirerId)}${pad11(o.forwardingId ?? '0')}`,
  };
  if (o.amountMinor !== undefined) f[4] = String(o.amountMinor).padStart(12, '0');
  return f;
}

export interface NewSafItem {
  originalRrn: string;
  source: SafSource;
  reason: string;
  /** The PAN sealed by `PanVault.seal` (never the clear PAN). */
  panSealed: string;
  panMasked: string;
  fields: Record<string, string>;
}

/** A due advice with its PAN: sealed (`panSealed`), or clear in a row an earlier version queued (`pan`). */
export type DueSafItem = SafItem & { panSealed: string | undefined; pan: string | undefined };

export class SafQueue {
  constructor(private readonly store: Store) {}

  /**
   * Queues an advice (due at once) and marks the original as owing its reversal, in one transaction.
   * 'already' when the original already has an advice (queued, done or dropped): never two.
   */
  async enqueue(item: NewSafItem, nowIso: string, q?: Queryable): Promise<'queued' | 'already'> {
    const work = async (tx: Queryable): Promise<'queued' | 'already'> => {
      const r = await tx.run(
        `INSERT INTO saf (original_rrn, source, reason, state, pan, pan_sealed, pan_masked, fields, attempts, next_at, created_at)
         VALUES (?, ?, ?, 'pending', NULL, ?, ?, ?, 0, ?, ?) ON CONFLICT (original_rrn) DO NOTHING`,
        [
          item.originalRrn,
          item.source,
          item.reason,
          item.panSealed,
          item.panMasked,
          JSON.stringify(item.fields),
          nowIso,
          nowIso,
        ],
      );
      if (r.changes === 0) return 'already';
      await tx.run("UPDATE journal SET reversal_state = 'owed' WHERE rrn = ? AND reversal_state IS NULL", [
        item.originalRrn,
      ]);
      return 'queued';
    };
    return q !== undefined ? work(q) : this.store.transaction(work);
  }

  /**
   * Records a reversal delivered at the first try (a terminal's 0400 answered by the switch): a 'done'
   * row without PAN, so that every reversal the POSP sent upstream is in one table (the clearing file).
   */
  async recordDelivered(
    item: Omit<NewSafItem, 'panSealed'>,
    code: string,
    transmissionDateTime: string,
    nowIso: string,
    q?: Queryable,
  ): Promise<void> {
    const work = async (tx: Queryable): Promise<void> => {
      await tx.run(
        `INSERT INTO saf (original_rrn, source, reason, state, pan, pan_masked, fields, attempts, next_at,
           created_at, last_attempt_at, response_code, transmission_dt, finished_at)
         VALUES (?, ?, ?, 'done', NULL, ?, ?, 1, ?, ?, ?, ?, ?, ?) ON CONFLICT (original_rrn) DO NOTHING`,
        [
          item.originalRrn,
          item.source,
          item.reason,
          item.panMasked,
          JSON.stringify(item.fields),
          nowIso,
          nowIso,
          nowIso,
          code,
          transmissionDateTime,
          nowIso,
        ],
      );
      await tx.run('UPDATE journal SET reversal_state = ?, reversal_code = ? WHERE rrn = ?', [
        REVERSAL_DONE_CODES.has(code) ? 'reversed' : 'refused',
        code,
        item.originalRrn,
      ]);
      if (REVERSAL_DONE_CODES.has(code)) await restoreVoidedOriginal(tx, item.originalRrn);
    };
    return q !== undefined ? work(q) : this.store.transaction(work);
  }

  /** Advices due at `nowIso`, oldest first, with their sealed PAN (or an earlier version's clear one). */
  async due(nowIso: string, limit: number): Promise<DueSafItem[]> {
    const rows = await this.store.all<Row>(
      "SELECT * FROM saf WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?",
      [nowIso, limit],
    );
    return rows.map((r) => ({ ...rowToItem(r), panSealed: s(r.pan_sealed), pan: s(r.pan) }));
  }

  /**
   * Takes one due advice for a send (several POSP nodes may run the worker on one database): moves its
   * `next_at` from `dueAt` (as `due` read it) to `leaseUntil`, in one conditional UPDATE, so that no
   * other worker finds it due until the lease runs out. True when this worker got it; false when another
   * took it first (or an operator changed it). `leaseUntil` is later than any `next_at` the advice had
   * while due, so it also names this claim: the writes after the send (`attemptFailed`, `expire`,
   * `complete`) pass it as `lease` and change nothing once another claim or an operator moved it.
   */
  async claim(id: number, dueAt: string, leaseUntil: string): Promise<boolean> {
    const r = await this.store.run(
      "UPDATE saf SET next_at = ? WHERE id = ? AND state = 'pending' AND next_at = ?",
      [leaseUntil, id, dueAt],
    );
    return r.changes === 1;
  }

  async get(id: number): Promise<SafItem | undefined> {
    const r = await this.store.get<Row>('SELECT * FROM saf WHERE id = ?', [id]);
    return r === undefined ? undefined : rowToItem(r);
  }

  async byOriginal(originalRrn: string): Promise<SafItem | undefined> {
    const r = await this.store.get<Row>('SELECT * FROM saf WHERE original_rrn = ?', [originalRrn]);
    return r === undefined ? undefined : rowToItem(r);
  }

  /** Advices in a state (all when none is given), oldest first, at most `limit`. */
  async list(state?: SafState, limit = 1000): Promise<SafItem[]> {
    const rows =
      state === undefined
        ? await this.store.all<Row>('SELECT * FROM saf ORDER BY id LIMIT ?', [limit])
        : await this.store.all<Row>('SELECT * FROM saf WHERE state = ? ORDER BY id LIMIT ?', [state, limit]);
    return rows.map(rowToItem);
  }

  async attemptFailed(
    id: number,
    attempts: number,
    nextAt: string,
    error: string,
    nowIso: string,
    lease?: string,
  ): Promise<void> {
    await this.store.run(
      `UPDATE saf SET attempts = ?, next_at = ?, last_error = ?, last_attempt_at = ? WHERE id = ? AND state = 'pending'${fence(lease)}`,
      [attempts, nextAt, error, nowIso, id, ...fenceParams(lease)],
    );
  }

  /** Into the operator queue: still owed, no longer sent by the worker. */
  async expire(
    id: number,
    attempts: number,
    error: string,
    nowIso: string,
    code?: string,
    lease?: string,
  ): Promise<void> {
    await this.store.run(
      `UPDATE saf SET state = 'operator', attempts = ?, last_error = ?, last_attempt_at = ?, response_code = ? WHERE id = ? AND state = 'pending'${fence(lease)}`,
      [attempts, error, nowIso, code ?? null, id, ...fenceParams(lease)],
    );
  }

  /**
   * Acknowledged (00, or 12/25: nothing left to undo at the issuer): done, the PAN erased, the original
   * reversed at the POSP too (the issuer holds no money for it).
   */
  async complete(
    id: number,
    attempts: number,
    code: string,
    transmissionDt: string,
    nowIso: string,
    lease?: string,
  ): Promise<void> {
    await this.store.transaction(async (tx) => {
      const r = await tx.get<Row>('SELECT original_rrn FROM saf WHERE id = ?', [id]);
      const u = await tx.run(
        `UPDATE saf SET state = 'done', pan = NULL, pan_sealed = NULL, attempts = ?, response_code = ?, transmission_dt = ?,
           last_attempt_at = ?, finished_at = ?, last_error = NULL WHERE id = ?${fence(lease)}`,
        [attempts, code, transmissionDt, nowIso, nowIso, id, ...fenceParams(lease)],
      );
      // Lease lost (another node claimed the advice again, or the operator retried it): that send's
      // outcome is recorded, not this one's (the issuer answers a repeated reversal with its first answer).
      if (r !== undefined && u.changes === 1) {
        await tx.run("UPDATE journal SET reversal_state = 'reversed', reversal_code = ? WHERE rrn = ?", [
          code,
          r.original_rrn,
        ]);
        await restoreVoidedOriginal(tx, String(r.original_rrn));
      }
    });
    await this.scrub();
  }

  /** Operator: sends an operator (or pending) advice again from now, with a fresh count. */
  async retry(id: number, nowIso: string): Promise<SafItem> {
    const r = await this.store.run(
      "UPDATE saf SET state = 'pending', attempts = 0, next_at = ?, created_at = ?, last_error = NULL WHERE id = ? AND state IN ('operator', 'pending')",
      [nowIso, nowIso, id],
    );
    if (r.changes !== 1)
      throw new AcquirerError(
        'ACQUIRER_SAF_ITEM_UNKNOWN',
        'id',
        'no operator or pending advice with this id',
      );
    return (await this.get(id))!;
  }

  /** Operator: gives up an advice (settled by hand); its PAN is erased. */
  async drop(id: number, nowIso: string): Promise<SafItem> {
    const r = await this.store.run(
      "UPDATE saf SET state = 'dropped', pan = NULL, pan_sealed = NULL, finished_at = ? WHERE id = ? AND state IN ('operator', 'pending')",
      [nowIso, id],
    );
    if (r.changes !== 1)
      throw new AcquirerError(
        'ACQUIRER_SAF_ITEM_UNKNOWN',
        'id',
        'no operator or pending advice with this id',
      );
    await this.scrub();
    return (await this.get(id))!;
  }

  /**
   * SQLite: erased values are overwritten in the file (secure_delete) and the WAL is emptied into it.
   * PostgreSQL has no such statement: an erased value stays in the dead row version until VACUUM
   * reclaims it (README: the database's own storage must be protected there).
   */
  private async scrub(): Promise<void> {
    if (this.store.dialect === 'postgres') return;
    try {
      await this.store.all('PRAGMA wal_checkpoint(TRUNCATE)');
    } catch {
      // Best effort: a busy checkpoint is retried at the next completion.
    }
  }
}

/** The lease condition of the writes that follow a claimed send. */
const fence = (lease: string | undefined): string => (lease === undefined ? '' : ' AND next_at = ?');
const fenceParams = (lease: string | undefined): string[] => (lease === undefined ? [] : [lease]);

/**
 * How long a claimed advice stays with the worker that claimed it: its send (MAC, the switch's bound,
 * the answer's MAC) and the writes after it, with room to spare. A node that stops mid-send leaves the
 * advice due again after this.
 */
export function safLeaseMs(d: Pick<ReversalSendDeps, 'switchMs' | 'hsmMs'>): number {
  return d.switchMs + 500 + 2 * d.hsmMs + SAF_LEASE_MARGIN_MS;
}
export const SAF_LEASE_MARGIN_MS = 5_000;

/**
 * A reversed void no longer voids: the issuer undid the void, so its purchase stands again there, and
 * must stand at the POSP too (voidable again, in batch totals and clearing). Without this the purchase
 * stayed marked voided by a void that was reversed (chaos seed 2: "money moved at the issuer, not
 * approved at the POSP"). No-op for anything but a void.
 */
async function restoreVoidedOriginal(tx: Queryable, reversedRrn: string): Promise<void> {
  await tx.run('UPDATE journal SET voided_by_rrn = NULL WHERE voided_by_rrn = ?', [reversedRrn]);
}

/** Pins `secure_delete` on the POSP's database (called once at start). */
export async function enableSecureDelete(store: Store): Promise<void> {
  if (store.dialect === 'postgres') return; // SQLite only (see SafQueue.scrub)
  await store.all('PRAGMA secure_delete = ON');
}

export interface SafLink {
  request(frame: Uint8Array, timeoutMs?: number): Promise<Uint8Array>;
  /** False while the link to the switch is down (FramedClient); a send is then not even tried. */
  readonly connected?: boolean;
}

/**
 * Link failures that happen before a byte is written (packages/net client.ts `request`): the advice never
 * left the POSP, so the send does not count against `maxAttempts` (only `maxAgeMs` expires it). The net
 * package says so in `NetError.sent` (false: refused before writing, e.g. NET_CLOSED "not connected");
 * a NET_CLOSED of a link that dropped with the request in flight has `sent: true`, may have reached the
 * switch, and counts. The codes below are never sent whatever the flag says.
 */
export const SAF_NOT_SENT_NET_CODES: ReadonlySet<string> = new Set([
  'NET_BUSY',
  'NET_KEY_IN_USE',
  'NET_KEY_INVALID',
]);

/** True when `e` (a rejection of SafLink.request) says the frame was never written. */
export function isNotSentError(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  if (typeof code !== 'string') return false;
  if (SAF_NOT_SENT_NET_CODES.has(code)) return true;
  return code === 'NET_CLOSED' && (e as { sent?: unknown }).sent === false;
}

export interface ReversalSendDeps {
  hsm: AcquirerHsm;
  switchLink: SafLink;
  netSpec: CompiledSpec;
  zak: string;
  switchMs: number;
  hsmMs: number;
}

/** The outcome of one send: the switch's 39, or why there is no answer to believe. */
export type SendResult =
  | { code: string; transmissionDateTime: string }
  | { problem: string; transmissionDateTime: string; notSent?: true };

const NETWORK_MAC = (zak: string) => ({ key: zak, algorithm: 'iso9797-1-3', padding: 1 }) as const;

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new AcquirerError('ACQUIRER_STEP_TIMEOUT', `step.${what}`, `did not finish within ${ms} ms`),
            ),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Sends one reversal (0400) or advice (0420) of `fields` + the PAN, MACed under the ZAK (X9.19, in 128:
 * field 90 gives it a secondary bitmap), and believes only an 0410/0430 echoing 11, 37, 41 whose MAC
 * verifies. Never throws: a failure is a `problem`.
 */
export async function sendReversal(
  d: ReversalSendDeps,
  mti: '0400' | '0420',
  pan: string,
  fields: Record<string, string>,
  now: Date,
): Promise<SendResult> {
  const transmissionDateTime = transmissionDateTimeOf(now);
  let frame: Uint8Array;
  let m: Iso8583Message;
  try {
    m = new Message(d.netSpec, mti);
    m.set(2, pan);
    m.set(7, transmissionDateTime);
    for (const [k, v] of Object.entries(fields)) m.set(Number(k), v);
    frame = await within(packWithMac(d.hsm, d.netSpec, m, NETWORK_MAC(d.zak)), d.hsmMs, 'reversalMac');
  } catch (e) {
    return { problem: `pack-${(e as { code?: string }).code ?? 'error'}`, transmissionDateTime };
  }
  if (d.switchLink.connected === false)
    return { problem: 'not-sent-NET_CLOSED', transmissionDateTime, notSent: true };
  try {
    let raw: Uint8Array;
    try {
      raw = await within(d.switchLink.request(frame, d.switchMs), d.switchMs + 500, 'switch');
    } catch (e) {
      if (isNotSentError(e))
        return {
          problem: `not-sent-${(e as { code: string }).code}`,
          transmissionDateTime,
          notSent: true,
        };
      throw e;
    }
    const a = unpack(d.netSpec, raw);
    if (a.mti !== '0410' && a.mti !== '0430') return { problem: 'answer-mti', transmissionDateTime };
    for (const f of [11, 37, 41])
      if (a.get(f) !== m.get(f)) return { problem: `answer-field-${f}`, transmissionDateTime };
    const code = a.get(39);
    if (typeof code !== 'string' || !/^[0-9A-Z]{2}$/.test(code))
      return { problem: 'answer-field-39', transmissionDateTime };
    const mac = await within(
      checkMessageMac(d.hsm, d.netSpec, raw, NETWORK_MAC(d.zak)),
      d.hsmMs,
      'verifySwitchMac',
    );
    if (mac !== 'ok')
      return { problem: mac === 'missing' ? 'answer-no-mac' : 'answer-mac-failed', transmissionDateTime };
    return { code, transmissionDateTime };
  } catch (e) {
    return { problem: `no-answer-${(e as { code?: string }).code ?? 'error'}`, transmissionDateTime };
  }
}

/**
 * Answers to a reversal (0400/0420) after which there is nothing left to undo: 00 reversed (or never
 * seen: the issuer records it and declines a late original), 12 already reversed or not reversible any
 * more, 25 original not found at the issuer. The same set the terminal clears its record on.
 */
export const REVERSAL_DONE_CODES: ReadonlySet<string> = new Set(['00', '12', '25']);
/**
 * Answers that say "not delivered / not decided, try again" rather than an issuer's decision about the
 * reversal: 91 issuer or switch inoperative (a configured link down, or no answer), 96 malfunction,
 * 15 no such issuer (a switch's routing answer, not the issuer's), A0 our MAC failed on the way (a
 * corrupted frame), 94 a request with this identity still in flight. Retried until `maxAttempts` or
 * `maxAgeMs`; they never expire an advice early.
 */
export const REVERSAL_RETRY_CODES: ReadonlySet<string> = new Set(['91', '96', '15', 'A0', '94']);

/** What a reversal answer means for the advice: done, try again, or a decision a person must look at. */
export function classifyReversalAnswer(code: string): 'done' | 'retry' | 'operator' {
  if (REVERSAL_DONE_CODES.has(code)) return 'done';
  if (REVERSAL_RETRY_CODES.has(code)) return 'retry';
  return 'operator';
}

export interface SafWorkerDeps extends ReversalSendDeps {
  queue: SafQueue;
  /** Opens the sealed PAN of an advice (M2 under the data key). */
  vault: PanVault;
  clock: Clock;
  options: SafOptions;
  log?: {
    info(event: string, fields?: Record<string, unknown>): void;
    warn?(event: string, fields?: Record<string, unknown>): void;
  };
}

/** The delay after `attempts` failed sends: base × 2^(attempts−1), at most `maxDelayMs`. */
export function backoffDelayMs(o: Pick<SafOptions, 'baseDelayMs' | 'maxDelayMs'>, attempts: number): number {
  const exp = Math.min(Math.max(attempts - 1, 0), 30);
  return Math.min(o.baseDelayMs * 2 ** exp, o.maxDelayMs);
}

/** Sends due advices as 0420, polling every `pollMs` (timer unref'd: it never keeps the process alive). */
export class SafWorker {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private stopped = false;

  constructor(private readonly d: SafWorkerDeps) {}

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.runOnce()
        .catch(() => 0)
        .finally(() => this.schedule());
    }, this.d.options.pollMs);
    this.timer.unref();
  }

  /** One pass over the due advices (at most `batchSize`); returns how many were acknowledged. */
  runOnce(): Promise<number> {
    if (this.running !== undefined) return this.running;
    this.running = this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(): Promise<number> {
    const { d } = this;
    const now = d.clock();
    const nowIso = now.toISOString();
    const items = await d.queue.due(nowIso, d.options.batchSize);
    let next = 0;
    let acked = 0;
    const lane = async (): Promise<void> => {
      while (next < items.length && !this.stopped) {
        if (await this.sendOne(items[next++]!, now, nowIso)) acked++;
      }
    };
    const lanes = Math.max(1, Math.min(d.options.concurrency ?? 1, items.length));
    await Promise.all(Array.from({ length: lanes }, lane));
    return acked;
  }

  /** One advice: sent, then completed, rescheduled or expired; true when acknowledged. */
  private async sendOne(item: DueSafItem, now: Date, nowIso: string): Promise<boolean> {
    const { d } = this;
    // Another node's worker may have read the same due advice: only the one whose claim lands sends it.
    const lease = new Date(d.clock().getTime() + safLeaseMs(d)).toISOString();
    if (!(await d.queue.claim(item.id, item.nextAt, lease))) return false;
    if (now.getTime() - Date.parse(item.createdAt) > d.options.maxAgeMs) {
      await d.queue.expire(item.id, item.attempts, 'expired-max-age', nowIso, undefined, lease);
      d.log?.warn?.('saf_expired', {
        id: item.id,
        rrn: item.originalRrn,
        attempts: item.attempts,
        why: 'max-age',
      });
      return false;
    }
    let pan: string;
    if (item.panSealed !== undefined) {
      try {
        pan = await d.vault.open(item.panSealed);
      } catch (e) {
        // An HSM that cannot be reached: try again later (not an attempt). A sealed PAN that does not
        // open (altered, or a data key changed without re-sealing): only a person can resolve it.
        const code = (e as { code?: string }).code ?? 'error';
        if (code === 'ACQUIRER_PAN_SEALED') {
          await d.queue.expire(item.id, item.attempts, 'pan-unreadable', nowIso, undefined, lease);
          d.log?.warn?.('saf_expired', { id: item.id, rrn: item.originalRrn, why: 'pan-unreadable' });
        } else {
          const nextAt = new Date(now.getTime() + backoffDelayMs(d.options, Math.max(item.attempts, 1)));
          await d.queue.attemptFailed(
            item.id,
            item.attempts,
            nextAt.toISOString(),
            `hsm-${code}`,
            nowIso,
            lease,
          );
        }
        return false;
      }
    } else if (item.pan !== undefined) pan = item.pan;
    else {
      await d.queue.expire(item.id, item.attempts, 'no-pan', nowIso, undefined, lease);
      return false;
    }
    const r = await sendReversal(d, '0420', pan, item.fields, now);
    if ('notSent' in r) {
      // Never left the POSP (link down): not an attempt; tried again after a back-off, expired by age only.
      const wait = backoffDelayMs(d.options, Math.max(item.attempts, 1));
      const nextAt = new Date(now.getTime() + wait).toISOString();
      await d.queue.attemptFailed(item.id, item.attempts, nextAt, r.problem, nowIso, lease);
      return false;
    }
    const attempts = item.attempts + 1;
    if ('code' in r && classifyReversalAnswer(r.code) === 'done') {
      await d.queue.complete(item.id, attempts, r.code, r.transmissionDateTime, nowIso, lease);
      d.log?.info('saf_delivered', { id: item.id, rrn: item.originalRrn, attempts });
      return true;
    }
    const error = 'code' in r ? `answered-${r.code}` : r.problem;
    if ('code' in r && classifyReversalAnswer(r.code) === 'operator') {
      // An issuer's decision that leaves something to undo (e.g. 13 amount differs): a person must look.
      await d.queue.expire(item.id, attempts, error, nowIso, r.code, lease);
      d.log?.warn?.('saf_expired', { id: item.id, rrn: item.originalRrn, attempts, why: error });
      return false;
    }
    if (attempts >= d.options.maxAttempts) {
      await d.queue.expire(item.id, attempts, error, nowIso, undefined, lease);
      d.log?.warn?.('saf_expired', { id: item.id, rrn: item.originalRrn, attempts, why: 'max-attempts' });
      return false;
    }
    const nextAt = new Date(now.getTime() + backoffDelayMs(d.options, attempts)).toISOString();
    await d.queue.attemptFailed(item.id, attempts, nextAt, error, nowIso, lease);
    return false;
  }

  /** Stops polling and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.running !== undefined) await this.running.catch(() => 0);
  }
}
