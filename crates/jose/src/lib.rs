//! Tessera's JOSE layer on josekit (OpenSSL): generating signing keys for the FAPI algorithms
//! (ES256, PS256, EdDSA), encrypting private keys at rest, signing JWTs, verifying them against a
//! JWKS, and the server's published key set.
//!
//! ES256 and EdDSA signatures themselves go through aws-lc-rs (`native.rs`, ADR 0005): they are
//! on every token request and every introspection.
//!
//! Depends on `tessera-core` only (besides josekit and aws-lc-rs); no I/O, no web framework, no
//! database.

mod error;
mod kek;
mod keygen;
mod keyset;
mod native;
mod verified;
mod verify;

pub use error::JoseError;
pub use kek::KeyEncryptionKey;
pub use keygen::{KeyMaterial, generate};
pub use keyset::{KeySet, LoadedKey, sign_with_jwk};
pub use verified::VerifiedTokenCache;
pub use verify::{PreparedJwks, VerifiedJwt, VerifyError, verify_with_jwks};

pub use josekit::jwk::Jwk;
