export * from './errors.js';
export * from './bytes.js';
export * from './cipher.js';
export * from './cmac.js';
export * from './kcv.js';
export * from './pinblock.js';
export * from './pinverify.js';
export * from './mac.js';
export * from './sm.js';
export * from './tr31.js';
export {
  assertCounterUsableTdes,
  assertKsnTdes,
  counterOfKsnTdes,
  DUKPT_TDES_COUNTER_BITS,
  DUKPT_TDES_COUNTER_MASK,
  DUKPT_TDES_KSN_LENGTH,
  DUKPT_TDES_LAST_COUNTER,
  DUKPT_TDES_MAX_ONE_BITS,
  DUKPT_TDES_STATE_LENGTH,
  DUKPT_TDES_USAGES,
  DukptTdesDevice,
  DukptTdesTransaction,
  type DukptTdesUsage,
  decryptPinBlockTdes,
  deriveIpekTdes,
  deriveTransactionKeyFromBdkTdes,
  deriveTransactionKeyTdes,
  deriveWorkingKeyFromTransactionKeyTdes,
  deriveWorkingKeyTdes,
  withCounterTdes,
} from './dukpt-tdes.js';
export * from './dukpt-aes.js';
