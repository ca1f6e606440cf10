/**
 * `HsmApi`: the operations a payment service (POSP / acquirer, switch, issuer) asks of the HSM, as one
 * asynchronous interface with two implementations:
 *
 * - `LocalHsm` (below): the in-process `Hsm`, each call answered at once (tests, single-process setups);
 * - `HsmClient` (client.ts): the same calls as payShield-framed host commands over TCP.
 *
 * Conventions (the same for both implementations, so a service can switch without a code change):
 * - every key argument is a key block under the LMK (a string starting with `S`); a key exchanged with
 *   another party is a TR-31 key block under a KEK (version B under a TDES KEK, D under an AES KEK);
 * - PIN blocks, MACs, KSNs, MAC data, clear and encrypted data and IVs are `Uint8Array`; PANs are
 *   strings of digits; check values hex;
 * - a PIN or MAC that does not verify is a value (`{ ok: false }`, `false`), never an exception: the
 *   services map it to response code 55 (incorrect PIN) or A0 (MAC failure);
 * - every other failure rejects with an `HsmError` whose `reply` is the payShield error code (in process
 *   the HsmError of the operation; over TCP `HSM_REPLY_ERROR` with the code the HSM answered).
 *
 * docs/hsm.md has each command's fields and error codes.
 */
import type { Diagnostics, GenerateKeyRequest, KeyUnderLmk } from './hsm.js';
import type { KeyType } from './keytypes.js';

/** ISO 9564-1 PIN block formats the HSM translates and verifies (2 is for ICC offline PIN only). */
export type PinBlockFormatCode = 0 | 1 | 3 | 4;
/** Zone keys exchanged with another network party under a ZMK. */
export type ZoneKeyType = 'ZPK' | 'ZAK' | 'ZEK';
/** DUKPT: ANSI X9.24-1:2009 (TDES) or ANSI X9.24-3:2017 (AES). */
export type DukptScheme = 'tdes' | 'aes';
/**
 * MAC algorithms of M6/M8 and the key usage each needs: ISO 9797-1 algorithm 1 (usage M1), algorithm 3
 * / ANSI X9.19 (M3), CMAC (M6, TDES or AES), the UnionPay POS ECB MAC (a 16-byte TDES M1 or M3 key).
 */
export type HsmMacAlgorithm = 'iso9797-1-1' | 'iso9797-1-3' | 'cmac' | 'cup-ecb';
/** Terminal-side keys HC generates under a TMK. */
export type TerminalKeyType = 'TMK' | 'TPK' | 'TAK' | 'TDK';
/**
 * Padding of M0/M2 data: ISO/IEC 9797-1 padding method 2 (0x80 then zeros to the block; always at least
 * one byte, so it is removed unambiguously and checked on decrypt), or none (whole blocks only).
 */
export type DataPadding = 'iso9797-1-pad2' | 'none';

/** A0 request; with `exportUnder` (a ZMK or TMK key block) the key also comes back as TR-31 under it. */
export interface GenerateKeyOptions extends GenerateKeyRequest {
  exportUnder?: string;
}

export interface GeneratedKey extends KeyUnderLmk {
  /** TR-31 key block under `exportUnder`, when it was given. */
  exported?: string;
}

export interface ImportKeyRequest {
  /** The ZMK (or TMK) key block under the LMK that the TR-31 block is wrapped under. */
  kek: string;
  /** TR-31 key block (version B or D) as received from the other party. */
  tr31: string;
  /** What the key is here: its TR-31 usage must be one this key type takes. */
  keyType: KeyType;
}

export interface ExportKeyRequest {
  /** ZMK or TMK key block under the LMK (usage K0, mode B or E). */
  kek: string;
  /** Key block under the LMK of the key to export (exportability E). */
  keyBlock: string;
}

export interface ExportedKey {
  /** TR-31 key block under the KEK: version B for a TDES KEK, D for an AES KEK. */
  tr31: string;
  /** Check value of the key, 6 hex. */
  checkValue: string;
}

/** One working key of a terminal sign-in. */
export interface TerminalKey {
  /** The POSP's copy: key block under the LMK. */
  keyBlock: string;
  /** The key TDES-ECB encrypted under the terminal's TMK, 32 hex (as it goes in field 62). */
  underTmk: string;
  /** Encrypt-zeros check value, 4 bytes = 8 hex (the UnionPay sign-in check value). */
  checkValue: string;
}

/** The UnionPay sign-in keys: PIK (TPK), MAK (TAK), TDK. */
export interface TerminalWorkingKeys {
  tpk: TerminalKey;
  tak: TerminalKey;
  tdk: TerminalKey;
}

