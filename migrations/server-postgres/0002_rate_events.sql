-- As migrations/server/0004_rate_events.sql: the calls counted under the per-minute
-- rate limits, shared by every instance on the database.
CREATE TABLE rate_events (
    kind     TEXT NOT NULL,
    rate_key TEXT NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX rate_events_by_key ON rate_events (kind, rate_key, at);
