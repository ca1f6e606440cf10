/**
 * Typed errors of the issuer.
 *
 * A decline is never an error: it is a response code (`IssuerDecision.responseCode`). These errors are
 * for what an operator or a program gives the issuer: a config file, an accounts file, an API call
 * (`addCard`, `enrolPin`, `placeHold`). Every message names the field path and the rule, never a PAN, a
 * PIN, a PIN block or a key.
 */

/** Every code this package throws, with a one-line meaning. */
export const ISSUER_ERROR_CODES = {
  ISSUER_CONFIG_INVALID: 'the issuer config (object or JSON file) is malformed; the message names the path',
  ISSUER_ACCOUNTS_INVALID: 'the accounts file or an addCard input is malformed; the message names the path',
  ISSUER_CARD_EXISTS: 'addCard was given a PAN that already has a card account',
  ISSUER_CARD_UNKNOWN: 'the PAN (enrolPin) or account (placeHold) has no card account',
  ISSUER_HOLD_UNKNOWN: 'releaseHold was given a hold id that is not an active hold',
  ISSUER_AMOUNT_INVALID: 'an amount is not a positive safe integer of minor units',
  ISSUER_FUNDS_INSUFFICIENT: 'placeHold asks for more than the available balance',
  ISSUER_HSM_FAILED: 'the HSM refused or did not answer an enrolment or PAN-token request',
  ISSUER_CLEARING_INVALID: 'writeClearingFile was given a malformed date (YYYYMMDD) or party id',
  ISSUER_LEDGER_UNBALANCED: 'a posting whose entries do not sum to zero was about to be written (a bug)',
} as const;

export type IssuerErrorCode = keyof typeof ISSUER_ERROR_CODES;

export class IssuerError extends Error {
  readonly code: IssuerErrorCode;
  /** The path of what is wrong, e.g. `cards[2].pin.offset`, `listen.port`. */
  readonly field: string;

  constructor(code: IssuerErrorCode, field: string, rule: string, options?: { cause?: unknown }) {
    super(`${field}: ${rule}`, options);
    this.name = 'IssuerError';
    this.code = code;
    this.field = field;
  }
}

export function isIssuerError(e: unknown): e is IssuerError {
  return e instanceof IssuerError;
}
