/**
 * Typed errors of the switch.
 *
 * Every failure an operator can cause (a malformed config or routing file, overlapping BIN ranges) and
 * every internal failure the pipeline maps to a response code is a `SwitchError` with a stable `code`,
 * the `field` (a JSON path such as `issuers[1].port` or `routes[3]`) and a message naming the rule. A
 * message never holds a key block, PIN block, full PAN or track data. A decline is not an error: the
 * pipeline answers it as a response code.
 */

/** Every code this package throws, with a one-line meaning (the source of docs/errors.md). */
export const SWITCH_ERROR_CODES = {
  SWITCH_CONFIG_INVALID:
    'the switch configuration has a missing, malformed or inconsistent field (the path names it)',
  SWITCH_FILE_READ: 'a configuration or routing file cannot be read or is not JSON',
  SWITCH_ROUTING_INVALID:
    'a routing table entry is malformed (BIN range digits, lengths, low above high, issuer id)',
  SWITCH_ROUTING_OVERLAP:
    'two routing entries of the same BIN length overlap (the longest-match rule cannot choose)',
  SWITCH_CLEARING_INVALID: 'writeClearingFile was given a malformed date (YYYYMMDD)',
  SWITCH_HSM_TIMEOUT: 'an HSM call did not answer within the switch HSM timeout (the request is answered 96)',
} as const;

export type SwitchErrorCode = keyof typeof SWITCH_ERROR_CODES;

export class SwitchError extends Error {
  readonly code: SwitchErrorCode;
  /** The configuration path or field that is wrong, e.g. `acquirers[0].zak`, `routes[2]`. */
  readonly field: string;

  constructor(code: SwitchErrorCode, field: string, rule: string, options?: { cause?: unknown }) {
    super(`${field}: ${rule}`, options);
    this.name = 'SwitchError';
    this.code = code;
    this.field = field;
  }
}

export function isSwitchError(e: unknown): e is SwitchError {
  return e instanceof SwitchError;
}
