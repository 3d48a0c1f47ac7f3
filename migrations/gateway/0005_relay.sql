-- Deliveries through a legacy relay configured for the recipient's domain
-- (src/backend/relay.rs). `route` says how a row is delivered: 'smimp' (sealed and sent
-- to the recipient's SMIMP server; `recipient` is the SMIMP address) or 'relay' (the
-- submitted message as it is, over SMTP; `recipient` is the RCPT TO address and
-- `envelope_from` the MAIL FROM, '' for the null reverse-path). The payload stays sealed
-- with the account's storage key either way.

ALTER TABLE outbound ADD COLUMN route TEXT NOT NULL DEFAULT 'smimp';
ALTER TABLE outbound ADD COLUMN envelope_from TEXT;
