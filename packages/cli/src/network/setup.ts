/**
 * Sets up a demo network in a directory: every key ceremony against a running HSM, then every config
 * file. What a real network does over weeks with custodians, key-injection rooms and card bureaus, in
 * one call, with the same rule throughout: a clear key exists only as components (generated here,
 * handed to the HSM or a PIN pad, then wiped) and inside the HSM or a PIN pad.
 *
 * 1. LMK: two custodian component files, the LMK formed and sealed under them (`posp hsm init`).
 * 2. The HSM is started from the sealed LMK (in this process, on a loopback port) with two custodians
 *    configured; they enter the authorized state for A4 (forming a ZMK or TMK from components) for
 *    the ceremony only. Every other step is an HSM host command over TCP (HsmClient), as a key
 *    management workstation would send it.
 * 3. Zone master keys (POSP–switch, switch–each issuer): two clear components each; each party forms
 *    the ZMK in its own HSM from the same components (A4; here one HSM, so it is formed twice and the
 *    check values must agree).
 * 4. Zone keys: the switch generates each ZPK and ZAK under the ZMK (FI: under the LMK for itself and
 *    as TR-31 under the ZMK for the other side); the POSP or issuer imports it (FA). Check values compared.
 * 5. Issuers: a PAN-token MAC key and a PVK each (A0); the cards are created at the issuer and their
 *    PINs enrolled WITHOUT the issuer ever seeing a clear PIN: an enrolment PIN pad (its TMK injected from
 *    components, its TPK delivered as TR-31 under that TMK) encrypts each PIN into an ISO 9564 format 0
 *    block, and the issuer's `enrolPin` asks the HSM for the IBM 3624 offset (BK) or Visa PVV (FW).
 * 6. Terminals: a TMK per terminal from two components (A4) for the POSP's terminal table, and the same
 *    components injected into the terminal's PIN pad (the key-injection ceremony; the pad checks the
 *    HSM's check value before storing the key).
 * 7. Config files for every service, the routing file, the terminal table, the manifest, a README.txt.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adjustOddParity, fromHex, toHex, wipe, xor } from '@openposp/crypto';
import {
  type CustodianCredential,
  hashCustodianCredential,
  HsmClient,
  initLmkFromComponentFiles,
  openSealedLmk,
  serveHsm,
  writeLmkComponentFile,
} from '@openposp/hsm';
import { Issuer, ISSUER_MIGRATIONS } from '@openposp/issuer';
import { openStore } from '@openposp/store';
import { PinPad, PINPAD_SCRYPT_N_MIN, startTerminal, TERMINAL_SLOTS } from '@openposp/terminal';
import { CliError } from '../errors.js';
import {
  ACQUIRER_ID,
  DEMO_CARDS,
  DEMO_ISSUERS,
  DEMO_TERMINALS,
  SETTLEMENT_ACCOUNT_ID,
  SWITCH_INSTITUTION_ID,
} from './cards.js';
import { hasManifest, layoutOf, MANIFEST_FORMAT, type NetworkManifest } from './layout.js';

export interface SetupOptions {
  /** Loopback by default. */
  host?: string;
  /** Progress lines (stderr in the CLI). */
  progress?: (line: string) => void;
  /**
   * Tests only (the secret scan): receives a copy of every clear component and clear key this setup
   * generates, before it is wiped. Never set by the CLI.
   */
  onClearSecret?: (label: string, bytes: Uint8Array) => void;
  /** scrypt cost of new PIN pad states (default the terminal package's). */
  pinPadScryptN?: number;
  /**
   * Where a host keeps its state instead of its SQLite file in the directory: `service` is `posp`,
   * `switch` or an issuer id; a `postgres://` URL (an existing, empty database) or undefined for SQLite.
   */
  databaseOf?: (service: string) => string | undefined;
}

/** Length of the authorized state the setup's custodians open for the ceremony (A4 only). */
export const SETUP_AUTHORIZED_MS = 10 * 60 * 1000;
/** HSM calls during setup. */
export const SETUP_HSM_TIMEOUT_MS = 10_000;

const TPDU = { destination: '0003', source: '0000' };
const CUP_HEADER = '603100311003';

/** `count` distinct free loopback ports (held open together, then released). */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<import('node:net').Server>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, host, () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** A 16-byte TDES key component with odd parity (X9.24-1: components are full-length keys). */
function newComponent(): Uint8Array {
  return adjustOddParity(new Uint8Array(randomBytes(16)));
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
}

