-- Threading (src/store/threads.rs): the RFC 5322 Message-IDs of mail the account sent,
-- so a client's reply to its own Sent copy joins the same SMIMP thread.
CREATE TABLE thread_map (
    account          TEXT NOT NULL,
    message_id       TEXT NOT NULL,
    thread_id        TEXT NOT NULL,
    smimp_message_id TEXT,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (account, message_id)
);

-- The IMAP view (src/store/mailboxes.rs). A mailbox keeps its id and UIDVALIDITY for
-- life (a rename changes only its name); uid_next only grows, so UIDs are never reused.
-- `folder` is the SMIMP folder_name, NULL for the root `email` folder (INBOX).
CREATE TABLE mailboxes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    account      TEXT NOT NULL,
    name         TEXT NOT NULL,
    folder       TEXT,
    uid_validity INTEGER NOT NULL,
    uid_next     INTEGER NOT NULL DEFAULT 1,
    subscribed   INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account, name)
);
CREATE UNIQUE INDEX mailboxes_by_folder ON mailboxes (account, IFNULL(folder, ''));

-- One row per message shown in a mailbox. Flags are the IMAP flags as one
-- space-separated string; size is the exact size of the rendered message.
CREATE TABLE mailbox_messages (
    mailbox       INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid           INTEGER NOT NULL,
    message_id    TEXT NOT NULL,
    flags         TEXT NOT NULL DEFAULT '',
    internal_date INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    PRIMARY KEY (mailbox, uid),
    UNIQUE (mailbox, message_id)
);

-- Rendered messages, sealed with the account's storage key (crypto_secretbox): the
-- headers, the body and the verification result never rest on disk in the clear.
CREATE TABLE message_cache (
    account    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    last_used  INTEGER NOT NULL,
    PRIMARY KEY (account, message_id)
);
CREATE INDEX message_cache_by_use ON message_cache (last_used);

-- Copies the mailbox does not show: a second copy of one submission (the sender's
-- delivery id, after a crash between sending and recording it), by SMIMP message id.
CREATE TABLE hidden_messages (
    account    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    reason     TEXT NOT NULL,
    PRIMARY KEY (account, message_id)
);
CREATE TABLE deliveries_seen (
    account     TEXT NOT NULL,
    sender      TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    PRIMARY KEY (account, sender, delivery_id)
);
