/**
 * A small POSP for the terminal's tests: a FramedServer speaking the real cup-pos protocol (TPDU +
 * header, 2-byte length). It stands in for the POSP and its HSM, so it holds the test's clear keys
 * and checks with @openposp/crypto: the request MAC, the PIN block under the PIK, the track data
 * under the TDK. `mode` chooses how it answers.
 */
import { randomBytes } from 'node:crypto';
import {
  adjustOddParity,
  decryptPinBlock,
  kcvTdes,
  macCupEcb,
  tdesDecryptEcb,
  tdesEncryptEcb,
  verifyMac,
} from '@openposp/crypto';
import {
  type Iso8583Message,
  isIso8583Error,
  joinCupFrame,
  loadSpec,
  replyTpdu,
  splitCupFrame,
  startResponse,
  unpack,
} from '@openposp/iso8583';
import { FramedServer, type ServerStats } from '@openposp/net';

export type PospMode =
  | 'approve'
  | 'decline-51'
  | 'bad-mac'
  | 'no-mac'
  | 'silent'
  | 'wrong-check-value'
  | 'wrong-terminal-echo'
  /** Answers with 39 = 96 (system malfunction): for a 0400, not a 'done' answer. */
  | 'malfunction-96';

/** One financial transaction as this POSP's journal knows it (for reversals and settlement). */
export interface JournalEntry {
  type: 'purchase' | 'void' | 'refund';
  amountMinor: number;
  batch: string;
  reversed: boolean;
}

export interface SeenRequest {
  mti: string;
  fields: Record<number, string>;
  macOk?: boolean;
  /** PIN recovered from field 52 with the PIK (what the HSM would verify). */
  pin?: string;
  /** Track 2 after deciphering the TDB under the TDK, in the codec's form (D separator). */
  track2?: string;
  /** The raw field 35 bytes as received (enciphered TDB). */
  field35Raw?: Uint8Array;
}

const spec = loadSpec('cup-pos');

export const oddKey = (): Uint8Array => adjustOddParity(new Uint8Array(randomBytes(16)));

/**
 * Byte offset of field 35 in a packed cup-pos message: unpack with bits 35..64 cleared, which stops
 * right where field 35 starts (ISO8583_TRAILING_BYTES at that offset). Needed because the codec reads
 * field 35 as BCD digits and an enciphered TDB holds nibbles A-F.
 */
export function field35Offset(message: Uint8Array): number {
  const copy = message.slice();
  // Bitmap at bytes 2..9; field n is bit n-1 from the most significant bit of byte 2.
  for (let f = 35; f <= 64; f++) copy[2 + ((f - 1) >> 3)]! &= ~(0x80 >> ((f - 1) & 7));
  try {
    unpack(spec, copy);
  } catch (e) {
    if (isIso8583Error(e) && e.code === 'ISO8583_TRAILING_BYTES' && e.offset !== undefined) return e.offset;
    throw e;
  }
  throw new Error('field 35 not found');
}

export class FakePosp {
  mode: PospMode = 'approve';
  /** A mode for one MTI only (e.g. `{ '0400': 'silent' }`), over `mode`. */
  modes: Partial<Record<string, PospMode>> = {};
  /** Approved financial transactions by identity `41|11|13`. */
  readonly journal = new Map<string, JournalEntry>();
  /** Reversals by the identity of their original: how many 0400 came, and whether one changed the journal. */
  readonly reversals = new Map<string, { received: number; applied: boolean }>();
  /** 0320 detail records received (60.3 = 201), by identity; and end-of-batch counts (60.3 = 202). */
  readonly uploads: string[] = [];
  readonly endOfBatch: number[] = [];
  /** When set, the 0510 names this batch in 60.2 as the terminal's next one. */
  nextBatchOnClose: string | undefined;
  /** Fields overwritten in every financial answer (to test the terminal's echo checks). */
  echoOverride: Record<number, string> | undefined;
  readonly tmk: Uint8Array;
  pik: Uint8Array | undefined;
  mak: Uint8Array | undefined;
  tdk: Uint8Array | undefined;
  readonly seen: SeenRequest[] = [];
  batchNumber = '000007';
  balanceMinor = 1_234_567;
  /** Each answer is made when its request arrives and sent this much later (late answers). */
  answerDelayMs = 0;
  #rrn = 0;
  #server: FramedServer | undefined;

