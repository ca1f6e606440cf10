/**
 * The operations of the `posp crypto` calculator, one table shared by the subcommands and by
 * `posp crypto batch`. A request is a JSON object with an `op`; the result is a JSON object of
 * upper-case hex (or text) values. Library errors (CryptoError) pass through with their codes.
 */
import {
  DUKPT_AES_KEY_TYPES,
  type DUKPT_AES_USAGES,
  DUKPT_TDES_USAGES,
  decodePinBlock,
  deriveInitialKeyAes,
  deriveIpekTdes,
  deriveWorkingKeyAes,
  deriveWorkingKeyTdes,
  decrypt,
  decryptPinBlock,
  encodePinBlock,
  encodePanFieldIso4,
  encrypt,
  encryptPinBlock,
  generateCvvVisa,
  generateOffsetIbm3624,
  generatePinIbm3624,
  generateMac,
  generatePvvVisa,
  type Iso9797Padding,
  MAC_ALGORITHMS,
  MAC_CIPHERS,
  keyCheckValue,
  type PinBlockFormat,
  selectValidationDataIbm3624,
  sm3,
  toHex,
  unwrapKeyBlock,
  wrapKeyBlock,
} from '@openposp/crypto';
import { CliError } from './errors.js';
import { hex, int, oneOf, optHex, optInt, optOneOf, optStr, type Request, str } from './request.js';

export type Result = Record<string, string>;

export interface OpDef {
  /** One line for `--help`. */
  summary: string;
  /** Field names with a hint, for `--help`. */
  fields: string;
  run(req: Request): Result;
}

const CIPHERS = ['des', 'tdes', 'aes', 'sm4'] as const;
const MODES = ['ecb', 'cbc'] as const;

function cipherOp(decrypting: boolean): OpDef {
  return {
    summary: `${decrypting ? 'decrypt' : 'encrypt'} whole blocks, no padding`,
    fields: 'alg=des|tdes|aes|sm4 mode=ecb|cbc key=H data=H [iv=H]',
    run(req) {
      const alg = oneOf(req, 'alg', CIPHERS);
      const mode = oneOf(req, 'mode', MODES);
      const key = hex(req, 'key');
      const data = hex(req, 'data');
      const iv = optHex(req, 'iv');
      const out = decrypting ? decrypt(alg, mode, key, data, iv) : encrypt(alg, mode, key, data, iv);
      return { data: toHex(out) };
    },
  };
}

/** IBM 3624 parameters shared by the offset and PIN operations (payShield/psec defaults). */
function ibm3624Inputs(req: Request) {
  const pan = str(req, 'pan');
  const validationData = selectValidationDataIbm3624(pan, {
    offset: optInt(req, 'panOffset', 0, 18) ?? 0,
    length: optInt(req, 'panLength', 1, 16) ?? Math.min(16, pan.length),
    pad: optStr(req, 'panPad') ?? 'F',
  });
  return { pvk: hex(req, 'pvk'), table: optStr(req, 'decimalisation') ?? '0123456789012345', validationData };
}

/** The calculator's AES DUKPT usage names (short, as in the request format) and the library's. */
const AES_USAGE_NAMES = {
  pin: 'pin',
  'mac-gen': 'mac-generation',
  'mac-verify': 'mac-verification',
  'mac-both': 'mac-both',
  'data-encrypt': 'data-encrypt',
  'data-decrypt': 'data-decrypt',
  'data-both': 'data-both',
  kek: 'kek',
} as const satisfies Record<string, (typeof DUKPT_AES_USAGES)[number]>;
const AES_USAGE_KEYS = Object.keys(AES_USAGE_NAMES) as (keyof typeof AES_USAGE_NAMES)[];
const AES_KEY_TYPE_NAMES = DUKPT_AES_KEY_TYPES.map((t) => t.toLowerCase());

const IBM3624_FIELDS =
  'pvk=H pan=digits [decimalisation=16 digits, default 0123456789012345] [panOffset=N panLength=N panPad=F]';

