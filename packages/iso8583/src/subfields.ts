/**
 * Subfields of a field value: positional (UnionPay fields 60-63, ISO 8583:1987 field 90 original data
 * elements) and EMV BER-TLV (field 55, EMV 4.3 Book 3 Annex B).
 *
 * They work on the decoded value of the parent, not on its wire bytes: a positional subfield is a slice
 * of characters (digits of a BCD field: UnionPay 60.3 starts at digit 8, mid-byte) or of bytes (a `b`
 * field). Errors name the subfield path (`60.2`, `55.9F26`); the offset, when known, is where the
 * parent's data starts in the message (plus the position inside it for binary values).
 */

import { Iso8583Error } from './errors.js';
import type { FieldType, MaskStyle, PositionalSubfieldSpec, SubfieldsSpec } from './spec.js';

type Value = string | Uint8Array;

const KIND_FIXED = 0;
const KIND_LL = 2;
const KIND_LLL = 3;
const KIND_REST = 9;

export interface SubfieldInfo {
  /** The id inside the field: "1", "2"... or a tag in upper-case hex. */
  id: string;
  /** The full path, e.g. "60.2". */
  path: string;
  name: string;
  sensitive: boolean;
  mask: MaskStyle;
}

interface Part extends SubfieldInfo {
  kind: number;
  len: number; // fixed length, or max for LL/LLL/rest
  padLeft: boolean;
  padChar: string;
}

export class PositionalCodec {
  readonly kind = 'positional' as const;
  readonly parts: readonly Part[];
  private readonly binary: boolean;
  private readonly field: string;

  constructor(
    field: string,
    spec: Extract<SubfieldsSpec, { kind: 'positional' }>,
    binary: boolean,
    type: FieldType,
  ) {
    this.field = field;
    this.binary = binary;
    this.parts = Object.entries(spec.fields).map(([id, s]: [string, PositionalSubfieldSpec]) => {
      const numeric = (s.type ?? type) === 'n' || (s.type ?? type) === 'x+n';
      const pad = s.pad ?? (numeric ? { side: 'left', char: '0' } : { side: 'right', char: ' ' });
      const len = s.length;
      return {
        id,
        path: `${field}.${id}`,
        name: s.name,
        sensitive: s.sensitive === true,
        mask: s.mask ?? 'full',
        kind:
          typeof len === 'number'
            ? KIND_FIXED
            : len.kind === 'LL'
              ? KIND_LL
              : len.kind === 'LLL'
                ? KIND_LLL
                : KIND_REST,
        len: typeof len === 'number' ? len : len.max,
        padLeft: pad.side === 'left',
        padChar: pad.char,
      };
    });
  }

  /** Index of subfield `id`, or -1. */
  indexOf(id: string): number {
    return this.parts.findIndex((p) => p.id === id);
  }

  /**
   * Cut a value into its subfields. Subfields after the end of the value are undefined; a value may stop
   * inside a fixed subfield (that subfield is then shorter). Content past the last subfield, a bad or
   * too-large inner length prefix, or an inner length past the end is refused.
   */
  split(value: Value, offset?: number): (Value | undefined)[] {
    const out: (Value | undefined)[] = new Array(this.parts.length).fill(undefined);
    const total = value.length;
    let pos = 0;
    for (let i = 0; i < this.parts.length && pos < total; i++) {
      const p = this.parts[i]!;
      let n: number;
      if (p.kind === KIND_FIXED) n = Math.min(p.len, total - pos);
      else if (p.kind === KIND_REST) {
        n = total - pos;
        if (n > p.len)
          throw new Iso8583Error(
            'ISO8583_LENGTH_EXCEEDED',
            p.path,
            `length ${n} exceeds max ${p.len}`,
            offset,
          );
      } else {
        const width = this.binary ? (p.kind === KIND_LL ? 1 : 2) : p.kind;
        if (pos + width > total)
          throw new Iso8583Error(
            'ISO8583_TRUNCATED',
            p.path,
            'the value ends inside a length prefix',
            offset,
          );
        n = 0;
        for (let j = 0; j < width; j++) {
          if (this.binary) n = n * 256 + (value as Uint8Array)[pos + j]!;
          else {
            const d = (value as string).charCodeAt(pos + j) - 48;
            if (d < 0 || d > 9)
              throw new Iso8583Error(
                'ISO8583_LENGTH_INVALID',
                p.path,
                'length prefix is not decimal digits',
                offset,
              );
            n = n * 10 + d;
          }
        }
        if (n > p.len)
          throw new Iso8583Error(
            'ISO8583_LENGTH_EXCEEDED',
            p.path,
            `length ${n} exceeds max ${p.len}`,
            offset,
          );
        pos += width;
        if (pos + n > total)
          throw new Iso8583Error(
            'ISO8583_TRUNCATED',
            p.path,
            `needs ${n} units, ${total - pos} remain`,
            offset,
          );
      }
      out[i] = value.slice(pos, pos + n);
      pos += n;
    }
    if (pos < total)
      throw new Iso8583Error(
        'ISO8583_LENGTH_EXCEEDED',
        this.field,
        `${total - pos} units remain after the last subfield`,
        offset,
      );
    return out;
  }

