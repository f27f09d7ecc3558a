DROP TABLE locks;
DROP INDEX clients_updated_at;
