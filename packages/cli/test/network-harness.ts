/**
 * Test helpers for the end-to-end tests: the network of a setup directory started in this process
 * (real HSM server over TCP, issuers, switch, POSP over loopback), a TCP proxy that can tamper with
 * terminal frames, and the secret scan of a directory.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { type AcquirerHandle, loadAcquirerConfig, startAcquirer } from '@openposp/acquirer';
import { openSealedLmk, type RunningHsm, serveHsm } from '@openposp/hsm';
import { type IssuerHandle, loadIssuerConfig, startIssuer } from '@openposp/issuer';
import { loadSwitchConfigFile, startSwitch, type SwitchHandle } from '@openposp/switch';
import { loadTerminalConfig, startTerminal, type Terminal } from '@openposp/terminal';
import { fromHex } from '@openposp/crypto';
import { createLogger } from '@openposp/net';
import type { NetworkManifest } from '../src/network/layout.js';

export interface InProcessNetwork {
  /** Pass-through proxies on the POSP→switch and switch→bank-a links (tests set their hooks). */
  legs: { pospToSwitch: FrameProxy; switchToBankA: FrameProxy };
  hsm: RunningHsm;
  issuers: Map<string, IssuerHandle>;
  sw: SwitchHandle;
  posp: AcquirerHandle;
  /** Moves the POSP's clock (its "today"), ms. */
  clock: { offsetMs: number };
  close(): Promise<void>;
}

/** Starts every service of a setup directory in this process, on the ports of its configs. */
export async function startInProcess(m: NetworkManifest): Promise<InProcessNetwork> {
  const lmk = openSealedLmk(m.hsm.sealed, { componentFiles: m.hsm.components });
  const hsm = await serveHsm({ lmk, port: m.hsm.port, host: m.host, auditPath: m.hsm.audit });
  const issuers = new Map<string, IssuerHandle>();
  for (const i of m.issuers) issuers.set(i.id, await startIssuer(loadIssuerConfig(i.config)));
  const bankA = m.issuers.find((i) => i.id === 'bank-a')!;
  const switchToBankA = await FrameProxy.start({ host: m.host, port: bankA.port });
  const swConfig = await loadSwitchConfigFile(m.switch.config);
  const sw = await startSwitch({
    ...swConfig,
    issuers: swConfig.issuers.map((i) => (i.id === 'bank-a' ? { ...i, port: switchToBankA.port } : i)),
  });
  const pospToSwitch = await FrameProxy.start({ host: m.host, port: m.switch.port });
  const clock = { offsetMs: 0 };
  const pospConfig = loadAcquirerConfig(m.posp.config);
  const posp = await startAcquirer({
    ...pospConfig,
    switch: { ...pospConfig.switch, port: pospToSwitch.port },
    clock: () => new Date(Date.now() + clock.offsetMs),
  });
  return {
    legs: { pospToSwitch, switchToBankA },
    hsm,
    issuers,
    sw,
    posp,
    clock,
    close: async () => {
      await posp.close();
      await pospToSwitch.close();
      await sw.close();
      await switchToBankA.close();
      for (const i of issuers.values()) await i.close();
      await hsm.stop();
      lmk.destroy();
    },
  };
}

/** Opens a terminal of the directory, optionally talking to another port (a proxy) than its config's. */
export async function openTerminal(m: NetworkManifest, id: string, pospPort?: number): Promise<Terminal> {
  const t = m.terminals.find((x) => x.terminalId === id)!;
  const config = loadTerminalConfig(t.config);
  const secret = fromHex(readFileSync(t.deviceSecretFile, 'utf8').trim(), 'deviceSecret');
  return startTerminal(
    { ...config, posp: { host: m.host, port: pospPort ?? config.posp.port } },
    { deviceSecret: secret, log: createLogger({ service: 'terminal', path: join(m.logs, 'terminals.log') }) },
  );
}

