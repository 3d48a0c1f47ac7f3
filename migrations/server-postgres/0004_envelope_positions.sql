-- Pages of a folder's envelopes in storage order (extension `x-envelopes`).
CREATE INDEX messages_by_position ON messages (recipient, message_type, folder_name, rowid);

-- The quota check in each delivery sums the recipient's sizes from this index alone.
CREATE INDEX messages_quota ON messages (recipient, size);
