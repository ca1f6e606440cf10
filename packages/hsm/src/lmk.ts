/**
 * The LMK (local master key): AES-256, formed by a ceremony, sealed at rest, held only inside `Lmk`.
 *
 * Ceremony (dual control, as PCI PIN Security requirement 5/6 and ANSI X9.24-1 §7 ask of a master key):
 * at least two custodians each bring a 32-byte component (generated at random by `generateLmkComponent`,
 * or entered from their form) with its check value; a component is accepted only when the check value
 * computed here matches the one the custodian read; the LMK is the XOR of the components, so no one
 * custodian knows anything about it. Check values are AES CMAC check values (ANSI X9.24-3-2017 §"KCV":
 * CMAC of a zero block), 5 bytes for a component, 8 bytes (16 hex, the width of payShield's NC reply
 * field) for the LMK.
 *
 * Sealing at rest: the LMK encrypted with AES-256-GCM (NIST SP 800-38D) under a key derived by scrypt
 * (RFC 7914) from a passphrase, or from the components themselves (so that re-entering the components
 * unseals it). The sealed file holds no clear key and is useless without the secret; its header (format,
 * version, KDF and parameters, salt, LMK check value) is GCM additional data, so editing any of it makes
 * the file refuse to open.
 *
 * The LMK bytes never leave this module: `Lmk` keeps them in a module-private WeakMap, has no getter,
 * and prints as its check value only.
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { equalBytes, fromHex, kcvAes, toHex, wipe, xor } from '@openposp/crypto';
import { HsmError } from './errors.js';
import {
  deriveKeyBlockKeys,
  type KeyAttributes,
  type KeyExpectation,
  unwrapLmkKeyBlock,
  wrapLmkKeyBlock,
} from './keystore.js';

export const LMK_BYTES = 32;
export const LMK_MIN_COMPONENTS = 2;
/** More than 9 custodians for one key is a ceremony nobody runs; the bound keeps input sizes sane. */
export const LMK_MAX_COMPONENTS = 9;
export const LMK_COMPONENT_KCV_BYTES = 5;
export const LMK_KCV_BYTES = 8;

/** One custodian's component and the check value the custodian read from the component form. */
export interface LmkComponent {
  component: Uint8Array;
  /** Hex, either case. */
  checkValue: string;
}

interface LmkSecret {
  kbek: Uint8Array;
  kbak: Uint8Array;
  lmk: Uint8Array;
}
const secrets = new WeakMap<Lmk, LmkSecret>();
/** The only way to make an Lmk from bytes; module-private (set by the class's static block). */
let lmkFromBytes: (key: Uint8Array) => Lmk;

/**
 * The HSM's master key. Holds the key privately; offers only wrapping and unwrapping of keys under it,
 * and its check value.
 */
export class Lmk {
  /** 16 hex digits: AES CMAC of a zero block under the LMK, first 8 bytes. */
  readonly checkValue: string;

  /** Takes ownership of `key`. Not callable from outside: use `formLmk`, `unsealLmk` or `createTestLmk`. */
  private constructor(key: Uint8Array) {
    this.checkValue = toHex(kcvAes(key, LMK_KCV_BYTES));
    secrets.set(this, { lmk: key, ...deriveKeyBlockKeys(key) });
  }

  static {
    lmkFromBytes = (key) => new Lmk(key);
  }

  private secret(): LmkSecret {
    const s = secrets.get(this);
    if (s === undefined) throw new HsmError('HSM_INTERNAL', 'lmk', 'this LMK has been destroyed');
    return s;
  }

  /** Wraps `key` under the LMK as a key block with `attrs` bound by its MAC (see keystore.ts). */
  wrapKey(key: Uint8Array, attrs: KeyAttributes): string {
    return wrapLmkKeyBlock(this.secret(), key, attrs);
  }

