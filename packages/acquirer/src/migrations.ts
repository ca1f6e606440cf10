/**
 * The POSP's schema (SQLite by default, portable SQL). Released migrations are never edited.
 *
 * What is deliberately NOT here: a full PAN, a PIN block, track data, CVV, a clear key. Keys are HSM
 * key blocks under the LMK (ciphertext that only the HSM can use); the PAN is kept masked (first 6,
 * last 4) and as its length.
 */
import { type Migration, postgresDdl } from '@openposp/store';

/**
 * The steps as written for SQLite (their text, and so their checksums on existing SQLite databases,
 * never change). PostgreSQL runs `postgresDdl` of each (identity ids, BIGINT integers); migration 1
 * there also creates the RRN sequence (journal.ts: on PostgreSQL the RRN comes from it, not from the
 * `counters` row every authorization would otherwise write).
 */
const SQLITE_STEPS: readonly Migration[] = [
  {
    id: 1,
    name: 'terminals, journal, counters',
    sql: `
CREATE TABLE terminals (
  terminal_id     TEXT PRIMARY KEY,
  merchant_id     TEXT NOT NULL,
  merchant_name   TEXT NOT NULL DEFAULT '',
  tmk             TEXT NOT NULL,
  tpk             TEXT,
  tak             TEXT,
  tdk             TEXT,
  signed_in_date  TEXT,
  signed_in_at    TEXT,
  batch_no        TEXT NOT NULL DEFAULT '000001',
  status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  created_at      TEXT NOT NULL,
  updated_at      TEXT NOT NULL
);

CREATE TABLE journal (
  id                 INTEGER PRIMARY KEY,
  rrn                TEXT NOT NULL UNIQUE,
  terminal_id        TEXT NOT NULL,
  merchant_id        TEXT NOT NULL,
  stan               TEXT NOT NULL,
  txn_date           TEXT NOT NULL,
  local_time         TEXT NOT NULL,
  batch_no           TEXT NOT NULL,
  terminal_mti       TEXT NOT NULL,
  txn_type           TEXT NOT NULL CHECK (txn_type IN ('purchase', 'inquiry', 'void', 'refund')),
  processing_code    TEXT NOT NULL,
  amount_minor       INTEGER,
  currency           TEXT NOT NULL,
  pan_masked         TEXT NOT NULL,
  entry_mode         TEXT NOT NULL,
  fingerprint        TEXT NOT NULL,
  state              TEXT NOT NULL CHECK (state IN ('received', 'sent', 'answered', 'unknown', 'declined')),
  response_code      TEXT,
  auth_code          TEXT,
  additional_amounts TEXT,
  settlement_date    TEXT,
  network_mti        TEXT,
  transmission_dt    TEXT,
  acquirer_id        TEXT NOT NULL,
  forwarding_id      TEXT,
  original_rrn       TEXT,
  voided_by_rrn      TEXT,
  received_at        TEXT NOT NULL,
  sent_at            TEXT,
  finished_at        TEXT,
  UNIQUE (terminal_id, stan, txn_date)
);

CREATE INDEX journal_original ON journal (terminal_id, batch_no, stan);

CREATE TABLE counters (
  name   TEXT PRIMARY KEY,
  value  INTEGER NOT NULL
);

INSERT INTO counters (name, value) VALUES ('rrn', 0);
`,
  },
  {
    id: 2,
    name: 'reversals, store and forward, settlement (issue 6)',
    sql: `
ALTER TABLE journal ADD COLUMN reversal_state TEXT CHECK (reversal_state IN ('owed', 'reversed', 'refused'));
ALTER TABLE journal ADD COLUMN reversal_code TEXT;

-- Terminal reversals (0400) by the original's identity as the terminal names it: terminal + field 61.
-- A second 0400 for the same original gets answer_code again; a late original is declined 12.
CREATE TABLE reversals (
  id             INTEGER PRIMARY KEY,
  terminal_id    TEXT NOT NULL,
  orig_batch     TEXT NOT NULL,
  orig_stan      TEXT NOT NULL,
  orig_mmdd      TEXT NOT NULL,
  original_rrn   TEXT,
  reason         TEXT NOT NULL,
  outcome        TEXT NOT NULL CHECK (outcome IN ('no-original', 'local', 'forwarded', 'queued', 'declined')),
  answer_code    TEXT NOT NULL,
  received_at    TEXT NOT NULL,
  UNIQUE (terminal_id, orig_batch, orig_stan, orig_mmdd)
);

-- Store and forward: reversal advices the POSP owes the switch. pan is the full PAN, held only while the
-- advice is owed (the issuer matches a reversal by card): set to NULL when acknowledged or dropped.
CREATE TABLE saf (
  id               INTEGER PRIMARY KEY,
  original_rrn     TEXT NOT NULL UNIQUE,
  source           TEXT NOT NULL CHECK (source IN ('terminal', 'posp')),
  reason           TEXT NOT NULL,
  state            TEXT NOT NULL CHECK (state IN ('pending', 'operator', 'done', 'dropped')),
  pan              TEXT,
  pan_masked       TEXT NOT NULL,
  fields           TEXT NOT NULL,
  attempts         INTEGER NOT NULL DEFAULT 0,
  next_at          TEXT NOT NULL,
  created_at       TEXT NOT NULL,
  last_attempt_at  TEXT,
  last_error       TEXT,
  response_code    TEXT,
  transmission_dt  TEXT,
  finished_at      TEXT
);
CREATE INDEX saf_due ON saf (state, next_at);

-- Closed batches and what their settlement found.
CREATE TABLE batches (
  id              INTEGER PRIMARY KEY,
  terminal_id     TEXT NOT NULL,
  batch_no        TEXT NOT NULL,
  settled_at      TEXT NOT NULL,
  terminal_totals TEXT NOT NULL,
  posp_totals     TEXT NOT NULL,
  balanced        INTEGER NOT NULL,
  uploaded        INTEGER NOT NULL DEFAULT 0,
  closed_at       TEXT,
  UNIQUE (terminal_id, batch_no)
);

CREATE TABLE batch_uploads (
  id            INTEGER PRIMARY KEY,
  terminal_id   TEXT NOT NULL,
  batch_no      TEXT NOT NULL,
  stan          TEXT NOT NULL,
  processing_code TEXT NOT NULL,
  amount_minor  INTEGER NOT NULL,
  rrn           TEXT,
  received_at   TEXT NOT NULL,
  UNIQUE (terminal_id, batch_no, stan)
);

CREATE TABLE batch_discrepancies (
  id            INTEGER PRIMARY KEY,
  terminal_id   TEXT NOT NULL,
  batch_no      TEXT NOT NULL,
  stan          TEXT NOT NULL,
  rrn           TEXT,
  kind          TEXT NOT NULL CHECK (kind IN ('missing-at-posp', 'missing-at-terminal', 'amount-differs', 'state-differs')),
  terminal_amount_minor INTEGER,
  posp_amount_minor     INTEGER,
  detail        TEXT NOT NULL DEFAULT '',
  found_at      TEXT NOT NULL,
  UNIQUE (terminal_id, batch_no, stan, kind)
);
`,
  },
  {
    id: 3,
    name: 'reconciliation resolutions (issue 6 §4: exclude / confirm)',
    sql: `
-- A resolution reconciliation recorded on the POSP's side of a transaction: 'exclude' (the issuer has no
-- standing debit for it: not settled to the merchant, not approved in the clearing file) or 'confirm'
-- (both approved with different amounts: settled at recon_amount_minor, the issuer's amount).
ALTER TABLE journal ADD COLUMN recon_action TEXT CHECK (recon_action IN ('exclude', 'confirm'));
ALTER TABLE journal ADD COLUMN recon_class TEXT;
ALTER TABLE journal ADD COLUMN recon_amount_minor INTEGER;
ALTER TABLE journal ADD COLUMN recon_at TEXT;
`,
  },
  {
    id: 4,
    name: 'store and forward: the PAN sealed by the HSM (M0 under the data key), never in clear',
    sql: `
-- pan_sealed: 'v1:' IV hex ':' ciphertext hex, the PAN encrypted by the HSM under the POSP's data key
-- (DEK, TDES or AES CBC). Rows queued before this step keep their clear pan until they are finished.
ALTER TABLE saf ADD COLUMN pan_sealed TEXT;
`,
  },
];

/** Where the RRNs come from on PostgreSQL: 1..999999999999, then 1 again (field 37 is 12 digits). */
export const RRN_SEQUENCE = 'journal_rrn';

export const ACQUIRER_MIGRATIONS: readonly Migration[] = SQLITE_STEPS.map((m) => ({
  ...m,
  dialects: {
    postgres:
      postgresDdl(m.sql) +
      (m.id === 1 ? `\nCREATE SEQUENCE ${RRN_SEQUENCE} MINVALUE 1 MAXVALUE 999999999999 CYCLE;\n` : ''),
  },
}));
