/**
 * payShield host command framing over TCP (payShield 9000/10K Host Command Reference, "Host message
 * format"):
 *
 *   request:  LEN (2 bytes, binary big-endian, excludes itself) | header (h chars) | command (2) | body
 *   reply:    LEN | header (the request's, echoed) | reply code (2) | error code (2) | body
 *
 * The header length h is a configuration setting of the HSM (payShield default 4) and the same for
 * every message on a port; clients use it to match replies. The reply code is the command code with its
 * second character advanced by one (A0 -> A1, NC -> ND, BU -> BV); a command ending in 'Z' or '9' has no
 * successor and is not a valid command code here. Nothing in this file looks at a body, so no error
 * from it can hold key or PIN data.
 */
import { HsmError } from './errors.js';

/** payShield's default message header length. */
export const HEADER_LENGTH_DEFAULT = 4;
/** Longest header accepted: the header is an opaque tag, 32 characters is more than any deployment uses. */
export const HEADER_LENGTH_MAX = 32;
/** Largest message after the length prefix that a 2-byte prefix can state. */
export const FRAME_PREFIX_MAX_BYTES = 0xffff;
/** Default largest message the server and client accept (payShield's own buffer is 32 KiB). */
export const MAX_FRAME_BYTES_DEFAULT = 32 * 1024;
/** The reply code used when the command code itself is unusable (missing, or not two of 0-9, A-Z). */
export const REPLY_CODE_UNUSABLE = 'ZZ';

const CODE_RE = /^[A-Z0-9][A-Y0-8]$/;

/** Throws RangeError unless `n` is a valid header length (programmer or configuration misuse). */
export function checkHeaderLength(n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > HEADER_LENGTH_MAX) {
    throw new RangeError(`headerLength: must be an integer from 0 to ${HEADER_LENGTH_MAX}`);
  }
}

/** True when `code` is two characters of 0-9/A-Z whose second character has a successor. */
export function isCommandCode(code: string): boolean {
  return typeof code === 'string' && CODE_RE.test(code);
}

/** The reply code of `command`: its second character advanced by one (A0 -> A1, NC -> ND). */
export function replyCodeFor(command: string): string {
  if (!isCommandCode(command)) {
    throw new HsmError('HSM_REQUEST_INVALID', 'command', 'must be 2 of 0-9, A-Z, not ending in 9 or Z');
  }
  return command[0]! + String.fromCharCode(command.charCodeAt(1) + 1);
}

export interface HostRequest {
  header: string;
  command: string;
  body: Uint8Array;
}

export interface HostReply {
  header: string;
  replyCode: string;
  errorCode: string;
  body: Uint8Array;
}

function prefix(len: number, maxFrameBytes: number): Uint8Array {
  if (len === 0 || len > maxFrameBytes) {
    throw new HsmError(
      'HSM_FRAME_TOO_LARGE',
      'frame.length',
      `length ${len} is outside 1 to ${maxFrameBytes} bytes`,
    );
  }
  return Uint8Array.of(len >> 8, len & 0xff);
}

function latin1(s: string, field: string): Uint8Array {
  // Headers and codes are ASCII; refusing anything else keeps one character = one byte.
  if (!/^[\x20-\x7e]*$/.test(s)) throw new HsmError('HSM_REQUEST_INVALID', field, 'must be printable ASCII');
  return new Uint8Array(Buffer.from(s, 'latin1'));
}

/** Encodes one request frame with its 2-byte length prefix. */
export function encodeRequestFrame(req: HostRequest, opts: { maxFrameBytes?: number } = {}): Uint8Array {
  const head = latin1(req.header + req.command, 'request.header');
  const n = head.length + req.body.length;
  const out = new Uint8Array(2 + n);
  out.set(prefix(n, Math.min(opts.maxFrameBytes ?? FRAME_PREFIX_MAX_BYTES, FRAME_PREFIX_MAX_BYTES)));
  out.set(head, 2);
  out.set(req.body, 2 + head.length);
  return out;
}