/** Sets up a network in `dirInput` (which must not hold one yet); returns its manifest. */
export async function setupNetwork(dirInput: string, opts: SetupOptions = {}): Promise<NetworkManifest> {
  const L = layoutOf(dirInput);
  if (hasManifest(L.dir))
    throw new CliError('CLI_REQUEST_INVALID', `--dir: ${L.dir} already holds a network (network.json)`);
  const host = opts.host ?? '127.0.0.1';
  const say = opts.progress ?? (() => {});
  const reveal = opts.onClearSecret ?? (() => {});
  for (const d of [L.dir, L.hsmDir, L.logs, L.switchDir, L.pospDir]) mkdirSync(d, { recursive: true });

  // 1. LMK ceremony from two custodians' component files.
  const componentFiles = [join(L.hsmDir, 'lmk-component-1.json'), join(L.hsmDir, 'lmk-component-2.json')];
  for (const f of componentFiles) {
    const cv = writeLmkComponentFile(f);
    say(`LMK component ${f} (check value ${cv})`);
  }
  const sealed = join(L.hsmDir, 'lmk.sealed');
  const audit = join(L.hsmDir, 'audit.log');
  const { lmkCheckValue } = await initLmkFromComponentFiles({
    componentFiles,
    sealWith: 'components',
    sealedPath: sealed,
    auditPath: audit,
    who: 'setup',
  });
  say(`LMK formed and sealed: check value ${lmkCheckValue}`);

  // 2. The HSM for the ceremony, with two custodians who open the authorized state for A4 only.
  const creds: CustodianCredential[] = ['custodian-1', 'custodian-2'].map((id) => ({
    id,
    secret: randomBytes(18).toString('base64'),
  }));
  const lmk = openSealedLmk(sealed, { componentFiles });
  const hsmRun = await serveHsm({
    lmk,
    port: 0,
    host: '127.0.0.1',
    auditPath: audit,
    auth: {
      custodians: creds.map((c) => hashCustodianCredential(c.id, c.secret)),
      quorum: 2,
      maxDurationMs: SETUP_AUTHORIZED_MS,
    },
  });
  hsmRun.hsm.authorize(creds, ['A4.ZMK', 'A4.TMK'], SETUP_AUTHORIZED_MS);
  const hsm = await HsmClient.connect('127.0.0.1', hsmRun.address.port, { timeoutMs: SETUP_HSM_TIMEOUT_MS });
  const enrolDir = mkdtempSync(join(tmpdir(), 'posp-enrolment-'));
  try {
    /** A4 from fresh components; `parties` copies formed (one per party's HSM). */
    const formFromComponents = async (
      keyType: 'ZMK' | 'TMK',
      label: string,
      parties: number,
      use?: (components: Uint8Array[], checkValue: string) => Promise<void>,
    ): Promise<{ keyBlock: string; checkValue: string }[]> => {
      const components = [newComponent(), newComponent()];
      try {
        for (const [i, c] of components.entries()) reveal(`${label} component ${i + 1}`, c.slice());
        const clear = adjustOddParity(xor(components[0]!, components[1]!));
        reveal(`${label} clear`, clear);
        const out: { keyBlock: string; checkValue: string }[] = [];
        for (let i = 0; i < parties; i++)
          out.push(await hsm.formKeyFromComponents({ keyType, algorithm: 'T', components }));
        if (out.some((k) => k.checkValue !== out[0]!.checkValue))
          throw new CliError('CLI_INTERNAL', `${label}: the parties' check values differ`);
        if (use) await use(components, out[0]!.checkValue);
        return out;
      } finally {
        for (const c of components) wipe(c);
      }
    };

    /** FI on the switch's side, FA on the other; both check values must agree. */
    const zoneKeys = async (switchZmk: string, otherZmk: string, label: string) => {
      const out = {
        switchSide: { zpk: '', zak: '' },
        otherSide: { zpk: '', zak: '' },
        checkValues: {} as Record<string, string>,
      };
      for (const t of ['ZPK', 'ZAK'] as const) {
        const gen = await hsm.generateZoneKey(switchZmk, t);
        const imp = await hsm.importZoneKey(otherZmk, t, gen.underZmk);
        if (imp.checkValue !== gen.checkValue)
          throw new CliError('CLI_INTERNAL', `${label} ${t}: the imported key's check value differs`);
        const k = t === 'ZPK' ? 'zpk' : 'zak';
        out.switchSide[k] = gen.keyBlock;
        out.otherSide[k] = imp.keyBlock;
        out.checkValues[t] = gen.checkValue;
        say(
          `${label} ${t} generated by the switch, imported by the other side (check value ${gen.checkValue})`,
        );
      }
      return out;
    };

    // 3-4. POSP–switch link.
    const [pospZmk, switchAcqZmk] = await formFromComponents('ZMK', 'ZMK posp-switch', 2);
    say(`ZMK POSP–switch formed from 2 components at both ends (check value ${pospZmk!.checkValue})`);
    const acqZone = await zoneKeys(switchAcqZmk!.keyBlock, pospZmk!.keyBlock, 'POSP–switch');

    const [hsmPort, switchPort, pospPort, ...issuerPorts] = await freePorts(3 + DEMO_ISSUERS.length, host);
    const hsmEndpoint = { host, port: hsmPort! };

    // 5. Issuers.
    const issuerEntries: NetworkManifest['issuers'] = [];
    const switchIssuers: { id: string; host: string; port: number; zpk: string; zak: string }[] = [];
    for (const [i, iss] of DEMO_ISSUERS.entries()) {
      const dir = L.issuerDir(iss.id);
      mkdirSync(dir, { recursive: true });
      const [swZmk, issZmk] = await formFromComponents('ZMK', `ZMK switch-${iss.id}`, 2);
      say(`ZMK switch–${iss.id} formed from 2 components at both ends (check value ${swZmk!.checkValue})`);
      const zone = await zoneKeys(swZmk!.keyBlock, issZmk!.keyBlock, `switch–${iss.id}`);
      const panTokenKey = await hsm.generateKey({ keyType: 'TAK', algorithm: 'T', keyLengthBytes: 16 });
      const pvk = await hsm.generateKey({
        keyType: 'PVK',
        algorithm: 'T',
        keyLengthBytes: 16,
        // A0 takes the four attributes together: V1 (IBM 3624) or V2 (Visa PVV), verify/generate (C),
        // version 00, never exportable (a PVK stays in its issuer's HSM).
        usage: iss.pinMethod === 'ibm3624' ? 'V1' : 'V2',
        modeOfUse: 'C',
        keyVersion: '00',
        exportability: 'N',
      });
      say(
        `${iss.id}: PAN token key and PVK (${iss.pinMethod}) generated (check values ${panTokenKey.checkValue}, ${pvk.checkValue})`,
      );
      const database = opts.databaseOf?.(iss.id) ?? join(dir, `${iss.id}.sqlite`);
      await enrolCards(iss.id, iss.pinMethod, {
        hsm,
        database,
        zpk: zone.otherSide.zpk,
        zak: zone.otherSide.zak,
        panTokenKey: panTokenKey.keyBlock,
        pvk: pvk.keyBlock,
        enrolDir,
        formFromComponents,
        say,
      });
      const port = issuerPorts[i]!;
      const log = join(L.logs, `issuer-${iss.id}.log`);
      const config = join(dir, 'issuer.json');
      writeJson(config, {
        listen: { host, port },
        databasePath: database,
        keys: { zpk: zone.otherSide.zpk, zak: zone.otherSide.zak, panTokenKey: panTokenKey.keyBlock },
        settlementAccountId: SETTLEMENT_ACCOUNT_ID,
        currency: '156',
        hsm: hsmEndpoint,
        logPath: log,
      });
      issuerEntries.push({ id: iss.id, name: iss.name, config, database, port, log });
      switchIssuers.push({ id: iss.id, host, port, zpk: zone.switchSide.zpk, zak: zone.switchSide.zak });
    }

    // 6. Terminals: TMK ceremony at the POSP's HSM and key injection into each PIN pad.
    const terminalEntries: NetworkManifest['terminals'] = [];
    const terminalTable: unknown[] = [];
    for (const t of DEMO_TERMINALS) {
      const dir = L.terminalDir(t.terminalId);
      mkdirSync(dir, { recursive: true });
      const deviceSecret = new Uint8Array(randomBytes(32));
      const deviceSecretFile = join(dir, 'device.secret');
      writeFileSync(deviceSecretFile, `${toHex(deviceSecret)}\n`, { mode: 0o600 });
      const config = join(dir, 'terminal.json');
      const stateDir = join(dir, 'state');
      writeJson(config, {
        terminalId: t.terminalId,
        merchantId: t.merchantId,
        merchantName: t.merchantName,
        posp: { host, port: pospPort },
        tpdu: TPDU,
        header: CUP_HEADER,
        stateDir,
        trackEncryption: 'tdk',
        operator: '001',
        currency: '156',
      });
      const [tmk] = await formFromComponents('TMK', `TMK ${t.terminalId}`, 1, async (components, cv) => {
        const term = await startTerminal(config, {
          deviceSecret,
          ...(opts.pinPadScryptN ? { pinPadScryptN: opts.pinPadScryptN } : {}),
        });
        try {
          term.pinPad.injectKeyFromComponents(TERMINAL_SLOTS.tmk, 'kek', components, {
            checkValue: fromHex(cv, 'checkValue'),
          });
        } finally {
          await term.close();
        }
      });
      wipe(deviceSecret);
      say(
        `${t.terminalId}: TMK formed from 2 components and injected into the PIN pad (check value ${tmk!.checkValue})`,
      );
      terminalTable.push({
        terminalId: t.terminalId,
        merchantId: t.merchantId,
        merchantName: t.merchantName,
        tmk: tmk!.keyBlock,
        tmkCheckValue: tmk!.checkValue,
      });
      terminalEntries.push({
        ...t,
        config,
        deviceSecretFile,
        database: join(stateDir, 'terminal.sqlite'),
      });
    }

    // 7. Config files.
    const routing = join(L.switchDir, 'routing.json');
    writeJson(routing, {
      routes: DEMO_ISSUERS.flatMap((iss) =>
        iss.routes.map((r) => ({ ...r, issuer: iss.id, name: iss.name })),
      ),
    });
    const switchConfig = join(L.switchDir, 'switch.json');
    const switchDb = opts.databaseOf?.('switch') ?? join(L.switchDir, 'switch.sqlite');
    const switchLog = join(L.logs, 'switch.log');
    writeJson(switchConfig, {
      institutionId: SWITCH_INSTITUTION_ID,
      listen: { host, port: switchPort },
      acquirers: [{ id: ACQUIRER_ID, zpk: acqZone.switchSide.zpk, zak: acqZone.switchSide.zak }],
      issuers: switchIssuers,
      routingFile: routing,
      databasePath: switchDb,
      hsm: hsmEndpoint,
      logPath: switchLog,
    });
    const terminalsFile = join(L.pospDir, 'terminals.json');
    writeJson(terminalsFile, terminalTable);
    // The POSP's data key: the HSM seals under it the PAN of a reversal advice the POSP still owes.
    const dataKey = await hsm.generateKey({ keyType: 'DEK', algorithm: 'A', keyLengthBytes: 32 });
    say(`POSP data key (DEK, AES-256) generated under the LMK (check value ${dataKey.checkValue})`);
    const pospConfig = join(L.pospDir, 'posp.json');
    const pospDb = opts.databaseOf?.('posp') ?? join(L.pospDir, 'posp.sqlite');
    const pospLog = join(L.logs, 'posp.log');
    writeJson(pospConfig, {
      listen: { host, port: pospPort },
      switch: { host, port: switchPort },
      acquirerId: ACQUIRER_ID,
      zoneKeys: { zpk: acqZone.otherSide.zpk, zak: acqZone.otherSide.zak },
      dataKey: dataKey.keyBlock,
      databasePath: pospDb,
      hsm: hsmEndpoint,
      terminalsFile,
      logPath: pospLog,
    });
    const manifest: NetworkManifest = {
      format: MANIFEST_FORMAT,
      version: 1,
      host,
      createdAt: new Date().toISOString(),
      hsm: { port: hsmPort!, sealed, components: componentFiles, audit, lmkCheckValue },
      issuers: issuerEntries,
      switch: { config: switchConfig, routing, database: switchDb, port: switchPort!, log: switchLog },
      posp: { config: pospConfig, terminals: terminalsFile, database: pospDb, port: pospPort!, log: pospLog },
      terminals: terminalEntries,
      logs: L.logs,
    };
    writeFileSync(L.readme, readmeText(manifest));
    writeJson(L.manifest, manifest);
    return manifest;
  } finally {
    rmSync(enrolDir, { recursive: true, force: true });
    await hsm.close();
    hsmRun.hsm.deauthorize('setup');
    await hsmRun.stop();
    lmk.destroy();
  }
}

