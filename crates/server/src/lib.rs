//! The `tessera` server: configuration, TLS with client certificates, storage, the protocol
//! surfaces wired together, and the admin command line. Thin by design: protocol logic lives in
//! the surface crates and `tessera-core`.

pub mod admin_cli;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dev;
pub mod fetch;
pub mod keys;
pub mod metrics;
pub mod notify;
pub mod routes;
pub mod serve;
pub mod surfaces;
pub mod tls;
