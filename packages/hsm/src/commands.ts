/**
 * Host commands: the request and reply body of each command (after the header and command code, and
 * after the header, reply code and error code), encoders and decoders for both ends, and the handlers
 * that map them onto `Hsm`. Layouts follow payShield where its fields fit a key-block LMK, and are ours
 * where they do not (docs/hsm.md lists every field). Every request field is parsed defensively: a
 * malformed request is an HsmError with payShield error 15 (or the precise code), never a crash.
 *
 *   NC  request: (empty)                                            reply ND: LMK check value (16 H) | firmware version (rest)
 *   BU  request: key block (S...)                                   reply BV: check value (6 H)
 *   A0  request: mode (1 N, '0') | key type (3 A) | algorithm (1 A) | key length (2 N, bytes)
 *                [ '#' | usage (2) | mode of use (1) | key version (2) | exportability (1) ]
 *                                                                   reply A1: key block (S...) | check value (6 H)
 *   A4  request: number of components (1 N, 2-3) | key type (3 A) | algorithm (1 A) | key length (2 N)
 *                | each component (2 x key length H)                 reply A5: key block (S...) | check value (6 H)
 */
import { HsmError } from './errors.js';
import type { FormKeyRequest, GenerateKeyRequest, Hsm, KeyUnderLmk } from './hsm.js';
import { KCV_BYTES } from './hsm.js';
import {
  KEYBLOCK_PREFIX,
  type KeyAlgorithm,
  type Exportability,
  type KeyUsage,
  type ModeOfUse,
} from './keystore.js';
import { isKeyType, type KeyType } from './keytypes.js';
import { LMK_KCV_BYTES } from './lmk.js';
import type { CommandHandler, HsmServer } from './server.js';

const text = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

/** A cursor over a request or reply body that names the field and offset of what is wrong. */
class Fields {
  at = 0;
  constructor(
    readonly s: string,
    readonly where: 'request' | 'reply',
  ) {}

  #fail(field: string, rule: string): never {
    if (this.where === 'request') throw new HsmError('HSM_REQUEST_INVALID', `request.${field}`, rule);
    throw new HsmError('HSM_REPLY_INVALID', `reply.${field}`, rule);
  }

  take(n: number, field: string, re: RegExp, rule: string): string {
    if (this.s.length - this.at < n) {
      this.#fail(field, `needs ${n} characters at offset ${this.at}, ${this.s.length - this.at} left`);
    }
    const v = this.s.slice(this.at, this.at + n);
    if (!re.test(v)) this.#fail(field, `at offset ${this.at} must be ${rule}`);
    this.at += n;
    return v;
  }

  /** A key block: 'S', then the length its header states (characters after the 'S'). */
  keyBlock(field: string): string {
    if (this.s[this.at] !== KEYBLOCK_PREFIX)
      this.#fail(field, `at offset ${this.at} must start with ${KEYBLOCK_PREFIX}`);
    const lenText = this.s.slice(this.at + 2, this.at + 6);
    if (!/^[0-9]{4}$/.test(lenText)) this.#fail(field, 'header length must be 4 decimal digits');
    const n = 1 + Number(lenText);
    if (this.s.length - this.at < n) {
      this.#fail(field, `header says ${n - 1} characters after the tag, ${this.s.length - this.at - 1} left`);
    }
    const v = this.s.slice(this.at, this.at + n);
    this.at += n;
    return v;
  }

  peek(): string | undefined {
    return this.s[this.at];
  }

  end(): void {
    if (this.at !== this.s.length)
      this.#fail('end', `${this.s.length - this.at} unexpected characters at offset ${this.at}`);
  }
}

const HEX = /^[0-9A-F]*$/;
const KCV_RE = new RegExp(`^[0-9A-F]{${2 * KCV_BYTES}}$`);

function keyLengthField(f: Fields): number {
  return Number(f.take(2, 'keyLength', /^[0-9]{2}$/, '2 decimal digits (bytes)'));
}

function keyTypeField(f: Fields): KeyType {
  const t = f.take(3, 'keyType', /^[A-Z0-9]{3}$/, '3 of A-Z, 0-9');
  if (!isKeyType(t)) throw new HsmError('HSM_KEY_TYPE', 'request.keyType', 'unknown key type');
  return t;
}

function algorithmField(f: Fields): KeyAlgorithm {
  return f.take(1, 'algorithm', /^[TA]$/, 'T (TDES) or A (AES)') as KeyAlgorithm;
}

// --- NC ---

export function encodeNcReply(d: { lmkCheckValue: string; firmwareVersion: string }): string {
  return d.lmkCheckValue + d.firmwareVersion;
}
export function decodeNcReply(body: Uint8Array): { lmkCheckValue: string; firmwareVersion: string } {
  const f = new Fields(text(body), 'reply');
  const lmkCheckValue = f.take(2 * LMK_KCV_BYTES, 'lmkCheckValue', /^[0-9A-F]+$/, 'hex');
  return { lmkCheckValue, firmwareVersion: f.s.slice(f.at) };
}

