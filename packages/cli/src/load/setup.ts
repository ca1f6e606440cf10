/**
 * The load network's own setup step, run on top of a demo network directory (`setupNetwork`): more
 * terminals than the demo's three, and load cards with large balances, without touching the demo's
 * cards. `setupNetwork` has no option for other terminals or cards, so this step does what its steps 5
 * and 6 do, with the same rule (a clear key exists only as components, generated here, handed to the
 * HSM or a PIN pad, then wiped):
 *
 * - Terminals LOAD00001.. : a TMK per terminal formed from two components in the HSM (A4, under the
 *   custodians' authorized state, opened for this step only), the same components injected into the
 *   terminal's PIN pad; the POSP's terminal table (terminals.json) gets the TMK key block.
 * - Cards: per issuer, an enrolment PIN pad (its TMK from components, its TPK as TR-31 under the TMK)
 *   encrypts each load card's PIN into an ISO 9564 format 0 block and the issuer's `enrolPin` asks the
 *   HSM for the offset or PVV. The PVK is the issuer's own (read from one of its demo cards' rows: a key
 *   block under the LMK).
 *
 * The load cards' PANs and PINs are test data published here (like the demo's, never written into the
 * directory); `load.json` records only how many terminals and cards were set up.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adjustOddParity, fromHex, toHex, wipe } from '@openposp/crypto';
import {
  type CustodianCredential,
  hashCustodianCredential,
  HsmClient,
  type Lmk,
  type RunningHsm,
  serveHsm,
} from '@openposp/hsm';
import { Issuer, ISSUER_MIGRATIONS } from '@openposp/issuer';
import { openStore } from '@openposp/store';
import { PinPad, PINPAD_SCRYPT_N_MIN, startTerminal, TERMINAL_SLOTS } from '@openposp/terminal';
import { CliError } from '../errors.js';
import { DEMO_ISSUERS, luhnDigit, SETTLEMENT_ACCOUNT_ID } from '../network/cards.js';
import { layoutOf, type NetworkManifest } from '../network/layout.js';

export const LOAD_MANIFEST_FILE = 'load.json';
/** Opening balance of each load card, minor units: 10^12 (10 000 000 000.00), years of 1.00 purchases. */
export const LOAD_CARD_BALANCE_MINOR = 1_000_000_000_000;
/** Authorized state of this step's custodians (A4 only). */
export const LOAD_SETUP_AUTHORIZED_MS = 10 * 60 * 1000;
export const LOAD_SETUP_HSM_TIMEOUT_MS = 10_000;
/** The load terminals' merchant. */
export const LOAD_MERCHANT = { merchantId: '898310012349999', merchantName: 'OPENPOSP LOAD' } as const;

export interface LoadCard {
  issuer: string;
  pan: string;
  expiry: string;
  serviceCode: string;
  pin: string;
  pinMethod: 'ibm3624' | 'pvv';
}

export interface LoadTerminal {
  terminalId: string;
  merchantId: string;
  merchantName: string;
  config: string;
  deviceSecretFile: string;
}

export interface LoadManifest {
  format: 'openposp-load';
  version: 1;
  terminals: LoadTerminal[];
  /** Load cards enrolled per issuer (cards 0..n-1 of `loadCard`). */
  cards: Record<string, number>;
}

/** Load card `i` of an issuer: test data, far from the demo's PANs (bank-a 6222029..., bank-b 62170099...). */
export function loadCard(issuerId: string, i: number): LoadCard {
  const iss = DEMO_ISSUERS.find((x) => x.id === issuerId);
  if (!iss) throw new CliError('CLI_INTERNAL', `load card: no issuer ${issuerId}`);
  const body =
    iss.id === 'bank-a' ? `6222029${String(i).padStart(8, '0')}` : `62170099${String(i).padStart(7, '0')}`;
  return {
    issuer: iss.id,
    pan: `${body}${luhnDigit(body)}`,
    expiry: '3012',
    serviceCode: '101',
    pin: iss.pinMethod === 'ibm3624' ? '147258' : '3690',
    pinMethod: iss.pinMethod,
  };
}

/** The card terminal `k` (0-based) buys with: its own card, issuers alternating. */
export function cardOfTerminal(k: number): LoadCard {
  const iss = DEMO_ISSUERS[k % DEMO_ISSUERS.length]!;
  return loadCard(iss.id, Math.floor(k / DEMO_ISSUERS.length));
}

export function track2OfLoadCard(c: LoadCard): string {
  return `${c.pan}=${c.expiry}${c.serviceCode}0000000000`;
}

