-- Login tokens are kept by their hash (smimp::envelope::login_token_hash), like session
-- ids, so the database alone holds no token that could be presented. Tokens live for
-- minutes: the ones outstanding at the upgrade are dropped, and their logins start again.
DELETE FROM login_tokens;
ALTER TABLE login_tokens RENAME COLUMN token TO token_hash;
