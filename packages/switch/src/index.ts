/**
 * @openposp/switch: the card scheme switch (銀聯) of docs/network.md. BIN routing, zone PIN translation,
 * MAC regeneration, a journal for reconciliation and inquiry.
 */
export {
  CONFIG_FILE_MAX_BYTES,
  SWITCH_CONNECT_TIMEOUT_MS_DEFAULT,
  SWITCH_HSM_TIMEOUT_MS_DEFAULT,
  SWITCH_IDLE_TIMEOUT_MS_DEFAULT,
  SWITCH_ISSUER_TIMEOUT_MS_DEFAULT,
  SWITCH_LIMIT_MAX,
  SWITCH_MAX_CONNECTIONS_DEFAULT,
  SWITCH_MAX_IN_FLIGHT_PER_LINK_DEFAULT,
  SWITCH_RECONNECT_DELAY_MS_DEFAULT,
  SWITCH_RECONNECT_MAX_DELAY_MS_DEFAULT,
  SWITCH_TIMEOUT_MS_MAX,
  type AcquirerLinkConfig,
  type HsmEndpoint,
  type IssuerLinkConfig,
  loadSwitchConfigFile,
  type ResolvedSwitchConfig,
  type SwitchConfig,
  type SwitchLimits,
  type SwitchTimeouts,
  validateSwitchConfig,
} from './config.js';
export {
  SWITCH_CLEARING_ROWS_MAX,
  SWITCH_CLEARING_WINDOW_DAYS,
  type SwitchClearingRecord,
  switchClearingDateMs,
  switchClearingRecords,
  writeSwitchClearingFile,
} from './clearing.js';
export { isSwitchError, SWITCH_ERROR_CODES, SwitchError, type SwitchErrorCode } from './errors.js';
export {
  INQUIRY_ROWS_MAX,
  type JournalAnswer,
  type JournalEntry,
  type JournalQuery,
  type JournalRequest,
  SWITCH_OUTCOMES,
  SwitchJournal,
  type SwitchOutcome,
} from './journal.js';
export {
  checkMessageMac,
  MAC_ALGORITHM,
  MAC_BYTES,
  MAC_PADDING,
  type MacCheck,
  packWithMac,
} from './mac.js';
export { SWITCH_MIGRATIONS } from './migrations.js';
export {
  BIN_LENGTH_MAX,
  BIN_LENGTH_MIN,
  ISSUER_ID_PATTERN,
  loadRoutingTable,
  ROUTING_FILE_MAX_BYTES,
  type RouteEntry,
  type RouteMatch,
  RoutingTable,
} from './routing.js';
export {
  type IssuerLink,
  matchKeyOf,
  NETWORK_FRAMING,
  NETWORK_SPEC,
  startSwitch,
  SWITCH_RESPONSE_CODES,
  type SwitchHandle,
  SwitchService,
} from './switch.js';
export type { SwitchHsm, SwitchMacAlgorithm, SwitchMacRequest, SwitchPinFormat } from './hsm.js';
