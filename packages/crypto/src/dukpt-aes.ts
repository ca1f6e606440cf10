/**
 * AES DUKPT, ANSI X9.24-3-2017.
 *
 * A 96-bit KSN = initial key ID (BDK ID 4 bytes + derivation ID 4 bytes) + a 32-bit transaction
 * counter with at most 16 one bits (6.1). Every key is derived from its parent with one or two
 * AES-ECB encryptions of a 16-byte derivation data block (6.3): version, key block counter, key
 * usage indicator, algorithm indicator, length in bits, and 8 bytes of KSN data.
 *
 * Host side: the initial key (IK) from the BDK, the transaction ("derivation") key for any counter,
 * the working keys (AES-128/192/256, 2- and 3-key TDES) of every usage, and the DUKPT update key.
 * Device side: `DukptAesDevice`, the 32 intermediate derivation key registers and their update.
 */
import { encrypt } from './cipher.js';
import { concat, wipe } from './bytes.js';
import { CryptoError } from './errors.js';

// ---------------------------------------------------------------------------------------------
// Constants of X9.24-3-2017 6.3.2 (Tables 2 and 3)
// ---------------------------------------------------------------------------------------------

/** 6.1: KSN = 8-byte initial key ID + 4-byte transaction counter. */
export const DUKPT_AES_KSN_LENGTH = 12;
/** 6.1: a device never uses a counter with more than 16 one bits. */
export const DUKPT_AES_MAX_ONE_BITS = 16;
/** The last counter a device uses: sixteen one bits in the leftmost positions. */
export const DUKPT_AES_LAST_COUNTER = 0xffff0000;

const DERIVATION_DATA_VERSION = 0x01;
const USAGE_KEY_DERIVATION = 0x8000;
const USAGE_INITIAL_KEY = 0x8001;

/** Working-key usages (6.3.2 Table 2 key usage indicators). */
export type DukptAesUsage =
  | 'kek'
  | 'pin'
  | 'mac-generation'
  | 'mac-verification'
  | 'mac-both'
  | 'data-encrypt'
  | 'data-decrypt'
  | 'data-both';

const USAGE_INDICATOR: Record<DukptAesUsage, number> = {
  kek: 0x0002, // key encryption key
  pin: 0x1000, // PIN encryption
  'mac-generation': 0x2000,
  'mac-verification': 0x2001,
  'mac-both': 0x2002,
  'data-encrypt': 0x3000,
  'data-decrypt': 0x3001,
  'data-both': 0x3002,
};
export const DUKPT_AES_USAGES = Object.keys(USAGE_INDICATOR) as readonly DukptAesUsage[];

/** Key types a working key can have (6.2.1), with the algorithm indicator and length of 6.3.2. */
export type DukptAesKeyType = 'TDES2' | 'TDES3' | 'AES128' | 'AES192' | 'AES256';

interface KeyTypeInfo {
  readonly algorithm: number;
  readonly bits: number;
  /** Security strength (NIST SP 800-57 Part 1 Table 2), for the rule of 6.1.3. */
  readonly strength: number;
  readonly label: string;
}

const KEY_TYPES: Record<DukptAesKeyType, KeyTypeInfo> = {
  TDES2: { algorithm: 0x0000, bits: 128, strength: 80, label: '2-key TDES' },
  TDES3: { algorithm: 0x0001, bits: 192, strength: 112, label: '3-key TDES' },
  AES128: { algorithm: 0x0002, bits: 128, strength: 128, label: 'AES-128' },
  AES192: { algorithm: 0x0003, bits: 192, strength: 192, label: 'AES-192' },
  AES256: { algorithm: 0x0004, bits: 256, strength: 256, label: 'AES-256' },
};
export const DUKPT_AES_KEY_TYPES = Object.keys(KEY_TYPES) as readonly DukptAesKeyType[];

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

export function assertKsnAes(ksn: Uint8Array, field = 'ksn'): void {
  if (!(ksn instanceof Uint8Array)) throw new TypeError(`${field} must be a Uint8Array`);
  if (ksn.length !== DUKPT_AES_KSN_LENGTH) {
    throw new CryptoError(
      'CRYPTO_KSN_INVALID',
      field,
      `must be 12 bytes (24 hex digits) for AES DUKPT, got ${ksn.length}`,
    );
  }
}

/** The 32-bit transaction counter of a KSN. */
export function counterOfKsnAes(ksn: Uint8Array): number {
  assertKsnAes(ksn);
  return ((ksn[8]! << 24) | (ksn[9]! << 16) | (ksn[10]! << 8) | ksn[11]!) >>> 0;
}

