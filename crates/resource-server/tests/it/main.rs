//! Integration tests of tessera-resource-server (one binary, modules by concern).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod example;
mod extractor;
mod jwks_refresh;
mod support;
mod tls;
mod validate;
