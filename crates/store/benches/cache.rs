//! The in-memory lookups on the hot paths (issue 7): a client by id among 100,000 clients, and a
//! revoked jti among 100,000. `cargo bench -p tessera-store` (add `-- --quick` for a short run).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tessera_core::client::{ClientRecord, ClientStatus, ScopeGrant, ScopeState};
use tessera_core::{ClientId, UnixTime};
use tessera_store::{ClientCache, Revocations};

const N: usize = 100_000;

fn id(i: usize) -> String {
    // 22 characters, like a registered client id (16 random bytes, base64url).
    format!("client{i:016}")
}

fn record(i: usize) -> ClientRecord {
    let now = UnixTime(1_800_000_000);
    let metadata = json!({
        "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_subject_dn": "CN=demo-fintech-client,OU=demo-org-0001,O=Tessera Dev Demo Fintech,C=GB",
        "grant_types": ["client_credentials"],
        "client_name": format!("software {i}"),
    });
    ClientRecord {
        client_id: ClientId::new(id(i)),
        status: ClientStatus::Active,
        status_reason: None,
        org_id: "demo-org-0001".into(),
        org_name: "Tessera Dev Demo Fintech".into(),
        software_id: format!("software-{i}"),
        directory: "tessera-dev-directory".into(),
        purpose: "bench".into(),
        risk_tier: "low".into(),
        created_at: now,
        updated_at: now,
        expires_at: Some(now.plus(86_400)),
        last_used_at: None,
        tokens_not_before: None,
        registration_token_hash: "x".repeat(43),
        ssa_jti: Some(format!("jti-{i}")),
        transport_cert_subject: "CN=demo-fintech-client,OU=demo-org-0001,O=Tessera Dev Demo Fintech,C=GB".into(),
        scopes: vec![ScopeGrant {
            scope: "accounts:read".into(),
            state: ScopeState::Granted,
            rule: "read-only-for-active-orgs".into(),
            decided_at: now,
            reason: None,
        }],
        metadata: metadata.as_object().cloned().unwrap_or_default(),
    }
}

fn bench(c: &mut Criterion) {
    let cache = ClientCache::new();
    cache.replace_all((0..N).map(record).collect());
    let revocations = Revocations::new();
    revocations.replace_all((0..N).map(|i| (format!("jti-{i:024}"), UnixTime(1_800_000_300))).collect());
    let ids: Vec<ClientId> = (0..1024).map(|i| ClientId::new(id(i * 97 % N))).collect();
    let mut g = c.benchmark_group("cache_100k");
    let mut k = 0usize;
    g.bench_function("client_get_hit", |b| {
        b.iter(|| {
            k = (k + 1) & 1023;
            black_box(cache.get(black_box(&ids[k])).expect("hit"))
        })
    });
    // What the token endpoint does: build the ClientId from the form's &str, then look up.
    g.bench_function("client_get_from_str", |b| {
        b.iter(|| black_box(cache.get(&ClientId::new(black_box("client0000000000004242")))))
    });
    let missing = ClientId::new("no-such-client-0000000");
    g.bench_function("client_get_miss", |b| b.iter(|| black_box(cache.get(black_box(&missing)))));
    g.bench_function("revoked_jti_hit", |b| {
        b.iter(|| black_box(revocations.is_revoked(black_box("jti-000000000000000000004242"))))
    });
    g.bench_function("revoked_jti_miss", |b| b.iter(|| black_box(revocations.is_revoked(black_box("not-revoked")))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
