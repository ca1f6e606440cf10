/**
 * Response codes (field 39) the issuer answers, as docs/network.md defines them. A decline is one of
 * these values, never an exception.
 */
export const ISSUER_RESPONSE_CODES = {
  '00': 'approved',
  '12': 'invalid transaction (void of a voided, refunded or reversed transaction; unsupported type; reversed before it arrived)',
  '13': 'invalid amount (zero, refund above the remaining original amount, void or reversal amount not the original one)',
  '14': 'invalid card number (no account at this issuer)',
  '25': 'original transaction not found (void, refund, reversal), or it belongs to another card',
  '30': 'format error (a required field missing or malformed)',
  '51': 'insufficient funds',
  '54': 'expired card (or field 14 differs from the card expiry)',
  '55': 'incorrect PIN',
  '61': 'exceeds the per-transaction amount limit',
  '62': 'restricted card (blocked, or its service code restricts it to ATMs)',
  '75': 'PIN tries exceeded: the card is PIN-blocked',
  '94': 'duplicate transmission with different content',
  '96': 'system malfunction (HSM or database unavailable)',
  A0: 'request MAC verification failed',
} as const;

export type ResponseCode = keyof typeof ISSUER_RESPONSE_CODES;
