//! Validate Tessera access tokens inside a Rust resource server, without calling Tessera per
//! request.
//!
//! Tessera issues RFC 9068 JWT access tokens (`typ: at+jwt`, ES256/PS256/EdDSA, `kid`) that are
//! bound to the client's TLS certificate (RFC 8705 §3, `cnf.x5t#S256`). This crate:
//!
//! - fetches and caches the issuer's keys from its `jwks_uri` ([`JwksCache`]): refresh on an
//!   unknown `kid` at most once per 10 s, periodic refresh, stale copy served when the issuer is
//!   unreachable;
//! - checks a token ([`Validator::validate`]): compact JWS, algorithm allow-list, `typ`,
//!   signature, `iss`, `aud`, `exp`/`nbf`/`iat` with clock skew, required claims, and that the
//!   request came over TLS with the certificate the token is bound to (FAPI 2.0 §5.3.4);
//! - maps every refusal to RFC 6750 §3 status, `WWW-Authenticate` and JSON body
//!   ([`error_parts`]);
//! - with the default feature `actix`: an actix-web extractor ([`actix::Authenticated`]) that
//!   reads `Authorization: Bearer` (scheme case-insensitive), refuses tokens in the query string,
//!   and takes the client certificate from the TLS connection ([`actix::capture_peer_certificate`]).
//!
//! # What it must not depend on
//!
//! No other Tessera crate, no database or cache driver (diesel, redis): a resource server embeds
//! this crate and nothing of the authorization server. JOSE is josekit (OpenSSL); HTTP is a
//! `reqwest::Client` the application builds, so the application chooses the trust store for
//! the issuer's TLS certificate. Without the `actix` feature no web framework is pulled in.
//!
//! # What it does not do
//!
//! Revocation before expiry is not visible locally: keep tokens short-lived, or use Tessera's
//! introspection endpoint where that matters. DPoP-bound tokens (`cnf.jkt`) and unbound tokens
//! are refused. Behind a TLS-terminating proxy, the certificate must reach the application by a
//! channel clients cannot forge; insert a [`actix::PeerCertificate`] into the request extensions
//! from a middleware that checks it.
//!
//! # Usage
//!
//! ```no_run
//! use tessera_resource_server::{Validator, ValidatorConfig};
//!
//! # async fn run(client: reqwest::Client, token: &str, cert_der: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! // `client`: a reqwest::Client trusting the CA of the issuer's TLS certificate.
//! let config = ValidatorConfig::new("https://as.bank.example", "https://rs.bank.example", "https://as.bank.example/jwks");
//! let validator = Validator::new(config, client);
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
//! let token = validator.validate(token, Some(cert_der), now).await?;
//! token.require_scope("accounts:read")?;
//! println!("{} may read accounts", token.client_id);
//! # Ok(())
//! # }
//! ```
//!
//! With actix-web, register `web::Data::new(validator)`, install
//! [`actix::capture_peer_certificate`] with `HttpServer::on_connect`, and take
//! [`actix::Authenticated`] (or [`actix::RequireScope`]) as a handler argument; see the
//! [`actix`] module and `examples/resource_server.rs`.

pub mod error;
pub mod jwks;
pub mod request;
pub mod validator;

#[cfg(feature = "actix")]
pub mod actix;

pub use error::{ErrorParts, InvalidToken, RsError, error_parts};
pub use jwks::{
    DEFAULT_MAX_DOCUMENT_BYTES, HttpJwksFetcher, JwksCache, JwksError, JwksFetcher, JwksOptions, KeySet,
    discover_jwks_uri,
};
pub use validator::{AccessToken, Algorithm, Validator, ValidatorConfig, x5t_s256};