  /**
   * Verifies `block` under the LMK and returns its key, refusing (HSM_KEY_USAGE, HSM_KEY_MODE_OF_USE,
   * HSM_KEY_ALGORITHM) a key whose header does not match `expect`. Pass `null` only where any key is
   * fine (e.g. computing a check value). The caller should wipe the returned key.
   */
  unwrapKey(
    block: string,
    expect: KeyExpectation | null,
    field = 'keyBlock',
  ): { key: Uint8Array; attrs: KeyAttributes } {
    return unwrapLmkKeyBlock(this.secret(), block, expect, field);
  }

  /** Wipes the key and the derived key-block keys; the object is unusable afterwards. */
  destroy(): void {
    const s = secrets.get(this);
    if (s) wipe(s.lmk, s.kbek, s.kbak);
    secrets.delete(this);
  }

  toString(): string {
    return `Lmk(check value ${this.checkValue})`;
  }
  toJSON(): { checkValue: string } {
    return { checkValue: this.checkValue };
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

/** Check value of an LMK component: 10 hex digits (AES CMAC KCV, X9.24-3). */
export function lmkComponentCheckValue(component: Uint8Array): string {
  if (component.length !== LMK_BYTES) {
    throw new HsmError(
      'HSM_LMK_COMPONENT',
      'component',
      `must be ${LMK_BYTES} bytes, got ${component.length}`,
    );
  }
  return toHex(kcvAes(component, LMK_COMPONENT_KCV_BYTES));
}

/** A fresh random component (node:crypto CSPRNG) with its check value, for one custodian. */
export function generateLmkComponent(): LmkComponent {
  const component = new Uint8Array(randomBytes(LMK_BYTES));
  return { component, checkValue: lmkComponentCheckValue(component) };
}

function checkComponents(components: readonly LmkComponent[]): void {
  if (!Array.isArray(components)) throw new TypeError('components must be an array');
  if (components.length < LMK_MIN_COMPONENTS || components.length > LMK_MAX_COMPONENTS) {
    throw new HsmError(
      'HSM_LMK_COMPONENTS',
      'components',
      `need ${LMK_MIN_COMPONENTS} to ${LMK_MAX_COMPONENTS} components, got ${components.length}`,
    );
  }
  components.forEach((c, i) => {
    const field = `components[${i}]`;
    if (!(c?.component instanceof Uint8Array)) throw new TypeError(`${field}.component must be a Uint8Array`);
    if (c.component.length !== LMK_BYTES) {
      throw new HsmError('HSM_LMK_COMPONENT', field, `must be ${LMK_BYTES} bytes, got ${c.component.length}`);
    }
    if (typeof c.checkValue !== 'string' || !/^[0-9A-Fa-f]{10}$/.test(c.checkValue)) {
      throw new HsmError(
        'HSM_LMK_COMPONENT',
        `${field}.checkValue`,
        `must be ${2 * LMK_COMPONENT_KCV_BYTES} hex digits`,
      );
    }
    const kcv = kcvAes(c.component, LMK_COMPONENT_KCV_BYTES);
    if (!equalBytes(kcv, fromHex(c.checkValue, `${field}.checkValue`))) {
      throw new HsmError(
        'HSM_LMK_COMPONENT',
        `${field}.checkValue`,
        'does not match the check value of the component entered (re-enter the component)',
      );
    }
    for (let j = 0; j < i; j++) {
      if (equalBytes(components[j]!.component, c.component)) {
        throw new HsmError('HSM_LMK_COMPONENTS', field, `is equal to components[${j}]`);
      }
    }
  });
}

function xorComponents(components: readonly LmkComponent[]): Uint8Array {
  let acc: Uint8Array = new Uint8Array(LMK_BYTES);
  for (const c of components) {
    const next = xor(acc, c.component);
    wipe(acc);
    acc = next;
  }
  return acc;
}

/**
 * Forms the LMK from custodians' components (XOR), each confirmed by its check value first.
 * Throws HSM_LMK_COMPONENTS (count, duplicates, all-zero result) or HSM_LMK_COMPONENT.
 */
export function formLmk(components: readonly LmkComponent[]): Lmk {
  checkComponents(components);
  const key = xorComponents(components);
  if (key.every((b) => b === 0)) {
    throw new HsmError('HSM_LMK_COMPONENTS', 'components', 'combine to a key of all zeros');
  }
  return lmkFromBytes(key);
}

/**
 * A fixed, publicly known LMK for tests and demos: 0x01..0x20. It protects nothing, so it is only
 * given with `allowTestLmk: true`, and every call warns on stderr (or through `warn`).
 * Its check value is TEST_LMK_CHECK_VALUE.
 */
export function createTestLmk(opts: { allowTestLmk: boolean; warn?: (line: string) => void }): Lmk {
  if (opts?.allowTestLmk !== true) {
    throw new HsmError('HSM_LMK_TEST_NOT_ALLOWED', 'allowTestLmk', 'the test LMK needs allowTestLmk: true');
  }
  const key = new Uint8Array(LMK_BYTES).map((_, i) => i + 1);
  const lmk = lmkFromBytes(key);
  const line = `WARNING: the HSM is using the FIXED TEST LMK (check value ${lmk.checkValue}). Every key under it is known to anyone. NEVER use it with real keys or cards.`;
  (opts.warn ?? ((l: string) => process.stderr.write(`\n${'!'.repeat(78)}\n${l}\n${'!'.repeat(78)}\n\n`)))(
    line,
  );
  return lmk;
}

// --- Sealing at rest ---

export const SEALED_LMK_FORMAT = 'openposp-hsm-sealed-lmk';
export const SEALED_LMK_VERSION = 1;

/** scrypt parameters (RFC 7914). Bounds keep a hostile file from asking for unbounded memory or time. */
export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}
/** 2^15 × 8 × 128 B = 32 MiB and ~0.1 s per derivation: OWASP's scrypt floor is N=2^17 r=8 p=1; raise it freely. */
export const SCRYPT_DEFAULT: Readonly<ScryptParams> = { N: 2 ** 15, r: 8, p: 1 };
export const SCRYPT_BOUNDS = { minLog2N: 10, maxLog2N: 20, maxR: 16, maxP: 4 } as const;

export interface SealedLmk {
  format: typeof SEALED_LMK_FORMAT;
  version: typeof SEALED_LMK_VERSION;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; secret: 'passphrase' | 'components' };
  /** Hex. */
  salt: string;
  /** Hex, 12 bytes (GCM IV). */
  nonce: string;
  /** Hex, 32 bytes. */
  ciphertext: string;
  /** Hex, 16 bytes. */
  tag: string;
  lmkCheckValue: string;
}

