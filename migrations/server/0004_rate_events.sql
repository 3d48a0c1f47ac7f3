-- One row per call counted under a per-minute rate limit (logins per client address,
-- message keys and messages per session), kept for a minute: every instance on the
-- database counts the same rows, so several instances grant no more than one.
CREATE TABLE rate_events (
    kind     TEXT NOT NULL,
    rate_key TEXT NOT NULL,
    at       INTEGER NOT NULL
);
CREATE INDEX rate_events_by_key ON rate_events (kind, rate_key, at);