/** A copy of `ksn` with its counter replaced by `counter`. */
export function withCounterAes(ksn: Uint8Array, counter: number): Uint8Array {
  assertKsnAes(ksn);
  const out = ksn.slice();
  writeCounter(out, counter);
  return out;
}

function writeCounter(ksn: Uint8Array, counter: number): void {
  ksn[8] = (counter >>> 24) & 0xff;
  ksn[9] = (counter >>> 16) & 0xff;
  ksn[10] = (counter >>> 8) & 0xff;
  ksn[11] = counter & 0xff;
}

function popcount(x: number): number {
  let v = x >>> 0;
  let n = 0;
  while (v) {
    v = (v & (v - 1)) >>> 0;
    n++;
  }
  return n;
}

/**
 * Throws CRYPTO_KSN_INVALID unless the counter is one a device can send (6.1): not zero and at
 * most 16 one bits. Host derivation accepts any counter (the update key uses FFFFFFFF, 6.5.3).
 */
export function assertCounterUsableAes(ksn: Uint8Array, field = 'ksn'): void {
  const counter = counterOfKsnAes(ksn);
  if (counter === 0) throw new CryptoError('CRYPTO_KSN_INVALID', field, 'counter must not be 0');
  const ones = popcount(counter);
  if (ones > DUKPT_AES_MAX_ONE_BITS) {
    throw new CryptoError(
      'CRYPTO_KSN_INVALID',
      field,
      `counter has ${ones} one bits, at most ${DUKPT_AES_MAX_ONE_BITS} are allowed (X9.24-3 6.1)`,
    );
  }
}

/** 6.3.1: only AES keys derive; the BDK, IK and intermediate keys are AES-128, -192 or -256. */
function derivationKeyType(key: Uint8Array, field: string, what: string): DukptAesKeyType {
  if (!(key instanceof Uint8Array)) throw new TypeError(`${field} must be a Uint8Array`);
  switch (key.length) {
    case 16:
      return 'AES128';
    case 24:
      return 'AES192';
    case 32:
      return 'AES256';
    default:
      throw new CryptoError(
        'CRYPTO_KEY_LENGTH',
        field,
        `${what} must be 16, 24 or 32 bytes (AES-128, AES-192, AES-256) for AES DUKPT, got ${key.length}`,
      );
  }
}

function assertUsageAes(usage: string): asserts usage is DukptAesUsage {
  if (typeof usage !== 'string' || !Object.hasOwn(USAGE_INDICATOR, usage)) {
    throw new CryptoError(
      'CRYPTO_ALGORITHM',
      'usage',
      `unknown AES DUKPT key usage (expected ${DUKPT_AES_USAGES.join(', ')})`,
    );
  }
}

function assertKeyTypeAes(keyType: string): asserts keyType is DukptAesKeyType {
  if (typeof keyType !== 'string' || !Object.hasOwn(KEY_TYPES, keyType)) {
    throw new CryptoError(
      'CRYPTO_ALGORITHM',
      'keyType',
      `unknown AES DUKPT key type (expected ${DUKPT_AES_KEY_TYPES.join(', ')})`,
    );
  }
}

