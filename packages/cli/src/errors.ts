/** Error codes of the `posp` command line (the library codes pass through unchanged). */
export const CLI_ERROR_CODES = {
  CLI_JSON_INVALID: 'a batch line is not a JSON object',
  CLI_LINE_TOO_LONG: 'a batch line is longer than the batch line limit',
  CLI_OP_UNKNOWN: 'a request names an operation the calculator does not have',
  CLI_REQUEST_INVALID: 'a request lacks a field, or a field has the wrong type or value',
  CLI_INTERNAL:
    'an unexpected failure inside the command (a defect: please report it with the request, keys removed)',
} as const;

export type CliErrorCode = keyof typeof CLI_ERROR_CODES;

export class CliError extends Error {
  readonly code: CliErrorCode;
  constructor(code: CliErrorCode, message: string) {
    super(message);
    this.name = 'CliError';
    this.code = code;
  }
}
