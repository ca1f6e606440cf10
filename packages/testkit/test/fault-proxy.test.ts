/**
 * The fault proxy against a real framed TCP server on loopback: each fault kind in each direction,
 * with the end state at both sides (what the server received, what the client got back) and the
 * counters; the seeded generator replays.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { createPrng, type FaultDecision, FaultProxy, randomFaultPlan } from '../src/index.js';

/** A framed echo server: answers each frame with `ok:` + the frame; remembers what it received. */
class EchoServer {
  readonly received: string[] = [];
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  port = 0;
  constructor() {
    this.#server = createServer((s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s)).on('error', () => {});
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const n = buf.readUInt16BE(0);
          const f = buf.subarray(2, 2 + n).toString('latin1');
          buf = buf.subarray(2 + n);
          this.received.push(f);
          if (!s.destroyed) s.write(frame(`ok:${f}`));
        }
      });
    });
  }
  async start(): Promise<void> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.#server.address() as { port: number }).port;
  }
  close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    return new Promise((r) => this.#server.close(() => r()));
  }
}

function frame(text: string): Buffer {
  const p = Buffer.from(text, 'latin1');
  const b = Buffer.alloc(2 + p.length);
  b.writeUInt16BE(p.length, 0);
  p.copy(b, 2);
  return b;
}

/** Sends frames on one connection; collects answers until `waitMs` passes or the link closes. */
async function exchange(
  port: number,
  messages: string[],
  waitMs = 150,
): Promise<{ answers: string[]; closed: boolean }> {
  const s = connect({ host: '127.0.0.1', port });
  await new Promise<void>((r, j) => s.once('connect', () => r()).once('error', j));
  const answers: string[] = [];
  let closed = false;
  let buf = Buffer.alloc(0);
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const n = buf.readUInt16BE(0);
      answers.push(buf.subarray(2, 2 + n).toString('latin1'));
      buf = buf.subarray(2 + n);
    }
  });
  s.on('close', () => {
    closed = true;
  }).on('error', () => {});
  for (const m of messages) {
    s.write(frame(m));
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, waitMs));
  s.destroy();
  return { answers, closed };
}

const echo = new EchoServer();
const proxies: FaultProxy[] = [];

async function proxyWith(
  decide: (dir: 'request' | 'response', index: number) => FaultDecision,
): Promise<FaultProxy> {
  const p = await FaultProxy.start({
    listenPort: 0,
    target: { host: '127.0.0.1', port: echo.port },
    seed: 7,
    plan: ({ direction, index }) => decide(direction, index),
    lingerMs: 300,
  });
  proxies.push(p);
  return p;
}

before(() => echo.start());
after(async () => {
  for (const p of proxies) await p.close();
  await echo.close();
});

test('pass: every message goes through in order, counted, no fault', async () => {
  echo.received.length = 0;
  const p = await proxyWith(() => ({ kind: 'pass' }));
  const r = await exchange(p.port, ['a', 'b', 'c']);
  assert.deepEqual(echo.received, ['a', 'b', 'c']);
  assert.deepEqual(r.answers, ['ok:a', 'ok:b', 'ok:c']);
  assert.deepEqual(p.counters.messages, { request: 3, response: 3 });
  assert.equal(p.counters.injected, 0);
});

test('a frame split across TCP writes is reassembled before the plan sees it', async () => {
  echo.received.length = 0;
  const seen: string[] = [];
  const p = await FaultProxy.start({
    target: { host: '127.0.0.1', port: echo.port },
    seed: 1,
    plan: ({ direction, frame: f }) => {
      if (direction === 'request') seen.push(Buffer.from(f).toString('latin1'));
      return { kind: 'pass' };
    },
  });
  proxies.push(p);
  const s = connect({ host: '127.0.0.1', port: p.port });
  await new Promise<void>((r) => s.once('connect', () => r()));
  const whole = Buffer.concat([frame('hello'), frame('world')]);
  s.write(whole.subarray(0, 3));
  await new Promise((r) => setTimeout(r, 30));
  s.write(whole.subarray(3, 9));
  await new Promise((r) => setTimeout(r, 30));
  s.write(whole.subarray(9));
  await new Promise((r) => setTimeout(r, 80));
  s.destroy();
  assert.deepEqual(seen, ['hello', 'world']);
  assert.deepEqual(echo.received, ['hello', 'world']);
});

