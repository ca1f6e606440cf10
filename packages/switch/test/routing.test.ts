/**
 * The routing table (longest match, prefix and ranges, overlap refusal) and the config validation, as
 * data: each case states the expected result; every error path asserts its exact code and message.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { SwitchError } from '../src/errors.js';
import { loadRoutingTable, RoutingTable } from '../src/routing.js';
import { loadSwitchConfigFile, validateSwitchConfig } from '../src/config.js';

function throwsSwitch(fn: () => unknown, code: string, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SwitchError, `expected SwitchError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    return true;
  });
}

const table = RoutingTable.fromJson({
  routes: [
    { prefix: '622202', issuer: 'bank-a' },
    { low: '62220300', high: '62220399', issuer: 'bank-b', name: 'B debit' },
    { prefix: '62220350123', issuer: 'bank-c' },
    { low: '623000', high: '623999', issuer: 'bank-d' },
    { prefix: '62220210', issuer: 'bank-e' },
  ],
});

describe('routing: longest match', () => {
  const cases: [string, string | undefined, number | undefined][] = [
    ['6222021234567890', 'bank-a', 0], // 6-digit prefix
    ['6222021034567890', 'bank-e', 4], // the 8-digit prefix inside bank-a's BIN wins
    ['6222030012345678', 'bank-b', 1], // range low bound
    ['6222039912345678', 'bank-b', 1], // range high bound
    ['6222035012345678', 'bank-c', 2], // 11-digit prefix inside the 8-digit range wins
    ['6222035012245678', 'bank-b', 1], // one digit off the 11-digit prefix: back to the range
    ['6222040012345678', undefined, undefined], // above every range: 14
    ['6230001234567890', 'bank-d', 3],
    ['6239991234567890', 'bank-d', 3],
    ['6240001234567890', undefined, undefined],
    ['4111111111111111', undefined, undefined],
  ];
  for (const [pan, issuer, index] of cases) {
    test(`${pan.slice(0, 11)}... -> ${issuer ?? 'no route'}`, () => {
      const m = table.route(pan);
      assert.equal(m?.issuerId, issuer);
      assert.equal(m?.entry.index, index);
    });
  }

  test('a PAN shorter than an entry does not match it', () => {
    const t = RoutingTable.fromJson({ routes: [{ prefix: '12345678901', issuer: 'x' }] });
    assert.equal(t.route('1234567890'), undefined);
  });

  test('property: route() equals a brute-force longest match over random disjoint tables', () => {
    const entry = fc
      .tuple(fc.integer({ min: 6, max: 11 }), fc.nat(), fc.nat({ max: 50 }), fc.constantFrom('a', 'b', 'c'))
      .map(([len, start, width, issuer]) => {
        const base = 10 ** (len - 1) * 4; // all start with a 4: dense collisions between lengths
        const lo = base + (start % (10 ** (len - 1) - 60));
        return { len, low: String(lo), high: String(lo + width), issuer };
      });
    fc.assert(
      fc.property(
        fc.array(entry, { maxLength: 12 }),
        fc.array(fc.nat(), { minLength: 5, maxLength: 5 }),
        (es, picks) => {
          const routes = es.map((e) => ({ low: e.low, high: e.high, issuer: e.issuer }));
          let t: RoutingTable;
          try {
            t = RoutingTable.fromJson({ routes });
          } catch (e) {
            assert.equal((e as SwitchError).code, 'SWITCH_ROUTING_OVERLAP');
            return;
          }
          // PANs: near entry bounds (hits and misses) plus a random one.
          const pans = es.flatMap((e, i) => {
            const p = (picks[i % 5]! % 10_000_000).toString().padStart(7, '0');
            return [
              `${e.low}${p}`.padEnd(16, '1'),
              `${e.high}${p}`.padEnd(16, '9'),
              `${String(Number(e.high) + 1)}${p}`.padEnd(16, '0'),
            ];
          });
          pans.push('4000000000000000');
          for (const pan of pans) {
            let best: { issuer: string; len: number } | undefined;
            for (const r of routes) {
              const head = pan.slice(0, r.low.length);
              if (
                head.length === r.low.length &&
                head >= r.low &&
                head <= r.high &&
                (!best || r.low.length > best.len)
              )
                best = { issuer: r.issuer, len: r.low.length };
            }
            assert.equal(t.route(pan)?.issuerId, best?.issuer, pan);
          }
        },
      ),
      { seed: 20261125, numRuns: 300 },
    );
  });
});

describe('routing: load errors', () => {
  const cases: [string, unknown, string, string][] = [
    ['no routes array', {}, 'SWITCH_ROUTING_INVALID', 'routes: the routing document needs a "routes" array'],
    [
      'overlap of two 6-digit entries',
      {
        routes: [
          { low: '622200', high: '622299', issuer: 'a' },
          { prefix: '622250', issuer: 'b', name: 'B' },
        ],
      },
      'SWITCH_ROUTING_OVERLAP',
      'routes[1]: routes[1] (prefix 622250, B) overlaps routes[0] (622200..622299): both are 6 digits',
    ],
    [
      'overlap named by file order, whatever the sort order',
      {
        routes: [
          { prefix: '62220399', issuer: 'a' },
          { low: '62220300', high: '62220399', issuer: 'b' },
        ],
      },
      'SWITCH_ROUTING_OVERLAP',
      'routes[1]: routes[1] (62220300..62220399) overlaps routes[0] (prefix 62220399): both are 8 digits',
    ],
    [
      'the same prefix twice',
      {
        routes: [
          { prefix: '622202', issuer: 'a' },
          { prefix: '622202', issuer: 'a' },
        ],
      },
      'SWITCH_ROUTING_OVERLAP',
      'routes[1]: routes[1] (prefix 622202) overlaps routes[0] (prefix 622202): both are 6 digits',
    ],
    [
      'prefix too short',
      { routes: [{ prefix: '62220', issuer: 'a' }] },
      'SWITCH_ROUTING_INVALID',
      'routes[0]: prefix must be a string of 6 to 11 digits',
    ],
    [
      'prefix too long',
      { routes: [{ prefix: '622202123456', issuer: 'a' }] },
      'SWITCH_ROUTING_INVALID',
      'routes[0]: prefix must be a string of 6 to 11 digits',
    ],
    [
      'prefix as a number',
      { routes: [{ prefix: 622202, issuer: 'a' }] },
      'SWITCH_ROUTING_INVALID',
      'routes[0]: prefix must be a string of 6 to 11 digits',
    ],
    [
      'lengths differ',
      { routes: [{ low: '622202', high: '6222029', issuer: 'a' }] },
      'SWITCH_ROUTING_INVALID',
      'routes[0]: low and high must have the same number of digits',
    ],
    [
      'low above high',
      { routes: [{ low: '622299', high: '622200', issuer: 'a' }] },
      'SWITCH_ROUTING_INVALID',
      'routes[0]: low is above high',
    ],
    [
      'prefix and range',
      { routes: [{ prefix: '622202', low: '622200', high: '622299', issuer: 'a' }] },
      'SWITCH_ROUTING_INVALID',
      'routes[0]: has both prefix and low/high',
    ],
    [
      'only low',
      { routes: [{ low: '622200', issuer: 'a' }] },
      'SWITCH_ROUTING_INVALID',
      'routes[0]: needs prefix, or both low and high',
    ],
    [
      'bad issuer id',
      { routes: [{ prefix: '622202', issuer: 'bank a' }] },
      'SWITCH_ROUTING_INVALID',
      'routes[0]: issuer must be an id of 1 to 32 characters A-Z a-z 0-9 _ . -',
    ],
    [
      'unknown key',
      { routes: [{ prefix: '622202', issuer: 'a', bin: '1' }] },
      'SWITCH_ROUTING_INVALID',
      'routes[0]: unknown key "bin" (expected prefix or low/high, issuer, name)',
    ],
    ['entry not an object', { routes: ['622202'] }, 'SWITCH_ROUTING_INVALID', 'routes[0]: must be an object'],
  ];
  for (const [name, doc, code, message] of cases) {
    test(name, () => throwsSwitch(() => RoutingTable.fromJson(doc), code, message));
  }

  test('loadRoutingTable: file errors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'switch-routing-'));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ routes: ');
    await assert.rejects(loadRoutingTable(bad), (e: unknown) => {
      assert.equal((e as SwitchError).code, 'SWITCH_FILE_READ');
      assert.equal((e as SwitchError).message, `routingFile: ${bad} is not JSON`);
      return true;
    });
    const missing = join(dir, 'missing.json');
    await assert.rejects(loadRoutingTable(missing), (e: unknown) => {
      assert.equal((e as SwitchError).code, 'SWITCH_FILE_READ');
      assert.equal((e as SwitchError).message, `routingFile: cannot read ${missing} (ENOENT)`);
      return true;
    });
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ routes: [{ prefix: '622202', issuer: 'a' }] }));
    assert.equal((await loadRoutingTable(good)).route('6222020000000000')?.issuerId, 'a');
  });
});

describe('config validation', () => {
  const KB = `S${'0'.repeat(20)}`;
  const base = () => ({
    institutionId: '49990000',
    acquirers: [{ id: '48020000', zpk: KB, zak: KB }],
    issuers: [{ id: 'bank-a', host: '127.0.0.1', port: 7001, zpk: KB, zak: KB }],
    routingFile: 'routing.json',
    databasePath: 'switch.db',
    hsm: { host: '127.0.0.1', port: 1500 },
  });
  const cases: [string, (c: Record<string, unknown>) => void, string][] = [
    [
      'institution id not digits',
      (c) => (c.institutionId = 'SWITCH'),
      'config.institutionId: must be 1 to 11 digits',
    ],
    ['no acquirers', (c) => (c.acquirers = []), 'config.acquirers: must be a non-empty array'],
    [
      'acquirer id not a field 32',
      (c) => ((c.acquirers as { id: string }[])[0]!.id = 'ACQ'),
      'config.acquirers[0].id: must be 1 to 11 digits (the field 32 it sends)',
    ],
    [
      'clear key instead of a key block',
      (c) => ((c.acquirers as { zak: string }[])[0]!.zak = '0123456789ABCDEFFEDCBA9876543210'),
      'config.acquirers[0].zak: must be a key block under the LMK (S followed by 15 to 4095 printable characters)',
    ],
    [
      'duplicate acquirer',
      (c) => (c.acquirers as unknown[]).push({ id: '48020000', zpk: KB, zak: KB }),
      "config.acquirers[1].id: duplicates another acquirer's id 48020000",
    ],
    [
      'issuer port out of range',
      (c) => ((c.issuers as { port: number }[])[0]!.port = 70000),
      'config.issuers[0].port: must be an integer from 1 to 65535',
    ],
    [
      'both routing and routingFile',
      (c) => (c.routing = { routes: [] }),
      'config.routingFile: give exactly one of routingFile (a path) and routing (the table inline)',
    ],
    [
      'issuer timeout beyond the maximum',
      (c) => (c.timeouts = { issuerMs: 15_000_000 }),
      'config.timeouts.issuerMs: must be an integer from 1 to 600000',
    ],
    [
      'unknown limit',
      (c) => (c.limits = { maxQueue: 5 }),
      'config.limits: unknown key "maxQueue" (expected maxConnections, maxInFlightPerLink)',
    ],
    ['hsm neither object nor endpoint', (c) => (c.hsm = 'localhost:1500'), 'config.hsm: must be an object'],
  ];
  for (const [name, edit, message] of cases) {
    test(name, () => {
      const c = base() as unknown as Record<string, unknown>;
      edit(c);
      throwsSwitch(() => validateSwitchConfig(c), 'SWITCH_CONFIG_INVALID', message);
    });
  }

  test('defaults are docs/network.md limits', () => {
    const c = validateSwitchConfig(base());
    assert.deepEqual(c.timeouts, {
      issuerMs: 15_000,
      hsmMs: 5_000,
      idleMs: 300_000,
      connectMs: 5_000,
      reconnectDelayMs: 200,
      reconnectMaxDelayMs: 5_000,
    });
    assert.deepEqual(c.limits, { maxConnections: 1000, maxInFlightPerLink: 256 });
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 0 });
  });

  test('a config file resolves its relative paths against its own directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'switch-config-'));
    const p = join(dir, 'switch.json');
    writeFileSync(p, JSON.stringify(base()));
    const c = await loadSwitchConfigFile(p);
    assert.equal(c.routingFile, join(dir, 'routing.json'));
    assert.equal(c.databasePath, join(dir, 'switch.db'));
  });
});
