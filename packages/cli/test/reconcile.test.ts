/**
 * `posp reconcile` end to end over real TCP on loopback (the network of network.test.ts: a directory set
 * up by `setupNetwork`, every service started in this process by the harness). The seed's failure (b):
 * the issuer debits, its answer is lost on the way back (its MAC corrupted on the switch–bank-a leg: the
 * switch treats it as no answer, 91), so the POSP has no approval and the terminal printed no slip while
 * the cardholder's money is gone. Every reversal towards bank-a is corrupted too, so nothing heals it
 * during the test (the POSP's store and forward cannot deliver). Then reconcile finds it as
 * `issuer-debited-acquirer-failed`, --apply refunds it at the issuer, and the second pass shows nothing
 * unexplained; a third run changes nothing.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PINPAD_SCRYPT_N_MIN, type Terminal } from '@openposp/terminal';
import { demoCard, track2Of } from '../src/network/cards.js';
import type { NetworkManifest } from '../src/network/layout.js';
import { setupNetwork } from '../src/network/setup.js';
import type { ReconcileReport } from '../src/reconcile.js';
import { type AcquirerConfig, type AcquirerHandle, startAcquirer } from '@openposp/acquirer';
import { openSealedLmk, type RunningHsm, serveHsm } from '@openposp/hsm';
import { type IssuerHandle, loadIssuerConfig, startIssuer } from '@openposp/issuer';
import { loadSwitchConfigFile, startSwitch, type SwitchHandle } from '@openposp/switch';
import { FrameProxy, openTerminal } from './network-harness.js';
import { runPosp } from './run.js';

let dir: string;
let m: NetworkManifest;
let net: Net;
let term: Terminal;
const ok = demoCard('ok');
const card = { track2: track2Of(ok) };
const now = new Date();
// The terminal's local date (field 13) and the POSP's local day: the process's local time here.
const DATE = `${now.getFullYear()}${String(now.getMonth() + 1).padStart(2, '0')}${String(now.getDate()).padStart(2, '0')}`;

const mtiOf = (frame: Uint8Array) => Buffer.from(frame.subarray(0, 2)).toString('hex');
const flipLast = (frame: Uint8Array) => {
  const f = frame.slice();
  f[f.length - 1]! ^= 0x01;
  return f;
};

async function balance(): Promise<number> {
  return (await net.issuers.get('bank-a')!.issuer.card(ok.pan))!.balance.availableMinor;
}

interface Net {
  issuers: Map<string, IssuerHandle>;
  legs: { switchToBankA: FrameProxy };
  close(): Promise<void>;
}

/**
 * The network of the directory in this process, as network-harness.ts `startInProcess` does, with a
 * proxy on the switch–bank-a leg; the POSP from its config file as written (startAcquirer validates
 * it), and everything started so far closed again when a start fails (no test process left hanging).
 */
async function startNetwork(mf: NetworkManifest): Promise<Net> {
  const stops: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    const lmk = openSealedLmk(mf.hsm.sealed, { componentFiles: mf.hsm.components });
    stops.push(async () => lmk.destroy());
    const hsm: RunningHsm = await serveHsm({
      lmk,
      port: mf.hsm.port,
      host: mf.host,
      auditPath: mf.hsm.audit,
    });
    stops.push(() => hsm.stop());
    const issuers = new Map<string, IssuerHandle>();
    for (const i of mf.issuers) {
      const h = await startIssuer(loadIssuerConfig(i.config));
      stops.push(() => h.close());
      issuers.set(i.id, h);
    }
    const bankA = mf.issuers.find((i) => i.id === 'bank-a')!;
    const switchToBankA = await FrameProxy.start({ host: mf.host, port: bankA.port });
    stops.push(() => switchToBankA.close());
    const swConfig = await loadSwitchConfigFile(mf.switch.config);
    const sw: SwitchHandle = await startSwitch({
      ...swConfig,
      issuers: swConfig.issuers.map((i) => (i.id === 'bank-a' ? { ...i, port: switchToBankA.port } : i)),
    });
    stops.push(() => sw.close());
    const posp: AcquirerHandle = await startAcquirer(
      JSON.parse(readFileSync(mf.posp.config, 'utf8')) as AcquirerConfig,
    );
    stops.push(() => posp.close());
    return { issuers, legs: { switchToBankA }, close };
  } catch (e) {
    await close();
    throw e;
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'posp-reconcile-'));
  m = await setupNetwork(dir, { pinPadScryptN: PINPAD_SCRYPT_N_MIN });
  net = await startNetwork(m);
  term = await openTerminal(m, 'POS00001');
  assert.equal((await term.signIn()).status, 'approved');
});

after(async () => {
  await term?.close();
  await net?.close();
});

let lostStan: string;

test('a purchase approved at every party, then one whose issuer answer is lost: debited, no approval at the POSP', async () => {
  const start = await balance();
  const good = await term.purchase({ card, amountMinor: 1500, pin: ok.pin });
  assert.equal(good.responseCode, '00');

  let armed = true;
  net.legs.switchToBankA.onAnswer = (f) => {
    if (armed && mtiOf(f) === '0210') {
      armed = false;
      return flipLast(f); // the issuer's approval, its MAC broken: no answer for the switch (91)
    }
    return f;
  };
  // No reversal reaches bank-a during this test (the terminal's or the POSP's own advice).
  net.legs.switchToBankA.onRequest = (f) => (mtiOf(f).startsWith('04') ? flipLast(f) : f);
  const lost = await term.purchase({ card, amountMinor: 2300, pin: ok.pin });
  assert.notEqual(lost.responseCode, '00', 'no approval reached the terminal');
  assert.equal(armed, false, 'the issuer answered');
  lostStan = lost.stan!;
  assert.equal(await balance(), start - 1500 - 2300, 'the issuer debited both');
});

