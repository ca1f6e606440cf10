/**
 * The POSP's edges: bounds (a slow HSM), concurrent duplicates, what the wire can throw at it, the HSM
 * over TCP, terminal registration, inquiries, configuration, and the network-leg MAC with field 90 (in 128).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { macX919, toHex } from '@openposp/crypto';
import { Iso8583Message, joinCupFrame, splitCupFrame, unpack } from '@openposp/iso8583';
import fc from 'fast-check';
import {
  ACQUIRER_ERROR_CODES,
  AcquirerError,
  bounded,
  loadAcquirerConfig,
  loadTerminalsFile,
  checkMessageMac,
  localTimeOf,
  packWithMac,
  resolveMmdd,
  validateAcquirerConfig,
} from '../src/index.js';
import { cup, HEADER, MERCHANT_ID, net, startHarness, TERMINAL_ID, TestTerminal, TPDU } from './harness.js';

const rc = (m: { get(p: number): unknown }): unknown => m.get(39);

/** Asserts that `fn` rejects with an AcquirerError of this code and exact message. */
async function rejectsWith(fn: () => unknown, code: string, message: string): Promise<void> {
  await assert.rejects(
    async () => fn(),
    (e: unknown) => {
      assert.ok(e instanceof AcquirerError, String(e));
      assert.equal(e.code, code);
      assert.equal(e.message, message);
      return true;
    },
  );
}

test('a slow HSM: the PIN translation step is bounded and answered 96; the journal says declined', async () => {
  const h = await startHarness({
    wrapHsm: (hsm) => ({
      keyCheckValue: (k) => hsm.keyCheckValue(k),
      generateTerminalWorkingKeys: (k) => hsm.generateTerminalWorkingKeys(k),
      generateMac: (r) => hsm.generateMac(r),
      verifyMac: (r) => hsm.verifyMac(r),
      translatePinTpkToZpk: () => new Promise(() => {}),
      encryptData: (r) => hsm.encryptData(r),
      decryptData: (r) => hsm.decryptData(r),
    }),
  });
  try {
    const t = h.terminal;
    await t.signIn();
    // The harness bounds HSM calls at 2000 ms.
    const started = Date.now();
    const { answer, message } = await t.send(t.mac(t.financial('purchase')));
    assert.equal(rc(answer), '96');
    assert.ok(Date.now() - started < 3500);
    assert.ok(t.answerMacOk(message));
    assert.equal(h.seen.length, 0);
    const e = await h.posp.inquire(String(answer.get(37)));
    assert.equal(e?.state, 'declined');
    assert.equal(e?.responseCode, '96');
    assert.ok(h.logLines.some((l) => l.includes('"errorCode":"ACQUIRER_STEP_TIMEOUT"')));
  } finally {
    await h.close();
  }
});

test('the same request on two connections at once: one switch request, both get the same answer', async () => {
  const h = await startHarness({ switchMs: 2000 });
  try {
    const t = h.terminal;
    await t.signIn();
    const other = await TestTerminal.connect(h.posp.port, h.tmkClear);
    other.keys = t.keys;
    h.behaviour.fn = () => ({ code: '00', delayMs: 150 });
    const m = t.mac(t.financial('purchase', { amount: 55 }));
    const [a, b] = await Promise.all([t.send(m), other.send(m)]);
    await other.close();
    assert.equal(h.seen.length, 1);
    assert.equal(rc(a.answer), '00');
    assert.deepEqual(b.message, a.message);
  } finally {
    await h.close();
  }
});

/** Sends raw frames on one socket and collects the answers (each a length-prefixed frame). */
function rawExchange(port: number, frames: Uint8Array[], expected: number): Promise<Uint8Array[]> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const out: Uint8Array[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`only ${out.length} answers`));
    }, 3000);
    s.on('data', (c) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        out.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (out.length === expected) {
        clearTimeout(timer);
        s.end();
        resolve(out);
      }
    });
    s.on('error', reject);
    for (const f of frames) {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(f.length);
      s.write(Buffer.concat([len, f]));
    }
  });
}

