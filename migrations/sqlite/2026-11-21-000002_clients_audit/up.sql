-- Registered clients, their per-scope decisions, and the hash-chained audit log. The sqlite and
-- postgres directories hold the same text, so one diesel `table!` describes both. Times are epoch
-- seconds (BIGINT). NOT NULL on every primary key is explicit because SQLite, unlike PostgreSQL,
-- lets a non-INTEGER PRIMARY KEY hold NULL.

-- One row per client. `metadata` is the registered RFC 7591 metadata as a JSON object (TEXT, not
-- JSONB: it is only ever read back whole, and TEXT is stored identically by both backends).
-- The SSA `jti` is unique when present (NULLs never collide on either backend); the constraint
-- name contains `ssa_jti` so that a violation can be told apart from a duplicate client_id (the
-- store reads PostgreSQL's constraint name, SQLite's "UNIQUE constraint failed: clients.ssa_jti").
CREATE TABLE clients (
    client_id               TEXT   NOT NULL PRIMARY KEY,
    status                  TEXT   NOT NULL,
    status_reason           TEXT,
    org_id                  TEXT   NOT NULL,
    org_name                TEXT   NOT NULL,
    software_id             TEXT   NOT NULL,
    directory               TEXT   NOT NULL,
    purpose                 TEXT   NOT NULL,
    risk_tier               TEXT   NOT NULL,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    expires_at              BIGINT,
    last_used_at            BIGINT,
    registration_token_hash TEXT   NOT NULL,
    ssa_jti                 TEXT,
    transport_cert_subject  TEXT   NOT NULL,
    metadata                TEXT   NOT NULL,
    CONSTRAINT clients_ssa_jti_unique UNIQUE (ssa_jti)
);
CREATE INDEX clients_status_idx ON clients (status);
CREATE INDEX clients_org_id_idx ON clients (org_id);

-- One row per requested scope of a client. `position` keeps the order in which the scopes were
-- requested (the primary key cannot: it is the scope name). The primary key leads with
-- client_id, so it also serves the foreign key and "all scopes of one client".
CREATE TABLE client_scopes (
    client_id  TEXT    NOT NULL REFERENCES clients (client_id),
    position   INTEGER NOT NULL,
    scope      TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    rule       TEXT    NOT NULL,
    decided_at BIGINT  NOT NULL,
    reason     TEXT,
    PRIMARY KEY (client_id, scope)
);
-- The review queue lists pending scopes across all clients.
CREATE INDEX client_scopes_state_idx ON client_scopes (state);

-- Append-only audit log. `seq` is assigned by the store (last + 1) under a lock, not by a
-- sequence or AUTOINCREMENT: a gap would read as a removed record, and sequences leave gaps on
-- rollback. `data` is a JSON object. `hash` covers seq, the event and `prev_hash`
-- (tessera_core::audit::chain_hash), so an edited row breaks the chain from that record on.
-- client_id is deliberately not a foreign key: refused registrations are audited under ids that
-- never became clients, and the log must outlive any client row.
CREATE TABLE audit_log (
    seq       BIGINT NOT NULL PRIMARY KEY,
    at        BIGINT NOT NULL,
    kind      TEXT   NOT NULL,
    actor     TEXT   NOT NULL,
    client_id TEXT,
    data      TEXT   NOT NULL,
    prev_hash TEXT   NOT NULL,
    hash      TEXT   NOT NULL
);
CREATE INDEX audit_log_client_id_idx ON audit_log (client_id);
CREATE INDEX audit_log_at_idx ON audit_log (at);