/** The secret that seals or unseals: a passphrase, or the same components that formed the LMK. */
export type SealSecret = { passphrase: string } | { components: readonly LmkComponent[] };

/** Throws HSM_LMK_SEALED_FORMAT unless `kdf` is inside SCRYPT_BOUNDS. */
export function checkScryptParams(kdf: ScryptParams, field = 'kdf'): void {
  const { N, r, p } = kdf;
  const log2N = Math.log2(N);
  if (
    !Number.isInteger(N) ||
    !Number.isInteger(log2N) ||
    log2N < SCRYPT_BOUNDS.minLog2N ||
    log2N > SCRYPT_BOUNDS.maxLog2N
  ) {
    throw new HsmError(
      'HSM_LMK_SEALED_FORMAT',
      `${field}.N`,
      `must be a power of 2 from 2^${SCRYPT_BOUNDS.minLog2N} to 2^${SCRYPT_BOUNDS.maxLog2N}`,
    );
  }
  if (!Number.isInteger(r) || r < 1 || r > SCRYPT_BOUNDS.maxR) {
    throw new HsmError(
      'HSM_LMK_SEALED_FORMAT',
      `${field}.r`,
      `must be an integer from 1 to ${SCRYPT_BOUNDS.maxR}`,
    );
  }
  if (!Number.isInteger(p) || p < 1 || p > SCRYPT_BOUNDS.maxP) {
    throw new HsmError(
      'HSM_LMK_SEALED_FORMAT',
      `${field}.p`,
      `must be an integer from 1 to ${SCRYPT_BOUNDS.maxP}`,
    );
  }
}

