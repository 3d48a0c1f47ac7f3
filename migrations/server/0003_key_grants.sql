-- Every message key handed out, by recipient and sending identity, kept for an hour:
-- the per-sender and per-recipient limits of docs/protocol.md §9.1 count these rows.
-- `issued_keys` cannot serve: a sender erases its rows by ending its session.
CREATE TABLE key_grants (
    recipient  TEXT NOT NULL,
    sender     TEXT NOT NULL,
    -- 1 when an ephemeral key was handed out, 0 for the non-ephemeral key.
    ephemeral  INTEGER NOT NULL,
    issued_at  INTEGER NOT NULL
);
CREATE INDEX key_grants_by_recipient ON key_grants (recipient, issued_at);
CREATE INDEX key_grants_by_sender ON key_grants (sender, issued_at);
CREATE INDEX sessions_by_address ON sessions (address, expires_at);
CREATE INDEX pow_nonces_by_session ON pow_nonces (session_hash, used);
