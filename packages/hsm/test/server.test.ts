import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { HsmClient } from '../src/client.js';
import { decodeA0Request, encodeA0Request, registerHsmCommands } from '../src/commands.js';
import { HsmError } from '../src/errors.js';
import { encodeRequestFrame, FrameDecoder, parseReply, parseRequest, replyCodeFor } from '../src/framing.js';
import { Hsm } from '../src/hsm.js';
import { createTestLmk } from '../src/lmk.js';
import { HsmServer, type HsmServerOptions } from '../src/server.js';

const lmk = createTestLmk({ allowTestLmk: true, warn: () => {} });
const servers: HsmServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function start(opts: HsmServerOptions = {}, extra?: (s: HsmServer) => void) {
  const server = registerHsmCommands(new HsmServer(opts), new Hsm({ lmk }));
  extra?.(server);
  servers.push(server);
  const { port } = await server.listen(0);
  return { server, port };
}

/** A raw socket that collects reply frames. */
function raw(
  port: number,
): Promise<{ sock: Socket; replies: Uint8Array[]; closed: Promise<void>; send: (b: Uint8Array) => void }> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    const replies: Uint8Array[] = [];
    const dec = new FrameDecoder();
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    sock.on('error', () => {});
    sock.on('data', (c) => {
      dec.push(c);
      for (let m = dec.next(); m; m = dec.next()) replies.push(m);
    });
    sock.on('connect', () => resolve({ sock, replies, closed, send: (b) => sock.write(b) }));
  });
}
const frame = (s: string): Uint8Array =>
  encodeRequestFrame({ header: '', command: '', body: new Uint8Array(Buffer.from(s, 'latin1')) });
const until = async (cond: () => boolean, ms = 2000): Promise<void> => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
};
const replyText = (m: Uint8Array): string => Buffer.from(m).toString('latin1');

describe('framing', () => {
  test('reply code: the second character advanced', () => {
    assert.deepEqual(['A0', 'NC', 'BU', 'A4', 'CA', 'M8', 'G0'].map(replyCodeFor), [
      'A1',
      'ND',
      'BV',
      'A5',
      'CB',
      'M9',
      'G1',
    ]);
    for (const bad of ['AZ', 'A9', 'a0', 'A', 'A0X', '']) {
      assert.throws(
        () => replyCodeFor(bad),
        (e: unknown) =>
          e instanceof HsmError &&
          e.code === 'HSM_REQUEST_INVALID' &&
          e.message === 'command: must be 2 of 0-9, A-Z, not ending in 9 or Z',
      );
    }
  });

  test('request and reply frames round-trip (property), split at any byte', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[0-9A-Z]{0,8}$/),
        fc.uint8Array({ maxLength: 300 }),
        fc.integer({ min: 1, max: 50 }),
        (header, body, cut) => {
          const f = encodeRequestFrame({ header, command: 'A0', body });
          assert.equal((f[0]! << 8) | f[1]!, f.length - 2);
          const d = new FrameDecoder();
          d.push(f.subarray(0, Math.min(cut, f.length)));
          const early = cut < f.length ? d.next() : undefined;
          assert.equal(early, undefined);
          if (cut < f.length) d.push(f.subarray(cut));
          const m = d.next()!;
          assert.deepEqual(parseRequest(m, header.length), { header, command: 'A0', body });
          assert.equal(d.buffered, 0);
        },
      ),
    );
  });

  test('decoder limits: length 0 and a length over the maximum', () => {
    const d = new FrameDecoder(100);
    d.push(Uint8Array.of(0, 101));
    assert.throws(
      () => d.next(),
      (e: unknown) =>
        e instanceof HsmError &&
        e.code === 'HSM_FRAME_TOO_LARGE' &&
        e.message === 'frame.length: length 101 is above the maximum of 100 bytes',
    );
    const z = new FrameDecoder(100);
    z.push(Uint8Array.of(0, 0));
    assert.throws(
      () => z.next(),
      (e: unknown) =>
        e instanceof HsmError && e.code === 'HSM_FRAME_INVALID' && e.message === 'frame.length: length is 0',
    );
  });

  test('short messages', () => {
    assert.throws(
      () => parseRequest(new Uint8Array(5), 4),
      (e: unknown) =>
        e instanceof HsmError &&
        e.message === 'frame: has 5 bytes, shorter than the 4-character header and the command code',
    );
    assert.throws(
      () => parseReply(new Uint8Array(3), 0),
      (e: unknown) =>
        e instanceof HsmError &&
        e.code === 'HSM_REPLY_INVALID' &&
        e.message === 'reply: has 3 bytes, shorter than header + 4',
    );
  });

  test('A0 request codec round-trips', () => {
    const req = {
      keyType: 'PVK',
      algorithm: 'T',
      keyLengthBytes: 24,
      usage: 'V1',
      modeOfUse: 'C',
      keyVersion: '01',
      exportability: 'N',
    } as const;
    assert.equal(encodeA0Request(req), '0PVKT24#V1C01N');
    assert.deepEqual(decodeA0Request(new Uint8Array(Buffer.from('0PVKT24#V1C01N'))), req);
  });
});

