/**
 * A software model of a POS PIN pad (密码键盘): write-only key slots that can be loaded and used,
 * never read back.
 *
 * What a real PIN pad does, and what this model does instead:
 * - A real PIN pad keeps its keys in battery-backed memory inside a tamper-responsive enclosure
 *   (PCI PTS POI): opening the case, drilling or cooling it erases the keys. This model keeps them in
 *   private fields of one object and seals them at rest with AES-256-GCM under a key derived with
 *   scrypt from a device secret given at start. Anyone holding the device secret and the file can
 *   open it: the secret stands in for the tamper-responsive hardware and must be kept like a key.
 * - Keys go in by a key-injection step (clear components under dual control, with check values, or
 *   a TR-31 key block under a key-encrypting key already in the pad) and by sign-in (working keys
 *   under the TMK, ANSI X9.24-1 key hierarchy). Keys come out never: no method returns key bytes;
 *   `toString`, `util.inspect` and `JSON.stringify` show slot numbers, usages and check values only.
 * - Each slot holds a key of one usage (TMK = key-encrypting, PIK = PIN, MAK = MAC, TDK = data) and
 *   the pad refuses any other use of it (ANSI X9.24-1 §7.2, key separation).
 * - PIN entry happens inside: the PIN goes in, the enciphered ISO 9564-1 format 0 PIN block comes out.
 *
 * Every method is synchronous except `open` (scrypt); a state change is written to disk (atomically:
 * temporary file, fsync, rename) before the method returns.
 */
import {
  createCipheriv,
  createDecipheriv,
  randomBytes,
  scrypt as scryptCallback,
  type ScryptOptions,
} from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { inspect } from 'node:util';
import {
  adjustOddParity,
  CryptoError,
  encryptPinBlock,
  equalBytes,
  hasOddParity,
  kcvTdes,
  macCupEcb,
  tdesDecryptEcb,
  tdesEncryptEcb,
  toHex,
  unwrapKeyBlock,
  verifyMac,
  wipe,
  xor,
} from '@openposp/crypto';
import { TerminalError } from './errors.js';

/** Number of key slots (issue 5: "at least 30 double-length key slots"). Slots are numbered 0..31. */
export const PINPAD_SLOT_COUNT = 32;
/** Every slot holds a double-length TDES key. */
export const PINPAD_KEY_BYTES = 16;
/** Check value length shown by the pad (the UnionPay sign-in check value: 4 bytes, encrypt-zeros). */
export const PINPAD_CHECK_VALUE_BYTES = 4;
/** Dual control: at least two key custodians, at most three components. */
export const PINPAD_COMPONENTS_MIN = 2;
export const PINPAD_COMPONENTS_MAX = 3;
/** Shortest device secret accepted, in bytes. */
export const PINPAD_DEVICE_SECRET_MIN_BYTES = 16;
/** scrypt cost (N) for new sealed states, and the lowest cost a sealed file may declare. */
export const PINPAD_SCRYPT_N_DEFAULT = 1 << 15;
export const PINPAD_SCRYPT_N_MIN = 1 << 14;
/** Largest sealed state file read (32 slots need well under 1 KiB). */
export const PINPAD_STATE_MAX_BYTES = 16 * 1024;

const SEALED_FORMAT = 'openposp-pinpad-sealed-v1';
const PLAIN_VERSION = 1;
const RECORD_KEY_BYTES = 32;
const SCRYPT_R = 8;
const SCRYPT_P = 1;

/**
 * What a slot's key may do: `kek` (TMK: decrypt other keys), `pin` (PIK/TPK: encrypt PIN blocks),
 * `mac` (MAK/TAK: CUP ECB MAC), `data` (TDK: encrypt track data).
 */
export type KeyUsage = 'kek' | 'pin' | 'mac' | 'data';
export const KEY_USAGES: readonly KeyUsage[] = ['kek', 'pin', 'mac', 'data'];
const USAGE_CODE: Readonly<Record<KeyUsage, number>> = { kek: 1, pin: 2, mac: 3, data: 4 };

