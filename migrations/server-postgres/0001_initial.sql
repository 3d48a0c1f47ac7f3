-- The reference SMIMP server's storage on PostgreSQL (src/server/store/): the same
-- tables and columns as the SQLite migrations in migrations/server/ produce, which a
-- test compares (tests/server_store_schema.rs). Differences, all of type only:
-- integers are BIGINT (SQLite's INTEGER is 64-bit), flags BOOLEAN, the avatar BYTEA,
-- and the tables whose queries order or pick rows by SQLite's implicit `rowid` have it
-- as an explicit identity column. Times are Unix seconds; keys, hashes and ids are
-- lowercase hex. No plaintext message content is ever stored: `messages.envelope` is
-- the sealed envelope as received.

CREATE TABLE accounts (
    address        TEXT PRIMARY KEY NOT NULL,
    -- H(H(T("SMIMP-v0.1/init-password", password))): the stored form of the one-time password.
    password_check TEXT,
    initialized    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     BIGINT NOT NULL
);

CREATE TABLE profile_records (
    address     TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    data        TEXT NOT NULL,
    signed_hash TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    PRIMARY KEY (address, seq)
);

-- Message keys: state is 'available' (ephemeral, not yet issued), 'current' (the one
-- non-ephemeral key), 'issued' (ephemeral, handed out once), 'used' (ephemeral, carried
-- its one message) or 'retired' (replaced).
CREATE TABLE message_keys (
    rowid      BIGINT GENERATED ALWAYS AS IDENTITY,
    address    TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    public_key TEXT NOT NULL,
    kind       TEXT NOT NULL,
    signature  TEXT NOT NULL,
    state      TEXT NOT NULL,
    added_at   BIGINT NOT NULL,
    PRIMARY KEY (address, public_key)
);
CREATE INDEX message_keys_available ON message_keys (address, state);
CREATE UNIQUE INDEX message_keys_rowid ON message_keys (rowid);

-- Which key was handed to which session for which recipient (send_message checks it).
CREATE TABLE issued_keys (
    session_hash TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    issued_at    BIGINT NOT NULL,
    PRIMARY KEY (session_hash, recipient, public_key)
);

-- Login tokens by their hash (smimp::envelope::login_token_hash), like session ids.
CREATE TABLE login_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    address    TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Sessions are stored by the hash of their id, so the database alone cannot be used to log in.
CREATE TABLE sessions (
    rowid            BIGINT GENERATED ALWAYS AS IDENTITY,
    session_hash     TEXT PRIMARY KEY NOT NULL,
    address          TEXT NOT NULL,
    local            BOOLEAN NOT NULL,
    public_key       TEXT NOT NULL,
    login_token_hash TEXT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX sessions_by_address ON sessions (address, expires_at);

CREATE TABLE pow_nonces (
    rowid        BIGINT GENERATED ALWAYS AS IDENTITY,
    nonce        TEXT PRIMARY KEY NOT NULL,
    session_hash TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    message_type TEXT NOT NULL,
    zero_bits    BIGINT NOT NULL,
    used         BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX pow_nonces_by_session ON pow_nonces (session_hash, used);
CREATE UNIQUE INDEX pow_nonces_rowid ON pow_nonces (rowid);

CREATE TABLE folders (
    address      TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    message_type TEXT NOT NULL,
    folder_name  TEXT NOT NULL,
    display_name TEXT NOT NULL,
    parent       TEXT,
    PRIMARY KEY (address, message_type, folder_name)
);

CREATE TABLE messages (
    rowid        BIGINT GENERATED ALWAYS AS IDENTITY,
    message_id   TEXT PRIMARY KEY NOT NULL,
    recipient    TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    message_type TEXT NOT NULL,
    folder_name  TEXT,
    sender       TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    read         BOOLEAN NOT NULL DEFAULT FALSE,
    size         BIGINT NOT NULL,
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
    image        BYTEA NOT NULL,
    hash         TEXT NOT NULL,
    signature    TEXT NOT NULL
);

-- Every message key handed out, by recipient and sending identity, kept for an hour:
-- the per-sender and per-recipient limits of docs/protocol.md §9.1 count these rows.
CREATE TABLE key_grants (
    recipient  TEXT NOT NULL,
    sender     TEXT NOT NULL,
    -- TRUE when an ephemeral key was handed out, FALSE for the non-ephemeral key.
    ephemeral  BOOLEAN NOT NULL,
    issued_at  BIGINT NOT NULL
);
CREATE INDEX key_grants_by_recipient ON key_grants (recipient, issued_at);
CREATE INDEX key_grants_by_sender ON key_grants (sender, issued_at);
