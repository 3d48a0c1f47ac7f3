-- How far a mailbox's sync has read its server folder by the page (the server's
-- `x-envelopes` position, docs/protocol.md §8.30; src/backend/mailbox/sync.rs): the next
-- sync asks only for what was stored after it. Only a shortcut: the folder listing
-- still decides which messages are new, and any the pages miss are fetched one by one.
ALTER TABLE mailboxes ADD COLUMN server_position INTEGER NOT NULL DEFAULT 0;
