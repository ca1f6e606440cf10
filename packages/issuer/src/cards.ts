/**
 * Card accounts as the issuer receives them (an accounts file or `addCard`), validated with typed
 * errors naming the path. A card input holds the PAN (it is the issuer's own card list) but the
 * database never does: it keeps the PAN token and the masked PAN.
 *
 * PIN verification data is what the issuer's HSM needs to verify a PIN without anyone seeing it:
 * - IBM 3624 (ISO 9564-1 annex / IBM 3624 PIN offset; payShield EA): the PVK key block (usage V1), the
 *   decimalisation table, the rule selecting the validation data from the PAN, and the offset;
 * - Visa PVV (Visa PIN verification value; payShield EC): the PVK key block (usage V2), the PVKI, the PVV.
 * The offset or PVV may be absent: the card then needs `enrolPin` before any PIN transaction.
 */
import { readFileSync } from 'node:fs';
import { IssuerError } from './errors.js';

export type CardStatus = 'active' | 'blocked' | 'pin-blocked';
export const CARD_STATUSES: readonly CardStatus[] = ['active', 'blocked', 'pin-blocked'];

/** Wrong PINs in a row after which the card is PIN-blocked (answer 75). */
export const PIN_TRIES_MAX = 3;
/** Per-transaction limit when a card gives none (minor units). */
export const CARD_LIMIT_MINOR_DEFAULT = 5_000_000;

/**
 * Which PAN digits form the IBM 3624 validation data: `panLength` digits starting at `panOffset`
 * (0-based from the left), right-padded with `pad` to 16 hex digits (`selectValidationDataIbm3624`).
 * Without `panOffset` the digits end just before the check digit (the usual "rightmost 12 excluding
 * the check digit" when panLength is 12).
 */
export interface ValidationDataRule {
  panOffset?: number;
  panLength: number;
  pad: string;
}

export interface Ibm3624PinData {
  method: 'ibm3624';
  /** PVK key block under the LMK (usage V1). */
  pvk: string;
  decimalisationTable: string;
  validationData: ValidationDataRule;
  /** 4 to 12 digits; absent until enrolled. */
  offset?: string;
}

export interface PvvPinData {
  method: 'pvv';
  /** PVK key block under the LMK (usage V2). */
  pvk: string;
  /** PIN verification key index, 1 digit. */
  pvki: string;
  /** 4 digits; absent until enrolled. */
  pvv?: string;
}

export type PinVerificationData = Ibm3624PinData | PvvPinData;

export interface CardInput {
  /** 12 to 19 digits. */
  pan: string;
  /** YYMM. */
  expiry: string;
  /** 3 digits (ISO/IEC 7813 service code). */
  serviceCode: string;
  status?: CardStatus;
  /** Per-transaction amount limit (answer 61 above it). */
  limitMinor?: number;
  /** Opening balance, posted from the funding account when the card is created. */
  balanceMinor?: number;
  pin: PinVerificationData;
}

export interface AccountsFile {
  cards: CardInput[];
}

const DIGITS = /^\d+$/;
const HEX1 = /^[0-9A-Fa-f]$/;

function bad(path: string, rule: string): IssuerError {
  return new IssuerError('ISSUER_ACCOUNTS_INVALID', path, rule);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function digits(v: unknown, path: string, min: number, max: number): string {
  if (typeof v !== 'string' || !DIGITS.test(v) || v.length < min || v.length > max) {
    throw bad(path, min === max ? `must be ${min} digits` : `must be ${min} to ${max} digits`);
  }
  return v;
}

function keyBlock(v: unknown, path: string): string {
  if (typeof v !== 'string' || !v.startsWith('S') || v.length < 17) {
    throw bad(path, 'must be a key block under the LMK (starting with S)');
  }
  return v;
}

function safeInt(v: unknown, path: string, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw bad(path, `must be a safe integer >= ${min} (minor units)`);
  }
  return v;
}

