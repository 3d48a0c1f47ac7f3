-- `\Recent` across restarts (RFC 3501 §2.3.2; src/imap/view.rs RecentClaims, kept by
-- src/backend/mailbox): the highest UID a read-write IMAP session has been told of.
-- Messages above it are recent for the next such session. Mailboxes that exist already
-- start with every message told, so an upgrade does not make old mail recent again.
ALTER TABLE mailboxes ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 0;
UPDATE mailboxes SET recent_uid = uid_next - 1;
