/**
 * The HSM as an in-process API: the same operations the host commands give over TCP (commands.ts maps
 * each host command onto one method here), with typed inputs and outputs.
 *
 * Every operation that creates or forms a key writes one audit line (who, command, key type, check
 * value, result) before it returns, when an audit log is attached; if the line cannot be written the
 * key is not returned. Sensitive activities (by default generating a ZMK and forming a ZMK or TMK from
 * clear components) need the authorized state (auth.ts).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  adjustOddParity,
  assertCounterUsableAes,
  assertCounterUsableTdes,
  assertDecimalisationTable,
  decodePinBlock,
  decryptPinBlock,
  decryptPinBlockTdes,
  deriveInitialKeyAes,
  deriveIpekTdes,
  deriveWorkingKeyAes,
  type DukptAesKeyType,
  generateMac as cryptoGenerateMac,
  generateOffsetIbm3624,
  generatePvvVisa,
  hasOddParity,
  kcvAes,
  kcvTdes,
  type MacOptions,
  padIso9797Method2,
  toHex,
  unwrapKeyBlock,
  verifyMac as cryptoVerifyMac,
  verifyPinIbm3624 as cryptoVerifyPinIbm3624,
  verifyPvvVisa,
  wipe,
  wrapKeyBlock,
  xor,
} from '@openposp/crypto';
import type {
  DataPadding,
  DecryptDataRequest,
  DeriveDukptInitialKeyRequest,
  DukptInitialKey,
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
  PinBlockIn,
  PinVerification,
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
import type { AuditEvent, AuditLog } from './audit.js';
import type { AuthState, Authorization, CustodianCredential } from './auth.js';
import { HsmError } from './errors.js';
import { CachedKey, KEY_CACHE_ENTRIES_DEFAULT, KeyCache } from './keycache.js';
import {
  checkKeyAttributes,
  checkKeyExpectation,
  type Exportability,
  type KeyAlgorithm,
  type KeyAttributes,
  type KeyExpectation,
  KEY_ALGORITHMS,
  KEY_LENGTHS_BYTES,
  type KeyUsage,
  type ModeOfUse,
} from './keystore.js';
import { DEFAULT_MODE_BY_USAGE, defaultExportability, type KeyType, usagesFor } from './keytypes.js';
import type { Lmk } from './lmk.js';
import {
  checkKeyForFormat,
  checkNoDowngrade,
  checkPinBlockLength,
  checkPinFormat,
  decryptPin,
  encryptPin,
  mapCrypto,
} from './pin.js';

export const FIRMWARE_VERSION = 'openposp-hsm/0.1.0';
/** Check values in replies: 3 bytes, 6 hex digits (payShield's KCV width for key-block keys). */
export const KCV_BYTES = 3;
/** Activities that need the authorized state unless the configuration says otherwise. */
export const SENSITIVE_ACTIVITIES_DEFAULT: readonly string[] = ['A0.ZMK', 'A4.ZMK', 'A4.TMK'];
/** Key types that may be formed from clear components (A4). */
export const COMPONENT_KEY_TYPES: readonly KeyType[] = ['ZMK', 'TMK'];

export interface HsmOptions {
  lmk: Lmk;
  audit?: AuditLog;
  authorization?: Authorization;
  /** Activities (`A0.ZMK`, `A4.*`) that need the authorized state; SENSITIVE_ACTIVITIES_DEFAULT when omitted. */
  sensitiveActivities?: readonly string[];
  firmwareVersion?: string;
  /**
   * Allow PIN translations to a weaker format (ISO 4 to 0/1/3, a PAN-bound format to 1). Default false:
   * refused with HSM_PIN_DOWNGRADE (payShield 23), as the PCI HSM PIN block settings do.
   */
  allowPinBlockDowngrade?: boolean;
  /** Unwrapped key blocks kept in the LRU key cache (keycache.ts); 0 disables it. Default 1024. */
  keyCacheEntries?: number;
}

export interface Diagnostics {
  /** 16 hex digits. */
  lmkCheckValue: string;
  firmwareVersion: string;
}

export interface GenerateKeyRequest {
  keyType: KeyType;
  algorithm: KeyAlgorithm;
  keyLengthBytes: number;
  /** Optional overrides of the key type's defaults (must be valid for the type). */
  usage?: KeyUsage;
  modeOfUse?: ModeOfUse;
  keyVersion?: string;
  exportability?: Exportability;
}

export interface FormKeyRequest {
  keyType: KeyType;
  algorithm: KeyAlgorithm;
  /** 2 or 3 clear components of the key's length. */
  components: readonly Uint8Array[];
}

export interface KeyUnderLmk {
  /** The key block under the LMK. */
  keyBlock: string;
  /** 6 hex digits. */
  checkValue: string;
}

/** Longest MAC input M6/M8 take, in bytes (fits one host frame with its fields). */
export const MAC_DATA_MAX_BYTES = 32000;
/**
 * Longest clear data M0 encrypts, in bytes (fits one host frame with its fields). M2 takes ciphertext of
 * at most this many bytes without padding, and this plus one block with ISO 9797-1 method 2 padding.
 */
export const DATA_MAX_BYTES = 32000;
export const DATA_PADDINGS: readonly DataPadding[] = ['iso9797-1-pad2', 'none'];
/** Terminal keys: 4-byte encrypt-zeros check values, as the UnionPay sign-in response (field 62) carries them. */
export const TERMINAL_KCV_BYTES = 4;
export const TERMINAL_KEY_TYPES: readonly TerminalKeyType[] = ['TMK', 'TPK', 'TAK', 'TDK'];
export const ZONE_KEY_TYPES: readonly ZoneKeyType[] = ['ZPK', 'ZAK', 'ZEK'];

function checkZoneKeyType(t: string): void {
  if (!(ZONE_KEY_TYPES as readonly string[]).includes(t)) {
    throw new HsmError('HSM_KEY_TYPE', 'keyType', `must be ${ZONE_KEY_TYPES.join(', ')}`);
  }
}

