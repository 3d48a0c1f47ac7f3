-- The gateway's own database (src/store/): accounts it serves, trust-on-first-use pins
-- and the trust events a user can review. Later issues add UID maps, the sealed cache
-- and the outbound queue.

CREATE TABLE accounts (
    address       TEXT PRIMARY KEY NOT NULL,
    keystore_path TEXT NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL
);

-- docs/protocol.md §5.2: the first key, the latest key, the latest record and the length.
CREATE TABLE pins (
    address            TEXT PRIMARY KEY NOT NULL,
    first_key          TEXT NOT NULL,
    latest_key         TEXT NOT NULL,
    latest_signed_hash TEXT NOT NULL,
    length             INTEGER NOT NULL,
    first_seen         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

CREATE TABLE trust_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    address TEXT NOT NULL,
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE INDEX trust_events_by_address ON trust_events (address, at);
