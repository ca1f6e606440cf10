/**
 * Typed errors of reconciliation. A mismatch is never an error: it is a classified finding. These are
 * for what an operator gives it: a clearing file that is not the agreed format (docs/network.md
 * "Clearing files"), a malformed date. Messages name the file, line and key, never a PAN.
 */

/** Every code this package throws, with a one-line meaning. */
export const RECON_ERROR_CODES = {
  RECON_DATE_INVALID: 'the clearing date is not a calendar date YYYYMMDD',
  RECON_FILE_INVALID:
    'a clearing file or record is malformed (not JSON, a key missing or of the wrong form, line too long); the message names file, line and key',
} as const;

export type ReconErrorCode = keyof typeof RECON_ERROR_CODES;

export class ReconError extends Error {
  readonly code: ReconErrorCode;
  /** Where: `date`, or `<file>:<line>.<key>`. */
  readonly field: string;

  constructor(code: ReconErrorCode, field: string, rule: string, options?: { cause?: unknown }) {
    super(`${field}: ${rule}`, options);
    this.name = 'ReconError';
    this.code = code;
    this.field = field;
  }
}

export function isReconError(e: unknown): e is ReconError {
  return e instanceof ReconError;
}
