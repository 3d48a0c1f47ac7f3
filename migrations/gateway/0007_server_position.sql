-- How far a mailbox's sync has read its server folder by the page (the server's
-- `x-envelopes` position, docs/protocol.md §8.30; src/backend/mailbox/sync.rs): the next
-- sync asks only for what was stored after it. Only a shortcut: the folder listing
-- still decides which messages are new, and any the pages miss are fetched one by one.
ALTER TABLE mailboxes ADD COLUMN server_position INTEGER NOT NULL DEFAULT 0;

-- The thread map is read by thread and by SMIMP message for every message a sync renders
-- (src/store/threads.rs): without these, each read scanned the account's whole map, so a
-- first sync slowed with the square of the mailbox.
CREATE INDEX thread_map_by_thread ON thread_map (account, thread_id, created_at);
CREATE INDEX thread_map_by_smimp_message ON thread_map (account, smimp_message_id);
