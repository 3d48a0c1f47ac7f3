-- Pages of a folder's envelopes in storage order (extension `x-envelopes`): the index
-- holds the rowid after its columns, so `rowid > ? ORDER BY rowid` within one folder
-- walks it without sorting.
CREATE INDEX messages_by_position ON messages (recipient, message_type, folder_name);

-- The quota check in each delivery sums the recipient's sizes: from this index alone,
-- not from rows that hold whole envelopes.
CREATE INDEX messages_quota ON messages (recipient, size);