/** Encodes one reply frame with its 2-byte length prefix. */
export function encodeReplyFrame(reply: HostReply): Uint8Array {
  if (!/^[0-9A-Z]{2}$/.test(reply.errorCode)) throw new RangeError('errorCode: must be 2 of 0-9, A-Z');
  const head = latin1(reply.header + reply.replyCode + reply.errorCode, 'reply.header');
  const n = head.length + reply.body.length;
  const out = new Uint8Array(2 + n);
  out.set(prefix(n, FRAME_PREFIX_MAX_BYTES));
  out.set(head, 2);
  out.set(reply.body, 2 + head.length);
  return out;
}

const ascii = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

/**
 * Splits a request message (after the length prefix). A message shorter than header + 2 is
 * HSM_FRAME_INVALID; a command code that is not usable is returned as is (the server answers it with
 * REPLY_CODE_UNUSABLE and error 15).
 */
export function parseRequest(message: Uint8Array, headerLength: number): HostRequest {
  if (message.length < headerLength + 2) {
    throw new HsmError(
      'HSM_FRAME_INVALID',
      'frame',
      `has ${message.length} bytes, shorter than the ${headerLength}-character header and the command code`,
    );
  }
  return {
    header: ascii(message.subarray(0, headerLength)),
    command: ascii(message.subarray(headerLength, headerLength + 2)),
    body: message.subarray(headerLength + 2),
  };
}

/** Splits a reply message (after the length prefix); HSM_REPLY_INVALID when too short or malformed. */
export function parseReply(message: Uint8Array, headerLength: number): HostReply {
  if (message.length < headerLength + 4) {
    throw new HsmError('HSM_REPLY_INVALID', 'reply', `has ${message.length} bytes, shorter than header + 4`);
  }
  const replyCode = ascii(message.subarray(headerLength, headerLength + 2));
  const errorCode = ascii(message.subarray(headerLength + 2, headerLength + 4));
  if (!/^[0-9A-Z]{2}$/.test(replyCode) || !/^[0-9A-Z]{2}$/.test(errorCode)) {
    throw new HsmError('HSM_REPLY_INVALID', 'reply', 'reply code or error code is not 2 of 0-9, A-Z');
  }
  return {
    header: ascii(message.subarray(0, headerLength)),
    replyCode,
    errorCode,
    body: message.subarray(headerLength + 4),
  };
}

/**
 * Incremental splitter of a byte stream into messages (each without its length prefix). Holds at most
 * one partial message plus what the socket has delivered; a declared length above `maxFrameBytes` is
 * HSM_FRAME_TOO_LARGE before any of that message is buffered, and a declared 0 is HSM_FRAME_INVALID.
 * `next()` returns one message at a time so that the caller decides when to take the next one
 * (backpressure).
 */
export class FrameDecoder {
  readonly maxFrameBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;

  constructor(maxFrameBytes: number = MAX_FRAME_BYTES_DEFAULT) {
    if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1 || maxFrameBytes > FRAME_PREFIX_MAX_BYTES) {
      throw new RangeError(`maxFrameBytes: must be an integer from 1 to ${FRAME_PREFIX_MAX_BYTES}`);
    }
    this.maxFrameBytes = maxFrameBytes;
  }

  push(chunk: Uint8Array): void {
    this.#chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.#buffered += chunk.byteLength;
  }

  /** Bytes held and not yet returned. */
  get buffered(): number {
    return this.#buffered;
  }

  #flatten(): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  /** The next whole message, or undefined when more bytes are needed. */
  next(): Uint8Array | undefined {
    if (this.#buffered < 2) return undefined;
    const buf = this.#flatten();
    const len = buf.readUInt16BE(0);
    if (len === 0) throw new HsmError('HSM_FRAME_INVALID', 'frame.length', 'length is 0');
    if (len > this.maxFrameBytes) {
      throw new HsmError(
        'HSM_FRAME_TOO_LARGE',
        'frame.length',
        `length ${len} is above the maximum of ${this.maxFrameBytes} bytes`,
      );
    }
    if (buf.length < 2 + len) return undefined;
    const msg = new Uint8Array(buf.subarray(2, 2 + len));
    const rest = buf.subarray(2 + len);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#buffered = rest.length;
    return msg;
  }
}
