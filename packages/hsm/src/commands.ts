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
 *
 * The key exchange, terminal, PIN, MAC, DUKPT and data commands (A6, A8, GC, FA, FI, HC, WK, CA, CC, G0,
 * CI, DA, EA, DC, EC, BK, FW, M6, M8, IK, M0, M2) are laid out in docs/hsm.md, one table per command. PIN block
 * format codes are payShield's (01, 05, 47, 48); a verification that fails answers 01.
 */
import type {
  DataPadding,
  DecryptDataRequest,
  DeriveDukptInitialKeyRequest,
  DukptInitialKey,
  DukptScheme,
  EncryptDataRequest,
  EncryptedData,
  ExportedKey,
  ExportKeyRequest,
  GenerateIbm3624OffsetRequest,
  GeneratedKey,
  GenerateKeyOptions,
  GeneratePvvRequest,
  HsmMacAlgorithm,
  ImportKeyRequest,
  MacRequest,
  PinBlockFormatCode,
  TerminalKey,
  TerminalKeyType,
  TerminalWorkingKeys,
  TranslatePinDukptToZpkRequest,
  TranslatePinTpkToZpkRequest,
  TranslatePinZpkToZpkRequest,
  VerifyMacRequest,
  VerifyPinIbm3624Request,
  VerifyPinPvvRequest,
  ZoneKey,
  ZoneKeyType,
} from './api.js';
import { HsmError } from './errors.js';
import type { FormKeyRequest, Hsm, KeyUnderLmk } from './hsm.js';
import { KCV_BYTES, TERMINAL_KCV_BYTES, TERMINAL_KEY_TYPES, ZONE_KEY_TYPES } from './hsm.js';
import { PAYSHIELD_PIN_FORMAT } from './pin.js';
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

export function encodeA0Request(req: GenerateKeyOptions): string {
  const len = String(req.keyLengthBytes).padStart(2, '0');
  let s =
    req.exportUnder === undefined
      ? `0${req.keyType}${req.algorithm}${len}`
      : `1${req.keyType}${req.algorithm}${len}${req.exportUnder}`;
  const opt = [req.usage, req.modeOfUse, req.keyVersion, req.exportability];
  if (opt.some((v) => v !== undefined)) {
    if (opt.some((v) => v === undefined)) {
      throw new TypeError('usage, modeOfUse, keyVersion and exportability go together on the wire');
    }
    s += `#${opt.join('')}`;
  }
  return s;
}

