/**
 * Test harness: a real in-process HSM (test LMK), the POSP on 127.0.0.1 over SQLite in a temp folder, a
 * terminal played by the test (hand-built cup-pos frames, PIN blocks and MACs from @openposp/crypto with
 * the clear working keys it reads from field 62 under the TMK it formed from known components), and a
 * small switch endpoint speaking iso87-binary that checks the MAC under the ZAK and decodes the PIN under
 * the ZPK it knows in clear (both unwrapped from their TR-31 blocks under a ZMK formed from components).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import {
  adjustOddParity,
  decodePinBlockIso0,
  encodePinBlockIso0,
  macCupEcb,
  macX919,
  tdesDecryptEcb,
  tdesEncryptEcb,
  toHex,
  unwrapKeyBlock,
  xor,
} from '@openposp/crypto';
import {
  type CompiledSpec,
  type CupHeader,
  Iso8583Message,
  joinCupFrame,
  loadSpec,
  splitCupFrame,
  startResponse,
  unpack,
} from '@openposp/iso8583';
import { createLogger, FramedClient, FramedServer } from '@openposp/net';
import { createTestLmk, Hsm, HsmServer, LocalHsm, registerHsmCommands } from '@openposp/hsm';
import {
  type AcquirerConfig,
  type AcquirerHandle,
  type AcquirerHsm,
  PanVault,
  startAcquirer,
  unpackTerminalMessage,
} from '../src/index.js';

export const cup: CompiledSpec = loadSpec('cup-pos');
export const net: CompiledSpec = loadSpec('iso87-binary');

export const TERMINAL_ID = '10000001';
export const MERCHANT_ID = '898100012340001';
export const ACQUIRER_ID = '48020000';
export const HEADER: CupHeader = {
  applicationType: '60',
  softwareVersion: '31',
  terminalStatus: '0',
  processingRequirement: '0',
  reserved: '311003',
};
export const TPDU = { destination: 0x0601, source: 0x0000 };

/** Test card: the scan looks for these in every log and database. */
export const CARD = {
  pan: '6225881234567890',
  expiry: '2812',
  pin: '147258',
  track2: '6225881234567890D28121010000012300000',
};

function oddComponent(byte: number): Uint8Array {
  return adjustOddParity(new Uint8Array(16).map((_, i) => (byte * 7 + i * 13) & 0xff));
}

export interface SwitchSeen {
  msg: Iso8583Message;
  /** The request's last field is its MAC field and the X9.19 MAC over the bytes before it verifies. */
  macOk: boolean;
  /** Where the request carried its MAC: 128 with a secondary bitmap, else 64. */
  macField: 64 | 128;
  pin: string | undefined;
}

/**
 * The switch side's own reading of docs/network.md "MAC field and input (MAB)", independent of the
 * POSP's and of @openposp/iso8583's: the MAC is the last field, 128 when bit 1 announces a secondary
 * bitmap, else 64; the MAB is the bytes before it (the frame minus its last 8).
 */
function macFieldOfFrame(frame: Uint8Array): 64 | 128 {
  return (frame[2]! & 0x80) !== 0 ? 128 : 64; // BCD MTI (2 bytes), then the primary bitmap
}

export type SwitchBehaviour = (
  req: Iso8583Message,
) => 'silent' | 'bad-mac' | { code: string; balance?: string; delayMs?: number };

export interface Harness {
  posp: AcquirerHandle;
  hsm: LocalHsm;
  dir: string;
  dbPath: string;
  logLines: string[];
  seen: SwitchSeen[];
  behaviour: { fn: SwitchBehaviour };
  clock: { now: Date };
  tmkClear: Uint8Array;
  tmkBlock: string;
  /** The acquirer–switch ZAK: its block under the LMK (the POSP's) and in clear (the switch's copy). */
  zak: { block: string; clear: Uint8Array };
  /** The POSP's PAN vault (HSM M0/M2 under its data key), for tests that queue advices themselves. */
  vault: PanVault;
  terminal: TestTerminal;
  /** The POSP's config (same database, HSM and keys on a restart). */
  config: AcquirerConfig;
  /** Closes the POSP as a crash would leave it (no drain of the store-and-forward queue) and starts it again on the same database. */
  restart(): Promise<void>;
  /**
   * Starts another POSP node with the same config (same database, HSM, switch, keys) and a terminal
   * connected to it that shares the first terminal's keys and STAN counter at this moment. Closed by `close`.
   */
  addNode(): Promise<{ posp: AcquirerHandle; terminal: TestTerminal }>;
  close(): Promise<void>;
}

/** 2026-11-25 10:00 Beijing (UTC+8). */
export const T0 = new Date('2026-11-25T02:00:00Z');