/** What each operation accepts of its keys (TR-31 usage and mode of use; X9.143 Tables 6 and 8). */
const PIN_DECRYPT: KeyExpectation = { usage: 'P0', modeOfUse: ['B', 'D'] };
const PIN_ENCRYPT: KeyExpectation = { usage: 'P0', modeOfUse: ['B', 'E'] };
const KEK_WRAP: KeyExpectation = { usage: 'K0', modeOfUse: ['B', 'E'] };
const KEK_UNWRAP: KeyExpectation = { usage: 'K0', modeOfUse: ['B', 'D'] };
const DATA_ENCRYPT: KeyExpectation = { usage: 'D0', modeOfUse: ['B', 'E'] };
const DATA_DECRYPT: KeyExpectation = { usage: 'D0', modeOfUse: ['B', 'D'] };
const PVK_IBM = (verify: boolean): KeyExpectation => ({
  usage: 'V1',
  modeOfUse: ['C', verify ? 'V' : 'G'],
  algorithm: 'T',
});
const PVK_VISA = (verify: boolean): KeyExpectation => ({
  usage: 'V2',
  modeOfUse: ['C', verify ? 'V' : 'G'],
  algorithm: 'T',
});
/**
 * The MAC key usage each algorithm needs: TR-31 M1 is ISO 9797-1 algorithm 1, M3 algorithm 3 (X9.19),
 * M6 CMAC. The UnionPay ECB MAC has no TR-31 usage; it runs under a double-length TDES M1 or M3 key (a
 * terminal's MAK).
 */
export const MAC_KEY_USAGES: Readonly<Record<HsmMacAlgorithm, readonly KeyUsage[]>> = {
  'iso9797-1-1': ['M1'],
  'iso9797-1-3': ['M3'],
  cmac: ['M6'],
  'cup-ecb': ['M1', 'M3'],
};
const AES_DUKPT_PIN_KEY_TYPE: Readonly<Record<number, DukptAesKeyType>> = {
  16: 'AES128',
  24: 'AES192',
  32: 'AES256',
};

/** Security strength in bits (NIST SP 800-57 Part 1 Table 2): a KEK may wrap only keys no stronger than itself. */
function strengthOf(algorithm: KeyAlgorithm, length: number): number {
  if (algorithm === 'A') return length * 8;
  return length === 24 ? 112 : 80;
}

/** Check value of a clear key as the replies give it: TDES encrypt-zeros (X9.24-1), AES CMAC (X9.24-3). */
export function checkValueOf(algorithm: KeyAlgorithm, key: Uint8Array): string {
  return toHex(algorithm === 'T' ? kcvTdes(key, KCV_BYTES) : kcvAes(key, KCV_BYTES));
}

function checkDataPadding(p: unknown): DataPadding {
  if (p === undefined) return 'iso9797-1-pad2';
  if (!(DATA_PADDINGS as readonly unknown[]).includes(p)) {
    throw new HsmError('HSM_REQUEST_INVALID', 'padding', `must be ${DATA_PADDINGS.join(' or ')}`);
  }
  return p as DataPadding;
}

function checkIv(iv: Uint8Array, key: CachedKey): void {
  if (iv.length !== key.blockBytes) {
    throw new HsmError(
      'HSM_REQUEST_INVALID',
      'iv',
      `must be one ${KEY_ALGORITHMS[key.attrs.algorithm]} block (${key.blockBytes} bytes), got ${iv.length}`,
    );
  }
}

/**
 * The length of `clear` without its ISO/IEC 9797-1 method 2 padding (0x80 then 0 to block-1 zero bytes,
 * all in the last block), or -1 when the last block does not end so.
 */
function unpaddedLength(clear: Uint8Array, block: number): number {
  for (let i = clear.length - 1; i >= clear.length - block; i--) {
    if (clear[i] === 0x80) return i;
    if (clear[i] !== 0) return -1;
  }
  return -1;
}

function checkAlgorithm(a: string, field = 'algorithm'): asserts a is KeyAlgorithm {
  if (!Object.hasOwn(KEY_ALGORITHMS, a)) {
    throw new HsmError('HSM_KEY_ALGORITHM', field, 'must be T (TDES) or A (AES)');
  }
}

function checkLength(algorithm: KeyAlgorithm, n: number, field: string): void {
  if (!KEY_LENGTHS_BYTES[algorithm].includes(n)) {
    throw new HsmError(
      'HSM_KEY_LENGTH',
      field,
      `${KEY_ALGORITHMS[algorithm]} key must be ${KEY_LENGTHS_BYTES[algorithm].join(' or ')} bytes, got ${n}`,
    );
  }
}

export class Hsm {
  readonly #lmk: Lmk;
  readonly #audit: AuditLog | undefined;
  readonly #auth: Authorization | undefined;
  readonly #sensitive: readonly string[];
  readonly #cache: KeyCache;
  readonly firmwareVersion: string;
  readonly allowPinBlockDowngrade: boolean;

  constructor(opts: HsmOptions) {
    this.#lmk = opts.lmk;
    this.#audit = opts.audit;
    this.#auth = opts.authorization;
    this.#sensitive = opts.sensitiveActivities ?? SENSITIVE_ACTIVITIES_DEFAULT;
    this.firmwareVersion = opts.firmwareVersion ?? FIRMWARE_VERSION;
    this.allowPinBlockDowngrade = opts.allowPinBlockDowngrade === true;
    this.#cache = new KeyCache(opts.keyCacheEntries ?? KEY_CACHE_ENTRIES_DEFAULT);
  }

  /** Key cache counters (for the benchmark and monitoring). */
  get keyCacheStats(): { entries: number; hits: number; misses: number; maxEntries: number } {
    const c = this.#cache;
    return { entries: c.size, hits: c.hits, misses: c.misses, maxEntries: c.maxEntries };
  }

  /** Wipes the key cache (the LMK is the caller's to destroy). */
  destroy(): void {
    this.#cache.clear();
  }

