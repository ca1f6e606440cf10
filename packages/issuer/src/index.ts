export {
  CLEARING_RECORDS_MAX,
  CLEARING_WINDOW_DAYS,
  clearingDateMs,
  type IssuerClearingRecord,
  issuerClearingRecords,
  writeIssuerClearingFile,
} from './clearing.js';
export { ISSUER_RESPONSE_CODES, type ResponseCode } from './codes.js';
export { ISSUER_ERROR_CODES, IssuerError, type IssuerErrorCode, isIssuerError } from './errors.js';
export {
  type AccountsFile,
  CARD_LIMIT_MINOR_DEFAULT,
  CARD_STATUSES,
  type CardInput,
  type CardStatus,
  type Ibm3624PinData,
  luhnOk,
  maskPan,
  PIN_TRIES_MAX,
  type PinVerificationData,
  type PvvPinData,
  readAccountsFile,
  type ValidationDataRule,
  validateAccountsFile,
  validateCardInput,
} from './cards.js';
export {
  type AccountBalance,
  type AccountKind,
  auditLedger,
  FUNDING_ACCOUNT_ID,
  type LedgerAudit,
} from './ledger.js';
export {
  type CardView,
  type EnrolPinRequest,
  formatAdditionalAmounts,
  formatMajor,
  ISSUER_CURRENCY_DEFAULT,
  ISSUER_HSM_TIMEOUT_MS_DEFAULT,
  Issuer,
  type IssuerAnswer,
  type IssuerOptions,
  type IssuerRequest,
  type NotificationView,
  notificationText,
  type OriginalDataElements,
  type TransactionIdentity,
  type TransactionView,
  type TxnType,
} from './issuer.js';
export { ISSUER_MIGRATIONS } from './migrations.js';
export {
  answerFrame,
  type FrameOutcome,
  ISSUER_IDLE_TIMEOUT_MS_DEFAULT,
  ISSUER_MAX_CONNECTIONS_DEFAULT,
  ISSUER_MAX_FRAME_BYTES_DEFAULT,
  ISSUER_MAX_IN_FLIGHT_DEFAULT,
  type IssuerConfig,
  type IssuerHandle,
  loadIssuerConfig,
  startIssuer,
  validateIssuerConfig,
} from './service.js';
export {
  ISSUER_SPEC,
  packWithMac,
  parseRequest,
  type ParsedRequest,
  verifyMessageMac,
} from './wire.js';
