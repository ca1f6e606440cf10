/**
 * Typed TCP client of the HSM's host port.
 *
 * Pipelining with a bounded window: up to `maxInFlight` requests are on the wire at once; further calls
 * wait (up to `maxWaiting` of them; beyond that HSM_CLIENT_BUSY at once, so no queue is unbounded). The
 * server answers each connection in order, so replies are matched first-in first-out, and each reply's
 * echoed header (a rolling decimal counter) is checked against its request's. A reply that does not
 * match, a timeout, or a closed connection fails every outstanding request and closes the connection:
 * after any of these the stream can no longer be trusted to line up.
 */
import { connect as netConnect, type Socket } from 'node:net';
import type {
  DecryptDataRequest,
  DeriveDukptInitialKeyRequest,
  DukptInitialKey,
  EncryptDataRequest,
  EncryptedData,
  ExportedKey,
  ExportKeyRequest,
  GenerateIbm3624OffsetRequest,
  GeneratedKey,
  GenerateKeyOptions,
  GeneratePvvRequest,
  HsmApi,
  ImportKeyRequest,
  MacRequest,
  PinVerification,
  TerminalKey,
  TerminalKeyType,
  TerminalWorkingKeys,
  TranslatePinDukptToZpkRequest,
  TranslatePinTpkToZpkRequest,
  TranslatePinZpkToZpkRequest,
  VerifyMacRequest,
  VerifyPinIbm3624Request,
  VerifyPinPvvRequest,
  ZoneKey,
  ZoneKeyType,
} from './api.js';
import {
  decodeBuReply,
  decodeExportReply,
  decodeGeneratedKeyReply,
  decodeIkReply,
  decodeKeyReply,
  decodeM0Reply,
  decodeM2Reply,
  decodeMacReply,
  decodeNcReply,
  decodeOffsetReply,
  decodePinBlockReply,
  decodePvvReply,
  decodeTerminalKeyReply,
  decodeWkReply,
  decodeZoneKeyReply,
  encodeA0Request,
  encodeA4Request,
  encodeA6Request,
  encodeA8Request,
  encodeBkRequest,
  encodeCaRequest,
  encodeCcRequest,
  encodeDaRequest,
  encodeDcRequest,
  encodeFaRequest,
  encodeFiRequest,
  encodeFwRequest,
  encodeG0Request,
  encodeHcRequest,
  encodeIkRequest,
  encodeM0Request,
  encodeM2Request,
  encodeM6Request,
  encodeM8Request,
} from './commands.js';
import { HsmError } from './errors.js';
import {
  checkHeaderLength,
  encodeRequestFrame,
  FrameDecoder,
  HEADER_LENGTH_DEFAULT,
  type HostReply,
  MAX_FRAME_BYTES_DEFAULT,
  parseReply,
  replyCodeFor,
} from './framing.js';
import type { Diagnostics, FormKeyRequest, KeyUnderLmk } from './hsm.js';

export const CLIENT_MAX_IN_FLIGHT_DEFAULT = 16;
export const CLIENT_MAX_WAITING_DEFAULT = 1024;
export const CLIENT_TIMEOUT_MS_DEFAULT = 5000;
export const CLIENT_CONNECT_TIMEOUT_MS_DEFAULT = 5000;

export interface HsmClientOptions {
  headerLength?: number;
  maxInFlight?: number;
  maxWaiting?: number;
  /** Per request, from the moment it is written. */
  timeoutMs?: number;
  connectTimeoutMs?: number;
  maxFrameBytes?: number;
}

