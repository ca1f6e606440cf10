import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type AuthConfig, Authorization, checkAuthConfig, hashCustodianCredential } from '../src/auth.js';
import { HsmError } from '../src/errors.js';

const P = { N: 1024, r: 8, p: 1 };
const alice = hashCustodianCredential('alice', 'alice-secret-1', P);
const bob = hashCustodianCredential('bob', 'bob-secret-22', P);
const carol = hashCustodianCredential('carol', 'carol-secret-333', P);
const config: AuthConfig = { custodians: [alice, bob, carol], quorum: 2, maxDurationMs: 60_000 };
const creds = {
  alice: { id: 'alice', secret: 'alice-secret-1' },
  bob: { id: 'bob', secret: 'bob-secret-22' },
  carol: { id: 'carol', secret: 'carol-secret-333' },
};

function throwsHsm(fn: () => unknown, code: string, message: string, reply?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof HsmError, `expected HsmError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    if (reply !== undefined) assert.equal(e.reply, reply);
    return true;
  });
}

function fixture() {
  let now = 1_000_000;
  const auth = new Authorization(config, { now: () => now });
  return { auth, advance: (ms: number) => (now += ms) };
}

describe('authorization state', () => {
  test('the stored record holds a scrypt hash, not the secret', () => {
    assert.deepEqual(Object.keys(alice), ['id', 'N', 'r', 'p', 'salt', 'hash']);
    assert.ok(!JSON.stringify(alice).includes('alice-secret-1'));
    assert.match(alice.hash, /^[0-9a-f]{64}$/);
  });

  test('two custodians enter it for named activities, for a bounded time', () => {
    const { auth, advance } = fixture();
    throwsHsm(
      () => auth.require('A0.ZMK'),
      'HSM_NOT_AUTHORIZED',
      'A0.ZMK: needs the authorized state, which is not entered',
      '17',
    );
    const st = auth.enter([creds.alice, creds.bob], ['A0.ZMK', 'A4.*'], 10_000);
    assert.deepEqual(st, {
      authorized: true,
      activities: ['A0.ZMK', 'A4.*'],
      custodians: ['alice', 'bob'],
      expiresAtMs: 1_010_000,
    });
    auth.require('A0.ZMK');
    auth.require('A4.TMK');
    throwsHsm(
      () => auth.require('A0.TMK'),
      'HSM_NOT_AUTHORIZED',
      'A0.TMK: is not among the authorized activities',
    );
    advance(9_999);
    assert.equal(auth.isAuthorized('A0.ZMK'), true);
    advance(1);
    throwsHsm(() => auth.require('A0.ZMK'), 'HSM_NOT_AUTHORIZED', 'A0.ZMK: the authorized state has expired');
    assert.equal(auth.state().authorized, false);
  });

  test('exit ends it at once', () => {
    const { auth } = fixture();
    auth.enter([creds.carol, creds.alice], ['A0'], 1000);
    assert.equal(auth.isAuthorized('A0.ZPK'), true);
    auth.exit();
    assert.deepEqual(auth.state(), {
      authorized: false,
      activities: [],
      custodians: [],
      expiresAtMs: undefined,
    });
  });

  test('a wrong credential or an unknown custodian is refused, by position', () => {
    const { auth } = fixture();
    throwsHsm(
      () => auth.enter([creds.alice, { id: 'bob', secret: 'wrong-secret' }], ['A0.ZMK'], 1000),
      'HSM_AUTH_CREDENTIALS',
      'credentials[1]: unknown custodian or wrong credential',
    );
    throwsHsm(
      () => auth.enter([{ id: 'mallory', secret: 'whatever-123' }, creds.alice], ['A0.ZMK'], 1000),
      'HSM_AUTH_CREDENTIALS',
      'credentials[0]: unknown custodian or wrong credential',
    );
    assert.equal(auth.state().authorized, false);
  });

  test('one custodian twice is not dual control', () => {
    const { auth } = fixture();
    throwsHsm(
      () => auth.enter([creds.alice, creds.alice], ['A0.ZMK'], 1000),
      'HSM_AUTH_QUORUM',
      'credentials: 1 distinct custodian(s) presented credentials, 2 are needed',
    );
  });

  test('duration and activities are checked', () => {
    const { auth } = fixture();
    throwsHsm(
      () => auth.enter([creds.alice, creds.bob], ['A0.ZMK'], 60_001),
      'HSM_AUTH_CONFIG',
      'durationMs: must be an integer from 1 to 60000 (the configured maximum)',
    );
    throwsHsm(
      () => auth.enter([creds.alice, creds.bob], [], 1000),
      'HSM_AUTH_CONFIG',
      'activities: name at least one activity',
    );
    throwsHsm(
      () => auth.enter([creds.alice, creds.bob], ['generate everything'], 1000),
      'HSM_AUTH_CONFIG',
      'activities[0]: must be a command code, optionally with .KEYTYPE or .* (e.g. A0.ZMK)',
    );
  });

  const bad: [string, AuthConfig, string][] = [
    ['quorum 1', { ...config, quorum: 1 }, 'quorum: must be an integer of at least 2 (dual control)'],
    [
      'too few custodians',
      { ...config, custodians: [alice] },
      'custodians: must list at least quorum custodians',
    ],
    ['duration', { ...config, maxDurationMs: 0 }, 'maxDurationMs: must be an integer from 1 to 43200000'],
    ['duplicate id', { ...config, custodians: [alice, alice] }, 'custodians[1].id: is listed twice'],
    [
      'bad N',
      { ...config, custodians: [alice, { ...bob, N: 3 }] },
      'custodians[1].N: must be a power of 2 from 2^10 to 2^20',
    ],
    [
      'bad hash',
      { ...config, custodians: [alice, { ...bob, hash: 'x' }] },
      'custodians[1].hash: must be 64 hex digits',
    ],
    [
      'bad salt',
      { ...config, custodians: [alice, { ...bob, salt: '' }] },
      'custodians[1].salt: must be 16 to 64 bytes of hex',
    ],
  ];
  for (const [name, c, message] of bad) {
    test(`configuration refused: ${name}`, () =>
      throwsHsm(() => checkAuthConfig(c), 'HSM_AUTH_CONFIG', message));
  }

  test('credential records: id and secret rules', () => {
    throwsHsm(
      () => hashCustodianCredential('a b', 'long-enough', P),
      'HSM_AUTH_CONFIG',
      'id: must be 1-32 of A-Z, a-z, 0-9, . _ -',
    );
    throwsHsm(
      () => hashCustodianCredential('dave', 'short', P),
      'HSM_AUTH_CONFIG',
      'secret: must be at least 8 characters',
    );
  });
});
