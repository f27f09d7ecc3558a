//! Tessera's domain: newtypes, key-rotation policy, discovery metadata merging, the `Clock` and
//! `Rng` seams, and the protocol error enums.
//!
//! This crate must not depend on a web framework, a database driver, a cache client or a JOSE
//! library: everything here is pure and testable with a fixed clock. Signing goes through the
//! [`keys::TokenSigner`] trait that `tessera-jose` implements.

pub mod audit;
pub mod cert;
pub mod client;
pub mod clock;
pub mod discovery;
pub mod dn;
pub mod error;
pub mod ids;
pub mod keys;
pub mod rng;
pub mod thumbprint;

pub use clock::{Clock, FixedClock, SystemClock, UnixTime};
pub use ids::{ClientId, Issuer, IssuerError, KeyId};
pub use rng::{OsRng, Rng, RngError};
