/**
 * Reconciliation (對賬, issue 6 §4): the acquirer's, the switch's and every issuer's clearing records of
 * one date joined by transaction identity (acquirer 32, terminal 41, STAN 11, local date 13) and type,
 * every disagreement classified, and each class given its resolution rule (README.md, "Classes").
 *
 * Pure: records in, findings out; nothing is read, written or sent here. The money question for each
 * financial transaction is "does it stand?" at each side: at the acquirer (will the merchant be paid
 * for it?) and at the issuer (was the cardholder's account moved by it?). When both sides agree the
 * transaction is matched, whatever the switch says; when they disagree the class says which side
 * yields: the acquirer's failure (no slip printed, or the terminal reversed it) makes the issuer undo
 * its side (refund); the issuer's "no" keeps the merchant from being paid for it (exclude); an amount
 * the two sides disagree on is settled at the issuer's amount, which is what the cardholder paid
 * (confirm).
 */
import type { ClearingFile, ClearingRecord, ClearingState, ClearingType } from './record.js';

/** The classes of mismatch and their resolution rule (README.md "Classes" is the same table). */
export const MISMATCH_CLASSES = {
  'issuer-debited-acquirer-failed': {
    resolution: 'refund',
    meaning:
      "the issuer approved (money moved) but the acquirer has no approval: unknown, declined, refused or no record (the seed's failures (a)/(b): money taken, no slip)",
  },
  'reversed-one-side': {
    resolution: 'refund',
    meaning:
      'the acquirer reversed it (the terminal reversal, or one owed in store and forward) but it still stands at the issuer',
  },
  'acquirer-approved-issuer-missing': {
    resolution: 'exclude',
    meaning: 'the acquirer (and switch) say approved but the issuer has no record of it or declined it',
  },
  'issuer-reversed-acquirer-approved': {
    resolution: 'exclude',
    meaning:
      'the issuer reversed it (its money is back with the cardholder) but the acquirer still counts it approved',
  },
  'amount-mismatch': {
    resolution: 'confirm',
    meaning: 'both sides approved it, with different amounts',
  },
  'switch-missing': {
    resolution: 'none',
    meaning:
      'the issuer has it but the switch has no record (every request reaches the issuer through the switch): informational',
  },
  'switch-state-differs': {
    resolution: 'none',
    meaning:
      'acquirer and issuer agree, the switch recorded another outcome (e.g. 91 after a late issuer answer): informational',
  },
  'issuer-ambiguous': {
    resolution: 'none',
    meaning: 'more than one issuer has a record of this identity: reported for an operator, nothing is done',
  },
} as const;

export type MismatchClass = keyof typeof MISMATCH_CLASSES;
export type ResolutionAction = 'refund' | 'confirm' | 'exclude' | 'none';

export interface Identity {
  acquirerId: string;
  terminalId: string;
  stan: string;
  localDate: string;
}

/** What one party knows of the transaction. */
export interface PartyView {
  party: string;
  state: ClearingState | 'missing';
  responseCode: string;
  amountMinor: number | null;
  /** The state of this party's reversal record of the identity, if it has one. */
  reversal?: ClearingState;
}

export type Resolution =
  | {
      action: 'refund';
      /** The issuer undoes its side: a reversal (0420) of this identity at this issuer. */
      reversal: { issuer: string; identity: Identity; type: ClearingType; amountMinor: number; rrn: string };
    }
  | { action: 'confirm'; party: 'acquirer'; amountMinor: number }
  | { action: 'exclude'; party: 'acquirer' }
  | { action: 'none' };

export interface Mismatch {
  class: MismatchClass;
  identity: Identity;
  type: ClearingType;
  rrn: string;
  parties: { acquirer: PartyView; switch: PartyView; issuer: PartyView };
  resolution: Resolution;
}

export interface Matched {
  identity: Identity;
  type: ClearingType;
  rrn: string;
  /** `stands`: approved at both sides (same amount); `void`: stands at neither (no money moved). */
  outcome: 'stands' | 'void';
  amountMinor: number;
}

export interface ReconcileResult {
  matched: Matched[];
  mismatches: Mismatch[];
  /** Records per party read. */
  records: Record<string, number>;
}

/** Leading zeros of an institution id are padding (field 90.4 is 11 digits, field 32 LLVAR). */
export function normalizeInstitutionId(id: string): string {
  const s = id.replace(/^0+/, '');
  return s === '' ? '0' : s;
}

const identityKey = (r: ClearingRecord) =>
  `${normalizeInstitutionId(r.acquirerId)}|${r.terminalId}|${r.stan}|${r.localDate}`;

/** A party's duplicate records of one (identity, type) collapse to the most definitive one. */
const RANK: Record<ClearingState, number> = { approved: 4, reversed: 4, unknown: 3, declined: 2, refused: 1 };

interface Slot {
  acquirer?: ClearingRecord;
  switch?: ClearingRecord;
  /** issuer party -> record */
  issuers: Map<string, ClearingRecord>;
}

function put(slot: Slot, r: ClearingRecord): void {
  const better = (prev: ClearingRecord | undefined) =>
    prev === undefined || RANK[r.state] >= RANK[prev.state];
  if (r.party === 'acquirer') {
    if (better(slot.acquirer)) slot.acquirer = r;
  } else if (r.party === 'switch') {
    if (better(slot.switch)) slot.switch = r;
  } else if (better(slot.issuers.get(r.party))) slot.issuers.set(r.party, r);
}

