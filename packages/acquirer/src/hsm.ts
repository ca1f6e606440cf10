/**
 * What the POSP asks of the HSM: the seven operations of `HsmApi` (packages/hsm/src/api.ts) it uses,
 * declared here structurally so that `LocalHsm`, `HsmClient` or any other `HsmApi` fits as it is.
 * Keys are HSM key blocks under the LMK; the POSP never sees a clear key or a clear PIN.
 */

export interface AcquirerTerminalKey {
  /** The POSP's copy: key block under the LMK. */
  keyBlock: string;
  /** TDES-ECB under the terminal's TMK, 32 hex: what goes in field 62. */
  underTmk: string;
  /** 8 hex: encrypt-zeros check value (the UnionPay sign-in check value). */
  checkValue: string;
}

export interface AcquirerHsm {
  /** BU: check value of a key block (refuses a block under another LMK or altered). */
  keyCheckValue(keyBlock: string): Promise<string>;
  /** The UnionPay sign-in: new TPK, TAK and TDK under the terminal's TMK and under the LMK. */
  generateTerminalWorkingKeys(
    tmk: string,
  ): Promise<{ tpk: AcquirerTerminalKey; tak: AcquirerTerminalKey; tdk: AcquirerTerminalKey }>;
  /** CA: PIN block from the TPK to the ZPK. */
  translatePinTpkToZpk(req: {
    pinBlock: Uint8Array;
    format: 0 | 1 | 3 | 4;
    pan?: string;
    tpk: string;
    zpk: string;
    formatOut: 0 | 1 | 3 | 4;
  }): Promise<Uint8Array>;
  /** M6 */
  generateMac(req: {
    key: string;
    algorithm: 'iso9797-1-1' | 'iso9797-1-3' | 'cmac' | 'cup-ecb';
    data: Uint8Array;
    padding?: 1 | 2 | 3;
    length?: number;
  }): Promise<Uint8Array>;
  /** M0: data encrypted under a data key (D0), CBC; the HSM draws the IV unless one is given. */
  encryptData(req: {
    key: string;
    data: Uint8Array;
    iv?: Uint8Array;
    padding?: 'iso9797-1-pad2' | 'none';
  }): Promise<{ iv: Uint8Array; ciphertext: Uint8Array }>;
  /** M2: the inverse of M0. */
  decryptData(req: {
    key: string;
    iv: Uint8Array;
    ciphertext: Uint8Array;
    padding?: 'iso9797-1-pad2' | 'none';
  }): Promise<Uint8Array>;
  /** M8: false when the MAC does not verify. */
  verifyMac(req: {
    key: string;
    algorithm: 'iso9797-1-1' | 'iso9797-1-3' | 'cmac' | 'cup-ecb';
    data: Uint8Array;
    mac: Uint8Array;
    padding?: 1 | 2 | 3;
    length?: number;
  }): Promise<boolean>;
}

/** True when `o` has every operation the POSP needs (a config given an object checks it with this). */
export function isAcquirerHsm(o: unknown): o is AcquirerHsm {
  if (typeof o !== 'object' || o === null) return false;
  const h = o as Record<string, unknown>;
  return [
    'keyCheckValue',
    'generateTerminalWorkingKeys',
    'translatePinTpkToZpk',
    'generateMac',
    'verifyMac',
    'encryptData',
    'decryptData',
  ].every((m) => typeof h[m] === 'function');
}
