/**
 * TCP server for payShield-framed host commands, with a pluggable command table.
 *
 * Limits (each named, configurable and tested), because one slow or hostile client must not be able to
 * make the HSM buffer without bound:
 * - maxConnections: a connection over the limit is closed at once (counted in `stats.refused`).
 * - maxFrameBytes: a frame declaring a longer length is not read; the connection is closed (its header
 *   is not known yet, so no well-formed reply is possible).
 * - maxInFlightPerConnection: requests taken off a connection and not yet answered. At the bound the
 *   server stops reading that socket (TCP backpressure reaches the client); it resumes as replies go out.
 *   A client that does not read its replies fills the socket's send buffer: the server then stops taking
 *   requests too (write backpressure), so nothing queues without bound.
 * - idleTimeoutMs: a connection with no traffic for this long is closed.
 * A message shorter than the header, or whose header is not printable ASCII, also closes the connection.
 *
 * Replies go out in request order on each connection. A handler's HsmError becomes its payShield error
 * code; any other failure becomes 41 (internal error) and is reported once through `onError` (never
 * with the request body: it may hold keys or PIN blocks).
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { HsmError, REPLY_OK } from './errors.js';
import {
  checkHeaderLength,
  encodeReplyFrame,
  FrameDecoder,
  HEADER_LENGTH_DEFAULT,
  isCommandCode,
  MAX_FRAME_BYTES_DEFAULT,
  parseRequest,
  REPLY_CODE_UNUSABLE,
  replyCodeFor,
} from './framing.js';

export const MAX_CONNECTIONS_DEFAULT = 64;
export const MAX_IN_FLIGHT_PER_CONNECTION_DEFAULT = 32;
export const IDLE_TIMEOUT_MS_DEFAULT = 5 * 60 * 1000;

export interface HsmServerOptions {
  /** Characters of message header, echoed in the reply (payShield default 4). */
  headerLength?: number;
  maxConnections?: number;
  maxFrameBytes?: number;
  maxInFlightPerConnection?: number;
  idleTimeoutMs?: number;
  /** Command codes answered with error 68 (command disabled). */
  disabledCommands?: readonly string[];
  /** Called once per unexpected handler failure (a defect). Defaults to one line on stderr. */
  onError?: (error: unknown, context: { command: string; who: string }) => void;
}

export interface ConnectionContext {
  /** `host:<address>:<port>` of the client, for the audit log. */
  who: string;
}

export interface CommandResult {
  /** Reply body after the error code. */
  body?: Uint8Array | string;
  /** Error code; '00' when omitted. Handlers usually throw HsmError instead. */
  errorCode?: string;
}

export type CommandHandler = (
  body: Uint8Array,
  context: ConnectionContext,
) => CommandResult | Promise<CommandResult>;

export interface HsmServerStats {
  accepted: number;
  refused: number;
  requests: number;
  frameErrors: number;
  idleClosed: number;
  internalErrors: number;
}

const positiveInt = (
  v: number | undefined,
  dflt: number,
  name: string,
  max = Number.MAX_SAFE_INTEGER,
): number => {
  const n = v ?? dflt;
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new RangeError(`${name}: must be an integer from 1 to ${max}`);
  return n;
};

/** Maps a handler failure to a payShield error code. */
export function errorCodeOf(e: unknown): string | undefined {
  if (e instanceof HsmError) return e.reply ?? '41';
  // A CryptoError raised under a handler means bad input the handler did not check itself.
  if (e instanceof Error && e.name === 'CryptoError') {
    return (e as Error & { code?: string }).code === 'CRYPTO_KEY_PARITY' ? '10' : '15';
  }
  return undefined;
}

const isPrintable = (b: Uint8Array): boolean => b.every((c) => c >= 0x20 && c <= 0x7e);

interface Slot {
  frame: Uint8Array | undefined;
}

export class HsmServer {
  readonly headerLength: number;
  readonly maxConnections: number;
  readonly maxFrameBytes: number;
  readonly maxInFlightPerConnection: number;
  readonly idleTimeoutMs: number;
  readonly stats: HsmServerStats = {
    accepted: 0,
    refused: 0,
    requests: 0,
    frameErrors: 0,
    idleClosed: 0,
    internalErrors: 0,
  };
  readonly #handlers = new Map<string, CommandHandler>();
  readonly #disabled: ReadonlySet<string>;
  readonly #sockets = new Set<Socket>();
  readonly #server: Server;
  readonly #onError: NonNullable<HsmServerOptions['onError']>;

  constructor(opts: HsmServerOptions = {}) {
    this.headerLength = opts.headerLength ?? HEADER_LENGTH_DEFAULT;
    checkHeaderLength(this.headerLength);
    this.maxConnections = positiveInt(opts.maxConnections, MAX_CONNECTIONS_DEFAULT, 'maxConnections');
    this.maxFrameBytes = positiveInt(opts.maxFrameBytes, MAX_FRAME_BYTES_DEFAULT, 'maxFrameBytes', 0xffff);
    this.maxInFlightPerConnection = positiveInt(
      opts.maxInFlightPerConnection,
      MAX_IN_FLIGHT_PER_CONNECTION_DEFAULT,
      'maxInFlightPerConnection',
    );
    this.idleTimeoutMs = positiveInt(opts.idleTimeoutMs, IDLE_TIMEOUT_MS_DEFAULT, 'idleTimeoutMs');
    this.#disabled = new Set(opts.disabledCommands ?? []);
    this.#onError =
      opts.onError ??
      ((e, c) =>
        process.stderr.write(
          `hsm: internal error in ${c.command} from ${c.who}: ${e instanceof Error ? e.name : typeof e}\n`,
        ));
    this.#server = createServer((s) => this.#onConnection(s));
  }