  /**
   * Join subfields into a value. Missing subfields before a present one are filled with padding; with
   * `fillAll` (the parent is a fixed-length field) every subfield is, so the value keeps its layout.
   */
  join(parts: readonly (Value | undefined)[], fillAll = false): Value {
    let last = parts.length - 1;
    while (!fillAll && last >= 0 && parts[last] === undefined) last--;
    const chunks: Value[] = [];
    for (let i = 0; i <= last; i++) {
      const p = this.parts[i]!;
      let v = parts[i];
      if (this.binary) {
        if (v !== undefined && !(v instanceof Uint8Array))
          throw new Iso8583Error('ISO8583_VALUE_INVALID', p.path, 'a subfield of a b field takes bytes');
      } else if (v !== undefined && typeof v !== 'string')
        throw new Iso8583Error('ISO8583_VALUE_INVALID', p.path, 'a subfield of a text field takes a string');
      if (p.kind === KIND_FIXED) {
        const cur = v === undefined ? 0 : v.length;
        if (cur > p.len)
          throw new Iso8583Error('ISO8583_LENGTH_EXCEEDED', p.path, `length ${cur} exceeds max ${p.len}`);
        if (cur < p.len) v = this.pad(v, p);
        chunks.push(v!);
        continue;
      }
      const n = v === undefined ? 0 : v.length;
      if (n > p.len)
        throw new Iso8583Error('ISO8583_LENGTH_EXCEEDED', p.path, `length ${n} exceeds max ${p.len}`);
      if (p.kind !== KIND_REST) {
        if (this.binary) chunks.push(p.kind === KIND_LL ? Uint8Array.of(n) : Uint8Array.of(n >> 8, n & 255));
        else chunks.push(String(n).padStart(p.kind, '0'));
      } else if (i !== this.parts.length - 1) {
        throw new Iso8583Error('ISO8583_SPEC_INVALID', p.path, 'rest must be the last subfield');
      }
      chunks.push(v ?? (this.binary ? new Uint8Array(0) : ''));
    }
    if (!this.binary) return (chunks as string[]).join('');
    let size = 0;
    for (const c of chunks) size += c.length;
    const out = new Uint8Array(size);
    let o = 0;
    for (const c of chunks as Uint8Array[]) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }

  private pad(v: Value | undefined, p: Part): Value {
    if (this.binary) {
      const out = new Uint8Array(p.len); // binary subfields are padded with zero bytes on the right
      if (v !== undefined) out.set(v as Uint8Array);
      return out;
    }
    const s = (v as string | undefined) ?? '';
    const fill = p.padChar.repeat(p.len - s.length);
    return p.padLeft ? fill + s : s + fill;
  }

  info(): readonly SubfieldInfo[] {
    return this.parts;
  }
}

/** One BER-TLV data object: its tag in upper-case hex and its value. */
export interface TlvItem {
  tag: string;
  value: Uint8Array;
}

const HEX = '0123456789ABCDEF';

export class TlvCodec {
  readonly kind = 'tlv' as const;
  private readonly field: string;
  private readonly names: Record<string, { name: string; sensitive?: boolean }>;

  constructor(field: string, spec: Extract<SubfieldsSpec, { kind: 'tlv-ber' }>) {
    this.field = field;
    this.names = spec.tags ?? {};
  }

  nameOf(tag: string): string {
    return this.names[tag]?.name ?? `Tag ${tag}`;
  }

