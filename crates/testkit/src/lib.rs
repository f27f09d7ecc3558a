//! Test support for Tessera (dev-only, never a dependency of the product): throw-away databases,
//! a test PKI, and spawning the real `tessera` binary and the example resource server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod pg;
pub mod pki;
pub mod process;
pub mod redis;
pub mod rs;

pub use pki::{Issued, TestPki};
pub use process::{Tessera, https_client, init_crypto};