interface EnrolDeps {
  hsm: HsmClient;
  database: string;
  zpk: string;
  zak: string;
  panTokenKey: string;
  pvk: string;
  enrolDir: string;
  formFromComponents: (
    keyType: 'ZMK' | 'TMK',
    label: string,
    parties: number,
    use?: (components: Uint8Array[], checkValue: string) => Promise<void>,
  ) => Promise<{ keyBlock: string; checkValue: string }[]>;
  say: (line: string) => void;
}

/**
 * Creates the issuer's cards and enrols their PINs through an enrolment PIN pad: the PIN is typed into
 * the pad, leaves it only as a format 0 block under the enrolment TPK, and the issuer's HSM turns that
 * into the offset or PVV. The issuer's database gets the PAN token, masked PAN and offset/PVV only.
 */
async function enrolCards(issuerId: string, method: 'ibm3624' | 'pvv', d: EnrolDeps): Promise<void> {
  const cards = DEMO_CARDS.filter((c) => c.issuer === issuerId);
  const padSecret = new Uint8Array(randomBytes(32));
  const pad = await PinPad.open({
    statePath: join(d.enrolDir, `${issuerId}-pad.sealed`),
    deviceSecret: padSecret,
    scryptN: PINPAD_SCRYPT_N_MIN,
  });
  wipe(padSecret);
  const store = await openStore(d.database, { migrations: ISSUER_MIGRATIONS });
  try {
    const [enrolTmk] = await d.formFromComponents(
      'TMK',
      `enrolment TMK ${issuerId}`,
      1,
      async (components, cv) => {
        pad.injectKeyFromComponents(0, 'kek', components, { checkValue: fromHex(cv, 'checkValue') });
      },
    );
    const tpk = await d.hsm.generateKey({
      keyType: 'TPK',
      algorithm: 'T',
      keyLengthBytes: 16,
      exportUnder: enrolTmk!.keyBlock,
    });
    if (tpk.exported === undefined)
      throw new CliError('CLI_INTERNAL', 'A0: no TR-31 block under the enrolment TMK');
    pad.injectKeyBlock(1, 0, tpk.exported, { checkValue: fromHex(tpk.checkValue, 'checkValue') });
    const issuer = await Issuer.open({
      store,
      hsm: d.hsm,
      zpk: d.zpk,
      zak: d.zak,
      panTokenKey: d.panTokenKey,
      settlementAccountId: SETTLEMENT_ACCOUNT_ID,
    });
    for (const c of cards) {
      await issuer.addCard({
        pan: c.pan,
        expiry: c.expiry,
        serviceCode: c.serviceCode,
        balanceMinor: c.balanceMinor,
        ...(c.limitMinor !== undefined ? { limitMinor: c.limitMinor } : {}),
        pin:
          method === 'ibm3624'
            ? {
                method: 'ibm3624',
                pvk: d.pvk,
                decimalisationTable: '0123456789012345',
                validationData: { panLength: 12, pad: 'F' },
              }
            : { method: 'pvv', pvk: d.pvk, pvki: '1' },
      });
      const pinBlock = pad.encryptPinBlockIso0(1, c.pin, c.pan);
      await issuer.enrolPin({ pan: c.pan, pinBlock, pinKey: tpk.keyBlock, format: 0 });
      wipe(pinBlock);
    }
    d.say(`${issuerId}: ${cards.length} cards created, PINs enrolled from an enrolment PIN pad (${method})`);
  } finally {
    pad.close();
    await store.close();
  }
}