export function decodeA0Request(body: Uint8Array): GenerateKeyOptions {
  const f = new Fields(text(body), 'request');
  const mode = f.take(1, 'mode', /^[01]$/, "'0' (under the LMK) or '1' (also under a ZMK/TMK)");
  const keyType = keyTypeField(f);
  const algorithm = algorithmField(f);
  const keyLengthBytes = keyLengthField(f);
  const req: GenerateKeyOptions = { keyType, algorithm, keyLengthBytes };
  if (mode === '1') req.exportUnder = f.keyBlock('exportUnder');
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

// --- Fields shared by the key exchange, PIN and MAC commands ---

const PIN_FORMAT_BY_CODE: Readonly<Record<string, PinBlockFormatCode>> = Object.fromEntries(
  Object.entries(PAYSHIELD_PIN_FORMAT).map(([f, code]) => [code, Number(f) as PinBlockFormatCode]),
);

/** A TR-31 key block: version (1) | length (4 N, the whole block) | the rest of that length. */
function tr31Field(f: Fields, field: string): string {
  const lenText = f.s.slice(f.at + 1, f.at + 5);
  if (!/^[0-9A-Z]$/.test(f.s[f.at] ?? '') || !/^[0-9]{4}$/.test(lenText)) {
    f.take(5, field, /^[0-9A-Z][0-9]{4}$/, 'a TR-31 version ID and a 4-digit length');
  }
  const n = Number(lenText);
  if (n < 16) f.take(5, field, /^$/, 'a TR-31 block of at least 16 characters');
  return f.take(n, field, /^[\x20-\x7e]+$/, 'printable ASCII');
}

function pinFormatField(f: Fields, field: string): PinBlockFormatCode {
  const code = f.take(2, field, /^[0-9]{2}$/, '2 decimal digits (a payShield PIN block format code)');
  const format = PIN_FORMAT_BY_CODE[code];
  if (format === undefined) {
    throw new HsmError(
      'HSM_PIN_FORMAT',
      `request.${field}`,
      'must be 01 (ISO 0), 05 (ISO 1), 47 (ISO 3) or 48 (ISO 4)',
    );
  }
  return format;
}

function hexBytes(f: Fields, n: number, field: string): Uint8Array {
  return new Uint8Array(
    Buffer.from(f.take(2 * n, field, /^[0-9A-F]*$/, `${2 * n} upper-case hex digits`), 'hex'),
  );
}

function pinBlockField(f: Fields, format: PinBlockFormatCode): Uint8Array {
  return hexBytes(f, format === 4 ? 16 : 8, 'pinBlock');
}

/** PAN: 2 N length (00 = none) then the digits. */
function panField(f: Fields): string | undefined {
  const n = Number(f.take(2, 'panLength', /^[0-9]{2}$/, '2 decimal digits'));
  if (n === 0) return undefined;
  if (n > 19) throw new HsmError('HSM_PAN_INVALID', 'request.pan', 'must be at most 19 digits');
  return f.take(n, 'pan', /^[0-9]+$/, 'decimal digits');
}

function schemeField(f: Fields): DukptScheme {
  return f.take(1, 'scheme', /^[TA]$/, 'T (TDES DUKPT) or A (AES DUKPT)') === 'T' ? 'tdes' : 'aes';
}

function ksnField(f: Fields, scheme: DukptScheme): Uint8Array {
  return hexBytes(f, scheme === 'tdes' ? 10 : 12, 'ksn');
}

const hexOf = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex').toUpperCase();
const panText = (pan: string | undefined): string =>
  pan === undefined ? '00' : `${String(pan.length).padStart(2, '0')}${pan}`;
const pinText = (format: PinBlockFormatCode, block: Uint8Array): string =>
  `${PAYSHIELD_PIN_FORMAT[format]}${hexOf(block)}`;

// --- A0 mode 1, A6, A8/GC, FA, FI ---

export function encodeA0Mode1Reply(r: GeneratedKey): string {
  return r.keyBlock + r.checkValue + (r.exported ?? '');
}
export function decodeGeneratedKeyReply(body: Uint8Array): GeneratedKey {
  const f = new Fields(text(body), 'reply');
  const keyBlock = f.keyBlock('keyBlock');
  const checkValue = f.take(2 * KCV_BYTES, 'checkValue', KCV_RE, `${2 * KCV_BYTES} hex digits`);
  const out: GeneratedKey = { keyBlock, checkValue };
  if (f.peek() !== undefined) out.exported = tr31Field(f, 'exported');
  f.end();
  return out;
}

export function encodeA6Request(req: ImportKeyRequest): string {
  return `${req.keyType}${req.kek}${req.tr31}`;
}
export function decodeA6Request(body: Uint8Array): ImportKeyRequest {
  const f = new Fields(text(body), 'request');
  const keyType = keyTypeField(f);
  const kek = f.keyBlock('kek');
  const tr31 = tr31Field(f, 'tr31');
  f.end();
  return { keyType, kek, tr31 };
}

export function encodeA8Request(req: ExportKeyRequest): string {
  return req.kek + req.keyBlock;
}
export function decodeA8Request(body: Uint8Array): ExportKeyRequest {
  const f = new Fields(text(body), 'request');
  const kek = f.keyBlock('kek');
  const keyBlock = f.keyBlock('keyBlock');
  f.end();
  return { kek, keyBlock };
}
export function encodeExportReply(r: ExportedKey): string {
  return r.tr31 + r.checkValue;
}
export function decodeExportReply(body: Uint8Array): ExportedKey {
  const f = new Fields(text(body), 'reply');
  const tr31 = tr31Field(f, 'tr31');
  const checkValue = f.take(2 * KCV_BYTES, 'checkValue', KCV_RE, `${2 * KCV_BYTES} hex digits`);
  f.end();
  return { tr31, checkValue };
}

function zoneKeyTypeField(f: Fields): ZoneKeyType {
  const t = f.take(3, 'keyType', /^[A-Z0-9]{3}$/, '3 of A-Z, 0-9');
  if (!(ZONE_KEY_TYPES as readonly string[]).includes(t)) {
    throw new HsmError('HSM_KEY_TYPE', 'request.keyType', 'must be ZPK, ZAK or ZEK');
  }
  return t as ZoneKeyType;
}

export function encodeFaRequest(zmk: string, keyType: ZoneKeyType, tr31: string): string {
  return `${keyType}${zmk}${tr31}`;
}
export function decodeFaRequest(body: Uint8Array): { zmk: string; keyType: ZoneKeyType; tr31: string } {
  const f = new Fields(text(body), 'request');
  const keyType = zoneKeyTypeField(f);
  const zmk = f.keyBlock('zmk');
  const tr31 = tr31Field(f, 'tr31');
  f.end();
  return { zmk, keyType, tr31 };
}

export function encodeFiRequest(zmk: string, keyType: ZoneKeyType): string {
  return `${keyType}${zmk}`;
}
export function decodeFiRequest(body: Uint8Array): { zmk: string; keyType: ZoneKeyType } {
  const f = new Fields(text(body), 'request');
  const keyType = zoneKeyTypeField(f);
  const zmk = f.keyBlock('zmk');
  f.end();
  return { zmk, keyType };
}
export function encodeZoneKeyReply(r: ZoneKey): string {
  return r.keyBlock + r.underZmk + r.checkValue;
}
export function decodeZoneKeyReply(body: Uint8Array): ZoneKey {
  const f = new Fields(text(body), 'reply');
  const keyBlock = f.keyBlock('keyBlock');
  const underZmk = tr31Field(f, 'underZmk');
  const checkValue = f.take(2 * KCV_BYTES, 'checkValue', KCV_RE, `${2 * KCV_BYTES} hex digits`);
  f.end();
  return { keyBlock, underZmk, checkValue };
}

// --- HC, WK (sign-in) ---

const TKCV_RE = new RegExp(`^[0-9A-F]{${2 * TERMINAL_KCV_BYTES}}$`);

export function encodeHcRequest(tmk: string, keyType: TerminalKeyType): string {
  return `${keyType}${tmk}`;
}
export function decodeHcRequest(body: Uint8Array): { tmk: string; keyType: TerminalKeyType } {
  const f = new Fields(text(body), 'request');
  const t = f.take(3, 'keyType', /^[A-Z0-9]{3}$/, '3 of A-Z, 0-9');
  if (!(TERMINAL_KEY_TYPES as readonly string[]).includes(t)) {
    throw new HsmError('HSM_KEY_TYPE', 'request.keyType', 'must be TMK, TPK, TAK or TDK');
  }
  const tmk = f.keyBlock('tmk');
  f.end();
  return { tmk, keyType: t as TerminalKeyType };
}
export function encodeTerminalKey(k: TerminalKey): string {
  return k.underTmk + k.checkValue + k.keyBlock;
}
function terminalKeyField(f: Fields, name: string): TerminalKey {
  const underTmk = f.take(32, `${name}.underTmk`, /^[0-9A-F]{32}$/, '32 hex digits');
  const checkValue = f.take(2 * TERMINAL_KCV_BYTES, `${name}.checkValue`, TKCV_RE, '8 hex digits');
  const keyBlock = f.keyBlock(`${name}.keyBlock`);
  return { keyBlock, underTmk, checkValue };
}
export function decodeTerminalKeyReply(body: Uint8Array): TerminalKey {
  const f = new Fields(text(body), 'reply');
  const k = terminalKeyField(f, 'key');
  f.end();
  return k;
}
export function decodeWkRequest(body: Uint8Array): string {
  const f = new Fields(text(body), 'request');
  const tmk = f.keyBlock('tmk');
  f.end();
  return tmk;
}
export function encodeWkReply(r: TerminalWorkingKeys): string {
  return encodeTerminalKey(r.tpk) + encodeTerminalKey(r.tak) + encodeTerminalKey(r.tdk);
}
export function decodeWkReply(body: Uint8Array): TerminalWorkingKeys {
  const f = new Fields(text(body), 'reply');
  const tpk = terminalKeyField(f, 'tpk');
  const tak = terminalKeyField(f, 'tak');
  const tdk = terminalKeyField(f, 'tdk');
  f.end();
  return { tpk, tak, tdk };
}

// --- CA, CC, G0, CI ---

export function encodeCaRequest(req: TranslatePinTpkToZpkRequest): string {
  return `${req.tpk}${req.zpk}${pinText(req.format, req.pinBlock)}${PAYSHIELD_PIN_FORMAT[req.formatOut]}${panText(req.pan)}`;
}
function translateTail(f: Fields): {
  format: PinBlockFormatCode;
  pinBlock: Uint8Array;
  formatOut: PinBlockFormatCode;
  pan?: string;
} {
  const format = pinFormatField(f, 'format');
  const pinBlock = pinBlockField(f, format);
  const formatOut = pinFormatField(f, 'formatOut');
  const pan = panField(f);
  f.end();
  return pan === undefined ? { format, pinBlock, formatOut } : { format, pinBlock, formatOut, pan };
}
export function decodeCaRequest(body: Uint8Array): TranslatePinTpkToZpkRequest {
  const f = new Fields(text(body), 'request');
  const tpk = f.keyBlock('tpk');
  const zpk = f.keyBlock('zpk');
  return { tpk, zpk, ...translateTail(f) };
}
export function encodeCcRequest(req: TranslatePinZpkToZpkRequest): string {
  return `${req.zpkIn}${req.zpkOut}${pinText(req.format, req.pinBlock)}${PAYSHIELD_PIN_FORMAT[req.formatOut]}${panText(req.pan)}`;
}
export function decodeCcRequest(body: Uint8Array): TranslatePinZpkToZpkRequest {
  const f = new Fields(text(body), 'request');
  const zpkIn = f.keyBlock('zpkIn');
  const zpkOut = f.keyBlock('zpkOut');
  return { zpkIn, zpkOut, ...translateTail(f) };
}
/** G0 carries the scheme; CI is TDES DUKPT and has none. */
export function encodeG0Request(req: TranslatePinDukptToZpkRequest, withScheme = true): string {
  const scheme = withScheme ? (req.scheme === 'tdes' ? 'T' : 'A') : '';
  return `${scheme}${req.bdk}${req.zpk}${hexOf(req.ksn)}${pinText(req.format, req.pinBlock)}${PAYSHIELD_PIN_FORMAT[req.formatOut]}${panText(req.pan)}`;
}
export function decodeG0Request(body: Uint8Array, withScheme = true): TranslatePinDukptToZpkRequest {
  const f = new Fields(text(body), 'request');
  const scheme = withScheme ? schemeField(f) : 'tdes';
  const bdk = f.keyBlock('bdk');
  const zpk = f.keyBlock('zpk');
  const ksn = ksnField(f, scheme);
  return { scheme, bdk, zpk, ksn, ...translateTail(f) };
}
export function encodePinBlockReply(block: Uint8Array): string {
  return hexOf(block);
}
export function decodePinBlockReply(body: Uint8Array): Uint8Array {
  const f = new Fields(text(body), 'reply');
  const n = f.s.length === 32 ? 16 : 8;
  const b = hexBytes(f, n, 'pinBlock');
  f.end();
  return b;
}

// --- DA/EA, DC/EC, BK, FW ---

function pinHead(f: Fields): {
  pinKey: string;
  pvk: string;
  format: PinBlockFormatCode;
  pinBlock: Uint8Array;
  pan?: string;
} {
  const pinKey = f.keyBlock('pinKey');
  const pvk = f.keyBlock('pvk');
  const format = pinFormatField(f, 'format');
  const pinBlock = pinBlockField(f, format);
  const pan = panField(f);
  return pan === undefined ? { pinKey, pvk, format, pinBlock } : { pinKey, pvk, format, pinBlock, pan };
}
const pinHeadText = (r: {
  pinKey: string;
  pvk: string;
  format: PinBlockFormatCode;
  pinBlock: Uint8Array;
  pan?: string;
}): string => `${r.pinKey}${r.pvk}${pinText(r.format, r.pinBlock)}${panText(r.pan)}`;

export function encodeBkRequest(req: GenerateIbm3624OffsetRequest): string {
  return `${pinHeadText(req)}${req.decimalisationTable}${req.validationData}`;
}
function ibmTail(f: Fields): { decimalisationTable: string; validationData: string } {
  const decimalisationTable = f.take(16, 'decimalisationTable', /^[0-9A-F]{16}$/, '16 characters');
  const validationData = f.take(16, 'validationData', /^[0-9A-F]{16}$/, '16 upper-case hex digits');
  return { decimalisationTable, validationData };
}
export function decodeBkRequest(body: Uint8Array): GenerateIbm3624OffsetRequest {
  const f = new Fields(text(body), 'request');
  const r = { ...pinHead(f), ...ibmTail(f) };
  f.end();
  return r;
}
export function encodeDaRequest(req: VerifyPinIbm3624Request): string {
  return `${encodeBkRequest(req)}${req.offset.padEnd(12, 'F')}`;
}
export function decodeDaRequest(body: Uint8Array): VerifyPinIbm3624Request {
  const f = new Fields(text(body), 'request');
  const r = { ...pinHead(f), ...ibmTail(f) };
  const offset = f
    .take(12, 'offset', /^[0-9]{4,12}F*$/, '4 to 12 digits, right-padded with F to 12')
    .replace(/F+$/, '');
  f.end();
  return { ...r, offset };
}
export function encodeOffsetReply(r: { offset: string }): string {
  return r.offset.padEnd(12, 'F');
}
export function decodeOffsetReply(body: Uint8Array): { offset: string } {
  const f = new Fields(text(body), 'reply');
  const offset = f.take(12, 'offset', /^[0-9]{4,12}F*$/, '4 to 12 digits, F-padded').replace(/F+$/, '');
  f.end();
  return { offset };
}
export function encodeFwRequest(req: GeneratePvvRequest): string {
  return `${pinHeadText(req)}${req.pvki}`;
}
export function decodeFwRequest(body: Uint8Array): GeneratePvvRequest {
  const f = new Fields(text(body), 'request');
  const r = pinHead(f);
  const pvki = f.take(1, 'pvki', /^[0-9]$/, '1 decimal digit');
  f.end();
  return { ...r, pvki };
}
export function encodeDcRequest(req: VerifyPinPvvRequest): string {
  return `${encodeFwRequest(req)}${req.pvv}`;
}
export function decodeDcRequest(body: Uint8Array): VerifyPinPvvRequest {
  const f = new Fields(text(body), 'request');
  const r = pinHead(f);
  const pvki = f.take(1, 'pvki', /^[0-9]$/, '1 decimal digit');
  const pvv = f.take(4, 'pvv', /^[0-9]{4}$/, '4 decimal digits');
  f.end();
  return { ...r, pvki, pvv };
}
export function decodePvvReply(body: Uint8Array): { pvv: string } {
  const f = new Fields(text(body), 'reply');
  const pvv = f.take(4, 'pvv', /^[0-9]{4}$/, '4 decimal digits');
  f.end();
  return { pvv };
}

// --- M6, M8 ---

const MAC_ALGORITHM_CODES: Readonly<Record<HsmMacAlgorithm, string>> = {
  'iso9797-1-1': '1',
  'iso9797-1-3': '3',
  cmac: '5',
  'cup-ecb': 'U',
};
const MAC_ALGORITHM_BY_CODE: Readonly<Record<string, HsmMacAlgorithm>> = Object.fromEntries(
  Object.entries(MAC_ALGORITHM_CODES).map(([a, c]) => [c, a as HsmMacAlgorithm]),
);

export function encodeM6Request(req: MacRequest): string {
  const alg = MAC_ALGORITHM_CODES[req.algorithm];
  if (alg === undefined) throw new TypeError('algorithm: unknown MAC algorithm');
  const data = Buffer.from(req.data.buffer, req.data.byteOffset, req.data.byteLength);
  return `${alg}${req.padding ?? 0}${String(req.length ?? 0).padStart(2, '0')}${req.key}${data.length.toString(16).toUpperCase().padStart(4, '0')}${data.toString('latin1')}`;
}
function m6Fields(f: Fields): MacRequest {
  const a = f.take(1, 'algorithm', /^[135U]$/, '1, 3, 5 or U');
  const padding = Number(f.take(1, 'padding', /^[0-3]$/, '0 (the default) to 3'));
  const length = Number(f.take(2, 'length', /^[0-9]{2}$/, '2 decimal digits (00: the default)'));
  const key = f.keyBlock('key');
  const n = Number.parseInt(f.take(4, 'dataLength', /^[0-9A-F]{4}$/, '4 hex digits'), 16);
  const data = new Uint8Array(Buffer.from(f.take(n, 'data', /^[\s\S]*$/, 'bytes'), 'latin1'));
  const req: MacRequest = { key, algorithm: MAC_ALGORITHM_BY_CODE[a]!, data };
  if (padding !== 0) req.padding = padding as 1 | 2 | 3;
  if (length !== 0) req.length = length;
  return req;
}
export function encodeM8Request(req: VerifyMacRequest): string {
  return `${encodeM6Request(req)}${hexOf(req.mac)}`;
}
export function decodeM6Request(body: Uint8Array): MacRequest {
  const f = new Fields(text(body), 'request');
  const req = m6Fields(f);
  f.end();
  return req;
}
export function decodeM8Request(body: Uint8Array): VerifyMacRequest {
  const f = new Fields(text(body), 'request');
  const req = m6Fields(f);
  const rest = f.s.length - f.at;
  if (rest < 8 || rest > 32 || rest % 2 !== 0) f.take(rest + 1, 'mac', /^$/, '8 to 32 hex digits');
  const mac = hexBytes(f, rest / 2, 'mac');
  f.end();
  return { ...req, mac };
}
export function decodeMacReply(body: Uint8Array): Uint8Array {
  const f = new Fields(text(body), 'reply');
  const n = f.s.length;
  if (n < 8 || n > 32 || n % 2 !== 0) f.take(n + 1, 'mac', /^$/, '8 to 32 hex digits');
  const mac = hexBytes(f, n / 2, 'mac');
  f.end();
  return mac;
}

// --- IK (DUKPT initial key) ---

export function encodeIkRequest(req: DeriveDukptInitialKeyRequest): string {
  return `${req.scheme === 'tdes' ? 'T' : 'A'}${req.bdk}${hexOf(req.ksn)}${req.exportUnder === undefined ? '' : `#${req.exportUnder}`}`;
}
export function decodeIkRequest(body: Uint8Array): DeriveDukptInitialKeyRequest {
  const f = new Fields(text(body), 'request');
  const scheme = schemeField(f);
  const bdk = f.keyBlock('bdk');
  const ksn = ksnField(f, scheme);
  const req: DeriveDukptInitialKeyRequest = { scheme, bdk, ksn };
  if (f.peek() === '#') {
    f.take(1, 'delimiter', /^#$/, '#');
    req.exportUnder = f.keyBlock('exportUnder');
  }
  f.end();
  return req;
}
export const encodeIkReply = (r: DukptInitialKey): string => encodeA0Mode1Reply(r);
export const decodeIkReply = (body: Uint8Array): DukptInitialKey => decodeGeneratedKeyReply(body);

// --- M0, M2 (data encryption) ---

/** The only mode flag M0/M2 take: payShield's 01, CBC (00 ECB is not offered; docs/hsm.md). */
export const DATA_MODE_CBC = '01';
const DATA_PADDING_CODES: Readonly<Record<DataPadding, string>> = { none: '0', 'iso9797-1-pad2': '2' };

const binText = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
const lengthHex = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0');

/** IV: 2 N length in bytes (`allowNone`: 00 = the HSM generates one), then the IV in hex. */
function ivField(f: Fields, allowNone: boolean): Uint8Array | undefined {
  const n = Number(
    f.take(2, 'ivLength', allowNone ? /^(00|08|16)$/ : /^(08|16)$/, allowNone ? '00, 08 or 16' : '08 or 16'),
  );
  return n === 0 ? undefined : hexBytes(f, n, 'iv');
}
const ivText = (iv: Uint8Array | undefined): string =>
  iv === undefined ? '00' : `${String(iv.length).padStart(2, '0')}${hexOf(iv)}`;

/** Data: 4 H length in bytes, then the bytes. */
function dataField(f: Fields, field: string): Uint8Array {
  const n = Number.parseInt(f.take(4, `${field}Length`, /^[0-9A-F]{4}$/, '4 hex digits'), 16);
  return new Uint8Array(Buffer.from(f.take(n, field, /^[\s\S]*$/, 'bytes'), 'latin1'));
}
const dataText = (b: Uint8Array): string => `${lengthHex(b.length)}${binText(b)}`;

function dataHead(f: Fields): { padding: DataPadding; key: string } {
  f.take(2, 'mode', /^01$/, `${DATA_MODE_CBC} (CBC)`);
  const p = f.take(1, 'padding', /^[02]$/, '0 (none) or 2 (ISO 9797-1 method 2)');
  return { padding: p === '0' ? 'none' : 'iso9797-1-pad2', key: f.keyBlock('key') };
}
function dataHeadText(r: { padding?: DataPadding; key: string }): string {
  const p = DATA_PADDING_CODES[r.padding ?? 'iso9797-1-pad2'];
  if (p === undefined) throw new TypeError('padding: must be iso9797-1-pad2 or none');
  return `${DATA_MODE_CBC}${p}${r.key}`;
}

export function encodeM0Request(req: EncryptDataRequest): string {
  return `${dataHeadText(req)}${ivText(req.iv)}${dataText(req.data)}`;
}
export function decodeM0Request(body: Uint8Array): EncryptDataRequest {
  const f = new Fields(text(body), 'request');
  const { padding, key } = dataHead(f);
  const iv = ivField(f, true);
  const data = dataField(f, 'data');
  f.end();
  const req: EncryptDataRequest = { key, data, padding };
  if (iv !== undefined) req.iv = iv;
  return req;
}
export function encodeM0Reply(r: EncryptedData): string {
  return `${ivText(r.iv)}${dataText(r.ciphertext)}`;
}
export function decodeM0Reply(body: Uint8Array): EncryptedData {
  const f = new Fields(text(body), 'reply');
  const iv = ivField(f, false)!;
  const ciphertext = dataField(f, 'ciphertext');
  f.end();
  return { iv, ciphertext };
}
export function encodeM2Request(req: DecryptDataRequest): string {
  return `${dataHeadText(req)}${ivText(req.iv)}${dataText(req.ciphertext)}`;
}
export function decodeM2Request(body: Uint8Array): DecryptDataRequest {
  const f = new Fields(text(body), 'request');
  const { padding, key } = dataHead(f);
  const iv = ivField(f, false)!;
  const ciphertext = dataField(f, 'ciphertext');
  f.end();
  return { key, iv, ciphertext, padding };
}
export const encodeM2Reply = (data: Uint8Array): string => dataText(data);
export function decodeM2Reply(body: Uint8Array): Uint8Array {
  const f = new Fields(text(body), 'reply');
  const data = dataField(f, 'data');
  f.end();
  return data;
}

/** A verification's answer: 00 when it verifies, payShield's 01 (verification failure) when not. */
const verdict = (ok: boolean): { errorCode: string } => ({ errorCode: ok ? '00' : '01' });

/** The host command table of `hsm`: code -> handler. */
export function hsmCommandHandlers(hsm: Hsm): Record<string, CommandHandler> {
  return {
    NC: (body) => {
      new Fields(text(body), 'request').end();
      return { body: encodeNcReply(hsm.diagnostics()) };
    },
    BU: (body) => ({ body: hsm.keyCheckValue(decodeBuRequest(body)) }),
    A0: (body, ctx) => ({ body: encodeA0Mode1Reply(hsm.generateKey(decodeA0Request(body), ctx.who)) }),
    A4: (body, ctx) => {
      const req = decodeA4Request(body);
      try {
        return { body: encodeKeyReply(hsm.formKeyFromComponents(req, ctx.who)) };
      } finally {
        for (const c of req.components) c.fill(0);
      }
    },
    A6: (body, ctx) => ({ body: encodeKeyReply(hsm.importKeyFromZmk(decodeA6Request(body), ctx.who)) }),
    A8: (body, ctx) => ({ body: encodeExportReply(hsm.exportKeyUnderKek(decodeA8Request(body), ctx.who)) }),
    GC: (body, ctx) => ({
      body: encodeExportReply(hsm.exportKeyUnderKek(decodeA8Request(body), ctx.who, 'GC')),
    }),
    FA: (body, ctx) => {
      const r = decodeFaRequest(body);
      return { body: encodeKeyReply(hsm.importZoneKey(r.zmk, r.keyType, r.tr31, ctx.who)) };
    },
    FI: (body, ctx) => {
      const r = decodeFiRequest(body);
      return { body: encodeZoneKeyReply(hsm.generateZoneKey(r.zmk, r.keyType, ctx.who)) };
    },
    HC: (body, ctx) => {
      const r = decodeHcRequest(body);
      return { body: encodeTerminalKey(hsm.generateTerminalKey(r.tmk, r.keyType, ctx.who)) };
    },
    WK: (body, ctx) => ({
      body: encodeWkReply(hsm.generateTerminalWorkingKeys(decodeWkRequest(body), ctx.who)),
    }),
    CA: (body) => ({ body: encodePinBlockReply(hsm.translatePinTpkToZpk(decodeCaRequest(body))) }),
    CC: (body) => ({ body: encodePinBlockReply(hsm.translatePinZpkToZpk(decodeCcRequest(body))) }),
    G0: (body) => ({ body: encodePinBlockReply(hsm.translatePinDukptToZpk(decodeG0Request(body))) }),
    CI: (body) => ({ body: encodePinBlockReply(hsm.translatePinDukptToZpk(decodeG0Request(body, false))) }),
    DA: (body) => verdict(hsm.verifyPinIbm3624(decodeDaRequest(body)).ok),
    EA: (body) => verdict(hsm.verifyPinIbm3624(decodeDaRequest(body)).ok),
    DC: (body) => verdict(hsm.verifyPinPvv(decodeDcRequest(body)).ok),
    EC: (body) => verdict(hsm.verifyPinPvv(decodeDcRequest(body)).ok),
    BK: (body) => ({ body: encodeOffsetReply(hsm.generateIbm3624Offset(decodeBkRequest(body))) }),
    FW: (body) => ({ body: hsm.generatePvv(decodeFwRequest(body)).pvv }),
    M6: (body) => ({ body: hexOf(hsm.generateMac(decodeM6Request(body))) }),
    M8: (body) => verdict(hsm.verifyMac(decodeM8Request(body))),
    IK: (body, ctx) => ({ body: encodeIkReply(hsm.deriveDukptInitialKey(decodeIkRequest(body), ctx.who)) }),
    M0: (body) => {
      const req = decodeM0Request(body);
      try {
        return { body: encodeM0Reply(hsm.encryptData(req)) };
      } finally {
        req.data.fill(0);
      }
    },
    M2: (body) => {
      const req = decodeM2Request(body);
      const clear = hsm.decryptData(req);
      try {
        return { body: encodeM2Reply(clear) };
      } finally {
        clear.fill(0);
      }
    },
  };
}

/** Registers every command of `hsm` on `server`. */
export function registerHsmCommands(server: HsmServer, hsm: Hsm): HsmServer {
  for (const [code, h] of Object.entries(hsmCommandHandlers(hsm))) server.register(code, h);
  return server;
}
