/**
 * A fault-injecting TCP proxy for length-framed messages (2-byte big-endian length prefix, the framing
 * of every leg in docs/network.md). It parses the byte stream into whole frames so that each fault hits
 * one whole message, and asks a plan, for every message and direction, what to do with it:
 *
 * - `pass`: forward it.
 * - `drop-before`: close the client's connection without forwarding it (the far side never sees it;
 *   the upstream connection lingers `lingerMs` so that what was forwarded before still arrives).
 * - `drop-after`: forward it, then close the near side's connection: the far side acts on it and the
 *   sender gets nothing back (a request: the far side's answer is read and discarded; a response: the
 *   client already has it and the link drops after).
 * - `delay`: forward it after `delayMs` (set it past the receiver's timeout to make a late answer).
 * - `corrupt`: flip one bit of one byte, by default inside the last 8 bytes (the MAC field on every leg),
 *   so the message still parses and its MAC fails.
 * - `duplicate`: forward it twice.
 *
 * The plan gets a seeded generator (`Prng`), so that a run with the same seed decides the same way
 * for the same sequence of messages. Counters say what was injected.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { createPrng, type Prng } from './prng.js';

export type Direction = 'request' | 'response';
export const FAULT_KINDS = ['drop-before', 'drop-after', 'delay', 'corrupt', 'duplicate'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export type FaultDecision =
  | { kind: 'pass' }
  | { kind: 'drop-before' }
  | { kind: 'drop-after' }
  | { kind: 'delay'; delayMs: number }
  | { kind: 'corrupt'; offset?: number }
  | { kind: 'duplicate' };

export interface FaultContext {
  direction: Direction;
  /** 0-based count of messages this proxy has seen in this direction, before this one. */
  index: number;
  /** 0-based count of client connections accepted, this message's one. */
  connectionId: number;
  /** The message without its length prefix (read only). */
  frame: Uint8Array;
  /** The proxy's seeded generator. */
  rng: Prng;
}

export type FaultPlan = (ctx: FaultContext) => FaultDecision;

/** Largest frame the proxy accepts (a longer prefix closes the connection): the 2-byte prefix maximum. */
export const FAULT_PROXY_FRAME_MAX_BYTES = 0xffff;
/** Longest delay a plan may ask for. */
export const FAULT_PROXY_DELAY_MAX_MS = 120_000;
/** After a request's `drop-after`, how long the upstream connection is kept to let the far side finish. */
export const FAULT_PROXY_LINGER_MS_DEFAULT = 2_000;
/** Connections the proxy holds at once; more are refused (closed on accept). */
export const FAULT_PROXY_MAX_CONNECTIONS_DEFAULT = 1_000;

export interface FaultProxyOptions {
  /** 0 (default) = an ephemeral port. */
  listenPort?: number;
  listenHost?: string;
  target: { host: string; port: number };
  seed: number;
  /** Default: pass everything. */
  plan?: FaultPlan;
  lingerMs?: number;
  maxConnections?: number;
  /** A name for the counters and for forking the seed (two proxies with one seed and other labels differ). */
  label?: string;
}

export interface FaultCounters {
  /** Messages seen per direction. */
  messages: Record<Direction, number>;
  /** Faults injected per kind and direction. */
  faults: Record<FaultKind, Record<Direction, number>>;
  /** All faults injected. */
  injected: number;
  /** Connections accepted. */
  connections: number;
}

/** A plan injecting each of `kinds` with equal shares of probability `rate` per message. */
export function randomFaultPlan(opts: {
  rate: number;
  kinds?: readonly FaultKind[];
  directions?: readonly Direction[];
  /** For `delay`. */
  delayMs?: number;
}): FaultPlan {
  const kinds = opts.kinds ?? FAULT_KINDS;
  const directions = opts.directions ?? ['request', 'response'];
  if (!(opts.rate >= 0 && opts.rate <= 1)) throw new RangeError('rate must be in [0, 1]');
  if (kinds.includes('delay') && opts.delayMs === undefined) throw new RangeError('delayMs is required');
  return ({ direction, rng }) => {
    // Always draw the same number of values, so that a direction filter does not shift the stream.
    const hit = rng.chance(opts.rate);
    const kind = rng.pick(kinds);
    if (!hit || !directions.includes(direction) || kinds.length === 0) return { kind: 'pass' };
    if (kind === 'delay') return { kind, delayMs: opts.delayMs! };
    return { kind };
  };
}