test('garbage on the wire is dropped (bad TPDU, truncated message) and the next request is served', async () => {
  const h = await startHarness();
  try {
    const signIn = h.terminal.signInMessage('000777').pack().slice();
    const badTpdu = joinCupFrame({ tpdu: TPDU, header: HEADER, message: signIn });
    badTpdu[0] = 0x61;
    const truncated = joinCupFrame({
      tpdu: TPDU,
      header: HEADER,
      message: signIn.subarray(0, signIn.length - 3),
    });
    const good = joinCupFrame({ tpdu: TPDU, header: HEADER, message: signIn });
    const answers = await rawExchange(h.posp.port, [badTpdu, truncated, Uint8Array.of(1, 2, 3), good], 1);
    const parts = splitCupFrame(answers[0]!);
    // The TPDU of the answer swaps destination and source (cup-pos-dialect.md 2.1).
    assert.deepEqual(parts.tpdu, { destination: TPDU.source, source: TPDU.destination });
    assert.deepEqual(parts.header, HEADER);
    const a = unpack(cup, parts.message);
    assert.equal(a.get(11), '000777');
    assert.equal(rc(a), '00');
    assert.ok(h.logLines.filter((l) => l.includes('dropped')).length >= 3);
  } finally {
    await h.close();
  }
});

test('an 0820 sign-off and an unknown transaction type are answered 12, an 0400 without 39 and 61 30, MACed', async () => {
  const h = await startHarness();
  try {
    const t = h.terminal;
    await t.signIn();
    const odd = t.financial('purchase');
    odd.set('60.1', '99');
    const r1 = await t.send(t.mac(odd));
    assert.equal(rc(r1.answer), '12');
    assert.ok(t.answerMacOk(r1.message));
    const rev = t.financial('purchase');
    rev.mti = '0400';
    const r2 = await t.send(t.mac(rev));
    assert.equal(r2.answer.mti, '0410');
    assert.equal(rc(r2.answer), '30');
    assert.ok(t.answerMacOk(r2.message));
    const off = t.financial('purchase');
    off.mti = '0820';
    const r3 = await t.send(t.mac(off));
    assert.equal(r3.answer.mti, '0830');
    assert.equal(rc(r3.answer), '12');
  } finally {
    await h.close();
  }
});

test('the HSM over TCP (HsmServer + HsmClient from { host, port }): sign-in and a purchase', async () => {
  const h = await startHarness({ hsmOverTcp: true });
  try {
    const t = h.terminal;
    await t.signIn();
    const { answer, message } = await t.send(t.mac(t.financial('purchase')));
    assert.equal(rc(answer), '00');
    assert.ok(t.answerMacOk(message));
    assert.equal(h.seen[0]?.macOk, true);
  } finally {
    await h.close();
  }
});

test('terminal registration: the HSM checks the TMK block; a check value must match; a changed TMK drops the keys', async () => {
  const h = await startHarness();
  try {
    await rejectsWith(
      () => h.posp.registerTerminal({ terminalId: 'T2', merchantId: MERCHANT_ID, tmk: h.tmkBlock }),
      'ACQUIRER_TERMINAL_INVALID',
      'terminal.terminalId: must be 8 printable ASCII characters (field 41)',
    );
    const altered = `${h.tmkBlock.slice(0, -1)}${h.tmkBlock.endsWith('0') ? '1' : '0'}`;
    await rejectsWith(
      () => h.posp.registerTerminal({ terminalId: '10000002', merchantId: MERCHANT_ID, tmk: altered }),
      'ACQUIRER_TERMINAL_INVALID',
      'terminal.tmk: the HSM does not accept this key block (wrong LMK, altered, or not a key block)',
    );
    await rejectsWith(
      () =>
        h.posp.registerTerminal({
          terminalId: '10000002',
          merchantId: MERCHANT_ID,
          tmk: h.tmkBlock,
          tmkCheckValue: '000000',
        }),
      'ACQUIRER_TERMINAL_INVALID',
      'terminal.tmkCheckValue: does not match the check value of the TMK key block',
    );
    const kcv = await h.hsm.keyCheckValue(h.tmkBlock);
    const rec = await h.posp.registerTerminal({
      terminalId: '10000002',
      merchantId: MERCHANT_ID,
      tmk: h.tmkBlock,
      tmkCheckValue: kcv,
    });
    assert.equal(rec.tak, undefined);
    assert.equal(JSON.stringify(rec).includes('S1'), false, 'toJSON shows no key block');
    await h.terminal.signIn();
    const other = await h.hsm.generateKey({ keyType: 'TMK', algorithm: 'T', keyLengthBytes: 16 });
    const re = await h.posp.registerTerminal({
      terminalId: TERMINAL_ID,
      merchantId: MERCHANT_ID,
      tmk: other.keyBlock,
    });
    assert.equal(re.tak, undefined);
    assert.equal(re.signedInDate, undefined);
  } finally {
    await h.close();
  }
});

