/**
 * The operations of the `posp crypto` calculator, one table shared by the subcommands and by
 * `posp crypto batch`. A request is a JSON object with an `op`; the result is a JSON object of
 * upper-case hex (or text) values. Library errors (CryptoError) pass through with their codes.
 */
import { decrypt, encrypt, keyCheckValue, toHex } from '@openposp/crypto';
import { CliError } from './errors.js';
import { hex, oneOf, optHex, optInt, optOneOf, type Request } from './request.js';

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
