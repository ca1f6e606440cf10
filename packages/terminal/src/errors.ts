/**
 * Typed errors of the terminal package.
 *
 * Every failure a caller can cause (a bad config, a bad card, a wrong check value at key
 * injection, a sealed state that does not open...) is a `TerminalError` with a stable `code`, the
 * `field` that is wrong and a message naming the rule. A message never holds a key, PIN, PIN block,
 * PAN or track data: only lengths, slot numbers and the names of things.
 *
 * A decline, a bad response MAC or a missing answer is not an error: it is a result value.
 */

/** Every code this package throws, with a one-line meaning. */
export const TERMINAL_ERROR_CODES = {
  TERMINAL_CONFIG_INVALID: 'the terminal configuration is missing a value or has one out of its range',
  TERMINAL_PINPAD_SLOT:
    'a PIN pad slot number is out of range, the slot is empty, or it holds a key of another usage',
  TERMINAL_PINPAD_CHECK_VALUE: 'a key loaded into the PIN pad does not match its check value',
  TERMINAL_PINPAD_COMPONENT: 'key components for injection are malformed (count, length or parity)',
  TERMINAL_PINPAD_KEY_BLOCK: 'a TR-31 key block cannot be loaded (MAC, usage, algorithm or key length)',
  TERMINAL_PINPAD_SEALED:
    'the sealed PIN pad state cannot be opened: wrong device secret, altered or unknown file',
  TERMINAL_PIN_INVALID: 'the PIN entered is not 4 to 12 decimal digits',
  TERMINAL_CARD_INVALID: 'the card data (track 2, PAN or expiry) is malformed',
  TERMINAL_AMOUNT_INVALID: 'an amount is not a positive safe integer of minor units within 12 digits',
  TERMINAL_NOT_SIGNED_IN: 'the terminal has no working keys: sign in first',
  TERMINAL_REVERSAL_PENDING:
    'a reversal record is pending and could not be sent: no other online transaction until it is acknowledged',
  TERMINAL_BUSY:
    'the terminal is already running a transaction (one request at a time), or another operation on the same terminal state took the STAN this request read',
  TERMINAL_ORIGINAL_NOT_FOUND:
    'the original transaction of a void is not in the current batch, or cannot be voided',
  TERMINAL_BATCH_FULL:
    'the current batch holds the most transactions or the largest total a 0500 can carry: settle first',
  TERMINAL_CLOSED: 'the terminal has been closed',
} as const;

export type TerminalErrorCode = keyof typeof TERMINAL_ERROR_CODES;

export class TerminalError extends Error {
  readonly code: TerminalErrorCode;
  /** The parameter or field that is wrong, e.g. `config.posp.port`, `slot`, `card.track2`. */
  readonly field: string;

  constructor(code: TerminalErrorCode, field: string, rule: string, options?: { cause?: unknown }) {
    super(`${field}: ${rule}`, options);
    this.name = 'TerminalError';
    this.code = code;
    this.field = field;
  }
}

export function isTerminalError(e: unknown): e is TerminalError {
  return e instanceof TerminalError;
}