/** Splits a byte stream into 2-byte-length frames (the payload after the prefix). */
class FrameSplitter {
  #buf = Buffer.alloc(0);
  push(chunk: Buffer): Uint8Array[] {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    const out: Uint8Array[] = [];
    while (this.#buf.length >= 2) {
      const n = this.#buf.readUInt16BE(0);
      if (this.#buf.length < 2 + n) break;
      out.push(new Uint8Array(this.#buf.subarray(2, 2 + n)));
      this.#buf = this.#buf.subarray(2 + n);
    }
    return out;
  }
}

const framed = (payload: Uint8Array): Buffer => {
  const b = Buffer.alloc(2 + payload.length);
  b.writeUInt16BE(payload.length, 0);
  b.set(payload, 2);
  return b;
};

/**
 * A proxy between terminals and the POSP that sees every frame (TPDU | header | message) and may
 * replace it: `onRequest` for terminal → POSP, `onAnswer` for POSP → terminal.
 */
export class FrameProxy {
  onRequest: (frame: Uint8Array) => Uint8Array = (f) => f;
  onAnswer: (frame: Uint8Array) => Uint8Array = (f) => f;
  readonly requests: Uint8Array[] = [];
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  port = 0;

  private constructor(target: { host: string; port: number }) {
    this.#server = createServer((client) => {
      const upstream = connect(target);
      this.#sockets.add(client).add(upstream);
      const up = new FrameSplitter();
      const down = new FrameSplitter();
      client.on('data', (d: Buffer) => {
        for (const f of up.push(d)) {
          this.requests.push(f);
          upstream.write(framed(this.onRequest(f)));
        }
      });
      upstream.on('data', (d: Buffer) => {
        for (const f of down.push(d)) client.write(framed(this.onAnswer(f)));
      });
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
  }

  static async start(target: { host: string; port: number }): Promise<FrameProxy> {
    const p = new FrameProxy(target);
    await new Promise<void>((r) => p.#server.listen(0, '127.0.0.1', () => r()));
    p.port = (p.#server.address() as { port: number }).port;
    return p;
  }

  close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    return new Promise((r) => this.#server.close(() => r()));
  }
}

/** Every file under `dir`, recursively. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

/** Digits packed two per byte (BCD), an odd count padded with F (as ISO 8583 packs a PAN). */
export function packedBcd(digits: string): Buffer {
  const s = digits.length % 2 === 0 ? digits : `${digits}F`;
  return Buffer.from(s, 'hex');
}

export interface Needle {
  label: string;
  bytes: Buffer;
  /** Files (path suffixes) where this needle is expected by design and not reported. */
  allowedIn?: RegExp;
}

/** Needles for a card: the PAN in ASCII and packed BCD, the track 2 data in ASCII and BCD. */
export function cardNeedles(c: { pan: string; track2: string }): Needle[] {
  const bcdTrack = c.track2.replace('=', 'D');
  return [
    { label: 'PAN ascii', bytes: Buffer.from(c.pan) },
    { label: 'PAN bcd', bytes: packedBcd(c.pan) },
    { label: 'track2 ascii', bytes: Buffer.from(c.track2) },
    { label: 'track2 ascii D', bytes: Buffer.from(bcdTrack) },
    { label: 'track2 bcd', bytes: packedBcd(bcdTrack) },
  ];
}

/** A clear key or component in every form it could leak in: raw, hex upper and lower case. */
export function keyNeedles(label: string, key: Uint8Array, allowedIn?: RegExp): Needle[] {
  const hex = Buffer.from(key).toString('hex');
  return [
    { label: `${label} raw`, bytes: Buffer.from(key), ...(allowedIn ? { allowedIn } : {}) },
    { label: `${label} hex`, bytes: Buffer.from(hex.toUpperCase()), ...(allowedIn ? { allowedIn } : {}) },
    { label: `${label} hex lc`, bytes: Buffer.from(hex), ...(allowedIn ? { allowedIn } : {}) },
  ];
}

/** A PIN next to PIN-ish words (`pin`, `PIN`, `密码`) within a few characters, in any text file. */
export function pinFindings(text: string, pins: readonly string[]): string[] {
  const out: string[] = [];
  for (const pin of pins) {
    const re = new RegExp(`(pin|密码|passcode)[^0-9a-z]{0,12}${pin}(?![0-9])`, 'i');
    if (re.test(text)) out.push(`PIN ${pin.length} digits next to a PIN word`);
  }
  return out;
}

/** Scans every file of `dir` (logs, configs, SQLite files and their -wal/-shm) for the needles. */
export function scanDirectory(dir: string, needles: readonly Needle[], pins: readonly string[]): string[] {
  const findings: string[] = [];
  for (const file of filesUnder(dir)) {
    const bytes = readFileSync(file);
    for (const n of needles) {
      if (n.allowedIn?.test(file)) continue;
      if (bytes.includes(n.bytes)) findings.push(`${file}: ${n.label}`);
    }
    for (const f of pinFindings(bytes.toString('latin1'), pins)) findings.push(`${file}: ${f}`);
  }
  return findings;
}
