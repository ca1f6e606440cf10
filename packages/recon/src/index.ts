/**
 * @openposp/recon: clearing and reconciliation (對賬, issue 6 §4). Reads the clearing files of a date
 * (acquirer, switch, every issuer; docs/network.md "Clearing files"), joins them by transaction identity
 * and classifies every mismatch with its resolution rule (README.md "Classes"). Imports no service:
 * the files are the contract.
 */
export { isReconError, RECON_ERROR_CODES, ReconError, type ReconErrorCode } from './errors.js';
export {
  CLEARING_STATES,
  CLEARING_TYPES,
  type ClearingFile,
  type ClearingRecord,
  type ClearingState,
  type ClearingType,
  checkClearingDate,
  PARTY_PATTERN,
  parseClearingFile,
  RECON_FILE_MAX_BYTES,
  RECON_LINE_MAX_BYTES,
  readClearingFiles,
  validateRecord,
} from './record.js';
export {
  actionable,
  type Identity,
  type Matched,
  MISMATCH_CLASSES,
  type Mismatch,
  type MismatchClass,
  normalizeInstitutionId,
  type PartyView,
  type ReconcileResult,
  type Resolution,
  type ResolutionAction,
  reconcile,
} from './reconcile.js';
