/** Typed errors of the TCP links. Messages name the peer and the limit, never message content. */
export const NET_ERROR_CODES = {
  NET_TIMEOUT: 'no response arrived within the request timeout',
  NET_CLOSED: 'the connection is closed (or was closed while the request was in flight)',
  NET_BUSY: 'the in-flight limit of the link is reached; the request was not sent',
  NET_CONNECT_FAILED: 'the connection could not be established within the connect timeout',
  NET_KEY_IN_USE: 'a request with the same match key is already in flight on this link',
  NET_KEY_INVALID: 'the match key of a request could not be read from its frame',
} as const;

export type NetErrorCode = keyof typeof NET_ERROR_CODES;

export class NetError extends Error {
  readonly code: NetErrorCode;
  /**
   * Whether the request may have reached the peer: false when it was refused before a byte was
   * written (not connected, in-flight limit, key problems), true once it was written (a timeout or a
   * connection lost in flight: the peer may have acted on it).
   */
  readonly sent: boolean;
  constructor(code: NetErrorCode, message: string, options?: { cause?: unknown; sent?: boolean }) {
    super(message, options);
    this.name = 'NetError';
    this.code = code;
    this.sent = options?.sent ?? false;
  }
}

export function isNetError(e: unknown): e is NetError {
  return e instanceof NetError;
}
