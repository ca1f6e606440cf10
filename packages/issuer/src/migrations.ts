/**
 * The issuer's schema. Money is INTEGER minor units. No PAN is stored: a card is found by its PAN token
 * (a MAC of the PAN under the issuer's PAN token key, computed by the HSM) and shown by its masked PAN
 * (first 6, last 4). No PIN, PIN block, track data or clear key is stored; the PVK is a key block under
 * the LMK.
 *
 * Double entry: every posting has two or more ledger entries whose signed amounts sum to zero; an
 * account's ledger balance is the sum of its entries (kept in `accounts.ledger_minor` and checked by
 * `auditLedger`); its available balance is the ledger balance minus its active holds (`held_minor`).
 */
import { type Migration, postgresDdl } from '@openposp/store';

/** The steps as written for SQLite (never edited: their checksums guard existing databases). */
const SQLITE_STEPS: readonly Migration[] = [
  {
    id: 1,
    name: 'issuer ledger, cards, transactions, notifications',
    sql: `
CREATE TABLE accounts (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('cardholder', 'clearing', 'funding')),
  currency TEXT NOT NULL,
  ledger_minor INTEGER NOT NULL DEFAULT 0,
  held_minor INTEGER NOT NULL DEFAULT 0 CHECK (held_minor >= 0),
  created_at TEXT NOT NULL
);

CREATE TABLE cards (
  pan_token TEXT PRIMARY KEY,
  account_id TEXT NOT NULL UNIQUE REFERENCES accounts(id),
  masked_pan TEXT NOT NULL,
  expiry_yymm TEXT NOT NULL,
  service_code TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'blocked', 'pin-blocked')),
  pin_method TEXT NOT NULL CHECK (pin_method IN ('ibm3624', 'pvv')),
  pvk TEXT NOT NULL,
  decimalisation_table TEXT,
  validation_data_rule TEXT,
  pin_offset TEXT,
  pvki TEXT,
  pvv TEXT,
  pin_tries INTEGER NOT NULL DEFAULT 0,
  limit_minor INTEGER NOT NULL CHECK (limit_minor > 0),
  created_at TEXT NOT NULL
);

CREATE TABLE transactions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  msg_class TEXT NOT NULL CHECK (msg_class IN ('02', '04')),
  acquirer_id TEXT NOT NULL,
  terminal_id TEXT NOT NULL,
  stan TEXT NOT NULL,
  local_date TEXT NOT NULL,
  mti TEXT NOT NULL,
  type TEXT NOT NULL,
  processing_code TEXT NOT NULL,
  amount_minor INTEGER NOT NULL CHECK (amount_minor >= 0),
  pan_token TEXT,
  masked_pan TEXT,
  account_id TEXT REFERENCES accounts(id),
  local_time TEXT,
  transmission_dt TEXT,
  rrn TEXT,
  merchant_id TEXT,
  orig_data TEXT,
  orig_acquirer_id TEXT,
  orig_stan TEXT,
  orig_transmission_dt TEXT,
  orig_local_date TEXT,
  original_txn_id INTEGER REFERENCES transactions(id),
  family_id INTEGER,
  response_code TEXT NOT NULL,
  auth_code TEXT,
  additional_amounts TEXT,
  applied INTEGER NOT NULL DEFAULT 0,
  refunded_minor INTEGER NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
  voided_by INTEGER REFERENCES transactions(id),
  reversed_by INTEGER REFERENCES transactions(id),
  note TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (msg_class, acquirer_id, terminal_id, stan, local_date)
);
CREATE INDEX transactions_original_key ON transactions (acquirer_id, terminal_id, stan);
CREATE INDEX transactions_reversal_key ON transactions (orig_acquirer_id, terminal_id, orig_stan);
CREATE INDEX transactions_rrn ON transactions (rrn);
CREATE INDEX transactions_family ON transactions (family_id);

CREATE TABLE postings (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  txn_id INTEGER REFERENCES transactions(id),
  kind TEXT NOT NULL,
  created_at TEXT NOT NULL
);

CREATE TABLE ledger_entries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  posting_id INTEGER NOT NULL REFERENCES postings(id),
  account_id TEXT NOT NULL REFERENCES accounts(id),
  amount_minor INTEGER NOT NULL CHECK (amount_minor <> 0)
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id);
CREATE INDEX ledger_entries_posting ON ledger_entries (posting_id);

CREATE TABLE holds (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
  status TEXT NOT NULL CHECK (status IN ('active', 'released')),
  reason TEXT NOT NULL,
  created_at TEXT NOT NULL,
  released_at TEXT
);
CREATE INDEX holds_account ON holds (account_id, status);

CREATE TABLE notifications (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  txn_id INTEGER NOT NULL REFERENCES transactions(id),
  account_id TEXT NOT NULL REFERENCES accounts(id),
  masked_pan TEXT NOT NULL,
  type TEXT NOT NULL CHECK (type IN ('debit', 'refund', 'void', 'reversal')),
  amount_minor INTEGER NOT NULL,
  text TEXT NOT NULL,
  created_at TEXT NOT NULL
);
`,
  },
  {
    id: 2,
    name: 'reversal tombstones: a partial index',
    sql: `
-- Every purchase looks for a reversal recorded before it arrived (msg_class 04, no original yet). The
-- index of all rows kept every purchase's NULL keys on the page that lookup reads, so on PostgreSQL
-- (SERIALIZABLE: SSI locks the index pages a transaction reads) concurrent authorizations of different
-- cards conflicted and were retried, past the retry limit under load (issue 7). Only the tombstones now.
DROP INDEX transactions_reversal_key;
CREATE INDEX transactions_reversal_tombstone ON transactions (orig_acquirer_id, terminal_id, orig_stan)
  WHERE msg_class = '04' AND original_txn_id IS NULL;
`,
  },
];

/** PostgreSQL runs `postgresDdl` of each step (identity ids, BIGINT integers, BYTEA). */
export const ISSUER_MIGRATIONS: readonly Migration[] = SQLITE_STEPS.map((m) => ({
  ...m,
  dialects: { postgres: postgresDdl(m.sql) },
}));