  /** Adds a command to the table; the code must be a valid command code not yet registered. */
  register(code: string, handler: CommandHandler): this {
    if (!isCommandCode(code)) throw new RangeError(`register: ${code} is not a valid command code`);
    if (this.#handlers.has(code)) throw new RangeError(`register: ${code} is already registered`);
    this.#handlers.set(code, handler);
    return this;
  }

  /** Listens; resolves with the bound address (port 0 picks a free port). */
  listen(port: number, host = '127.0.0.1'): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  /** Open connections now. */
  get connections(): number {
    return this.#sockets.size;
  }

  /** Stops listening and closes every connection. */
  close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #onConnection(socket: Socket): void {
    if (this.#sockets.size >= this.maxConnections) {
      this.stats.refused++;
      socket.destroy();
      return;
    }
    this.stats.accepted++;
    this.#sockets.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(this.idleTimeoutMs);
    const who = `host:${socket.remoteAddress}:${socket.remotePort}`;
    const ctx: ConnectionContext = { who };
    const decoder = new FrameDecoder(this.maxFrameBytes);
    const slots: Slot[] = [];
    let writeBlocked = false;
    let closed = false;
    // A synchronous handler completes inside pump(); this flag keeps pump() from recursing into itself.
    let pumping = false;

    // Replies finished in one turn of the event loop go out in one write (cork until the next tick):
    // one syscall for a pipelined burst instead of one per reply.
    let corked = false;
    const uncork = (): void => {
      corked = false;
      if (!closed) socket.uncork();
    };
    const flush = (): void => {
      while (slots.length > 0 && slots[0]!.frame !== undefined && !closed) {
        const frame = slots.shift()!.frame!;
        if (!corked) {
          corked = true;
          socket.cork();
          process.nextTick(uncork);
        }
        if (!socket.write(frame)) writeBlocked = true;
      }
    };

    const pump = (): void => {
      pumping = true;
      while (!closed && slots.length < this.maxInFlightPerConnection && !writeBlocked) {
        let msg: Uint8Array | undefined;
        try {
          msg = decoder.next();
        } catch {
          // Oversized or zero length: the rest of the stream cannot be trusted to be framed.
          this.stats.frameErrors++;
          pumping = false;
          socket.destroy();
          return;
        }
        if (msg === undefined) break;
        // The header is echoed as is, so it must be printable ASCII; anything else is not a payShield peer.
        if (msg.length < this.headerLength || !isPrintable(msg.subarray(0, this.headerLength))) {
          this.stats.frameErrors++;
          pumping = false;
          socket.destroy();
          return;
        }
        this.stats.requests++;
        const slot: Slot = { frame: undefined };
        slots.push(slot);
        try {
          this.#dispatch(msg, ctx, (f) => {
            slot.frame = f;
            flush();
            if (!pumping) pump();
          });
        } catch (e) {
          // Never reached by design (every failure becomes a reply); if it is, drop this peer, not the HSM.
          this.stats.internalErrors++;
          this.#onError(e, { command: '??', who });
          pumping = false;
          socket.destroy();
          return;
        }
      }
      pumping = false;
      if (closed) return;
      if (slots.length >= this.maxInFlightPerConnection || writeBlocked) socket.pause();
      else socket.resume();
    };

    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      pump();
    });
    socket.on('drain', () => {
      writeBlocked = false;
      pump();
    });
    socket.on('timeout', () => {
      this.stats.idleClosed++;
      socket.destroy();
    });
    socket.on('error', () => {
      // A reset by the peer; 'close' follows.
    });
    socket.on('close', () => {
      closed = true;
      this.#sockets.delete(socket);
    });
  }

  #dispatch(msg: Uint8Array, ctx: ConnectionContext, done: (frame: Uint8Array) => void): void {
    const header = Buffer.from(msg.subarray(0, this.headerLength)).toString('latin1');
    const reply = (replyCode: string, errorCode: string, body: Uint8Array | string = ''): void => {
      const b = typeof body === 'string' ? new Uint8Array(Buffer.from(body, 'latin1')) : body;
      let frame: Uint8Array;
      try {
        frame = encodeReplyFrame({ header, replyCode, errorCode, body: b });
      } catch (e) {
        // A handler returned a body too long for the 2-byte length, or a bad error code: a defect.
        this.stats.internalErrors++;
        this.#onError(e, { command: replyCode, who: ctx.who });
        frame = encodeReplyFrame({ header, replyCode, errorCode: '41', body: new Uint8Array(0) });
      }
      done(frame);
    };
    if (msg.length < this.headerLength + 2) {
      reply(REPLY_CODE_UNUSABLE, '15');
      return;
    }
    const req = parseRequest(msg, this.headerLength);
    if (!isCommandCode(req.command)) {
      reply(REPLY_CODE_UNUSABLE, '15');
      return;
    }
    const replyCode = replyCodeFor(req.command);
    if (this.#disabled.has(req.command)) {
      reply(replyCode, '68');
      return;
    }
    const handler = this.#handlers.get(req.command);
    if (handler === undefined) {
      reply(replyCode, '15');
      return;
    }
    const fail = (e: unknown): void => {
      const code = errorCodeOf(e);
      if (code === undefined) {
        this.stats.internalErrors++;
        this.#onError(e, { command: req.command, who: ctx.who });
      }
      reply(replyCode, code ?? '41');
    };
    const ok = (r: CommandResult): void => reply(replyCode, r.errorCode ?? REPLY_OK, r.body ?? '');
    let result: CommandResult | Promise<CommandResult>;
    try {
      result = handler(req.body, ctx);
    } catch (e) {
      fail(e);
      return;
    }
    if (result instanceof Promise) result.then(ok, fail);
    else ok(result);
  }
}
