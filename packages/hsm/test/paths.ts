/**
 * The two paths every HsmApi test runs on: in process (LocalHsm) and over TCP (HsmClient against an
 * HsmServer on the same Hsm, with an audit log). A test file calls `setUpBothPaths` once at top level;
 * `hsm`, `client`, `port` and `auditPath` are live bindings, set by its `before` hook.
 */
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { HsmApi } from '../src/api.js';
import { AuditLog } from '../src/audit.js';
import { HsmClient } from '../src/client.js';
import { registerHsmCommands } from '../src/commands.js';
import { encodeRequestFrame, FrameDecoder } from '../src/framing.js';
import { Hsm } from '../src/hsm.js';
import { createTestLmk } from '../src/lmk.js';
import { LocalHsm } from '../src/local.js';
import { HsmServer } from '../src/server.js';

export const lmk = createTestLmk({ allowTestLmk: true, warn: () => {} });
export let auditPath: string;
export let hsm: Hsm;
export let client: HsmClient;
export let port: number;
let server: HsmServer;

/** Starts the Hsm (audit log in a new `tmpPrefix*` folder), its TCP server and a client, per file. */
export function setUpBothPaths(tmpPrefix: string): void {
  auditPath = join(mkdtempSync(join(tmpdir(), tmpPrefix)), 'audit.jsonl');
  before(async () => {
    const audit = await AuditLog.open(auditPath, { lmkCheckValue: lmk.checkValue });
    hsm = new Hsm({ lmk, audit });
    server = registerHsmCommands(new HsmServer(), hsm);
    port = (await server.listen(0)).port;
    client = await HsmClient.connect('127.0.0.1', port);
  });
  after(async () => {
    await client.close();
    await server.close();
  });
}

const apis: Record<'in process' | 'over TCP', () => HsmApi> = {
  'in process': () => new LocalHsm(hsm),
  'over TCP': () => client,
};

/** Registers `fn` once per path. */
export function both(name: string, fn: (api: HsmApi, local: boolean) => Promise<void>): void {
  for (const [path, get] of Object.entries(apis)) {
    test(`${name} (${path})`, () => fn(get(), path === 'in process'));
  }
}

/** One raw host command on the TCP port (header 0001): the reply's code (e.g. `M100`) and body. */
export function rawCommand(command: string, body: string): Promise<{ code: string; body: Buffer }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const dec = new FrameDecoder();
    s.on('data', (c) => {
      dec.push(c);
      const m = dec.next();
      if (m) {
        const b = Buffer.from(m);
        resolve({ code: b.subarray(4, 8).toString('latin1'), body: b.subarray(8) });
        s.destroy();
      }
    });
    s.write(
      encodeRequestFrame({ header: '0001', command, body: new Uint8Array(Buffer.from(body, 'latin1')) }),
    );
  });
}