const TPDU = { destination: '0003', source: '0000' };
const CUP_HEADER = '603100311003';

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
}

export function readLoadManifest(dir: string): LoadManifest {
  const p = join(layoutOf(dir).dir, LOAD_MANIFEST_FILE);
  if (!existsSync(p)) return { format: 'openposp-load', version: 1, terminals: [], cards: {} };
  const m = JSON.parse(readFileSync(p, 'utf8')) as LoadManifest;
  if (m?.format !== 'openposp-load' || m.version !== 1)
    throw new CliError('CLI_REQUEST_INVALID', `--dir: ${p} is not an openposp-load v1 file`);
  return m;
}

/**
 * Starts the network's HSM (on its port, from the sealed LMK) with two fresh custodians, and makes sure
 * the directory has at least `terminals` load terminals and a load card for each. Returns the HSM, still
 * running (its authorized state closed), for the network to use.
 */
export async function ensureLoadSetup(
  dir: string,
  m: NetworkManifest,
  lmk: Lmk,
  terminals: number,
  say: (line: string) => void,
): Promise<{ hsm: RunningHsm; load: LoadManifest }> {
  const L = layoutOf(dir);
  const load = readLoadManifest(L.dir);
  const creds: CustodianCredential[] = ['custodian-1', 'custodian-2'].map((id) => ({
    id,
    secret: randomBytes(18).toString('base64'),
  }));
  const hsm = await serveHsm({
    lmk,
    port: m.hsm.port,
    host: m.host,
    auditPath: m.hsm.audit,
    auth: {
      custodians: creds.map((c) => hashCustodianCredential(c.id, c.secret)),
      quorum: 2,
      maxDurationMs: LOAD_SETUP_AUTHORIZED_MS,
    },
  });
  const needCards = (id: string) =>
    Array.from({ length: terminals }, (_, k) => k).filter((k) => cardOfTerminal(k).issuer === id).length;
  const missingTerminals = terminals - load.terminals.length;
  const missingCards = DEMO_ISSUERS.some((i) => needCards(i.id) > (load.cards[i.id] ?? 0));
  if (missingTerminals <= 0 && !missingCards) return { hsm, load };

  hsm.hsm.authorize(creds, ['A4.TMK'], LOAD_SETUP_AUTHORIZED_MS);
  const client = await HsmClient.connect(m.host, m.hsm.port, { timeoutMs: LOAD_SETUP_HSM_TIMEOUT_MS });
  try {
    /** A4 from two fresh components; `use` gets them before they are wiped. */
    const tmkFromComponents = async (
      use: (components: Uint8Array[], checkValue: string) => Promise<void>,
    ): Promise<{ keyBlock: string; checkValue: string }> => {
      const components = [0, 1].map(() => adjustOddParity(new Uint8Array(randomBytes(16))));
      try {
        const k = await client.formKeyFromComponents({ keyType: 'TMK', algorithm: 'T', components });
        await use(components, k.checkValue);
        return k;
      } finally {
        for (const c of components) wipe(c);
      }
    };

    // Terminals.
    if (missingTerminals > 0) {
      const table = JSON.parse(readFileSync(m.posp.terminals, 'utf8')) as unknown[];
      for (let k = load.terminals.length; k < terminals; k++) {
        const terminalId = `LOAD${String(k + 1).padStart(4, '0')}`;
        const dir = L.terminalDir(terminalId);
        mkdirSync(dir, { recursive: true });
        const deviceSecret = new Uint8Array(randomBytes(32));
        const deviceSecretFile = join(dir, 'device.secret');
        writeFileSync(deviceSecretFile, `${toHex(deviceSecret)}\n`, { mode: 0o600 });
        const config = join(dir, 'terminal.json');
        writeJson(config, {
          terminalId,
          ...LOAD_MERCHANT,
          posp: { host: m.host, port: m.posp.port },
          tpdu: TPDU,
          header: CUP_HEADER,
          stateDir: join(dir, 'state'),
          trackEncryption: 'tdk',
          operator: '001',
          currency: '156',
        });
        const tmk = await tmkFromComponents(async (components, cv) => {
          const term = await startTerminal(config, { deviceSecret, pinPadScryptN: PINPAD_SCRYPT_N_MIN });
          try {
            term.pinPad.injectKeyFromComponents(TERMINAL_SLOTS.tmk, 'kek', components, {
              checkValue: fromHex(cv, 'checkValue'),
            });
          } finally {
            await term.close();
          }
        });
        wipe(deviceSecret);
        table.push({ terminalId, ...LOAD_MERCHANT, tmk: tmk.keyBlock, tmkCheckValue: tmk.checkValue });
        load.terminals.push({ terminalId, ...LOAD_MERCHANT, config, deviceSecretFile });
      }
      writeJson(m.posp.terminals, table);
      say(`${terminals} load terminals (TMKs formed from components, injected into their PIN pads)`);
    }

    // Cards.
    for (const iss of m.issuers) {
      const have = load.cards[iss.id] ?? 0;
      const want = needCards(iss.id);
      if (want <= have) continue;
      await enrolLoadCards(m, iss.id, have, want, client, tmkFromComponents);
      load.cards[iss.id] = want;
      say(`${iss.id}: ${want} load cards, balance ${LOAD_CARD_BALANCE_MINOR} minor units each`);
    }
    writeJson(join(L.dir, LOAD_MANIFEST_FILE), load);
    return { hsm, load };
  } catch (e) {
    await hsm.stop();
    throw e;
  } finally {
    await client.close();
    hsm.hsm.deauthorize('load-setup');
  }
}

