//! The server's signing keys: loaded from the database, decrypted with the key-encryption key,
//! cached in memory (the hot path never reads SQL), and rebuilt when a key is added (by `tessera
//! keys rotate`, possibly from another host) or changes state by time alone.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tessera_core::discovery::MetadataFragment;
use tessera_core::keys::{
    KeyState, KeyTimeline, RotationPolicy, SignError, SigningAlg, TokenSigner, classify, next_activation,
};
use tessera_core::{Clock, KeyId, OsRng, Rng, UnixTime};
use tessera_jose::{KeyEncryptionKey, KeySet, LoadedKey};
use tessera_store::{KeyStore, StoreError, StoredKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Jose(#[from] tessera_jose::JoseError),
    #[error("signing the discovery document failed: {0}")]
    Sign(#[from] SignError),
    #[error("random source failed: {0}")]
    Rng(#[from] tessera_core::RngError),
}

/// What the server publishes and signs with at one moment.
pub struct Published {
    pub keyset: Arc<KeySet>,
    pub jwks_json: String,
    pub discovery_json: String,
}

pub struct KeyService {
    store: Arc<dyn KeyStore>,
    kek: KeyEncryptionKey,
    clock: Arc<dyn Clock>,
    policy: RotationPolicy,
    metadata: MetadataFragment,
    /// The keys as last read from the store: if the store is down, time-driven transitions are
    /// still applied from this copy.
    stored: RwLock<Vec<StoredKey>>,
    current: RwLock<Arc<Published>>,
}

fn to_loaded(keys: &[StoredKey]) -> Vec<LoadedKey> {
    keys.iter()
        .map(|k| LoadedKey {
            timeline: k.timeline(),
            public_jwk: k.public_jwk.clone(),
            private_jwe: k.private_jwe.clone(),
        })
        .collect()
}

fn new_kid(alg: SigningAlg, now: UnixTime) -> Result<KeyId, KeyError> {
    let date =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(now.0.max(0) as u64)).to_string();
    let day: String = date.chars().take(10).filter(|c| *c != '-').collect();
    Ok(KeyId::new(format!("{}-{day}-{}", alg.as_str().to_ascii_lowercase(), OsRng.token(9)?)))
}

/// Generates a key, encrypts its private part and stores it to activate at `activates_at`.
async fn create_key(
    store: &dyn KeyStore,
    kek: &KeyEncryptionKey,
    alg: SigningAlg,
    now: UnixTime,
    activates_at: UnixTime,
) -> Result<StoredKey, KeyError> {
    let kid = new_kid(alg, now)?;
    let material = tessera_jose::generate(alg, kid.clone())?;
    let key = StoredKey {
        kid,
        alg,
        created_at: now,
        activates_at,
        public_jwk: Value::Object(material.public_jwk.as_ref().clone()).to_string(),
        private_jwe: kek.encrypt_jwk(&material.private_jwk)?,
    };
    store.insert_key(&key).await?;
    Ok(key)
}

/// `tessera keys rotate`: adds the next key, published now, signing after pre-publication.
pub async fn rotate(
    store: &dyn KeyStore,
    kek: &KeyEncryptionKey,
    clock: &dyn Clock,
    policy: RotationPolicy,
    alg: SigningAlg,
) -> Result<StoredKey, KeyError> {
    let now = clock.now();
    let existing: Vec<KeyTimeline> = store.list_keys().await?.iter().map(StoredKey::timeline).collect();
    let activates_at = next_activation(&existing, now, policy);
    create_key(store, kek, alg, now, activates_at).await
}

/// `tessera keys list`: every key with its state now.
pub async fn list(
    store: &dyn KeyStore,
    clock: &dyn Clock,
    policy: RotationPolicy,
) -> Result<Vec<(KeyTimeline, KeyState)>, KeyError> {
    let timelines: Vec<KeyTimeline> = store.list_keys().await?.iter().map(StoredKey::timeline).collect();
    Ok(classify(&timelines, clock.now(), policy))
}

impl KeyService {
    /// Loads the keys; on an empty database creates the first key, active at once (nothing can
    /// have cached an older key set, so there is nothing to pre-publish to).
    pub async fn start(
        store: Arc<dyn KeyStore>,
        kek: KeyEncryptionKey,
        clock: Arc<dyn Clock>,
        policy: RotationPolicy,
        alg: SigningAlg,
        metadata: MetadataFragment,
    ) -> Result<Arc<KeyService>, KeyError> {
        let mut stored = store.list_keys().await?;
        if stored.is_empty() {
            let now = clock.now();
            let key = create_key(store.as_ref(), &kek, alg, now, now).await?;
            tracing::info!(kid = %key.kid, alg = %alg, "created the first signing key");
            stored = store.list_keys().await?;
        }
        let published = build(&stored, &kek, clock.now(), policy, &metadata)?;
        Ok(Arc::new(KeyService {
            store,
            kek,
            clock,
            policy,
            metadata,
            stored: RwLock::new(stored),
            current: RwLock::new(Arc::new(published)),
        }))
    }

    pub fn published(&self) -> Arc<Published> {
        // A poisoned lock means a panic while swapping an Arc; the value inside is still whole.
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn signer(&self) -> Arc<KeySet> {
        self.published().keyset.clone()
    }

    /// Re-reads the store (falling back to the last copy when it is unreachable) and rebuilds.
    pub async fn reload(&self) -> Result<(), KeyError> {
        let fresh = self.store.list_keys().await;
        let stored = match fresh {
            Ok(keys) => {
                if let Ok(mut g) = self.stored.write() {
                    *g = keys.clone();
                }
                keys
            }
            Err(e) => {
                tracing::warn!(error = %e, "key store unreachable; applying key transitions from the cached key list");
                match self.stored.read() {
                    Ok(g) => g.clone(),
                    Err(p) => p.into_inner().clone(),
                }
            }
        };
        let before = self.published().keyset.active_kid().cloned();
        let published = build(&stored, &self.kek, self.clock.now(), self.policy, &self.metadata)?;
        let after = published.keyset.active_kid().cloned();
        if before != after {
            tracing::info!(previous = ?before.as_ref().map(KeyId::as_str), active = ?after.as_ref().map(KeyId::as_str), "signing key switched");
        }
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(published),
            Err(p) => *p.into_inner() = Arc::new(published),
        }
        Ok(())
    }

    /// Reloads every `interval`, and exactly at the next time-driven transition.
    pub fn spawn_refresher(self: Arc<Self>, interval: Duration) {
        actix_web::rt::spawn(async move {
            loop {
                let now = self.clock.now();
                let until_transition = self
                    .published()
                    .keyset
                    .next_transition(now, self.policy)
                    .map(|t| Duration::from_secs((t.0 - now.0).max(0) as u64));
                let wait = until_transition.map_or(interval, |t| t.min(interval));
                actix_web::rt::time::sleep(wait.max(Duration::from_millis(200))).await;
                if let Err(e) = self.reload().await {
                    tracing::error!(error = %e, "rebuilding the key set failed; keeping the previous one");
                }
            }
        });
    }
}

impl tessera_core::keys::AccessTokenVerifier for KeyService {
    fn verify(&self, token: &str, typ: &str) -> Option<serde_json::Map<String, Value>> {
        self.signer().verify(token, typ).ok().map(|v| v.claims)
    }
}

/// Introspection's and revocation's verifier: [`KeyService`] behind a cache of tokens whose
/// signature already verified (`[introspection] verified_cache_entries`). A gateway asks about the
/// same token many times during its few minutes of life, and the signature check is two thirds of
/// an introspection's CPU. Revocation and client state are still checked on every call by the
/// caller; an entry is dropped when its key leaves the published set (`tessera_jose::VerifiedTokenCache`).
pub struct CachingVerifier {
    keys: Arc<KeyService>,
    cache: tessera_jose::VerifiedTokenCache,
}

impl CachingVerifier {
    pub fn new(keys: Arc<KeyService>, entries: usize) -> CachingVerifier {
        CachingVerifier { keys, cache: tessera_jose::VerifiedTokenCache::new(entries) }
    }
}

impl tessera_core::keys::AccessTokenVerifier for CachingVerifier {
    fn verify(&self, token: &str, typ: &str) -> Option<serde_json::Map<String, Value>> {
        let keyset = self.keys.signer();
        let now = self.keys.clock.now();
        if let Some(claims) = self.cache.get(token, typ, now, |kid| keyset.publishes(kid)) {
            return Some(claims);
        }
        let verified = keyset.verify(token, typ).ok()?;
        if let Some(kid) = verified.header.get("kid").and_then(Value::as_str) {
            self.cache.insert(token, typ, kid, &verified.claims, now);
        }
        Some(verified.claims)
    }
}

impl tessera_core::keys::SignerSource for KeyService {
    fn current(&self) -> Arc<dyn TokenSigner> {
        self.signer()
    }
}

fn build(
    stored: &[StoredKey],
    kek: &KeyEncryptionKey,
    now: UnixTime,
    policy: RotationPolicy,
    metadata: &MetadataFragment,
) -> Result<Published, KeyError> {
    let keyset = KeySet::build(to_loaded(stored), kek, now, policy)?;
    let mut document = metadata.clone();
    // RFC 8414 §2.1 signed metadata: the same members, signed by the issuer's current key, so a
    // client can check the document came from the key holder.
    let mut claims = metadata.clone();
    if let Some(iss) = metadata.get("issuer") {
        claims.insert("iss".into(), iss.clone());
    }
    claims.insert("iat".into(), json!(now.0));
    if keyset.active_kid().is_some() {
        let signed = keyset.sign("JWT", &claims)?;
        document.insert("signed_metadata".into(), Value::String(signed.compact));
    }
    Ok(Published {
        jwks_json: keyset.jwks_json().to_owned(),
        discovery_json: Value::Object(document).to_string(),
        keyset: Arc::new(keyset),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::FixedClock;
    use tessera_store::MemoryStore;

    const POLICY: RotationPolicy = RotationPolicy { prepublication_secs: 100, retention_secs: 1000 };

    fn metadata() -> MetadataFragment {
        json!({"issuer": "https://as.example"}).as_object().unwrap().clone()
    }

    #[tokio::test]
    async fn first_start_creates_an_active_key_and_signs_metadata() {
        let store: Arc<dyn KeyStore> = Arc::new(MemoryStore::new());
        let clock = FixedClock::new(1_000_000);
        let kek = KeyEncryptionKey::from_bytes([3; 32]);
        let svc = KeyService::start(store.clone(), kek, Arc::new(clock), POLICY, SigningAlg::ES256, metadata())
            .await
            .unwrap();
        let p = svc.published();
        let doc: Value = serde_json::from_str(&p.discovery_json).unwrap();
        let signed = doc["signed_metadata"].as_str().unwrap();
        let v = tessera_jose::verify_with_jwks(signed, p.keyset.published(), None).unwrap();
        assert_eq!(v.claims["iss"], "https://as.example");
        assert_eq!(store.list_keys().await.unwrap().len(), 1);
    }

    /// An ES256 service on a memory store at t = 1,000,000.
    async fn started() -> (Arc<dyn KeyStore>, FixedClock, KeyEncryptionKey, Arc<KeyService>) {
        let store: Arc<dyn KeyStore> = Arc::new(MemoryStore::new());
        let clock = FixedClock::new(1_000_000);
        let kek = KeyEncryptionKey::from_bytes([3; 32]);
        let svc = KeyService::start(
            store.clone(),
            kek.clone(),
            Arc::new(clock.clone()),
            POLICY,
            SigningAlg::ES256,
            metadata(),
        )
        .await
        .unwrap();
        (store, clock, kek, svc)
    }

    #[tokio::test]
    async fn rotation_prepublishes_then_switches() {
        let (store, clock, kek, svc) = started().await;
        let old = svc.signer().active_kid().unwrap().clone();
        let new = rotate(store.as_ref(), &kek, &clock, POLICY, SigningAlg::EdDSA).await.unwrap();
        svc.reload().await.unwrap();
        assert_eq!(svc.signer().published().len(), 2, "new key published before it signs");
        assert_eq!(svc.signer().active_kid(), Some(&old));

        clock.advance(100);
        svc.reload().await.unwrap();
        assert_eq!(svc.signer().active_kid(), Some(&new.kid));
        assert_eq!(svc.signer().published().len(), 2, "old key stays while its tokens live");

        clock.advance(1000);
        svc.reload().await.unwrap();
        assert_eq!(svc.signer().published().len(), 1, "old key unpublished after retention");
        let states = list(store.as_ref(), &clock, POLICY).await.unwrap();
        let labels: Vec<_> = states.iter().map(|(_, s)| s.label()).collect();
        assert_eq!(labels, vec!["expired", "active"]);
    }

    /// A verified token is served from the cache only while its key is published and before its
    /// exp; any other bytes are verified afresh.
    #[tokio::test]
    async fn caching_verifier_follows_the_published_keys() {
        use tessera_core::keys::AccessTokenVerifier;
        let (store, clock, kek, svc) = started().await;
        let verifier = CachingVerifier::new(svc.clone(), 100);
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), json!("c1"));
        claims.insert("exp".into(), json!(1_000_000 + 5_000));
        let token = svc.signer().sign("at+jwt", &claims).unwrap().compact;
        assert_eq!(verifier.verify(&token, "at+jwt").unwrap()["sub"], "c1");
        assert_eq!(verifier.cache.len(), 1);
        assert_eq!(verifier.verify(&token, "at+jwt").unwrap()["sub"], "c1", "served again");
        assert!(verifier.verify(&token, "JWT").is_none(), "another typ is checked, and fails");
        // Another payload under the cached signature is not served.
        let parts: Vec<&str> = token.split('.').collect();
        let forged_payload =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, br#"{"sub":"c2","exp":1005000}"#);
        assert!(verifier.verify(&format!("{}.{forged_payload}.{}", parts[0], parts[2]), "at+jwt").is_none());

        // Rotate, and let the old key pass its retention: its tokens stop verifying, cached or not.
        rotate(store.as_ref(), &kek, &clock, POLICY, SigningAlg::ES256).await.unwrap();
        clock.advance(100);
        svc.reload().await.unwrap();
        assert!(verifier.verify(&token, "at+jwt").is_some(), "old key still published");
        clock.advance(1000);
        svc.reload().await.unwrap();
        assert!(verifier.verify(&token, "at+jwt").is_none(), "key withdrawn: the cached entry is not served");
    }
}
