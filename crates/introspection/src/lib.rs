//! Token introspection (RFC 7662) for API gateways and resource servers, with signed JWT responses
//! (RFC 9701) on request.
//!
//! Depends on `tessera-core`, the `tessera-store` traits, `tessera-http`, and the token endpoint
//! crate for caller authentication and the shared token-state check (one definition of "active"
//! for introspection and revocation). Never on a store implementation. The hot path reads
//! memory only: keys, clients and revocations are cached.

pub mod http;
pub mod service;

pub use http::{configure, metadata};
pub use service::{Fallback, IntrospectionResult, Introspector};
