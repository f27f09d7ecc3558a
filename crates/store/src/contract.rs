//! The storage contract, as executable checks. Every implementation calls these from its own
//! tests against a fresh, empty store; a failed check panics with what broke.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use serde_json::{Map, json};
use tessera_core::ClientId;
use tessera_core::audit::{AuditEvent, AuditKind, GENESIS_HASH, verify_chain};
use tessera_core::client::{ClientRecord, ClientStatus, ScopeGrant, ScopeState};

use tessera_core::keys::SigningAlg;
use tessera_core::{KeyId, UnixTime};

use crate::{AuditLog, ClientStore, KeyStore, LockStore, ReplayGuard, StoreError, StoredKey, TokenStore};

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

pub fn sample_client(id: &str, ssa_jti: Option<&str>) -> ClientRecord {
    let mut metadata = Map::new();
    metadata.insert("client_name".into(), json!("Sample Fintech"));
    metadata.insert("redirect_uris".into(), json!(["https://app.example/cb"]));
    ClientRecord {
        client_id: ClientId::new(id),
        status: ClientStatus::Active,
        status_reason: None,
        org_id: "org-1".into(),
        org_name: "Org One".into(),
        software_id: "soft-1".into(),
        directory: "https://directory.example".into(),
        purpose: "account aggregation".into(),
        risk_tier: "low".into(),
        created_at: UnixTime(1_700_000_000),
        updated_at: UnixTime(1_700_000_000),
        expires_at: Some(UnixTime(1_800_000_000)),
        last_used_at: None,
        tokens_not_before: None,
        registration_token_hash: "hash".into(),
        ssa_jti: ssa_jti.map(str::to_owned),
        transport_cert_subject: "CN=soft-1,OU=org-1,O=Org One,C=GB".into(),
        scopes: vec![
            ScopeGrant {
                scope: "accounts:read".into(),
                state: ScopeState::Granted,
                rule: "r1".into(),
                decided_at: UnixTime(1_700_000_000),
                reason: None,
            },
            ScopeGrant {
                scope: "payments:write".into(),
                state: ScopeState::PendingReview,
                rule: "r2".into(),
                decided_at: UnixTime(1_700_000_000),
                reason: Some("needs a human".into()),
            },
        ],
        metadata,
    }
}

pub fn sample_event(kind: AuditKind, client: Option<&str>, n: i64) -> AuditEvent {
    let mut data = Map::new();
    data.insert("n".into(), json!(n));
    data.insert("nested".into(), json!({"b": 1, "a": [1, 2]}));
    AuditEvent {
        at: UnixTime(1_700_000_000 + n),
        kind,
        actor: "contract".into(),
        client_id: client.map(ClientId::new),
        data,
    }
}

