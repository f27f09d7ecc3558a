//! What the server's configuration tells registration: trusted directories, the role-to-scope
//! mapping, how a transport certificate must belong to the software, tier lifetimes.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tessera_core::Issuer;
use tessera_core::keys::SigningAlg;
use tessera_jose::{Jwk, PreparedJwks};

/// Where a directory's (or a software's) public keys come from.
#[async_trait]
pub trait JwksSource: Send + Sync {
    /// The keys; `refresh` asks for a fresh copy (a `kid` was not found), which an
    /// implementation may rate-limit.
    async fn keys(&self, refresh: bool) -> Result<Vec<Jwk>, String>;

    /// The same keys with their verifiers built: what verifying a software statement uses.
    /// Building a verifier costs more than a verification, so implementations keep the prepared
    /// set as long as the keys; this default prepares them on every call.
    async fn prepared(&self, refresh: bool) -> Result<Arc<PreparedJwks>, String> {
        Ok(Arc::new(PreparedJwks::new(&self.keys(refresh).await?)))
    }
}

/// Keys given once (a JWKS file read at start), prepared once.
pub struct StaticJwks {
    keys: Vec<Jwk>,
    prepared: Arc<PreparedJwks>,
}

impl StaticJwks {
    pub fn new(keys: Vec<Jwk>) -> StaticJwks {
        let prepared = Arc::new(PreparedJwks::new(&keys));
        StaticJwks { keys, prepared }
    }
}

#[async_trait]
impl JwksSource for StaticJwks {
    async fn keys(&self, _refresh: bool) -> Result<Vec<Jwk>, String> {
        Ok(self.keys.clone())
    }

    async fn prepared(&self, _refresh: bool) -> Result<Arc<PreparedJwks>, String> {
        Ok(self.prepared.clone())
    }
}

/// Fetches a JWKS from an https URL (the directory's `jwks_uri`, a software's
/// `software_jwks_endpoint`). Implemented by the server with its own trust store.
#[async_trait]
pub trait JwksFetcher: Send + Sync {
    async fn fetch(&self, url: &str) -> Result<Vec<Jwk>, String>;
}

/// A software-statement issuer the bank trusts.
#[derive(Clone)]
pub struct Directory {
    /// The SSA `iss` value.
    pub issuer: String,
    pub keys: Arc<dyn JwksSource>,
    /// Accepted SSA algorithms (a subset of PS256, ES256, EdDSA).
    pub algorithms: Vec<SigningAlg>,
    /// Oldest acceptable SSA, by `iat`.
    pub max_ssa_age_secs: i64,
    /// Whether one SSA (`jti`) may register more than one client.
    pub allow_reuse: bool,
}

/// How the caller's transport certificate must belong to the software the SSA names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportBinding {
    /// Any certificate from a trusted CA.
    None,
    /// The certificate names the SSA's organisation: `OU` or `organizationIdentifier`
    /// (2.5.4.97, also in the `OFBBR-<org_id>` / `PSDGB-…-<org_id>` forms) equals `org_id`.
    Organisation,
    /// As `Organisation`, and the certificate's `CN` is the SSA's `software_id` (UK Open Banking
    /// transport certificates).
    OrganisationAndSoftware,
}

/// Which registration request format is accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Profile {
    /// RFC 7591 JSON with a `software_statement`; RFC 7592 management with the registration
    /// access token.
    Rfc7591,
    /// UK Open Banking DCR v3.3: a signed request JWT; management with a client-credentials
    /// access token. `audiences` are the accepted request `aud` values.
    UkOpenBanking { audiences: Vec<String> },
}

#[derive(Clone)]
pub struct RegistrationSettings {
    pub issuer: Issuer,
    pub profile: Profile,
    pub directories: Vec<Directory>,
    /// SSA role -> scopes that role may request. Empty: no role restriction (the policy decides).
    pub role_scopes: BTreeMap<String, Vec<String>>,
    pub transport_binding: TransportBinding,
    /// Risk tier -> client lifetime in seconds (`expires_at = created + lifetime`).
    pub tier_lifetimes: BTreeMap<String, i64>,
    pub default_lifetime_secs: i64,
    pub max_body_bytes: usize,
    /// Fetches `software_jwks_endpoint` for the UK profile's signed requests.
    pub software_jwks: Option<Arc<dyn JwksFetcher>>,
}

impl RegistrationSettings {
    pub fn directory(&self, issuer: &str) -> Option<&Directory> {
        self.directories.iter().find(|d| d.issuer == issuer)
    }

    pub fn lifetime_for(&self, tier: &str) -> i64 {
        self.tier_lifetimes.get(tier).copied().unwrap_or(self.default_lifetime_secs)
    }
}
