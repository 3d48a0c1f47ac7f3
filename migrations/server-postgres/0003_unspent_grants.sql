-- As migrations/server/0005_unspent_grants.sql: a key grant is spent when a message
-- sealed to its key is stored, and the per-sender limit counts only unspent grants.
-- `rowid` picks the one grant a message spends, as SQLite's implicit one does.
ALTER TABLE key_grants ADD COLUMN public_key TEXT NOT NULL DEFAULT '';
ALTER TABLE key_grants ADD COLUMN spent BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE key_grants ADD COLUMN rowid BIGINT GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX key_grants_rowid ON key_grants (rowid);
CREATE INDEX key_grants_unspent ON key_grants (sender, spent, issued_at);
