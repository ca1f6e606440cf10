/**
 * The key types of a POS network (DOMAIN.md "Key hierarchy") and the TR-31 attributes each gets in
 * its key block under the LMK. The names are payShield's key type mnemonics; the usage codes are
 * X9.143 / TR-31's. The first usage listed for an algorithm is the default; an A0 request may choose
 * another one from the list (e.g. a PVK for IBM 3624 instead of Visa PVV).
 */
import { HsmError } from './errors.js';
import type { Exportability, KeyAlgorithm, KeyUsage, ModeOfUse } from './keystore.js';

export interface KeyTypeSpec {
  description: string;
  /** Usages allowed per algorithm; the first is the default. An empty list: algorithm not allowed. */
  usages: Readonly<Record<KeyAlgorithm, readonly KeyUsage[]>>;
  /** Exportability a generated key gets unless the request says otherwise; E when omitted. */
  exportability?: Exportability;
}

export const KEY_TYPES = {
  TMK: { description: 'terminal master key (key-encrypting)', usages: { T: ['K0'], A: ['K0'] } },
  ZMK: { description: 'zone master key (key-encrypting)', usages: { T: ['K0'], A: ['K0'] } },
  TPK: { description: 'terminal PIN key (PIK)', usages: { T: ['P0'], A: ['P0'] } },
  ZPK: { description: 'zone PIN key', usages: { T: ['P0'], A: ['P0'] } },
  TAK: { description: 'terminal MAC key (MAK)', usages: { T: ['M3', 'M1', 'M6'], A: ['M6'] } },
  ZAK: { description: 'zone MAC key', usages: { T: ['M3', 'M1', 'M6'], A: ['M6'] } },
  TDK: { description: 'terminal data (track) key', usages: { T: ['D0'], A: ['D0'] } },
  ZEK: { description: 'zone data encryption key', usages: { T: ['D0'], A: ['D0'] } },
  // A host's own key for data at rest (a PAN in its database, PCI DSS 3.5): shared with no one, so it is
  // not exportable unless the A0 request asks for E.
  DEK: {
    description: 'data encryption key for data at rest (not exportable by default)',
    usages: { T: ['D0'], A: ['D0'] },
    exportability: 'N',
  },
  // Visa PVV and IBM 3624 are defined over DES/TDES only.
  PVK: { description: 'PIN verification key (Visa PVV, or IBM 3624)', usages: { T: ['V2', 'V1'], A: [] } },
  BDK: { description: 'DUKPT base derivation key (TDES or AES DUKPT)', usages: { T: ['B0'], A: ['B0'] } },
} as const satisfies Record<string, KeyTypeSpec>;

export type KeyType = keyof typeof KEY_TYPES;

/** The mode of use a freshly generated key of each usage gets unless the request says otherwise. */
export const DEFAULT_MODE_BY_USAGE: Readonly<Record<KeyUsage, ModeOfUse>> = {
  B0: 'X',
  B1: 'X',
  D0: 'B',
  K0: 'B',
  M1: 'C',
  M3: 'C',
  M6: 'C',
  P0: 'B',
  V1: 'C',
  V2: 'C',
};

/** The exportability a generated key of `type` gets by default (E, or the key type's own). */
export function defaultExportability(type: KeyType): Exportability {
  return (KEY_TYPES[type] as KeyTypeSpec).exportability ?? 'E';
}

export function isKeyType(s: string): s is KeyType {
  return Object.hasOwn(KEY_TYPES, s);
}

/** The usages `type` allows with `algorithm`; HSM_KEY_TYPE / HSM_KEY_ALGORITHM when none. */
export function usagesFor(type: string, algorithm: KeyAlgorithm, field = 'keyType'): readonly KeyUsage[] {
  if (!isKeyType(type)) {
    throw new HsmError(
      'HSM_KEY_TYPE',
      field,
      `unknown key type (expected ${Object.keys(KEY_TYPES).join(', ')})`,
    );
  }
  const list = (KEY_TYPES[type].usages as Record<string, readonly KeyUsage[] | undefined>)[algorithm];
  if (list === undefined || list.length === 0) {
    throw new HsmError(
      'HSM_KEY_ALGORITHM',
      'algorithm',
      `key type ${type} does not exist for algorithm ${algorithm}`,
    );
  }
  return list;
}