test('posp reconcile: the lost one is issuer-debited-acquirer-failed (refund), the good one matched; report written', async () => {
  const r = await runPosp(['reconcile', '--date', DATE, '--dir', dir, '--json']);
  assert.equal(r.code, 0, r.err);
  const report = JSON.parse(r.out) as ReconcileReport;
  assert.deepEqual(
    report.files.map((f) => f.party),
    ['acquirer', 'switch', 'bank-a', 'bank-b'],
  );
  const mine = report.before.mismatches.filter((x) => x.identity.terminalId === 'POS00001');
  assert.deepEqual(
    mine.map((x) => [x.identity.stan, x.type, x.class, x.resolution.action]),
    [[lostStan, 'purchase', 'issuer-debited-acquirer-failed', 'refund']],
  );
  const x = mine[0]!;
  assert.equal(x.parties.issuer.party, 'bank-a');
  assert.equal(x.parties.issuer.state, 'approved');
  assert.equal(x.parties.switch.state, 'unknown');
  // Joined by identity with the POSP's record: the switch's 91 (no issuer answer it could believe) is
  // "sent, outcome unknown" at the POSP too, not a decline (it owes its own reversal advice).
  assert.equal(x.parties.acquirer.state, 'unknown');
  assert.equal(x.parties.acquirer.responseCode, '', 'no answer the POSP believed (its 91 was its own)');
  assert.equal(x.parties.acquirer.amountMinor, 2300);
  assert.ok(report.before.matched >= 1);
  assert.equal(report.after, null);
  assert.deepEqual(report.applied, []);
  assert.ok(existsSync(join(dir, `reconcile-${DATE}.json`)));
  // The clearing files hold the masked PAN only.
  for (const name of readdirSync(join(dir, 'clearing'))) {
    const text = readFileSync(join(dir, 'clearing', name), 'utf8');
    assert.ok(!text.includes(ok.pan), `${name}: no full PAN`);
  }
  const text = await runPosp(['reconcile', '--date', DATE, '--dir', dir]);
  assert.equal(text.code, 0);
  assert.match(text.out, /issuer-debited-acquirer-failed \(1, refund\):/);
  assert.ok(text.out.includes(`stan ${lostStan}`));
});

test('posp reconcile --apply: refunded at the issuer (ledger balanced), then nothing unexplained; again: nothing changes', async () => {
  const debited = await balance();
  const r = await runPosp(['reconcile', '--date', DATE, '--dir', dir, '--apply', '--json']);
  assert.equal(r.code, 0, r.err);
  const report = JSON.parse(r.out) as ReconcileReport;
  assert.deepEqual(
    report.applied.map((a) => [a.identity.stan, a.issuer, a.responseCode, a.replay]),
    [[lostStan, 'bank-a', '00', false]],
  );
  assert.equal(await balance(), debited + 2300, 'the debit is back');
  assert.deepEqual(report.unexplained, []);
  assert.deepEqual(
    report.after!.mismatches.filter((x) => x.resolution.action !== 'none'),
    [],
    'nothing to refund, exclude or confirm',
  );
  const audit = await net.issuers.get('bank-a')!.issuer.auditLedger();
  assert.deepEqual(audit.problems, []);
  const [orig] = await net.issuers.get('bank-a')!.issuer.inquire({
    acquirerId: report.applied[0]!.identity.acquirerId,
    terminalId: 'POS00001',
    stan: lostStan,
    localDate: DATE.slice(4),
  });
  assert.equal(orig!.state, 'reversed');
  const saved = JSON.parse(readFileSync(join(dir, `reconcile-${DATE}.json`), 'utf8')) as ReconcileReport;
  assert.equal(saved.applied.length, 1);

  const again = await runPosp(['reconcile', '--date', DATE, '--dir', dir, '--apply', '--json']);
  assert.equal(again.code, 0, again.err);
  const second = JSON.parse(again.out) as ReconcileReport;
  assert.deepEqual(second.applied, []);
  assert.equal(await balance(), debited + 2300);
});

test('posp reconcile: bad arguments are refused with exact messages', async () => {
  const bad = await runPosp(['reconcile', '--date', '2026-11-25', '--dir', dir]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /^posp reconcile: CLI_REQUEST_INVALID: --date: must be YYYYMMDD\n/);
  const noDir = await runPosp(['reconcile', '--date', DATE]);
  assert.equal(noDir.code, 2);
  assert.match(noDir.err, /^posp reconcile: CLI_REQUEST_INVALID: --dir: is required\n/);
  const cal = await runPosp(['reconcile', '--date', '20261131', '--dir', dir]);
  assert.equal(cal.code, 2);
  assert.match(cal.err, /^posp reconcile: RECON_DATE_INVALID: date: must be a date YYYYMMDD\n/);
});
