/**
 * The switch journal schema. One row per request received from an acquirer, completed when the
 * switch answers it: identity (32, 41, 11, 13), RRN, masked PAN, amount, route, response code, times.
 * Never a PIN block, track data, key or full PAN (the DOMAIN rules; a test scans the file).
 */
import { type Migration, postgresDdl } from '@openposp/store';

/** The steps as written for SQLite (never edited: their checksums guard existing databases). */
const SQLITE_STEPS: readonly Migration[] = [
  {
    id: 1,
    name: 'switch journal',
    sql: `
CREATE TABLE switch_journal (
  id INTEGER PRIMARY KEY,
  received_at_ms INTEGER NOT NULL,
  mti TEXT NOT NULL,
  processing_code TEXT,
  acquirer_id TEXT,
  forwarding_id TEXT,
  terminal_id TEXT,
  merchant_id TEXT,
  stan TEXT,
  local_date TEXT,
  local_time TEXT,
  transmission_at TEXT,
  rrn TEXT,
  pan_masked TEXT,
  amount_minor INTEGER,
  currency TEXT,
  original_data TEXT,
  has_pin INTEGER NOT NULL DEFAULT 0,
  bin_entry TEXT,
  issuer_id TEXT,
  forwarded_at_ms INTEGER,
  response_mti TEXT,
  response_code TEXT,
  auth_code TEXT,
  outcome TEXT NOT NULL,
  answered_at_ms INTEGER,
  duration_ms INTEGER
);
CREATE INDEX switch_journal_identity ON switch_journal (acquirer_id, terminal_id, stan, local_date);
CREATE INDEX switch_journal_rrn ON switch_journal (rrn);
CREATE INDEX switch_journal_received ON switch_journal (received_at_ms);
`,
  },
];

/** PostgreSQL runs `postgresDdl` of each step (identity ids, BIGINT integers, BYTEA). */
export const SWITCH_MIGRATIONS: readonly Migration[] = SQLITE_STEPS.map((m) => ({
  ...m,
  dialects: { postgres: postgresDdl(m.sql) },
}));
