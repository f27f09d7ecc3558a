-- Nodes poll for clients changed by another process (the admin command line).
CREATE INDEX clients_updated_at ON clients (updated_at);

-- Leases, so that one node at a time runs the lifecycle sweeper.
CREATE TABLE locks (
    name TEXT NOT NULL PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
