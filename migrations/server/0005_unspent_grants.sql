-- A key grant is spent when a message sealed to its key is stored. The per-sender limit
-- of docs/protocol.md §9.1 counts only unspent grants: a sender that sends what it asks
-- keys for is never held back, one that hoards keys is.
ALTER TABLE key_grants ADD COLUMN public_key TEXT NOT NULL DEFAULT '';
ALTER TABLE key_grants ADD COLUMN spent INTEGER NOT NULL DEFAULT 0;
CREATE INDEX key_grants_unspent ON key_grants (sender, spent, issued_at);
