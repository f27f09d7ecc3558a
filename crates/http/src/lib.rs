//! actix-web glue shared by every protocol surface: the TLS client-certificate chain of the
//! connection as an extractor, and the one place that renders protocol errors to the wire.
//!
//! Must not depend on a store implementation (diesel, redis) or on any surface crate; surfaces
//! depend on it, not the other way round.

mod body;
mod error;
pub mod mtls;
mod peer;
mod wire;

pub use body::{BodyError, bearer_token, media_type, read_limited};
pub use error::{NO_STORE_HEADERS, OAuthError, Status, no_store, render};
pub use peer::{PeerCertificates, capture_peer_certificates};
