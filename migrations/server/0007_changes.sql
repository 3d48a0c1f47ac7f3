-- The per-mailbox change sequence of the `x-changes` extension (docs/protocol.md §8.29).
-- Every message row carries the modseq of its last change, drawn from one counter per
-- account (`accounts.modseq`); a message deleted or moved out of a folder leaves a
-- tombstone there with the modseq of its going. Tombstones are kept for a while only:
-- `vanished_floor` is the highest modseq of one that was dropped, so a client asking
-- for changes since an older modseq is told to list the folder afresh.
ALTER TABLE accounts ADD COLUMN modseq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN vanished_floor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN modseq INTEGER NOT NULL DEFAULT 0;
-- Messages stored before: each its own modseq, in arrival order.
UPDATE messages SET modseq = rowid;
UPDATE accounts SET modseq = (SELECT COALESCE(MAX(modseq), 0) FROM messages WHERE recipient = accounts.address);
CREATE INDEX messages_by_modseq ON messages (recipient, message_type, folder_name, modseq);

CREATE TABLE vanished_messages (
    recipient    TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    message_type TEXT NOT NULL,
    folder_name  TEXT,
    message_id   TEXT NOT NULL,
    modseq       INTEGER NOT NULL,
    vanished_at  INTEGER NOT NULL
);
CREATE INDEX vanished_by_folder ON vanished_messages (recipient, message_type, folder_name, modseq);
CREATE INDEX vanished_by_age ON vanished_messages (vanished_at);
