//! The issuer's signing keys: fetched from its `jwks_uri`, cached, refreshed on an unknown `kid`
//! at most once per interval, served from the cache when a refresh fails.
//!
//! Refresh rules:
//! - a token names a `kid` the cached set does not have: fetch, unless a fetch for an unknown
//!   `kid` was made less than `min_refresh_interval` (10 s) ago. Concurrent callers wait for the
//!   one fetch in flight and do not start their own, so a flood of tokens with random `kid`s
//!   costs at most one request to the issuer per interval. (Only such fetches count here, so a
//!   key that appears just after the initial load is picked up at once.)
//! - no keys yet (first use, or every attempt failed), or the cached copy is older than
//!   `max_age` (5 min): fetch, unless any fetch was attempted less than `min_refresh_interval`
//!   ago. Callers that find a stale copy while a refresh is running use the stale copy
//!   meanwhile. Tessera publishes a new key before it signs with it, so this normally picks up a
//!   rotation before the first token needs it, and it also drops keys the issuer withdrew.
//! - a failed fetch (network, HTTP status, not a JWKS, no usable key) keeps the previous copy.
//!
//! So the issuer sees at most two fetches per interval from one cache, whatever the traffic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jws::{ES256, EdDSA, JwsVerifier, PS256};
use serde_json::{Map, Value};

use crate::error::RsError;
use crate::validator::Algorithm;

/// Tuning of a [`JwksCache`]. The defaults suit production; tests shorten the intervals.
#[derive(Clone, Debug)]
pub struct JwksOptions {
    /// At most one fetch per this interval, whatever the traffic (default 10 s).
    pub min_refresh_interval: Duration,
    /// A copy older than this is refreshed on use (default 300 s).
    pub max_age: Duration,
    /// Upper bound of one fetch, on top of the client's own timeouts (default 10 s).
    pub fetch_timeout: Duration,
}

/// [`HttpJwksFetcher`] and [`discover_jwks_uri`] refuse larger documents by default.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 256 * 1024;

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            min_refresh_interval: Duration::from_secs(10),
            max_age: Duration::from_secs(300),
            fetch_timeout: Duration::from_secs(10),
        }
    }
}

/// Problems with a key set document or its fetch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    #[error("fetching the key set failed: {0}")]
    Fetch(String),
    #[error("not a usable JWKS: {0}")]
    Invalid(String),
}

/// Where the key set document comes from. [`HttpJwksFetcher`] is the real one; tests inject
/// their own to count fetches or simulate failures.
#[async_trait]
pub trait JwksFetcher: Send + Sync {
    /// The raw JWKS document (`{"keys": [...]}`).
    async fn fetch(&self) -> Result<Vec<u8>, JwksError>;
}

/// GET of the issuer's `jwks_uri` with a `reqwest::Client` the application built, so that the
/// application chooses the trust store. Build that client with
/// `redirect(reqwest::redirect::Policy::none())` and `https_only(true)`: a redirect is never
/// needed to reach a key set.
pub struct HttpJwksFetcher {
    client: reqwest::Client,
    uri: String,
    max_bytes: usize,
}

impl HttpJwksFetcher {
    pub fn new(client: reqwest::Client, uri: impl Into<String>) -> Self {
        HttpJwksFetcher { client, uri: uri.into(), max_bytes: DEFAULT_MAX_DOCUMENT_BYTES }
    }

    /// Refuse documents larger than `max_bytes` (default [`DEFAULT_MAX_DOCUMENT_BYTES`]).
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }
}

#[async_trait]
impl JwksFetcher for HttpJwksFetcher {
    async fn fetch(&self) -> Result<Vec<u8>, JwksError> {
        get_json_bytes(&self.client, &self.uri, self.max_bytes).await
    }
}