test('inquire: errors name the field', async () => {
  const h = await startHarness();
  try {
    await rejectsWith(() => h.posp.inquire('12345'), 'ACQUIRER_INQUIRY_INVALID', 'rrn: must be 12 digits');
    await rejectsWith(
      () => h.posp.inquire({ terminalId: TERMINAL_ID, stan: '1', date: '25/11' }),
      'ACQUIRER_INQUIRY_INVALID',
      'date: must be MMDD or YYYYMMDD',
    );
    assert.equal(await h.posp.inquire('000000000001'), undefined);
  } finally {
    await h.close();
  }
});

const baseConfig = () => ({
  listen: { port: 0 },
  switch: { host: '127.0.0.1', port: 9 },
  acquirerId: '48020000',
  zoneKeys: { zpk: 'S10096P0TB00E0000AAAA', zak: 'S10096M3TC00E0000BBBB' },
  dataKey: 'S10096D0AB00N0000CCCC',
  databasePath: 'posp.sqlite',
  hsm: { host: '127.0.0.1', port: 1500 },
});

test('config: every path is checked, with the path in the error', () => {
  const cases: [(c: Record<string, unknown>) => void, string][] = [
    [(c) => (c.listen = { port: 70000 }), 'listen.port: must be an integer from 0 to 65535'],
    [(c) => (c.switch = { host: '', port: 1 }), 'switch.host: must be a host name or address'],
    [(c) => (c.acquirerId = '4802000012345'), 'acquirerId: must be 1 to 11 digits'],
    [
      (c) => (c.zoneKeys = { zpk: 'X', zak: 'S10096M3TC00E0000BBBB' }),
      'zoneKeys.zpk: must be an HSM key block under the LMK (starts with S)',
    ],
    [
      (c) => delete c.dataKey,
      'dataKey: is required: a data key block (HSM A0, key type DEK) to seal the PAN of an owed reversal advice (posp setup makes one)',
    ],
    [(c) => (c.dataKey = 'DEK'), 'dataKey: must be an HSM key block under the LMK (starts with S)'],
    [(c) => (c.hsm = { host: 'h' }), 'hsm.port: must be an integer from 1 to 65535'],
    [(c) => (c.timeouts = { switchMs: 0 }), 'timeouts.switchMs: must be an integer from 1 to 600000'],
    [(c) => (c.timeouts = { switchMS: 1 }), 'timeouts.switchMS: unknown key'],
    [(c) => (c.currency = 'CNY'), 'currency: must be 3 digits (ISO 4217 numeric)'],
    [(c) => (c.colour = 'blue'), 'colour: unknown key'],
    [(c) => (c.saf = { maxAttempts: 0 }), 'saf.maxAttempts: must be an integer from 1 to 2147483647'],
    [(c) => (c.saf = { retries: 3 }), 'saf.retries: unknown key'],
    [(c) => (c.saf = { enabled: 'yes' }), 'saf.enabled: must be true or false'],
    [
      (c) => (c.settlement = { feeBasisPoints: 10001 }),
      'settlement.feeBasisPoints: must be an integer from 0 to 10000',
    ],
    [
      (c) => (c.terminals = [{ terminalId: '10000001', merchantId: 'short', tmk: 'S1234567890123456789' }]),
      'terminals[0].merchantId: must be 15 printable ASCII characters (field 42)',
    ],
  ];
  for (const [edit, message] of cases) {
    const c: Record<string, unknown> = baseConfig();
    edit(c);
    assert.throws(
      () => validateAcquirerConfig(c),
      (e: unknown) =>
        e instanceof AcquirerError && e.code === 'ACQUIRER_CONFIG_INVALID' && e.message === message,
      message,
    );
  }
  const ok = validateAcquirerConfig(baseConfig());
  assert.deepEqual(ok.timeouts, { switchMs: 20000, hsmMs: 5000, dbMs: 5000 });
  assert.equal(ok.currency, '156');
  assert.deepEqual(ok.saf, {
    baseDelayMs: 2000,
    maxDelayMs: 60000,
    maxAttempts: 12,
    maxAgeMs: 86400000,
    pollMs: 1000,
    batchSize: 32,
    concurrency: 8,
    enabled: true,
  });
  assert.deepEqual(ok.settlement, { feeBasisPoints: 0 });
  // A resolved config validates again to itself (startAcquirer(loadAcquirerConfig(path)) validates twice).
  assert.deepEqual(validateAcquirerConfig(ok), ok);
});

