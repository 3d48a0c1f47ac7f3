-- The reference SMIMP server's storage (src/server/store.rs). Times are Unix seconds;
-- keys, hashes and ids are lowercase hex. No plaintext message content is ever stored:
-- `messages.envelope` is the sealed envelope as received.

CREATE TABLE accounts (
    address        TEXT PRIMARY KEY NOT NULL,
    -- H(H(T("SMIMP-v0.1/init-password", password))): the stored form of the one-time password.
    password_check TEXT,
    initialized    INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);

CREATE TABLE profile_records (
    address     TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    data        TEXT NOT NULL,
    signed_hash TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    PRIMARY KEY (address, seq)
);

-- Message keys: state is 'available' (ephemeral, not yet issued), 'current' (the one
-- non-ephemeral key), 'issued' (ephemeral, handed out once) or 'retired' (replaced).
CREATE TABLE message_keys (
    address    TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    public_key TEXT NOT NULL,
    kind       TEXT NOT NULL,
    signature  TEXT NOT NULL,
    state      TEXT NOT NULL,
    added_at   INTEGER NOT NULL,
    PRIMARY KEY (address, public_key)
);
CREATE INDEX message_keys_available ON message_keys (address, state);

-- Which key was handed to which session for which recipient (send_message checks it).
CREATE TABLE issued_keys (
    session_hash TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    issued_at    INTEGER NOT NULL,
    PRIMARY KEY (session_hash, recipient, public_key)
);

CREATE TABLE login_tokens (
    token      TEXT PRIMARY KEY NOT NULL,
    address    TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

-- Sessions are stored by the hash of their id, so the database alone cannot be used to log in.
CREATE TABLE sessions (
    session_hash     TEXT PRIMARY KEY NOT NULL,
    address          TEXT NOT NULL,
    local            INTEGER NOT NULL,
    public_key       TEXT NOT NULL,
    login_token_hash TEXT NOT NULL,
    expires_at       INTEGER NOT NULL
);

CREATE TABLE pow_nonces (
    nonce        TEXT PRIMARY KEY NOT NULL,
    session_hash TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    message_type TEXT NOT NULL,
    zero_bits    INTEGER NOT NULL,
    used         INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE folders (
    address      TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    message_type TEXT NOT NULL,
    folder_name  TEXT NOT NULL,
    display_name TEXT NOT NULL,
    parent       TEXT,
    PRIMARY KEY (address, message_type, folder_name)
);

CREATE TABLE messages (
    message_id   TEXT PRIMARY KEY NOT NULL,
    recipient    TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    message_type TEXT NOT NULL,
    folder_name  TEXT,
    sender       TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    read         INTEGER NOT NULL DEFAULT 0,
    size         INTEGER NOT NULL,
    envelope     TEXT NOT NULL,
    extensions   TEXT
);
CREATE INDEX messages_by_folder ON messages (recipient, message_type, folder_name, received_at);

CREATE TABLE list_entries (
    address TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    list    TEXT NOT NULL,
    hash    TEXT NOT NULL,
    entry   TEXT NOT NULL,
    PRIMARY KEY (address, list, hash)
);

CREATE TABLE avatars (
    address      TEXT PRIMARY KEY NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    content_type TEXT NOT NULL,
    image        BLOB NOT NULL,
    hash         TEXT NOT NULL,
    signature    TEXT NOT NULL
);