interface Pending {
  header: string;
  command: string;
  resolve: (r: HostReply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const posInt = (v: number | undefined, d: number, name: string): number => {
  const n = v ?? d;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name}: must be a positive integer`);
  return n;
};

export class HsmClient implements HsmApi {
  readonly headerLength: number;
  readonly maxInFlight: number;
  readonly maxWaiting: number;
  readonly timeoutMs: number;
  readonly #socket: Socket;
  readonly #decoder: FrameDecoder;
  readonly #pending: Pending[] = [];
  readonly #waiting: (() => void)[] = [];
  #counter = 0;
  #closedError: HsmError | undefined;
  #corked = false;

  private constructor(socket: Socket, opts: HsmClientOptions) {
    this.headerLength = opts.headerLength ?? HEADER_LENGTH_DEFAULT;
    checkHeaderLength(this.headerLength);
    this.maxInFlight = posInt(opts.maxInFlight, CLIENT_MAX_IN_FLIGHT_DEFAULT, 'maxInFlight');
    this.maxWaiting = posInt(opts.maxWaiting, CLIENT_MAX_WAITING_DEFAULT, 'maxWaiting');
    this.timeoutMs = posInt(opts.timeoutMs, CLIENT_TIMEOUT_MS_DEFAULT, 'timeoutMs');
    this.#decoder = new FrameDecoder(opts.maxFrameBytes ?? MAX_FRAME_BYTES_DEFAULT);
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => {
      // 'close' follows and fails what is outstanding.
    });
    socket.on('close', () =>
      this.#fail(new HsmError('HSM_CONNECTION_CLOSED', 'connection', 'closed by the HSM or the network')),
    );
  }

  /** Connects to an HSM host port. */
  static connect(host: string, port: number, opts: HsmClientOptions = {}): Promise<HsmClient> {
    const connectTimeoutMs = posInt(
      opts.connectTimeoutMs,
      CLIENT_CONNECT_TIMEOUT_MS_DEFAULT,
      'connectTimeoutMs',
    );
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new HsmError('HSM_TIMEOUT', 'connect', `no connection within ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(
          new HsmError(
            'HSM_CONNECTION_CLOSED',
            'connect',
            `connection failed (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
          ),
        );
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        try {
          resolve(new HsmClient(socket, opts));
        } catch (e) {
          socket.destroy();
          reject(e);
        }
      });
    });
  }

  /** Requests on the wire and not yet answered. */
  get inFlight(): number {
    return this.#pending.length;
  }

  #fail(err: HsmError): void {
    if (this.#closedError === undefined) this.#closedError = err;
    for (const p of this.#pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    for (const w of this.#waiting.splice(0)) w();
    this.#socket.destroy();
  }

  #onData(chunk: Buffer): void {
    this.#decoder.push(chunk);
    for (;;) {
      let msg: Uint8Array | undefined;
      let reply: HostReply;
      try {
        msg = this.#decoder.next();
        if (msg === undefined) return;
        reply = parseReply(msg, this.headerLength);
      } catch (e) {
        this.#fail(
          e instanceof HsmError && e.code === 'HSM_REPLY_INVALID'
            ? e
            : new HsmError('HSM_REPLY_INVALID', 'reply', 'bad frame from the HSM'),
        );
        return;
      }
      const p = this.#pending.shift();
      if (p === undefined) {
        this.#fail(new HsmError('HSM_REPLY_INVALID', 'reply', 'a reply arrived with no request outstanding'));
        return;
      }
      clearTimeout(p.timer);
      if (reply.header !== p.header) {
        p.reject(new HsmError('HSM_REPLY_INVALID', 'reply.header', 'does not echo the request header'));
        this.#fail(new HsmError('HSM_REPLY_INVALID', 'reply.header', 'replies out of step with requests'));
        return;
      }
      p.resolve(reply);
      this.#waiting.shift()?.();
    }
  }

  #nextHeader(): string {
    if (this.headerLength === 0) return '';
    this.#counter = (this.#counter + 1) % 10 ** Math.min(this.headerLength, 15);
    return String(this.#counter).padStart(this.headerLength, '0');
  }

  /**
   * Sends one raw command and resolves with the reply whatever its error code (HSM_REPLY_INVALID if
   * the reply code is not the command's successor or ZZ).
   */
  async request(command: string, body: Uint8Array | string = ''): Promise<HostReply> {
    const expected = replyCodeFor(command);
    while (this.#pending.length >= this.maxInFlight && this.#closedError === undefined) {
      if (this.#waiting.length >= this.maxWaiting) {
        throw new HsmError(
          'HSM_CLIENT_BUSY',
          'request',
          `${this.maxInFlight} in flight and ${this.maxWaiting} waiting`,
        );
      }
      await new Promise<void>((r) => this.#waiting.push(r));
    }
    if (this.#closedError !== undefined) throw this.#closedError;
    const header = this.#nextHeader();
    const b = typeof body === 'string' ? new Uint8Array(Buffer.from(body, 'latin1')) : body;
    const frame = encodeRequestFrame(
      { header, command, body: b },
      { maxFrameBytes: this.#decoder.maxFrameBytes },
    );
    const reply = await new Promise<HostReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#fail(new HsmError('HSM_TIMEOUT', command, `no reply within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.#pending.push({ header, command, resolve, reject, timer });
      // Requests made in one turn of the event loop go out in one write (see the server's flush).
      if (!this.#corked) {
        this.#corked = true;
        this.#socket.cork();
        process.nextTick(() => {
          this.#corked = false;
          this.#socket.uncork();
        });
      }
      this.#socket.write(frame);
    });
    if (reply.replyCode !== expected && reply.replyCode !== 'ZZ') {
      throw new HsmError(
        'HSM_REPLY_INVALID',
        'reply.replyCode',
        `expected ${expected}, got ${reply.replyCode}`,
      );
    }
    return reply;
  }