  /**
   * Parse BER-TLV (EMV 4.3 Book 3 Annex B1-B2): tag of 1-3 bytes (low 5 bits all set in the first byte
   * means more tag bytes follow; bit 8 of each following byte means one more), length in short form
   * (< 0x80) or long form 0x81 (1 byte), 0x82 (2 bytes), 0x83 (3 bytes). 0x00 bytes between objects are
   * padding (Annex B: "before, between, or after") and skipped. Constructed objects are kept whole.
   * `offset` is where the value starts in the message, for error offsets.
   */
  parse(value: Uint8Array, offset = 0): TlvItem[] {
    const items: TlvItem[] = [];
    const n = value.length;
    let i = 0;
    while (i < n) {
      if (value[i] === 0x00) {
        i++;
        continue;
      }
      const tagStart = i;
      let tag = HEX[value[i]! >> 4]! + HEX[value[i]! & 15]!;
      if ((value[i]! & 0x1f) === 0x1f) {
        let more = true;
        while (more) {
          i++;
          if (i >= n) throw this.err('tag runs past the end', offset + tagStart);
          if (i - tagStart >= 3) throw this.err('tag is longer than 3 bytes', offset + tagStart);
          tag += HEX[value[i]! >> 4]! + HEX[value[i]! & 15]!;
          more = (value[i]! & 0x80) !== 0;
        }
      }
      i++;
      if (i >= n) throw this.err(`tag ${tag} has no length`, offset + i);
      let len = value[i]!;
      const lenAt = i;
      i++;
      if (len & 0x80) {
        const count = len & 0x7f;
        if (count === 0 || count > 3)
          throw this.err(`tag ${tag} has an unsupported length form`, offset + lenAt);
        if (i + count > n) throw this.err(`tag ${tag} length runs past the end`, offset + lenAt);
        len = 0;
        for (let k = 0; k < count; k++) len = len * 256 + value[i++]!;
      }
      if (i + len > n) throw this.err(`tag ${tag} value needs ${len} bytes, ${n - i} remain`, offset + lenAt);
      items.push({ tag, value: value.slice(i, i + len) });
      i += len;
    }
    return items;
  }

  private err(rule: string, offset: number): Iso8583Error {
    return new Iso8583Error('ISO8583_TLV_INVALID', this.field, rule, offset);
  }

  /** Encode data objects as BER-TLV with the shortest length form (EMV 4.3 Book 3 Annex B2). */
  build(items: readonly TlvItem[]): Uint8Array {
    const chunks: number[] = [];
    for (const { tag, value } of items) {
      if (normalizeTag(tag) !== tag)
        throw new Iso8583Error(
          'ISO8583_FIELD_UNKNOWN',
          `${this.field}.${tag}`,
          'not a BER tag of 1 to 3 bytes',
        );
      for (let k = 0; k < tag.length; k += 2) chunks.push(Number.parseInt(tag.slice(k, k + 2), 16));
      const len = value.length;
      if (len < 0x80) chunks.push(len);
      else if (len < 0x100) chunks.push(0x81, len);
      else if (len < 0x10000) chunks.push(0x82, len >> 8, len & 255);
      else
        throw new Iso8583Error(
          'ISO8583_LENGTH_EXCEEDED',
          `${this.field}.${tag}`,
          'a TLV value is at most 65535 bytes',
        );
      for (let k = 0; k < len; k++) chunks.push(value[k]!);
    }
    return Uint8Array.from(chunks);
  }
}

/**
 * The tag in upper-case hex when `tag` is a well-formed BER tag of 1-3 bytes (EMV 4.3 Book 3 Annex B1:
 * a first byte with low 5 bits 11111 needs subsequent bytes, each but the last with bit 8 set), else undefined.
 */
export function normalizeTag(tag: string): string | undefined {
  const t = tag.toUpperCase();
  if (!/^(?:[0-9A-F]{2}){1,3}$/.test(t)) return undefined;
  const b = [];
  for (let k = 0; k < t.length; k += 2) b.push(Number.parseInt(t.slice(k, k + 2), 16));
  if ((b[0]! & 0x1f) !== 0x1f) return b.length === 1 ? t : undefined;
  if (b.length === 1) return undefined;
  for (let k = 1; k < b.length - 1; k++) if ((b[k]! & 0x80) === 0) return undefined;
  return (b[b.length - 1]! & 0x80) === 0 ? t : undefined;
}