test('config file: relative paths resolve against its folder; the terminals file is checked', () => {
  const dir = mkdtempSync(join(tmpdir(), 'posp-cfg-'));
  try {
    const path = join(dir, 'posp.json');
    writeFileSync(
      path,
      JSON.stringify({ ...baseConfig(), terminalsFile: 'terminals.json', logPath: 'logs/posp.log' }),
    );
    const c = loadAcquirerConfig(path);
    assert.equal(c.databasePath, join(dir, 'posp.sqlite'));
    assert.equal(c.terminalsFile, join(dir, 'terminals.json'));
    assert.equal(c.logPath, join(dir, 'logs/posp.log'));
    writeFileSync(
      join(dir, 'terminals.json'),
      JSON.stringify([{ terminalId: '10000001', merchantId: MERCHANT_ID, tmk: 'nope' }]),
    );
    assert.throws(() => loadTerminalsFile(join(dir, 'terminals.json')), {
      code: 'ACQUIRER_CONFIG_INVALID',
      message: 'terminalsFile[0].tmk: must be an HSM key block under the LMK (starts with S)',
    });
    writeFileSync(path, '{ not json');
    assert.throws(() => loadAcquirerConfig(path), {
      code: 'ACQUIRER_CONFIG_READ',
      message: 'config: the file is not valid JSON',
    });
    assert.throws(() => loadAcquirerConfig(join(dir, 'missing.json')), {
      code: 'ACQUIRER_CONFIG_READ',
      message: 'config: the file cannot be read',
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bounded: a step over its bound rejects ACQUIRER_STEP_TIMEOUT naming it', async () => {
  await rejectsWith(
    () => bounded(new Promise(() => {}), 20, 'translatePin'),
    'ACQUIRER_STEP_TIMEOUT',
    'step.translatePin: did not finish within 20 ms',
  );
  assert.equal(await bounded(Promise.resolve(7), 20, 'x'), 7);
});

test('every error code is thrown somewhere in the source (and every one thrown is listed)', () => {
  const dir = new URL('../src/', import.meta.url);
  const src = [
    'config.ts',
    'server.ts',
    'terminals.ts',
    'pipeline.ts',
    'journal.ts',
    'saf.ts',
    'reversal.ts',
    'settlement.ts',
    'mac.ts',
    'panvault.ts',
  ]
    .map((f) => readFileSync(new URL(f, dir), 'utf8'))
    .join('\n');
  const thrown = new Set([...src.matchAll(/AcquirerError\(\s*'([A-Z_]+)'/g)].map((m) => m[1]));
  for (const code of Object.keys(ACQUIRER_ERROR_CODES))
    assert.ok(thrown.has(code), `${code} is never thrown`);
  for (const code of thrown) assert.ok(code! in ACQUIRER_ERROR_CODES, `${code} is not listed`);
});

test('resolveMmdd: the year that puts MMDD nearest the POSP date (property, within 150 days)', () => {
  assert.equal(resolveMmdd('1231', '20270101'), '20261231');
  assert.equal(resolveMmdd('0101', '20261231'), '20270101');
  fc.assert(
    fc.property(
      fc.integer({ min: Date.UTC(2001, 0, 1), max: Date.UTC(2098, 0, 1) }),
      fc.integer({ min: -150, max: 150 }),
      (t, days) => {
        const today = localTimeOf(new Date(t), 0).date;
        const when = localTimeOf(new Date(t + days * 86_400_000), 0);
        return resolveMmdd(when.mmdd, today) === when.date;
      },
    ),
  );
});

test('network-leg MAC with field 90: in 128, X9.19 of the bytes minus their last 8 (bit 128 set, 90 covered)', async () => {
  const h = await startHarness();
  try {
    const scheme = { key: h.zak.block, algorithm: 'iso9797-1-3', padding: 1 } as const;
    await fc.assert(
      fc.asyncProperty(fc.stringMatching(/^\d{42}$/), fc.boolean(), async (f90, staleMac) => {
        const m = new Iso8583Message(net, '0200', { 3: '020000', 11: '000001', 41: TERMINAL_ID, 90: f90 });
        if (staleMac) m.set(64, new Uint8Array(8).fill(0xee)); // a MAC left in 64 is dropped, never kept
        const bytes = await packWithMac(h.hsm, net, m, scheme);
        assert.equal(bytes[2]! & 0x80, 0x80, 'secondary bitmap');
        assert.equal(m.has(64), false);
        assert.deepEqual(m.get(128), bytes.subarray(bytes.length - 8));
        const mab = bytes.subarray(0, bytes.length - 8);
        // Independent of the HSM: X9.19 under the clear ZAK (the switch's copy).
        assert.equal(toHex(macX919(h.zak.clear, mab, { padding: 1 })), toHex(m.get(128) as Uint8Array));
        assert.equal(mab[2 + 15]! & 1, 1, 'bit 128 set in the MAB');
        assert.equal(mab[2 + 7]! & 1, 0, 'bit 64 clear');
        assert.equal(
          Buffer.from(mab.subarray(mab.length - 21)).toString('hex'),
          f90,
          '90 right before the MAC',
        );
        assert.equal(await checkMessageMac(h.hsm, net, bytes, scheme), 'ok');
        const changed = bytes.slice();
        changed[changed.length - 9]! ^= 0x01; // a digit of field 90
        assert.equal(await checkMessageMac(h.hsm, net, changed, scheme), 'bad');
      }),
      { numRuns: 25 },
    );
    // Without a field after 64 the MAC is in 64; a MAC in 64 beside field 90 is not the last field: missing.
    const p = new Iso8583Message(net, '0200', { 3: '000000', 11: '000001' });
    const packed = await packWithMac(h.hsm, net, p, scheme);
    assert.equal(packed[2]! & 0x80, 0);
    assert.equal((p.get(64) as Uint8Array).length, 8);
    const old = new Iso8583Message(net, '0200', { 3: '020000', 64: new Uint8Array(8), 90: '0'.repeat(42) });
    assert.equal(await checkMessageMac(h.hsm, net, old.pack().slice(), scheme), 'missing');
    assert.equal(await checkMessageMac(h.hsm, net, new Uint8Array([0x02, 0x00, 0x01]), scheme), 'missing');
  } finally {
    await h.close();
  }
});