  constructor(tmk: Uint8Array) {
    this.tmk = tmk;
  }

  get port(): number {
    return this.#server!.port;
  }

  /** Connections accepted and open (the terminal's `connection` setting decides how many). */
  stats(): ServerStats {
    return this.#server!.stats();
  }

  async listen(): Promise<void> {
    this.#server = await FramedServer.listen({
      host: '127.0.0.1',
      port: 0,
      framing: { prefix: 'binary2' },
      handler: async (frame) => {
        const answer = this.#handle(frame);
        const delayMs = this.answerDelayMs;
        if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
        return answer;
      },
    });
  }

  async close(): Promise<void> {
    await this.#server?.close();
  }

  #handle(frame: Uint8Array): Uint8Array | null {
    const { tpdu, header, message } = splitCupFrame(frame);
    const seen: SeenRequest = { mti: '', fields: {} };
    let clear = message.slice();
    const bitmapHas = (f: number) => (message[2 + ((f - 1) >> 3)]! & (0x80 >> ((f - 1) & 7))) !== 0;
    if (bitmapHas(64)) {
      seen.macOk =
        this.mak !== undefined &&
        verifyMac(
          'cup-ecb',
          this.mak,
          message.subarray(0, message.length - 8),
          message.subarray(message.length - 8),
        );
    }
    if (bitmapHas(35) && this.tdk) {
      // 53 position 3 = 1 is checked below; decipher the TDB [n-9, n-1) of the BCD track bytes.
      const at = field35Offset(message);
      const digits = (message[at]! >> 4) * 10 + (message[at]! & 15);
      const n = Math.ceil(digits / 2);
      seen.field35Raw = message.slice(at + 1, at + 1 + n);
      // Enciphered when 53 position 3 is 1; a clear track unpacks as it is and says 0 there.
      let raw: Iso8583Message | undefined;
      try {
        raw = unpack(spec, message);
      } catch {
        raw = undefined;
      }
      if (raw === undefined || String(raw.get(53) ?? '').charAt(2) === '1') {
        clear = message.slice();
        clear.set(tdesDecryptEcb(this.tdk, message.subarray(at + 1 + n - 9, at + n)), at + 1 + n - 9);
      }
    }
    const req = unpack(spec, clear);
    seen.mti = req.mti;
    for (const id of req.fieldIds()) {
      const v = req.get(id)!;
      seen.fields[id] = typeof v === 'string' ? v : Buffer.from(v).toString('hex').toUpperCase();
    }
    if (req.has(35)) seen.track2 = String(req.get(35));
    if (req.has(52) && this.pik)
      seen.pin = decryptPinBlock(0, this.pik, req.get(52) as Uint8Array, String(req.get(2)));
    this.seen.push(seen);
    const mode = this.modes[req.mti] ?? this.mode;
    if (mode === 'silent') return null;
    const resp = req.mti === '0800' ? this.#signIn(req) : this.#financial(req, seen.macOk === true, mode);
    if (resp === null) return null;
    return joinCupFrame({ tpdu: replyTpdu(tpdu), header, message: resp });
  }

  #signIn(req: Iso8583Message): Uint8Array {
    const r = startResponse(req);
    const pik = oddKey();
    const mak = oddKey();
    const tdk = oddKey();
    const part = (k: Uint8Array) => [...tdesEncryptEcb(this.tmk, k), ...kcvTdes(k, 4)];
    const f62 = new Uint8Array([...part(pik), ...part(mak), ...part(tdk)]);
    if (this.mode === 'wrong-check-value')
      f62[59]! ^= 0x01; // the TDK's check value
    else {
      this.pik = pik;
      this.mak = mak;
      this.tdk = tdk;
    }
    r.set(11, String(req.get(11)));
    r.set(41, this.mode === 'wrong-terminal-echo' ? 'OTHER001' : String(req.get(41)));
    r.set(42, String(req.get(42)));
    r.set(12, '103301');
    r.set(13, '1125');
    r.set(37, this.#nextRrn());
    r.set(39, '00');
    r.set(60, `00${this.batchNumber}004`);
    r.set(62, f62);
    return r.pack().slice();
  }

  #nextRrn(): string {
    this.#rrn += 1;
    return `1125103301${String(this.#rrn).padStart(2, '0')}`;
  }

  static identity(req: Iso8583Message): string {
    return `${req.get(41)}|${req.get(11)}|${req.get(13)}`;
  }

  /** Debit and credit totals of the journal for one terminal's batch (approved, unreversed). */
  totals(
    terminalId: string,
    batch: string,
  ): { debitTotal: number; debitCount: number; creditTotal: number; creditCount: number } {
    const t = { debitTotal: 0, debitCount: 0, creditTotal: 0, creditCount: 0 };
    for (const [id, e] of this.journal) {
      if (!id.startsWith(`${terminalId}|`) || e.batch !== batch || e.reversed) continue;
      if (e.type === 'purchase') {
        t.debitTotal += e.amountMinor;
        t.debitCount += 1;
      } else {
        t.creditTotal += e.amountMinor;
        t.creditCount += 1;
      }
    }
    return t;
  }

  /** Refund advices (0220) answered, by identity: the RRN a repeat (0221) gets again. */
  readonly adviceRrns = new Map<string, string>();

  #financial(req: Iso8583Message, macOk: boolean, mode: PospMode): Uint8Array {
    const id = FakePosp.identity(req);
    // A 0221 is a repeat of the 0220 with the same identity (ISO 8583 message function 1): answered 0230,
    // from the journal when the 0220 was seen (the same RRN, no second refund).
    const repeat = req.mti === '0221';
    const r = startResponse(req);
    if (repeat) r.mti = '0230';
    r.set(15, '1125');
    const seenRrn = req.mti === '0220' || repeat ? this.adviceRrns.get(id) : undefined;
    r.set(37, seenRrn ?? this.#nextRrn());
    if ((req.mti === '0220' || repeat) && seenRrn === undefined && macOk)
      this.adviceRrns.set(id, String(r.get(37)));
    const batch = String(req.get('60.2') ?? '');
    if (!macOk) r.set(39, 'A0');
    else if (mode === 'decline-51') r.set(39, '51');
    else if (mode === 'malfunction-96') r.set(39, '96');
    else if (req.mti === '0400') {
      // Idempotent: the first 0400 of an identity reverses (or remembers an unseen original); later
      // ones change nothing and get 00 again.
      const rev = this.reversals.get(id) ?? { received: 0, applied: false };
      rev.received += 1;
      if (!rev.applied) {
        const orig = this.journal.get(id);
        if (orig) orig.reversed = true;
        rev.applied = true;
      }
      this.reversals.set(id, rev);
      r.set(39, '00');
    } else if (req.mti === '0500') {
      const t = this.totals(String(req.get(41)), batch);
      const sent = String(req.get(48));
      const n = (v: number, w: number) => String(v).padStart(w, '0');
      const mine = `${n(t.debitTotal, 12)}${n(t.debitCount, 3)}${n(t.creditTotal, 12)}${n(t.creditCount, 3)}`;
      const flag = sent.slice(0, 30) === mine ? '1' : '2';
      r.set(48, `${mine}${flag}${'0'.repeat(30)}0`);
      if (this.nextBatchOnClose && flag === '1') r.set(60, `00${this.nextBatchOnClose}201`);
      r.set(39, '00');
    } else if (req.mti === '0320') {
      if (req.get('60.3') === '202') this.endOfBatch.push(Number(req.get(48)));
      else this.uploads.push(id);
      r.set(39, '00');
    } else {
      r.set(39, '00');
      r.set(38, 'A1B2C3');
      if (req.get(3) === '310000') r.set(54, `1002156C${String(this.balanceMinor).padStart(12, '0')}`);
      else {
        const type = req.mti === '0220' || repeat ? 'refund' : req.get(3) === '200000' ? 'void' : 'purchase';
        const amountMinor = Number(req.get(4));
        // A late original of an already reversed identity is declined (docs/network.md).
        if (this.reversals.has(id)) r.set(39, '12');
        else if (seenRrn === undefined || !this.journal.has(id))
          this.journal.set(id, { type, amountMinor, batch, reversed: false });
      }
    }
    for (const [k, v] of Object.entries(this.echoOverride ?? {})) r.set(Number(k), v);
    if (mode === 'no-mac') return r.pack().slice();
    r.set(64, new Uint8Array(8));
    const bytes = r.pack().slice();
    const mac = macCupEcb(this.mak!, bytes.subarray(0, bytes.length - 8));
    if (mode === 'bad-mac') mac[0] = mac[0] === 0x30 ? 0x31 : 0x30;
    bytes.set(mac, bytes.length - 8);
    return bytes;
  }
}
