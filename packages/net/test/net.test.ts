import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import {
  createLogger,
  FramedClient,
  FramedServer,
  isNetError,
  maskDigits,
  tickWriter,
} from '../src/index.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
/** Test frames are "key:payload"; the key matches a response to its request. */
const keyOf = (f: Uint8Array) => {
  const s = dec(f);
  const i = s.indexOf(':');
  if (i < 0) throw new Error('no key');
  return s.slice(0, i);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const code = (c: string) => (e: unknown) => isNetError(e) && e.code === c;

describe('FramedServer and FramedClient', () => {
  test('pipelined requests answered out of order are matched by key', async () => {
    const server = await FramedServer.listen({
      handler: async (f) => {
        const s = dec(f);
        await sleep(s.startsWith('slow') ? 30 : 1);
        return enc(`${s}!`);
      },
    });
    const c = await FramedClient.connect({ host: '127.0.0.1', port: server.port, keyOf });
    const [a, b] = await Promise.all([c.request(enc('slow:1')), c.request(enc('fast:2'))]);
    assert.equal(dec(a), 'slow:1!');
    assert.equal(dec(b), 'fast:2!');
    await c.close();
    await server.close();
  });
  test('timeout, in-flight limit, duplicate key and unreadable key are typed errors', async () => {
    const late: string[] = [];
    const server = await FramedServer.listen({
      handler: async (f) => {
        await sleep(80);
        return f;
      },
    });
    const c = await FramedClient.connect({
      host: '127.0.0.1',
      port: server.port,
      keyOf,
      maxInFlight: 2,
      onUnmatched: (f, why) => late.push(`${dec(f)} ${why}`),
    });
    await assert.rejects(
      c.request(enc('a:1'), 20),
      (e: unknown) => isNetError(e) && e.code === 'NET_TIMEOUT' && e.sent,
    );
    await assert.rejects(c.request(enc('garbage')), code('NET_KEY_INVALID'));
    const p1 = c.request(enc('b:1'));
    await assert.rejects(c.request(enc('b:2')), code('NET_KEY_IN_USE'));
    const p2 = c.request(enc('c:1'));
    await assert.rejects(
      c.request(enc('d:1')),
      (e: unknown) => isNetError(e) && e.code === 'NET_BUSY' && !e.sent,
    );
    await Promise.all([p1, p2]);
    await sleep(30);
    assert.deepEqual(late, ['a:1 no request waiting (late or unknown)']);
    await c.close();
    await server.close();
  });
  test('a server bounds requests in flight per connection (reading pauses)', async () => {
    let now = 0;
    let peak = 0;
    const server = await FramedServer.listen({
      maxInFlightPerConnection: 3,
      handler: async (f) => {
        now++;
        peak = Math.max(peak, now);
        await sleep(10);
        now--;
        return f;
      },
    });
    const c = await FramedClient.connect({ host: '127.0.0.1', port: server.port, keyOf });
    await Promise.all(Array.from({ length: 20 }, (_, i) => c.request(enc(`k${i}:x`))));
    assert.equal(peak, 3);
    await c.close();
    await server.close();
  });
  test('a frame over the maximum closes the connection and is reported', async () => {
    const errors: string[] = [];
    const server = await FramedServer.listen({
      framing: { maxFrameBytes: 16 },
      handler: async (f) => f,
      onError: (e) => errors.push((e as { code?: string }).code ?? String(e)),
    });
    const c = await FramedClient.connect({
      host: '127.0.0.1',
      port: server.port,
      keyOf,
      framing: { maxFrameBytes: 64 },
    });
    await assert.rejects(c.request(enc(`k:${'x'.repeat(40)}`)), code('NET_CLOSED'));
    assert.deepEqual(errors, ['ISO8583_FRAME_TOO_LARGE']);
    await c.close();
    await server.close();
  });
  test('idle connections are closed; connections beyond the maximum are refused', async () => {
    const closedIds: number[] = [];
    const server = await FramedServer.listen({
      idleTimeoutMs: 50,
      maxConnections: 1,
      handler: async (f) => f,
      onClose: (c) => closedIds.push(c.id),
    });
    const s1 = connect(server.port, '127.0.0.1');
    const closed1 = new Promise((r) => s1.on('close', r));
    await new Promise((r) => s1.on('connect', r));
    await sleep(10);
    const s2 = connect(server.port, '127.0.0.1');
    s2.on('error', () => {});
    await new Promise((r) => s2.on('close', r)); // refused: over maxConnections
    await closed1; // idle timeout
    await sleep(10);
    assert.deepEqual(closedIds, [1]);
    await server.close();
  });
  test('reconnect: requests fail fast while the peer is down, and work again after it returns', async () => {
    const first = await FramedServer.listen({ handler: async (f) => f });
    const port = first.port;
    const c = await FramedClient.connect({
      host: '127.0.0.1',
      port,
      keyOf,
      reconnect: { delayMs: 20, maxDelayMs: 40 },
    });
    assert.equal(dec(await c.request(enc('a:1'))), 'a:1');
    await first.close();
    await sleep(30);
    await assert.rejects(
      c.request(enc('b:1')),
      (e: unknown) => isNetError(e) && e.code === 'NET_CLOSED' && !e.sent,
    );
    const second = await FramedServer.listen({ port, handler: async (f) => f });
    for (let i = 0; i < 50 && !c.connected; i++) await sleep(20);
    assert.equal(dec(await c.request(enc('c:1'))), 'c:1');
    await c.close();
    await second.close();
  });
  test('a request in flight when the connection drops may have reached the peer: NET_CLOSED with sent', async () => {
    let dropped!: () => void;
    const arrived = new Promise<void>((r) => {
      dropped = r;
    });
    const server = await FramedServer.listen({
      handler: async () => {
        dropped();
        return new Promise<Uint8Array>(() => {}); // never answers
      },
    });
    const c = await FramedClient.connect({ host: '127.0.0.1', port: server.port, keyOf });
    const p = c.request(enc('a:1'), 5000);
    const refused = assert.rejects(
      p,
      (e: unknown) => isNetError(e) && e.code === 'NET_CLOSED' && e.sent === true,
    );
    await arrived; // the server has the request
    await server.close(); // and drops the connection without answering
    await refused;
    // Asked after the drop: refused before writing, so certainly not sent.
    await assert.rejects(
      c.request(enc('b:1')),
      (e: unknown) => isNetError(e) && e.code === 'NET_CLOSED' && e.sent === false,
    );
    await c.close();
  });
  test('tickWriter: the writes of one turn leave in one system call, the next turn in another', async () => {
    let received = '';
    let gotAll: () => void = () => {};
    const all = new Promise<void>((r) => {
      gotAll = r;
    });
    const server = createServer((s) =>
      s.on('data', (d: Buffer) => {
        received += d.toString('latin1');
        if (received.length === 100) gotAll();
      }),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const s = await new Promise<Socket>((r) => {
      const x = connect(port, '127.0.0.1', () => r(x));
    });
    // The stream's calls into the socket handle: _write is one write(2), _writev one writev(2).
    const n = { write: 0, writev: 0 };
    const h = s as unknown as Record<'_write' | '_writev', (...a: unknown[]) => void>;
    const w = h._write.bind(s);
    const wv = h._writev.bind(s);
    h._write = (...a) => {
      n.write++;
      w(...a);
    };
    h._writev = (...a) => {
      n.writev++;
      wv(...a);
    };
    const write = tickWriter(s);
    for (let i = 0; i < 40; i++) write(enc('a'));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(n, { write: 0, writev: 1 });
    for (let i = 0; i < 60; i++) write(enc('b'));
    await all;
    assert.deepEqual(n, { write: 0, writev: 2 });
    assert.equal(received, 'a'.repeat(40) + 'b'.repeat(60));
    s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  test('replies finished in one turn leave together: a pipelined burst is answered in full', async () => {
    const server = await FramedServer.listen({ handler: async (f) => enc(`${dec(f)}!`) });
    const c = await FramedClient.connect({ host: '127.0.0.1', port: server.port, keyOf, maxInFlight: 500 });
    const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => c.request(enc(`${i}:x`))));
    assert.deepEqual(
      answers.map(dec),
      Array.from({ length: 300 }, (_, i) => `${i}:x!`),
    );
    await c.close();
    await server.close();
  });
  test('connecting to nothing is NET_CONNECT_FAILED', async () => {
    const s = await FramedServer.listen({ handler: async (f) => f });
    const port = s.port;
    await s.close();
    await assert.rejects(
      FramedClient.connect({ host: '127.0.0.1', port, keyOf }),
      code('NET_CONNECT_FAILED'),
    );
  });
});

describe('logger', () => {
  test('masks PAN-like digit runs everywhere and redacts secret-named fields', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => {
      text += d.toString();
    });
    const log = createLogger({ service: 'test', stream: out, now: () => new Date(0) }).child({
      terminal: 'T0000001',
    });
    log.info('purchase for 6222021234567890123', {
      pan: '6222021234567890123',
      nested: { pinBlock: 'C03D21CDBCB0C58B', note: 'card 4111111111111111 ok' },
      key: 'whatever',
      amountMinor: 1234,
      raw: new Uint8Array(8),
    });
    const line = JSON.parse(text);
    assert.deepEqual(line, {
      time: '1970-01-01T00:00:00.000Z',
      level: 'info',
      service: 'test',
      event: 'purchase for 622202*********0123',
      terminal: 'T0000001',
      pan: '622202*********0123',
      nested: { pinBlock: '[redacted]', note: 'card 411111******1111 ok' },
      key: '[redacted]',
      amountMinor: 1234,
      raw: '[8 bytes]',
    });
    assert.equal(maskDigits('123456789012'), '123456789012'); // 12 digits: not a PAN
  });
});
