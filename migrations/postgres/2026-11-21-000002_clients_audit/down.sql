DROP TABLE audit_log;
DROP TABLE client_scopes;
DROP TABLE clients;
