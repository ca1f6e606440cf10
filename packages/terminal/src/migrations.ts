/**
 * The terminal's SQLite schema (@openposp/store migrations; released ids are never edited).
 *
 * No PAN, track data, PIN block or key is ever written here: card data a later message needs (the
 * PAN of a reversal 0400 or a batch upload 0320, issue 6) is kept sealed by the PIN pad
 * (`card_sealed`, AES-256-GCM under a key that never leaves the pad), next to the masked PAN.
 */
import { type Migration, postgresDdl } from '@openposp/store';

/** The steps as written for SQLite (never edited: their checksums guard existing databases). */
const SQLITE_STEPS: readonly Migration[] = [
  {
    id: 1,
    name: 'terminal state, batch, pending reversal',
    sql: `
CREATE TABLE terminal_state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  last_stan INTEGER NOT NULL CHECK (last_stan BETWEEN 0 AND 999999),
  batch_number INTEGER NOT NULL CHECK (batch_number BETWEEN 1 AND 999999),
  signed_in_at TEXT
);
INSERT INTO terminal_state (id, last_stan, batch_number, signed_in_at) VALUES (1, 0, 1, NULL);

CREATE TABLE batch_entries (
  id INTEGER PRIMARY KEY,
  batch_number INTEGER NOT NULL,
  stan INTEGER NOT NULL,
  txn_type TEXT NOT NULL CHECK (txn_type IN ('purchase', 'void', 'refund')),
  mti TEXT NOT NULL,
  processing_code TEXT NOT NULL,
  amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
  pan_masked TEXT NOT NULL,
  card_sealed BLOB NOT NULL,
  local_year INTEGER NOT NULL,
  local_date TEXT NOT NULL,
  local_time TEXT NOT NULL,
  rrn TEXT NOT NULL,
  auth_code TEXT,
  response_code TEXT NOT NULL,
  settlement_date TEXT,
  original_stan INTEGER,
  voided INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  UNIQUE (batch_number, stan)
);

CREATE TABLE pending_reversals (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  stan INTEGER NOT NULL,
  batch_number INTEGER NOT NULL,
  txn_type TEXT NOT NULL,
  mti TEXT NOT NULL,
  processing_code TEXT NOT NULL,
  amount_minor INTEGER NOT NULL,
  pos_entry_mode TEXT NOT NULL,
  condition_code TEXT NOT NULL,
  txn_type_code TEXT NOT NULL,
  pan_masked TEXT NOT NULL,
  card_sealed BLOB NOT NULL,
  local_date TEXT NOT NULL,
  local_time TEXT NOT NULL,
  original_data TEXT,
  reason TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL
);
`,
  },
  {
    id: 2,
    name: 'reversal attempts, reversal journal, settlements',
    sql: `
ALTER TABLE pending_reversals ADD COLUMN last_attempt_at TEXT;
ALTER TABLE pending_reversals ADD COLUMN last_outcome TEXT;

CREATE TABLE reversals_done (
  id INTEGER PRIMARY KEY,
  stan INTEGER NOT NULL,
  batch_number INTEGER NOT NULL,
  txn_type TEXT NOT NULL,
  amount_minor INTEGER NOT NULL,
  pan_masked TEXT NOT NULL,
  reason TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  response_code TEXT NOT NULL,
  rrn TEXT,
  completed_at TEXT NOT NULL
);

CREATE TABLE settlements (
  id INTEGER PRIMARY KEY,
  batch_number INTEGER NOT NULL,
  debit_total_minor INTEGER NOT NULL,
  debit_count INTEGER NOT NULL,
  credit_total_minor INTEGER NOT NULL,
  credit_count INTEGER NOT NULL,
  result TEXT NOT NULL CHECK (result IN ('balanced', 'uploaded')),
  uploaded_count INTEGER NOT NULL,
  stan INTEGER NOT NULL,
  settled_at TEXT NOT NULL
);
`,
  },
  {
    id: 3,
    name: 'pending refund advice (0220, repeated as 0221)',
    sql: `
CREATE TABLE pending_advices (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  stan INTEGER NOT NULL,
  batch_number INTEGER NOT NULL,
  txn_type TEXT NOT NULL,
  processing_code TEXT NOT NULL,
  amount_minor INTEGER NOT NULL,
  pos_entry_mode TEXT NOT NULL,
  txn_type_code TEXT NOT NULL,
  pan_masked TEXT NOT NULL,
  card_sealed BLOB NOT NULL,
  local_year INTEGER NOT NULL,
  local_date TEXT NOT NULL,
  local_time TEXT NOT NULL,
  original_rrn TEXT,
  original_data TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_attempt_at TEXT,
  last_outcome TEXT,
  created_at TEXT NOT NULL
);
`,
  },
];

/** PostgreSQL runs `postgresDdl` of each step (identity ids, BIGINT integers, BYTEA). */
export const TERMINAL_MIGRATIONS: readonly Migration[] = SQLITE_STEPS.map((m) => ({
  ...m,
  dialects: { postgres: postgresDdl(m.sql) },
}));