/** scrypt of the secret; components enter in a canonical (sorted) order so that custodians may come in any order. */
function deriveSealKey(secret: SealSecret, salt: Uint8Array, kdf: ScryptParams): Uint8Array {
  let input: Uint8Array;
  if ('passphrase' in secret) {
    if (typeof secret.passphrase !== 'string' || secret.passphrase.length < 8) {
      throw new HsmError('HSM_LMK_UNSEAL', 'passphrase', 'must be at least 8 characters');
    }
    input = new Uint8Array(Buffer.from(secret.passphrase, 'utf8'));
  } else {
    checkComponents(secret.components);
    const sorted = [...secret.components].map((c) => c.component).sort((a, b) => Buffer.compare(a, b));
    input = new Uint8Array(Buffer.concat(sorted));
  }
  const maxmem = 128 * kdf.N * kdf.r * (kdf.p + 2) + 1024 * 1024;
  const key = new Uint8Array(scryptSync(input, salt, 32, { N: kdf.N, r: kdf.r, p: kdf.p, maxmem }));
  wipe(input);
  return key;
}

function additionalData(s: Pick<SealedLmk, 'format' | 'version' | 'kdf' | 'salt' | 'lmkCheckValue'>): Buffer {
  const { name, N, r, p, secret } = s.kdf;
  return Buffer.from(JSON.stringify([s.format, s.version, name, N, r, p, secret, s.salt, s.lmkCheckValue]));
}

/**
 * Seals `lmk` for storage: a JSON-able object holding no clear key. `kdf` defaults to SCRYPT_DEFAULT.
 */
export function sealLmk(lmk: Lmk, secret: SealSecret, opts: { kdf?: ScryptParams } = {}): SealedLmk {
  const kdf = opts.kdf ?? SCRYPT_DEFAULT;
  checkScryptParams(kdf);
  const s = secrets.get(lmk);
  if (s === undefined) throw new HsmError('HSM_INTERNAL', 'lmk', 'this LMK has been destroyed');
  if ('components' in secret) {
    // Sealing under components that do not form this LMK would make a file nobody can open.
    checkComponents(secret.components);
    const formed = xorComponents(secret.components);
    const same = equalBytes(formed, s.lmk);
    wipe(formed);
    if (!same) throw new HsmError('HSM_LMK_COMPONENTS', 'components', 'do not form this LMK');
  }
  const salt = new Uint8Array(randomBytes(16));
  const nonce = randomBytes(12);
  const header = {
    format: SEALED_LMK_FORMAT,
    version: SEALED_LMK_VERSION,
    kdf: {
      name: 'scrypt',
      N: kdf.N,
      r: kdf.r,
      p: kdf.p,
      secret: 'passphrase' in secret ? 'passphrase' : 'components',
    },
    salt: toHex(salt),
    lmkCheckValue: lmk.checkValue,
  } as const;
  const key = deriveSealKey(secret, salt, kdf);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(additionalData(header));
  const ct = Buffer.concat([c.update(s.lmk), c.final()]);
  wipe(key);
  return { ...header, nonce: toHex(nonce), ciphertext: toHex(ct), tag: toHex(c.getAuthTag()) };
}

function hexField(o: Record<string, unknown>, name: string, bytes: number): Uint8Array {
  const v = o[name];
  if (typeof v !== 'string' || !new RegExp(`^[0-9A-Fa-f]{${2 * bytes}}$`).test(v)) {
    throw new HsmError('HSM_LMK_SEALED_FORMAT', `sealed.${name}`, `must be ${2 * bytes} hex digits`);
  }
  return fromHex(v, `sealed.${name}`);
}

