//! End-to-end tests: the real `tessera` binary on an ephemeral port, real TLS, real certificates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cluster;
mod common;
mod config_errors;
mod dev_mode;
mod production;
mod registration;
mod rotation;
mod token;