/** TR-31 key usages (TR-31:2018 Table 6) the pad accepts, and the slot usage each becomes. */
const TR31_USAGES: Readonly<Record<string, KeyUsage>> = {
  K0: 'kek',
  K1: 'kek',
  P0: 'pin',
  M0: 'mac',
  M1: 'mac',
  M3: 'mac',
  D0: 'data',
};

/** The public face of a slot: never the key. */
export interface SlotInfo {
  slot: number;
  usage: KeyUsage;
  /** Encrypt-zeros check value, 4 bytes as 8 upper-case hex characters. */
  checkValueHex: string;
}

/** One working key to load under a key-encrypting key (sign-in, UnionPay 0810 field 62). */
export interface EncryptedKeyEntry {
  slot: number;
  usage: KeyUsage;
  /** The key TDES-ECB encrypted under the KEK: 16 bytes. */
  encryptedKey: Uint8Array;
  /** The first bytes (3 to 8) of the clear key encrypting eight zero bytes. */
  checkValue: Uint8Array;
}

export interface PinPadOptions {
  /** The sealed state file: read when it exists, created otherwise. */
  statePath: string;
  /** The device secret the sealing key is derived from (at least 16 bytes). Not kept after open. */
  deviceSecret: Uint8Array;
  /** scrypt cost N for a NEW state file (power of two, at least PINPAD_SCRYPT_N_MIN). */
  scryptN?: number;
}

interface Slot {
  usage: KeyUsage;
  key: Uint8Array;
  checkValueHex: string;
}

function scryptAsync(secret: Uint8Array, salt: Uint8Array, n: number): Promise<Buffer> {
  const opts: ScryptOptions = { N: n, r: SCRYPT_R, p: SCRYPT_P, maxmem: 256 * n * SCRYPT_R };
  return new Promise((resolve, reject) =>
    scryptCallback(secret, salt, 32, opts, (e, key) => (e ? reject(e) : resolve(key))),
  );
}

function checkValueOf(key: Uint8Array, length = PINPAD_CHECK_VALUE_BYTES): Uint8Array {
  return kcvTdes(key, length);
}

function checkSlotNumber(slot: unknown, field = 'slot'): number {
  if (typeof slot !== 'number' || !Number.isInteger(slot) || slot < 0 || slot >= PINPAD_SLOT_COUNT) {
    throw new TerminalError(
      'TERMINAL_PINPAD_SLOT',
      field,
      `must be an integer from 0 to ${PINPAD_SLOT_COUNT - 1}`,
    );
  }
  return slot;
}

function checkUsage(usage: unknown, field = 'usage'): KeyUsage {
  if (!(KEY_USAGES as readonly unknown[]).includes(usage)) {
    throw new TerminalError('TERMINAL_PINPAD_SLOT', field, `must be one of ${KEY_USAGES.join(', ')}`);
  }
  return usage as KeyUsage;
}

function checkBytes(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
}

/** Compares a given check value (3 to 8 bytes) with the key's, in constant time. */
function checkValueMatches(key: Uint8Array, given: Uint8Array): boolean {
  if (given.length < 3 || given.length > 8) return false;
  const cv = checkValueOf(key, given.length);
  const ok = equalBytes(cv, given);
  wipe(cv);
  return ok;
}

function sealedError(rule: string, cause?: unknown): TerminalError {
  return new TerminalError('TERMINAL_PINPAD_SEALED', 'pinpad.state', rule, cause ? { cause } : undefined);
}

