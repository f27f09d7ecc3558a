DROP TABLE revoked_tokens;
ALTER TABLE clients DROP COLUMN tokens_not_before;
