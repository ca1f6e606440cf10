/**
 * A small TCP proxy for the terminal's tests, between the terminal and the fake POSP, that breaks
 * the line the way the seed's failures do. It reads 2-byte length-prefixed frames (the cup-pos
 * framing) from the POSP side:
 * - `pass`: forwards both ways;
 * - `drop-answer`: the request reaches the POSP (which acts on it), the answer is thrown away and the
 *   terminal's connection is closed: the "delivered, no answer" failure;
 * - `duplicate-answer`: every answer is delivered twice.
 * `dropConnections()` closes every open connection, as a POSP's idle timeout or restart does.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export type ProxyMode = 'pass' | 'drop-answer' | 'duplicate-answer';

export class FaultProxy {
  mode: ProxyMode = 'pass';
  readonly #upstreamPort: number;
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();

  constructor(upstreamPort: number) {
    this.#upstreamPort = upstreamPort;
  }

  get port(): number {
    const a = this.#server!.address();
    if (a === null || typeof a === 'string') throw new Error('proxy not listening');
    return a.port;
  }

  async listen(): Promise<void> {
    this.#server = createServer((client) => this.#connect(client));
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
  }

  #connect(client: Socket): void {
    const upstream = createConnection({ host: '127.0.0.1', port: this.#upstreamPort });
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => {});
    }
    client.on('data', (d) => upstream.write(d));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    let buf = Buffer.alloc(0);
    upstream.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const frame = buf.subarray(0, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(frame.length);
        if (this.mode === 'drop-answer') {
          client.destroy();
          return;
        }
        client.write(frame);
        if (this.mode === 'duplicate-answer') client.write(frame);
      }
    });
  }

  /** Closes every connection open now (both sides); new ones are still accepted. */
  dropConnections(): void {
    for (const s of this.#sockets) s.destroy();
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()) ?? resolve());
  }
}
