/**
 * A TCP server for length-framed messages (2-byte binary or 4-digit ASCII prefix, via the
 * iso8583 package's FrameReader), with the limits a host needs: maximum connections, maximum
 * frame size, a bound on requests in flight per connection (reading pauses: backpressure, no
 * unbounded queue) and an idle timeout. Replies may leave in any order; peers match them by key.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { encodeFrame, type FrameOptions, FrameReader } from '@openposp/iso8583';
import { tickWriter } from './cork.js';

export const NET_MAX_CONNECTIONS_DEFAULT = 1000;
export const NET_MAX_IN_FLIGHT_DEFAULT = 256;
export const NET_IDLE_TIMEOUT_MS_DEFAULT = 300_000;
/** How long close() lets connections finish their replies before destroying them. */
export const NET_CLOSE_GRACE_MS = 1000;

export interface ConnectionInfo {
  /** A number unique within this server, for logs. */
  id: number;
  remoteAddress: string;
  remotePort: number;
}

export interface FramedServerOptions {
  host?: string;
  /** 0 (the default) picks a free port; read it from `server.port`. */
  port?: number;
  framing?: FrameOptions;
  maxConnections?: number;
  maxInFlightPerConnection?: number;
  idleTimeoutMs?: number;
  /** Answers one message; `null` sends nothing. Should not throw: a throw is reported to onError. */
  handler: (frame: Uint8Array, conn: ConnectionInfo) => Promise<Uint8Array | null>;
  /** Frame errors (the connection is then closed) and handler failures. */
  onError?: (error: unknown, conn: ConnectionInfo) => void;
  /** Called once when a connection is gone (for per-connection state such as an authenticated peer). */
  onClose?: (conn: ConnectionInfo) => void;
}

export interface ServerStats {
  connections: number;
  accepted: number;
  inFlight: number;
}

export class FramedServer {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #opts: Required<Omit<FramedServerOptions, 'host' | 'port' | 'onError' | 'onClose' | 'framing'>> &
    FramedServerOptions;
  #accepted = 0;
  #inFlight = 0;
  #port = 0;

  private constructor(opts: FramedServerOptions) {
    this.#opts = {
      maxConnections: NET_MAX_CONNECTIONS_DEFAULT,
      maxInFlightPerConnection: NET_MAX_IN_FLIGHT_DEFAULT,
      idleTimeoutMs: NET_IDLE_TIMEOUT_MS_DEFAULT,
      ...opts,
    };
    this.#server = createServer((s) => this.#accept(s));
    this.#server.maxConnections = this.#opts.maxConnections;
  }

  static async listen(opts: FramedServerOptions): Promise<FramedServer> {
    const s = new FramedServer(opts);
    await new Promise<void>((resolve, reject) => {
      s.#server.once('error', reject);
      s.#server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
        s.#server.off('error', reject);
        resolve();
      });
    });
    const addr = s.#server.address();
    s.#port = typeof addr === 'object' && addr ? addr.port : 0;
    return s;
  }

  get port(): number {
    return this.#port;
  }

  stats(): ServerStats {
    return { connections: this.#sockets.size, accepted: this.#accepted, inFlight: this.#inFlight };
  }

  #accept(socket: Socket): void {
    const conn: ConnectionInfo = {
      id: ++this.#accepted,
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
    };
    this.#sockets.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(this.#opts.idleTimeoutMs, () => socket.destroy());
    const reader = new FrameReader(this.#opts.framing);
    // Frames parsed but not yet handed to the handler: at most one socket chunk's worth, since
    // reading pauses as soon as the connection is at its in-flight limit.
    const waiting: Uint8Array[] = [];
    let inFlight = 0;
    const framing = this.#opts.framing;
    const max = this.#opts.maxInFlightPerConnection;
    // Replies finished in one turn leave in one write.
    const write = tickWriter(socket);
    const pump = () => {
      while (inFlight < max && waiting.length > 0) {
        const frame = waiting.shift()!;
        inFlight++;
        this.#inFlight++;
        this.#opts
          .handler(frame, conn)
          .then((reply) => {
            if (reply && !socket.destroyed) write(encodeFrame(reply, framing));
          })
          .catch((e: unknown) => this.#opts.onError?.(e, conn))
          .finally(() => {
            inFlight--;
            this.#inFlight--;
            pump();
          });
      }
      if (inFlight >= max || waiting.length > 0) socket.pause();
      else if (socket.isPaused() && !socket.destroyed) socket.resume();
    };
    socket.on('data', (chunk: Buffer) => {
      let frames: Uint8Array[];
      try {
        frames = reader.push(chunk);
      } catch (e) {
        this.#opts.onError?.(e, conn);
        socket.destroy();
        return;
      }
      waiting.push(...frames);
      pump();
      if (reader.failed) {
        // Good frames before a bad length were handed on; the stream itself is unusable now.
        try {
          reader.end();
        } catch (e) {
          this.#opts.onError?.(e, conn);
        }
        socket.destroy();
      }
    });
    socket.on('end', () => {
      try {
        reader.end();
      } catch (e) {
        this.#opts.onError?.(e, conn);
      }
      socket.end();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.#sockets.delete(socket);
      this.#opts.onClose?.(conn);
    });
  }

  /** Stops accepting; lets open connections finish for NET_CLOSE_GRACE_MS, then destroys them. */
  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.#server.close(() => r()));
    for (const s of this.#sockets) s.end();
    const grace = setTimeout(() => {
      for (const s of this.#sockets) s.destroy();
    }, NET_CLOSE_GRACE_MS);
    await closed;
    clearTimeout(grace);
  }
}
