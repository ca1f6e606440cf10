/**
 * TCP framing of ISO 8583 messages, kept apart from the codec (as jPOS keeps the channel apart from the
 * packager): a length prefix around each message, and the UnionPay terminal's TPDU and application
 * header in front of the MTI.
 *
 * Wire layout of the UnionPay POS terminal dialect (cup-pos-dialect.md section 2.1, verified on every
 * framed sample in test/golden/cup-pos-samples.json):
 *
 *   LEN(2, binary big-endian, excludes itself) | TPDU(5) | HEADER(6) | MTI | BITMAP | fields
 *
 * Nothing here looks inside the message, so no error from this file can hold card data: messages name
 * lengths, offsets and the rule, never the bytes.
 */
import { Iso8583Error } from './errors.js';

/** The two length prefixes in use on POS and host links. */
export type FrameLengthPrefix = 'binary2' | 'ascii4';

/**
 * Default largest message (bytes after the length prefix) a reader accepts or a writer emits. A UnionPay
 * terminal message is a few hundred bytes (the largest public sample, an IC purchase with field 55, is
 * 426); 8 KiB leaves room for field 55/62/63 at their maxima and parameter downloads while bounding what
 * one hostile peer can make a host buffer.
 */
export const FRAME_MAX_BYTES_DEFAULT = 8192;

/** Width in bytes of each length prefix. */
export const FRAME_PREFIX_BYTES: Readonly<Record<FrameLengthPrefix, number>> = { binary2: 2, ascii4: 4 };

/** Largest length each prefix can state: 2 bytes unsigned, or 4 decimal digits. */
export const FRAME_PREFIX_MAX_BYTES: Readonly<Record<FrameLengthPrefix, number>> = {
  binary2: 0xffff,
  ascii4: 9999,
};

export interface FrameOptions {
  /** Length prefix; `binary2` (the UnionPay terminal link) when omitted. */
  prefix?: FrameLengthPrefix;
  /** Largest message accepted, in bytes; {@link FRAME_MAX_BYTES_DEFAULT} when omitted. */
  maxFrameBytes?: number;
}

function resolveOptions(options: FrameOptions | undefined): { prefix: FrameLengthPrefix; max: number } {
  const prefix = options?.prefix ?? 'binary2';
  if (prefix !== 'binary2' && prefix !== 'ascii4') throw new TypeError(`prefix: unknown length prefix`);
  const max = options?.maxFrameBytes ?? FRAME_MAX_BYTES_DEFAULT;
  if (!Number.isInteger(max) || max < 1 || max > FRAME_PREFIX_MAX_BYTES[prefix]) {
    throw new RangeError(
      `maxFrameBytes: must be an integer from 1 to ${FRAME_PREFIX_MAX_BYTES[prefix]} for prefix ${prefix}`,
    );
  }
  return { prefix, max };
}

/**
 * A fresh copy of `bytes[from, to)` as a plain Uint8Array. Not `.slice`: on a Node `Buffer` (what a socket
 * delivers) `slice` returns a view, and a message must not change when the caller reuses its buffer.
 */
function copyBytes(bytes: Uint8Array, from: number, to: number): Uint8Array {
  const out = new Uint8Array(to - from);
  out.set(bytes.subarray(from, to));
  return out;
}

/** Refuses a length of 0 and a length above the maximum; both mean a broken or hostile peer. */
function checkLength(length: number, max: number, offset: number | undefined): void {
  if (length === 0) throw new Iso8583Error('ISO8583_FRAME_EMPTY', 'frame.length', 'length is 0', offset);
  if (length > max) {
    throw new Iso8583Error(
      'ISO8583_FRAME_TOO_LARGE',
      'frame.length',
      `length ${length} is above the maximum of ${max} bytes`,
      offset,
    );
  }
}

/**
 * Reads the length prefix at `at`. `binary2`: unsigned 16-bit big-endian; `ascii4`: four ASCII decimal
 * digits (both count the bytes after the prefix, not the prefix itself).
 */
function readLength(bytes: Uint8Array, at: number, prefix: FrameLengthPrefix, offset: number): number {
  if (prefix === 'binary2') return (bytes[at]! << 8) | bytes[at + 1]!;
  let n = 0;
  for (let i = 0; i < 4; i++) {
    const c = bytes[at + i]!;
    if (c < 0x30 || c > 0x39) {
      throw new Iso8583Error(
        'ISO8583_LENGTH_INVALID',
        'frame.length',
        'an ASCII length prefix must be 4 decimal digits',
        offset + i,
      );
    }
    n = n * 10 + (c - 0x30);
  }
  return n;
}