  /** Sends a command and returns its body, throwing HSM_REPLY_ERROR (with `reply`) unless the error code is 00. */
  async #call(command: string, body: string): Promise<Uint8Array> {
    const r = await this.request(command, body);
    if (r.errorCode !== '00') {
      throw new HsmError('HSM_REPLY_ERROR', command, `the HSM answered error ${r.errorCode}`, r.errorCode);
    }
    return r.body;
  }

  /** NC: LMK check value and firmware version. */
  async diagnostics(): Promise<Diagnostics> {
    return decodeNcReply(await this.#call('NC', ''));
  }
  nc = (): Promise<Diagnostics> => this.diagnostics();

  /** BU: check value of a key block under the LMK. */
  async keyCheckValue(keyBlock: string): Promise<string> {
    return decodeBuReply(await this.#call('BU', keyBlock));
  }
  bu = (keyBlock: string): Promise<string> => this.keyCheckValue(keyBlock);

  /** A0: generate a key, returned under the LMK with its check value (mode 1: also as TR-31 under `exportUnder`). */
  async generateKey(req: GenerateKeyOptions): Promise<GeneratedKey> {
    return decodeGeneratedKeyReply(await this.#call('A0', encodeA0Request(req)));
  }
  a0 = (req: GenerateKeyOptions): Promise<GeneratedKey> => this.generateKey(req);

  /** A4: form a ZMK or TMK from clear components (the HSM must be in the authorized state). */
  async formKeyFromComponents(req: FormKeyRequest): Promise<KeyUnderLmk> {
    return decodeKeyReply(await this.#call('A4', encodeA4Request(req)));
  }
  a4 = (req: FormKeyRequest): Promise<KeyUnderLmk> => this.formKeyFromComponents(req);

  /** A verification command: 00 is `true`, 01 (verification failure) `false`, any other code HSM_REPLY_ERROR. */
  async #verify(command: string, body: string): Promise<boolean> {
    const r = await this.request(command, body);
    if (r.errorCode === '00' || r.errorCode === '01') {
      if (r.body.length !== 0) {
        throw new HsmError('HSM_REPLY_INVALID', 'reply.end', `${r.body.length} unexpected characters`);
      }
      return r.errorCode === '00';
    }
    throw new HsmError('HSM_REPLY_ERROR', command, `the HSM answered error ${r.errorCode}`, r.errorCode);
  }

  /** A6: import a key from a TR-31 block under a ZMK or TMK. */
  async importKeyFromZmk(req: ImportKeyRequest): Promise<KeyUnderLmk> {
    return decodeKeyReply(await this.#call('A6', encodeA6Request(req)));
  }
  /** A8: export a key as TR-31 under a ZMK or TMK. */
  async exportKeyUnderKek(req: ExportKeyRequest): Promise<ExportedKey> {
    return decodeExportReply(await this.#call('A8', encodeA8Request(req)));
  }
  /** GC: export a zone key (ZPK, ZAK, ZEK) as TR-31 under a ZMK. */
  async exportZoneKey(req: ExportKeyRequest): Promise<ExportedKey> {
    return decodeExportReply(await this.#call('GC', encodeA8Request(req)));
  }
  /** HC: a new TMK, TPK, TAK or TDK under the current TMK and the LMK. */
  async generateTerminalKey(tmk: string, keyType: TerminalKeyType): Promise<TerminalKey> {
    return decodeTerminalKeyReply(await this.#call('HC', encodeHcRequest(tmk, keyType)));
  }
  /** WK: the UnionPay sign-in keys (TPK, TAK, TDK) under the TMK and the LMK. */
  async generateTerminalWorkingKeys(tmk: string): Promise<TerminalWorkingKeys> {
    return decodeWkReply(await this.#call('WK', tmk));
  }
  /** FI: a new zone key under the LMK and as TR-31 under the ZMK. */
  async generateZoneKey(zmk: string, keyType: ZoneKeyType): Promise<ZoneKey> {
    return decodeZoneKeyReply(await this.#call('FI', encodeFiRequest(zmk, keyType)));
  }
  /** FA: import a zone key from a TR-31 block under the ZMK. */
  async importZoneKey(zmk: string, keyType: ZoneKeyType, tr31: string): Promise<KeyUnderLmk> {
    return decodeKeyReply(await this.#call('FA', encodeFaRequest(zmk, keyType, tr31)));
  }
  /** CA: PIN block from a TPK to a ZPK. */
  async translatePinTpkToZpk(req: TranslatePinTpkToZpkRequest): Promise<Uint8Array> {
    return decodePinBlockReply(await this.#call('CA', encodeCaRequest(req)));
  }
  /** CC: PIN block from one ZPK to another. */
  async translatePinZpkToZpk(req: TranslatePinZpkToZpkRequest): Promise<Uint8Array> {
    return decodePinBlockReply(await this.#call('CC', encodeCcRequest(req)));
  }
  /** G0: PIN block from a DUKPT key (TDES or AES) to a ZPK. */
  async translatePinDukptToZpk(req: TranslatePinDukptToZpkRequest): Promise<Uint8Array> {
    return decodePinBlockReply(await this.#call('G0', encodeG0Request(req)));
  }
  /** CI: PIN block from a TDES DUKPT key to a ZPK (the `scheme` must be tdes). */
  async translatePinTdesDukptToZpk(req: TranslatePinDukptToZpkRequest): Promise<Uint8Array> {
    if (req.scheme !== 'tdes') throw new HsmError('HSM_REQUEST_INVALID', 'scheme', 'CI is TDES DUKPT only');
    return decodePinBlockReply(await this.#call('CI', encodeG0Request(req, false)));
  }
  /** DA (`by: 'tpk'`, default) / EA (`by: 'zpk'`): IBM 3624 offset verification. */
  async verifyPinIbm3624(req: VerifyPinIbm3624Request, by: 'tpk' | 'zpk' = 'tpk'): Promise<PinVerification> {
    return { ok: await this.#verify(by === 'tpk' ? 'DA' : 'EA', encodeDaRequest(req)) };
  }
  /** DC (`by: 'tpk'`, default) / EC (`by: 'zpk'`): Visa PVV verification. */
  async verifyPinPvv(req: VerifyPinPvvRequest, by: 'tpk' | 'zpk' = 'tpk'): Promise<PinVerification> {
    return { ok: await this.#verify(by === 'tpk' ? 'DC' : 'EC', encodeDcRequest(req)) };
  }
  /** BK: IBM 3624 offset of a customer-selected PIN. */
  async generateIbm3624Offset(req: GenerateIbm3624OffsetRequest): Promise<{ offset: string }> {
    return decodeOffsetReply(await this.#call('BK', encodeBkRequest(req)));
  }
  /** FW: Visa PVV of a customer-selected PIN. */
  async generatePvv(req: GeneratePvvRequest): Promise<{ pvv: string }> {
    return decodePvvReply(await this.#call('FW', encodeFwRequest(req)));
  }
  /** M6: generate a MAC. */
  async generateMac(req: MacRequest): Promise<Uint8Array> {
    return decodeMacReply(await this.#call('M6', encodeM6Request(req)));
  }
  /** M8: verify a MAC; `false` when it does not verify (error 01). */
  async verifyMac(req: VerifyMacRequest): Promise<boolean> {
    return this.#verify('M8', encodeM8Request(req));
  }
  /** IK: derive a DUKPT initial key from a BDK and KSN. */
  async deriveDukptInitialKey(req: DeriveDukptInitialKeyRequest): Promise<DukptInitialKey> {
    return decodeIkReply(await this.#call('IK', encodeIkRequest(req)));
  }

  /** M0: encrypt data (CBC) under a data key; the IV (the caller's or the HSM's random one) comes back with it. */
  async encryptData(req: EncryptDataRequest): Promise<EncryptedData> {
    return decodeM0Reply(await this.#call('M0', encodeM0Request(req)));
  }
  /** M2: decrypt data (CBC) under a data key. */
  async decryptData(req: DecryptDataRequest): Promise<Uint8Array> {
    return decodeM2Reply(await this.#call('M2', encodeM2Request(req)));
  }

  /** Closes the connection; outstanding requests fail with HSM_CONNECTION_CLOSED. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#socket.destroyed) return resolve();
      this.#socket.once('close', () => resolve());
      this.#socket.end();
    });
  }
}