/** Splits a byte stream into frames of a 2-byte big-endian length prefix. */
class FrameReader {
  #buf: Buffer = Buffer.alloc(0);
  push(chunk: Buffer): Uint8Array[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: Uint8Array[] = [];
    while (this.#buf.length >= 2) {
      const n = this.#buf.readUInt16BE(0);
      if (this.#buf.length < 2 + n) break;
      out.push(new Uint8Array(this.#buf.subarray(2, 2 + n)));
      this.#buf = this.#buf.subarray(2 + n);
    }
    return out;
  }
}

function framed(payload: Uint8Array): Buffer {
  const b = Buffer.alloc(2 + payload.length);
  b.writeUInt16BE(payload.length, 0);
  b.set(payload, 2);
  return b;
}

const newCounters = (): FaultCounters => ({
  messages: { request: 0, response: 0 },
  faults: Object.fromEntries(FAULT_KINDS.map((k) => [k, { request: 0, response: 0 }])) as Record<
    FaultKind,
    Record<Direction, number>
  >,
  injected: 0,
  connections: 0,
});

export class FaultProxy {
  readonly label: string;
  readonly counters: FaultCounters = newCounters();
  plan: FaultPlan;
  #target: { host: string; port: number };
  readonly #rng: Prng;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #lingerMs: number;
  readonly #maxConnections: number;
  #port = 0;
  #closed = false;

  private constructor(opts: FaultProxyOptions) {
    this.label = opts.label ?? 'proxy';
    this.plan = opts.plan ?? (() => ({ kind: 'pass' }));
    this.#target = { ...opts.target };
    this.#rng = createPrng(opts.seed).fork(this.label);
    this.#lingerMs = opts.lingerMs ?? FAULT_PROXY_LINGER_MS_DEFAULT;
    this.#maxConnections = opts.maxConnections ?? FAULT_PROXY_MAX_CONNECTIONS_DEFAULT;
    this.#server = createServer((client) => this.#accept(client));
  }

  static async start(opts: FaultProxyOptions): Promise<FaultProxy> {
    const p = new FaultProxy(opts);
    await new Promise<void>((resolve, reject) => {
      p.#server.once('error', reject);
      p.#server.listen(opts.listenPort ?? 0, opts.listenHost ?? '127.0.0.1', () => resolve());
    });
    p.#port = (p.#server.address() as { port: number }).port;
    return p;
  }

  get port(): number {
    return this.#port;
  }

  get target(): { host: string; port: number } {
    return { ...this.#target };
  }

  /** Points new connections at another target (a restarted service on another port). */
  setTarget(target: { host: string; port: number }): void {
    this.#target = { ...target };
  }

  /** Closes every open connection now (what a peer sees when the process behind it dies). */
  dropAll(): void {
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  #count(kind: FaultKind, dir: Direction): void {
    this.counters.faults[kind][dir]++;
    this.counters.injected++;
  }

  #later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  #accept(client: Socket): void {
    if (this.#closed || this.#sockets.size >= this.#maxConnections * 2) {
      client.destroy();
      return;
    }
    const connectionId = this.counters.connections++;
    const upstream = connect(this.#target);
    this.#sockets.add(client).add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    // After a drop, the client side is gone and the upstream lingers (so that what was already
    // forwarded is delivered and the far side can finish acting); its answers are read and discarded.
    let lingering = false;
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.#sockets.delete(client);
      this.#sockets.delete(upstream);
    };
    const cutClient = () => {
      lingering = true;
      client.destroy();
      this.#sockets.delete(client);
      this.#later(this.#lingerMs, end);
    };
    const write = (s: Socket, f: Uint8Array) => {
      if (!s.destroyed) s.write(framed(f));
    };
    const handle = (dir: Direction, frame: Uint8Array) => {
      if (lingering) return;
      const far = dir === 'request' ? upstream : client;
      const index = this.counters.messages[dir]++;
      let d: FaultDecision;
      try {
        d = this.plan({ direction: dir, index, connectionId, frame, rng: this.#rng });
      } catch {
        d = { kind: 'pass' };
      }
      switch (d.kind) {
        case 'pass':
          write(far, frame);
          return;
        case 'drop-before':
          this.#count('drop-before', dir);
          cutClient();
          return;
        case 'drop-after':
          this.#count('drop-after', dir);
          write(far, frame);
          if (dir === 'request') cutClient();
          else {
            // The client has the answer; the link drops after it.
            far.end(() => end());
          }
          return;
        case 'delay': {
          this.#count('delay', dir);
          const ms = Math.min(Math.max(0, d.delayMs), FAULT_PROXY_DELAY_MAX_MS);
          this.#later(ms, () => write(far, frame));
          return;
        }
        case 'corrupt': {
          this.#count('corrupt', dir);
          const bad = frame.slice();
          if (bad.length > 0) {
            const tail = Math.min(8, bad.length);
            const at = d.offset ?? bad.length - 1 - this.#rng.int(tail);
            const i = Math.min(Math.max(0, at), bad.length - 1);
            bad[i] = bad[i]! ^ (1 << this.#rng.int(8));
          }
          write(far, bad);
          return;
        }
        case 'duplicate':
          this.#count('duplicate', dir);
          write(far, frame);
          write(far, frame);
          return;
      }
    };
    const up = new FrameReader();
    const down = new FrameReader();
    client.on('data', (chunk: Buffer) => {
      for (const f of up.push(chunk)) handle('request', f);
    });
    upstream.on('data', (chunk: Buffer) => {
      for (const f of down.push(chunk)) {
        if (lingering) continue; // the near side is gone: the answer is read and discarded
        handle('response', f);
      }
    });
    client.on('error', end).on('close', () => {
      if (!lingering) end();
    });
    upstream.on('error', end).on('close', end);
  }

  /** Stops accepting, closes every connection and cancels pending delayed writes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.dropAll();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}
