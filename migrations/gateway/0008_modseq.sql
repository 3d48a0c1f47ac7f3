-- CONDSTORE and QRESYNC (RFC 7162; src/imap/, src/store/modseq.rs): every mailbox has a
-- HIGHESTMODSEQ and every message the modseq of its last change. Triggers keep them, so
-- every writer (sync, STORE, EXPUNGE, MOVE, APPEND, the server's change feed) bumps them
-- without knowing: a message's arrival and each change of its flags take the mailbox's
-- next modseq; its removal takes one too and leaves its UID in `expunged_uids`, which
-- VANISHED (EARLIER) and FETCH … (CHANGEDSINCE n VANISHED) read.
ALTER TABLE mailboxes ADD COLUMN highest_modseq INTEGER NOT NULL DEFAULT 1;
ALTER TABLE mailbox_messages ADD COLUMN modseq INTEGER NOT NULL DEFAULT 1;
-- The modseq of the account's server's `x-changes` feed (docs/protocol.md §8.29) this
-- mailbox has followed up to; 0: not yet.
ALTER TABLE mailboxes ADD COLUMN feed_modseq INTEGER NOT NULL DEFAULT 0;

-- No foreign key: rows of a deleted mailbox are removed by the trigger below, and
-- mailbox ids are never reused (AUTOINCREMENT).
CREATE TABLE expunged_uids (
    mailbox INTEGER NOT NULL,
    uid     INTEGER NOT NULL,
    modseq  INTEGER NOT NULL,
    PRIMARY KEY (mailbox, uid)
);
CREATE INDEX expunged_by_modseq ON expunged_uids (mailbox, modseq);
CREATE INDEX mailbox_messages_by_modseq ON mailbox_messages (mailbox, modseq);

CREATE TRIGGER mailbox_message_added AFTER INSERT ON mailbox_messages
BEGIN
    UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = NEW.mailbox;
    UPDATE mailbox_messages SET modseq = (SELECT highest_modseq FROM mailboxes WHERE id = NEW.mailbox)
        WHERE mailbox = NEW.mailbox AND uid = NEW.uid;
END;

CREATE TRIGGER mailbox_message_flags AFTER UPDATE OF flags ON mailbox_messages
WHEN OLD.flags IS NOT NEW.flags
BEGIN
    UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = NEW.mailbox;
    UPDATE mailbox_messages SET modseq = (SELECT highest_modseq FROM mailboxes WHERE id = NEW.mailbox)
        WHERE mailbox = NEW.mailbox AND uid = NEW.uid;
END;

CREATE TRIGGER mailbox_message_removed AFTER DELETE ON mailbox_messages
BEGIN
    UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = OLD.mailbox;
    INSERT OR REPLACE INTO expunged_uids (mailbox, uid, modseq)
        SELECT OLD.mailbox, OLD.uid, highest_modseq FROM mailboxes WHERE id = OLD.mailbox;
END;

CREATE TRIGGER mailbox_removed AFTER DELETE ON mailboxes
BEGIN
    DELETE FROM expunged_uids WHERE mailbox = OLD.id;
END;