/** Writes `data` to `path` through a temporary file, fsync and rename, so a crash leaves old or new. */
function writeFileAtomic(path: string, data: string): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export class PinPad {
  readonly #statePath: string;
  readonly #slots: (Slot | undefined)[] = new Array(PINPAD_SLOT_COUNT).fill(undefined);
  /** AES-256 key sealing the state file (from scrypt); never leaves the object. */
  readonly #sealKey: Uint8Array;
  readonly #salt: Uint8Array;
  readonly #scryptN: number;
  /** AES-256 key for `sealRecord`/`openRecord`, generated inside the pad, kept in the sealed state. */
  #recordKey: Uint8Array;
  #closed = false;

  private constructor(
    statePath: string,
    sealKey: Uint8Array,
    salt: Uint8Array,
    n: number,
    recordKey: Uint8Array,
  ) {
    this.#statePath = statePath;
    this.#sealKey = sealKey;
    this.#salt = salt;
    this.#scryptN = n;
    this.#recordKey = recordKey;
  }

  /**
   * Opens the PIN pad whose sealed state is at `statePath`, or creates an empty one there.
   * A wrong device secret or an altered file is TERMINAL_PINPAD_SEALED (AES-GCM tag check; the two
   * cannot be told apart, by design).
   */
  static async open(opts: PinPadOptions): Promise<PinPad> {
    if (typeof opts.statePath !== 'string' || opts.statePath === '')
      throw new TypeError('statePath must be a non-empty string');
    checkBytes(opts.deviceSecret, 'deviceSecret');
    if (opts.deviceSecret.length < PINPAD_DEVICE_SECRET_MIN_BYTES)
      throw new RangeError(`deviceSecret must be at least ${PINPAD_DEVICE_SECRET_MIN_BYTES} bytes`);
    if (!existsSync(opts.statePath)) {
      const n = opts.scryptN ?? PINPAD_SCRYPT_N_DEFAULT;
      if (!Number.isInteger(n) || n < PINPAD_SCRYPT_N_MIN || (n & (n - 1)) !== 0)
        throw new RangeError(`scryptN must be a power of two of at least ${PINPAD_SCRYPT_N_MIN}`);
      const salt = new Uint8Array(randomBytes(16));
      const sealKey = new Uint8Array(await scryptAsync(opts.deviceSecret, salt, n));
      const pad = new PinPad(opts.statePath, sealKey, salt, n, new Uint8Array(randomBytes(RECORD_KEY_BYTES)));
      pad.#persist();
      return pad;
    }
    return PinPad.#openExisting(opts.statePath, opts.deviceSecret);
  }

  static async #openExisting(statePath: string, deviceSecret: Uint8Array): Promise<PinPad> {
    const text = readFileSync(statePath);
    if (text.length > PINPAD_STATE_MAX_BYTES)
      throw sealedError(`file is above ${PINPAD_STATE_MAX_BYTES} bytes`);
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(text.toString('utf8')) as Record<string, unknown>;
    } catch {
      throw sealedError('file is not a sealed PIN pad state (not JSON)');
    }
    const kdf = doc.kdf as Record<string, unknown> | undefined;
    const hex = (v: unknown, bytes: number | undefined, what: string): Uint8Array => {
      if (
        typeof v !== 'string' ||
        !/^(?:[0-9A-F]{2})+$/.test(v) ||
        (bytes !== undefined && v.length !== 2 * bytes)
      )
        throw sealedError(`${what} is missing or malformed`);
      return new Uint8Array(Buffer.from(v, 'hex'));
    };
    if (doc.format !== SEALED_FORMAT || typeof kdf !== 'object' || kdf === null || kdf.name !== 'scrypt')
      throw sealedError(`file is not a ${SEALED_FORMAT} state`);
    const n = kdf.N;
    if (
      typeof n !== 'number' ||
      !Number.isInteger(n) ||
      n < PINPAD_SCRYPT_N_MIN ||
      n > 1 << 22 ||
      (n & (n - 1)) !== 0
    )
      throw sealedError(`kdf.N must be a power of two from ${PINPAD_SCRYPT_N_MIN} to ${1 << 22}`);
    if (kdf.r !== SCRYPT_R || kdf.p !== SCRYPT_P)
      throw sealedError(`kdf.r and kdf.p must be ${SCRYPT_R} and ${SCRYPT_P}`);
    const salt = hex(kdf.saltHex, 16, 'kdf.saltHex');
    const iv = hex(doc.ivHex, 12, 'ivHex');
    const tag = hex(doc.tagHex, 16, 'tagHex');
    const ct = hex(doc.ciphertextHex, undefined, 'ciphertextHex');
    const sealKey = new Uint8Array(await scryptAsync(deviceSecret, salt, n));
    let plain: Uint8Array;
    try {
      const d = createDecipheriv('aes-256-gcm', sealKey, iv);
      d.setAAD(PinPad.#aad(n, salt));
      d.setAuthTag(tag);
      plain = new Uint8Array(Buffer.concat([d.update(ct), d.final()]));
    } catch {
      wipe(sealKey);
      throw sealedError('cannot be opened: wrong device secret, or the file was altered');
    }
    try {
      const pad = new PinPad(statePath, sealKey, salt, n, new Uint8Array(RECORD_KEY_BYTES));
      pad.#load(plain);
      return pad;
    } finally {
      wipe(plain);
    }
  }

  /** Additional data bound into the GCM tag: the format and the KDF parameters (no downgrade). */
  static #aad(n: number, salt: Uint8Array): Uint8Array {
    return new TextEncoder().encode(`${SEALED_FORMAT}|scrypt|${n}|${SCRYPT_R}|${SCRYPT_P}|${toHex(salt)}`);
  }

  /** Plaintext layout: version(1) | record key(32) | count(1) | count × (slot(1) usage(1) key(16)). */
  #load(plain: Uint8Array): void {
    const fixed = 1 + RECORD_KEY_BYTES + 1;
    if (plain.length < fixed || plain[0] !== PLAIN_VERSION) throw sealedError('unknown plaintext version');
    const count = plain[fixed - 1]!;
    if (plain.length !== fixed + count * (2 + PINPAD_KEY_BYTES))
      throw sealedError('plaintext length is inconsistent');
    this.#recordKey = plain.slice(1, 1 + RECORD_KEY_BYTES);
    let at = fixed;
    for (let i = 0; i < count; i++) {
      const slot = plain[at]!;
      const usage = KEY_USAGES.find((u) => USAGE_CODE[u] === plain[at + 1]);
      if (slot >= PINPAD_SLOT_COUNT || usage === undefined) throw sealedError('a slot entry is malformed');
      const key = plain.slice(at + 2, at + 2 + PINPAD_KEY_BYTES);
      this.#slots[slot] = { usage, key, checkValueHex: toHex(checkValueOf(key)) };
      at += 2 + PINPAD_KEY_BYTES;
    }
  }

  #persist(): void {
    const used = this.#slots.flatMap((s, i) => (s ? [[i, s] as const] : []));
    const fixed = 1 + RECORD_KEY_BYTES + 1;
    const plain = new Uint8Array(fixed + used.length * (2 + PINPAD_KEY_BYTES));
    plain[0] = PLAIN_VERSION;
    plain.set(this.#recordKey, 1);
    plain[fixed - 1] = used.length;
    let at = fixed;
    for (const [i, s] of used) {
      plain[at] = i;
      plain[at + 1] = USAGE_CODE[s.usage];
      plain.set(s.key, at + 2);
      at += 2 + PINPAD_KEY_BYTES;
    }
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.#sealKey, iv);
    c.setAAD(PinPad.#aad(this.#scryptN, this.#salt));
    const ct = Buffer.concat([c.update(plain), c.final()]);
    wipe(plain);
    const doc = {
      format: SEALED_FORMAT,
      note: 'PIN pad key slots sealed with AES-256-GCM under scrypt(device secret); no key is readable here',
      kdf: { name: 'scrypt', N: this.#scryptN, r: SCRYPT_R, p: SCRYPT_P, saltHex: toHex(this.#salt) },
      ivHex: toHex(iv),
      ciphertextHex: toHex(ct),
      tagHex: toHex(c.getAuthTag()),
    };
    writeFileAtomic(this.#statePath, `${JSON.stringify(doc, null, 2)}\n`);
  }

  #checkOpen(): void {
    if (this.#closed) throw new TerminalError('TERMINAL_CLOSED', 'pinpad', 'the PIN pad has been closed');
  }

  /** The key in `slot`, which must hold a key of `usage` (key separation). Internal only. */
  #keyFor(slot: number, usage: KeyUsage, field = 'slot'): Uint8Array {
    this.#checkOpen();
    checkSlotNumber(slot, field);
    const s = this.#slots[slot];
    if (s === undefined) throw new TerminalError('TERMINAL_PINPAD_SLOT', field, `slot ${slot} is empty`);
    if (s.usage !== usage)
      throw new TerminalError(
        'TERMINAL_PINPAD_SLOT',
        field,
        `slot ${slot} holds a ${s.usage} key, not a ${usage} key`,
      );
    return s.key;
  }

  #store(slot: number, usage: KeyUsage, key: Uint8Array): SlotInfo {
    const old = this.#slots[slot];
    if (old) wipe(old.key);
    const checkValueHex = toHex(checkValueOf(key));
    this.#slots[slot] = { usage, key, checkValueHex };
    return { slot, usage, checkValueHex };
  }

  // --- key injection ---------------------------------------------------------------------------

  /**
   * Key injection from clear components under dual control (ANSI X9.24-1 §7.5 key loading; the
   * payShield "form key from components" step): 2 or 3 components of 16 bytes, each with odd parity
   * and, when given, its own check value; the key is their XOR, forced to odd parity (parity bits
   * do not change a DES result, so the check value is unaffected). The key's check value must match
   * `checkValue` before anything is stored: a custodian who typed a digit wrong is told so and the
   * slot keeps its old key. Components are wiped by the pad once used (the caller's copies too).
   */
  injectKeyFromComponents(
    slot: number,
    usage: KeyUsage,
    components: readonly Uint8Array[],
    opts: { checkValue: Uint8Array; componentCheckValues?: readonly Uint8Array[] },
  ): SlotInfo {
    this.#checkOpen();
    checkSlotNumber(slot);
    checkUsage(usage);
    if (!Array.isArray(components)) throw new TypeError('components must be an array');
    checkBytes(opts?.checkValue, 'opts.checkValue');
    if (components.length < PINPAD_COMPONENTS_MIN || components.length > PINPAD_COMPONENTS_MAX)
      throw new TerminalError(
        'TERMINAL_PINPAD_COMPONENT',
        'components',
        `dual control needs ${PINPAD_COMPONENTS_MIN} to ${PINPAD_COMPONENTS_MAX} components`,
      );
    const cvs = opts.componentCheckValues;
    if (cvs !== undefined && cvs.length !== components.length)
      throw new TerminalError(
        'TERMINAL_PINPAD_COMPONENT',
        'opts.componentCheckValues',
        'must give one check value per component',
      );
    components.forEach((c, i) => {
      checkBytes(c, `components[${i}]`);
      if (c.length !== PINPAD_KEY_BYTES)
        throw new TerminalError(
          'TERMINAL_PINPAD_COMPONENT',
          `components[${i}]`,
          `must be ${PINPAD_KEY_BYTES} bytes (double length), got ${c.length}`,
        );
      if (!hasOddParity(c))
        throw new TerminalError(
          'TERMINAL_PINPAD_COMPONENT',
          `components[${i}]`,
          'must have odd parity in every byte',
        );
      const cv = cvs?.[i];
      if (cv !== undefined) {
        checkBytes(cv, `opts.componentCheckValues[${i}]`);
        if (!checkValueMatches(c, cv))
          throw new TerminalError(
            'TERMINAL_PINPAD_CHECK_VALUE',
            `components[${i}]`,
            'does not match its check value',
          );
      }
    });
    let acc = components[0]!.slice();
    for (let i = 1; i < components.length; i++) {
      const next = xor(acc, components[i]!);
      wipe(acc);
      acc = next;
    }
    const key = adjustOddParity(acc);
    wipe(acc);
    if (components.some((c) => equalBytes(c, key))) {
      wipe(key);
      throw new TerminalError(
        'TERMINAL_PINPAD_COMPONENT',
        'components',
        'the key equals one of its components',
      );
    }
    if (!checkValueMatches(key, opts.checkValue)) {
      wipe(key);
      throw new TerminalError(
        'TERMINAL_PINPAD_CHECK_VALUE',
        'opts.checkValue',
        'does not match the key formed from the components',
      );
    }
    for (const c of components) wipe(c);
    const info = this.#store(slot, usage, key);
    this.#persist();
    return info;
  }

  /**
   * Key injection from a TR-31 key block (ANSI X9.143 / TR-31:2018) wrapped under the key-encrypting
   * key in `kekSlot` (a key-loading device's transport key, or the TMK). The block's MAC is checked
   * by `unwrapKeyBlock`; its usage must be one the pad knows (K0/K1, P0, M0/M1/M3, D0), its algorithm
   * TDES and its key 16 bytes. The slot takes the usage the block states.
   */
  injectKeyBlock(
    slot: number,
    kekSlot: number,
    block: string,
    opts: { checkValue?: Uint8Array } = {},
  ): SlotInfo {
    checkSlotNumber(slot);
    const kek = this.#keyFor(kekSlot, 'kek', 'kekSlot');
    if (typeof block !== 'string') throw new TypeError('block must be a string');
    let key: Uint8Array;
    let usage: KeyUsage | undefined;
    try {
      const opened = unwrapKeyBlock(kek, block);
      key = opened.key;
      usage = TR31_USAGES[opened.header.keyUsage];
      if (usage === undefined || opened.header.algorithm !== 'T' || key.length !== PINPAD_KEY_BYTES) {
        wipe(key);
        throw new TerminalError(
          'TERMINAL_PINPAD_KEY_BLOCK',
          'block',
          `must carry a ${PINPAD_KEY_BYTES}-byte TDES key of usage ${Object.keys(TR31_USAGES).join(', ')}`,
        );
      }
    } catch (e) {
      if (e instanceof TerminalError) throw e;
      const rule = e instanceof CryptoError ? e.message : 'cannot be opened';
      throw new TerminalError('TERMINAL_PINPAD_KEY_BLOCK', 'block', rule);
    }
    if (opts.checkValue !== undefined && !checkValueMatches(key, opts.checkValue)) {
      wipe(key);
      throw new TerminalError(
        'TERMINAL_PINPAD_CHECK_VALUE',
        'opts.checkValue',
        'does not match the key in the block',
      );
    }
    const info = this.#store(slot, usage, key);
    this.#persist();
    return info;
  }

  /**
   * Loads keys sent encrypted under the key-encrypting key in `kekSlot` (TDES-ECB, as the UnionPay
   * sign-in sends PIK, MAK and TDK in 0810 field 62; cup-pos-dialect.md 2.5). All or nothing: every
   * key is decrypted into a staging area and its check value compared first; only when all match are
   * the slots replaced, together, and the state sealed. On any mismatch no slot changes.
   */
  loadKeysUnderKek(kekSlot: number, entries: readonly EncryptedKeyEntry[]): SlotInfo[] {
    const kek = this.#keyFor(kekSlot, 'kek', 'kekSlot');
    if (!Array.isArray(entries) || entries.length === 0)
      throw new TypeError('entries must be a non-empty array');
    const seen = new Set<number>();
    const staged: { slot: number; usage: KeyUsage; key: Uint8Array }[] = [];
    try {
      entries.forEach((e, i) => {
        const field = `entries[${i}]`;
        checkSlotNumber(e.slot, `${field}.slot`);
        checkUsage(e.usage, `${field}.usage`);
        if (e.slot === kekSlot || seen.has(e.slot))
          throw new TerminalError(
            'TERMINAL_PINPAD_SLOT',
            `${field}.slot`,
            'must differ from the KEK slot and from every other entry',
          );
        seen.add(e.slot);
        checkBytes(e.encryptedKey, `${field}.encryptedKey`);
        checkBytes(e.checkValue, `${field}.checkValue`);
        if (e.encryptedKey.length !== PINPAD_KEY_BYTES)
          throw new TerminalError(
            'TERMINAL_PINPAD_KEY_BLOCK',
            `${field}.encryptedKey`,
            `must be ${PINPAD_KEY_BYTES} bytes, got ${e.encryptedKey.length}`,
          );
        const key = tdesDecryptEcb(kek, e.encryptedKey);
        staged.push({ slot: e.slot, usage: e.usage, key });
        if (!checkValueMatches(key, e.checkValue))
          throw new TerminalError(
            'TERMINAL_PINPAD_CHECK_VALUE',
            `${field}.checkValue`,
            'does not match the decrypted key',
          );
        if (equalBytes(key, kek))
          throw new TerminalError(
            'TERMINAL_PINPAD_KEY_BLOCK',
            `${field}.encryptedKey`,
            'decrypts to the KEK itself',
          );
      });
    } catch (err) {
      for (const s of staged) wipe(s.key);
      throw err;
    }
    const infos = staged.map((s) => this.#store(s.slot, s.usage, s.key));
    this.#persist();
    return infos;
  }

  // --- use ------------------------------------------------------------------------------------

  /**
   * PIN entry: takes the PIN typed on the keypad and returns the ISO 9564-1:2017 §9.3.2 format 0 PIN
   * block enciphered (TDES-ECB) under the PIN key in `slot`. The clear block never leaves the pad.
   */
  encryptPinBlockIso0(slot: number, pin: string, pan: string): Uint8Array {
    const key = this.#keyFor(slot, 'pin');
    if (typeof pin !== 'string') throw new TypeError('pin must be a string');
    if (typeof pan !== 'string') throw new TypeError('pan must be a string');
    try {
      return encryptPinBlock(0, key, pin, pan);
    } catch (e) {
      if (e instanceof CryptoError && e.code === 'CRYPTO_PIN_INVALID')
        throw new TerminalError('TERMINAL_PIN_INVALID', 'pin', 'must be 4 to 12 decimal digits');
      if (e instanceof CryptoError && e.code === 'CRYPTO_PAN_INVALID')
        throw new TerminalError(
          'TERMINAL_CARD_INVALID',
          'pan',
          'must be 8 to 19 decimal digits for a format 0 PIN block',
        );
      throw e;
    }
  }

  /** The UnionPay POS "ECB" MAC (cup-pos-dialect.md 2.6) of `data` under the MAC key in `slot`: 8 ASCII hex bytes. */
  generateMacCupEcb(slot: number, data: Uint8Array): Uint8Array {
    const key = this.#keyFor(slot, 'mac');
    checkBytes(data, 'data');
    return macCupEcb(key, data);
  }

  /** Verifies a CUP ECB MAC in constant time; `false` when it does not match (or has another length). */
  verifyMacCupEcb(slot: number, data: Uint8Array, mac: Uint8Array): boolean {
    const key = this.#keyFor(slot, 'mac');
    checkBytes(data, 'data');
    checkBytes(mac, 'mac');
    return verifyMac('cup-ecb', key, data, mac);
  }

  /** TDES-ECB encryption of whole 8-byte blocks under the data key (TDK) in `slot`: track data. */
  encryptDataTdesEcb(slot: number, data: Uint8Array): Uint8Array {
    const key = this.#keyFor(slot, 'data');
    checkBytes(data, 'data');
    if (data.length === 0 || data.length % 8 !== 0)
      throw new TerminalError('TERMINAL_PINPAD_SLOT', 'data', 'must be a non-empty multiple of 8 bytes');
    return tdesEncryptEcb(key, data);
  }

  /**
   * Seals a record the terminal keeps at rest (card data of a reversal record or a batch entry:
   * issue 6 needs the PAN for 0400 and 0320) with AES-256-GCM under a record key generated inside
   * the pad. Output: iv(12) | ciphertext | tag(16). The terminal's database never holds the PAN in clear.
   */
  sealRecord(plain: Uint8Array): Uint8Array {
    this.#checkOpen();
    checkBytes(plain, 'plain');
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.#recordKey, iv);
    const ct = Buffer.concat([c.update(plain), c.final()]);
    return new Uint8Array(Buffer.concat([iv, ct, c.getAuthTag()]));
  }

  /** Opens a record sealed by `sealRecord` of this pad; TERMINAL_PINPAD_SEALED when it does not verify. */
  openRecord(sealed: Uint8Array): Uint8Array {
    this.#checkOpen();
    checkBytes(sealed, 'sealed');
    if (sealed.length < 28)
      throw new TerminalError('TERMINAL_PINPAD_SEALED', 'record', 'is shorter than 28 bytes');
    try {
      const d = createDecipheriv('aes-256-gcm', this.#recordKey, sealed.subarray(0, 12));
      d.setAuthTag(sealed.subarray(sealed.length - 16));
      return new Uint8Array(Buffer.concat([d.update(sealed.subarray(12, sealed.length - 16)), d.final()]));
    } catch {
      throw new TerminalError('TERMINAL_PINPAD_SEALED', 'record', 'does not verify under this PIN pad');
    }
  }

  // --- inspection (no key bytes) ---------------------------------------------------------------

  /** Slot number, usage and check value of `slot`, or undefined when empty. */
  slotInfo(slot: number): SlotInfo | undefined {
    this.#checkOpen();
    checkSlotNumber(slot);
    const s = this.#slots[slot];
    return s ? { slot, usage: s.usage, checkValueHex: s.checkValueHex } : undefined;
  }

  /** Every loaded slot, ascending. */
  listSlots(): SlotInfo[] {
    this.#checkOpen();
    return this.#slots.flatMap((s, slot) =>
      s ? [{ slot, usage: s.usage, checkValueHex: s.checkValueHex }] : [],
    );
  }

  /** Number of slots (constant). */
  get slotCount(): number {
    return PINPAD_SLOT_COUNT;
  }

  /** Erases one slot (and the sealed copy). */
  eraseSlot(slot: number): void {
    this.#checkOpen();
    checkSlotNumber(slot);
    const s = this.#slots[slot];
    if (!s) return;
    wipe(s.key);
    this.#slots[slot] = undefined;
    this.#persist();
  }

  /** Tamper response: erases every slot and the record key (sealed records become unreadable). */
  eraseAll(): void {
    this.#checkOpen();
    for (let i = 0; i < PINPAD_SLOT_COUNT; i++) {
      wipe(this.#slots[i]?.key);
      this.#slots[i] = undefined;
    }
    wipe(this.#recordKey);
    this.#recordKey = new Uint8Array(randomBytes(RECORD_KEY_BYTES));
    this.#persist();
  }

  /** Wipes the keys from memory; the sealed file stays. Later calls throw TERMINAL_CLOSED. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#slots) wipe(s?.key);
    wipe(this.#sealKey, this.#recordKey);
  }

  toJSON(): { slotCount: number; slots: SlotInfo[] } {
    if (this.#closed) return { slotCount: PINPAD_SLOT_COUNT, slots: [] };
    return { slotCount: PINPAD_SLOT_COUNT, slots: this.listSlots() };
  }

  toString(): string {
    const slots = this.toJSON().slots.map((s) => `${s.slot}:${s.usage}:${s.checkValueHex}`);
    return `PinPad(${PINPAD_SLOT_COUNT} slots; loaded ${slots.length === 0 ? 'none' : slots.join(' ')})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
