/**
 * The chaos network: a directory set up by `setupNetwork` (every key ceremony against a real HSM), then
 * the HSM server, the issuers, the switch and the POSP started in this process over loopback TCP, as
 * packages/cli/test/network.test.ts does, with a FaultProxy on each leg:
 *
 *   terminals --[terminal leg proxy]--> POSP --[posp-switch proxy]--> switch --[switch-<issuer> proxy]--> issuer
 *
 * Timeouts are shortened (each leg's receiver gives up before the leg before it) so that a delay fault
 * costs a second, not half a minute. A "kill" closes a service after cutting every connection through
 * its proxies (no drain: what a peer sees when the process dies), and a restart opens it again from the
 * same config and database, on the same port.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type AcquirerConfig,
  type AcquirerHandle,
  loadAcquirerConfig,
  startAcquirer,
} from '@openposp/acquirer';
import { fromHex } from '@openposp/crypto';
import { openSealedLmk, type RunningHsm, serveHsm } from '@openposp/hsm';
import { type IssuerHandle, loadIssuerConfig, startIssuer } from '@openposp/issuer';
import { createLogger } from '@openposp/net';
import { loadSwitchConfigFile, startSwitch, type SwitchHandle } from '@openposp/switch';
import {
  loadTerminalConfig,
  startTerminal,
  type Terminal,
  type TerminalConnection,
} from '@openposp/terminal';
import { type FaultPlan, FaultProxy } from '@openposp/testkit';
import type { NetworkManifest } from '../network/layout.js';

/** Timeouts of the chaos network, ms: each receiver gives up before its caller does. */
export const CHAOS_TIMEOUTS_MS = {
  /** The switch waits for an issuer. */
  switchToIssuer: 600,
  /** The POSP waits for the switch. */
  pospToSwitch: 1_200,
  /** The terminal waits for the POSP. */
  terminalAnswer: 2_000,
  /** A delay fault holds a message this much longer than the receiver on its leg waits. */
  delayBeyond: 200,
} as const;

/** The POSP's store and forward in a chaos run: retried within a second, given up after a minute. */
export const CHAOS_SAF = { baseDelayMs: 100, maxDelayMs: 1_000, pollMs: 100, maxAgeMs: 60_000 } as const;

/** After a drop, the proxy keeps the far connection this long (the far side finishes acting). */
export const CHAOS_PROXY_LINGER_MS = 1_000;

export type LegName = 'terminal-posp' | 'posp-switch' | `switch-${string}`;

export interface ChaosNetwork {
  m: NetworkManifest;
  proxies: Map<LegName, FaultProxy>;
  issuers: Map<string, IssuerHandle>;
  posp: AcquirerHandle;
  sw: SwitchHandle;
  hsm: RunningHsm;
  /** Closes the POSP with no drain (connections cut) and starts it again from the same database. */
  killPosp(downMs: number): Promise<void>;
  /** The same for one issuer. */
  killIssuer(id: string, downMs: number): Promise<void>;
  /** Opens a terminal of the directory, talking to the terminal-leg proxy. */
  /** Opens a terminal of the network (its own `connection` setting unless one is given). */
  openTerminal(id: string, connection?: TerminalConnection): Promise<Terminal>;
  /** Sets every proxy's plan (pass-through when undefined). */
  setPlans(plan: ((leg: LegName) => FaultPlan) | undefined): void;
  close(): Promise<void>;
}

