/**
 * Messages: a compiled spec, the message object (get/set by field id and subfield path), pack and unpack.
 *
 * Wire layout (ISO 8583:1987 clause 4.3): MTI, primary bitmap, secondary bitmap when bit 1 is set, then
 * the data elements in field-number order. Framing (length header, TPDU, application header) is not
 * part of the message: see framing.ts.
 */

import { inspect } from 'node:util';
import { describe as describeMessage, fromJson, toJson } from './describe.js';
import { bytesToHex, decodeEbcdic, decodeLatin1, Reader, Writer } from './encoding.js';
import { Iso8583Error } from './errors.js';
import { FieldCodec, type FieldValue } from './field.js';
import { DEFAULT_ECHO_FIELDS, type MessageSpec, validateSpec } from './spec.js';
import { normalizeTag, type PositionalCodec, type TlvCodec } from './subfields.js';

export type { FieldValue } from './field.js';

type Table = readonly (FieldCodec | undefined)[];

function buildTable(fields: MessageSpec['fields'], base?: Table): (FieldCodec | undefined)[] {
  const t: (FieldCodec | undefined)[] = base ? base.slice() : new Array(129).fill(undefined);
  for (const [id, f] of Object.entries(fields)) t[Number(id)] = new FieldCodec(id, f);
  return t;
}

/** A validated spec compiled into per-field codecs, ready to pack and unpack. Build it with `compileSpec`. */
export class CompiledSpec {
  readonly name: string;
  readonly description: string | undefined;
  /** The JSON spec it was compiled from. */
  readonly source: MessageSpec;
  readonly mtiEncoding: 'ascii' | 'ebcdic' | 'bcd';
  readonly bitmapHex: boolean;
  readonly secondary: boolean;
  /** Codecs indexed by field number (0 and 1 unused). */
  readonly fields: Table;
  /** Field numbers a response echoes (`startResponse`). */
  readonly echo: readonly number[];
  private readonly byMti: Map<string, Table>;

  constructor(spec: MessageSpec) {
    this.source = spec;
    this.name = spec.name;
    this.description = spec.description;
    this.mtiEncoding = spec.mti.encoding;
    this.bitmapHex = spec.bitmap.encoding === 'hex';
    this.secondary = spec.bitmap.secondary;
    this.fields = buildTable(spec.fields);
    this.byMti = new Map();
    for (const o of spec.overrides ?? []) {
      for (const mti of o.mti) this.byMti.set(mti, buildTable(o.fields, this.byMti.get(mti) ?? this.fields));
    }
    this.echo = (spec.response?.echo ?? DEFAULT_ECHO_FIELDS)
      .map(Number)
      .filter((n) => this.fields[n] !== undefined);
  }

  /** The codec table that applies to messages of this MTI (overrides included). */
  fieldsFor(mti: string): Table {
    return this.byMti.size === 0 ? this.fields : (this.byMti.get(mti) ?? this.fields);
  }

  /** The codec of field `id` for a message of type `mti`, or undefined when the spec lacks it. */
  field(id: number, mti = ''): FieldCodec | undefined {
    return this.fieldsFor(mti)[id];
  }
}

/** Validate a parsed JSON spec and compile it. Throws ISO8583_SPEC_INVALID with the JSON path of the error. */
export function compileSpec(spec: unknown): CompiledSpec {
  return new CompiledSpec(validateSpec(spec));
}

const MTI_RE = /^[0-9]{4}$/;

function checkMti(mti: unknown): string {
  if (typeof mti !== 'string' || !MTI_RE.test(mti))
    throw new Iso8583Error('ISO8583_MTI_INVALID', 'mti', 'must be 4 decimal digits');
  return mti;
}

