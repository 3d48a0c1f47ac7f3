-- Pages of a folder's envelopes in storage order (extension `x-envelopes`).
CREATE INDEX messages_by_position ON messages (recipient, message_type, folder_name, rowid);