/** Prefixes `message` with its length. Throws ISO8583_FRAME_EMPTY / ISO8583_FRAME_TOO_LARGE. */
export function encodeFrame(message: Uint8Array, options?: FrameOptions): Uint8Array {
  const { prefix, max } = resolveOptions(options);
  checkLength(message.length, max, undefined);
  const width = FRAME_PREFIX_BYTES[prefix];
  const out = new Uint8Array(width + message.length);
  if (prefix === 'binary2') {
    out[0] = message.length >>> 8;
    out[1] = message.length & 0xff;
  } else {
    const digits = String(message.length).padStart(4, '0');
    for (let i = 0; i < 4; i++) out[i] = digits.charCodeAt(i);
  }
  out.set(message, width);
  return out;
}

/**
 * Takes the message out of exactly one frame (e.g. a hex dump from a log). The declared length must match
 * the bytes present: fewer is ISO8583_FRAME_TRUNCATED, more is ISO8583_FRAME_TRAILING.
 */
export function decodeFrame(frame: Uint8Array, options?: FrameOptions): Uint8Array {
  const { prefix, max } = resolveOptions(options);
  const width = FRAME_PREFIX_BYTES[prefix];
  if (frame.length < width) {
    throw new Iso8583Error(
      'ISO8583_FRAME_TRUNCATED',
      'frame.length',
      `input ends inside the ${width}-byte length prefix`,
      frame.length,
    );
  }
  const length = readLength(frame, 0, prefix, 0);
  checkLength(length, max, 0);
  const have = frame.length - width;
  if (have < length) {
    throw new Iso8583Error(
      'ISO8583_FRAME_TRUNCATED',
      'frame',
      `length says ${length} bytes but only ${have} follow`,
      frame.length,
    );
  }
  if (have > length) {
    throw new Iso8583Error(
      'ISO8583_FRAME_TRAILING',
      'frame',
      `${have - length} byte${have - length === 1 ? '' : 's'} after the ${length}-byte frame`,
      width + length,
    );
  }
  return copyBytes(frame, width, frame.length);
}

/**
 * Cuts a TCP byte stream into messages. TCP delivers bytes, not messages: one read may end inside the
 * length prefix, inside a message, or hold several messages (coalesced writes), so a reader must keep the
 * unfinished tail between reads.
 *
 * Buffering is bounded: a declared length is checked against `maxFrameBytes` as soon as the prefix is
 * complete, before any of the message is kept, so the reader never holds more than
 * prefix + maxFrameBytes bytes whatever the peer sends.
 *
 * After a bad length the stream has lost its framing and cannot be resynchronised; the connection must be
 * closed. So that a good message that arrived in the same read before the bad prefix is not lost, `push`
 * first returns the messages completed before the fault, and the error is thrown by that `push` only when
 * it completed none; otherwise by the next `push` or `end`. `failed` tells a caller that wants to close at
 * once.
 */
export class FrameReader {
  readonly prefix: FrameLengthPrefix;
  readonly maxFrameBytes: number;
  readonly #width: number;
  /** Holds the unfinished frame: prefix then message bytes; allocated on first need, never grown. */
  #buffer: Uint8Array | undefined;
  /** Bytes of the unfinished frame held in #buffer. */
  #filled = 0;
  /** Declared length of the unfinished frame, once its prefix is complete; -1 before. */
  #length = -1;
  /** Stream offset of the first byte of the unfinished frame, for error offsets. */
  #frameOffset = 0;
  /** The error that broke the stream; rethrown by every later call. */
  #failure: Iso8583Error | undefined;

  constructor(options?: FrameOptions) {
    const { prefix, max } = resolveOptions(options);
    this.prefix = prefix;
    this.maxFrameBytes = max;
    this.#width = FRAME_PREFIX_BYTES[prefix];
  }

  /** Bytes received but not yet part of a returned message (at most prefix + maxFrameBytes). */
  get bufferedBytes(): number {
    return this.#filled;
  }

  /** True once a bad length has been seen: the stream is unusable and the connection should be closed. */
  get failed(): boolean {
    return this.#failure !== undefined;
  }