describe('host commands over TCP', () => {
  test('NC, A0, BU through the typed client, header echoed', async () => {
    const { port } = await start();
    const c = await HsmClient.connect('127.0.0.1', port);
    assert.deepEqual(await c.nc(), { lmkCheckValue: lmk.checkValue, firmwareVersion: 'openposp-hsm/0.1.0' });
    const k = await c.a0({ keyType: 'TAK', algorithm: 'T', keyLengthBytes: 16 });
    assert.equal(lmk.unwrapKey(k.keyBlock, { usage: 'M3', modeOfUse: 'C' }).attrs.usage, 'M3');
    assert.equal(await c.bu(k.keyBlock), k.checkValue);
    const r = await c.request('NC');
    assert.equal(r.header.length, 4);
    assert.equal(r.replyCode, 'ND');
    await c.close();
  });

  test('error replies carry the payShield code; the client throws HSM_REPLY_ERROR with it', async () => {
    const { port } = await start();
    const c = await HsmClient.connect('127.0.0.1', port);
    await assert.rejects(c.a0({ keyType: 'ZMK', algorithm: 'T', keyLengthBytes: 16 }), (e: unknown) => {
      assert.ok(e instanceof HsmError);
      assert.equal(e.code, 'HSM_REPLY_ERROR');
      assert.equal(e.reply, '17');
      assert.equal(e.message, 'A0: the HSM answered error 17');
      return true;
    });
    const block = (await c.a0({ keyType: 'ZPK', algorithm: 'T', keyLengthBytes: 16 })).keyBlock;
    const forged = `${block.slice(0, 6)}M3TC${block.slice(10)}`;
    await assert.rejects(c.bu(forged), (e: unknown) => e instanceof HsmError && e.reply === 'A4');
    await c.close();
  });

  const malformed: [string, string, string][] = [
    ['NC with a body', 'NCX', 'ND15'],
    ['A0 empty', 'A0', 'A115'],
    ['A0 bad mode', 'A01TPKT16', 'A115'],
    ['A0 unknown key type', 'A00XYZT16', 'A104'],
    ['A0 bad algorithm', 'A00TPKQ16', 'A115'],
    ['A0 length not digits', 'A00TPKT1X', 'A115'],
    ['A0 wrong length', 'A00TPKT08', 'A105'],
    ['A0 trailing bytes', 'A00TPKT16Z', 'A115'],
    ['A0 truncated options', 'A00TPKT16#P0', 'A115'],
    ['A0 bad usage option', 'A00TPKT16#M3C00E', 'A1A6'],
    ['A0 bad exportability', 'A00TPKT16#P0B00Q', 'A1AA'],
    ['BU not a key block', 'BUXYZ', 'BV15'],
    ['BU truncated key block', 'BUS10144P0TB00E0000AB', 'BV15'],
    ['BU garbage key block', `BUS10144P0TB00E0000${'G'.repeat(128)}`, 'BVB2'],
    ['A4 without authorization', `A42ZMKT16${'01'.repeat(16)}${'02'.repeat(16)}`, 'A517'],
    ['A4 bad component count', `A44ZMKT16${'01'.repeat(16)}`, 'A515'],
    ['A4 short component', `A42ZMKT16${'01'.repeat(16)}0202`, 'A515'],
    ['unknown command', 'XX', 'XY15'],
    ['unusable command code', 'AZ', 'ZZ15'],
    ['lower-case command code', 'a0', 'ZZ15'],
    ['too short for a command', 'A', 'ZZ15'],
    ['binary garbage', '\u0000\u00ff\u0010', 'ZZ15'],
  ];
  test('malformed requests get error replies, never a crash, and the connection stays usable', async () => {
    const { port } = await start({ headerLength: 0 });
    const r = await raw(port);
    for (const [, req] of malformed) r.send(frame(req));
    r.send(frame('NC'));
    await until(() => r.replies.length === malformed.length + 1);
    malformed.forEach(([name, , want], i) => {
      assert.equal(replyText(r.replies[i]!).slice(0, 4), want, name);
    });
    assert.equal(replyText(r.replies.at(-1)!).slice(0, 4), 'ND00');
    r.sock.destroy();
  });

  test('a disabled command answers 68', async () => {
    const { port } = await start({ headerLength: 2, disabledCommands: ['A0'] });
    const r = await raw(port);
    r.send(encodeRequestFrame({ header: 'HH', command: 'A0', body: new Uint8Array(Buffer.from('0TPKT16')) }));
    await until(() => r.replies.length === 1);
    assert.equal(replyText(r.replies[0]!), 'HHA168');
    r.sock.destroy();
  });

  test('a handler defect answers 41 and is reported once without the body', async () => {
    const seen: string[] = [];
    const { port } = await start(
      { headerLength: 0, onError: (e, c) => seen.push(`${c.command}:${(e as Error).message}`) },
      (s) =>
        s
          .register('Q0', () => {
            throw new Error('boom');
          })
          .register('Q2', async () => ({ body: 'async ok' })),
    );
    const r = await raw(port);
    r.send(frame('Q0secret'));
    r.send(frame('Q2'));
    await until(() => r.replies.length === 2);
    assert.equal(replyText(r.replies[0]!), 'Q141');
    assert.equal(replyText(r.replies[1]!), 'Q300async ok');
    assert.deepEqual(seen, ['Q0:boom']);
    r.sock.destroy();
  });
});

