//! Resident bytes per client in the `ClientCache`, with a record shaped like a real dev-mode
//! registration (the metadata Tessera keeps and returns, including the software statement), and
//! the same without the statement and the other metadata the hot paths never read. Prints one
//! line each; not a criterion benchmark. `cargo bench -p tessera-store --bench cache_memory`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use tessera_core::client::{ClientRecord, ClientStatus, ScopeGrant, ScopeState};
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
        "tls_client_auth_subject_dn": "CN=demo-fintech-client,OU=demo-org-0001,O=Tessera Dev Demo Fintech,C=GB",
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

fn measure(label: &str, with_statement: bool) {
    let before = rss();
    let cache = ClientCache::new();
    for i in 0..N {
        cache.put(record(i, with_statement));
    }
    let after = rss();
    let per = (after - before) as f64 / N as f64;
    println!(
        "cache_memory/{label}: {N} clients, {:.1} MB more resident, {per:.0} bytes per client",
        (after - before) as f64 / 1_048_576.0
    );
    drop(cache);
}

fn main() {
    // Each case in a fresh process, so that memory freed by one is not reused by the next.
    match std::env::var("CACHE_MEMORY_CASE").as_deref() {
        Ok("with") => measure("as_registered_with_software_statement", true),
        Ok("without") => measure("without_software_statement", false),
        _ => {
            let me = std::env::current_exe().expect("current exe");
            for case in ["with", "without"] {
                let status = std::process::Command::new(&me).env("CACHE_MEMORY_CASE", case).status().expect("run");
                assert!(status.success());
            }
        }
    }
}
