/**
 * The demo network's fixed test cards, institutions and terminals. Test data only: these PANs and
 * PINs are published here and in the README so that anyone can drive `posp terminal` against a demo
 * network; they are never written into the network's directory (the issuers hold PAN tokens and
 * masked PANs, the PIN only as an IBM 3624 offset or a Visa PVV computed inside the HSM).
 */

/** ISO/IEC 7812-1 annex B: the Luhn check digit of `body`. */
export function luhnDigit(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    let d = body.charCodeAt(body.length - 1 - i) - 48;
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return String((10 - (sum % 10)) % 10);
}

const pan = (body15: string): string => `${body15}${luhnDigit(body15)}`;

export type DemoCardRole = 'ok' | 'low-funds' | 'expired' | 'limit' | 'pin-tries' | 'pvv' | 'unknown-bin';

export interface DemoCard {
  role: DemoCardRole;
  /** Issuer id, or undefined for a card no issuer has (no route: 14). */
  issuer: string | undefined;
  pan: string;
  /** YYMM. */
  expiry: string;
  serviceCode: string;
  pin: string;
  pinMethod: 'ibm3624' | 'pvv';
  balanceMinor: number;
  limitMinor?: number;
  /** What this card is for in the demo and the tests. */
  note: string;
}

export const ACQUIRER_ID = '48020000';
export const SWITCH_INSTITUTION_ID = '49990000';
export const SETTLEMENT_ACCOUNT_ID = 'clearing-switch';

export interface DemoIssuer {
  id: string;
  name: string;
  /** Routing entries (switch routing file). */
  routes: ({ prefix: string } | { low: string; high: string })[];
  pinMethod: 'ibm3624' | 'pvv';
}

export const DEMO_ISSUERS: readonly DemoIssuer[] = [
  { id: 'bank-a', name: 'Bank A', routes: [{ prefix: '622202' }], pinMethod: 'ibm3624' },
  { id: 'bank-b', name: 'Bank B', routes: [{ low: '62170000', high: '62170099' }], pinMethod: 'pvv' },
];

export interface DemoTerminal {
  terminalId: string;
  merchantId: string;
  merchantName: string;
}

export const DEMO_TERMINALS: readonly DemoTerminal[] = [
  { terminalId: 'POS00001', merchantId: '898310012340001', merchantName: 'OPENPOSP COFFEE' },
  { terminalId: 'POS00002', merchantId: '898310012340001', merchantName: 'OPENPOSP COFFEE' },
  { terminalId: 'POS00003', merchantId: '898310012340002', merchantName: 'OPENPOSP BOOKS' },
];

/** Far enough in the future for any demo run; the expired card's date is in the past. */
const VALID = '3012';

export const DEMO_CARDS: readonly DemoCard[] = [
  {
    role: 'ok',
    issuer: 'bank-a',
    pan: pan('622202000000001'),
    expiry: VALID,
    serviceCode: '101',
    pin: '123456',
    pinMethod: 'ibm3624',
    balanceMinor: 1_000_000,
    note: 'Bank A, 10000.00, PIN 123456 (IBM 3624 offset)',
  },
  {
    role: 'low-funds',
    issuer: 'bank-a',
    pan: pan('622202000000002'),
    expiry: VALID,
    serviceCode: '101',
    pin: '246810',
    pinMethod: 'ibm3624',
    balanceMinor: 500,
    note: 'Bank A, 5.00 only: a purchase above it is declined 51',
  },
  {
    role: 'expired',
    issuer: 'bank-a',
    pan: pan('622202000000003'),
    expiry: '2001',
    serviceCode: '101',
    pin: '135790',
    pinMethod: 'ibm3624',
    balanceMinor: 100_000,
    note: 'Bank A, expired 2020-01: declined 54',
  },
  {
    role: 'limit',
    issuer: 'bank-a',
    pan: pan('622202000000004'),
    expiry: VALID,
    serviceCode: '101',
    pin: '975310',
    pinMethod: 'ibm3624',
    balanceMinor: 1_000_000,
    limitMinor: 50_000,
    note: 'Bank A, per-transaction limit 500.00: above it declined 61',
  },
  {
    role: 'pin-tries',
    issuer: 'bank-a',
    pan: pan('622202000000005'),
    expiry: VALID,
    serviceCode: '101',
    pin: '864209',
    pinMethod: 'ibm3624',
    balanceMinor: 100_000,
    note: 'Bank A: three wrong PINs block it (75)',
  },
  {
    role: 'pvv',
    issuer: 'bank-b',
    pan: pan('621700000000006'),
    expiry: VALID,
    serviceCode: '101',
    pin: '2468',
    pinMethod: 'pvv',
    balanceMinor: 500_000,
    note: 'Bank B, 5000.00, PIN 2468 (Visa PVV)',
  },
  {
    role: 'unknown-bin',
    issuer: undefined,
    pan: pan('400000123456789'),
    expiry: VALID,
    serviceCode: '101',
    pin: '1234',
    pinMethod: 'ibm3624',
    balanceMinor: 0,
    note: 'no issuer has this BIN: declined 14 by the switch',
  },
];

export function demoCard(role: DemoCardRole): DemoCard {
  return DEMO_CARDS.find((c) => c.role === role)!;
}

/** ISO/IEC 7813 track 2 of a demo card: PAN = YYMM service code, discretionary data. */
export function track2Of(c: DemoCard): string {
  return `${c.pan}=${c.expiry}${c.serviceCode}0000000000`;
}
