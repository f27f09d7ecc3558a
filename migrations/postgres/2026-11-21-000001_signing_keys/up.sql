-- Signing keys. Rows are only ever inserted: rotation adds keys and a key's state is derived from
-- its timestamps, so nodes agree on it without coordination. Times are epoch seconds (BIGINT), the
-- one time representation both backends store identically. The private key is kept only as a JWE
-- encrypted with the configured key-encryption key.
-- NOT NULL on the key is explicit because SQLite, unlike PostgreSQL, lets a non-INTEGER PRIMARY KEY
-- hold NULL; the same text then means the same thing on both backends.
CREATE TABLE signing_keys (
    kid          TEXT   NOT NULL PRIMARY KEY,
    alg          TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    activates_at BIGINT NOT NULL,
    public_jwk   TEXT   NOT NULL,
    private_jwe  TEXT   NOT NULL
);