async function enrolLoadCards(
  m: NetworkManifest,
  issuerId: string,
  from: number,
  to: number,
  hsm: HsmClient,
  tmkFromComponents: (
    use: (components: Uint8Array[], checkValue: string) => Promise<void>,
  ) => Promise<{ keyBlock: string; checkValue: string }>,
): Promise<void> {
  const entry = m.issuers.find((i) => i.id === issuerId)!;
  const cfg = JSON.parse(readFileSync(entry.config, 'utf8')) as {
    keys: { zpk: string; zak: string; panTokenKey: string };
  };
  const enrolDir = mkdtempSync(join(tmpdir(), 'posp-load-enrolment-'));
  const padSecret = new Uint8Array(randomBytes(32));
  const pad = await PinPad.open({
    statePath: join(enrolDir, 'pad.sealed'),
    deviceSecret: padSecret,
    scryptN: PINPAD_SCRYPT_N_MIN,
  });
  wipe(padSecret);
  const store = await openStore(entry.database, { migrations: ISSUER_MIGRATIONS });
  try {
    const method = loadCard(issuerId, 0).pinMethod;
    const row = await store.get<{ pvk: string; pvki: string | null }>(
      'SELECT pvk, pvki FROM cards WHERE pin_method = ? LIMIT 1',
      [method],
    );
    if (!row) throw new CliError('CLI_INTERNAL', `${issuerId}: no demo card to take the PVK from`);
    const enrolTmk = await tmkFromComponents(async (components, cv) => {
      pad.injectKeyFromComponents(0, 'kek', components, { checkValue: fromHex(cv, 'checkValue') });
    });
    const tpk = await hsm.generateKey({
      keyType: 'TPK',
      algorithm: 'T',
      keyLengthBytes: 16,
      exportUnder: enrolTmk.keyBlock,
    });
    if (tpk.exported === undefined)
      throw new CliError('CLI_INTERNAL', 'A0: no TR-31 block under the enrolment TMK');
    pad.injectKeyBlock(1, 0, tpk.exported, { checkValue: fromHex(tpk.checkValue, 'checkValue') });
    const issuer = await Issuer.open({
      store,
      hsm,
      zpk: cfg.keys.zpk,
      zak: cfg.keys.zak,
      panTokenKey: cfg.keys.panTokenKey,
      settlementAccountId: SETTLEMENT_ACCOUNT_ID,
    });
    for (let i = from; i < to; i++) {
      const c = loadCard(issuerId, i);
      await issuer.addCard({
        pan: c.pan,
        expiry: c.expiry,
        serviceCode: c.serviceCode,
        balanceMinor: LOAD_CARD_BALANCE_MINOR,
        pin:
          method === 'ibm3624'
            ? {
                method: 'ibm3624',
                pvk: row.pvk,
                decimalisationTable: '0123456789012345',
                validationData: { panLength: 12, pad: 'F' },
              }
            : { method: 'pvv', pvk: row.pvk, pvki: row.pvki ?? '1' },
      });
      const pinBlock = pad.encryptPinBlockIso0(1, c.pin, c.pan);
      await issuer.enrolPin({ pan: c.pan, pinBlock, pinKey: tpk.keyBlock, format: 0 });
      wipe(pinBlock);
    }
  } finally {
    pad.close();
    await store.close();
    rmSync(enrolDir, { recursive: true, force: true });
  }
}