export const OPS: Record<string, OpDef> = {
  kcv: {
    summary: 'key check value (TDES/SM4: encrypt zeros; AES: CMAC of zeros per X9.24-3)',
    fields: 'alg=des|tdes|aes|sm4 key=H [length=N] [method=legacy|cmac]',
    run(req) {
      const alg = oneOf(req, 'alg', CIPHERS);
      const key = hex(req, 'key');
      const method = optOneOf(req, 'method', ['legacy', 'cmac'] as const);
      const length = optInt(req, 'length', 1, 16);
      return {
        kcv: toHex(keyCheckValue(alg, key, { ...(method && { method }), ...(length && { length }) })),
      };
    },
  },
  encrypt: cipherOp(false),
  decrypt: cipherOp(true),
  'pinblock.encode': {
    summary: 'ISO 9564-1 PIN block, clear (no key) or encrypted (TDES for 0-3, AES for 4)',
    fields: 'format=0..4 pin=digits [pan=digits] [key=H]',
    run(req): Result {
      const format = int(req, 'format', 0, 4) as PinBlockFormat;
      const pin = str(req, 'pin');
      const pan = optStr(req, 'pan');
      const key = optHex(req, 'key');
      if (key) return { block: toHex(encryptPinBlock(format, key, pin, pan)) };
      const block = toHex(encodePinBlock(format, pin, pan));
      // Clear format 4 is the PIN field; its PAN field is shown beside it since encryption binds both.
      return format === 4 && pan !== undefined
        ? { block, panField: toHex(encodePanFieldIso4(pan)) }
        : { block };
    },
  },
  'pinblock.decode': {
    summary: 'the PIN in a clear or encrypted ISO 9564-1 PIN block',
    fields: 'format=0..4 block=H [pan=digits] [key=H]',
    run(req) {
      const format = int(req, 'format', 0, 4) as PinBlockFormat;
      const block = hex(req, 'block');
      const pan = optStr(req, 'pan');
      const key = optHex(req, 'key');
      return { pin: key ? decryptPinBlock(format, key, block, pan) : decodePinBlock(format, block, pan) };
    },
  },
  mac: {
    summary: 'MAC: ISO 9797-1 alg 1 (X9.9) or 3 (X9.19), CMAC, UnionPay POS ECB (field 64 text)',
    fields:
      'alg=iso9797-1-1|iso9797-1-3|cmac|cup-ecb key=H data=H [padding=1|2|3] [length=N] [cipher=tdes|aes]',
    run(req): Result {
      const alg = oneOf(req, 'alg', MAC_ALGORITHMS);
      const padding = optInt(req, 'padding', 1, 3) as Iso9797Padding | undefined;
      const length = optInt(req, 'length', 1, 16);
      const cipher = optOneOf(req, 'cipher', MAC_CIPHERS);
      const opts = { ...(padding && { padding }), ...(length && { length }), ...(cipher && { cipher }) };
      const mac = generateMac(alg, hex(req, 'key'), hex(req, 'data'), opts);
      // The UnionPay MAC is 8 ASCII hex characters in field 64: show them as text too.
      return alg === 'cup-ecb'
        ? { mac: toHex(mac), macText: Buffer.from(mac).toString('latin1') }
        : { mac: toHex(mac) };
    },
  },
  'dukpt.derive': {
    summary: 'DUKPT host side: initial key and working key for a KSN (TDES X9.24-1-2009, AES X9.24-3-2017)',
    fields:
      'scheme=tdes bdk=H ksn=20 hex usage=pin|mac|mac-response|data|data-response | scheme=aes bdk=H ksn=24 hex usage=pin|mac-gen|mac-verify|mac-both|data-encrypt|data-decrypt|data-both keyType=aes128|aes192|aes256|tdes2|tdes3',
    run(req) {
      const scheme = oneOf(req, 'scheme', ['tdes', 'aes'] as const);
      const bdk = hex(req, 'bdk');
      const ksn = hex(req, 'ksn');
      if (scheme === 'tdes') {
        const usage = oneOf(req, 'usage', DUKPT_TDES_USAGES);
        return { ipek: toHex(deriveIpekTdes(bdk, ksn)), key: toHex(deriveWorkingKeyTdes(bdk, ksn, usage)) };
      }
      const usage = AES_USAGE_NAMES[oneOf(req, 'usage', AES_USAGE_KEYS)];
      const keyType = oneOf(
        req,
        'keyType',
        AES_KEY_TYPE_NAMES,
      ).toUpperCase() as (typeof DUKPT_AES_KEY_TYPES)[number];
      return {
        ipek: toHex(deriveInitialKeyAes(bdk, ksn)),
        key: toHex(deriveWorkingKeyAes(bdk, ksn, usage, keyType)),
      };
    },
  },
  'tr31.wrap': {
    summary: 'wrap a key in a TR-31 / X9.143 key block (B: TDES, D: AES, E); the length field is filled in',
    fields: 'kbpk=H key=H header=16+ chars e.g. D0000P0AE00E0000',
    run(req) {
      return { block: wrapKeyBlock(hex(req, 'kbpk'), str(req, 'header'), hex(req, 'key')) };
    },
  },
  'tr31.unwrap': {
    summary:
      'verify and unwrap a TR-31 key block (A, B, C, D, E); the MAC is checked before the key is returned',
    fields: 'kbpk=H block=text',
    run(req) {
      const { key, headerText } = unwrapKeyBlock(hex(req, 'kbpk'), str(req, 'block'));
      return { key: toHex(key), header: headerText };
    },
  },
  sm3: {
    summary: 'SM3 digest (GB/T 32905)',
    fields: 'data=H',
    run(req) {
      return { digest: toHex(sm3(hex(req, 'data'))) };
    },
  },
  pvv: {
    summary: 'Visa PIN verification value',
    fields: 'pvk=H pvki=digit pin=digits pan=digits',
    run(req) {
      return { pvv: generatePvvVisa(hex(req, 'pvk'), str(req, 'pvki'), str(req, 'pin'), str(req, 'pan')) };
    },
  },
  'ibm3624.offset': {
    summary: 'IBM 3624 PIN offset for a chosen PIN',
    fields: `${IBM3624_FIELDS} pin=digits`,
    run(req) {
      const { pvk, table, validationData } = ibm3624Inputs(req);
      return { offset: generateOffsetIbm3624(pvk, table, validationData, str(req, 'pin')) };
    },
  },
  'ibm3624.pin': {
    summary: 'IBM 3624 PIN from its offset',
    fields: `${IBM3624_FIELDS} offset=digits`,
    run(req) {
      const { pvk, table, validationData } = ibm3624Inputs(req);
      return { pin: generatePinIbm3624(pvk, table, validationData, str(req, 'offset')) };
    },
  },
  cvv: {
    summary: 'Visa CVV (service code from the track), CVV2 (000) or iCVV (999)',
    fields: 'cvk=H pan=digits expiry=YYMM serviceCode=3 digits',
    run(req) {
      return {
        cvv: generateCvvVisa(hex(req, 'cvk'), str(req, 'pan'), str(req, 'expiry'), str(req, 'serviceCode')),
      };
    },
  },
};

/** Runs one request; throws CliError or CryptoError. */
export function runCryptoRequest(req: unknown): Result {
  if (typeof req !== 'object' || req === null || Array.isArray(req)) {
    throw new CliError('CLI_JSON_INVALID', 'request: must be a JSON object');
  }
  const r = req as Request;
  if (typeof r.op !== 'string') throw new CliError('CLI_REQUEST_INVALID', 'op: required');
  const def = Object.hasOwn(OPS, r.op) ? OPS[r.op] : undefined;
  if (!def)
    throw new CliError('CLI_OP_UNKNOWN', `op: unknown operation (known: ${Object.keys(OPS).join(', ')})`);
  return def.run(r);
}