/// `ClientStore`: round trip, uniqueness, atomic audit, update, last-used.
pub async fn client_store<S: ClientStore + AuditLog>(store: &S) {
    let a = sample_client("client-a", Some("jti-1"));
    store.insert_client(&a, &[sample_event(AuditKind::RegistrationAccepted, Some("client-a"), 1)]).await.unwrap();
    assert_eq!(store.get_client(&a.client_id).await.unwrap().as_ref(), Some(&a), "client round-trips exactly");
    assert_eq!(store.get_client(&ClientId::new("nope")).await.unwrap(), None);
    assert_eq!(AuditLog::read(store, 0, 10).await.unwrap().len(), 1, "audit written with the client");

    // Same id: conflict, nothing written (neither client nor audit).
    let mut dup = sample_client("client-a", None);
    dup.org_name = "changed".into();
    assert!(matches!(
        store.insert_client(&dup, &[sample_event(AuditKind::RegistrationAccepted, None, 2)]).await,
        Err(StoreError::Conflict(_))
    ));
    // Same SSA jti: conflict naming ssa_jti.
    let b = sample_client("client-b", Some("jti-1"));
    match store.insert_client(&b, &[sample_event(AuditKind::RegistrationAccepted, None, 3)]).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains("ssa_jti"), "{m}"),
        other => panic!("a reused ssa_jti must be a Conflict, got {other:?}"),
    }
    assert_eq!(store.get_client(&ClientId::new("client-b")).await.unwrap(), None);
    assert_eq!(AuditLog::read(store, 0, 10).await.unwrap().len(), 1, "failed inserts append no audit");
    assert_eq!(store.get_client(&a.client_id).await.unwrap().unwrap().org_name, "Org One");

    // Null ssa_jti may repeat.
    store.insert_client(&sample_client("client-c", None), &[]).await.unwrap();
    store.insert_client(&sample_client("client-d", None), &[]).await.unwrap();

    // Update replaces everything, with its audit.
    let mut changed = a.clone();
    changed.status = ClientStatus::Suspended;
    changed.status_reason = Some("dormant".into());
    changed.tokens_not_before = Some(UnixTime(1_700_000_099));
    changed.scopes[1].state = ScopeState::Granted;
    changed.scopes.push(ScopeGrant {
        scope: "x".into(),
        state: ScopeState::Denied,
        rule: "default-deny".into(),
        decided_at: UnixTime(5),
        reason: None,
    });
    changed.metadata.insert("client_name".into(), json!("Renamed"));
    changed.updated_at = UnixTime(1_700_000_100);
    store.update_client(&changed, &[sample_event(AuditKind::ClientSuspended, Some("client-a"), 4)]).await.unwrap();
    assert_eq!(store.get_client(&a.client_id).await.unwrap().as_ref(), Some(&changed));
    assert_eq!(AuditLog::read(store, 0, 10).await.unwrap().len(), 2);
    let ghost = sample_client("ghost", None);
    assert!(matches!(store.update_client(&ghost, &[]).await, Err(StoreError::NotFound(_))));

    // last_used only moves forward and leaves updated_at alone.
    store
        .touch_last_used(&[(a.client_id.clone(), UnixTime(1_700_000_500)), (ClientId::new("nope"), UnixTime(1))])
        .await
        .unwrap();
    store.touch_last_used(&[(a.client_id.clone(), UnixTime(1_700_000_400))]).await.unwrap();
    let got = store.get_client(&a.client_id).await.unwrap().unwrap();
    assert_eq!(got.last_used_at, Some(UnixTime(1_700_000_500)));
    assert_eq!(got.updated_at, UnixTime(1_700_000_100));

    let mut ids: Vec<String> =
        store.list_clients().await.unwrap().into_iter().map(|c| c.client_id.to_string()).collect();
    ids.sort();
    assert_eq!(ids, ["client-a", "client-c", "client-d"]);

    // changed_since: only records updated at or after the time (client-a was updated at +100).
    let changed: Vec<String> = store
        .changed_since(UnixTime(1_700_000_050))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id.to_string())
        .collect();
    assert_eq!(changed, ["client-a"]);
    assert_eq!(store.changed_since(UnixTime(1_700_000_000)).await.unwrap().len(), 3);
    // versions_since: the same clients, id and updated_at only.
    assert_eq!(
        store.versions_since(UnixTime(1_700_000_050)).await.unwrap(),
        [(ClientId::new("client-a"), UnixTime(1_700_000_100))]
    );
    let mut versions = store.versions_since(UnixTime(1_700_000_000)).await.unwrap();
    versions.sort();
    assert_eq!(
        versions,
        [
            (ClientId::new("client-a"), UnixTime(1_700_000_100)),
            (ClientId::new("client-c"), UnixTime(1_700_000_000)),
            (ClientId::new("client-d"), UnixTime(1_700_000_000)),
        ]
    );
    assert!(store.versions_since(UnixTime(1_700_000_101)).await.unwrap().is_empty());
    // get_clients: the known ones, whole; unknown ids are left out.
    let ids = [ClientId::new("client-d"), ClientId::new("nope"), a.client_id.clone()];
    let mut got = store.get_clients(&ids).await.unwrap();
    got.sort_by(|x, y| x.client_id.cmp(&y.client_id));
    let expected = vec![
        store.get_client(&a.client_id).await.unwrap().unwrap(),
        store.get_client(&ClientId::new("client-d")).await.unwrap().unwrap(),
    ];
    assert_eq!(got, expected);
    assert_eq!(got[0].scopes.len(), 3, "every scope of the updated client-a");
    assert!(store.get_clients(&[]).await.unwrap().is_empty());

    client_pages(store).await;
}

/// `list_clients_page`: keyset pages in id order, each record whole, every client once. The ids
/// sort the same bytewise and under a PostgreSQL locale collation (letters, digits, one `-`).
async fn client_pages<S: ClientStore>(store: &S) {
    for i in 0..7 {
        let mut c = sample_client(&format!("page-{i:02}"), None);
        c.scopes.truncate(i % 3);
        store.insert_client(&c, &[]).await.unwrap();
    }
    let ids = |page: &[ClientRecord]| page.iter().map(|c| c.client_id.to_string()).collect::<Vec<_>>();
    let mut pages = Vec::new();
    let mut after: Option<ClientId> = None;
    loop {
        let page = store.list_clients_page(after.as_ref(), 3).await.unwrap();
        assert!(page.len() <= 3, "at most limit: {:?}", ids(&page));
        for c in &page {
            let stored = store.get_client(&c.client_id).await.unwrap();
            assert_eq!(stored.as_ref(), Some(c), "a paged record is the stored record, scopes in order");
        }
        let Some(last) = page.last() else { break };
        after = Some(last.client_id.clone());
        pages.push(ids(&page));
    }
    let expected = [
        vec!["client-a", "client-c", "client-d"],
        vec!["page-00", "page-01", "page-02"],
        vec!["page-03", "page-04", "page-05"],
        vec!["page-06"],
    ];
    assert_eq!(pages, expected, "every client once, in client_id order");
    // `after` need not be an existing id; a large limit is the rest.
    assert_eq!(ids(&store.list_clients_page(Some(&ClientId::new("m")), 100).await.unwrap()).len(), 7);
    assert_eq!(ids(&store.list_clients_page(Some(&ClientId::new("page-05")), 100).await.unwrap()), ["page-06"]);
    assert!(store.list_clients_page(Some(&ClientId::new("page-06")), 3).await.unwrap().is_empty());
    assert_eq!(ids(&store.list_clients_page(None, 1).await.unwrap()), ["client-a"]);
}

