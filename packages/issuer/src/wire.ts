/**
 * The issuer's side of the switch–issuer leg (docs/network.md): iso87-binary messages, MAC under the
 * zone ZAK (ISO 9797-1 algorithm 3 / ANSI X9.19, padding 1, 8 bytes) verified on every request and
 * generated on every answer, request fields turned into an `IssuerRequest`.
 *
 * MAC field and input: the one rule of `@openposp/iso8583` (`macFieldOf`, `macInputOf`, `packForMac`,
 * docs/network.md "MAC field and input (MAB), every leg"): field 64 without a secondary bitmap, 128 with
 * one (a void, refund or reversal carries field 90, and its answer echoes it); the MAB is the packed
 * message minus its last 8 bytes, from the bytes as received. This file only adds the HSM calls.
 */
import type { HsmApi } from '@openposp/hsm';
import {
  type CompiledSpec,
  type Iso8583Message,
  isIso8583Error,
  loadSpec,
  MAC_BYTES,
  macInputOf,
  pack,
  packForMac,
  startResponse,
  unpack,
} from '@openposp/iso8583';
import type { IssuerRequest, OriginalDataElements } from './issuer.js';

export const ISSUER_SPEC = 'iso87-binary';

let spec: CompiledSpec | undefined;
export function issuerSpec(): CompiledSpec {
  spec ??= loadSpec(ISSUER_SPEC);
  return spec;
}

/**
 * X9.19 of the MAB of `packed` (the bytes as received; `m` is what they unpacked to). False when the last
 * field is not the MAC field of 8 bytes (64 without a secondary bitmap, 128 with one) or the MAC fails.
 */
export async function verifyMessageMac(
  hsm: HsmApi,
  zak: string,
  m: Iso8583Message,
  packed: Uint8Array,
): Promise<boolean> {
  let mab: Uint8Array;
  try {
    mab = macInputOf(m.spec, packed);
  } catch (e) {
    if (isIso8583Error(e)) return false;
    throw e;
  }
  return hsm.verifyMac({
    key: zak,
    algorithm: 'iso9797-1-3',
    padding: 1,
    length: MAC_BYTES,
    data: mab,
    // The MAC field is last and fixed: its value is the last 8 bytes.
    mac: packed.slice(packed.length - MAC_BYTES),
  });
}

/** Sets the MAC field of `m` (64 or 128; any other MAC dropped) under the ZAK and returns the packed message. */
export async function packWithMac(hsm: HsmApi, zak: string, m: Iso8583Message): Promise<Uint8Array> {
  const { bytes, mab, macField } = packForMac(m.spec, m);
  const mac = await hsm.generateMac({
    key: zak,
    algorithm: 'iso9797-1-3',
    padding: 1,
    length: MAC_BYTES,
    data: mab,
  });
  bytes.set(mac, bytes.length - MAC_BYTES);
  m.set(macField, mac);
  return bytes;
}

export type ParsedRequest = { ok: true; request: IssuerRequest } | { ok: false; field: string; rule: string };

function str(m: Iso8583Message, id: number): string | undefined {
  const v = m.get(id);
  return typeof v === 'string' ? v : undefined;
}

/** Turns a request message into an `IssuerRequest`, or names the first field that is missing or malformed. */
export function parseRequest(m: Iso8583Message): ParsedRequest {
  const fail = (field: string, rule: string): ParsedRequest => ({ ok: false, field, rule });
  const mti = m.mti;
  // 0420/0421: the reversal advice the POSP's store-and-forward queue owes upstream (docs/network.md,
  // issue 6), handled exactly like 0400 (same identity class 04, answered 0430).
  if (!['0200', '0201', '0400', '0401', '0420', '0421'].includes(mti))
    return fail('mti', 'the issuer takes 0200/0201/0400/0401/0420/0421');
  const acquirerId = str(m, 32);
  const terminalId = str(m, 41);
  const stan = str(m, 11);
  const localDate = str(m, 13);
  if (acquirerId === undefined || !/^\d{1,11}$/.test(acquirerId))
    return fail('32', 'required, 1 to 11 digits');
  if (terminalId === undefined || terminalId.length === 0) return fail('41', 'required');
  if (stan === undefined || !/^\d{6}$/.test(stan)) return fail('11', 'required, 6 digits');
  if (localDate === undefined || !/^\d{4}$/.test(localDate)) return fail('13', 'required, MMDD');
  const pan = str(m, 2);
  if (pan === undefined || !/^\d{12,19}$/.test(pan)) return fail('2', 'required, 12 to 19 digits');
  const processingCode = str(m, 3);
  if (processingCode === undefined || !/^\d{6}$/.test(processingCode)) return fail('3', 'required, 6 digits');
  const amount = str(m, 4);
  let amountMinor = 0;
  if (amount !== undefined) {
    if (!/^\d{12}$/.test(amount)) return fail('4', '12 digits');
    amountMinor = Number(amount);
  } else if (!processingCode.startsWith('31')) return fail('4', 'required');
  const request: IssuerRequest = {
    mti,
    identity: { acquirerId, terminalId, stan, localDate },
    processingCode,
    amountMinor,
    pan,
  };
  const expiry = str(m, 14);
  if (expiry !== undefined) {
    if (!/^\d{4}$/.test(expiry)) return fail('14', 'YYMM');
    request.expiryYymm = expiry;
  }
  const pinBlock = m.get(52);
  if (pinBlock instanceof Uint8Array) {
    if (pinBlock.length !== 8) return fail('52', '8 bytes');
    request.pinBlock = pinBlock;
  }
  const t7 = str(m, 7);
  if (t7 !== undefined) request.transmissionDt = t7;
  const t12 = str(m, 12);
  if (t12 !== undefined) request.localTime = t12;
  const rrn = str(m, 37);
  if (rrn !== undefined) request.rrn = rrn;
  const mid = str(m, 42);
  if (mid !== undefined) request.merchantId = mid;
  const cur = str(m, 49);
  if (cur !== undefined) request.currency = cur;
  const f90 = str(m, 90);
  if (f90 !== undefined) {
    if (!/^\d{42}$/.test(f90)) return fail('90', '42 digits');
    const o: OriginalDataElements = {
      mti: f90.slice(0, 4),
      stan: f90.slice(4, 10),
      transmissionDt: f90.slice(10, 20),
      acquirerId: f90.slice(20, 31),
      forwardingId: f90.slice(31, 42),
      raw: f90,
    };
    request.original = o;
  }
  return { ok: true, request };
}

export { pack, startResponse, unpack };