const view = (party: string, r: ClearingRecord | undefined, rev: ClearingRecord | undefined): PartyView => ({
  party,
  state: r?.state ?? 'missing',
  responseCode: r?.responseCode ?? '',
  amountMinor: r?.amountMinor ?? null,
  ...(rev === undefined ? {} : { reversal: rev.state }),
});

/**
 * Joins the files and classifies every financial transaction (purchase, void, refund) of them.
 * Reversal records are not transactions of their own here: they tell whether their party undid the
 * transaction of the same identity. A reversal with no transaction anywhere (a terminal reversing a
 * request that never arrived) moves no money and is neither matched nor a mismatch.
 */
export function reconcile(files: readonly ClearingFile[]): ReconcileResult {
  const groups = new Map<string, Map<ClearingType, Slot>>();
  const records: Record<string, number> = {};
  for (const f of files) {
    records[f.party] = (records[f.party] ?? 0) + f.records.length;
    for (const r of f.records) {
      const key = identityKey(r);
      let g = groups.get(key);
      if (g === undefined) {
        g = new Map();
        groups.set(key, g);
      }
      let slot = g.get(r.type);
      if (slot === undefined) {
        slot = { issuers: new Map() };
        g.set(r.type, slot);
      }
      put(slot, r);
    }
  }
  const matched: Matched[] = [];
  const mismatches: Mismatch[] = [];
  for (const key of [...groups.keys()].sort()) {
    const g = groups.get(key)!;
    const rev = g.get('reversal') ?? { issuers: new Map<string, ClearingRecord>() };
    for (const type of ['purchase', 'void', 'refund'] as const) {
      const slot = g.get(type);
      if (slot !== undefined) classify(type, slot, rev, matched, mismatches);
    }
  }
  return { matched, mismatches, records };
}

function classify(type: ClearingType, slot: Slot, rev: Slot, matched: Matched[], out: Mismatch[]): void {
  const any = slot.acquirer ?? slot.switch ?? [...slot.issuers.values()][0]!;
  const identity: Identity = {
    acquirerId: slot.acquirer?.acquirerId ?? any.acquirerId,
    terminalId: any.terminalId,
    stan: any.stan,
    localDate: any.localDate,
  };
  const rrn = slot.acquirer?.rrn || slot.switch?.rrn || any.rrn;
  const issuerParties = [...new Set([...slot.issuers.keys(), ...rev.issuers.keys()])].sort();
  const issuerParty = [...slot.issuers.keys()].sort()[0] ?? issuerParties[0] ?? 'issuer';
  const iss = slot.issuers.get(issuerParty);
  const issRev = rev.issuers.get(issuerParty);
  const parties = {
    acquirer: view('acquirer', slot.acquirer, rev.acquirer),
    switch: view('switch', slot.switch, rev.switch),
    issuer: view(issuerParty, iss, issRev),
  };
  const base = { identity, type, rrn, parties };
  const push = (cls: MismatchClass, resolution: Resolution) => out.push({ class: cls, ...base, resolution });

  if (slot.issuers.size > 1) {
    push('issuer-ambiguous', { action: 'none' });
    return;
  }
  // The acquirer reversed it when its record says so (the terminal's reversal accepted: answered 00
  // to the terminal, delivered upstream or still owed in store and forward) or its reversal was
  // acknowledged, or it is an approval with a reversal still owed. A reversal the POSP owes on its own after a 91 (record unknown, reversal unknown) is
  // not a reversal of an approval: the acquirer never had one (issuer-debited-acquirer-failed).
  // The issuer reversed it only when its reversal was approved.
  const acqReversed =
    slot.acquirer?.state === 'reversed' ||
    rev.acquirer?.state === 'approved' ||
    (slot.acquirer?.state === 'approved' && rev.acquirer?.state === 'unknown');
  const issReversed = iss?.state === 'reversed' || issRev?.state === 'approved';
  const acqStands = slot.acquirer?.state === 'approved' && !acqReversed;
  const issStands = iss?.state === 'approved' && !issReversed;

  if (acqStands && issStands) {
    if (slot.acquirer!.amountMinor !== iss!.amountMinor) {
      push('amount-mismatch', { action: 'confirm', party: 'acquirer', amountMinor: iss!.amountMinor });
      return;
    }
  } else if (issStands) {
    push(acqReversed ? 'reversed-one-side' : 'issuer-debited-acquirer-failed', {
      action: 'refund',
      reversal: { issuer: issuerParty, identity, type, amountMinor: iss!.amountMinor, rrn: iss!.rrn || rrn },
    });
    return;
  } else if (acqStands) {
    push(issReversed ? 'issuer-reversed-acquirer-approved' : 'acquirer-approved-issuer-missing', {
      action: 'exclude',
      party: 'acquirer',
    });
    return;
  }
  // The two sides agree. The switch is a witness: report where it is silent or says otherwise.
  if (iss !== undefined && slot.switch === undefined) push('switch-missing', { action: 'none' });
  else if (slot.switch !== undefined) {
    const swStands = slot.switch.state === 'approved' && !(rev.switch?.state === 'approved');
    const swDefinite = slot.switch.state !== 'unknown';
    if (swDefinite && swStands !== issStands) push('switch-state-differs', { action: 'none' });
  }
  matched.push({
    identity,
    type,
    rrn,
    outcome: issStands ? 'stands' : 'void',
    amountMinor: iss?.amountMinor ?? slot.acquirer?.amountMinor ?? slot.switch?.amountMinor ?? 0,
  });
}

/** Mismatches whose resolution moves or withholds money (everything but the informational ones). */
export function actionable(result: ReconcileResult): Mismatch[] {
  return result.mismatches.filter((m) => m.resolution.action !== 'none');
}