test('drop-before on a request: the server never sees it, the client is disconnected with nothing', async () => {
  echo.received.length = 0;
  const p = await proxyWith((dir, i) =>
    dir === 'request' && i === 1 ? { kind: 'drop-before' } : { kind: 'pass' },
  );
  const r = await exchange(p.port, ['a', 'b', 'c']);
  assert.deepEqual(echo.received, ['a']);
  assert.deepEqual(r.answers, ['ok:a']);
  assert.equal(r.closed, true);
  assert.equal(p.counters.faults['drop-before'].request, 1);
  assert.equal(p.counters.injected, 1);
});

test('drop-after on a request: the server acts on it, the client gets nothing back', async () => {
  echo.received.length = 0;
  const p = await proxyWith((dir) => (dir === 'request' ? { kind: 'drop-after' } : { kind: 'pass' }));
  const r = await exchange(p.port, ['pay']);
  assert.deepEqual(echo.received, ['pay']);
  assert.deepEqual(r.answers, []);
  assert.equal(r.closed, true);
  assert.equal(p.counters.faults['drop-after'].request, 1);
  // The answer was read from the server and discarded, not counted as delivered.
  assert.equal(p.counters.messages.response, 0);
});

test('drop-before on a response: the server acted, the answer is lost (money moved, no slip)', async () => {
  echo.received.length = 0;
  const p = await proxyWith((dir) => (dir === 'response' ? { kind: 'drop-before' } : { kind: 'pass' }));
  const r = await exchange(p.port, ['pay']);
  assert.deepEqual(echo.received, ['pay']);
  assert.deepEqual(r.answers, []);
  assert.equal(r.closed, true);
  assert.equal(p.counters.faults['drop-before'].response, 1);
});

test('drop-after on a response: the client has the answer, then the link drops', async () => {
  echo.received.length = 0;
  const p = await proxyWith((dir) => (dir === 'response' ? { kind: 'drop-after' } : { kind: 'pass' }));
  const r = await exchange(p.port, ['pay']);
  assert.deepEqual(r.answers, ['ok:pay']);
  assert.equal(r.closed, true);
  assert.equal(p.counters.faults['drop-after'].response, 1);
});

test('delay: the message arrives after delayMs, so a receiver with a shorter timeout has given up', async () => {
  echo.received.length = 0;
  const p = await proxyWith((dir) =>
    dir === 'response' ? { kind: 'delay', delayMs: 200 } : { kind: 'pass' },
  );
  const early = await exchange(p.port, ['slow'], 80);
  assert.deepEqual(early.answers, [], 'nothing within 80 ms');
  assert.deepEqual(echo.received, ['slow']);
  const late = await exchange(p.port, ['slow2'], 350);
  assert.deepEqual(late.answers, ['ok:slow2'], 'the answer comes after 200 ms');
  assert.equal(p.counters.faults.delay.response, 2);
});

test('corrupt: one bit of one of the last 8 bytes flips; the rest of the message is intact', async () => {
  echo.received.length = 0;
  const p = await proxyWith((dir) => (dir === 'request' ? { kind: 'corrupt' } : { kind: 'pass' }));
  const msg = 'HEADERFIELDS-MACBYTES';
  await exchange(p.port, [msg]);
  const got = echo.received[0]!;
  assert.equal(got.length, msg.length);
  let diffs = 0;
  for (let i = 0; i < msg.length; i++) {
    if (got.charCodeAt(i) !== msg.charCodeAt(i)) {
      diffs++;
      assert.ok(i >= msg.length - 8, `byte ${i} changed, outside the MAC`);
      const x = got.charCodeAt(i) ^ msg.charCodeAt(i);
      assert.equal(x & (x - 1), 0, 'exactly one bit');
    }
  }
  assert.equal(diffs, 1);
  assert.equal(p.counters.faults.corrupt.request, 1);
});

test('corrupt at a given offset', async () => {
  echo.received.length = 0;
  const p = await proxyWith((dir) => (dir === 'request' ? { kind: 'corrupt', offset: 0 } : { kind: 'pass' }));
  await exchange(p.port, ['AAAA']);
  assert.notEqual(echo.received[0]![0], 'A');
  assert.equal(echo.received[0]!.slice(1), 'AAA');
});

