-- As migrations/server/0007_changes.sql: the per-mailbox change sequence of the
-- `x-changes` extension (docs/protocol.md §8.29), one modseq counter per account,
-- tombstones of messages that left a folder, and the floor below which they are gone.
ALTER TABLE accounts ADD COLUMN modseq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN vanished_floor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN modseq BIGINT NOT NULL DEFAULT 0;
UPDATE messages SET modseq = rowid;
UPDATE accounts SET modseq = (SELECT COALESCE(MAX(modseq), 0) FROM messages WHERE recipient = accounts.address);
CREATE INDEX messages_by_modseq ON messages (recipient, message_type, folder_name, modseq);

CREATE TABLE vanished_messages (
    rowid        BIGINT GENERATED ALWAYS AS IDENTITY,
    recipient    TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    message_type TEXT NOT NULL,
    folder_name  TEXT,
    message_id   TEXT NOT NULL,
    modseq       BIGINT NOT NULL,
    vanished_at  BIGINT NOT NULL
);
CREATE INDEX vanished_by_folder ON vanished_messages (recipient, message_type, folder_name, modseq);
CREATE INDEX vanished_by_age ON vanished_messages (vanished_at);
