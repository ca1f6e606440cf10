/**
 * The HSM as an in-process API: the same operations the host commands give over TCP (commands.ts maps
 * each host command onto one method here), with typed inputs and outputs.
 *
 * Every operation that creates or forms a key writes one audit line (who, command, key type, check
 * value, result) before it returns, when an audit log is attached; if the line cannot be written the
 * key is not returned. Sensitive activities (by default generating a ZMK and forming a ZMK or TMK from
 * clear components) need the authorized state (auth.ts).
 */
import { randomBytes } from 'node:crypto';
import { adjustOddParity, hasOddParity, kcvAes, kcvTdes, toHex, wipe, xor } from '@openposp/crypto';
import type { AuditEvent, AuditLog } from './audit.js';
import type { AuthState, Authorization, CustodianCredential } from './auth.js';
import { HsmError } from './errors.js';
import {
  checkKeyAttributes,
  type Exportability,
  type KeyAlgorithm,
  type KeyAttributes,
  KEY_ALGORITHMS,
  KEY_LENGTHS_BYTES,
  type KeyUsage,
  type ModeOfUse,
} from './keystore.js';
import { DEFAULT_MODE_BY_USAGE, type KeyType, usagesFor } from './keytypes.js';
import type { Lmk } from './lmk.js';

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

/** Check value of a clear key as the replies give it: TDES encrypt-zeros (X9.24-1), AES CMAC (X9.24-3). */
export function checkValueOf(algorithm: KeyAlgorithm, key: Uint8Array): string {
  return toHex(algorithm === 'T' ? kcvTdes(key, KCV_BYTES) : kcvAes(key, KCV_BYTES));
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
  readonly firmwareVersion: string;

  constructor(opts: HsmOptions) {
    this.#lmk = opts.lmk;
    this.#audit = opts.audit;
    this.#auth = opts.authorization;
    this.#sensitive = opts.sensitiveActivities ?? SENSITIVE_ACTIVITIES_DEFAULT;
    this.firmwareVersion = opts.firmwareVersion ?? FIRMWARE_VERSION;
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
  #audited(command: string, keyType: string, who: string, run: () => KeyUnderLmk): KeyUnderLmk {
    // A malformed key type from a request is not echoed into the log (its field rules would refuse it).
    const base: AuditEvent = { who, command, ...(/^[A-Z0-9]{1,8}$/.test(keyType) ? { keyType } : {}) };
    let out: KeyUnderLmk;
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
      exportability: req.exportability ?? 'E',
    };
    checkKeyAttributes(attrs, undefined, 'request');
    return attrs;
  }

  /** A0: generates a random key of `req.keyType` and returns it under the LMK with its check value. */
  generateKey(req: GenerateKeyRequest, who = 'api'): KeyUnderLmk {
    return this.#audited('A0', String(req.keyType), who, () => {
      const attrs = this.attributesFor(req);
      checkLength(attrs.algorithm, req.keyLengthBytes, 'keyLength');
      this.#requireAuthorized(`A0.${req.keyType}`);
      let key: Uint8Array = new Uint8Array(randomBytes(req.keyLengthBytes));
      if (attrs.algorithm === 'T') {
        // FIPS 46-3: each DES key byte carries odd parity in its low bit.
        const k = adjustOddParity(key);
        wipe(key);
        key = k;
      }
      try {
        return { keyBlock: this.#lmk.wrapKey(key, attrs), checkValue: checkValueOf(attrs.algorithm, key) };
      } finally {
        wipe(key);
      }
    });
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
}
