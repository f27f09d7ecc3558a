//! The storage contract, as executable checks. Every implementation calls these from its own
//! tests against a fresh, empty store; a failed check panics with what broke.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tessera_core::keys::SigningAlg;
use tessera_core::{KeyId, UnixTime};

use crate::{KeyStore, StoreError, StoredKey};

fn sample_key(kid: &str, activates_at: i64) -> StoredKey {
    StoredKey {
        kid: KeyId::new(kid),
        alg: SigningAlg::ES256,
        created_at: UnixTime(1_700_000_000),
        activates_at: UnixTime(activates_at),
        public_jwk: format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
        private_jwe: "eyJhbGciOiJkaXIifQ..iv.ct.tag".into(),
    }
}

/// `KeyStore`: insert, list, uniqueness of `kid`, no partial write on conflict.
pub async fn key_store(store: &dyn KeyStore) {
    assert!(store.list_keys().await.unwrap().is_empty(), "a fresh store has no keys");

    let a = sample_key("key-a", 1_700_000_000);
    let b = sample_key("key-b", 1_700_003_600);
    store.insert_key(&a).await.unwrap();
    store.insert_key(&b).await.unwrap();

    let mut listed = store.list_keys().await.unwrap();
    listed.sort_by(|x, y| x.kid.cmp(&y.kid));
    assert_eq!(listed, vec![a.clone(), b.clone()], "keys round-trip exactly");

    let mut dup = sample_key("key-a", 1);
    dup.public_jwk = "changed".into();
    match store.insert_key(&dup).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a duplicate kid must be a Conflict, got {other:?}"),
    }
    let listed = store.list_keys().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&a), "a failed insert must not alter the existing key");
}