export interface HarnessOptions {
  switchMs?: number;
  registerTerminal?: boolean;
  /** Put something between the POSP and the HSM (fault injection: a slow HSM). */
  wrapHsm?: (hsm: LocalHsm) => AcquirerHsm;
  /** Reach the HSM over TCP (HsmServer + HsmClient) instead of in process. */
  hsmOverTcp?: boolean;
  /**
   * Store and forward: by default the worker does not poll (tests call `posp.saf.runOnce()` with the
   * clock where they want it); give options to change that.
   */
  saf?: AcquirerConfig['saf'];
  feeBasisPoints?: number;
  /** The POSP's database: a SQLite path or a postgres:// URL (default: a SQLite file in the temp folder). */
  databasePath?: string;
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const lmk = createTestLmk({ allowTestLmk: true, warn: () => {} });
  const hsm = new LocalHsm(new Hsm({ lmk, sensitiveActivities: [] }));
  // TMK and ZMK formed from known components (A4), so the test knows them in clear as the PIN pad and
  // the other party would.
  const [t1, t2] = [oddComponent(1), oddComponent(2)];
  const tmk = hsm.hsm.formKeyFromComponents({ keyType: 'TMK', algorithm: 'T', components: [t1, t2] });
  const tmkClear = adjustOddParity(xor(t1, t2));
  const [z1, z2] = [oddComponent(3), oddComponent(4)];
  const zmk = hsm.hsm.formKeyFromComponents({ keyType: 'ZMK', algorithm: 'T', components: [z1, z2] });
  const zmkClear = adjustOddParity(xor(z1, z2));
  const zpk = await hsm.generateZoneKey(zmk.keyBlock, 'ZPK');
  const zak = await hsm.generateZoneKey(zmk.keyBlock, 'ZAK');
  const dataKey = await hsm.generateKey({ keyType: 'DEK', algorithm: 'A', keyLengthBytes: 32 });
  const zpkClear = unwrapKeyBlock(zmkClear, zpk.underZmk).key;
  const zakClear = unwrapKeyBlock(zmkClear, zak.underZmk).key;

  const seen: SwitchSeen[] = [];
  const behaviour: { fn: SwitchBehaviour } = { fn: () => ({ code: '00' }) };
  let auth = 100000;
  const sw = await FramedServer.listen({
    host: '127.0.0.1',
    port: 0,
    framing: { prefix: 'binary2' },
    handler: async (frame) => {
      const m = unpack(net, frame);
      const macField = macFieldOfFrame(frame);
      const mac = m.get(macField);
      const ids = m.fieldIds();
      const macOk =
        mac instanceof Uint8Array &&
        ids[ids.length - 1] === macField &&
        toHex(macX919(zakClear, frame.subarray(0, frame.length - 8), { padding: 1 })) === toHex(mac);
      const pb = m.get(52) as Uint8Array | undefined;
      const pin = pb ? decodePinBlockIso0(tdesDecryptEcb(zpkClear, pb), m.get(2) as string) : undefined;
      seen.push({ msg: m, macOk, macField, pin });
      const what = behaviour.fn(m);
      if (what === 'silent') return null;
      if (typeof what === 'object' && what.delayMs) await new Promise((r) => setTimeout(r, what.delayMs));
      const a = startResponse(m);
      const code = macOk ? (typeof what === 'object' ? what.code : '00') : 'A0';
      a.set(39, code);
      if (code === '00') a.set(38, String(auth++));
      a.set(15, '1125');
      a.set(33, '00010000');
      if (typeof what === 'object' && what.balance !== undefined) a.set(54, what.balance);
      // The answer echoes 90 (void, refund): then it has a secondary bitmap and its MAC goes in 128.
      const answerMacField = a.fieldIds().some((id) => id > 64) ? 128 : 64;
      a.set(answerMacField, new Uint8Array(8));
      const packed = a.pack().slice();
      const tag = macX919(zakClear, packed.subarray(0, packed.length - 8), { padding: 1 });
      if (what === 'bad-mac') tag[0]! ^= 0x01;
      packed.set(tag, packed.length - 8);
      return packed;
    },
  });

