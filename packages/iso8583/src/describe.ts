/**
 * Human and machine views of a message, masked by default.
 *
 * Sensitive fields (2, 14, 35, 36, 45, 52, 55 and any field or subfield a spec marks `sensitive`) are
 * masked unless `reveal` is set: a PAN keeps its first 6 and last 4 digits (PCI DSS v4.0 requirement
 * 3.4.1: "BIN and last four digits are the maximum"); everything else becomes `*`, one per character
 * (binary: one per hex digit), so only the length shows.
 */

import { bytesToHex, hexToBytes } from './encoding.js';
import { Iso8583Error } from './errors.js';
import type { FieldCodec, FieldValue } from './field.js';
import type { CompiledSpec, Iso8583Message } from './message.js';
import type { MaskStyle } from './spec.js';

export interface DescribeOptions {
  /** Show sensitive values in clear. For a debugging session on test cards only. Default false. */
  reveal?: boolean;
}

/** The JSON view: `{ mti, fields: { "2": "...", "60": { "1": "..." }, "55": { "9F26": "hex" } } }`. */
export interface MessageJson {
  mti: string;
  fields: Record<string, string | Record<string, string>>;
}

/** Mask a PAN-like string: first 6 and last 4 kept when it has at least 13 characters, else all hidden. */
export function maskPan(s: string): string {
  if (s.length < 13) return '*'.repeat(s.length);
  return s.slice(0, 6) + '*'.repeat(s.length - 10) + s.slice(-4);
}

/** Apply a mask style to a display string (text, or hex for bytes). */
export function maskValue(s: string, style: MaskStyle): string {
  return style === 'pan' ? maskPan(s) : '*'.repeat(s.length);
}

/** Text for display: bytes as upper-case hex, text as it is. */
function show(v: FieldValue): string {
  return v instanceof Uint8Array ? bytesToHex(v) : v;
}

/** Control characters would garble a terminal: show them as \xNN in the text view. */
function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function fieldView(
  c: FieldCodec,
  v: FieldValue,
  reveal: boolean,
): { text: string; subs: Array<{ id: string; name: string; text: string }> | undefined } {
  if (c.sensitive && !reveal) return { text: maskValue(show(v), c.mask), subs: undefined };
  const text = show(v);
  const sub = c.sub;
  if (sub === undefined) return { text, subs: undefined };
  try {
    if (sub.kind === 'positional') {
      const parts = sub.split(v);
      const subs: Array<{ id: string; name: string; text: string }> = [];
      parts.forEach((p, i) => {
        if (p === undefined) return;
        const info = sub.parts[i]!;
        const t = show(p);
        subs.push({
          id: info.id,
          name: info.name,
          text: info.sensitive && !reveal ? maskValue(t, info.mask) : t,
        });
      });
      return { text, subs };
    }
    const subs = sub
      .parse(v as Uint8Array)
      .map((t) => ({ id: t.tag, name: sub.nameOf(t.tag), text: bytesToHex(t.value) }));
    return { text, subs };
  } catch {
    // A value whose subfields do not parse is still shown whole: describe is for looking at bad messages too.
    return { text, subs: undefined };
  }
}

/** A table for humans, one line per field (and subfield), sensitive values masked unless `reveal`. */
export function describe(message: Iso8583Message, options?: DescribeOptions): string {
  const reveal = options?.reveal === true;
  const table = message.spec.fieldsFor(message.mti);
  const lines = [`MTI  ${message.mti}  (spec ${message.spec.name})`];
  for (const id of message.fieldIds()) {
    const c = table[id];
    const v = message.valueAt(id)!;
    if (c === undefined) {
      lines.push(`${String(id).padStart(4)}  ${'(not in spec)'.padEnd(40)} ${'*'.repeat(show(v).length)}`);
      continue;
    }
    const { text, subs } = fieldView(c, v, reveal);
    lines.push(`${String(id).padStart(4)}  ${c.name.slice(0, 40).padEnd(40)} ${printable(text)}`);
    for (const s of subs ?? []) {
      lines.push(`${`${id}.${s.id}`.padStart(10)}  ${s.name.slice(0, 34).padEnd(34)} ${printable(s.text)}`);
    }
  }
  return lines.join('\n');
}

/**
 * The JSON view (for the CLI `--json` and logs): text values as they are, bytes as hex, fields with
 * subfields as an object of their subfields (positional ids or TLV tags). Sensitive fields are a masked
 * string unless `reveal`.
 */
export function toJson(message: Iso8583Message, options?: DescribeOptions): MessageJson {
  const reveal = options?.reveal === true;
  const table = message.spec.fieldsFor(message.mti);
  const fields: MessageJson['fields'] = {};
  for (const id of message.fieldIds()) {
    const c = table[id];
    const v = message.valueAt(id)!;
    if (c === undefined) {
      fields[id] = '*'.repeat(show(v).length);
      continue;
    }
    const { text, subs } = fieldView(c, v, reveal);
    if (subs === undefined) fields[id] = text;
    else {
      const o: Record<string, string> = {};
      for (const s of subs) o[s.id] = s.text;
      fields[id] = o;
    }
  }
  return { mti: message.mti, fields };
}

/**
 * Build a message from its JSON view (the inverse of `toJson` with `reveal`): `b` values and TLV values
 * in hex, subfields as objects. Unknown fields and bad values are Iso8583Errors.
 */
export function fromJson(
  spec: CompiledSpec,
  json: unknown,
  Message: new (spec: CompiledSpec, mti: string) => Iso8583Message,
): Iso8583Message {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new Iso8583Error('ISO8583_VALUE_INVALID', 'message', 'must be an object with mti and fields');
  const o = json as Record<string, unknown>;
  if (typeof o.mti !== 'string')
    throw new Iso8583Error('ISO8583_MTI_INVALID', 'mti', 'must be 4 decimal digits');
  const msg = new Message(spec, o.mti);
  const fields = o.fields ?? {};
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields))
    throw new Iso8583Error('ISO8583_VALUE_INVALID', 'fields', 'must be an object');
  for (const [id, v] of Object.entries(fields as Record<string, unknown>)) {
    const c = spec.field(Number(id), msg.mti);
    if (c === undefined || !/^[0-9]{1,3}$/.test(id))
      throw new Iso8583Error('ISO8583_FIELD_UNKNOWN', id, `spec ${spec.name} does not define this field`);
    if (typeof v === 'string') {
      msg.set(id, c.binary ? hexToBytes(v, id) : v);
      continue;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v) || c.sub === undefined)
      throw new Iso8583Error('ISO8583_VALUE_INVALID', id, 'must be a string (hex for b fields) or subfields');
    for (const [sid, sv] of Object.entries(v as Record<string, unknown>)) {
      const path = `${id}.${sid}`;
      if (typeof sv !== 'string') throw new Iso8583Error('ISO8583_VALUE_INVALID', path, 'must be a string');
      msg.set(path, c.binary ? hexToBytes(sv, path) : sv);
    }
  }
  return msg;
}