/// `AuditLog`: consecutive sequence, valid chain under concurrent appends, paging.
pub async fn audit_log(store: Arc<dyn AuditLog>) {
    assert!(store.read(0, 10).await.unwrap().is_empty());
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..5 {
                let batch = [
                    sample_event(AuditKind::TokenIssued, Some("c"), t * 100 + i),
                    sample_event(AuditKind::TokenIssued, None, t * 100 + i + 50),
                ];
                s.append(&batch).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = store.read(0, 1000).await.unwrap();
    assert_eq!(all.len(), 80);
    let (last, _) = verify_chain(&all, 0, GENESIS_HASH.to_owned())
        .unwrap_or_else(|b| panic!("chain broken at {}: {}", b.seq, b.reason));
    assert_eq!(last, 80);
    // Batches stay contiguous: each even record is followed by its pair.
    for pair in all.chunks(2) {
        assert_eq!(pair[0].event.data["n"].as_i64().unwrap() + 50, pair[1].event.data["n"].as_i64().unwrap());
    }
    let page = store.read(10, 5).await.unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![11, 12, 13, 14, 15]);
    assert_eq!(page[0].event, all[10].event, "events round-trip exactly");
}

/// `ReplayGuard`: first use wins, once, even under concurrency; expiry frees the id.
pub async fn replay_guard(store: Arc<dyn ReplayGuard>) {
    let now = UnixTime(1_700_000_000);
    assert!(store.first_use("assertion", "j1", now.plus(60), now).await.unwrap());
    assert!(!store.first_use("assertion", "j1", now.plus(60), now.plus(30)).await.unwrap());
    assert!(store.first_use("ssa", "j1", now.plus(60), now).await.unwrap(), "namespaces are separate");
    assert!(
        store.first_use("assertion", "j1", now.plus(200), now.plus(61)).await.unwrap(),
        "usable again after expiry"
    );

    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move { s.first_use("assertion", "race", now.plus(60), now).await.unwrap() }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one concurrent caller may use an id");
}

/// `TokenStore`: revoke with audit, idempotent, listing and purging by expiry.
pub async fn token_store<S: TokenStore + AuditLog>(store: &S) {
    let now = UnixTime(1_700_000_000);
    let c = ClientId::new("client-a");
    assert!(store.revoked(now).await.unwrap().is_empty());
    store
        .revoke("jti-1", &c, now.plus(300), now, &[sample_event(AuditKind::TokenRevoked, Some("client-a"), 1)])
        .await
        .unwrap();
    store.revoke("jti-2", &c, now.plus(10), now, &[]).await.unwrap();
    store
        .revoke("jti-1", &c, now.plus(300), now, &[sample_event(AuditKind::TokenRevoked, Some("client-a"), 2)])
        .await
        .unwrap();
    let mut listed = store.revoked(now).await.unwrap();
    listed.sort();
    assert_eq!(listed, vec![("jti-1".to_owned(), now.plus(300)), ("jti-2".to_owned(), now.plus(10))]);
    assert_eq!(AuditLog::read(store, 0, 10).await.unwrap().len(), 2, "each revocation is audited");
    assert!(store.is_revoked("jti-1").await.unwrap());
    assert!(!store.is_revoked("jti-9").await.unwrap());
    assert_eq!(store.revoked(now.plus(20)).await.unwrap().len(), 1, "an expired token needs no revocation entry");
    assert_eq!(store.purge_expired(now.plus(20)).await.unwrap(), 1);
    assert_eq!(store.revoked(now).await.unwrap(), vec![("jti-1".to_owned(), now.plus(300))]);
}

/// `LockStore`: one holder at a time, renewal, expiry.
pub async fn lock_store<S: LockStore>(store: &S) {
    let now = UnixTime(1_700_000_000);
    assert!(store.try_lock("sweeper", "node-a", 60, now).await.unwrap());
    assert!(!store.try_lock("sweeper", "node-b", 60, now.plus(10)).await.unwrap(), "held by node-a");
    assert!(store.try_lock("sweeper", "node-a", 60, now.plus(30)).await.unwrap(), "renewal by the holder");
    assert!(!store.try_lock("sweeper", "node-b", 60, now.plus(80)).await.unwrap(), "renewed until +90");
    assert!(store.try_lock("sweeper", "node-b", 60, now.plus(91)).await.unwrap(), "expired lease is taken over");
    assert!(store.try_lock("other", "node-a", 60, now).await.unwrap(), "locks are independent");
}
