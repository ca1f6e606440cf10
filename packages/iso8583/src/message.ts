/**
 * Messages: a compiled spec, the message object (get/set by field id and subfield path), pack and unpack.
 *
 * Wire layout (ISO 8583:1987 clause 4.3): MTI, primary bitmap, secondary bitmap when bit 1 is set, then
 * the data elements in field-number order. Framing (length header, TPDU, application header) is not
 * part of the message: see framing.ts.
 */

import { inspect } from 'node:util';
import { describe as describeMessage, fromJson, toJson } from './describe.js';
import { markAsUntransferable } from 'node:worker_threads';
import { bytesToHex, decodeEbcdic, decodeLatin1, Writer } from './encoding.js';
import { Iso8583Error } from './errors.js';
import {
  FieldCodec,
  type FieldValue,
  ReadCursor,
  ReaderCache,
  TEXT_AT,
  TEXT_END,
  TEXT_START,
} from './field.js';
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
  /** The generated readers of `fields` and of each override table (field.ts "Generated readers"). */
  private readonly readers = new Map<Table, ReaderCache>();
  private mainReaders: ReaderCache | undefined;

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

  /** @internal The generated readers of `table` (this spec's `fields` or an override table). */
  readersOf(table: Table): ReaderCache {
    if (table === this.fields) {
      this.mainReaders ??= new ReaderCache(table, this.name);
      return this.mainReaders;
    }
    let r = this.readers.get(table);
    if (r === undefined) {
      r = new ReaderCache(table, this.name);
      this.readers.set(table, r);
    }
    return r;
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

function badMti(): Iso8583Error {
  return new Iso8583Error('ISO8583_MTI_INVALID', 'mti', 'must be 4 decimal digits');
}

/** True when `s` is 4 ASCII digits (a loop: this runs for every message built and packed). */
function isMti(s: string): boolean {
  if (s.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function checkMti(mti: unknown): string {
  if (typeof mti !== 'string' || !isMti(mti)) throw badMti();
  return mti;
}

/**
 * The field number of a plain field path (`"35"`, `35`), or -1 when `path` is anything else (a subfield
 * path, or not a field id at all: parsePath then says what is wrong). No regex, no allocation: get and
 * set run this for every field a caller touches.
 */
function plainFieldId(path: string | number): number {
  if (typeof path !== 'string')
    return Number.isInteger(path) && (path as number) >= 2 && (path as number) <= 128 ? (path as number) : -1;
  const n = path.length;
  const d0 = path.charCodeAt(0) - 48;
  if (n === 1) return d0 >= 2 && d0 <= 9 ? d0 : -1;
  if (d0 < 1 || d0 > 9) return -1;
  const d1 = path.charCodeAt(1) - 48;
  if (d1 < 0 || d1 > 9) return -1;
  if (n === 2) return d0 * 10 + d1;
  if (n !== 3) return -1;
  const d2 = path.charCodeAt(2) - 48;
  if (d2 < 0 || d2 > 9) return -1;
  const id = d0 * 100 + d1 * 10 + d2;
  return id <= 128 ? id : -1;
}

/** A field path: `"35"`, `"60.2"`, `"55.9F26"` (or a field number). */
function parsePath(path: string | number): { id: number; sub: string | undefined; text: string } {
  const plain = plainFieldId(path);
  if (plain > 0) return { id: plain, sub: undefined, text: String(path) };
  const text = String(path);
  const dot = text.indexOf('.');
  const head = dot < 0 ? text : text.slice(0, dot);
  const id = /^[1-9][0-9]{0,2}$/.test(head) ? Number(head) : Number.NaN;
  if (!(id >= 2 && id <= 128))
    throw new Iso8583Error('ISO8583_FIELD_UNKNOWN', text, 'a field id is a number from 2 to 128');
  return { id, sub: dot < 0 ? undefined : text.slice(dot + 1), text };
}

/** Number of bits set in a 32-bit word. */
function popcount(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** The table fromParts hands to the constructor it calls (set for that one call only). */
let unpacked: Table | undefined;

/** Shared by every message that has no field yet; replaced by its own array at the first set. */
const NO_VALUES: FieldValue[] = [];

/**
 * An ISO 8583 message bound to a spec. Values are strings for text fields and Uint8Array for `b` fields.
 * `toString`, `toJSON` and `util.inspect` show the masked `describe` view, so logging a message never
 * prints card data.
 *
 * Storage: which fields are present is a 128-bit set laid out as the wire bitmap (bit n-1 for field n,
 * most significant bit first, in four 32-bit words), and the values of the present fields sit in one
 * dense array in field order; field n's value is at the count of present fields below n. Unpack fills
 * both straight from the bitmap it read, and pack writes the bitmap from the words and the fields in
 * array order, with no 129-slot array per message. `values` still gives that array: asking for it
 * turns the message into a plain 129-slot store for good (writes to it are then what get and pack see).
 */
export class Iso8583Message {
  readonly spec: CompiledSpec;
  private mtiValue: string;
  /** The codec table of this spec and MTI (overrides applied), kept with the MTI. */
  private table: Table;
  private w0 = 0;
  private w1 = 0;
  private w2 = 0;
  private w3 = 0;
  /** Present fields before word 1, 2 and 3 (where each word's values start in `dense`). */
  private n1 = 0;
  private n2 = 0;
  private n3 = 0;
  /** Values of the present fields in ascending field number order. */
  private dense: FieldValue[] = NO_VALUES;
  /**
   * From unpack, until the first change: the index in `dense` of each field (-1: absent), shared by
   * the messages of one bitmap (field.ts ReaderEntry), so that `get` is two loads.
   */
  private ranks: Int8Array | undefined = undefined;
  /** The 129-slot array, once `values` has been asked for; from then on the only store. */
  private slots: (FieldValue | undefined)[] | undefined = undefined;

  constructor(spec: CompiledSpec, mti: string, fields?: Record<string, FieldValue>) {
    this.spec = spec;
    if (unpacked !== undefined) {
      // From fromParts: unpack has checked the MTI and found its table.
      this.mtiValue = mti;
      this.table = unpacked;
      unpacked = undefined;
      return;
    }
    this.mtiValue = checkMti(mti);
    this.table = spec.fieldsFor(mti);
    if (!fields) return;
    const proto = Object.getPrototypeOf(fields);
    if (proto === Object.prototype || proto === null) {
      // A plain object: its own keys (for-in over index keys is much slower, and adds nothing here).
      const keys = Object.keys(fields);
      for (let i = 0; i < keys.length; i++) this.set(keys[i]!, fields[keys[i]!]!);
    } else for (const k in fields) this.set(k, fields[k]!);
  }

  get mti(): string {
    return this.mtiValue;
  }

  set mti(mti: string) {
    this.mtiValue = checkMti(mti);
    this.table = this.spec.fieldsFor(mti);
    this.dropRanks(); // get's shortcut assumes the table the message was unpacked with
  }

  /**
   * Field values indexed by field number; index 0 and 1 unused. Prefer get/set. Writing to this array
   * sets fields without checks (what pack then refuses is refused there).
   */
  get values(): (FieldValue | undefined)[] {
    if (this.slots !== undefined) return this.slots;
    this.ranks = undefined;
    const slots: (FieldValue | undefined)[] = new Array(129).fill(undefined);
    const dense = this.dense;
    let k = 0;
    for (let w = 0; w < 4; w++) {
      let word = w === 0 ? this.w0 : w === 1 ? this.w1 : w === 2 ? this.w2 : this.w3;
      while (word !== 0) {
        const j = Math.clz32(word);
        slots[32 * w + j + 1] = dense[k++];
        word &= ~(0x80000000 >>> j);
      }
    }
    this.w0 = this.w1 = this.w2 = this.w3 = 0;
    this.n1 = this.n2 = this.n3 = 0;
    this.dense = NO_VALUES;
    this.slots = slots;
    return slots;
  }

  /** @internal unpack sets the MTI it has already checked. */
  static fromUnpacked(spec: CompiledSpec, mti: string): Iso8583Message {
    return new Iso8583Message(spec, mti);
  }

  /**
   * @internal The message unpack assembled: its codec table (of this MTI), bitmap words, values in field
   * order and, when a generated reader made it, the ranks of its fields.
   */
  static fromParts(
    spec: CompiledSpec,
    table: Table,
    mti: string,
    w0: number,
    w1: number,
    w2: number,
    w3: number,
    dense: FieldValue[],
    ranks: Int8Array | undefined,
  ): Iso8583Message {
    unpacked = table;
    const m = new Iso8583Message(spec, mti);
    m.w0 = w0;
    m.w1 = w1;
    m.w2 = w2;
    m.w3 = w3;
    // With ranks, the counts per word are not needed until the first change (dropRanks).
    if (ranks === undefined) m.countWords();
    m.dense = dense;
    m.ranks = ranks;
    return m;
  }

  /** Stop using the ranks of a generated reader (the message changes): the counts per word take over. */
  private dropRanks(): void {
    if (this.ranks === undefined) return;
    this.ranks = undefined;
    this.countWords();
  }

  private countWords(): void {
    this.n1 = popcount(this.w0);
    this.n2 = this.n1 + popcount(this.w1);
    this.n3 = this.n2 + popcount(this.w2);
  }

  /** @internal The value of field `id` (2..128) whatever the spec says, or undefined. */
  valueAt(id: number): FieldValue | undefined {
    const ranks = this.ranks;
    if (ranks !== undefined) {
      const r = ranks[id]!;
      return r < 0 ? undefined : this.dense[r];
    }
    if (this.slots !== undefined) return this.slots[id];
    const k = id - 1;
    const w = k >> 5;
    const j = k & 31;
    const word = w === 0 ? this.w0 : w === 1 ? this.w1 : w === 2 ? this.w2 : this.w3;
    if ((word & (0x80000000 >>> j)) === 0) return undefined;
    const base = w === 0 ? 0 : w === 1 ? this.n1 : w === 2 ? this.n2 : this.n3;
    // The fields before this one in its word: the bits above its own.
    return this.dense[base + popcount(word & ~(-1 >>> j))];
  }

  /** @internal Store (or with undefined, remove) the value of field `id` (2..128), unchecked. */
  putValue(id: number, value: FieldValue | undefined): void {
    this.dropRanks();
    const slots = this.slots;
    if (slots !== undefined) {
      slots[id] = value;
      return;
    }
    const k = id - 1;
    const w = k >> 5;
    const j = k & 31;
    const bit = 0x80000000 >>> j;
    const word = w === 0 ? this.w0 : w === 1 ? this.w1 : w === 2 ? this.w2 : this.w3;
    const rank =
      (w === 0 ? 0 : w === 1 ? this.n1 : w === 2 ? this.n2 : this.n3) + popcount(word & ~(-1 >>> j));
    if ((word & bit) !== 0) {
      if (value !== undefined) this.dense[rank] = value;
      else {
        this.dense.splice(rank, 1);
        this.setWord(w, word & ~bit, -1);
      }
      return;
    }
    if (value === undefined) return;
    if (this.dense === NO_VALUES) this.dense = [];
    if (rank === this.dense.length) this.dense.push(value);
    else this.dense.splice(rank, 0, value);
    this.setWord(w, word | bit, 1);
  }

  /** Store word `w` of the set, one field more (`delta` 1) or less (-1) than before. */
  private setWord(w: number, word: number, delta: number): void {
    if (w === 0) this.w0 = word;
    else if (w === 1) this.w1 = word;
    else if (w === 2) this.w2 = word;
    else this.w3 = word;
    if (w < 1) this.n1 += delta;
    if (w < 2) this.n2 += delta;
    if (w < 3) this.n3 += delta;
  }

  private codec(id: number, path: string): FieldCodec {
    const c = this.table[id];
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
    const plain = plainFieldId(path);
    if (plain > 0) {
      // A field present after unpack is one the table has: no need to look.
      const ranks = this.ranks;
      if (ranks !== undefined && ranks[plain]! >= 0) return this.dense[ranks[plain]!];
      if (this.table[plain] !== undefined) return this.valueAt(plain);
    }
    return this.getPath(path);
  }

  /** `get` of a subfield path, or of a field the spec lacks (an error). */
  private getPath(path: string | number): FieldValue | undefined {
    const { id, sub, text } = parsePath(path);
    if (sub === undefined) {
      if (this.table[id] === undefined) this.codec(id, text);
      return this.valueAt(id);
    }
    const sc = this.subCodec(this.codec(id, text), text);
    const v = this.valueAt(id);
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
    const plain = plainFieldId(path);
    const { id, sub, text } = plain > 0 ? { id: plain, sub: undefined, text: undefined } : parsePath(path);
    const c = this.table[id] ?? this.codec(id, text ?? String(path));
    if (sub === undefined) {
      if (c.binary ? !(value instanceof Uint8Array) : typeof value !== 'string')
        throw new Iso8583Error(
          'ISO8583_VALUE_INVALID',
          text ?? String(path),
          c.binary ? 'a b field takes bytes (Uint8Array)' : `a ${c.type} field takes a string`,
        );
      this.putValue(id, value);
      return this;
    }
    this.setSub(c, id, sub, text!, value);
    return this;
  }

  /** Remove a field or subfield. */
  unset(path: string | number): this {
    const { id, sub, text } = parsePath(path);
    const c = this.codec(id, text);
    if (sub === undefined) this.putValue(id, undefined);
    else this.setSub(c, id, sub, text, undefined);
    return this;
  }

  private setSub(c: FieldCodec, id: number, sub: string, text: string, value: FieldValue | undefined): void {
    const sc = this.subCodec(c, text);
    const cur = this.valueAt(id);
    if (sc.kind === 'positional') {
      const i = sc.indexOf(sub);
      if (i < 0)
        throw new Iso8583Error('ISO8583_FIELD_UNKNOWN', text, 'the spec does not define this subfield');
      const parts = cur === undefined ? new Array(sc.parts.length).fill(undefined) : sc.split(cur);
      parts[i] = value;
      const joined = sc.join(parts, c.fixed && parts.some((p) => p !== undefined));
      this.putValue(id, joined.length === 0 ? undefined : joined);
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
    this.putValue(id, items.length === 0 ? undefined : sc.build(items));
  }

  /** Field numbers present, ascending. */
  fieldIds(): number[] {
    const out: number[] = [];
    const slots = this.slots;
    if (slots !== undefined) {
      for (let i = 2; i <= 128; i++) if (slots[i] !== undefined) out.push(i);
      return out;
    }
    for (let w = 0; w < 4; w++) {
      let word = w === 0 ? this.w0 : w === 1 ? this.w1 : w === 2 ? this.w2 : this.w3;
      while (word !== 0) {
        const j = Math.clz32(word);
        out.push(32 * w + j + 1);
        word &= ~(0x80000000 >>> j);
      }
    }
    return out;
  }

  /** A deep copy (byte values are copied). */
  clone(): Iso8583Message {
    const m = new Iso8583Message(this.spec, this.mtiValue);
    const slots = this.slots;
    if (slots !== undefined) {
      for (let i = 2; i <= 128; i++) {
        const v = slots[i];
        if (v !== undefined) m.putValue(i, v instanceof Uint8Array ? v.slice() : v);
      }
      return m;
    }
    m.w0 = this.w0;
    m.w1 = this.w1;
    m.w2 = this.w2;
    m.w3 = this.w3;
    m.countWords();
    m.dense = this.dense.map((v) => (v instanceof Uint8Array ? v.slice() : v));
    return m;
  }

  /**
   * @internal Write the bitmap(s) and the fields to `w` under `table` (pack): unknown fields are refused
   * (the lowest first) before anything is encoded.
   */
  writeFields(spec: CompiledSpec, table: Table, w: Writer): void {
    if (this.slots !== undefined) {
      writeSlots(spec, table, this.slots, w);
      return;
    }
    const w0 = this.w0;
    const w1 = this.w1;
    const w2 = this.w2;
    const w3 = this.w3;
    for (let k = 0; k < 4; k++) {
      let word = k === 0 ? w0 : k === 1 ? w1 : k === 2 ? w2 : w3;
      while (word !== 0) {
        const j = Math.clz32(word);
        const id = 32 * k + j + 1;
        if (table[id] === undefined) throw notInSpec(spec, id);
        word &= ~(0x80000000 >>> j);
      }
    }
    // Bit 1 announces the secondary bitmap (ISO 8583:1987 clause 4.3.2).
    const secondary = (w2 | w3) !== 0;
    writeBitmapWords(spec, secondary ? w0 | 0x80000000 : w0, w1, w2, w3, secondary, w);
    const dense = this.dense;
    let i = 0;
    for (let k = 0; k < 4; k++) {
      let word = k === 0 ? w0 : k === 1 ? w1 : k === 2 ? w2 : w3;
      while (word !== 0) {
        const j = Math.clz32(word);
        table[32 * k + j + 1]!.encode(dense[i++]!, w);
        word &= ~(0x80000000 >>> j);
      }
    }
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

/** The write cursor of pack (packing never yields, so one is safe); it writes into the slab below. */
const writer = new Writer(16);
const HEX_DIGITS = '0123456789ABCDEF';

function notInSpec(spec: CompiledSpec, id: number): Iso8583Error {
  return new Iso8583Error(
    'ISO8583_FIELD_UNKNOWN',
    String(id),
    `spec ${spec.name} does not define this field`,
  );
}

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

/** One 32-bit word of a bitmap as 4 bytes, or as 8 hex characters. */
function writeBitmapWord(word: number, hex: boolean, w: Writer): void {
  const b = w.buf;
  if (!hex) {
    b[w.pos++] = word >>> 24;
    b[w.pos++] = (word >>> 16) & 255;
    b[w.pos++] = (word >>> 8) & 255;
    b[w.pos++] = word & 255;
    return;
  }
  for (let s = 28; s >= 0; s -= 4) b[w.pos++] = HEX_DIGITS.charCodeAt((word >>> s) & 15);
}

/** The primary bitmap, and the secondary one when `secondary` (ISO 8583:1987 clause 4.3.2). */
function writeBitmapWords(
  spec: CompiledSpec,
  w0: number,
  w1: number,
  w2: number,
  w3: number,
  secondary: boolean,
  w: Writer,
): void {
  const hex = spec.bitmapHex;
  w.ensure((secondary ? 16 : 8) * (hex ? 2 : 1));
  writeBitmapWord(w0, hex, w);
  writeBitmapWord(w1, hex, w);
  if (!secondary) return;
  writeBitmapWord(w2, hex, w);
  writeBitmapWord(w3, hex, w);
}

/** Pack from a 129-slot `values` array (a message whose `values` was asked for). */
function writeSlots(spec: CompiledSpec, table: Table, values: (FieldValue | undefined)[], w: Writer): void {
  const words = [0, 0, 0, 0];
  for (let i = 2; i <= 128; i++) {
    if (values[i] === undefined) continue;
    if (table[i] === undefined) throw notInSpec(spec, i);
    words[(i - 1) >> 5]! |= 0x80000000 >>> ((i - 1) & 31);
  }
  const secondary = (words[2]! | words[3]!) !== 0;
  if (secondary) words[0]! |= 0x80000000;
  writeBitmapWords(spec, words[0]!, words[1]!, words[2]!, words[3]!, secondary, w);
  for (let i = 2; i <= 128; i++) {
    const v = values[i];
    if (v !== undefined) table[i]!.encode(v, w);
  }
}

/**
 * Output memory: pack writes straight into a shared 8 KiB slab and returns a view of its bytes (as Node's
 * Buffer pool does), because a fresh ArrayBuffer per message, or a copy out of a scratch buffer, costs
 * more than the rest of packing. Each view has its own exact length; slabs cannot be transferred to a
 * worker (that would detach every other message in them).
 */
const SLAB_BYTES = 8192;
/** A new slab is started when less than this is left; a message bigger than what is left grows out of it. */
const SLAB_ROOM_BYTES = 2048;
let slabBuffer = newSlab();
let slab = new Uint8Array(slabBuffer);
let slabUsed = 0;

function newSlab(): ArrayBuffer {
  const ab = new ArrayBuffer(SLAB_BYTES);
  markAsUntransferable(ab);
  return ab;
}

/** Pack `message` under `spec`: MTI, bitmap(s), fields in order. */
export function packMessage(spec: CompiledSpec, message: Iso8583Message): Uint8Array {
  if (SLAB_BYTES - slabUsed < SLAB_ROOM_BYTES) {
    slabBuffer = newSlab();
    slab = new Uint8Array(slabBuffer);
    slabUsed = 0;
  }
  const w = writer;
  const start = slabUsed;
  w.buf = slab;
  w.pos = start;
  const mti = message.mti;
  writeMti(spec, mti, w);
  message.writeFields(spec, spec.fieldsFor(mti), w);
  const end = w.pos;
  if (w.buf === slab) {
    slabUsed = (end + 7) & ~7; // 8-byte aligned, as Buffer's pool
    return new Uint8Array(slabBuffer, start, end - start);
  }
  // Longer than the slab had left: the writer grew into a buffer of its own.
  const out = w.buf.slice(start, end);
  w.buf = slab;
  return out;
}

/** Options of `unpackMessage`. */
export interface UnpackOptions {
  /** Parse subfields (positional and TLV) while unpacking so that their errors surface now. Default true. */
  checkSubfields?: boolean;
}

/** The MTI at `pos` (bounds and digits checked). */
function readMti(spec: CompiledSpec, b: Uint8Array, start: number, end: number): string {
  if (spec.mtiEncoding === 'bcd') {
    if (start + 2 > end) throw truncatedAt('mti', 'MTI', 2, start, end);
    const h = b[start]!;
    const l = b[start + 1]!;
    if (h >> 4 > 9 || (h & 15) > 9 || l >> 4 > 9 || (l & 15) > 9)
      throw new Iso8583Error('ISO8583_MTI_INVALID', 'mti', 'MTI is not 4 BCD digits', start);
    return MTI_TEXT[((h >> 4) * 10 + (h & 15)) * 100 + (l >> 4) * 10 + (l & 15)]!;
  }
  if (start + 4 > end) throw truncatedAt('mti', 'MTI', 4, start, end);
  let mti: string;
  if (spec.mtiEncoding === 'ascii') {
    let v = 0;
    for (let i = 0; i < 4; i++) {
      const d = b[start + i]! - 48;
      if (d < 0 || d > 9) throw new Iso8583Error('ISO8583_MTI_INVALID', 'mti', 'MTI is not 4 digits', start);
      v = v * 10 + d;
    }
    return MTI_TEXT[v]!;
  }
  try {
    mti = decodeEbcdic(b, start, start + 4, 'mti');
  } catch {
    throw new Iso8583Error('ISO8583_MTI_INVALID', 'mti', 'MTI is not 4 EBCDIC digits', start);
  }
  if (!isMti(mti)) throw new Iso8583Error('ISO8583_MTI_INVALID', 'mti', 'MTI is not 4 digits', start);
  return mti;
}

/** "0000".."9999": an unpacked MTI is one of these strings, not a new one per message. */
const MTI_TEXT: string[] = [];
for (let i = 0; i < 10000; i++) MTI_TEXT.push(String(i).padStart(4, '0'));

function truncatedAt(field: string, what: string, n: number, pos: number, end: number): Iso8583Error {
  return new Iso8583Error('ISO8583_TRUNCATED', field, `${what} needs ${n} bytes, ${end - pos} remain`, pos);
}

const HEX_VAL = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX_VAL['0123456789ABCDEF'.charCodeAt(i)] = i;
  HEX_VAL['0123456789abcdef'.charCodeAt(i)] = i;
}

/** The two 32-bit words of one bitmap read by `readBitmap`. */
let bitmapHi = 0;
let bitmapLo = 0;

/** Read one 8-byte bitmap at `pos` (binary, or 16 hex characters) into bitmapHi/bitmapLo; returns its size. */
function readBitmap(spec: CompiledSpec, b: Uint8Array, pos: number, end: number, what: string): number {
  if (!spec.bitmapHex) {
    if (pos + 8 > end) throw truncatedAt('bitmap', what, 8, pos, end);
    bitmapHi = ((b[pos]! << 24) | (b[pos + 1]! << 16) | (b[pos + 2]! << 8) | b[pos + 3]!) >>> 0;
    bitmapLo = ((b[pos + 4]! << 24) | (b[pos + 5]! << 16) | (b[pos + 6]! << 8) | b[pos + 7]!) >>> 0;
    return 8;
  }
  if (pos + 16 > end) throw truncatedAt('bitmap', what, 16, pos, end);
  let hi = 0;
  let lo = 0;
  for (let i = 0; i < 16; i++) {
    const p = pos + i;
    const v = HEX_VAL[b[p]!]!;
    if (v < 0) {
      // As before: the pair of the bad character is reported at its first bad character.
      const q = pos + (i & ~1);
      const bad = HEX_VAL[b[q]!]! < 0 ? q : q + 1;
      throw new Iso8583Error('ISO8583_BITMAP_INVALID', 'bitmap', 'bitmap is not hex', bad);
    }
    if (i < 8) hi = (hi << 4) | v;
    else lo = (lo << 4) | v;
  }
  bitmapHi = hi >>> 0;
  bitmapLo = lo >>> 0;
  return 16;
}

/** The unpack cursor and per-field scratch (unpack never yields, so one of each is safe). */
const cursor = new ReadCursor();
/**
 * Unpack a whole message (exactly: trailing bytes are an error). Every failure is an Iso8583Error naming
 * the field and the byte offset; nothing else is thrown for any input.
 *
 * Every field is checked completely here, in field order (a bad message throws now, never at a later
 * get). Fixed text fields of up to 16 characters become strings as they are read (String.fromCharCode);
 * other text fields are decoded into one character buffer, one string is made of it at the end and each
 * value is cut out of that string (values of 13+ characters are then slices of it in V8). Sensitive
 * fields (2, 14, 35, 36, 45, 52, 55, `sensitive: true`) never share memory: each gets a string or an
 * ArrayBuffer of its own, and their decoded characters are wiped from the buffer (field.ts `ownText`).
 * The field reading itself is generated code per spec and bitmap (field.ts "Generated readers").
 */
export function unpackMessage(
  spec: CompiledSpec,
  bytes: Uint8Array,
  options?: UnpackOptions,
): Iso8583Message {
  return unpackWith(spec, bytes, options, true);
}

/**
 * @internal `unpackMessage` with the generated reader (`generated`), or with the reference reader
 * alone (FieldCodec.readFields: one general read per field), which the tests compare it with.
 */
export function unpackWith(
  spec: CompiledSpec,
  bytes: Uint8Array,
  options: UnpackOptions | undefined,
  generated: boolean,
): Iso8583Message {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('unpack: bytes must be a Uint8Array');
  const end = bytes.length;
  const mti = readMti(spec, bytes, 0, end);
  let pos = spec.mtiEncoding === 'bcd' ? 2 : 4;
  const bitmapAt = pos;
  pos += readBitmap(spec, bytes, pos, end, 'primary bitmap');
  // Words as signed 32-bit integers, as the reader cache keeps them (an Int32Array): a word with its top
  // bit set (field 33, 65 or 97) would otherwise never find its generated reader.
  const w0 = bitmapHi | 0;
  const w1 = bitmapLo | 0;
  let w2 = 0;
  let w3 = 0;
  if (w0 & 0x80000000) {
    if (!spec.secondary)
      throw new Iso8583Error(
        'ISO8583_BITMAP_INVALID',
        'bitmap',
        `bit 1 announces a secondary bitmap, which spec ${spec.name} does not allow`,
        bitmapAt,
      );
    pos += readBitmap(spec, bytes, pos, end, 'secondary bitmap');
    w2 = bitmapHi | 0;
    w3 = bitmapLo | 0;
  }
  const table = spec.fieldsFor(mti);
  const checkSub = options?.checkSubfields !== false;
  const cur = cursor;
  cur.reset(bytes, pos, end);
  const words0 = w0 & 0x7fffffff; // bit 1 is the secondary bitmap indicator, not a field
  const readers = generated ? spec.readersOf(table) : undefined;
  const reader = readers?.get(words0, w1, w2, w3);
  let dense: FieldValue[];
  let texts: number;
  if (reader !== undefined) {
    dense = reader.read(cur, words0, w1, w2, w3, checkSub);
    texts = cur.texts;
  } else {
    dense = new Array(popcount(words0) + popcount(w1) + popcount(w2) + popcount(w3));
    texts = FieldCodec.readFields(table, cur, words0, w1, w2, w3, dense, checkSub, spec.name);
  }
  if (cur.pos !== end)
    throw new Iso8583Error(
      'ISO8583_TRAILING_BYTES',
      'message',
      `${end - cur.pos} bytes remain after the last field`,
      cur.pos,
    );
  // A bitmap whose messages unpack gets its own reader (after a few: field.ts READER_AFTER_SUCCESSES).
  if (reader === undefined && readers !== undefined) readers.succeeded(words0, w1, w2, w3);
  if (texts === 1) {
    // One text left for the shared string (the others were made as they were read): its own string.
    dense[TEXT_AT[0]!] = decodeLatin1(cur.chars, TEXT_START[0]!, TEXT_END[0]!);
  } else if (texts > 1) {
    const all = decodeLatin1(cur.chars, 0, cur.cpos);
    for (let i = 0; i < texts; i++) dense[TEXT_AT[i]!] = all.substring(TEXT_START[i]!, TEXT_END[i]!);
  }
  return Iso8583Message.fromParts(spec, table, mti, words0, w1, w2, w3, dense, reader?.ranks);
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
  const resp = new Iso8583Message(spec, respMti);
  const table = spec.fieldsFor(respMti);
  for (const id of spec.echo) {
    const v = request.valueAt(id);
    if (v === undefined || table[id] === undefined) continue;
    resp.putValue(id, v instanceof Uint8Array ? v.slice() : v);
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