  /**
   * A key block's key, from the cache or unwrapped under the LMK (its MAC verified before it is cached),
   * checked against `expect` every time. Keys not cached (cache disabled) are wiped by `#run`.
   */
  #key(block: string, expect: KeyExpectation, field: string, temps: CachedKey[]): CachedKey {
    if (typeof block !== 'string') throw new TypeError(`${field} must be a key block string`);
    let e = this.#cache.get(block);
    if (e === undefined) {
      const { key, attrs } = this.#lmk.unwrapKey(block, null, field);
      e = new CachedKey(key, attrs);
      if (this.#cache.maxEntries > 0) this.#cache.set(block, e);
      else temps.push(e);
    }
    checkKeyExpectation(e.attrs, expect, field);
    return e;
  }

  #run<T>(fn: (key: (block: string, expect: KeyExpectation, field: string) => CachedKey) => T): T {
    const temps: CachedKey[] = [];
    try {
      return fn((b, x, f) => this.#key(b, x, f, temps));
    } finally {
      for (const t of temps) t.destroy();
    }
  }

  /** The LMK, for commands that wrap and unwrap keys (it never yields its bytes). */
  get lmk(): Lmk {
    return this.#lmk;
  }

  /** True when `activity` (`A0.ZMK`) needs the authorized state under this configuration. */
  isSensitive(activity: string): boolean {
    const cmd = activity.split('.')[0];
    return this.#sensitive.some((a) => a === activity || a === `${cmd}.*` || a === cmd);
  }

