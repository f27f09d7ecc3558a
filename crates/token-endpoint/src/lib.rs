//! The token endpoint (RFC 6749 §4.4 client credentials) for FAPI 2.0 workloads: the client
//! proves itself with its TLS certificate or a signed assertion, and gets a short-lived JWT
//! access token (RFC 9068) bound to the certificate of the request (RFC 8705 §3).
//!
//! Depends on `tessera-core`, the `tessera-store` traits, `tessera-jose` and `tessera-http`;
//! never on a store implementation. The hot path reads clients and keys from memory only.

pub mod auth;
pub mod http;
pub mod inspect;
pub mod revoke;
pub mod service;

pub use http::{configure, metadata};
pub use service::{ClientKeys, RevocationParts, RevokeHook, TokenService, TokenSettings};