function readmeText(m: NetworkManifest): string {
  return `openposp demo network
=====================

DEMO ONLY. This directory holds secrets in clear files so that one person can run a whole payment
network on one machine:

- hsm/lmk-component-*.json: the two LMK components. In a real network each custodian keeps their
  component apart (smart card, safe); anyone holding both files can open hsm/lmk.sealed and with it
  every key of this network.
- terminals/*/device.secret: the secret that seals each PIN pad's key slots. A real PIN pad keeps its
  keys in tamper-responsive memory and has no such file.

Every other key here is a key block under the LMK (hsm/lmk.sealed, LMK check value ${m.hsm.lmkCheckValue}).
No PAN, PIN, PIN block, track data or clear key is in any config, database or log.

Layout
  network.json            ports, config files, terminals (no secrets)
  hsm/                    sealed LMK, component files (demo), audit.log (hash-chained)
  issuers/<id>/           issuer.json, <id>.sqlite (accounts, ledger, transactions, notifications)
  switch/                 switch.json, routing.json, switch.sqlite (journal)
  posp/                   posp.json, terminals.json (TMKs under the LMK), posp.sqlite (terminal table, journal)
  terminals/<id>/         terminal.json, device.secret (demo), state/ (sealed PIN pad, terminal.sqlite)
  logs/                   JSON-lines logs of every service, and each process's output

Ports (${m.host})
  HSM ${m.hsm.port}, POSP ${m.posp.port}, switch ${m.switch.port}, ${m.issuers.map((i) => `${i.id} ${i.port}`).join(', ')}

Run
  posp up --dir <this directory>
  echo 123456 | posp terminal purchase --dir <this directory> --terminal POS00001 --card <PAN> --amount 12.34 --pin-stdin
  posp txn show --dir <this directory> --rrn <RRN>
`;
}
