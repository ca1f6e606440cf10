/**
 * Authorization state: sensitive commands (generate a ZMK, form a key from clear components, ...) run
 * only while custodians have authorized them, for a bounded time, as payShield's authorized state does
 * (entered at the console or with custodian smart cards, never from the host port).
 *
 * - Credentials are stored as scrypt hashes (RFC 7914) in the HSM configuration; the secrets never are.
 * - Entering needs `quorum` (at least 2) distinct custodians whose credentials verify: dual control.
 * - The state names the activities it covers (e.g. `A0.ZMK`, `A4.TMK`, or `A4.*`) and lasts at most
 *   `maxDurationMs`; after that (injectable clock) it is gone, as if exited.
 */
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { HsmError } from './errors.js';

/** One custodian's credential as the configuration stores it. */
export interface CustodianRecord {
  id: string;
  /** scrypt parameters of this record. */
  N: number;
  r: number;
  p: number;
  /** Hex. */
  salt: string;
  /** Hex, 32 bytes. */
  hash: string;
}

export interface AuthConfig {
  custodians: readonly CustodianRecord[];
  /** Distinct custodians needed to enter the authorized state; at least 2. */
  quorum: number;
  /** Longest authorized period. */
  maxDurationMs: number;
}

export interface CustodianCredential {
  id: string;
  secret: string;
}

/** Bounds on stored scrypt parameters so that a hostile configuration cannot ask for unbounded work. */
export const CUSTODIAN_SCRYPT_BOUNDS = { minLog2N: 10, maxLog2N: 20, maxR: 16, maxP: 4 } as const;
export const CUSTODIAN_SCRYPT_DEFAULT = { N: 2 ** 14, r: 8, p: 1 } as const;
/** Twelve hours: a working day of key ceremonies; payShield's own default is shorter, set yours. */
export const AUTH_MAX_DURATION_MS_LIMIT = 12 * 60 * 60 * 1000;
const ID_RE = /^[A-Za-z0-9._-]{1,32}$/;
const ACTIVITY_RE = /^[A-Z0-9]{2}(\.([A-Z0-9]{1,8}|\*))?$/;

function scryptHash(secret: string, salt: Uint8Array, N: number, r: number, p: number): Buffer {
  return scryptSync(Buffer.from(secret, 'utf8'), salt, 32, {
    N,
    r,
    p,
    maxmem: 128 * N * r * (p + 2) + 2 ** 20,
  });
}

/** Makes the stored record of a custodian's credential (to put in the HSM configuration). */
export function hashCustodianCredential(
  id: string,
  secret: string,
  params: { N: number; r: number; p: number } = CUSTODIAN_SCRYPT_DEFAULT,
): CustodianRecord {
  if (!ID_RE.test(id)) throw new HsmError('HSM_AUTH_CONFIG', 'id', 'must be 1-32 of A-Z, a-z, 0-9, . _ -');
  if (typeof secret !== 'string' || secret.length < 8) {
    throw new HsmError('HSM_AUTH_CONFIG', 'secret', 'must be at least 8 characters');
  }
  checkParams(params, 'params');
  const salt = randomBytes(16);
  const hash = scryptHash(secret, salt, params.N, params.r, params.p);
  return { id, ...params, salt: salt.toString('hex'), hash: hash.toString('hex') };
}

function checkParams(p: { N: number; r: number; p: number }, field: string): void {
  const b = CUSTODIAN_SCRYPT_BOUNDS;
  const log2N = Math.log2(p.N);
  if (!Number.isInteger(p.N) || !Number.isInteger(log2N) || log2N < b.minLog2N || log2N > b.maxLog2N) {
    throw new HsmError(
      'HSM_AUTH_CONFIG',
      `${field}.N`,
      `must be a power of 2 from 2^${b.minLog2N} to 2^${b.maxLog2N}`,
    );
  }
  if (!Number.isInteger(p.r) || p.r < 1 || p.r > b.maxR) {
    throw new HsmError('HSM_AUTH_CONFIG', `${field}.r`, `must be an integer from 1 to ${b.maxR}`);
  }
  if (!Number.isInteger(p.p) || p.p < 1 || p.p > b.maxP) {
    throw new HsmError('HSM_AUTH_CONFIG', `${field}.p`, `must be an integer from 1 to ${b.maxP}`);
  }
}

/** Checks an authorization configuration; throws HSM_AUTH_CONFIG naming the first bad field. */
export function checkAuthConfig(config: AuthConfig): void {
  if (typeof config !== 'object' || config === null) throw new TypeError('config must be an object');
  if (!Number.isInteger(config.quorum) || config.quorum < 2) {
    throw new HsmError('HSM_AUTH_CONFIG', 'quorum', 'must be an integer of at least 2 (dual control)');
  }
  if (!Array.isArray(config.custodians) || config.custodians.length < config.quorum) {
    throw new HsmError('HSM_AUTH_CONFIG', 'custodians', 'must list at least quorum custodians');
  }
  if (
    !Number.isInteger(config.maxDurationMs) ||
    config.maxDurationMs < 1 ||
    config.maxDurationMs > AUTH_MAX_DURATION_MS_LIMIT
  ) {
    throw new HsmError(
      'HSM_AUTH_CONFIG',
      'maxDurationMs',
      `must be an integer from 1 to ${AUTH_MAX_DURATION_MS_LIMIT}`,
    );
  }
  const seen = new Set<string>();
  config.custodians.forEach((c, i) => {
    const f = `custodians[${i}]`;
    if (typeof c?.id !== 'string' || !ID_RE.test(c.id)) {
      throw new HsmError('HSM_AUTH_CONFIG', `${f}.id`, 'must be 1-32 of A-Z, a-z, 0-9, . _ -');
    }
    if (seen.has(c.id)) throw new HsmError('HSM_AUTH_CONFIG', `${f}.id`, 'is listed twice');
    seen.add(c.id);
    checkParams(c, f);
    if (typeof c.salt !== 'string' || !/^([0-9a-fA-F]{2}){16,64}$/.test(c.salt)) {
      throw new HsmError('HSM_AUTH_CONFIG', `${f}.salt`, 'must be 16 to 64 bytes of hex');
    }
    if (typeof c.hash !== 'string' || !/^[0-9a-fA-F]{64}$/.test(c.hash)) {
      throw new HsmError('HSM_AUTH_CONFIG', `${f}.hash`, 'must be 64 hex digits');
    }
  });
}

