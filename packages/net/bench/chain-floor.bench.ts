/**
 * The floor of the authorization chain's transport: what five processes passing frames along the
 * chain cost when no party does any work. `posp load --processes` runs the POSP, switch, issuers and
 * HSM as processes on loopback TCP; an authorization is 4 ISO 8583 legs (terminal → POSP → switch →
 * issuer and back) and about 13 HSM round trips (POSP 5, switch 5, issuer 3). Here each party is a
 * `FramedServer` that, for each request, makes its HSM round trips (half before forwarding, half after)
 * on one pipelined `FramedClient`, forwards to the next party the same way and echoes the answer; the
 * HSM echoes. Frames are 200 bytes (ISO legs) and 60 bytes (HSM): about the real sizes.
 *
 * What it tells: the CPU an authorization costs in Node's streams, the syscalls and the scheduler,
 * before any parsing, crypto or database work, at a given concurrency (N terminals, each with one
 * connection kept, closed loop). Whatever the chain costs above this is the parties' own work.
 *
 * Run: `node --import tsx packages/net/bench/chain-floor.bench.ts [N ...]` (default 1 16 64), or
 * `npm run bench:floor`. Prints chains/s, p50/p99 latency and CPU µs per chain (all five processes and
 * this one, from /proc, Linux only).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FramedClient, FramedServer } from '../src/index.js';

const ISO_BYTES = 200;
const HSM_BYTES = 60;
const HSM_CALLS: Record<string, number> = { posp: 5, switch: 5, issuer: 3 };
const DURATION_MS = Number(process.env.FLOOR_DURATION_MS ?? 6000);

/** Frames carry a 4-byte sequence number first: the match key. */
const keyOf = (f: Uint8Array) => String(new DataView(f.buffer, f.byteOffset, 4).getUint32(0));

async function link(port: number): Promise<(bytes: number) => Promise<Uint8Array>> {
  const c = await FramedClient.connect({ host: '127.0.0.1', port, keyOf, maxInFlight: 4096 });
  let seq = 0;
  return (bytes) => {
    const f = new Uint8Array(bytes);
    new DataView(f.buffer).setUint32(0, seq++ >>> 0);
    return c.request(f);
  };
}

async function child(role: string, next: number, hsmPort: number): Promise<void> {
  let handler: (f: Uint8Array) => Promise<Uint8Array>;
  if (role === 'hsm') handler = async (f) => f.slice(0, HSM_BYTES);
  else {
    const hsm = await link(hsmPort);
    const forward = next ? await link(next) : undefined;
    const calls = HSM_CALLS[role]!;
    const before = Math.ceil(calls / 2);
    handler = async (f) => {
      for (let i = 0; i < before; i++) await hsm(HSM_BYTES);
      if (forward) await forward(ISO_BYTES);
      for (let i = before; i < calls; i++) await hsm(HSM_BYTES);
      return f.slice();
    };
  }
  const server = await FramedServer.listen({ handler, maxInFlightPerConnection: 4096 });
  process.send!(server.port);
}

function cpuMs(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10; // utime + stime, USER_HZ = 100
}

async function run(n: number): Promise<void> {
  const me = fileURLToPath(import.meta.url);
  const kids: ChildProcess[] = [];
  const start = (args: string[]) =>
    new Promise<number>((resolve) => {
      const c = fork(me, args);
      kids.push(c);
      c.once('message', (port) => resolve(port as number));
    });
  try {
    const hsm = await start(['hsm', '0', '0']);
    const issuer = await start(['issuer', '0', String(hsm)]);
    const sw = await start(['switch', String(issuer), String(hsm)]);
    const posp = await start(['posp', String(sw), String(hsm)]);
    const terminals = await Promise.all(Array.from({ length: n }, () => link(posp)));
    // Warm up (JIT) before timing.
    const warmEnd = performance.now() + 1500;
    await Promise.all(
      terminals.map(async (t) => {
        while (performance.now() < warmEnd) await t(ISO_BYTES);
      }),
    );
    const pids = kids.map((k) => k.pid!);
    const c0 = pids.reduce((a, p) => a + cpuMs(p), 0);
    const u0 = process.cpuUsage();
    const lat: number[] = [];
    const t0 = performance.now();
    const end = t0 + DURATION_MS;
    await Promise.all(
      terminals.map(async (t) => {
        while (performance.now() < end) {
          const s = performance.now();
          await t(ISO_BYTES);
          lat.push(performance.now() - s);
        }
      }),
    );
    const elapsed = (performance.now() - t0) / 1000;
    const u = process.cpuUsage(u0);
    const cpu = pids.reduce((a, p) => a + cpuMs(p), 0) - c0 + (u.user + u.system) / 1000;
    lat.sort((a, b) => a - b);
    const pct = (p: number) => lat[Math.min(lat.length - 1, Math.ceil((p / 100) * lat.length) - 1)]!;
    console.log(
      `N=${String(n).padStart(3)}  ${(lat.length / elapsed).toFixed(0).padStart(6)} chains/s  p50 ${pct(50).toFixed(2)} ms  p99 ${pct(99).toFixed(2)} ms  CPU ${((cpu * 1000) / lat.length).toFixed(0)} µs per chain (6 processes)`,
    );
  } finally {
    for (const k of kids) k.kill();
  }
}

const [role, next, hsmPort] = process.argv.slice(2);
if (process.send && role !== undefined) await child(role, Number(next), Number(hsmPort));
else {
  const ns = process.argv.slice(2).map(Number);
  console.log(`chain floor: 4 ISO legs + 13 HSM round trips per chain, no work; ${DURATION_MS} ms per row`);
  for (const n of ns.length > 0 ? ns : [1, 16, 64]) await run(n);
}
