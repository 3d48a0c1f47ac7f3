-- Pages of a folder's envelopes in storage order (extension `x-envelopes`): the index
-- holds the rowid after its columns, so `rowid > ? ORDER BY rowid` within one folder
-- walks it without sorting.
CREATE INDEX messages_by_position ON messages (recipient, message_type, folder_name);
