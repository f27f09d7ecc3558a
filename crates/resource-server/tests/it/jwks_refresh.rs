//! The key cache: refresh on an unknown `kid` (once, rate-limited), stale copy on failure.
//! Fetches are counted with an injected fetcher; `tls.rs` repeats the burst over real HTTPS.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tessera_resource_server::{
    InvalidToken, JwksCache, JwksError, JwksFetcher, JwksOptions, RsError, Validator, error_parts,
};

use crate::support::*;

/// Serves whatever document it currently holds, counts calls, can be told to fail or to hang.
#[derive(Default)]
struct FakeIssuer {
    doc: Mutex<String>,
    calls: AtomicUsize,
    failing: AtomicBool,
    hanging: AtomicBool,
}

impl FakeIssuer {
    fn new(doc: String) -> Arc<FakeIssuer> {
        Arc::new(FakeIssuer { doc: Mutex::new(doc), ..FakeIssuer::default() })
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn publish(&self, doc: String) {
        *self.doc.lock().unwrap() = doc;
    }
}

#[async_trait]
impl JwksFetcher for FakeIssuer {
    async fn fetch(&self) -> Result<Vec<u8>, JwksError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        // Give concurrent callers time to pile up behind this fetch.
        tokio::time::sleep(Duration::from_millis(20)).await;
        if self.hanging.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(JwksError::Fetch("HTTP 503".into()));
        }
        Ok(self.doc.lock().unwrap().clone().into_bytes())
    }
}

fn validator(issuer: &Arc<FakeIssuer>, options: JwksOptions) -> Arc<Validator> {
    Arc::new(Validator::with_jwks(config(), JwksCache::with_fetcher(issuer.clone(), options)))
}

fn fast() -> JwksOptions {
    JwksOptions { min_refresh_interval: Duration::from_millis(1000), ..JwksOptions::default() }
}

