/**
 * The POSP's schema (SQLite by default, portable SQL). Released migrations are never edited.
 *
 * What is deliberately NOT here: a full PAN, a PIN block, track data, CVV, a clear key. Keys are HSM
 * key blocks under the LMK (ciphertext that only the HSM can use); the PAN is kept masked (first 6,
 * last 4) and as its length.
 */
import type { Migration } from '@openposp/store';

export const ACQUIRER_MIGRATIONS: readonly Migration[] = [
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
];
