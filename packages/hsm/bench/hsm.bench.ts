/**
 * HSM benchmark: CA (translate a PIN block TPK -> ZPK), TDES ISO 0 -> ISO 0 and AES ISO 4 -> ISO 4,
 * - in process on one core (the `Hsm` called in a loop), with the LRU key cache and without it;
 * - over TCP: the HSM server in a child process (its own core), `connections` HsmClients in this one,
 *   each keeping `window` requests in flight (pipelined).
 * Each row gives commands/s and the p50 / p99 latency of one command (in process: one call; over TCP:
 * from the client call to its reply, so it includes queueing in the pipeline).
 *
 * `benchHsm()` returns the rows; run directly it prints them:
 *   node --import tsx packages/hsm/bench/hsm.bench.ts [budgetMs]
 */
import { spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { adjustOddParity, encryptPinBlock, fromHex } from '@openposp/crypto';
import type { PinBlockFormatCode } from '../src/api.js';
import { HsmClient } from '../src/client.js';
import { registerHsmCommands } from '../src/commands.js';
import { Hsm } from '../src/hsm.js';
import type { KeyAttributes } from '../src/keystore.js';
import { createTestLmk } from '../src/lmk.js';
import { HsmServer } from '../src/server.js';

export interface HsmBenchRow {
  name: string;
  opsPerSec: number;
  p50Us: number;
  p99Us: number;
}

const PAN = '4012345678909';
const attrs = (algorithm: 'T' | 'A'): KeyAttributes => ({
  usage: 'P0',
  algorithm,
  modeOfUse: 'B',
  keyVersion: '00',
  exportability: 'E',
});

/** Fixed keys under the (public) test LMK, so the server worker and the clients agree on them. */
function fixture() {
  const lmk = createTestLmk({ allowTestLmk: true, warn: () => {} });
  const tdesTpk = adjustOddParity(fromHex('0123456789ABCDEFFEDCBA9876543210'));
  const aesTpk = fromHex('000102030405060708090A0B0C0D0E0F');
  return {
    lmk,
    cases: [
      {
        label: 'CA TDES ISO 0 -> ISO 0',
        format: 0 as PinBlockFormatCode,
        tpk: lmk.wrapKey(tdesTpk, attrs('T')),
        zpk: lmk.wrapKey(adjustOddParity(fromHex('89ABCDEF0123456776543210FEDCBA98')), attrs('T')),
        pinBlock: encryptPinBlock(0, tdesTpk, '1234', PAN),
      },
      {
        label: 'CA AES ISO 4 -> ISO 4',
        format: 4 as PinBlockFormatCode,
        tpk: lmk.wrapKey(aesTpk, attrs('A')),
        zpk: lmk.wrapKey(
          fromHex('202122232425262728292A2B2C2D2E2F303132333435363738393A3B3C3D3E3F'),
          attrs('A'),
        ),
        pinBlock: encryptPinBlock(4, aesTpk, '1234', PAN),
      },
    ],
  };
}

function percentiles(samples: Float64Array, n: number): { p50Us: number; p99Us: number } {
  const s = samples.subarray(0, n).sort();
  const at = (q: number) => s[Math.min(n - 1, Math.floor(q * n))] ?? 0;
  return { p50Us: Math.round(at(0.5) * 10) / 10, p99Us: Math.round(at(0.99) * 10) / 10 };
}

/** Latency samples kept per row: a bounded buffer (later samples overwrite at random, reservoir-style). */
const SAMPLES_MAX = 1 << 20;

function inProcess(budgetMs: number, cacheEntries: number): HsmBenchRow[] {
  const { lmk, cases } = fixture();
  const hsm = new Hsm({ lmk, keyCacheEntries: cacheEntries });
  const rows: HsmBenchRow[] = [];
  for (const c of cases) {
    const req = {
      tpk: c.tpk,
      zpk: c.zpk,
      pinBlock: c.pinBlock,
      format: c.format,
      formatOut: c.format,
      pan: PAN,
    };
    const warm = performance.now() + 200;
    while (performance.now() < warm) hsm.translatePinTpkToZpk(req);
    const samples = new Float64Array(SAMPLES_MAX);
    let n = 0;
    let ops = 0;
    const start = performance.now();
    let now = start;
    while (now - start < budgetMs) {
      const t0 = now;
      hsm.translatePinTpkToZpk(req);
      now = performance.now();
      const us = (now - t0) * 1000;
      if (n < SAMPLES_MAX) samples[n++] = us;
      else samples[Math.floor(Math.random() * SAMPLES_MAX)] = us;
      ops++;
    }
    rows.push({
      name: `${c.label}, in process, ${cacheEntries > 0 ? 'key cache' : 'no key cache'}`,
      opsPerSec: Math.round((ops * 1000) / (now - start)),
      ...percentiles(samples, n),
    });
  }
  hsm.destroy();
  return rows;
}

/** The server side of the TCP rows, in a child process: answers on a free port and prints it. */
async function serveForBench(): Promise<void> {
  const { lmk } = fixture();
  const server = registerHsmCommands(new HsmServer({ maxInFlightPerConnection: 64 }), new Hsm({ lmk }));
  const { port } = await server.listen(0);
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => void server.close().then(() => process.exit(0)));
}

