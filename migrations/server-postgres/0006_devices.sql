-- As migrations/server/0006_devices.sql. The x-devices extension (docs/protocol.md §12): challenges a new device must answer,
-- its requests to join an account with the sealed approval once given, and sealed
-- shares of message keys between an account's devices. Only public data and
-- ciphertext are stored.
CREATE TABLE device_challenges (
    nonce      TEXT PRIMARY KEY NOT NULL,
    address    TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    zero_bits  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX device_challenges_address ON device_challenges (address, expires_at);
CREATE TABLE device_requests (
    request_id TEXT PRIMARY KEY NOT NULL,
    address    TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    sign_key   TEXT NOT NULL,
    box_key    TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    pin_proof  TEXT,
    state      TEXT NOT NULL,
    approval   TEXT,
    reason     TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX device_requests_address ON device_requests (address, state, expires_at);
CREATE TABLE device_shares (
    share_id   TEXT PRIMARY KEY NOT NULL,
    address    TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    box_key    TEXT NOT NULL,
    share      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX device_shares_box ON device_shares (address, box_key);
-- When each device last fetched its shares (`device list`'s "last seen").
CREATE TABLE device_seen (
    address  TEXT NOT NULL REFERENCES accounts(address) ON DELETE CASCADE,
    box_key  TEXT NOT NULL,
    seen_at  BIGINT NOT NULL,
    PRIMARY KEY (address, box_key)
);