/** A field path: `"35"`, `"60.2"`, `"55.9F26"` (or a field number). */
function parsePath(path: string | number): { id: number; sub: string | undefined; text: string } {
  if (typeof path === 'number') {
    if (Number.isInteger(path) && path >= 2 && path <= 128)
      return { id: path, sub: undefined, text: String(path) };
  } else if (path.length <= 3) {
    // Fast path for plain field ids ("2".."128"): no regex, no slicing.
    let id = 0;
    for (let i = 0; i < path.length; i++) {
      const d = path.charCodeAt(i) - 48;
      id = d >= 0 && d <= 9 && !(i === 0 && d === 0) ? id * 10 + d : -1e9;
    }
    if (id >= 2 && id <= 128) return { id, sub: undefined, text: path };
  }
  const text = String(path);
  const dot = text.indexOf('.');
  const head = dot < 0 ? text : text.slice(0, dot);
  const id = /^[1-9][0-9]{0,2}$/.test(head) ? Number(head) : Number.NaN;
  if (!(id >= 2 && id <= 128))
    throw new Iso8583Error('ISO8583_FIELD_UNKNOWN', text, 'a field id is a number from 2 to 128');
  return { id, sub: dot < 0 ? undefined : text.slice(dot + 1), text };
}

/**
 * An ISO 8583 message bound to a spec. Values are strings for text fields and Uint8Array for `b` fields.
 * `toString`, `toJSON` and `util.inspect` show the masked `describe` view, so logging a message never
 * prints card data.
 */
export class Iso8583Message {
  readonly spec: CompiledSpec;
  /** Field values indexed by field number; index 0 and 1 unused. Prefer get/set. */
  readonly values: (FieldValue | undefined)[];
  private mtiValue: string;

  constructor(spec: CompiledSpec, mti: string, fields?: Record<string, FieldValue>) {
    this.spec = spec;
    this.mtiValue = checkMti(mti);
    this.values = new Array(129).fill(undefined);
    if (fields) for (const k in fields) this.set(k, fields[k]!);
  }

  get mti(): string {
    return this.mtiValue;
  }

  set mti(mti: string) {
    this.mtiValue = checkMti(mti);
  }

  /** @internal unpack sets the MTI it has already checked. */
  static fromUnpacked(spec: CompiledSpec, mti: string): Iso8583Message {
    const m = Object.create(Iso8583Message.prototype) as Iso8583Message;
    (m as { spec: CompiledSpec }).spec = spec;
    (m as unknown as { mtiValue: string }).mtiValue = mti;
    (m as { values: (FieldValue | undefined)[] }).values = new Array(129).fill(undefined);
    return m;
  }

  private codec(id: number, path: string): FieldCodec {
    const c = this.spec.fieldsFor(this.mtiValue)[id];
    if (c === undefined)
      throw new Iso8583Error(
        'ISO8583_FIELD_UNKNOWN',
        path,
        `spec ${this.spec.name} does not define this field`,
      );
    return c;
  }

  private subCodec(c: FieldCodec, path: string): PositionalCodec | TlvCodec {
    if (c.sub === undefined)
      throw new Iso8583Error('ISO8583_FIELD_UNKNOWN', path, 'the field has no subfields');
    return c.sub;
  }

  /** The value of a field or subfield, or undefined when absent. */
  get(path: string | number): FieldValue | undefined {
    const { id, sub, text } = parsePath(path);
    if (sub === undefined) {
      if (this.spec.fieldsFor(this.mtiValue)[id] === undefined) this.codec(id, text);
      return this.values[id];
    }
    const sc = this.subCodec(this.codec(id, text), text);
    const v = this.values[id];
    if (sc.kind === 'positional') {
      const i = sc.indexOf(sub);
      if (i < 0)
        throw new Iso8583Error('ISO8583_FIELD_UNKNOWN', text, 'the spec does not define this subfield');
      return v === undefined ? undefined : sc.split(v)[i];
    }
    const tag = normalizeTag(sub);
    if (tag === undefined)
      throw new Iso8583Error('ISO8583_FIELD_UNKNOWN', text, 'not a BER tag of 1 to 3 bytes');
    if (v === undefined) return undefined;
    return sc.parse(v as Uint8Array).find((t) => t.tag === tag)?.value;
  }

  has(path: string | number): boolean {
    return this.get(path) !== undefined;
  }

  /** Set a field or subfield. The kind of value is checked now (string or bytes); the rest when packing. */
  set(path: string | number, value: FieldValue): this {
    const { id, sub, text } = parsePath(path);
    const c = this.codec(id, text);
    if (sub === undefined) {
      if (c.binary ? !(value instanceof Uint8Array) : typeof value !== 'string')
        throw new Iso8583Error(
          'ISO8583_VALUE_INVALID',
          text,
          c.binary ? 'a b field takes bytes (Uint8Array)' : `a ${c.type} field takes a string`,
        );
      this.values[id] = value;
      return this;
    }
    this.setSub(c, id, sub, text, value);
    return this;
  }

