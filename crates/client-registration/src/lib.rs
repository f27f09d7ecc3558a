//! Dynamic client registration (RFC 7591/7592) with directory software statements and onboarding
//! policy as code.
//!
//! Depends on `tessera-core`, the `tessera-store` traits, `tessera-jose` and `tessera-http`;
//! never on a store implementation. `service` does the work without actix; `http` extracts,
//! calls and renders.

pub mod http;
pub mod metadata;
pub mod policy;
pub mod service;
pub mod settings;
pub mod ssa;

#[cfg(test)]
mod tests;

pub use http::configure;
pub use service::Registrar;
pub use settings::{Directory, JwksSource, Profile, RegistrationSettings, StaticJwks, TransportBinding};