// --- BU ---

export function decodeBuRequest(body: Uint8Array): string {
  const f = new Fields(text(body), 'request');
  const block = f.keyBlock('keyBlock');
  f.end();
  return block;
}
export function decodeBuReply(body: Uint8Array): string {
  const f = new Fields(text(body), 'reply');
  const kcv = f.take(2 * KCV_BYTES, 'checkValue', KCV_RE, `${2 * KCV_BYTES} hex digits`);
  f.end();
  return kcv;
}

// --- A0 ---

export function encodeA0Request(req: GenerateKeyRequest): string {
  const len = String(req.keyLengthBytes).padStart(2, '0');
  let s = `0${req.keyType}${req.algorithm}${len}`;
  const opt = [req.usage, req.modeOfUse, req.keyVersion, req.exportability];
  if (opt.some((v) => v !== undefined)) {
    if (opt.some((v) => v === undefined)) {
      throw new TypeError('usage, modeOfUse, keyVersion and exportability go together on the wire');
    }
    s += `#${opt.join('')}`;
  }
  return s;
}

export function decodeA0Request(body: Uint8Array): GenerateKeyRequest {
  const f = new Fields(text(body), 'request');
  f.take(1, 'mode', /^0$/, "'0' (generate under the LMK)");
  const keyType = keyTypeField(f);
  const algorithm = algorithmField(f);
  const keyLengthBytes = keyLengthField(f);
  const req: GenerateKeyRequest = { keyType, algorithm, keyLengthBytes };
  if (f.peek() === '#') {
    f.take(1, 'delimiter', /^#$/, '#');
    req.usage = f.take(2, 'usage', /^[A-Z0-9]{2}$/, '2 of A-Z, 0-9') as KeyUsage;
    req.modeOfUse = f.take(1, 'modeOfUse', /^[A-Z0-9]$/, 'one of A-Z, 0-9') as ModeOfUse;
    req.keyVersion = f.take(2, 'keyVersion', /^[A-Za-z0-9]{2}$/, '2 alphanumeric characters');
    req.exportability = f.take(1, 'exportability', /^[A-Z]$/, 'one of A-Z') as Exportability;
  }
  f.end();
  return req;
}

export function encodeKeyReply(r: KeyUnderLmk): string {
  return r.keyBlock + r.checkValue;
}
export function decodeKeyReply(body: Uint8Array): KeyUnderLmk {
  const f = new Fields(text(body), 'reply');
  const keyBlock = f.keyBlock('keyBlock');
  const checkValue = f.take(2 * KCV_BYTES, 'checkValue', KCV_RE, `${2 * KCV_BYTES} hex digits`);
  f.end();
  return { keyBlock, checkValue };
}

// --- A4 ---

export function encodeA4Request(req: FormKeyRequest): string {
  const n = req.components.length;
  const len = req.components[0]?.length ?? 0;
  const hex = req.components.map((c) => Buffer.from(c).toString('hex').toUpperCase()).join('');
  return `${n}${req.keyType}${req.algorithm}${String(len).padStart(2, '0')}${hex}`;
}

export function decodeA4Request(body: Uint8Array): FormKeyRequest {
  const f = new Fields(text(body), 'request');
  const n = Number(f.take(1, 'components', /^[23]$/, '2 or 3'));
  const keyType = keyTypeField(f);
  const algorithm = algorithmField(f);
  const len = keyLengthField(f);
  if (len < 1 || len > 32) throw new HsmError('HSM_KEY_LENGTH', 'request.keyLength', 'must be 1 to 32 bytes');
  const components: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const hex = f.take(2 * len, `components[${i}]`, HEX, 'upper-case hex');
    components.push(new Uint8Array(Buffer.from(hex, 'hex')));
  }
  f.end();
  return { keyType, algorithm, components };
}

/** The host command table of `hsm`: code -> handler. */
export function hsmCommandHandlers(hsm: Hsm): Record<string, CommandHandler> {
  return {
    NC: (body) => {
      new Fields(text(body), 'request').end();
      return { body: encodeNcReply(hsm.diagnostics()) };
    },
    BU: (body) => ({ body: hsm.keyCheckValue(decodeBuRequest(body)) }),
    A0: (body, ctx) => ({ body: encodeKeyReply(hsm.generateKey(decodeA0Request(body), ctx.who)) }),
    A4: (body, ctx) => {
      const req = decodeA4Request(body);
      try {
        return { body: encodeKeyReply(hsm.formKeyFromComponents(req, ctx.who)) };
      } finally {
        for (const c of req.components) c.fill(0);
      }
    },
  };
}

/** Registers every command of `hsm` on `server`. */
export function registerHsmCommands(server: HsmServer, hsm: Hsm): HsmServer {
  for (const [code, h] of Object.entries(hsmCommandHandlers(hsm))) server.register(code, h);
  return server;
}
