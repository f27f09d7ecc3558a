//! Throw-away PostgreSQL databases (written by the store-diesel work).