export interface AuthState {
  authorized: boolean;
  activities: readonly string[];
  custodians: readonly string[];
  /** Epoch ms; undefined when not authorized. */
  expiresAtMs: number | undefined;
}

/** The authorized state of one HSM. `now` (epoch ms) is injectable for tests. */
export class Authorization {
  readonly #config: AuthConfig;
  readonly #now: () => number;
  #activities: readonly string[] = [];
  #custodians: readonly string[] = [];
  #expiresAtMs: number | undefined;

  constructor(config: AuthConfig, opts: { now?: () => number } = {}) {
    checkAuthConfig(config);
    this.#config = config;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Enters the authorized state for `activities` for `durationMs` (at most the configured maximum).
   * Every credential must verify (HSM_AUTH_CREDENTIALS names the first that does not, by position);
   * at least `quorum` distinct custodians must take part (HSM_AUTH_QUORUM).
   */
  enter(
    credentials: readonly CustodianCredential[],
    activities: readonly string[],
    durationMs: number,
  ): AuthState {
    if (!Array.isArray(activities) || activities.length === 0) {
      throw new HsmError('HSM_AUTH_CONFIG', 'activities', 'name at least one activity');
    }
    activities.forEach((a, i) => {
      if (typeof a !== 'string' || !ACTIVITY_RE.test(a)) {
        throw new HsmError(
          'HSM_AUTH_CONFIG',
          `activities[${i}]`,
          'must be a command code, optionally with .KEYTYPE or .* (e.g. A0.ZMK)',
        );
      }
    });
    if (!Number.isInteger(durationMs) || durationMs < 1 || durationMs > this.#config.maxDurationMs) {
      throw new HsmError(
        'HSM_AUTH_CONFIG',
        'durationMs',
        `must be an integer from 1 to ${this.#config.maxDurationMs} (the configured maximum)`,
      );
    }
    if (!Array.isArray(credentials)) throw new TypeError('credentials must be an array');
    const ids = new Set<string>();
    credentials.forEach((c, i) => {
      const rec = this.#config.custodians.find((r) => r.id === c?.id);
      // Hash even for an unknown id, so that timing does not tell which ids exist.
      const salt = Buffer.from(rec?.salt ?? '00'.repeat(16), 'hex');
      const p = rec ?? { ...CUSTODIAN_SCRYPT_DEFAULT };
      const got = scryptHash(typeof c?.secret === 'string' ? c.secret : '', salt, p.N, p.r, p.p);
      const want = Buffer.from(rec?.hash ?? '00'.repeat(32), 'hex');
      if (rec === undefined || !timingSafeEqual(got, want)) {
        throw new HsmError(
          'HSM_AUTH_CREDENTIALS',
          `credentials[${i}]`,
          'unknown custodian or wrong credential',
        );
      }
      ids.add(rec.id);
    });
    if (ids.size < this.#config.quorum) {
      throw new HsmError(
        'HSM_AUTH_QUORUM',
        'credentials',
        `${ids.size} distinct custodian(s) presented credentials, ${this.#config.quorum} are needed`,
      );
    }
    this.#activities = [...activities];
    this.#custodians = [...ids].sort();
    this.#expiresAtMs = this.#now() + durationMs;
    return this.state();
  }

  /** Leaves the authorized state at once. */
  exit(): void {
    this.#activities = [];
    this.#custodians = [];
    this.#expiresAtMs = undefined;
  }

  #expireIfDue(): boolean {
    if (this.#expiresAtMs !== undefined && this.#now() >= this.#expiresAtMs) {
      this.exit();
      return true;
    }
    return false;
  }

  state(): AuthState {
    this.#expireIfDue();
    const authorized = this.#expiresAtMs !== undefined;
    return {
      authorized,
      activities: this.#activities,
      custodians: this.#custodians,
      expiresAtMs: this.#expiresAtMs,
    };
  }

  /** True when `activity` (`A0.ZMK`) is covered now, exactly or by `A0.*` / `A0`. */
  isAuthorized(activity: string): boolean {
    if (this.#expireIfDue() || this.#expiresAtMs === undefined) return false;
    const cmd = activity.split('.')[0];
    return this.#activities.some((a) => a === activity || a === `${cmd}.*` || a === cmd);
  }

  /** Throws HSM_NOT_AUTHORIZED (payShield '17') unless `activity` is authorized now. */
  require(activity: string): void {
    const expired = this.#expireIfDue();
    if (this.#expiresAtMs === undefined) {
      throw new HsmError(
        'HSM_NOT_AUTHORIZED',
        activity,
        expired ? 'the authorized state has expired' : 'needs the authorized state, which is not entered',
      );
    }
    if (!this.isAuthorized(activity)) {
      throw new HsmError('HSM_NOT_AUTHORIZED', activity, 'is not among the authorized activities');
    }
  }

  /** The custodians of the current state, for the audit log's `who`. */
  get custodians(): readonly string[] {
    return this.state().custodians;
  }
}