#[tokio::test]
async fn unknown_kid_refetches_once_then_fails() {
    let cert = client_cert("c1");
    let k1 = TestKey::es256("k1");
    let k2 = TestKey::es256("k2");
    let issuer = FakeIssuer::new(jwks(&[&k1]));
    let v = validator(&issuer, JwksOptions::default());

    // First use loads the set.
    assert!(v.validate(&k1.token(&cert, json!({})), Some(&cert), now()).await.is_ok());
    assert_eq!(issuer.calls(), 1);
    // Cached: no more fetches.
    assert!(v.validate(&k1.token(&cert, json!({})), Some(&cert), now()).await.is_ok());
    assert_eq!(issuer.calls(), 1);

    // Unknown kid: one refetch, still unknown, error.
    let err = v.validate(&k2.token(&cert, json!({})), Some(&cert), now()).await.unwrap_err();
    assert_eq!(err, RsError::InvalidToken(InvalidToken::UnknownKey(Some("k2".into()))));
    assert_eq!(error_parts(&err).status, 401);
    assert_eq!(issuer.calls(), 2);
    // Again right away: within the 10 s interval, no fetch.
    let err = v.validate(&k2.token(&cert, json!({})), Some(&cert), now()).await.unwrap_err();
    assert_eq!(err, RsError::InvalidToken(InvalidToken::UnknownKey(Some("k2".into()))));
    assert_eq!(issuer.calls(), 2);
    assert_eq!(v.jwks().fetch_attempts(), 2);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_the_refetch() {
    let cert = client_cert("c1");
    let k1 = TestKey::es256("k1");
    let k2 = TestKey::eddsa("k2");
    let k3 = TestKey::ps256("k3");
    let issuer = FakeIssuer::new(jwks(&[&k1]));
    let v = validator(&issuer, fast());
    assert!(v.validate(&k1.token(&cert, json!({})), Some(&cert), now()).await.is_ok());
    assert_eq!(issuer.calls(), 1);

    // The issuer publishes k2 and signs with it right after our initial load: the first k2
    // token triggers one fetch and passes (the initial load does not block it).
    issuer.publish(jwks(&[&k1, &k2]));
    let at = v.validate(&k2.token(&cert, json!({})), Some(&cert), now()).await.unwrap();
    assert_eq!(at.client_id, "client-1");
    assert_eq!(issuer.calls(), 2);
    // Both keys now verify without fetching.
    assert!(v.validate(&k1.token(&cert, json!({})), Some(&cert), now()).await.is_ok());
    assert!(v.validate(&k2.token(&cert, json!({})), Some(&cert), now()).await.is_ok());
    assert_eq!(issuer.calls(), 2);

    // Another new key within the interval of that unknown-kid fetch: refused without a fetch;
    // after the interval, fetched and accepted.
    issuer.publish(jwks(&[&k1, &k2, &k3]));
    assert!(v.validate(&k3.token(&cert, json!({})), Some(&cert), now()).await.is_err());
    assert_eq!(issuer.calls(), 2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(v.validate(&k3.token(&cert, json!({})), Some(&cert), now()).await.is_ok());
    assert_eq!(issuer.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_random_kids_costs_one_fetch() {
    let cert = client_cert("c1");
    let k1 = TestKey::es256("k1");
    let issuer = FakeIssuer::new(jwks(&[&k1]));
    let v = validator(&issuer, JwksOptions::default());
    assert!(v.validate(&k1.token(&cert, json!({})), Some(&cert), now()).await.is_ok());
    assert_eq!(issuer.calls(), 1);

    // 300 tokens, each with a kid of its own, all at once (signed by a key the issuer never
    // published). Exactly one refetch may happen.
    let attacker = TestKey::es256("unused");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let claims = serde_json::Value::Object(valid_claims(&cert));
        let token = attacker.sign(json!({ "kid": format!("random-{i}") }), &claims);
        let (v, cert) = (v.clone(), cert.clone());
        tasks.spawn(async move { v.validate(&token, Some(&cert), now()).await });
    }
    let mut unknown = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Err(RsError::InvalidToken(InvalidToken::UnknownKey(_))) => unknown += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(unknown, 300);
    assert_eq!(issuer.calls(), 2, "a burst of unknown kids must cause at most one fetch");
    // Legitimate traffic was never blocked.
    assert!(v.validate(&k1.token(&cert, json!({})), Some(&cert), now()).await.is_ok());
}

#[tokio::test]
async fn the_cached_copy_is_served_when_a_refresh_fails() {
    let cert = client_cert("c1");
    let k1 = TestKey::es256("k1");
    let issuer = FakeIssuer::new(jwks(&[&k1]));
    // Every use finds the copy stale, so every use (past the interval) tries a refresh.
    let v = validator(&issuer, JwksOptions { max_age: Duration::ZERO, ..fast() });
    assert!(v.validate(&k1.token(&cert, json!({})), Some(&cert), now()).await.is_ok());
    assert_eq!(issuer.calls(), 1);

    issuer.failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Refresh attempted, failed; the token still validates with the cached key.
    assert!(v.validate(&k1.token(&cert, json!({})), Some(&cert), now()).await.is_ok());
    assert_eq!(issuer.calls(), 2);
    // The failure counts against the interval too.
    assert!(v.validate(&k1.token(&cert, json!({})), Some(&cert), now()).await.is_ok());
    assert_eq!(issuer.calls(), 2);

    // A document without usable keys is a failed refresh, not an empty key set.
    issuer.failing.store(false, Ordering::SeqCst);
    issuer.publish(json!({ "keys": [] }).to_string());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(v.validate(&k1.token(&cert, json!({})), Some(&cert), now()).await.is_ok());
    assert_eq!(issuer.calls(), 3);
}

#[tokio::test]
async fn stale_keys_withdrawn_by_the_issuer_stop_verifying() {
    let cert = client_cert("c1");
    let old = TestKey::es256("old");
    let new = TestKey::es256("new");
    let issuer = FakeIssuer::new(jwks(&[&old, &new]));
    let v = validator(&issuer, JwksOptions { max_age: Duration::from_millis(100), ..fast() });
    assert!(v.validate(&old.token(&cert, json!({})), Some(&cert), now()).await.is_ok());

    issuer.publish(jwks(&[&new]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // This use finds the copy stale, refreshes it and is checked against the fresh copy; the
    // next one makes its one unknown-kid fetch; after that, no more fetches.
    for expected_calls in [2, 3, 3] {
        assert_eq!(
            v.validate(&old.token(&cert, json!({})), Some(&cert), now()).await.unwrap_err(),
            RsError::InvalidToken(InvalidToken::UnknownKey(Some("old".into())))
        );
        assert_eq!(issuer.calls(), expected_calls);
    }
    assert!(v.validate(&new.token(&cert, json!({})), Some(&cert), now()).await.is_ok());
}

#[tokio::test]
async fn no_keys_at_all_is_unavailable_not_invalid_token() {
    let cert = client_cert("c1");
    let k1 = TestKey::es256("k1");
    let issuer = FakeIssuer::new(jwks(&[&k1]));
    issuer.failing.store(true, Ordering::SeqCst);
    let v = validator(&issuer, JwksOptions::default());

    let err = v.validate(&k1.token(&cert, json!({})), Some(&cert), now()).await.unwrap_err();
    assert!(matches!(&err, RsError::Unavailable { internal } if internal.contains("503")), "{err:?}");
    let parts = error_parts(&err);
    assert_eq!(parts.status, 503);
    assert!(parts.www_authenticate.is_none());
    assert!(!parts.body.to_string().contains("503"), "internal detail leaked: {}", parts.body);
    // Failing attempts are rate-limited as well.
    assert!(v.validate(&k1.token(&cert, json!({})), Some(&cert), now()).await.is_err());
    assert_eq!(issuer.calls(), 1);
    assert!(v.jwks().prefetch().await.is_err());
    assert_eq!(issuer.calls(), 1);
}

#[tokio::test]
async fn a_hanging_issuer_is_cut_off() {
    let cert = client_cert("c1");
    let k1 = TestKey::es256("k1");
    let issuer = FakeIssuer::new(jwks(&[&k1]));
    issuer.hanging.store(true, Ordering::SeqCst);
    let v = validator(&issuer, JwksOptions { fetch_timeout: Duration::from_millis(200), ..JwksOptions::default() });
    let started = std::time::Instant::now();
    let err = v.validate(&k1.token(&cert, json!({})), Some(&cert), now()).await.unwrap_err();
    assert!(matches!(err, RsError::Unavailable { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_static_set_never_fetches() {
    let k1 = TestKey::es256("k1");
    let cache = JwksCache::from_static(&jwks(&[&k1])).unwrap();
    assert_eq!(cache.prefetch().await.unwrap().len(), 1);
    assert_eq!(cache.fetch_attempts(), 0);
    assert!(matches!(JwksCache::from_static("{\"keys\":[]}"), Err(JwksError::Invalid(_))));
    // An RS256-only set has nothing usable.
    assert!(matches!(JwksCache::from_static(&jwks(&[&TestKey::rs256("r")])), Err(JwksError::Invalid(_))));
}
