/**
 * @openposp/acquirer: the POSP (POS 前置), the acquirer's front-end host. See README.md.
 */
export {
  type Clock,
  isValidMmdd,
  type LocalTime,
  localTimeOf,
  resolveMmdd,
  systemClock,
  transmissionDateTimeOf,
} from './clock.js';
export {
  type AcquirerConfig,
  type HsmEndpoint,
  loadAcquirerConfig,
  loadTerminalsFile,
  type ResolvedAcquirerConfig,
  validateAcquirerConfig,
} from './config.js';
export { ACQUIRER_ERROR_CODES, AcquirerError, type AcquirerErrorCode, isAcquirerError } from './errors.js';
export { type AcquirerHsm, type AcquirerTerminalKey, isAcquirerHsm } from './hsm.js';
export {
  Journal,
  type JournalEntry,
  type JournalState,
  type NewJournalEntry,
  type Outcome,
  RRN_DIGITS,
  type TxnType,
} from './journal.js';
export { checkMessageMac, MAC_BYTES, type MacCheck, type MacScheme, packWithMac } from './mac.js';
export { ACQUIRER_MIGRATIONS, RRN_SEQUENCE } from './migrations.js';
export {
  checkReversalFields,
  checkReversalTerminal,
  REVERSAL_REASONS,
  ReversalBook,
  type ReversalKey,
  type ReversalOutcome,
  type ReversalRecord,
  reverse,
} from './reversal.js';
export {
  backoffDelayMs,
  type NewSafItem,
  reversalFieldsOf,
  SAF_LEASE_MARGIN_MS,
  SAF_OPTIONS_DEFAULT,
  type SafItem,
  type SafOptions,
  SafQueue,
  type SafSource,
  type SafState,
  SafWorker,
  safLeaseMs,
  type SendResult,
  sendReversal,
} from './saf.js';
export {
  type BatchRecord,
  Batches,
  type BatchTotals,
  type ClearingRecord,
  checkBatchFields,
  clearingRecordsOf,
  type Discrepancy,
  type DiscrepancyKind,
  feeMinorOf,
  localDayBoundsIso,
  markReconciled,
  type MerchantSettlement,
  type MerchantSettlementLine,
  merchantSettlementOf,
  nextBatchNo,
  parseField48,
  type ReconIdentity,
  type ReconResolution,
  settleBatch,
  totalsField48,
  uploadBatch,
  writeClearingFileOf,
} from './settlement.js';
export {
  type AcquirerLogger,
  bounded,
  buildAnswer,
  classify,
  FINANCIAL_STEPS,
  fingerprintOf,
  type HandledMessage,
  handleTerminalMessage,
  NETWORK_PROCESSING_CODE,
  PIPELINE_TIMEOUTS_DEFAULT,
  type PipelineConfig,
  type PipelineDeps,
  type PipelineTimeouts,
  RC,
  REVERSAL_STEPS,
  runSteps,
  SETTLEMENT_STEPS,
  SIGN_IN_STEPS,
  UPLOAD_STEPS,
  checkReversedBefore,
  type Step,
  type SwitchLink,
  type TxnContext,
  unpackTerminalMessage,
} from './pipeline.js';
export {
  type AcquirerHandle,
  type InquiryKey,
  inquireJournal,
  openAcquirerJournal,
  openAcquirerSaf,
  type SafOperator,
  startAcquirer,
} from './server.js';
export {
  checkRegistration,
  type RegisterTerminalRequest,
  type TerminalRecord,
  type TerminalStatus,
  TerminalTable,
} from './terminals.js';
export { PanVault } from './panvault.js';