/// A bounded GET that expects a 2xx JSON document.
pub(crate) async fn get_json_bytes(client: &reqwest::Client, uri: &str, max: usize) -> Result<Vec<u8>, JwksError> {
    let fail = |what: String| JwksError::Fetch(format!("GET {uri}: {what}"));
    let mut resp = client
        .get(uri)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| fail(error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(fail(format!("HTTP {}", resp.status())));
    }
    if resp.content_length().is_some_and(|l| l > max as u64) {
        return Err(fail(format!("larger than {max} bytes")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(error_chain(&e)))? {
        if body.len() + chunk.len() > max {
            return Err(fail(format!("larger than {max} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// reqwest's top-level message ("error sending request") hides the TLS cause; keep the chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// One usable public key, with its verifier built once.
struct VerificationKey {
    kid: Option<String>,
    alg: Algorithm,
    verifier: Box<dyn JwsVerifier>,
}

/// An immutable, parsed key set.
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.iter().map(|k| (k.kid.as_deref(), k.alg.as_str()))).finish()
    }
}

impl KeySet {
    /// Parses `{"keys": [...]}`. Keys that cannot verify one of our algorithms (other key types,
    /// `use` other than `sig`, `alg` outside PS256/ES256/EdDSA, RSA under 2048 bits, Ed448,
    /// private members present) are skipped; a set without any usable key is an error.
    pub fn parse(doc: &[u8]) -> Result<KeySet, JwksError> {
        let doc: Value = serde_json::from_slice(doc).map_err(|e| JwksError::Invalid(format!("not JSON: {e}")))?;
        let keys =
            doc.get("keys").and_then(Value::as_array).ok_or_else(|| JwksError::Invalid("no \"keys\" array".into()))?;
        let mut out = Vec::new();
        for key in keys {
            let Some(map) = key.as_object() else { continue };
            for alg in algorithms_for(map) {
                match verifier_for(alg, map) {
                    Some(verifier) => out.push(VerificationKey {
                        kid: map.get("kid").and_then(Value::as_str).map(str::to_owned),
                        alg,
                        verifier,
                    }),
                    None => tracing::warn!(kid = ?map.get("kid"), alg = alg.as_str(), "skipping an unreadable JWK"),
                }
            }
        }
        if out.is_empty() {
            return Err(JwksError::Invalid("no usable signing key (PS256, ES256 or EdDSA)".into()));
        }
        Ok(KeySet { keys: out })
    }

    /// Whether any key carries this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifiers for a token header: the key with that `kid` and algorithm, or, when the token
    /// has no `kid`, every key of that algorithm.
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a dyn JwsVerifier> + 'a {
        self.keys
            .iter()
            .filter(move |k| k.alg == alg && kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .map(|k| k.verifier.as_ref())
    }
}

/// The algorithms a JWK may verify: its `alg` when it names one, else what its type implies.
fn algorithms_for(jwk: &Map<String, Value>) -> Vec<Algorithm> {
    let str_of = |name: &str| jwk.get(name).and_then(Value::as_str);
    if str_of("use").is_some_and(|u| u != "sig") {
        return vec![];
    }
    // A "public" key set that carries private members is a broken issuer: do not use it.
    if ["d", "p", "q", "k"].iter().any(|m| jwk.contains_key(*m)) {
        tracing::warn!(kid = ?jwk.get("kid"), "the issuer's JWKS contains private key material; key ignored");
        return vec![];
    }
    let by_type = match (str_of("kty"), str_of("crv")) {
        (Some("EC"), Some("P-256")) => Some(Algorithm::ES256),
        (Some("RSA"), _) => Some(Algorithm::PS256),
        (Some("OKP"), Some("Ed25519")) => Some(Algorithm::EdDSA),
        _ => None,
    };
    match (jwk.get("alg"), by_type) {
        (None, Some(alg)) => vec![alg],
        (Some(Value::String(a)), Some(alg)) if a == alg.as_str() => vec![alg],
        _ => vec![],
    }
}

fn verifier_for(alg: Algorithm, map: &Map<String, Value>) -> Option<Box<dyn JwsVerifier>> {
    let jwk = Jwk::from_map(map.clone()).ok()?;
    Some(match alg {
        Algorithm::ES256 => Box::new(ES256.verifier_from_jwk(&jwk).ok()?),
        Algorithm::PS256 => {
            // FAPI 2.0 §5.4.1: RSA keys of at least 2048 bits.
            let n = URL_SAFE_NO_PAD.decode(map.get("n")?.as_str()?).ok()?;
            let significant = n.iter().skip_while(|b| **b == 0).count();
            if significant < 256 {
                return None;
            }
            Box::new(PS256.verifier_from_jwk(&jwk).ok()?)
        }
        Algorithm::EdDSA => Box::new(EdDSA.verifier_from_jwk(&jwk).ok()?),
    })
}

struct Snapshot {
    keys: Arc<KeySet>,
    fetched_at: Instant,
}

#[derive(Default)]
struct RefreshState {
    /// Any fetch attempt.
    last_attempt: Option<Instant>,
    /// The last attempt made for an unknown `kid`.
    last_unknown_kid: Option<Instant>,
    last_error: Option<String>,
}

/// Why a fetch is wanted; each has its own rate limit (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    NoKeys,
    Stale,
    UnknownKid,
}

enum Source {
    Static,
    Remote(Arc<dyn JwksFetcher>),
}

/// The issuer's key set, cached. Cheap to share: put it in a [`crate::Validator`], which is
/// shared through `web::Data` / `Arc`.
pub struct JwksCache {
    source: Source,
    options: JwksOptions,
    current: RwLock<Option<Snapshot>>,
    refresh: tokio::sync::Mutex<RefreshState>,
    fetches: AtomicU64,
}

impl JwksCache {
    /// Keys fetched from `jwks_uri` with `client` (which carries the trust store for the
    /// issuer's TLS certificate). Nothing is fetched until the first token needs a key; call
    /// [`JwksCache::prefetch`] to fail early.
    pub fn new(client: reqwest::Client, jwks_uri: impl Into<String>) -> Self {
        Self::with_fetcher(Arc::new(HttpJwksFetcher::new(client, jwks_uri)), JwksOptions::default())
    }

    /// Keys from any [`JwksFetcher`], with explicit options.
    pub fn with_fetcher(fetcher: Arc<dyn JwksFetcher>, options: JwksOptions) -> Self {
        JwksCache {
            source: Source::Remote(fetcher),
            options,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
            fetches: AtomicU64::new(0),
        }
    }

    /// A fixed key set that is never refreshed (tests, air-gapped deployments).
    pub fn from_static(jwks_json: &str) -> Result<Self, JwksError> {
        let keys = KeySet::parse(jwks_json.as_bytes())?;
        Ok(JwksCache {
            source: Source::Static,
            options: JwksOptions::default(),
            current: RwLock::new(Some(Snapshot { keys: Arc::new(keys), fetched_at: Instant::now() })),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
            fetches: AtomicU64::new(0),
        })
    }

    /// How many fetches were attempted (successful or not) since creation.
    pub fn fetch_attempts(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Loads the key set now (subject to the rate limit); an error if no copy is available.
    pub async fn prefetch(&self) -> Result<Arc<KeySet>, RsError> {
        self.keys_for(None).await
    }

    fn snapshot(&self) -> Option<(Arc<KeySet>, Instant)> {
        let guard = self.current.read().unwrap_or_else(PoisonError::into_inner);
        guard.as_ref().map(|s| (s.keys.clone(), s.fetched_at))
    }

    /// The key set to verify a token with this `kid`, refreshed first when the `kid` is unknown
    /// or the copy is stale (within the rate limit). The caller still has to find the key: after
    /// a refresh that did not bring it, it is an unknown key.
    pub(crate) async fn keys_for(&self, kid: Option<&str>) -> Result<Arc<KeySet>, RsError> {
        let Source::Remote(fetcher) = &self.source else {
            return self.snapshot().map(|(k, _)| k).ok_or(RsError::Misconfigured("static key set is empty"));
        };
        let known = |keys: &KeySet| kid.is_none_or(|kid| keys.has_kid(kid));
        let last_error = match self.snapshot() {
            Some((keys, at)) if known(&keys) => {
                if at.elapsed() < self.options.max_age {
                    return Ok(keys);
                }
                // Stale but usable: refresh unless someone already is; never wait for it.
                let Ok(state) = self.refresh.try_lock() else {
                    return Ok(keys);
                };
                self.refresh_locked(fetcher.as_ref(), state, Reason::Stale).await
            }
            before => {
                let reason = if before.is_some() { Reason::UnknownKid } else { Reason::NoKeys };
                let state = self.refresh.lock().await;
                // A refresh that finished while we waited may have brought the key.
                if let Some((keys, _)) = self.snapshot().filter(|(k, _)| known(k)) {
                    return Ok(keys);
                }
                self.refresh_locked(fetcher.as_ref(), state, reason).await
            }
        };
        self.snapshot().map(|(keys, _)| keys).ok_or_else(|| RsError::Unavailable {
            internal: last_error.unwrap_or_else(|| "no key set fetched yet".to_owned()),
        })
    }

    /// Fetches unless the rate limit for `reason` forbids it; returns the last fetch error, if
    /// the last attempt failed.
    async fn refresh_locked(
        &self,
        fetcher: &dyn JwksFetcher,
        mut state: tokio::sync::MutexGuard<'_, RefreshState>,
        reason: Reason,
    ) -> Option<String> {
        let recent = |t: Option<Instant>| t.is_some_and(|t| t.elapsed() < self.options.min_refresh_interval);
        let limited_by = if reason == Reason::UnknownKid { state.last_unknown_kid } else { state.last_attempt };
        if recent(limited_by) {
            return state.last_error.clone();
        }
        let now = Instant::now();
        state.last_attempt = Some(now);
        if reason == Reason::UnknownKid {
            state.last_unknown_kid = Some(now);
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = match tokio::time::timeout(self.options.fetch_timeout, fetcher.fetch()).await {
            Ok(Ok(bytes)) => KeySet::parse(&bytes),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(JwksError::Fetch(format!("timed out after {:?}", self.options.fetch_timeout))),
        };
        match result {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), ?reason, "issuer key set refreshed");
                let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
                *current = Some(Snapshot { keys: Arc::new(keys), fetched_at: Instant::now() });
                state.last_error = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, ?reason, "fetching the issuer key set failed; keeping the cached copy if any");
                state.last_error = Some(e.to_string());
            }
        }
        state.last_error.clone()
    }
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("static", &matches!(self.source, Source::Static))
            .field("keys", &self.snapshot().map(|(k, _)| k))
            .field("fetch_attempts", &self.fetch_attempts())
            .finish()
    }
}

/// RFC 8414 discovery: reads `<issuer>/.well-known/oauth-authorization-server` (the well-known
/// segment goes between host and path, §3.1), checks that its `issuer` is exactly `issuer`
/// (§3.3) and returns its `jwks_uri`.
pub async fn discover_jwks_uri(client: &reqwest::Client, issuer: &str) -> Result<String, JwksError> {
    let url =
        metadata_url(issuer).ok_or_else(|| JwksError::Invalid(format!("issuer {issuer:?} is not an https URL")))?;
    let bytes = get_json_bytes(client, &url, DEFAULT_MAX_DOCUMENT_BYTES).await?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| JwksError::Invalid(format!("{url}: not JSON: {e}")))?;
    match doc.get("issuer").and_then(Value::as_str) {
        Some(found) if found == issuer => {}
        found => return Err(JwksError::Invalid(format!("{url}: issuer is {found:?}, expected {issuer:?}"))),
    }
    doc.get("jwks_uri")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| JwksError::Invalid(format!("{url}: no jwks_uri")))
}

