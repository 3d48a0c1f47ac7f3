-- The durable outbound queue (src/backend/outbound.rs): one row per recipient of an
-- accepted message. The payload is sealed with the sending account's storage key
-- (crypto_secretbox), so the gateway's disk never holds outgoing mail in the clear.

CREATE TABLE outbound (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    account         TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    message_type    TEXT NOT NULL,
    nonce           TEXT NOT NULL,
    sealed_payload  BLOB NOT NULL,
    -- queued → sent | failed
    state           TEXT NOT NULL DEFAULT 'queued',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    give_up_at      INTEGER NOT NULL,
    last_error      TEXT,
    message_id      TEXT,
    created_at      INTEGER NOT NULL,
    done_at         INTEGER
);
CREATE INDEX outbound_due ON outbound (state, next_attempt_at);