/** Checks the shape of a sealed LMK (parsed JSON or its text) and returns it typed. */
export function parseSealedLmk(input: string | unknown): SealedLmk {
  let o: unknown = input;
  if (typeof input === 'string') {
    try {
      o = JSON.parse(input);
    } catch {
      throw new HsmError('HSM_LMK_SEALED_FORMAT', 'sealed', 'is not JSON');
    }
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) {
    throw new HsmError('HSM_LMK_SEALED_FORMAT', 'sealed', 'must be a JSON object');
  }
  const r = o as Record<string, unknown>;
  if (r.format !== SEALED_LMK_FORMAT) {
    throw new HsmError('HSM_LMK_SEALED_FORMAT', 'sealed.format', `must be ${SEALED_LMK_FORMAT}`);
  }
  if (r.version !== SEALED_LMK_VERSION) {
    throw new HsmError('HSM_LMK_SEALED_FORMAT', 'sealed.version', `must be ${SEALED_LMK_VERSION}`);
  }
  const kdf = r.kdf as Record<string, unknown> | undefined;
  if (typeof kdf !== 'object' || kdf === null || kdf.name !== 'scrypt') {
    throw new HsmError('HSM_LMK_SEALED_FORMAT', 'sealed.kdf.name', 'must be scrypt');
  }
  if (kdf.secret !== 'passphrase' && kdf.secret !== 'components') {
    throw new HsmError('HSM_LMK_SEALED_FORMAT', 'sealed.kdf.secret', 'must be passphrase or components');
  }
  checkScryptParams(kdf as unknown as ScryptParams, 'sealed.kdf');
  hexField(r, 'salt', 16);
  hexField(r, 'nonce', 12);
  hexField(r, 'ciphertext', LMK_BYTES);
  hexField(r, 'tag', 16);
  hexField(r, 'lmkCheckValue', LMK_KCV_BYTES);
  return r as unknown as SealedLmk;
}

/**
 * Opens a sealed LMK with its passphrase or its components. Throws HSM_LMK_UNSEAL when the secret is
 * wrong or the file was altered (the two are indistinguishable by design), HSM_LMK_SEALED_FORMAT when
 * the file is malformed.
 */
export function unsealLmk(sealedInput: SealedLmk | string, secret: SealSecret): Lmk {
  const sealed = parseSealedLmk(sealedInput);
  const wants = 'passphrase' in secret ? 'passphrase' : 'components';
  if (sealed.kdf.secret !== wants) {
    throw new HsmError(
      'HSM_LMK_UNSEAL',
      'secret',
      `this file is sealed under ${sealed.kdf.secret}, not ${wants}`,
    );
  }
  const key = deriveSealKey(secret, fromHex(sealed.salt), sealed.kdf);
  const d = createDecipheriv('aes-256-gcm', key, fromHex(sealed.nonce));
  d.setAAD(additionalData(sealed));
  d.setAuthTag(fromHex(sealed.tag));
  let lmk: Uint8Array;
  try {
    lmk = new Uint8Array(Buffer.concat([d.update(fromHex(sealed.ciphertext)), d.final()]));
  } catch {
    throw new HsmError('HSM_LMK_UNSEAL', 'sealed', 'does not open (wrong secret, or the file was altered)');
  } finally {
    wipe(key);
  }
  const kcv = toHex(kcvAes(lmk, LMK_KCV_BYTES));
  if (kcv !== sealed.lmkCheckValue.toUpperCase()) {
    wipe(lmk);
    throw new HsmError(
      'HSM_LMK_UNSEAL',
      'sealed.lmkCheckValue',
      'does not match the check value of the opened LMK',
    );
  }
  return lmkFromBytes(lmk);
}