/// `https://host/path` → `https://host/.well-known/oauth-authorization-server/path`.
fn metadata_url(issuer: &str) -> Option<String> {
    let rest = issuer.strip_prefix("https://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return None;
    }
    Some(format!("https://{authority}/.well-known/oauth-authorization-server{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_url_puts_well_known_between_host_and_path() {
        assert_eq!(
            metadata_url("https://as.example").as_deref(),
            Some("https://as.example/.well-known/oauth-authorization-server")
        );
        assert_eq!(
            metadata_url("https://as.example:8443/tenant/a").as_deref(),
            Some("https://as.example:8443/.well-known/oauth-authorization-server/tenant/a")
        );
        assert_eq!(metadata_url("http://as.example"), None);
        assert_eq!(metadata_url("https:///x"), None);
    }

    #[test]
    fn key_selection_rules() {
        let ec = json!({"kty":"EC","crv":"P-256","x":"x","y":"y"});
        assert_eq!(algorithms_for(ec.as_object().unwrap()), vec![Algorithm::ES256]);
        let ec_enc = json!({"kty":"EC","crv":"P-256","use":"enc"});
        assert!(algorithms_for(ec_enc.as_object().unwrap()).is_empty());
        let rs256 = json!({"kty":"RSA","alg":"RS256","n":"x","e":"AQAB"});
        assert!(algorithms_for(rs256.as_object().unwrap()).is_empty());
        let ps256 = json!({"kty":"RSA","alg":"PS256","n":"x","e":"AQAB"});
        assert_eq!(algorithms_for(ps256.as_object().unwrap()), vec![Algorithm::PS256]);
        let ed448 = json!({"kty":"OKP","crv":"Ed448","x":"x"});
        assert!(algorithms_for(ed448.as_object().unwrap()).is_empty());
        let private = json!({"kty":"EC","crv":"P-256","x":"x","y":"y","d":"d"});
        assert!(algorithms_for(private.as_object().unwrap()).is_empty());
        let hmac = json!({"kty":"oct","k":"c2VjcmV0"});
        assert!(algorithms_for(hmac.as_object().unwrap()).is_empty());
    }

    #[test]
    fn documents_without_usable_keys_are_errors() {
        assert!(matches!(KeySet::parse(b"nope"), Err(JwksError::Invalid(_))));
        assert!(matches!(KeySet::parse(b"{}"), Err(JwksError::Invalid(_))));
        assert!(matches!(KeySet::parse(br#"{"keys":[]}"#), Err(JwksError::Invalid(_))));
        assert!(matches!(KeySet::parse(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#), Err(JwksError::Invalid(_))));
    }
}