export interface ZoneKey {
  /** Key block under the LMK. */
  keyBlock: string;
  /** TR-31 key block under the ZMK (for the other party). */
  underZmk: string;
  /** 6 hex. */
  checkValue: string;
}

/** The PIN block part of a PIN command. */
export interface PinBlockIn {
  /** Encrypted PIN block: 8 bytes (formats 0, 1, 3; TDES) or 16 bytes (format 4; AES). */
  pinBlock: Uint8Array;
  format: PinBlockFormatCode;
  /** The card's PAN (digits): needed by formats 0, 3 and 4 and by every verification. */
  pan?: string;
}

export interface TranslatePinTpkToZpkRequest extends PinBlockIn {
  /** Source: the terminal's PIN key (TPK / PIK). */
  tpk: string;
  /** Destination zone PIN key. */
  zpk: string;
  formatOut: PinBlockFormatCode;
}

export interface TranslatePinZpkToZpkRequest extends PinBlockIn {
  zpkIn: string;
  zpkOut: string;
  formatOut: PinBlockFormatCode;
}

export interface TranslatePinDukptToZpkRequest extends PinBlockIn {
  scheme: DukptScheme;
  /** Base derivation key (usage B0): TDES 16 bytes for TDES DUKPT; AES (or TDES) for AES DUKPT. */
  bdk: string;
  /** 10 bytes (TDES DUKPT) or 12 bytes (AES DUKPT). */
  ksn: Uint8Array;
  zpk: string;
  formatOut: PinBlockFormatCode;
}

export interface VerifyPinIbm3624Request extends PinBlockIn {
  /** The key the PIN block is under: a TPK (DA) or a ZPK (EA). */
  pinKey: string;
  /** PIN verification key, usage V1 (IBM 3624). */
  pvk: string;
  /** 16 decimal digits. */
  decimalisationTable: string;
  /** 16 hex digits (see `selectValidationDataIbm3624` of the crypto package). */
  validationData: string;
  /** 4 to 12 digits; its length is the PIN length checked. */
  offset: string;
}

export interface VerifyPinPvvRequest extends PinBlockIn {
  /** A TPK (DC) or a ZPK (EC). */
  pinKey: string;
  /** PIN verification key, usage V2 (Visa PVV). */
  pvk: string;
  /** PIN verification key index, 1 digit. */
  pvki: string;
  /** 4 digits. */
  pvv: string;
}

export type GenerateIbm3624OffsetRequest = Omit<VerifyPinIbm3624Request, 'offset'>;
export type GeneratePvvRequest = Omit<VerifyPinPvvRequest, 'pvv'>;

export interface PinVerification {
  ok: boolean;
}

export interface MacRequest {
  /** A TAK or ZAK key block (usage M1, M3 or M6 as the algorithm needs; mode C or G to generate, C or V to verify). */
  key: string;
  algorithm: HsmMacAlgorithm;
  data: Uint8Array;
  /** ISO 9797-1 padding method for algorithms 1 and 3 (default 1); not for cmac and cup-ecb. */
  padding?: 1 | 2 | 3;
  /** MAC length in bytes (4 to the block size; cup-ecb: 4 to 8 ASCII characters). Default the full MAC. */
  length?: number;
}

export interface VerifyMacRequest extends MacRequest {
  mac: Uint8Array;
}

export interface EncryptDataRequest {
  /** A data key block under the LMK: usage D0 (DEK, TDK, ZEK), mode of use B or E; TDES or AES. */
  key: string;
  /** Clear data: 1 to 32000 bytes; with padding 'none' a multiple of the block (8 bytes TDES, 16 AES). */
  data: Uint8Array;
  /** CBC initial vector, one block (8 bytes TDES, 16 AES). Omitted: the HSM generates a random one. */
  iv?: Uint8Array;
  /** Default 'iso9797-1-pad2'. */
  padding?: DataPadding;
}

export interface EncryptedData {
  /** The IV the data was encrypted with (the caller's, or the one the HSM generated): keep it with the ciphertext. */
  iv: Uint8Array;
  /** CBC ciphertext, whole blocks. */
  ciphertext: Uint8Array;
}

export interface DecryptDataRequest {
  /** A data key block under the LMK: usage D0, mode of use B or D. */
  key: string;
  /** The IV `encryptData` returned: one block. */
  iv: Uint8Array;
  /** Whole blocks: at most 32000 bytes with padding 'none', 32000 plus one block with method 2. */
  ciphertext: Uint8Array;
  /** The padding the data was encrypted with; default 'iso9797-1-pad2'. */
  padding?: DataPadding;
}