  const dir = mkdtempSync(join(tmpdir(), 'posp-'));
  const dbPath = opts.databasePath ?? join(dir, 'posp.sqlite');
  const logLines: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (c: Buffer) => logLines.push(...c.toString('utf8').split('\n').filter(Boolean)));
  const clock = { now: T0 };
  let hsmServer: HsmServer | undefined;
  let hsmEndpoint: { host: string; port: number } | undefined;
  if (opts.hsmOverTcp) {
    hsmServer = registerHsmCommands(new HsmServer(), hsm.hsm);
    const addr = await hsmServer.listen(0);
    hsmEndpoint = { host: '127.0.0.1', port: addr.port };
  }
  const config: AcquirerConfig = {
    listen: { host: '127.0.0.1', port: 0 },
    switch: { host: '127.0.0.1', port: sw.port, reconnectDelayMs: 20 },
    acquirerId: ACQUIRER_ID,
    zoneKeys: { zpk: zpk.keyBlock, zak: zak.keyBlock },
    dataKey: dataKey.keyBlock,
    databasePath: dbPath,
    hsm: hsmEndpoint ?? (opts.wrapHsm ? opts.wrapHsm(hsm) : hsm),
    terminals:
      opts.registerTerminal === false
        ? []
        : [
            {
              terminalId: TERMINAL_ID,
              merchantId: MERCHANT_ID,
              merchantName: 'Test shop',
              tmk: tmk.keyBlock,
            },
          ],
    timeouts: { switchMs: opts.switchMs ?? 400, hsmMs: 2000, dbMs: 2000 },
    saf: opts.saf ?? { enabled: false },
    settlement: { feeBasisPoints: opts.feeBasisPoints ?? 0 },
    utcOffsetMinutes: 480,
    logger: createLogger({ service: 'acquirer', stream }),
    clock: () => clock.now,
  };
  const posp = await startAcquirer(config);
  const terminal = await TestTerminal.connect(posp.port, tmkClear);
  const extra: { posp: AcquirerHandle; terminal: TestTerminal }[] = [];
  const h: Harness = {
    posp,
    hsm,
    dir,
    dbPath,
    logLines,
    seen,
    behaviour,
    clock,
    tmkClear,
    tmkBlock: tmk.keyBlock,
    zak: { block: zak.keyBlock, clear: zakClear },
    vault: new PanVault(hsm, dataKey.keyBlock),
    terminal,
    config,
    async restart() {
      const old = h.terminal;
      await old.close();
      await h.posp.close();
      h.posp = await startAcquirer(config);
      h.terminal = await TestTerminal.connect(h.posp.port, tmkClear);
      h.terminal.keys = old.keys;
      h.terminal.stan = old.stan;
    },
    async addNode() {
      const node = await startAcquirer(config);
      const t = await TestTerminal.connect(node.port, tmkClear);
      t.keys = h.terminal.keys;
      t.stan = h.terminal.stan;
      extra.push({ posp: node, terminal: t });
      return { posp: node, terminal: t };
    },
    async close() {
      for (const n of extra.splice(0)) {
        await n.terminal.close();
        await n.posp.close();
      }
      await h.terminal.close();
      await h.posp.close();
      await sw.close();
      await hsmServer?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}

export interface WorkingKeys {
  tpk: Uint8Array;
  tak: Uint8Array;
  tdk: Uint8Array;
}

/** The terminal, played by the test. */
export class TestTerminal {
  keys: WorkingKeys | undefined;
  stan = 1;
  private constructor(
    private readonly link: FramedClient,
    private readonly tmk: Uint8Array,
  ) {}

  static async connect(port: number, tmk: Uint8Array): Promise<TestTerminal> {
    const link = await FramedClient.connect({
      host: '127.0.0.1',
      port,
      framing: { prefix: 'binary2' },
      timeoutMs: 5000,
      keyOf: (frame) => {
        // The POSP's own lenient unpack: requests may carry track data enciphered in place.
        const m = unpackTerminalMessage(cup, splitCupFrame(frame).message);
        return `${m.get(41)}|${m.get(11)}`;
      },
    });
    return new TestTerminal(link, tmk);
  }

  nextStan(): string {
    return String(this.stan++).padStart(6, '0');
  }

  /** Sends a message (MAC already in it, or none) and returns the answer and the raw frame. */
  async send(m: Iso8583Message): Promise<{ answer: Iso8583Message; frame: Uint8Array; message: Uint8Array }> {
    const frame = await this.link.request(
      joinCupFrame({ tpdu: TPDU, header: HEADER, message: m.pack().slice() }),
    );
    const parts = splitCupFrame(frame);
    return { answer: unpack(cup, parts.message), frame, message: parts.message };
  }

  signInMessage(stan = this.nextStan()): Iso8583Message {
    return new Iso8583Message(cup, '0800', {
      11: stan,
      41: TERMINAL_ID,
      42: MERCHANT_ID,
      60: '00000001004',
      63: '001',
    });
  }

  /** 0800 -> 0810; checks each check value as a PIN pad does (cup-pos-dialect.md 2.5) and loads the keys. */
  async signIn(): Promise<{ answer: Iso8583Message; keys: WorkingKeys }> {
    const { answer } = await this.send(this.signInMessage());
    const f62 = answer.get(62) as Uint8Array;
    const keys: Uint8Array[] = [];
    for (let i = 0; i < 3; i++) {
      const k = tdesDecryptEcb(this.tmk, f62.subarray(i * 20, i * 20 + 16));
      const cv = tdesEncryptEcb(k, new Uint8Array(8)).subarray(0, 4);
      if (toHex(cv) !== toHex(f62.subarray(i * 20 + 16, i * 20 + 20)))
        throw new Error(`check value ${i} differs`);
      keys.push(k);
    }
    this.keys = { tpk: keys[0]!, tak: keys[1]!, tdk: keys[2]! };
    return { answer, keys: this.keys };
  }

  /** A financial request, unMACed. */
  financial(
    kind: 'purchase' | 'inquiry' | 'void' | 'refund',
    o: {
      stan?: string;
      amount?: number;
      pin?: string;
      pan?: string;
      date?: string;
      original?: { batch: string; stan: string; date?: string; rrn?: string };
    } = {},
  ): Iso8583Message {
    const pan = o.pan ?? CARD.pan;
    const [mti, pc, t] = {
      purchase: ['0200', '000000', '22'],
      inquiry: ['0200', '310000', '01'],
      void: ['0200', '200000', '23'],
      refund: ['0220', '200000', '25'],
    }[kind];
    const m = new Iso8583Message(cup, mti!, {
      2: pan,
      3: pc!,
      11: o.stan ?? this.nextStan(),
      12: '100102',
      13: o.date ?? '1125',
      14: CARD.expiry,
      22: '021',
      25: '00',
      35: CARD.track2,
      41: TERMINAL_ID,
      42: MERCHANT_ID,
      49: '156',
      53: '2600000000000000',
      60: `${t}000001000`,
    });
    if (kind !== 'inquiry') m.set(4, String(o.amount ?? 1234).padStart(12, '0'));
    const pin = o.pin ?? CARD.pin;
    if (pin !== '' && this.keys) m.set(52, tdesEncryptEcb(this.keys.tpk, encodePinBlockIso0(pin, pan)));
    if (o.original) {
      m.set(61, `${o.original.batch}${o.original.stan}${o.original.date ?? ''}`);
      if (o.original.rrn) m.set(37, o.original.rrn);
    }
    return m;
  }

  /** Sends message bytes as they are (MTI..64). */
  async sendRaw(message: Uint8Array): Promise<{ answer: Iso8583Message; message: Uint8Array }> {
    const frame = await this.link.request(joinCupFrame({ tpdu: TPDU, header: HEADER, message }));
    const parts = splitCupFrame(frame);
    return { answer: unpack(cup, parts.message), message: parts.message };
  }

  /**
   * Packs `m` (which holds 35 in clear) as a UnionPay terminal with track encryption does: the track data
   * block (the 8 bytes before the last byte of 35's BCD data) enciphered in place under the TDK, 53
   * position 3 = 1, then the MAC over the bytes as they go out.
   */
  packWithEncryptedTrack(m: Iso8583Message): Uint8Array {
    m.set(53, '2610000000000000');
    m.set(64, new Uint8Array(8));
    const packed = m.pack().slice();
    const prefix = new Iso8583Message(cup, m.mti);
    for (const id of m.fieldIds()) if (id < 35) prefix.set(id, m.get(id)!);
    const at = prefix.pack().length + 1; // after 35's one-byte length
    const n = Math.ceil(String(m.get(35)).length / 2);
    const tdb = packed.slice(at + n - 9, at + n - 1);
    packed.set(tdesEncryptEcb(this.keys!.tdk, tdb), at + n - 9);
    packed.set(macCupEcb(this.keys!.tak, packed.subarray(0, packed.length - 8)), packed.length - 8);
    return packed;
  }

  /** Sets field 64: CUP ECB MAC under the TAK over the packed message minus its last 8 bytes. */
  mac(m: Iso8583Message, key = this.keys!.tak): Iso8583Message {
    m.set(64, new Uint8Array(8));
    const packed = m.pack().slice();
    m.set(64, macCupEcb(key, packed.subarray(0, packed.length - 8)));
    return m;
  }

  /** True when the answer's MAC verifies under the TAK. */
  answerMacOk(message: Uint8Array, key = this.keys!.tak): boolean {
    const mac = message.subarray(message.length - 8);
    return toHex(macCupEcb(key, message.subarray(0, message.length - 8))) === toHex(mac);
  }

  async close(): Promise<void> {
    await this.link.close();
  }
}