  /** Remove a field or subfield. */
  unset(path: string | number): this {
    const { id, sub, text } = parsePath(path);
    const c = this.codec(id, text);
    if (sub === undefined) this.values[id] = undefined;
    else this.setSub(c, id, sub, text, undefined);
    return this;
  }

  private setSub(c: FieldCodec, id: number, sub: string, text: string, value: FieldValue | undefined): void {
    const sc = this.subCodec(c, text);
    const cur = this.values[id];
    if (sc.kind === 'positional') {
      const i = sc.indexOf(sub);
      if (i < 0)
        throw new Iso8583Error('ISO8583_FIELD_UNKNOWN', text, 'the spec does not define this subfield');
      const parts = cur === undefined ? new Array(sc.parts.length).fill(undefined) : sc.split(cur);
      parts[i] = value;
      const joined = sc.join(parts, c.fixed && parts.some((p) => p !== undefined));
      this.values[id] = joined.length === 0 ? undefined : joined;
      return;
    }
    const tag = normalizeTag(sub);
    if (tag === undefined)
      throw new Iso8583Error('ISO8583_FIELD_UNKNOWN', text, 'not a BER tag of 1 to 3 bytes');
    if (value !== undefined && !(value instanceof Uint8Array))
      throw new Iso8583Error('ISO8583_VALUE_INVALID', text, 'a TLV value takes bytes (Uint8Array)');
    const items = cur === undefined ? [] : sc.parse(cur as Uint8Array);
    const at = items.findIndex((t) => t.tag === tag);
    if (value === undefined) {
      if (at >= 0) items.splice(at, 1);
    } else if (at >= 0) items[at] = { tag, value };
    else items.push({ tag, value });
    this.values[id] = items.length === 0 ? undefined : sc.build(items);
  }

  /** Field numbers present, ascending. */
  fieldIds(): number[] {
    const out: number[] = [];
    for (let i = 2; i <= 128; i++) if (this.values[i] !== undefined) out.push(i);
    return out;
  }

  /** A deep copy (byte values are copied). */
  clone(): Iso8583Message {
    const m = Iso8583Message.fromUnpacked(this.spec, this.mtiValue);
    for (let i = 2; i <= 128; i++) {
      const v = this.values[i];
      m.values[i] = v instanceof Uint8Array ? v.slice() : v;
    }
    return m;
  }

  /** Pack under this message's spec, or another one (to translate between dialects). */
  pack(spec: CompiledSpec = this.spec): Uint8Array {
    return packMessage(spec, this);
  }

  /** Masked JSON view (`toJson`): what `JSON.stringify(message)` prints. */
  toJSON(): unknown {
    return toJson(this);
  }

  /** Masked human view (`describe`). */
  toString(): string {
    return describeMessage(this);
  }

  [inspect.custom](): string {
    return describeMessage(this);
  }
}

// ------------------------------------------------------------------------------------------------
// Pack / unpack
// ------------------------------------------------------------------------------------------------

/** Reused output buffer: packing never yields, so one shared writer is safe and avoids a new buffer per call. */
const writer = new Writer(2048);
const bitmapScratch = new Uint8Array(16);
const HEX_DIGITS = '0123456789ABCDEF';

function writeMti(spec: CompiledSpec, mti: string, w: Writer): void {
  checkMti(mti);
  w.ensure(4);
  const b = w.buf;
  if (spec.mtiEncoding === 'bcd') {
    b[w.pos++] = ((mti.charCodeAt(0) - 48) << 4) | (mti.charCodeAt(1) - 48);
    b[w.pos++] = ((mti.charCodeAt(2) - 48) << 4) | (mti.charCodeAt(3) - 48);
  } else {
    const base = spec.mtiEncoding === 'ascii' ? 0 : 0xc0; // EBCDIC digits are 0xF0-0xF9 = '0'..'9' + 0xC0
    for (let i = 0; i < 4; i++) b[w.pos++] = mti.charCodeAt(i) + base;
  }
}

