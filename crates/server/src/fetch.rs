//! Fetching JWKS documents over TLS (directory `jwks_uri`, software `software_jwks_endpoint`),
//! with a trust store of their own, bounded size and time, and a cache that refreshes on an
//! unknown `kid` at most once per interval (so a flood of bad statements cannot turn the server
//! into a load generator against the directory).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rustls_pki_types::CertificateDer;
use tessera_client_registration::JwksSource;
use tessera_client_registration::settings::JwksFetcher;
use tessera_jose::{Jwk, PreparedJwks};
use tokio::sync::Mutex;

const MAX_JWKS_BYTES: usize = 256 * 1024;
const CACHE_TTL: Duration = Duration::from_secs(300);
const MIN_REFRESH: Duration = Duration::from_secs(10);

/// An https client trusting only `cas`; no redirects (SSRF), short timeouts.
pub fn client(cas: &[CertificateDer<'static>]) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    for ca in cas {
        b = b.add_root_certificate(reqwest::Certificate::from_der(ca.as_ref()).map_err(|e| e.to_string())?);
    }
    b.build().map_err(|e| e.to_string())
}

pub async fn fetch_jwks(client: &reqwest::Client, url: &str) -> Result<Vec<Jwk>, String> {
    let resp = client.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("GET {url}: HTTP {}", resp.status()));
    }
    if resp.content_length().is_some_and(|l| l as usize > MAX_JWKS_BYTES) {
        return Err(format!("GET {url}: JWKS larger than {MAX_JWKS_BYTES} bytes"));
    }
    let bytes = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(format!("GET {url}: JWKS larger than {MAX_JWKS_BYTES} bytes"));
    }
    parse_jwks(&bytes).map_err(|e| format!("{url}: {e}"))
}

pub fn parse_jwks(bytes: &[u8]) -> Result<Vec<Jwk>, String> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let keys = doc.get("keys").and_then(|k| k.as_array()).ok_or("not a JWKS (no keys array)")?;
    // Keys that josekit cannot read are skipped rather than failing the whole set.
    Ok(keys.iter().filter_map(|k| k.as_object().and_then(|m| Jwk::from_map(m.clone()).ok())).collect())
}

/// A remote JWKS, cached.
pub struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    cache: Mutex<Option<Fetched>>,
}

/// The keys, their prepared verifiers (built once per fetch) and when they were fetched.
type Fetched = (Vec<Jwk>, Arc<PreparedJwks>, Instant);

impl RemoteJwks {
    pub fn new(url: String, client: reqwest::Client) -> RemoteJwks {
        RemoteJwks { url, client, cache: Mutex::new(None) }
    }

    async fn current(&self, refresh: bool) -> Result<(Vec<Jwk>, Arc<PreparedJwks>), String> {
        let mut cache = self.cache.lock().await;
        if let Some((keys, prepared, at)) = cache.as_ref() {
            let age = at.elapsed();
            if age < CACHE_TTL && (!refresh || age < MIN_REFRESH) {
                return Ok((keys.clone(), prepared.clone()));
            }
        }
        match fetch_jwks(&self.client, &self.url).await {
            Ok(keys) => {
                let prepared = Arc::new(PreparedJwks::new(&keys));
                *cache = Some((keys.clone(), prepared.clone(), Instant::now()));
                Ok((keys, prepared))
            }
            // Serve the last good copy while the directory is unreachable.
            Err(e) => match cache.as_ref() {
                Some((keys, prepared, _)) => {
                    tracing::warn!(error = %e, "JWKS refresh failed; using the cached copy");
                    Ok((keys.clone(), prepared.clone()))
                }
                None => Err(e),
            },
        }
    }
}

#[async_trait]
impl JwksSource for RemoteJwks {
    async fn keys(&self, refresh: bool) -> Result<Vec<Jwk>, String> {
        Ok(self.current(refresh).await?.0)
    }

    async fn prepared(&self, refresh: bool) -> Result<Arc<PreparedJwks>, String> {
        Ok(self.current(refresh).await?.1)
    }
}

/// Fetches software JWKS endpoints named in statements (UK profile).
pub struct HttpJwksFetcher(pub reqwest::Client);

#[async_trait]
impl JwksFetcher for HttpJwksFetcher {
    async fn fetch(&self, url: &str) -> Result<Vec<Jwk>, String> {
        fetch_jwks(&self.0, url).await
    }
}

pub fn shared(client: reqwest::Client) -> Arc<dyn JwksFetcher> {
    Arc::new(HttpJwksFetcher(client))
}

/// A client's keys: `jwks` by value (parsed once per registration version) or `jwks_uri`
/// (fetched with the configured trust store, cached per URL).
pub struct ClientKeyCache {
    client: reqwest::Client,
    inline: std::sync::Mutex<std::collections::HashMap<String, (i64, Vec<Jwk>)>>,
    remote: Mutex<std::collections::HashMap<String, Arc<RemoteJwks>>>,
}

impl ClientKeyCache {
    pub fn new(client: reqwest::Client) -> ClientKeyCache {
        ClientKeyCache { client, inline: Default::default(), remote: Mutex::new(Default::default()) }
    }
}

#[async_trait]
impl tessera_token_endpoint::ClientKeys for ClientKeyCache {
    async fn keys(&self, client: &tessera_core::client::CachedClient, refresh: bool) -> Result<Vec<Jwk>, String> {
        use tessera_core::client::RegisteredKeys;
        match client.auth().keys() {
            Some(RegisteredKeys::Jwks(jwks)) => {
                let id = client.client_id.to_string();
                let version = client.updated_at.0;
                if let Ok(cache) = self.inline.lock()
                    && let Some((cached_version, keys)) = cache.get(&id)
                    && *cached_version == version
                {
                    return Ok(keys.clone());
                }
                let keys = parse_jwks(jwks.as_bytes())?;
                if let Ok(mut cache) = self.inline.lock() {
                    cache.insert(id, (version, keys.clone()));
                }
                Ok(keys)
            }
            Some(RegisteredKeys::JwksUri(uri)) => {
                let source = {
                    let mut remote = self.remote.lock().await;
                    remote
                        .entry(uri.to_string())
                        .or_insert_with(|| Arc::new(RemoteJwks::new(uri.to_string(), self.client.clone())))
                        .clone()
                };
                source.keys(refresh).await
            }
            None => Ok(vec![]),
        }
    }
}

/// The directories' organisation status services (`org_status_uri`), for the sweeper.
pub struct HttpOrgStatus {
    /// directory issuer -> (URI template with `{org_id}`, client trusting that directory's CAs)
    pub directories: std::collections::HashMap<String, (String, reqwest::Client)>,
}

#[async_trait]
impl tessera_admin::service::OrgStatusSource for HttpOrgStatus {
    async fn status(&self, directory: &str, org_id: &str) -> Option<String> {
        let (template, client) = self.directories.get(directory)?;
        // The id goes into a path segment: keep it to characters that need no escaping.
        if org_id.is_empty() || !org_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return None;
        }
        let url = template.replace("{org_id}", org_id);
        let resp = match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                tracing::warn!(url = %url, status = %r.status(), "organisation status check refused");
                return None;
            }
            Err(e) => {
                tracing::warn!(url = %url, error = %e, "organisation status check failed");
                return None;
            }
        };
        let body: serde_json::Value = resp.json().await.ok()?;
        body.get("status").or_else(|| body.get("org_status")).and_then(|s| s.as_str()).map(str::to_owned)
    }
}
