/**
 * A request/response client over one TCP connection of length-framed messages. Requests are
 * pipelined; each response is matched to its request by a key the caller reads from the frame
 * (for ISO 8583: terminal id + STAN + date, say). Every request has a timeout; the number in
 * flight is bounded; a late response (after its timeout) is dropped and reported.
 * With `reconnect`, a dropped connection is re-established in the background with bounded
 * back-off; requests made while it is down fail at once with NET_CLOSED.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { encodeFrame, type FrameOptions, FrameReader } from '@openposp/iso8583';
import { tickWriter } from './cork.js';
import { NetError } from './errors.js';

export const NET_REQUEST_TIMEOUT_MS_DEFAULT = 30_000;
export const NET_CONNECT_TIMEOUT_MS_DEFAULT = 5_000;
export const NET_CLIENT_MAX_IN_FLIGHT_DEFAULT = 256;
export const NET_RECONNECT_DELAY_MS_DEFAULT = 200;
export const NET_RECONNECT_MAX_DELAY_MS_DEFAULT = 5_000;

export interface FramedClientOptions {
  host: string;
  port: number;
  framing?: FrameOptions;
  timeoutMs?: number;
  connectTimeoutMs?: number;
  maxInFlight?: number;
  /** The match key of a frame; the same function reads requests and responses. May throw on garbage. */
  keyOf: (frame: Uint8Array) => string;
  reconnect?: boolean | { delayMs?: number; maxDelayMs?: number };
  /** A response nobody waits for (late or unknown key), or an unreadable one. */
  onUnmatched?: (frame: Uint8Array, reason: string) => void;
}

interface Pending {
  resolve: (frame: Uint8Array) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

function openSocket(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(
        new NetError('NET_CONNECT_FAILED', `connect ${host}:${port}: no connection within ${timeoutMs} ms`),
      );
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.setNoDelay(true);
      resolve(s);
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new NetError('NET_CONNECT_FAILED', `connect ${host}:${port}: ${e.code ?? e.message}`, { cause: e }),
      );
    });
  });
}

export class FramedClient {
  readonly #opts: FramedClientOptions;
  readonly #pending = new Map<string, Pending>();
  #socket: Socket | undefined;
  /** Writes to `#socket`, those of one turn in one system call. */
  #write: (bytes: Uint8Array) => boolean = () => false;
  #closed = false;
  #reconnectDelay = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;

  private constructor(opts: FramedClientOptions) {
    this.#opts = opts;
  }

  /**
   * Connects. Without `reconnect` a failed first connection rejects (NET_CONNECT_FAILED); with it,
   * the client is returned at once and keeps trying in the background.
   */
  static async connect(opts: FramedClientOptions): Promise<FramedClient> {
    const c = new FramedClient(opts);
    try {
      c.#attach(
        await openSocket(opts.host, opts.port, opts.connectTimeoutMs ?? NET_CONNECT_TIMEOUT_MS_DEFAULT),
      );
    } catch (e) {
      if (!opts.reconnect) throw e;
      c.#scheduleReconnect();
    }
    return c;
  }

  get connected(): boolean {
    return this.#socket !== undefined && !this.#socket.destroyed;
  }

  get inFlight(): number {
    return this.#pending.size;
  }

  #attach(socket: Socket): void {
    this.#socket = socket;
    this.#write = tickWriter(socket);
    this.#reconnectDelay = 0;
    const reader = new FrameReader(this.#opts.framing);
    socket.on('data', (chunk: Buffer) => {
      let frames: Uint8Array[];
      try {
        frames = reader.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const f of frames) this.#deliver(f);
      if (reader.failed) socket.destroy();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      if (this.#socket === socket) this.#socket = undefined;
      // Every request still waiting was written to this socket: it may have reached the peer.
      this.#failAll(
        new NetError('NET_CLOSED', `link ${this.#opts.host}:${this.#opts.port}: connection closed`, {
          sent: true,
        }),
      );
      if (!this.#closed && this.#opts.reconnect) this.#scheduleReconnect();
    });
  }

  #scheduleReconnect(): void {
    const cfg = typeof this.#opts.reconnect === 'object' ? this.#opts.reconnect : {};
    const base = cfg.delayMs ?? NET_RECONNECT_DELAY_MS_DEFAULT;
    const max = cfg.maxDelayMs ?? NET_RECONNECT_MAX_DELAY_MS_DEFAULT;
    this.#reconnectDelay = Math.min(max, this.#reconnectDelay === 0 ? base : this.#reconnectDelay * 2);
    this.#reconnectTimer = setTimeout(() => {
      if (this.#closed) return;
      openSocket(
        this.#opts.host,
        this.#opts.port,
        this.#opts.connectTimeoutMs ?? NET_CONNECT_TIMEOUT_MS_DEFAULT,
      )
        .then((s) => {
          if (this.#closed) s.destroy();
          else this.#attach(s);
        })
        .catch(() => this.#scheduleReconnect());
    }, this.#reconnectDelay);
    this.#reconnectTimer.unref();
  }

  #deliver(frame: Uint8Array): void {
    let key: string;
    try {
      key = this.#opts.keyOf(frame);
    } catch {
      this.#opts.onUnmatched?.(frame, 'unreadable key');
      return;
    }
    const p = this.#pending.get(key);
    if (!p) {
      this.#opts.onUnmatched?.(frame, 'no request waiting (late or unknown)');
      return;
    }
    this.#pending.delete(key);
    clearTimeout(p.timer);
    p.resolve(frame);
  }

  #failAll(e: NetError): void {
    for (const [key, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(key);
      p.reject(e);
    }
  }

  /** Sends one message and resolves with its response frame. */
  request(
    frame: Uint8Array,
    timeoutMs = this.#opts.timeoutMs ?? NET_REQUEST_TIMEOUT_MS_DEFAULT,
  ): Promise<Uint8Array> {
    const where = `link ${this.#opts.host}:${this.#opts.port}`;
    const socket = this.#socket;
    if (this.#closed || !socket || socket.destroyed) {
      return Promise.reject(new NetError('NET_CLOSED', `${where}: not connected`));
    }
    const max = this.#opts.maxInFlight ?? NET_CLIENT_MAX_IN_FLIGHT_DEFAULT;
    if (this.#pending.size >= max) {
      return Promise.reject(new NetError('NET_BUSY', `${where}: ${max} requests already in flight`));
    }
    let key: string;
    try {
      key = this.#opts.keyOf(frame);
    } catch (e) {
      return Promise.reject(
        new NetError('NET_KEY_INVALID', `${where}: the request's match key cannot be read`, { cause: e }),
      );
    }
    if (this.#pending.has(key)) {
      return Promise.reject(
        new NetError('NET_KEY_IN_USE', `${where}: a request with the same key is in flight`),
      );
    }
    let bytes: Uint8Array;
    try {
      bytes = encodeFrame(frame, this.#opts.framing);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(key);
        reject(new NetError('NET_TIMEOUT', `${where}: no response within ${timeoutMs} ms`, { sent: true }));
      }, timeoutMs);
      this.#pending.set(key, { resolve, reject, timer });
      this.#write(bytes);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    this.#failAll(
      new NetError('NET_CLOSED', `link ${this.#opts.host}:${this.#opts.port}: client closed`, { sent: true }),
    );
    const s = this.#socket;
    if (!s || s.destroyed) return;
    await new Promise<void>((r) => {
      s.once('close', () => r());
      s.end();
      setTimeout(() => s.destroy(), 500).unref();
    });
  }
}
