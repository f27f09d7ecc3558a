-- Tokens issued to a client before this time are inactive (suspension, offboarding), even if
-- the client is resumed later.
ALTER TABLE clients ADD COLUMN tokens_not_before BIGINT;

-- Revoked access tokens (RFC 7009), kept until the token would have expired anyway.
CREATE TABLE revoked_tokens (
    jti TEXT NOT NULL PRIMARY KEY,
    client_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