export interface DeriveDukptInitialKeyRequest {
  scheme: DukptScheme;
  /** Base derivation key (usage B0). */
  bdk: string;
  /** The device's initial KSN: 10 bytes (TDES) or 12 bytes (AES); the counter bits are ignored. */
  ksn: Uint8Array;
  /** A TMK/ZMK/KEK key block to export the initial key under as TR-31 (usage B1); else only under the LMK. */
  exportUnder?: string;
}

export interface DukptInitialKey {
  /** Key block under the LMK (usage B1, mode X). */
  keyBlock: string;
  checkValue: string;
  /** TR-31 block under `exportUnder`, when given. */
  exported?: string;
}

/** The asynchronous HSM interface the network services program against. */
export interface HsmApi {
  /** NC: LMK check value and firmware version. */
  diagnostics(): Promise<Diagnostics>;
  /** BU: check value (6 hex) of a key block under the LMK. */
  keyCheckValue(keyBlock: string): Promise<string>;
  /** A0: generate a key under the LMK; A0 mode 1 also returns it as TR-31 under `exportUnder`. */
  generateKey(req: GenerateKeyOptions): Promise<GeneratedKey>;
  /** A6: import a key from a TR-31 block under a ZMK/TMK; returns it under the LMK. */
  importKeyFromZmk(req: ImportKeyRequest): Promise<KeyUnderLmk>;
  /** A8: export a key under a ZMK or TMK as a TR-31 block (B for a TDES KEK, D for an AES KEK). */
  exportKeyUnderKek(req: ExportKeyRequest): Promise<ExportedKey>;
  /** HC: a new TMK/TPK/TAK/TDK, under the current TMK (TDES-ECB, hex) and under the LMK. */
  generateTerminalKey(tmk: string, keyType: TerminalKeyType): Promise<TerminalKey>;
  /** WK (ours): the UnionPay sign-in: new TPK, TAK and TDK under the terminal's TMK and the LMK. */
  generateTerminalWorkingKeys(tmk: string): Promise<TerminalWorkingKeys>;
  /** FI (payShield FI ZAK/ZEK, IA ZPK): a new zone key under the LMK and under the ZMK (TR-31). */
  generateZoneKey(zmk: string, keyType: ZoneKeyType): Promise<ZoneKey>;
  /** FA: import a zone key from a TR-31 block under the ZMK. */
  importZoneKey(zmk: string, keyType: ZoneKeyType, tr31: string): Promise<KeyUnderLmk>;
  /** CA: translate a PIN block from a TPK to a ZPK. */
  translatePinTpkToZpk(req: TranslatePinTpkToZpkRequest): Promise<Uint8Array>;
  /** CC: translate a PIN block from one ZPK to another. */
  translatePinZpkToZpk(req: TranslatePinZpkToZpkRequest): Promise<Uint8Array>;
  /** G0 (TDES or AES DUKPT; CI for TDES DUKPT): translate a PIN block from a DUKPT key to a ZPK. */
  translatePinDukptToZpk(req: TranslatePinDukptToZpkRequest): Promise<Uint8Array>;
  /** DA (TPK) / EA (ZPK): verify a PIN against its IBM 3624 offset. */
  verifyPinIbm3624(req: VerifyPinIbm3624Request): Promise<PinVerification>;
  /** DC (TPK) / EC (ZPK): verify a PIN against its Visa PVV. */
  verifyPinPvv(req: VerifyPinPvvRequest): Promise<PinVerification>;
  /** BK: the IBM 3624 offset of a customer-selected PIN (PIN block under a TPK or ZPK). */
  generateIbm3624Offset(req: GenerateIbm3624OffsetRequest): Promise<{ offset: string }>;
  /** FW: the Visa PVV of a customer-selected PIN (PIN block under a TPK or ZPK). */
  generatePvv(req: GeneratePvvRequest): Promise<{ pvv: string }>;
  /** M6: generate a MAC under a TAK/ZAK. */
  generateMac(req: MacRequest): Promise<Uint8Array>;
  /** M8: verify a MAC under a TAK/ZAK: `false` when it does not verify. */
  verifyMac(req: VerifyMacRequest): Promise<boolean>;
  /** IK (ours): derive a DUKPT initial key (IPEK / IK) from a BDK and KSN, for loading readers. */
  deriveDukptInitialKey(req: DeriveDukptInitialKeyRequest): Promise<DukptInitialKey>;
  /** M0: encrypt data (CBC) under a data key (usage D0, mode B or E); returns the IV with the ciphertext. */
  encryptData(req: EncryptDataRequest): Promise<EncryptedData>;
  /** M2: decrypt data (CBC) under a data key (usage D0, mode B or D); method 2 padding is checked and removed. */
  decryptData(req: DecryptDataRequest): Promise<Uint8Array>;
}