/** 6.1.3: a working key is of the same strength as the key it is derived from, or weaker. */
function assertNotStronger(keyType: DukptAesKeyType, from: DukptAesKeyType): void {
  const w = KEY_TYPES[keyType];
  const d = KEY_TYPES[from];
  if (w.strength > d.strength) {
    throw new CryptoError(
      'CRYPTO_PARAM',
      'keyType',
      `working key type ${w.label} is stronger than the ${d.label} derivation key (X9.24-3 6.1.3)`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Derivation (6.3)
// ---------------------------------------------------------------------------------------------

/**
 * 6.3.2 / 6.3.3: the derivation data block. For the initial key the 8 data bytes are the initial
 * key ID; otherwise the rightmost 4 bytes of the initial key ID (the derivation ID) and the counter.
 */
function derivationData(
  usage: number,
  keyType: DukptAesKeyType,
  ksn: Uint8Array,
  counter: number,
): Uint8Array {
  const info = KEY_TYPES[keyType];
  const d = new Uint8Array(16);
  d[0] = DERIVATION_DATA_VERSION;
  d[1] = 1; // key block counter, 1 for the first block
  d[2] = usage >>> 8;
  d[3] = usage & 0xff;
  d[4] = info.algorithm >>> 8;
  d[5] = info.algorithm & 0xff;
  d[6] = info.bits >>> 8;
  d[7] = info.bits & 0xff;
  if (usage === USAGE_INITIAL_KEY) {
    d.set(ksn.subarray(0, 8), 8);
  } else {
    d.set(ksn.subarray(4, 8), 8);
    d[12] = (counter >>> 24) & 0xff;
    d[13] = (counter >>> 16) & 0xff;
    d[14] = (counter >>> 8) & 0xff;
    d[15] = counter & 0xff;
  }
  return d;
}

/**
 * 6.3.1: derived key = leftmost L bits of AES-ECB(key, data with block counter 1) || AES-ECB(key,
 * data with block counter 2) ..., as many blocks as L needs.
 */
function deriveKey(key: Uint8Array, data: Uint8Array): Uint8Array {
  const bits = (data[6]! << 8) | data[7]!;
  const blocks = Math.ceil(bits / 128);
  const input = new Uint8Array(16 * blocks);
  for (let i = 0; i < blocks; i++) {
    input.set(data, 16 * i);
    input[16 * i + 1] = i + 1;
  }
  const out = encrypt('aes', 'ecb', key, input);
  const derived = out.slice(0, bits / 8);
  wipe(out, input);
  return derived;
}

/** 6.3.3 "Derive Initial Key": IK = derive(BDK, usage 8001, the BDK's own type, initial key ID). */
export function deriveInitialKeyAes(bdk: Uint8Array, ksn: Uint8Array): Uint8Array {
  const type = derivationKeyType(bdk, 'bdk', 'BDK');
  assertKsnAes(ksn);
  return deriveKey(bdk, derivationData(USAGE_INITIAL_KEY, type, ksn, 0));
}

/**
 * From the key of counter `from`, the key of counter `to` (whose one bits include those of `from`):
 * 6.1 / 6.4, for each further one bit from the left, set it in the working counter and derive the
 * next intermediate derivation key (usage 8000, same type as the parent).
 */
function walkCounter(key: Uint8Array, ksn: Uint8Array, from: number, to: number): Uint8Array {
  const type = derivationKeyType(key, 'key', 'derivation key');
  let k: Uint8Array = key.slice();
  let working = from >>> 0;
  for (let bit = 0x80000000; bit >= 1; bit /= 2) {
    if (!(to & bit) || from & bit) continue;
    working = (working | bit) >>> 0;
    const next = deriveKey(k, derivationData(USAGE_KEY_DERIVATION, type, ksn, working));
    wipe(k);
    k = next;
  }
  return k;
}

/**
 * The transaction ("derivation") key of the KSN's counter, from the initial key (6.1, 6.4). Any
 * 32-bit counter is accepted (use `assertCounterUsableAes` to refuse counters no device sends).
 */
export function deriveTransactionKeyAes(ik: Uint8Array, ksn: Uint8Array): Uint8Array {
  derivationKeyType(ik, 'ik', 'initial key');
  const counter = counterOfKsnAes(ksn);
  return walkCounter(ik, ksn, 0, counter);
}

/** BDK and KSN to the transaction key. */
export function deriveTransactionKeyFromBdkAes(bdk: Uint8Array, ksn: Uint8Array): Uint8Array {
  const ik = deriveInitialKeyAes(bdk, ksn);
  const key = deriveTransactionKeyAes(ik, ksn);
  wipe(ik);
  return key;
}

/**
 * 6.3.3 "Create Working Key": derive(transaction key, usage indicator, key type, derivation ID
 * and counter). The working key may not be stronger than the transaction key (6.1.3).
 */
export function deriveWorkingKeyFromTransactionKeyAes(
  txnKey: Uint8Array,
  ksn: Uint8Array,
  usage: DukptAesUsage,
  keyType: DukptAesKeyType,
): Uint8Array {
  const from = derivationKeyType(txnKey, 'transactionKey', 'transaction key');
  assertUsageAes(usage);
  assertKeyTypeAes(keyType);
  assertNotStronger(keyType, from);
  const counter = counterOfKsnAes(ksn);
  return deriveKey(txnKey, derivationData(USAGE_INDICATOR[usage], keyType, ksn, counter));
}

/** BDK + KSN to the working key of `usage` and `keyType` (host side). */
export function deriveWorkingKeyAes(
  bdk: Uint8Array,
  ksn: Uint8Array,
  usage: DukptAesUsage,
  keyType: DukptAesKeyType,
): Uint8Array {
  const from = derivationKeyType(bdk, 'bdk', 'BDK');
  assertUsageAes(usage);
  assertKeyTypeAes(keyType);
  assertNotStronger(keyType, from);
  const txn = deriveTransactionKeyFromBdkAes(bdk, ksn);
  const key = deriveWorkingKeyFromTransactionKeyAes(txn, ksn, usage, keyType);
  wipe(txn);
  return key;
}

/**
 * 6.5.3 "Calculate DUKPT Update Key": the key-encryption working key of the transaction counter
 * FFFFFFFF (6.5.2), derived from the initial key. The counter of `ksn` is ignored.
 */
export function deriveUpdateKeyAes(ik: Uint8Array, ksn: Uint8Array, keyType: DukptAesKeyType): Uint8Array {
  const from = derivationKeyType(ik, 'ik', 'initial key');
  assertKeyTypeAes(keyType);
  assertNotStronger(keyType, from);
  const full = withCounterAes(ksn, 0xffffffff);
  const txn = walkCounter(ik, full, 0, 0xffffffff);
  const key = deriveWorkingKeyFromTransactionKeyAes(txn, full, 'kek', keyType);
  wipe(txn);
  return key;
}

// ---------------------------------------------------------------------------------------------
// Device side (6.5, 6.6)
// ---------------------------------------------------------------------------------------------

/** The keys of one device transaction. */
export class DukptAesTransaction {
  readonly ksn: Uint8Array;
  readonly counter: number;
  readonly #key: Uint8Array;

  constructor(ksn: Uint8Array, counter: number, transactionKey: Uint8Array) {
    this.ksn = ksn;
    this.counter = counter;
    this.#key = transactionKey;
  }

  /** The working key of `usage` and `keyType` for this transaction (a new buffer: wipe it). */
  workingKey(usage: DukptAesUsage, keyType: DukptAesKeyType): Uint8Array {
    return deriveWorkingKeyFromTransactionKeyAes(this.#key, this.ksn, usage, keyType);
  }

  /** A copy of the transaction (derivation) key. */
  transactionKey(): Uint8Array {
    return this.#key.slice();
  }

  wipe(): void {
    wipe(this.#key);
  }

  toString(): string {
    return `DukptAesTransaction(counter ${this.counter})`;
  }

  toJSON(): { counter: number } {
    return { counter: this.counter };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

const STATE_VERSION_AES = 1;
const IDK_COUNT = 32;

/** Exported state length for an initial key of `keyLength` bytes (16, 24 or 32). */
export function dukptAesStateLength(keyLength: number): number {
  // version, key length, KSN register, flags, 32 registers of (valid byte + key)
  return 1 + 1 + DUKPT_AES_KSN_LENGTH + 1 + IDK_COUNT * (1 + keyLength);
}

/** Register index 0..31 of the single one bit `sr`: index 0 is the leftmost counter bit. */
function registerIndex(sr: number): number {
  return Math.clz32(sr);
}

/**
 * The originating device of X9.24-3-2017 (6.5 "Load Initial Key", 6.6 "Generate Transaction Key"
 * and "Update State for next Transaction"): the KSN register and 32 intermediate derivation key
 * registers, one per counter bit, each with a valid flag. The initial key is not kept.
 *
 * `exportState()` returns these registers as bytes for persistence: THEY ARE KEYS. The caller must
 * seal them (encrypt and authenticate under a device-bound key) and never restore an older copy,
 * which would reuse transaction keys.
 */
export class DukptAesDevice {
  readonly #ksn: Uint8Array;
  readonly #keyLength: number;
  /** 32 registers of (valid flag, key); register i is the counter bit 2^(31-i). */
  readonly #regs: Uint8Array;
  #exhausted: boolean;

  private constructor(ksn: Uint8Array, keyLength: number, regs: Uint8Array, exhausted: boolean) {
    this.#ksn = ksn;
    this.#keyLength = keyLength;
    this.#regs = regs;
    this.#exhausted = exhausted;
  }

  /**
   * 6.5 "Load Initial Key": the IK and the KSN (its counter is cleared), then the intermediate
   * derivation key of every single-bit counter from the IK ("Update Initial Key"); the IK is then
   * erased. The first transaction has counter 1.
   */
  static loadInitialKey(ik: Uint8Array, ksn: Uint8Array): DukptAesDevice {
    derivationKeyType(ik, 'ik', 'initial key');
    const ksnReg = withCounterAes(ksn, 0);
    const device = new DukptAesDevice(ksnReg, ik.length, new Uint8Array(IDK_COUNT * (1 + ik.length)), false);
    device.#fillRegisters(ik, 0, 0x80000000);
    writeCounter(device.#ksn, 1);
    return device;
  }

  /** Restores a device from `exportState()` bytes (see the class comment: they hold keys). */
  static importState(state: Uint8Array): DukptAesDevice {
    if (!(state instanceof Uint8Array)) throw new TypeError('state must be a Uint8Array');
    const keyLength = state.length > 1 ? state[1]! : 0;
    if (
      state.length < 2 ||
      ![16, 24, 32].includes(keyLength) ||
      state.length !== dukptAesStateLength(keyLength)
    ) {
      throw new CryptoError(
        'CRYPTO_DATA_LENGTH',
        'state',
        `must be ${dukptAesStateLength(16)}, ${dukptAesStateLength(24)} or ${dukptAesStateLength(32)} bytes with a matching key length, got ${state.length}`,
      );
    }
    if (state[0] !== STATE_VERSION_AES) {
      throw new CryptoError('CRYPTO_PARAM', 'state.version', `must be ${STATE_VERSION_AES}`);
    }
    const ksn = state.slice(2, 14);
    const flags = state[14]!;
    if (flags > 1) throw new CryptoError('CRYPTO_PARAM', 'state.flags', 'must be 0 or 1');
    const exhausted = flags === 1;
    if (!exhausted) assertCounterUsableAes(ksn, 'state.ksn');
    return new DukptAesDevice(ksn, keyLength, state.slice(15), exhausted);
  }

  exportState(): Uint8Array {
    return concat(
      new Uint8Array([STATE_VERSION_AES, this.#keyLength]),
      this.#ksn,
      new Uint8Array([this.#exhausted ? 1 : 0]),
      this.#regs,
    );
  }

  /** The KSN the next transaction will send (a copy). */
  get ksn(): Uint8Array {
    return this.#ksn.slice();
  }

  get counter(): number {
    return counterOfKsnAes(this.#ksn);
  }

  /** True once the last counter (FFFF0000) has been used. */
  get exhausted(): boolean {
    return this.#exhausted;
  }

  /**
   * 6.6 "Generate Transaction Key" then "Update State for next Transaction": the current key is
   * the register of the counter's rightmost one bit; with fewer than 16 one bits the registers to
   * its right are filled from it, then it is erased and the counter advances by one; with 16 it is
   * erased and the counter advances past every counter with more than 16 one bits.
   */
  nextTransaction(): DukptAesTransaction {
    for (;;) {
      if (this.#exhausted) {
        throw new CryptoError(
          'CRYPTO_DUKPT_EXHAUSTED',
          'device',
          'transaction counter is exhausted (X9.24-3 6.6): load a new initial key',
        );
      }
      const counter = this.counter;
      const sr = (counter & -counter) >>> 0;
      const off = registerIndex(sr) * (1 + this.#keyLength);
      const ksnOut = this.#ksn.slice();
      if (this.#regs[off] !== 1) {
        // An invalid register: skip every counter that descends from it.
        this.#erase(off);
        this.#advance(counter + sr);
        continue;
      }
      const key = this.#regs.slice(off + 1, off + 1 + this.#keyLength);
      if (popcount(counter) < DUKPT_AES_MAX_ONE_BITS) {
        this.#fillRegisters(key, counter, sr >>> 1);
        this.#erase(off);
        this.#advance(counter + 1);
      } else {
        this.#erase(off);
        this.#advance(counter + sr);
      }
      return new DukptAesTransaction(ksnOut, counter, key);
    }
  }

  wipe(): void {
    wipe(this.#regs);
    this.#exhausted = true;
  }

  toString(): string {
    return `DukptAesDevice(counter ${this.counter}${this.#exhausted ? ', exhausted' : ''})`;
  }

  toJSON(): { counter: number; exhausted: boolean } {
    return { counter: this.counter, exhausted: this.#exhausted };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }

  /** The intermediate derivation keys of counter | s for s = firstSr, firstSr/2, ... 1, from `key`. */
  #fillRegisters(key: Uint8Array, counter: number, firstSr: number): void {
    const type = derivationKeyType(key, 'key', 'derivation key');
    for (let sr = firstSr; sr >= 1; sr /= 2) {
      const k = deriveKey(key, derivationData(USAGE_KEY_DERIVATION, type, this.#ksn, (counter | sr) >>> 0));
      const o = registerIndex(sr) * (1 + this.#keyLength);
      this.#regs[o] = 1;
      this.#regs.set(k, o + 1);
      wipe(k);
    }
  }

  #erase(off: number): void {
    this.#regs.fill(0, off, off + 1 + this.#keyLength);
  }

  /** Past the 32-bit counter the device ceases operation. */
  #advance(next: number): void {
    if (next > 0xffffffff) {
      this.#exhausted = true;
      writeCounter(this.#ksn, 0);
      return;
    }
    writeCounter(this.#ksn, next);
  }
}