const pass: FaultPlan = () => ({ kind: 'pass' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startChaosNetwork(m: NetworkManifest, seed: number): Promise<ChaosNetwork> {
  const lmk = openSealedLmk(m.hsm.sealed, { componentFiles: m.hsm.components });
  // What has started so far, closed in reverse if a later step fails (a half-started network must
  // not keep the process alive).
  const started: (() => Promise<void>)[] = [() => Promise.resolve(lmk.destroy())];
  try {
    return await startAll();
  } catch (e) {
    for (const stop of started.reverse()) await stop().catch(() => {});
    throw e;
  }

  async function startAll(): Promise<ChaosNetwork> {
    const hsm = await serveHsm({ lmk, port: m.hsm.port, host: m.host, auditPath: m.hsm.audit });
    started.push(() => hsm.stop());
    const proxies = new Map<LegName, FaultProxy>();
    const proxy = async (leg: LegName, port: number) => {
      const p = await FaultProxy.start({
        target: { host: m.host, port },
        seed,
        label: leg,
        lingerMs: CHAOS_PROXY_LINGER_MS,
      });
      proxies.set(leg, p);
      started.push(() => p.close());
      return p;
    };

    const issuerConfigs = new Map(m.issuers.map((i) => [i.id, loadIssuerConfig(i.config)]));
    const issuers = new Map<string, IssuerHandle>();
    for (const i of m.issuers) {
      const h = await startIssuer(issuerConfigs.get(i.id)!);
      issuers.set(i.id, h);
      started.push(() => h.close());
      await proxy(`switch-${i.id}`, i.port);
    }
    const swConfig = await loadSwitchConfigFile(m.switch.config);
    const sw = await startSwitch({
      ...swConfig,
      issuers: swConfig.issuers.map((i) => ({ ...i, port: proxies.get(`switch-${i.id}`)!.port })),
      timeouts: { ...swConfig.timeouts, issuerMs: CHAOS_TIMEOUTS_MS.switchToIssuer },
    });
    started.push(() => sw.close());
    const toSwitch = await proxy('posp-switch', m.switch.port);
    // The config file as written (startAcquirer validates it; the resolved form of loadAcquirerConfig is
    // not an input). The store-and-forward worker polls fast so that it drains within the run's end.
    loadAcquirerConfig(m.posp.config);
    const pospConfig = JSON.parse(readFileSync(m.posp.config, 'utf8')) as AcquirerConfig;
    const pospStartConfig: AcquirerConfig = {
      ...pospConfig,
      switch: { ...pospConfig.switch, port: toSwitch.port },
      timeouts: { ...pospConfig.timeouts, switchMs: CHAOS_TIMEOUTS_MS.pospToSwitch },
      ...({ saf: CHAOS_SAF } as object),
    };
    let posp = await startAcquirer(pospStartConfig);
    started.push(() => posp.close());
    const toPosp = await proxy('terminal-posp', m.posp.port);

    const net: ChaosNetwork = {
      m,
      proxies,
      issuers,
      get posp() {
        return posp;
      },
      sw,
      hsm,
      async killPosp(downMs) {
        toPosp.dropAll();
        toSwitch.dropAll();
        await posp.close();
        await sleep(downMs);
        posp = await startAcquirer(pospStartConfig);
      },
      async killIssuer(id, downMs) {
        const h = issuers.get(id);
        if (!h) return;
        proxies.get(`switch-${id}`)!.dropAll();
        await h.close();
        await sleep(downMs);
        issuers.set(id, await startIssuer(issuerConfigs.get(id)!));
      },
      async openTerminal(id, connection) {
        const t = m.terminals.find((x) => x.terminalId === id)!;
        const config = loadTerminalConfig(t.config);
        const secret = fromHex(readFileSync(t.deviceSecretFile, 'utf8').trim(), 'deviceSecret');
        return startTerminal(
          {
            ...config,
            posp: { host: m.host, port: toPosp.port },
            answerTimeoutMs: CHAOS_TIMEOUTS_MS.terminalAnswer,
            ...(connection ? { connection } : {}),
          },
          {
            deviceSecret: secret,
            log: createLogger({ service: 'terminal', path: join(m.logs, 'terminals.log') }),
          },
        );
      },
      setPlans(plan) {
        for (const [leg, p] of proxies) p.plan = plan ? plan(leg) : pass;
      },
      async close() {
        for (const p of proxies.values()) await p.close();
        await posp.close();
        await sw.close();
        for (const i of issuers.values()) await i.close();
        await hsm.stop();
        lmk.destroy();
      },
    };
    return net;
  }
}