  #requireAuthorized(activity: string): void {
    if (!this.isSensitive(activity)) return;
    if (this.#auth === undefined) {
      throw new HsmError(
        'HSM_NOT_AUTHORIZED',
        activity,
        'needs the authorized state, and no custodians are configured',
      );
    }
    this.#auth.require(activity);
  }

  /** Runs a key-management operation and writes its audit line (success or the error code). */
  #audited<T extends { checkValue: string }>(command: string, keyType: string, who: string, run: () => T): T {
    // A malformed key type from a request is not echoed into the log (its field rules would refuse it).
    const base: AuditEvent = { who, command, ...(/^[A-Z0-9]{1,8}$/.test(keyType) ? { keyType } : {}) };
    let out: T;
    try {
      out = run();
    } catch (e) {
      if (this.#audit && e instanceof HsmError) this.#audit.append({ ...base, result: e.reply ?? '41' });
      throw e;
    }
    this.#audit?.append({ ...base, checkValue: out.checkValue, result: '00' });
    return out;
  }

  /**
   * Enters the authorized state (at the console, never from the host port) and records it in the audit
   * log with the custodians and activities. Failures (HSM_AUTH_CREDENTIALS, HSM_AUTH_QUORUM) are recorded too.
   */
  authorize(
    credentials: readonly CustodianCredential[],
    activities: readonly string[],
    durationMs: number,
  ): AuthState {
    if (this.#auth === undefined) {
      throw new HsmError('HSM_AUTH_CONFIG', 'authorization', 'no custodians are configured on this HSM');
    }
    try {
      const st = this.#auth.enter(credentials, activities, durationMs);
      this.#audit?.append({
        who: `custodians:${st.custodians.join('+')}`.slice(0, 64),
        command: 'AUTH_ENTER',
        activities: activities.join(','),
        result: '00',
      });
      return st;
    } catch (e) {
      if (e instanceof HsmError) this.#audit?.append({ who: 'console', command: 'AUTH_ENTER', result: '17' });
      throw e;
    }
  }

  /** Leaves the authorized state and records it. */
  deauthorize(who = 'console'): void {
    this.#auth?.exit();
    this.#audit?.append({ who, command: 'AUTH_EXIT', result: '00' });
  }

  /** NC: the LMK check value and the firmware version. */
  diagnostics(): Diagnostics {
    return { lmkCheckValue: this.#lmk.checkValue, firmwareVersion: this.firmwareVersion };
  }

  /** BU: the check value of the key in a block under the LMK (any usage). */
  keyCheckValue(keyBlock: string): string {
    const { key, attrs } = this.#lmk.unwrapKey(keyBlock, null);
    try {
      return checkValueOf(attrs.algorithm, key);
    } finally {
      wipe(key);
    }
  }

  /** The attributes a generated key of `req` gets, checked (HSM_KEY_TYPE, HSM_KEY_ALGORITHM, HSM_KEY_ATTRIBUTES...). */
  attributesFor(req: Omit<GenerateKeyRequest, 'keyLengthBytes'>): KeyAttributes {
    checkAlgorithm(req.algorithm);
    const usages = usagesFor(req.keyType, req.algorithm);
    const usage = req.usage ?? usages[0]!;
    if (!usages.includes(usage)) {
      throw new HsmError(
        'HSM_KEY_ATTRIBUTES',
        'usage',
        `key type ${req.keyType} with algorithm ${req.algorithm} takes usage ${usages.join(' or ')}`,
        'A6',
      );
    }
    const attrs: KeyAttributes = {
      usage,
      algorithm: req.algorithm,
      modeOfUse: req.modeOfUse ?? DEFAULT_MODE_BY_USAGE[usage],
      keyVersion: req.keyVersion ?? '00',
      exportability: req.exportability ?? defaultExportability(req.keyType),
    };
    checkKeyAttributes(attrs, undefined, 'request');
    return attrs;
  }

  /** A random key of `length` bytes; TDES keys get odd parity (FIPS 46-3: each DES key byte's low bit). */
  #randomKey(algorithm: KeyAlgorithm, length: number): Uint8Array {
    const key = new Uint8Array(randomBytes(length));
    if (algorithm !== 'T') return key;
    const k = adjustOddParity(key);
    wipe(key);
    return k;
  }

  /**
   * A0: generates a random key of `req.keyType` and returns it under the LMK with its check value; with
   * `exportUnder` (A0 mode 1) also as a TR-31 block under that ZMK or TMK.
   */
  generateKey(req: GenerateKeyOptions, who = 'api'): GeneratedKey {
    return this.#audited('A0', String(req.keyType), who, () =>
      this.#run((k) => {
        const attrs = this.attributesFor(req);
        checkLength(attrs.algorithm, req.keyLengthBytes, 'keyLength');
        this.#requireAuthorized(`A0.${req.keyType}`);
        const kek = req.exportUnder === undefined ? undefined : k(req.exportUnder, KEK_WRAP, 'exportUnder');
        const key = this.#randomKey(attrs.algorithm, req.keyLengthBytes);
        try {
          const out: GeneratedKey = {
            keyBlock: this.#lmk.wrapKey(key, attrs),
            checkValue: checkValueOf(attrs.algorithm, key),
          };
          if (kek !== undefined) out.exported = this.#wrapTr31(kek, key, attrs, 'keyBlock');
          return out;
        } finally {
          wipe(key);
        }
      }),
    );
  }

  /**
   * Forms a ZMK or TMK from 2 or 3 clear components (XOR, as payShield's FK/A4 and X9.24-1 §7.2 key
   * components), in the authorized state. TDES components must have odd parity; the formed key is
   * given odd parity (the XOR of an even number of odd-parity bytes is even).
   */
  formKeyFromComponents(req: FormKeyRequest, who = 'api'): KeyUnderLmk {
    return this.#audited('A4', String(req.keyType), who, () => {
      checkAlgorithm(req.algorithm);
      if (!COMPONENT_KEY_TYPES.includes(req.keyType)) {
        throw new HsmError(
          'HSM_KEY_TYPE',
          'keyType',
          `only ${COMPONENT_KEY_TYPES.join(' or ')} are formed from components`,
        );
      }
      const attrs = this.attributesFor({ keyType: req.keyType, algorithm: req.algorithm });
      const comps = req.components;
      if (!Array.isArray(comps) || comps.length < 2 || comps.length > 3) {
        throw new HsmError('HSM_COMPONENTS_INVALID', 'components', 'need 2 or 3 components', '15');
      }
      comps.forEach((c, i) => {
        if (!(c instanceof Uint8Array)) throw new TypeError(`components[${i}] must be a Uint8Array`);
        checkLength(req.algorithm, c.length, `components[${i}]`);
        if (c.length !== comps[0]!.length) {
          throw new HsmError(
            'HSM_COMPONENTS_INVALID',
            `components[${i}]`,
            'differs in length from components[0]',
            '15',
          );
        }
        if (req.algorithm === 'T' && !hasOddParity(c)) {
          throw new HsmError('HSM_COMPONENT_PARITY', `components[${i}]`, 'does not have odd parity');
        }
      });
      this.#requireAuthorized(`A4.${req.keyType}`);
      let key: Uint8Array = comps[0]!.slice();
      for (const c of comps.slice(1)) {
        const next = xor(key, c);
        wipe(key);
        key = next;
      }
      if (req.algorithm === 'T') {
        const k = adjustOddParity(key);
        wipe(key);
        key = k;
      }
      try {
        if (key.every((b) => (req.algorithm === 'T' ? (b & 0xfe) === 0 : b === 0))) {
          throw new HsmError('HSM_COMPONENTS_INVALID', 'components', 'combine to a key of all zeros');
        }
        return { keyBlock: this.#lmk.wrapKey(key, attrs), checkValue: checkValueOf(attrs.algorithm, key) };
      } finally {
        wipe(key);
      }
    });
  }

  // --- TR-31 key exchange (A6, A8, GC, FA, FI) ---

  /**
   * Wraps `key` as a TR-31 block under `kek` (crypto's `wrapKeyBlock`): version B under a TDES KEK
   * (TR-31:2010 key derivation binding), D under an AES KEK (TR-31:2018 / X9.143). The header carries the
   * key's own attributes. Refused: a key not exportable (HSM_KEY_NOT_EXPORTABLE), an AES key under a TDES
   * KEK or a key stronger than the KEK (HSM_WRAPPING_KEY; X9.24-1 requires a KEK at least as strong).
   */
  #wrapTr31(kek: CachedKey, key: Uint8Array, attrs: KeyAttributes, field: string): string {
    if (attrs.exportability !== 'E') {
      throw new HsmError(
        'HSM_KEY_NOT_EXPORTABLE',
        field,
        attrs.exportability === 'N'
          ? 'exportability N: the key may not leave the HSM'
          : 'exportability S: the key may not be exported as a TR-31 block',
      );
    }
    if (kek.attrs.algorithm === 'T' && attrs.algorithm === 'A') {
      throw new HsmError('HSM_WRAPPING_KEY', 'kek', 'a TDES key-encrypting key cannot wrap an AES key');
    }
    if (strengthOf(kek.attrs.algorithm, kek.key.length) < strengthOf(attrs.algorithm, key.length)) {
      throw new HsmError('HSM_WRAPPING_KEY', 'kek', 'the key-encrypting key is weaker than the key to wrap');
    }
    const version = kek.attrs.algorithm === 'T' ? 'B' : 'D';
    const header = `${version}0000${attrs.usage}${attrs.algorithm}${attrs.modeOfUse}${attrs.keyVersion}${attrs.exportability}0000`;
    return mapCrypto(() => wrapKeyBlock(kek.key, header, key), 'tr31');
  }

  /**
   * Opens a TR-31 block under `kek` (crypto's `unwrapKeyBlock`: MAC verified before the key is read) and
   * checks its header as the HSM's own blocks are checked. The caller wipes the key.
   */
  #openTr31(kek: CachedKey, tr31: string): { key: Uint8Array; attrs: KeyAttributes } {
    if (typeof tr31 !== 'string') throw new TypeError('tr31 must be a string');
    const want = kek.attrs.algorithm === 'T' ? 'B' : 'D';
    if (tr31[0] !== want) {
      throw new HsmError(
        'HSM_WRAPPING_KEY',
        'tr31',
        `a ${kek.attrs.algorithm === 'T' ? 'TDES' : 'AES'} key-encrypting key opens TR-31 version ${want} blocks only`,
      );
    }
    const u = mapCrypto(() => unwrapKeyBlock(kek.key, tr31), 'tr31');
    const h = u.header;
    const attrs = {
      usage: h.keyUsage,
      algorithm: h.algorithm,
      modeOfUse: h.modeOfUse,
      keyVersion: h.keyVersionNumber,
      exportability: h.exportability,
    } as KeyAttributes;
    try {
      checkKeyAttributes(attrs, u.key.length, 'tr31.header');
      if (attrs.algorithm === 'T' && !hasOddParity(u.key)) {
        throw new HsmError('HSM_COMPONENT_PARITY', 'tr31', 'the TDES key inside does not have odd parity');
      }
    } catch (e) {
      wipe(u.key);
      throw e;
    }
    return { key: u.key, attrs };
  }

  #import(command: string, req: ImportKeyRequest, who: string): KeyUnderLmk {
    return this.#audited(command, String(req.keyType), who, () =>
      this.#run((k) => {
        const kek = k(req.kek, KEK_UNWRAP, 'kek');
        const { key, attrs } = this.#openTr31(kek, req.tr31);
        try {
          const usages = usagesFor(req.keyType, attrs.algorithm);
          if (!usages.includes(attrs.usage)) {
            throw new HsmError(
              'HSM_KEY_USAGE',
              'tr31',
              `key usage ${attrs.usage} is not one a ${req.keyType} takes (${usages.join(' or ')})`,
            );
          }
          return { keyBlock: this.#lmk.wrapKey(key, attrs), checkValue: checkValueOf(attrs.algorithm, key) };
        } finally {
          wipe(key);
        }
      }),
    );
  }

  /** A6: imports a key from a TR-31 block under a ZMK or TMK; its usage must be one `keyType` takes. */
  importKeyFromZmk(req: ImportKeyRequest, who = 'api'): KeyUnderLmk {
    return this.#import('A6', req, who);
  }

  /** FA: imports a zone key (ZPK, ZAK, ZEK) from a TR-31 block under a ZMK. */
  importZoneKey(zmk: string, keyType: ZoneKeyType, tr31: string, who = 'api'): KeyUnderLmk {
    checkZoneKeyType(keyType);
    return this.#import('FA', { kek: zmk, tr31, keyType }, who);
  }

  /**
   * A8 (any exportable key) / GC (zone keys: usages P0, M1, M3, M6, D0): exports a key under a ZMK or TMK
   * as TR-31. The audit line's key type is the key's TR-31 usage (a block does not name its key type).
   */
  exportKeyUnderKek(req: ExportKeyRequest, who = 'api', command = 'A8'): ExportedKey {
    const usage = typeof req.keyBlock === 'string' ? req.keyBlock.slice(6, 8) : '';
    return this.#audited(command, usage, who, () =>
      this.#run((k) => {
        const kek = k(req.kek, KEK_WRAP, 'kek');
        const { key, attrs } = this.#lmk.unwrapKey(req.keyBlock, null, 'keyBlock');
        try {
          if (command === 'GC' && !['P0', 'M1', 'M3', 'M6', 'D0'].includes(attrs.usage)) {
            throw new HsmError(
              'HSM_KEY_USAGE',
              'keyBlock',
              `key usage ${attrs.usage} is not a zone key's (expected P0, M1, M3, M6 or D0)`,
            );
          }
          return {
            tr31: this.#wrapTr31(kek, key, attrs, 'keyBlock'),
            checkValue: checkValueOf(attrs.algorithm, key),
          };
        } finally {
          wipe(key);
        }
      }),
    );
  }

  /**
   * FI (payShield FI for ZAK/ZEK, IA for ZPK): a new zone key of the ZMK's algorithm and length, under the
   * LMK and as TR-31 under the ZMK, with its check value.
   */
  generateZoneKey(zmk: string, keyType: ZoneKeyType, who = 'api'): ZoneKey {
    return this.#audited('FI', String(keyType), who, () =>
      this.#run((k) => {
        checkZoneKeyType(keyType);
        const kek = k(zmk, KEK_WRAP, 'zmk');
        const algorithm = kek.attrs.algorithm;
        const attrs = this.attributesFor({ keyType, algorithm });
        const key = this.#randomKey(algorithm, kek.key.length);
        try {
          return {
            keyBlock: this.#lmk.wrapKey(key, attrs),
            underZmk: this.#wrapTr31(kek, key, attrs, 'keyBlock'),
            checkValue: checkValueOf(algorithm, key),
          };
        } finally {
          wipe(key);
        }
      }),
    );
  }

  // --- Terminal keys (HC, sign-in) ---

  #terminalKey(command: string, tmk: string, keyType: TerminalKeyType, who: string): TerminalKey {
    return this.#audited(command, String(keyType), who, () =>
      this.#run((k) => {
        if (!TERMINAL_KEY_TYPES.includes(keyType)) {
          throw new HsmError('HSM_KEY_TYPE', 'keyType', `must be ${TERMINAL_KEY_TYPES.join(', ')}`);
        }
        // Field 62 carries TDES-ECB cryptograms: the TMK must be a TDES KEK that may encrypt.
        const kek = k(tmk, { ...KEK_WRAP, algorithm: 'T' }, 'tmk');
        const attrs = this.attributesFor({ keyType, algorithm: 'T' });
        const key = this.#randomKey('T', 16);
        try {
          return {
            keyBlock: this.#lmk.wrapKey(key, attrs),
            underTmk: toHex(kek.encryptEcb(key)),
            checkValue: toHex(kcvTdes(key, TERMINAL_KCV_BYTES)),
          };
        } finally {
          wipe(key);
        }
      }),
    );
  }

  /** HC: a new double-length TDES TMK, TPK, TAK or TDK under the current TMK (TDES-ECB) and the LMK. */
  generateTerminalKey(tmk: string, keyType: TerminalKeyType, who = 'api'): TerminalKey {
    return this.#terminalKey('HC', tmk, keyType, who);
  }

  /**
   * WK (ours): the UnionPay sign-in (0800/0810): a new PIK (TPK), MAK (TAK) and TDK, each TDES-ECB
   * encrypted under the terminal's TMK with its 4-byte encrypt-zeros check value (the field 62 content)
   * and under the LMK (the POSP's terminal table copy). One audit line per key.
   */
  generateTerminalWorkingKeys(tmk: string, who = 'api'): TerminalWorkingKeys {
    return {
      tpk: this.#terminalKey('WK', tmk, 'TPK', who),
      tak: this.#terminalKey('WK', tmk, 'TAK', who),
      tdk: this.#terminalKey('WK', tmk, 'TDK', who),
    };
  }

  // --- PIN translation (CA, CC, G0/CI) ---

  #checkTranslation(req: PinBlockIn & { formatOut: PinBlockFormatCode }): void {
    checkPinFormat(req.format, 'format');
    checkPinFormat(req.formatOut, 'formatOut');
    checkNoDowngrade(req.format, req.formatOut, this.allowPinBlockDowngrade);
  }

  #translate(
    src: string,
    srcField: string,
    dst: string,
    dstField: string,
    req: PinBlockIn & { formatOut: PinBlockFormatCode },
  ): Uint8Array {
    this.#checkTranslation(req);
    return this.#run((k) => {
      const from = k(src, PIN_DECRYPT, srcField);
      const to = k(dst, PIN_ENCRYPT, dstField);
      checkKeyForFormat(req.formatOut, to.attrs.algorithm, dstField);
      const pin = decryptPin(from, req.format, req.pinBlock, req.pan, srcField);
      return encryptPin(to, req.formatOut, pin, req.pan, dstField);
    });
  }

  /** CA: translates a PIN block from a TPK to a ZPK, optionally changing its ISO format. */
  translatePinTpkToZpk(req: TranslatePinTpkToZpkRequest): Uint8Array {
    return this.#translate(req.tpk, 'tpk', req.zpk, 'zpk', req);
  }

  /** CC: translates a PIN block from one ZPK to another, optionally changing its ISO format. */
  translatePinZpkToZpk(req: TranslatePinZpkToZpkRequest): Uint8Array {
    return this.#translate(req.zpkIn, 'zpkIn', req.zpkOut, 'zpkOut', req);
  }

  /**
   * G0 / CI: translates a PIN block encrypted under a DUKPT PIN key to a ZPK. TDES DUKPT (X9.24-1:2009):
   * the PIN variant of the transaction key of the KSN, formats 0, 1, 3. AES DUKPT (X9.24-3:2017 6.3): the
   * PIN working key of the KSN, AES of the BDK's length for format 4, 2-key TDES for formats 0, 1, 3.
   * KSN counters no device sends (0, too many one bits) are refused (HSM_KSN_INVALID).
   */
  translatePinDukptToZpk(req: TranslatePinDukptToZpkRequest): Uint8Array {
    if (req.scheme !== 'tdes' && req.scheme !== 'aes') {
      throw new HsmError('HSM_REQUEST_INVALID', 'scheme', 'must be tdes or aes');
    }
    this.#checkTranslation(req);
    if (!(req.ksn instanceof Uint8Array)) throw new TypeError('ksn must be a Uint8Array');
    return this.#run((k) => {
      const bdk = k(
        req.bdk,
        { usage: 'B0', modeOfUse: 'X', algorithm: req.scheme === 'tdes' ? 'T' : 'A' },
        'bdk',
      );
      const zpk = k(req.zpk, PIN_ENCRYPT, 'zpk');
      checkKeyForFormat(req.formatOut, zpk.attrs.algorithm, 'zpk');
      checkPinBlockLength(req.format, req.pinBlock);
      let pin: string;
      if (req.scheme === 'tdes') {
        if (req.format === 4) {
          throw new HsmError('HSM_PIN_FORMAT', 'format', 'TDES DUKPT PIN blocks are ISO format 0, 1 or 3');
        }
        mapCrypto(() => assertCounterUsableTdes(req.ksn));
        const clear = mapCrypto(() => decryptPinBlockTdes(bdk.key, req.ksn, req.pinBlock));
        try {
          pin = mapCrypto(() => decodePinBlock(req.format, clear, req.pan));
        } finally {
          wipe(clear);
        }
      } else {
        mapCrypto(() => assertCounterUsableAes(req.ksn));
        const type = req.format === 4 ? AES_DUKPT_PIN_KEY_TYPE[bdk.key.length]! : 'TDES2';
        const wk = mapCrypto(() => deriveWorkingKeyAes(bdk.key, req.ksn, 'pin', type));
        try {
          pin = mapCrypto(() => decryptPinBlock(req.format, wk, req.pinBlock, req.pan));
        } finally {
          wipe(wk);
        }
      }
      return encryptPin(zpk, req.formatOut, pin, req.pan, 'zpk');
    });
  }

  // --- PIN verification (DA/EA, DC/EC) and generation (BK, FW) ---

  #pinOf(k: (b: string, x: KeyExpectation, f: string) => CachedKey, req: PinBlockIn & { pinKey: string }) {
    checkPinFormat(req.format, 'format');
    const pk = k(req.pinKey, PIN_DECRYPT, 'pinKey');
    return () => decryptPin(pk, req.format, req.pinBlock, req.pan, 'pinKey');
  }

  #ibmInputs(req: GenerateIbm3624OffsetRequest): Uint8Array {
    mapCrypto(() => assertDecimalisationTable(req.decimalisationTable));
    if (typeof req.validationData !== 'string' || !/^[0-9A-F]{16}$/.test(req.validationData)) {
      throw new HsmError('HSM_REQUEST_INVALID', 'validationData', 'must be 16 upper-case hex digits');
    }
    return new Uint8Array(Buffer.from(req.validationData, 'hex'));
  }

  /** DA (TPK) / EA (ZPK): IBM 3624 offset verification; `{ ok: false }` when the PIN is not the card's. */
  verifyPinIbm3624(req: VerifyPinIbm3624Request): PinVerification {
    return this.#run((k) => {
      const pin = this.#pinOf(k, req);
      const pvk = k(req.pvk, PVK_IBM(true), 'pvk');
      const vd = this.#ibmInputs(req);
      if (typeof req.offset !== 'string' || !/^[0-9]{4,12}$/.test(req.offset)) {
        throw new HsmError('HSM_REQUEST_INVALID', 'offset', 'must be 4 to 12 decimal digits');
      }
      const p = pin();
      return {
        ok: mapCrypto(() => cryptoVerifyPinIbm3624(pvk.key, req.decimalisationTable, vd, p, req.offset)),
      };
    });
  }

  /** BK: the IBM 3624 offset of a customer-selected PIN (PIN block under a TPK or ZPK). */
  generateIbm3624Offset(req: GenerateIbm3624OffsetRequest): { offset: string } {
    return this.#run((k) => {
      const pin = this.#pinOf(k, req);
      const pvk = k(req.pvk, PVK_IBM(false), 'pvk');
      const vd = this.#ibmInputs(req);
      const p = pin();
      return { offset: mapCrypto(() => generateOffsetIbm3624(pvk.key, req.decimalisationTable, vd, p)) };
    });
  }

  #pvvInputs(req: GeneratePvvRequest): void {
    if (typeof req.pvki !== 'string' || !/^[0-9]$/.test(req.pvki)) {
      throw new HsmError('HSM_REQUEST_INVALID', 'pvki', 'must be 1 decimal digit');
    }
  }

  /** DC (TPK) / EC (ZPK): Visa PVV verification; `{ ok: false }` when the PIN is not the card's. */
  verifyPinPvv(req: VerifyPinPvvRequest): PinVerification {
    return this.#run((k) => {
      const pin = this.#pinOf(k, req);
      const pvk = k(req.pvk, PVK_VISA(true), 'pvk');
      this.#pvvInputs(req);
      if (typeof req.pvv !== 'string' || !/^[0-9]{4}$/.test(req.pvv)) {
        throw new HsmError('HSM_REQUEST_INVALID', 'pvv', 'must be 4 decimal digits');
      }
      const p = pin();
      return { ok: mapCrypto(() => verifyPvvVisa(pvk.key, req.pvki, p, req.pan as string, req.pvv)) };
    });
  }

  /** FW: the Visa PVV of a customer-selected PIN (PIN block under a TPK or ZPK). */
  generatePvv(req: GeneratePvvRequest): { pvv: string } {
    return this.#run((k) => {
      const pin = this.#pinOf(k, req);
      const pvk = k(req.pvk, PVK_VISA(false), 'pvk');
      this.#pvvInputs(req);
      const p = pin();
      return { pvv: mapCrypto(() => generatePvvVisa(pvk.key, req.pvki, p, req.pan as string)) };
    });
  }

  // --- MAC (M6, M8) ---

  #mac<T>(req: MacRequest, verifying: boolean, fn: (key: CachedKey, opts: MacOptions) => T): T {
    const usages = MAC_KEY_USAGES[req.algorithm];
    if (!Object.hasOwn(MAC_KEY_USAGES, req.algorithm) || usages === undefined) {
      throw new HsmError(
        'HSM_REQUEST_INVALID',
        'algorithm',
        `must be one of ${Object.keys(MAC_KEY_USAGES).join(', ')}`,
      );
    }
    if (!(req.data instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array');
    if (req.data.length > MAC_DATA_MAX_BYTES) {
      throw new HsmError('HSM_DATA_LENGTH', 'data', `must be at most ${MAC_DATA_MAX_BYTES} bytes`);
    }
    return this.#run((k) => {
      const key = k(req.key, { usage: usages, modeOfUse: ['C', verifying ? 'V' : 'G'] }, 'key');
      const max = req.algorithm === 'cmac' && key.attrs.algorithm === 'A' ? 16 : 8;
      if (req.length !== undefined && (!Number.isInteger(req.length) || req.length < 4 || req.length > max)) {
        throw new HsmError('HSM_DATA_LENGTH', 'length', `MAC length must be 4 to ${max} bytes`);
      }
      if (req.padding !== undefined && ![1, 2, 3].includes(req.padding)) {
        throw new HsmError('HSM_REQUEST_INVALID', 'padding', 'ISO 9797-1 padding method must be 1, 2 or 3');
      }
      const opts: MacOptions = {};
      if (req.padding !== undefined) opts.padding = req.padding;
      if (req.length !== undefined) opts.length = req.length;
      if (req.algorithm === 'cmac') opts.cipher = key.attrs.algorithm === 'T' ? 'tdes' : 'aes';
      return mapCrypto(() => fn(key, opts));
    });
  }

  /** M6: a MAC under a TAK or ZAK whose usage fits the algorithm (MAC_KEY_USAGES), mode C or G. */
  generateMac(req: MacRequest): Uint8Array {
    return this.#mac(
      req,
      false,
      (k, o) => k.macTdes(req.algorithm, req.data, o) ?? cryptoGenerateMac(req.algorithm, k.key, req.data, o),
    );
  }

  /** M8: true when `req.mac` is the MAC of the data (constant-time compare); mode C or V. */
  verifyMac(req: VerifyMacRequest): boolean {
    if (!(req.mac instanceof Uint8Array)) throw new TypeError('mac must be a Uint8Array');
    return this.#mac(req, true, (k, o) => {
      const expected = k.macTdes(req.algorithm, req.data, o);
      if (expected === undefined) return cryptoVerifyMac(req.algorithm, k.key, req.data, req.mac, o);
      // Constant time over the expected length; a MAC of another length is simply wrong.
      const ok = expected.length === req.mac.length && timingSafeEqual(expected, req.mac);
      wipe(expected);
      return ok;
    });
  }

  // --- Data encryption (M0, M2) ---

  /**
   * M0 (payShield Encrypt Data Block, CBC): encrypts `req.data` under a data key (usage D0: DEK, TDK,
   * ZEK; mode B or E; TDES or AES) in CBC mode from `req.iv`, or from a random IV the HSM generates
   * (node:crypto CSPRNG), which it returns with the ciphertext. ISO/IEC 9797-1 padding method 2 unless
   * `padding` is 'none' (then whole blocks only). Per-transaction: not audited; the key comes from the
   * key cache. CBC gives confidentiality only, no integrity.
   */
  encryptData(req: EncryptDataRequest): EncryptedData {
    if (!(req.data instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array');
    if (req.iv !== undefined && !(req.iv instanceof Uint8Array)) {
      throw new TypeError('iv must be a Uint8Array');
    }
    const padding = checkDataPadding(req.padding);
    const n = req.data.length;
    if (n < 1 || n > DATA_MAX_BYTES) {
      throw new HsmError('HSM_DATA_LENGTH', 'data', `must be 1 to ${DATA_MAX_BYTES} bytes, got ${n}`);
    }
    return this.#run((k) => {
      const key = k(req.key, DATA_ENCRYPT, 'key');
      const b = key.blockBytes;
      if (padding === 'none' && n % b !== 0) {
        throw new HsmError(
          'HSM_DATA_LENGTH',
          'data',
          `without padding must be whole ${b}-byte blocks, got ${n} bytes`,
        );
      }
      let iv: Uint8Array;
      if (req.iv === undefined) iv = new Uint8Array(randomBytes(b));
      else {
        checkIv(req.iv, key);
        iv = req.iv.slice();
      }
      const clear = padding === 'none' ? req.data : padIso9797Method2(req.data, b);
      try {
        return { iv, ciphertext: key.encryptCbc(clear, iv) };
      } finally {
        if (clear !== req.data) wipe(clear);
      }
    });
  }

  /**
   * M2 (payShield Decrypt Data Block, CBC): decrypts `req.ciphertext` under a data key (usage D0, mode B
   * or D) from `req.iv`; with method 2 padding (the default) the padding is checked and removed:
   * HSM_DATA_PADDING (77) when the last block does not end in 0x80 and zeros, which is what decrypting
   * under the wrong key, IV or padding setting almost always (not always: about 1 in 256) gives.
   */
  decryptData(req: DecryptDataRequest): Uint8Array {
    if (!(req.ciphertext instanceof Uint8Array)) throw new TypeError('ciphertext must be a Uint8Array');
    if (!(req.iv instanceof Uint8Array)) throw new TypeError('iv must be a Uint8Array');
    const padding = checkDataPadding(req.padding);
    return this.#run((k) => {
      const key = k(req.key, DATA_DECRYPT, 'key');
      const b = key.blockBytes;
      const n = req.ciphertext.length;
      const max = padding === 'none' ? DATA_MAX_BYTES : DATA_MAX_BYTES - (DATA_MAX_BYTES % b) + b;
      if (n < b || n > max || n % b !== 0) {
        throw new HsmError(
          'HSM_DATA_LENGTH',
          'ciphertext',
          `must be whole ${b}-byte blocks, ${b} to ${max} bytes, got ${n}`,
        );
      }
      checkIv(req.iv, key);
      const clear = key.decryptCbc(req.ciphertext, req.iv);
      if (padding === 'none') return clear;
      const len = unpaddedLength(clear, b);
      if (len < 0) {
        wipe(clear);
        throw new HsmError(
          'HSM_DATA_PADDING',
          'ciphertext',
          'the decrypted data does not end in ISO 9797-1 method 2 padding (wrong key, IV or data)',
        );
      }
      const out = clear.slice(0, len);
      wipe(clear);
      return out;
    });
  }

  // --- DUKPT initial key (IK) ---

  /**
   * IK (ours; payShield's A0 derive mode): the initial key a reader is loaded with: TDES DUKPT IPEK
   * (X9.24-1:2009 A.6) or AES DUKPT initial key (X9.24-3:2017 6.3.3), TR-31 usage B1, under the LMK and,
   * with `exportUnder`, as TR-31 under that KEK (for a key loading device or remote key loading).
   */
  deriveDukptInitialKey(req: DeriveDukptInitialKeyRequest, who = 'api'): DukptInitialKey {
    return this.#audited('IK', 'IPEK', who, () =>
      this.#run((k) => {
        if (req.scheme !== 'tdes' && req.scheme !== 'aes') {
          throw new HsmError('HSM_REQUEST_INVALID', 'scheme', 'must be tdes or aes');
        }
        if (!(req.ksn instanceof Uint8Array)) throw new TypeError('ksn must be a Uint8Array');
        const algorithm: KeyAlgorithm = req.scheme === 'tdes' ? 'T' : 'A';
        const bdk = k(req.bdk, { usage: 'B0', modeOfUse: 'X', algorithm }, 'bdk');
        const kek = req.exportUnder === undefined ? undefined : k(req.exportUnder, KEK_WRAP, 'exportUnder');
        const ik = mapCrypto(() =>
          req.scheme === 'tdes' ? deriveIpekTdes(bdk.key, req.ksn) : deriveInitialKeyAes(bdk.key, req.ksn),
        );
        const attrs: KeyAttributes = {
          usage: 'B1',
          algorithm,
          modeOfUse: 'X',
          keyVersion: '00',
          exportability: 'E',
        };
        try {
          const out: DukptInitialKey = {
            keyBlock: this.#lmk.wrapKey(ik, attrs),
            checkValue: checkValueOf(algorithm, ik),
          };
          if (kek !== undefined) out.exported = this.#wrapTr31(kek, ik, attrs, 'initialKey');
          return out;
        } finally {
          wipe(ik);
        }
      }),
    );
  }
}