  /** Takes the next bytes read from the socket and returns every message they complete, in order. */
  push(chunk: Uint8Array): Uint8Array[] {
    if (!(chunk instanceof Uint8Array)) throw new TypeError('chunk: must be a Uint8Array');
    this.#throwIfFailed();
    const frames: Uint8Array[] = [];
    let at = 0;
    try {
      while (at < chunk.length) {
        // Fast path: at a frame boundary and the whole frame is in this chunk; no copy into the buffer.
        if (this.#filled === 0 && chunk.length - at >= this.#width) {
          const length = readLength(chunk, at, this.prefix, this.#frameOffset);
          checkLength(length, this.maxFrameBytes, this.#frameOffset);
          const end = at + this.#width + length;
          if (end <= chunk.length) {
            frames.push(copyBytes(chunk, at + this.#width, end));
            this.#frameOffset += this.#width + length;
            at = end;
            continue;
          }
        }
        at = this.#take(chunk, at, frames);
      }
    } catch (e) {
      if (!(e instanceof Iso8583Error)) throw e;
      this.#failure = e;
      this.#buffer = undefined;
      this.#filled = 0;
      if (frames.length === 0) throw e;
    }
    return frames;
  }

  /**
   * Call when the peer closes. Throws ISO8583_FRAME_TRUNCATED if the stream stopped inside a frame (a
   * message cut by a dropped line must not be half-processed), or the pending error after a bad length.
   */
  end(): void {
    this.#throwIfFailed();
    if (this.#filled > 0) {
      const filled = this.#filled;
      this.#buffer = undefined;
      this.#filled = 0;
      this.#length = -1;
      throw new Iso8583Error(
        'ISO8583_FRAME_TRUNCATED',
        'frame',
        `stream ended ${filled} bytes into an unfinished frame`,
        this.#frameOffset + filled,
      );
    }
  }

  #throwIfFailed(): void {
    const f = this.#failure;
    if (f !== undefined) throw f;
  }

  /** Slow path: copies bytes of `chunk` from `at` into the buffer; returns the new position in `chunk`. */
  #take(chunk: Uint8Array, at: number, frames: Uint8Array[]): number {
    const width = this.#width;
    this.#buffer ??= new Uint8Array(width + this.maxFrameBytes);
    const buffer = this.#buffer;
    if (this.#length < 0) {
      const n = Math.min(width - this.#filled, chunk.length - at);
      buffer.set(chunk.subarray(at, at + n), this.#filled);
      this.#filled += n;
      at += n;
      if (this.#filled < width) return at;
      const length = readLength(buffer, 0, this.prefix, this.#frameOffset);
      checkLength(length, this.maxFrameBytes, this.#frameOffset);
      this.#length = length;
    }
    const need = width + this.#length;
    const n = Math.min(need - this.#filled, chunk.length - at);
    buffer.set(chunk.subarray(at, at + n), this.#filled);
    this.#filled += n;
    at += n;
    if (this.#filled === need) {
      frames.push(copyBytes(buffer, width, need));
      this.#frameOffset += need;
      this.#filled = 0;
      this.#length = -1;
    }
    return at;
  }
}

// ---------------------------------------------------------------------------------------------------
// UnionPay TPDU and application header (cup-pos-dialect.md 2.1).

/** Length of the TPDU in bytes. */
export const TPDU_BYTES = 5;
/** TPDU identifier: 0x60 = "transaction TPDU" in every public UnionPay sample. */
export const TPDU_ID = 0x60;

/**
 * Transport Protocol Data Unit: ID 0x60, destination address (2 bytes) and source address (2 bytes), each
 * held as its 16-bit big-endian value (usually an NII written as BCD, e.g. 0x0601).
 */
export interface Tpdu {
  destination: number;
  source: number;
}

/** Reads a 5-byte TPDU. Throws ISO8583_TPDU_INVALID on a wrong length or an ID other than 0x60. */
export function parseTpdu(bytes: Uint8Array): Tpdu {
  if (bytes.length !== TPDU_BYTES) {
    throw new Iso8583Error(
      'ISO8583_TPDU_INVALID',
      'tpdu',
      `a TPDU is ${TPDU_BYTES} bytes, got ${bytes.length}`,
      Math.min(bytes.length, TPDU_BYTES),
    );
  }
  if (bytes[0] !== TPDU_ID) {
    throw new Iso8583Error('ISO8583_TPDU_INVALID', 'tpdu.id', 'the TPDU ID must be 0x60', 0);
  }
  return { destination: (bytes[1]! << 8) | bytes[2]!, source: (bytes[3]! << 8) | bytes[4]! };
}

function checkAddress(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) {
    throw new RangeError(`${name}: must be an integer from 0 to 0xFFFF`);
  }
}

/** Writes a TPDU: 0x60, destination, source (both big-endian). */
export function buildTpdu(tpdu: Tpdu): Uint8Array {
  checkAddress(tpdu.destination, 'tpdu.destination');
  checkAddress(tpdu.source, 'tpdu.source');
  return Uint8Array.of(
    TPDU_ID,
    tpdu.destination >>> 8,
    tpdu.destination & 0xff,
    tpdu.source >>> 8,
    tpdu.source & 0xff,
  );
}

/**
 * The TPDU of the reply: destination and source swapped, so the answer is routed back to the terminal
 * (request 60 0601 0000 is answered with 60 0000 0601: go8583 log1.txt, sample go8583-log1-0810).
 */
export function replyTpdu(request: Tpdu): Tpdu {
  return { destination: request.source, source: request.destination };
}

/** Length of the UnionPay application header in bytes (12 BCD digits). */
export const CUP_HEADER_BYTES = 6;

/**
 * The 6-byte application header, 12 BCD digits (cup-pos-dialect.md 2.1): application type (2 digits,
 * e.g. 60 or 61), software version (2, e.g. 31), terminal status (1), processing requirement (1: set by
 * the POSP in a reply, e.g. 4 = update public keys, 5 = download IC parameters, 9 = download contactless
 * parameters), reserved (6; some terminals put a software sub-version here). Digits are kept as strings
 * so leading zeros survive.
 */
export interface CupHeader {
  applicationType: string;
  softwareVersion: string;
  terminalStatus: string;
  processingRequirement: string;
  reserved: string;
}

const HEADER_PARTS: ReadonlyArray<readonly [keyof CupHeader, number]> = [
  ['applicationType', 2],
  ['softwareVersion', 2],
  ['terminalStatus', 1],
  ['processingRequirement', 1],
  ['reserved', 6],
];

/** Reads the 6-byte header. Throws ISO8583_HEADER_INVALID on a wrong length or a nibble above 9. */
export function parseCupHeader(bytes: Uint8Array): CupHeader {
  return readCupHeader(bytes, 0);
}

/** `base`: offset of the header in the input, so that error offsets point into what the caller holds. */
function readCupHeader(bytes: Uint8Array, base: number): CupHeader {
  if (bytes.length !== CUP_HEADER_BYTES) {
    throw new Iso8583Error(
      'ISO8583_HEADER_INVALID',
      'header',
      `the application header is ${CUP_HEADER_BYTES} bytes, got ${bytes.length}`,
      base + Math.min(bytes.length, CUP_HEADER_BYTES),
    );
  }
  let digits = '';
  for (let i = 0; i < CUP_HEADER_BYTES; i++) {
    const b = bytes[i]!;
    if (b >>> 4 > 9 || (b & 0x0f) > 9) {
      throw new Iso8583Error(
        'ISO8583_HEADER_INVALID',
        'header',
        'the application header must be BCD digits',
        base + i,
      );
    }
    digits += (b >>> 4).toString() + (b & 0x0f).toString();
  }
  const header = {} as CupHeader;
  let at = 0;
  for (const [name, width] of HEADER_PARTS) {
    header[name] = digits.slice(at, at + width);
    at += width;
  }
  return header;
}

/** Writes the 6-byte header from its parts (each exactly its width in decimal digits). */
export function buildCupHeader(header: CupHeader): Uint8Array {
  let digits = '';
  for (const [name, width] of HEADER_PARTS) {
    const part = header[name];
    if (typeof part !== 'string' || part.length !== width || !/^[0-9]+$/.test(part)) {
      throw new Iso8583Error(
        'ISO8583_HEADER_INVALID',
        `header.${name}`,
        `must be ${width} decimal digit${width === 1 ? '' : 's'}`,
      );
    }
    digits += part;
  }
  const out = new Uint8Array(CUP_HEADER_BYTES);
  for (let i = 0; i < CUP_HEADER_BYTES; i++) {
    out[i] = ((digits.charCodeAt(2 * i) - 0x30) << 4) | (digits.charCodeAt(2 * i + 1) - 0x30);
  }
  return out;
}

/** A UnionPay terminal message as framed on the wire, without its length prefix. */
export interface CupFrame {
  tpdu: Tpdu;
  header: CupHeader;
  /** MTI, bitmap and fields: what the cup-pos spec unpacks. */
  message: Uint8Array;
}

/**
 * Splits the bytes after the length prefix into TPDU, header and message. Throws ISO8583_FRAME_TRUNCATED
 * when fewer than 11 bytes (TPDU + header) are present, then the TPDU and header errors.
 */
export function splitCupFrame(payload: Uint8Array): CupFrame {
  const lead = TPDU_BYTES + CUP_HEADER_BYTES;
  if (payload.length < lead) {
    throw new Iso8583Error(
      'ISO8583_FRAME_TRUNCATED',
      'frame',
      `a UnionPay frame starts with ${lead} bytes of TPDU and header, got ${payload.length}`,
      payload.length,
    );
  }
  const tpdu = parseTpdu(payload.subarray(0, TPDU_BYTES));
  const header = readCupHeader(payload.subarray(TPDU_BYTES, lead), TPDU_BYTES);
  return { tpdu, header, message: copyBytes(payload, lead, payload.length) };
}

/** Joins TPDU, header and message into the bytes that go after the length prefix. */
export function joinCupFrame(frame: CupFrame): Uint8Array {
  const tpdu = buildTpdu(frame.tpdu);
  const header = buildCupHeader(frame.header);
  const out = new Uint8Array(tpdu.length + header.length + frame.message.length);
  out.set(tpdu, 0);
  out.set(header, tpdu.length);
  out.set(frame.message, tpdu.length + header.length);
  return out;
}