/** Pack `message` under `spec`: MTI, bitmap(s), fields in order. */
export function packMessage(spec: CompiledSpec, message: Iso8583Message): Uint8Array {
  const w = writer;
  w.pos = 0;
  const mti = message.mti;
  writeMti(spec, mti, w);
  const table = spec.fieldsFor(mti);
  const values = message.values;
  const bm = bitmapScratch;
  bm.fill(0);
  let secondary = false;
  for (let i = 2; i <= 128; i++) {
    if (values[i] === undefined) continue;
    if (table[i] === undefined)
      throw new Iso8583Error(
        'ISO8583_FIELD_UNKNOWN',
        String(i),
        `spec ${spec.name} does not define this field`,
      );
    bm[(i - 1) >> 3]! |= 0x80 >> ((i - 1) & 7);
    if (i > 64) secondary = true;
  }
  if (secondary) bm[0]! |= 0x80; // bit 1: a secondary bitmap follows (clause 4.3.2)
  const nbm = secondary ? 16 : 8;
  if (spec.bitmapHex) {
    w.ensure(nbm * 2);
    for (let i = 0; i < nbm; i++) {
      w.buf[w.pos++] = HEX_DIGITS.charCodeAt(bm[i]! >> 4);
      w.buf[w.pos++] = HEX_DIGITS.charCodeAt(bm[i]! & 15);
    }
  } else {
    w.ensure(nbm);
    w.buf.set(bm.subarray(0, nbm), w.pos);
    w.pos += nbm;
  }
  for (let i = 2; i <= 128; i++) {
    const v = values[i];
    if (v !== undefined) table[i]!.encode(v, w);
  }
  return w.take();
}

/** Options of `unpackMessage`. */
export interface UnpackOptions {
  /** Parse subfields (positional and TLV) while unpacking so that their errors surface now. Default true. */
  checkSubfields?: boolean;
}

function readMti(spec: CompiledSpec, r: Reader): string {
  const b = r.bytes;
  const start = r.pos;
  if (spec.mtiEncoding === 'bcd') {
    r.need(2, 'mti', 'MTI');
    const h = b[start]!;
    const l = b[start + 1]!;
    if (h >> 4 > 9 || (h & 15) > 9 || l >> 4 > 9 || (l & 15) > 9)
      throw new Iso8583Error('ISO8583_MTI_INVALID', 'mti', 'MTI is not 4 BCD digits', start);
    r.pos = start + 2;
    return String.fromCharCode(48 + (h >> 4), 48 + (h & 15), 48 + (l >> 4), 48 + (l & 15));
  }
  r.need(4, 'mti', 'MTI');
  let mti: string;
  if (spec.mtiEncoding === 'ascii') mti = decodeLatin1(b, start, start + 4);
  else {
    try {
      mti = decodeEbcdic(b, start, start + 4, 'mti');
    } catch {
      throw new Iso8583Error('ISO8583_MTI_INVALID', 'mti', 'MTI is not 4 EBCDIC digits', start);
    }
  }
  if (!MTI_RE.test(mti)) throw new Iso8583Error('ISO8583_MTI_INVALID', 'mti', 'MTI is not 4 digits', start);
  r.pos = start + 4;
  return mti;
}

const HEX_VAL = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX_VAL['0123456789ABCDEF'.charCodeAt(i)] = i;
  HEX_VAL['0123456789abcdef'.charCodeAt(i)] = i;
}

/** Read one 8-byte bitmap into `bm` at `at` (binary, or 16 hex characters). */
function readBitmap(spec: CompiledSpec, r: Reader, bm: Uint8Array, at: number, what: string): void {
  const b = r.bytes;
  if (!spec.bitmapHex) {
    r.need(8, 'bitmap', what);
    bm.set(b.subarray(r.pos, r.pos + 8), at);
    r.pos += 8;
    return;
  }
  r.need(16, 'bitmap', what);
  for (let i = 0; i < 8; i++) {
    const p = r.pos + 2 * i;
    const h = HEX_VAL[b[p]!]!;
    const l = HEX_VAL[b[p + 1]!]!;
    if (h < 0 || l < 0)
      throw new Iso8583Error('ISO8583_BITMAP_INVALID', 'bitmap', 'bitmap is not hex', h < 0 ? p : p + 1);
    bm[at + i] = (h << 4) | l;
  }
  r.pos += 16;
}