describe('limits', () => {
  test('maxConnections: a connection over the limit is closed', async () => {
    const { server, port } = await start({ maxConnections: 2 });
    const a = await HsmClient.connect('127.0.0.1', port);
    const b = await HsmClient.connect('127.0.0.1', port);
    await a.nc();
    await b.nc();
    const c = await HsmClient.connect('127.0.0.1', port);
    await assert.rejects(c.nc(), (e: unknown) => e instanceof HsmError && e.code === 'HSM_CONNECTION_CLOSED');
    assert.equal(server.stats.refused, 1);
    await a.close();
    await until(() => server.connections === 1);
    const d = await HsmClient.connect('127.0.0.1', port);
    assert.equal((await d.nc()).lmkCheckValue, lmk.checkValue);
    await Promise.all([b.close(), d.close()]);
  });

  test('maxFrameBytes: a frame declaring more is refused by closing the connection', async () => {
    const { server, port } = await start({ maxFrameBytes: 64 });
    const r = await raw(port);
    r.send(Uint8Array.of(0, 65));
    await r.closed;
    assert.equal(r.replies.length, 0);
    assert.equal(server.stats.frameErrors, 1);
    const ok = await raw(port);
    ok.send(encodeRequestFrame({ header: '0001', command: 'NC', body: new Uint8Array(0) }));
    await until(() => ok.replies.length === 1);
    ok.sock.destroy();
  });

  test('a header that is not printable ASCII closes the connection', async () => {
    const { server, port } = await start({ headerLength: 4 });
    const r = await raw(port);
    r.send(Uint8Array.of(0, 6, 0, 1, 2, 3, 0x4e, 0x43));
    await r.closed;
    assert.equal(r.replies.length, 0);
    assert.equal(server.stats.frameErrors, 1);
  });

  test('idleTimeoutMs: an idle connection is closed', async () => {
    const { server, port } = await start({ idleTimeoutMs: 100 });
    const r = await raw(port);
    const t0 = Date.now();
    await r.closed;
    assert.ok(Date.now() - t0 >= 90);
    assert.equal(server.stats.idleClosed, 1);
  });

  test('maxInFlightPerConnection: the server stops reading at the bound and resumes as replies go out', async () => {
    let release: () => void = () => {};
    let started = 0;
    const { server, port } = await start({ headerLength: 0, maxInFlightPerConnection: 3 }, (s) =>
      s.register('W0', () => {
        started++;
        return new Promise((res) => {
          const prev = release;
          release = () => {
            prev();
            res({ body: '' });
          };
        });
      }),
    );
    const r = await raw(port);
    for (let i = 0; i < 10; i++) r.send(frame('W0'));
    await until(() => started === 3);
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(started, 3, 'no more than 3 requests taken while 3 are in flight');
    assert.equal(server.stats.requests, 3);
    release();
    release = () => {};
    await until(() => started === 6);
    assert.equal(r.replies.length, 3);
    release();
    release = () => {};
    await until(() => started === 9);
    release();
    release = () => {};
    await until(() => started === 10);
    release();
    await until(() => r.replies.length === 10);
    r.sock.destroy();
  });

  test('client pipelining: a bounded window, replies matched in order', async () => {
    const { port } = await start({ maxInFlightPerConnection: 8 });
    const c = await HsmClient.connect('127.0.0.1', port, { maxInFlight: 4, maxWaiting: 100 });
    let peak = 0;
    const jobs = Array.from({ length: 50 }, (_, i) => {
      const p = i % 2 ? c.nc() : c.a0({ keyType: 'TPK', algorithm: 'T', keyLengthBytes: 16 });
      peak = Math.max(peak, c.inFlight);
      return p;
    });
    const out = await Promise.all(jobs);
    assert.ok(peak <= 4);
    out.forEach((o, i) => {
      assert.ok(i % 2 ? 'lmkCheckValue' in o : 'keyBlock' in o);
    });
    await c.close();
  });

  test('client: too many waiting callers fail at once with HSM_CLIENT_BUSY', async () => {
    const { port } = await start();
    const c = await HsmClient.connect('127.0.0.1', port, { maxInFlight: 1, maxWaiting: 2 });
    const ps = [c.nc(), c.nc(), c.nc()];
    await assert.rejects(
      c.nc(),
      (e: unknown) =>
        e instanceof HsmError &&
        e.code === 'HSM_CLIENT_BUSY' &&
        e.message === 'request: 1 in flight and 2 waiting',
    );
    await Promise.all(ps);
    await c.close();
  });

  test('client: a reply timeout fails outstanding requests and closes the connection', async () => {
    const { port } = await start({}, (s) => s.register('S0', () => new Promise(() => {})));
    const c = await HsmClient.connect('127.0.0.1', port, { timeoutMs: 50 });
    await assert.rejects(
      c.request('S0'),
      (e: unknown) =>
        e instanceof HsmError && e.code === 'HSM_TIMEOUT' && e.message === 'S0: no reply within 50 ms',
    );
    await assert.rejects(c.nc(), (e: unknown) => e instanceof HsmError && e.code === 'HSM_TIMEOUT');
  });

  test('client: connection refused is HSM_CONNECTION_CLOSED', async () => {
    const { server, port } = await start();
    await server.close();
    await assert.rejects(
      HsmClient.connect('127.0.0.1', port),
      (e: unknown) => e instanceof HsmError && e.code === 'HSM_CONNECTION_CLOSED',
    );
  });
});