/** Luhn (ISO/IEC 7812-1 annex B) check: a PAN with a wrong check digit is refused at load time. */
export function luhnOk(pan: string): boolean {
  let sum = 0;
  for (let i = 0; i < pan.length; i++) {
    let d = pan.charCodeAt(pan.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** First 6 and last 4 digits, the rest `*` (PCI DSS 3.4 display rule; docs/network.md). */
export function maskPan(pan: string): string {
  return `${pan.slice(0, 6)}${'*'.repeat(Math.max(0, pan.length - 10))}${pan.slice(-4)}`;
}

function validatePin(v: unknown, path: string): PinVerificationData {
  if (!isObject(v)) throw bad(path, 'must be an object');
  if (v.method === 'ibm3624') {
    const rule = v.validationData;
    if (!isObject(rule))
      throw bad(`${path}.validationData`, 'must be an object { panOffset?, panLength, pad }');
    if (
      rule.panOffset !== undefined &&
      (typeof rule.panOffset !== 'number' || !Number.isInteger(rule.panOffset) || rule.panOffset < 0)
    ) {
      throw bad(`${path}.validationData.panOffset`, 'must be an integer >= 0');
    }
    if (
      typeof rule.panLength !== 'number' ||
      !Number.isInteger(rule.panLength) ||
      rule.panLength < 1 ||
      rule.panLength > 16
    ) {
      throw bad(`${path}.validationData.panLength`, 'must be an integer from 1 to 16');
    }
    if (typeof rule.pad !== 'string' || !HEX1.test(rule.pad)) {
      throw bad(`${path}.validationData.pad`, 'must be one hex digit');
    }
    const out: Ibm3624PinData = {
      method: 'ibm3624',
      pvk: keyBlock(v.pvk, `${path}.pvk`),
      decimalisationTable: digits(v.decimalisationTable, `${path}.decimalisationTable`, 16, 16),
      validationData: {
        ...(rule.panOffset === undefined ? {} : { panOffset: rule.panOffset as number }),
        panLength: rule.panLength,
        pad: rule.pad.toUpperCase(),
      },
    };
    if (v.offset !== undefined) out.offset = digits(v.offset, `${path}.offset`, 4, 12);
    return out;
  }
  if (v.method === 'pvv') {
    const out: PvvPinData = {
      method: 'pvv',
      pvk: keyBlock(v.pvk, `${path}.pvk`),
      pvki: digits(v.pvki, `${path}.pvki`, 1, 1),
    };
    if (v.pvv !== undefined) out.pvv = digits(v.pvv, `${path}.pvv`, 4, 4);
    return out;
  }
  throw bad(`${path}.method`, "must be 'ibm3624' or 'pvv'");
}

/** Validates one card input (an element of the accounts file or an addCard argument). */
export function validateCardInput(v: unknown, path = 'card'): CardInput {
  if (!isObject(v)) throw bad(path, 'must be an object');
  const pan = digits(v.pan, `${path}.pan`, 12, 19);
  if (!luhnOk(pan)) throw bad(`${path}.pan`, 'check digit (Luhn) is wrong');
  const expiry = digits(v.expiry, `${path}.expiry`, 4, 4);
  const mm = Number(expiry.slice(2));
  if (mm < 1 || mm > 12) throw bad(`${path}.expiry`, 'must be YYMM with a month 01 to 12');
  const out: CardInput = {
    pan,
    expiry,
    serviceCode: digits(v.serviceCode, `${path}.serviceCode`, 3, 3),
    pin: validatePin(v.pin, `${path}.pin`),
  };
  if (v.status !== undefined) {
    if (!CARD_STATUSES.includes(v.status as CardStatus)) {
      throw bad(`${path}.status`, `must be one of ${CARD_STATUSES.join(', ')}`);
    }
    out.status = v.status as CardStatus;
  }
  if (v.limitMinor !== undefined) out.limitMinor = safeInt(v.limitMinor, `${path}.limitMinor`, 1);
  if (v.balanceMinor !== undefined) out.balanceMinor = safeInt(v.balanceMinor, `${path}.balanceMinor`, 0);
  for (const k of Object.keys(v)) {
    if (!['pan', 'expiry', 'serviceCode', 'status', 'limitMinor', 'balanceMinor', 'pin'].includes(k)) {
      throw bad(`${path}.${k}`, 'unknown property');
    }
  }
  return out;
}

/** Validates an accounts document: `{ "cards": [ ... ] }`. */
export function validateAccountsFile(v: unknown): AccountsFile {
  if (!isObject(v) || !Array.isArray(v.cards)) throw bad('cards', 'must be an array of cards');
  const cards = v.cards.map((c, i) => validateCardInput(c, `cards[${i}]`));
  const seen = new Set<string>();
  cards.forEach((c, i) => {
    if (seen.has(c.pan)) throw bad(`cards[${i}].pan`, 'appears twice in the file');
    seen.add(c.pan);
  });
  return { cards };
}

/** Reads and validates an accounts file (JSON). The error names the file path, never card data. */
export function readAccountsFile(path: string): AccountsFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new IssuerError('ISSUER_ACCOUNTS_INVALID', 'accountsFile', `cannot read ${path}`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new IssuerError('ISSUER_ACCOUNTS_INVALID', 'accountsFile', `${path} is not JSON`);
  }
  return validateAccountsFile(json);
}

/** The 16 hex digits of IBM 3624 validation data chosen from the PAN by the card's rule. */
export function validationDataFor(
  pan: string,
  rule: ValidationDataRule,
): { offset: number; length: number; pad: string } {
  const offset = rule.panOffset ?? Math.max(0, pan.length - 1 - rule.panLength);
  return { offset, length: rule.panLength, pad: rule.pad };
}
