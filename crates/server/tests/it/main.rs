//! End-to-end tests: the real `tessera` binary on an ephemeral port, real TLS, real certificates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cluster;
mod common;
mod config_errors;
mod conformance;
mod dev_mode;
mod introspection;
mod lifecycle;
mod notifications;
mod production;
mod registration;
mod rotation;
mod token;
mod uk_profile;
