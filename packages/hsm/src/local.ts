/**
 * `LocalHsm`: the in-process `Hsm` behind the asynchronous `HsmApi`, so that a service written against
 * `HsmApi` runs the same with the HSM in its own process (tests, single-process deployments) as with
 * `HsmClient` over TCP. Each call runs synchronously and settles its promise: a thrown HsmError becomes
 * a rejection, a PIN or MAC that does not verify a resolved `{ ok: false }` / `false`.
 */
import type {
  DecryptDataRequest,
  DeriveDukptInitialKeyRequest,
  DukptInitialKey,
  EncryptDataRequest,
  EncryptedData,
  ExportedKey,
  ExportKeyRequest,
  GenerateIbm3624OffsetRequest,
  GeneratedKey,
  GenerateKeyOptions,
  GeneratePvvRequest,
  HsmApi,
  ImportKeyRequest,
  MacRequest,
  PinVerification,
  TerminalKey,
  TerminalKeyType,
  TerminalWorkingKeys,
  TranslatePinDukptToZpkRequest,
  TranslatePinTpkToZpkRequest,
  TranslatePinZpkToZpkRequest,
  VerifyMacRequest,
  VerifyPinIbm3624Request,
  VerifyPinPvvRequest,
  ZoneKey,
  ZoneKeyType,
} from './api.js';
import type { Diagnostics, Hsm, KeyUnderLmk } from './hsm.js';

const settle = <T>(fn: () => T): Promise<T> => {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e);
  }
};

export class LocalHsm implements HsmApi {
  readonly hsm: Hsm;
  /** Who the audit log names for key-management calls made through this adapter. */
  readonly who: string;

  constructor(hsm: Hsm, opts: { who?: string } = {}) {
    this.hsm = hsm;
    this.who = opts.who ?? 'api';
  }

  diagnostics(): Promise<Diagnostics> {
    return settle(() => this.hsm.diagnostics());
  }
  keyCheckValue(keyBlock: string): Promise<string> {
    return settle(() => this.hsm.keyCheckValue(keyBlock));
  }
  generateKey(req: GenerateKeyOptions): Promise<GeneratedKey> {
    return settle(() => this.hsm.generateKey(req, this.who));
  }
  importKeyFromZmk(req: ImportKeyRequest): Promise<KeyUnderLmk> {
    return settle(() => this.hsm.importKeyFromZmk(req, this.who));
  }
  exportKeyUnderKek(req: ExportKeyRequest): Promise<ExportedKey> {
    return settle(() => this.hsm.exportKeyUnderKek(req, this.who));
  }
  generateTerminalKey(tmk: string, keyType: TerminalKeyType): Promise<TerminalKey> {
    return settle(() => this.hsm.generateTerminalKey(tmk, keyType, this.who));
  }
  generateTerminalWorkingKeys(tmk: string): Promise<TerminalWorkingKeys> {
    return settle(() => this.hsm.generateTerminalWorkingKeys(tmk, this.who));
  }
  generateZoneKey(zmk: string, keyType: ZoneKeyType): Promise<ZoneKey> {
    return settle(() => this.hsm.generateZoneKey(zmk, keyType, this.who));
  }
  importZoneKey(zmk: string, keyType: ZoneKeyType, tr31: string): Promise<KeyUnderLmk> {
    return settle(() => this.hsm.importZoneKey(zmk, keyType, tr31, this.who));
  }
  translatePinTpkToZpk(req: TranslatePinTpkToZpkRequest): Promise<Uint8Array> {
    return settle(() => this.hsm.translatePinTpkToZpk(req));
  }
  translatePinZpkToZpk(req: TranslatePinZpkToZpkRequest): Promise<Uint8Array> {
    return settle(() => this.hsm.translatePinZpkToZpk(req));
  }
  translatePinDukptToZpk(req: TranslatePinDukptToZpkRequest): Promise<Uint8Array> {
    return settle(() => this.hsm.translatePinDukptToZpk(req));
  }
  verifyPinIbm3624(req: VerifyPinIbm3624Request): Promise<PinVerification> {
    return settle(() => this.hsm.verifyPinIbm3624(req));
  }
  verifyPinPvv(req: VerifyPinPvvRequest): Promise<PinVerification> {
    return settle(() => this.hsm.verifyPinPvv(req));
  }
  generateIbm3624Offset(req: GenerateIbm3624OffsetRequest): Promise<{ offset: string }> {
    return settle(() => this.hsm.generateIbm3624Offset(req));
  }
  generatePvv(req: GeneratePvvRequest): Promise<{ pvv: string }> {
    return settle(() => this.hsm.generatePvv(req));
  }
  generateMac(req: MacRequest): Promise<Uint8Array> {
    return settle(() => this.hsm.generateMac(req));
  }
  verifyMac(req: VerifyMacRequest): Promise<boolean> {
    return settle(() => this.hsm.verifyMac(req));
  }
  deriveDukptInitialKey(req: DeriveDukptInitialKeyRequest): Promise<DukptInitialKey> {
    return settle(() => this.hsm.deriveDukptInitialKey(req, this.who));
  }
  encryptData(req: EncryptDataRequest): Promise<EncryptedData> {
    return settle(() => this.hsm.encryptData(req));
  }
  decryptData(req: DecryptDataRequest): Promise<Uint8Array> {
    return settle(() => this.hsm.decryptData(req));
  }
}
