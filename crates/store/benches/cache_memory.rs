//! Resident bytes per client in the `ClientCache`, with a record shaped like a real dev-mode
//! registration (the metadata Tessera keeps and returns, including the software statement), and
//! the same without the statement. The cache keeps only the compact `CachedClient` view, so both
//! should cost the same. Then the alternatives its design was measured against: the same views
//! in a map keyed by a second copy of the id, without shared names, and the subject rule kept
//! parsed instead of as text. Prints one line each; not a criterion benchmark.
//! `cargo bench -p tessera-store --bench cache_memory`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use tessera_core::cert::SubjectRule;
use tessera_core::client::{CachedClient, ClientRecord, ClientStatus, ScopeGrant, ScopeState, SharedNames};
use tessera_core::{ClientId, UnixTime};
use tessera_store::ClientCache;

/// Resident set size of this process, in bytes (the workspace forbids `unsafe`, so no counting
/// allocator: RSS includes malloc's own overhead, as the server's does).
fn rss() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<i64>().ok()))
        .map_or(0, |kb| kb * 1024)
}

const N: usize = 100_000;

/// A software statement of the demo directory's size (ES256 JWT, ~1 KB).
fn ssa(i: usize) -> String {
    let mut s = String::from("eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImRldi1kaXJlY3RvcnktMSJ9.");
    while s.len() < 960 {
        s.push_str(&format!("{i:08}"));
    }
    s
}

/// Metadata as a dev-mode registration stores it (crates/client-registration/src/metadata.rs).
fn metadata(i: usize, with_statement: bool) -> serde_json::Map<String, Value> {
    let mut m = json!({
        "client_name": "demo-fintech-client (demo)",
        "client_description": "Demo software registered in Tessera dev mode",
        "software_id": "demo-fintech-client",
        "software_version": null,
        "software_roles": ["AISP", "PISP"],
        "org_id": "demo-org-0001",
        "org_name": "Tessera Dev Demo Fintech",
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": ["https://demo-fintech.example/callback"],
        "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_subject_dn": SUBJECT_DN,
        "tls_client_certificate_bound_access_tokens": true,
        "application_type": "service",
        "purpose": "bench",
        "client_number": i,
    });
    if with_statement {
        m["software_statement"] = json!(ssa(i));
    }
    m.as_object().cloned().unwrap_or_default()
}

fn record(i: usize, with_statement: bool) -> ClientRecord {
    let now = UnixTime(1_800_000_000);
    let grant = |scope: &str, state| ScopeGrant {
        scope: scope.into(),
        state,
        rule: "read-only-for-active-orgs".into(),
        decided_at: now,
        reason: None,
    };
    ClientRecord {
        client_id: ClientId::new(format!("{i:022}")),
        status: ClientStatus::Active,
        status_reason: None,
        org_id: "demo-org-0001".into(),
        org_name: "Tessera Dev Demo Fintech".into(),
        software_id: "demo-fintech-client".into(),
        directory: "tessera-dev-directory".into(),
        purpose: "bench".into(),
        risk_tier: "low".into(),
        created_at: now,
        updated_at: now,
        expires_at: Some(now.plus(86_400 * 365)),
        last_used_at: None,
        tokens_not_before: None,
        registration_token_hash: "x".repeat(43),
        ssa_jti: Some(format!("jti-{i:018}")),
        transport_cert_subject: "CN=demo-fintech-client,OU=demo-org-0001,O=Tessera Dev Demo Fintech,C=GB".into(),
        scopes: vec![grant("accounts:read", ScopeState::Granted)],
        metadata: metadata(i, with_statement),
    }
}

const SUBJECT_DN: &str = "CN=demo-fintech-client,OU=demo-org-0001,O=Tessera Dev Demo Fintech,C=GB";

/// Runs `build` (which returns what it built, kept alive until measured) and prints the
/// resident growth per client.
fn measure<T>(label: &str, build: impl FnOnce() -> T) {
    let before = rss();
    let built = build();
    let after = rss();
    let per = (after - before) as f64 / N as f64;
    println!(
        "cache_memory/{label}: {N} clients, {:.1} MB more resident, {per:.0} bytes per client",
        (after - before) as f64 / 1_048_576.0
    );
    drop(built);
}

fn cache(with_statement: bool) -> ClientCache {
    let cache = ClientCache::new();
    for i in 0..N {
        cache.put(record(i, with_statement));
    }
    cache
}

fn main() {
    // Each case in a fresh process, so that memory freed by one is not reused by the next.
    match std::env::var("CACHE_MEMORY_CASE").as_deref() {
        Ok("with") => measure("as_registered_with_software_statement", || cache(true)),
        Ok("without") => measure("without_software_statement", || cache(false)),
        // The same views, keyed by a second copy of each id (a HashMap<ClientId, Arc<_>>).
        Ok("id_map") => measure("alternative/views_in_a_map_keyed_by_a_copy_of_the_id", || {
            let mut names = SharedNames::new();
            let mut map = HashMap::new();
            for i in 0..N {
                let view = CachedClient::new(&record(i, true), &mut names);
                map.insert(view.client_id.clone(), Arc::new(view));
            }
            map
        }),
        // The same views in a plain list, with and without shared tier and scope names.
        Ok("shared") => measure("alternative/views_in_a_list_with_shared_names", || {
            let mut names = SharedNames::new();
            (0..N).map(|i| Arc::new(CachedClient::new(&record(i, true), &mut names))).collect::<Vec<_>>()
        }),
        Ok("unshared") => measure("alternative/views_in_a_list_without_shared_names", || {
            (0..N).map(|i| Arc::new(CachedClient::from(&record(i, true)))).collect::<Vec<_>>()
        }),
        // The subject rule alone: as registered text (what the view keeps) or parsed.
        Ok("subject_text") => measure("alternative/subject_dn_as_text", || {
            (0..N).map(|_| Box::<str>::from(SUBJECT_DN)).collect::<Vec<_>>()
        }),
        Ok("subject_parsed") => measure("alternative/subject_dn_parsed", || {
            (0..N)
                .map(|_| SubjectRule::from_metadata("tls_client_auth_subject_dn", SUBJECT_DN).unwrap())
                .collect::<Vec<_>>()
        }),
        _ => {
            let me = std::env::current_exe().expect("current exe");
            for case in ["with", "without", "id_map", "shared", "unshared", "subject_text", "subject_parsed"] {
                let status = std::process::Command::new(&me).env("CACHE_MEMORY_CASE", case).status().expect("run");
                assert!(status.success());
            }
        }
    }
}