/**
 * Unpack a whole message (exactly: trailing bytes are an error). Every failure is an Iso8583Error naming
 * the field and the byte offset; nothing else is thrown for any input.
 */
export function unpackMessage(
  spec: CompiledSpec,
  bytes: Uint8Array,
  options?: UnpackOptions,
): Iso8583Message {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('unpack: bytes must be a Uint8Array');
  const r = new Reader(bytes);
  const mti = readMti(spec, r);
  const bm = bitmapScratch; // unpack never yields: one scratch bitmap is safe
  bm.fill(0);
  const bitmapAt = r.pos;
  readBitmap(spec, r, bm, 0, 'primary bitmap');
  let last = 64;
  if (bm[0]! & 0x80) {
    if (!spec.secondary)
      throw new Iso8583Error(
        'ISO8583_BITMAP_INVALID',
        'bitmap',
        `bit 1 announces a secondary bitmap, which spec ${spec.name} does not allow`,
        bitmapAt,
      );
    readBitmap(spec, r, bm, 8, 'secondary bitmap');
    last = 128;
  }
  const table = spec.fieldsFor(mti);
  const msg = Iso8583Message.fromUnpacked(spec, mti);
  const values = msg.values;
  const checkSub = options?.checkSubfields !== false;
  for (let i = 2; i <= last; i++) {
    if ((bm[(i - 1) >> 3]! & (0x80 >> ((i - 1) & 7))) === 0) continue;
    const c = table[i];
    if (c === undefined)
      throw new Iso8583Error(
        'ISO8583_FIELD_UNKNOWN',
        String(i),
        `bit ${i} is set but spec ${spec.name} does not define the field`,
        r.pos,
      );
    const v = c.decode(r);
    if (checkSub && c.sub !== undefined) {
      if (c.sub.kind === 'tlv') c.sub.parse(v as Uint8Array, r.dataStart);
      else c.sub.split(v, r.dataStart);
    }
    values[i] = v;
  }
  if (r.pos !== bytes.length)
    throw new Iso8583Error(
      'ISO8583_TRAILING_BYTES',
      'message',
      `${bytes.length - r.pos} bytes remain after the last field`,
      r.pos,
    );
  return msg;
}

/**
 * Start the response to a request: MTI with the message function + 1 (0200 -> 0210, 0800 -> 0810,
 * 0401 -> 0410) and the fields the spec echoes (spec `response.echo`) copied from the request.
 * ISO 8583:1987 clause 4.1: MTI position 3 is the message function (even: request or advice; odd: its
 * response), position 4 the originator (a repeat, odd, is answered as the original) — as jPOS
 * ISOMsg.setResponseMTI.
 */
export function startResponse(request: Iso8583Message): Iso8583Message {
  const mti = request.mti;
  const fn = mti.charCodeAt(2) - 48;
  if (fn % 2 !== 0)
    throw new Iso8583Error('ISO8583_MTI_INVALID', 'mti', 'not a request (message function digit is odd)');
  const origin = mti.charCodeAt(3) - 48;
  const respMti = mti.slice(0, 2) + String(fn + 1) + String(origin <= 5 ? origin - (origin % 2) : origin);
  const spec = request.spec;
  const resp = Iso8583Message.fromUnpacked(spec, respMti);
  const table = spec.fieldsFor(respMti);
  for (const id of spec.echo) {
    const v = request.values[id];
    if (v === undefined || table[id] === undefined) continue;
    resp.values[id] = v instanceof Uint8Array ? v.slice() : v;
  }
  return resp;
}

/** Hex of the packed message (for logs of non-sensitive traffic and tests). */
export function packMessageHex(spec: CompiledSpec, message: Iso8583Message): string {
  return bytesToHex(packMessage(spec, message));
}

/** Build a message from its JSON view (`{ mti, fields }`, bytes as hex): the inverse of `toJson(m, { reveal: true })`. */
export function messageFromJson(spec: CompiledSpec, json: unknown): Iso8583Message {
  return fromJson(spec, json, Iso8583Message);
}