async function overTcp(budgetMs: number, connections: number, window: number): Promise<HsmBenchRow[]> {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--serve'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) resolve((JSON.parse(buf.split('\n')[0]!) as { port: number }).port);
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`bench server exited (${code})`)));
  });
  const { cases } = fixture();
  const clients = await Promise.all(
    Array.from({ length: connections }, () => HsmClient.connect('127.0.0.1', port, { maxInFlight: window })),
  );
  const rows: HsmBenchRow[] = [];
  for (const c of cases) {
    const req = {
      tpk: c.tpk,
      zpk: c.zpk,
      pinBlock: c.pinBlock,
      format: c.format,
      formatOut: c.format,
      pan: PAN,
    };
    const run = async (ms: number, record: boolean) => {
      const samples = new Float64Array(SAMPLES_MAX);
      let n = 0;
      let ops = 0;
      const start = performance.now();
      const deadline = start + ms;
      const loop = async (cl: HsmClient) => {
        while (performance.now() < deadline) {
          const t0 = performance.now();
          await cl.translatePinTpkToZpk(req);
          const us = (performance.now() - t0) * 1000;
          if (n < SAMPLES_MAX) samples[n++] = us;
          else samples[Math.floor(Math.random() * SAMPLES_MAX)] = us;
          ops++;
        }
      };
      await Promise.all(clients.flatMap((cl) => Array.from({ length: window }, () => loop(cl))));
      const elapsed = performance.now() - start;
      if (!record) return;
      rows.push({
        name: `${c.label}, TCP, ${connections} connections x ${window} in flight`,
        opsPerSec: Math.round((ops * 1000) / elapsed),
        ...percentiles(samples, n),
      });
    };
    await run(300, false);
    await run(budgetMs, true);
  }
  await Promise.all(clients.map((cl) => cl.close()));
  const exited = new Promise((r) => child.once('exit', r));
  child.stdin.end();
  await exited;
  return rows;
}

export async function benchHsm(
  opts: { budgetMs?: number; connections?: number; window?: number } = {},
): Promise<HsmBenchRow[]> {
  const budgetMs = opts.budgetMs ?? 2000;
  return [
    ...inProcess(budgetMs, 1024),
    ...inProcess(budgetMs, 0),
    ...(await overTcp(budgetMs, opts.connections ?? 4, opts.window ?? 32)),
  ];
}

export function formatHsmRows(rows: HsmBenchRow[]): string {
  const w = Math.max(...rows.map((r) => r.name.length));
  const out = [
    `${'command'.padEnd(w)}  ${'cmds/s'.padStart(9)}  ${'p50 µs'.padStart(8)}  ${'p99 µs'.padStart(8)}`,
  ];
  for (const r of rows) {
    out.push(
      `${r.name.padEnd(w)}  ${r.opsPerSec.toLocaleString('en-US').padStart(9)}  ${String(r.p50Us).padStart(8)}  ${String(r.p99Us).padStart(8)}`,
    );
  }
  return out.join('\n');
}

if (process.argv[2] === '--serve') {
  await serveForBench();
} else if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const budgetMs = Number(process.argv[2] ?? 2000);
  console.log(formatHsmRows(await benchHsm({ budgetMs })));
}
