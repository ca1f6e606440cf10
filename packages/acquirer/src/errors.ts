/**
 * Typed errors of the POSP (acquirer host).
 *
 * A decline is never an error: it is a response code in the answer. These errors are for what a
 * caller or an operator can get wrong (configuration, terminal registration, an inquiry) and for the
 * pipeline's own bounds. A message names the field and the rule, never a key, PIN block, PAN or track.
 */

/** Every code this package throws, with a one-line meaning (the source of docs/errors.md). */
export const ACQUIRER_ERROR_CODES = {
  ACQUIRER_CONFIG_INVALID: 'the POSP configuration is invalid; the field names the JSON path',
  ACQUIRER_CONFIG_READ: 'a configuration or terminals file cannot be read or is not JSON',
  ACQUIRER_TERMINAL_INVALID: 'a terminal registration is invalid (terminal id, merchant id, TMK key block)',
  ACQUIRER_TERMINAL_UNKNOWN: 'no terminal with this id is in the terminal table',
  ACQUIRER_INQUIRY_INVALID: 'an inquiry needs a 12-digit RRN or a terminal id, a 6-digit STAN and a date',
  ACQUIRER_STEP_TIMEOUT: 'a pipeline step did not finish within its bound',
  ACQUIRER_HSM_UNAVAILABLE: 'the HSM cannot be reached or does not implement the operations the POSP needs',
  ACQUIRER_SAF_ITEM_UNKNOWN: 'no store-and-forward advice with this id in a state the operation applies to',
  ACQUIRER_DATE_INVALID: 'a settlement or clearing date must be YYYYMMDD, a calendar day',
  ACQUIRER_JOURNAL_CONFLICT:
    'the journal refused a new request for an identity it then could not read back (PostgreSQL; answered 96)',
  ACQUIRER_PAN_SEALED:
    'a PAN to seal is not 12-19 digits, or a sealed PAN does not open to one (altered row, or another data key)',
} as const;

export type AcquirerErrorCode = keyof typeof ACQUIRER_ERROR_CODES;

export class AcquirerError extends Error {
  readonly code: AcquirerErrorCode;
  /** The parameter, config path or step that is wrong, e.g. `switch.port`, `terminalId`, `step.translatePin`. */
  readonly field: string;

  constructor(code: AcquirerErrorCode, field: string, rule: string) {
    super(`${field}: ${rule}`);
    this.name = 'AcquirerError';
    this.code = code;
    this.field = field;
  }
}

export function isAcquirerError(e: unknown): e is AcquirerError {
  return e instanceof AcquirerError;
}