test('duplicate: the server sees the request twice and answers twice', async () => {
  echo.received.length = 0;
  const p = await proxyWith((dir, i) =>
    dir === 'request' && i === 0 ? { kind: 'duplicate' } : { kind: 'pass' },
  );
  const r = await exchange(p.port, ['pay']);
  assert.deepEqual(echo.received, ['pay', 'pay']);
  assert.deepEqual(r.answers, ['ok:pay', 'ok:pay']);
  assert.equal(p.counters.faults.duplicate.request, 1);
});

test('dropAll closes open connections; setTarget moves new ones', async () => {
  const p = await proxyWith(() => ({ kind: 'pass' }));
  const s = connect({ host: '127.0.0.1', port: p.port });
  await new Promise<void>((r) => s.once('connect', () => r()));
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  s.on('error', () => {});
  await new Promise((r) => setTimeout(r, 30));
  p.dropAll();
  await closed;
  const other = new EchoServer();
  await other.start();
  p.setTarget({ host: '127.0.0.1', port: other.port });
  await exchange(p.port, ['moved']);
  assert.deepEqual(other.received, ['moved']);
  await other.close();
});

test('randomFaultPlan: the same seed makes the same decisions; the rate is respected', () => {
  const plan = randomFaultPlan({ rate: 0.25, delayMs: 10 });
  const run = (seed: number) => {
    const rng = createPrng(seed);
    return Array.from(
      { length: 2000 },
      (_, i) =>
        plan({
          direction: i % 2 ? 'response' : 'request',
          index: i,
          connectionId: 0,
          frame: new Uint8Array(),
          rng,
        }).kind,
    );
  };
  const a = run(42);
  assert.deepEqual(run(42), a);
  assert.notDeepEqual(run(43), a);
  const faults = a.filter((k) => k !== 'pass').length;
  assert.ok(faults > 400 && faults < 600, `${faults} faults of 2000 at 25%`);
  for (const k of ['drop-before', 'drop-after', 'delay', 'corrupt', 'duplicate'])
    assert.ok(a.includes(k as never), `${k} drawn`);
  const reqOnly = randomFaultPlan({ rate: 1, kinds: ['corrupt'], directions: ['request'] });
  const rng = createPrng(1);
  assert.equal(
    reqOnly({ direction: 'response', index: 0, connectionId: 0, frame: new Uint8Array(), rng }).kind,
    'pass',
  );
  assert.equal(
    reqOnly({ direction: 'request', index: 0, connectionId: 0, frame: new Uint8Array(), rng }).kind,
    'corrupt',
  );
  assert.throws(() => randomFaultPlan({ rate: 2 }), RangeError);
  assert.throws(() => randomFaultPlan({ rate: 0.1, kinds: ['delay'] }), /delayMs is required/);
});

test('createPrng: xoshiro128** from splitmix32; replayable, bounded, forks are independent', () => {
  const a = createPrng(2024);
  const seq = Array.from({ length: 5 }, () => a.nextUint32());
  const b = createPrng(2024);
  assert.deepEqual(
    Array.from({ length: 5 }, () => b.nextUint32()),
    seq,
  );
  assert.notDeepEqual(
    Array.from({ length: 5 }, () => createPrng(2025).nextUint32()),
    seq,
  );
  const r = createPrng(0);
  for (let i = 0; i < 1000; i++) {
    const n = r.int(7);
    assert.ok(Number.isInteger(n) && n >= 0 && n < 7);
    const f = r.float();
    assert.ok(f >= 0 && f < 1);
    const x = r.between(3, 5);
    assert.ok(x >= 3 && x <= 5);
  }
  assert.notEqual(createPrng(5).fork('a').nextUint32(), createPrng(5).fork('b').nextUint32());
  assert.equal(createPrng(5).fork('a').nextUint32(), createPrng(5).fork('a').nextUint32());
  assert.throws(() => createPrng(1.5), TypeError);
  assert.throws(() => r.int(0), RangeError);
  assert.throws(() => r.pick([]), RangeError);
});
