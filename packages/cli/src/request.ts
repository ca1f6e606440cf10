/**
 * Reading fields of a calculator request (a JSON object from a batch line, or built from command
 * line options). Every problem is a CliError naming the field; values are never echoed, since a
 * request may hold keys, PINs and PANs.
 */
import { fromHex } from '@openposp/crypto';
import { CliError } from './errors.js';

export type Request = Record<string, unknown>;

export function str(req: Request, field: string): string {
  const v = req[field];
  if (v === undefined || v === null) throw new CliError('CLI_REQUEST_INVALID', `${field}: required`);
  if (typeof v !== 'string') throw new CliError('CLI_REQUEST_INVALID', `${field}: must be a string`);
  return v;
}

export function optStr(req: Request, field: string): string | undefined {
  return req[field] === undefined ? undefined : str(req, field);
}

/** A hex field as bytes (either case accepted). */
export function hex(req: Request, field: string): Uint8Array {
  return fromHex(str(req, field), field);
}

export function optHex(req: Request, field: string): Uint8Array | undefined {
  return req[field] === undefined ? undefined : hex(req, field);
}

/** An integer field; a string of digits is accepted too, as the command line gives strings. */
export function int(req: Request, field: string, min: number, max: number): number {
  const v = req[field];
  if (v === undefined || v === null) throw new CliError('CLI_REQUEST_INVALID', `${field}: required`);
  const n = typeof v === 'string' && /^\d{1,9}$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new CliError('CLI_REQUEST_INVALID', `${field}: must be an integer from ${min} to ${max}`);
  }
  return n;
}

export function optInt(req: Request, field: string, min: number, max: number): number | undefined {
  return req[field] === undefined ? undefined : int(req, field, min, max);
}

/** One of a fixed set of names. */
export function oneOf<T extends string>(req: Request, field: string, allowed: readonly T[]): T {
  const v = str(req, field);
  if (!(allowed as readonly string[]).includes(v)) {
    throw new CliError('CLI_REQUEST_INVALID', `${field}: must be one of ${allowed.join(', ')}`);
  }
  return v as T;
}

export function optOneOf<T extends string>(
  req: Request,
  field: string,
  allowed: readonly T[],
): T | undefined {
  return req[field] === undefined ? undefined : oneOf(req, field, allowed);
}
