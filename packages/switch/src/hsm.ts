/**
 * The HSM operations the switch uses, as a structural subset of `HsmApi` (packages/hsm/src/api.ts):
 * BU (check a configured key block at start), CC (translate a PIN block between zone PIN keys), M6 and
 * M8 (generate and verify a MAC). `LocalHsm` and `HsmClient` both satisfy it; naming only these four
 * keeps the switch's use of the HSM visible in one place.
 */

export type SwitchPinFormat = 0 | 1 | 3 | 4;
export type SwitchMacAlgorithm = 'iso9797-1-1' | 'iso9797-1-3' | 'cmac' | 'cup-ecb';

export interface SwitchMacRequest {
  key: string;
  algorithm: SwitchMacAlgorithm;
  data: Uint8Array;
  padding?: 1 | 2 | 3;
  length?: number;
}

export interface SwitchHsm {
  /** BU: check value of a key block under the LMK. */
  keyCheckValue(keyBlock: string): Promise<string>;
  /** CC: PIN block from one ZPK to another. */
  translatePinZpkToZpk(req: {
    pinBlock: Uint8Array;
    format: SwitchPinFormat;
    pan?: string;
    zpkIn: string;
    zpkOut: string;
    formatOut: SwitchPinFormat;
  }): Promise<Uint8Array>;
  /** M6. */
  generateMac(req: SwitchMacRequest): Promise<Uint8Array>;
  /** M8: false when the MAC does not verify. */
  verifyMac(req: SwitchMacRequest & { mac: Uint8Array }): Promise<boolean>;
}
