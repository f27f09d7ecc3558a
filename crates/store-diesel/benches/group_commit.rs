//! Client registrations per second through `insert_client`: many concurrent callers, records and
//! audit events shaped like a dev-mode registration, on a SQLite file (WAL, `synchronous=FULL`,
//! so every commit is an `fsync`) and on PostgreSQL when a server can be had (see
//! `tessera_testkit::pg`). Each case runs on a fresh database:
//!
//! - `own_transaction`: one transaction and one commit per insert (the store before group commit);
//! - `group_commit`: `insert_client`, the writes waiting at a time sharing one commit.
//!
//! Prints inserts/s, CPU per insert (this process; for PostgreSQL also the server's processes)
//! and latency percentiles. Not a criterion benchmark: throughput under concurrency is the point.
//!
//! `cargo bench -p tessera-store-diesel --bench group_commit`
//! Environment: `GROUP_COMMIT_N` inserts per case (default 20000), `GROUP_COMMIT_CALLERS`
//! concurrent callers each inserting one record after the other (default 64; a closed loop: the
//! rate is as fast as the store goes), or instead `GROUP_COMMIT_RATE` inserts per second started
//! on a fixed schedule whatever the store does (an open loop: latency at a given load, measured
//! from each insert's scheduled start), `GROUP_COMMIT_BACKENDS` (`sqlite,postgres`),
//! `GROUP_COMMIT_MODES` (`own_transaction,group_commit`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_core::audit::{AuditEvent, AuditKind};
use tessera_core::client::{ClientRecord, ClientStatus, ScopeGrant, ScopeState};
use tessera_core::{ClientId, UnixTime};
use tessera_store::ClientStore;
use tessera_store_diesel::{DieselStore, PoolOptions};
use tessera_testkit::pg::TestPg;

const SUBJECT: &str = "CN=demo-fintech-client,OU=demo-org-0001,O=Tessera Dev Demo Fintech,C=GB";

/// A software statement of the demo directory's size (ES256 JWT, ~1 KB).
fn ssa(i: usize) -> String {
    let mut s = String::from("eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImRldi1kaXJlY3RvcnktMSJ9.");
    while s.len() < 960 {
        s.push_str(&format!("{i:08}"));
    }
    s
}

/// Metadata as a dev-mode registration stores it (as in `tessera-store`'s `cache_memory` bench).
fn metadata(i: usize) -> serde_json::Map<String, Value> {
    let m = json!({
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
        "tls_client_auth_subject_dn": SUBJECT,
        "tls_client_certificate_bound_access_tokens": true,
        "application_type": "service",
        "purpose": "bench",
        "client_number": i,
        "software_statement": ssa(i),
    });
    m.as_object().cloned().unwrap_or_default()
}

fn record(run: &str, i: usize) -> ClientRecord {
    let now = UnixTime(1_800_000_000);
    let grant = |scope: &str, state| ScopeGrant {
        scope: scope.into(),
        state,
        rule: "read-only-for-active-orgs".into(),
        decided_at: now,
        reason: None,
    };
    ClientRecord {
        client_id: ClientId::new(format!("{run}{i:018}")),
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
        transport_cert_subject: SUBJECT.into(),
        scopes: vec![grant("accounts:read", ScopeState::Granted)],
        metadata: metadata(i),
    }
}

/// What a registration audits: the acceptance, then one decision per scope (the onboarding
/// policy's), as `client-registration`'s `registration_events` builds them.
fn events(client: &ClientRecord) -> Vec<AuditEvent> {
    let data = json!({
        "software_id": client.software_id,
        "org_id": client.org_id,
        "directory": client.directory,
        "ssa_jti": client.ssa_jti,
        "auth_method": "tls_client_auth",
        "risk_tier": client.risk_tier,
        "expires_at": client.expires_at.map(|t| t.0),
        "cert_subject": SUBJECT,
        "cert_x5t#S256": "n5bS2eVnGdtOcN7wsjS5VRdsrsh5PK2c6DvjRw-GPjY",
    });
    let mut events = vec![AuditEvent {
        at: client.created_at,
        kind: AuditKind::RegistrationAccepted,
        actor: SUBJECT.into(),
        client_id: Some(client.client_id.clone()),
        data: data.as_object().cloned().unwrap_or_default(),
    }];
    for g in &client.scopes {
        let d = json!({"scope": g.scope, "state": g.state.as_str(), "rule": g.rule});
        events.push(AuditEvent {
            at: client.created_at,
            kind: AuditKind::ScopeDecision,
            actor: "policy".into(),
            client_id: Some(client.client_id.clone()),
            data: d.as_object().cloned().unwrap_or_default(),
        });
    }
    events
}

/// CPU seconds (user + system) of the processes `pick` selects by command name, from /proc.
/// Clock ticks are 100 per second on Linux (USER_HZ); the workspace forbids the `unsafe` that
/// asking `sysconf` would need.
fn cpu_seconds(pick: impl Fn(u32, &str) -> bool) -> f64 {
    let mut ticks = 0u64;
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        if !pick(pid, &stat[open + 1..close]) {
            continue;
        }
        // After the command: state is field 3, utime and stime fields 14 and 15.
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        ticks += fields.get(11).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        ticks += fields.get(12).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    }
    ticks as f64 / 100.0
}

fn own_cpu() -> f64 {
    let me = std::process::id();
    cpu_seconds(|pid, _| pid == me)
}

fn postgres_cpu() -> f64 {
    cpu_seconds(|_, comm| comm == "postgres")
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// How the inserts are started.
#[derive(Clone, Copy)]
enum Load {
    /// This many callers, each starting its next insert when the last one returned.
    Callers(usize),
    /// One insert started every 1/rate seconds.
    Rate(f64),
}

/// Whether the insert went through. Overloaded, one transaction per insert fails some with
/// "database is locked" (SQLite's `busy_timeout` ran out): counted, not fatal.
async fn insert(store: &DieselStore, group: bool, client: &ClientRecord, events: &[AuditEvent]) -> bool {
    let result = if group {
        store.insert_client(client, events).await
    } else {
        store.insert_client_in_own_transaction(client, events).await
    };
    result.is_ok()
}

async fn run_case(backend: &str, url: &str, mode: &str, n: usize, load: Load) {
    let options = PoolOptions { max_size: 8, connection_timeout: Duration::from_secs(30) };
    let store = Arc::new(DieselStore::connect(url, options).await.unwrap());
    // Records built before the clock starts: the database work is what is measured.
    let records: Arc<Vec<(ClientRecord, Vec<AuditEvent>)>> = Arc::new(
        (0..n)
            .map(|i| {
                let r = record(mode, i);
                let e = events(&r);
                (r, e)
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let group = mode == "group_commit";

    let (cpu0, pg0, t0) = (own_cpu(), postgres_cpu(), Instant::now());
    let mut latencies = Vec::with_capacity(n);
    match load {
        Load::Callers(callers) => {
            let workers: Vec<_> = (0..callers)
                .map(|_| {
                    let (store, records, next) = (store.clone(), records.clone(), next.clone());
                    tokio::spawn(async move {
                        let mut latencies = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some((client, events)) = records.get(i) else { break };
                            let start = Instant::now();
                            let ok = insert(&store, group, client, events).await;
                            latencies.push((start.elapsed(), ok));
                        }
                        latencies
                    })
                })
                .collect();
            for w in workers {
                latencies.extend(w.await.unwrap());
            }
        }
        Load::Rate(rate) => {
            let mut inserts = Vec::with_capacity(n);
            for i in 0..n {
                let scheduled = t0 + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(scheduled.into()).await;
                let (store, records) = (store.clone(), records.clone());
                inserts.push(tokio::spawn(async move {
                    let (client, events) = &records[i];
                    let ok = insert(&store, group, client, events).await;
                    (scheduled.elapsed(), ok)
                }));
            }
            for i in inserts {
                latencies.push(i.await.unwrap());
            }
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let (cpu, pg) = (own_cpu() - cpu0, postgres_cpu() - pg0);

    let failed = latencies.iter().filter(|(_, ok)| !ok).count();
    let mut latencies: Vec<Duration> = latencies.into_iter().map(|(d, _)| d).collect();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3;
    let server = if backend == "postgres" {
        format!(", +{:.0} µs in postgres processes", pg / n as f64 * 1e6)
    } else {
        String::new()
    };
    let load = match load {
        Load::Callers(c) => format!("{c} callers"),
        Load::Rate(r) => format!("started at {r:.0}/s"),
    };
    println!(
        "group_commit/{backend}/{mode}: {n} inserts ({failed} failed), {load}: {:.0} inserts/s, \
         CPU {:.0} µs/insert in this process{server}, latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        (n - failed) as f64 / wall,
        cpu / n as f64 * 1e6,
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
}

fn main() {
    let n: usize = env_or("GROUP_COMMIT_N", "20000").parse().expect("GROUP_COMMIT_N");
    let load = match std::env::var("GROUP_COMMIT_RATE") {
        Ok(rate) => Load::Rate(rate.parse().expect("GROUP_COMMIT_RATE")),
        Err(_) => Load::Callers(env_or("GROUP_COMMIT_CALLERS", "64").parse().expect("GROUP_COMMIT_CALLERS")),
    };
    let backends = env_or("GROUP_COMMIT_BACKENDS", "sqlite,postgres");
    let modes = env_or("GROUP_COMMIT_MODES", "own_transaction,group_commit");
    // Two workers, as on the 2-core target machine.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        for backend in backends.split(',') {
            for mode in modes.split(',') {
                match backend {
                    "sqlite" => {
                        // On the disk, not tmpfs: the fsync is what group commit saves.
                        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
                        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                        run_case(backend, &url, mode, n, load).await;
                    }
                    "postgres" => {
                        let Some(pg) = TestPg::new() else { continue };
                        run_case(backend, pg.url(), mode, n, load).await;
                    }
                    other => panic!("unknown backend {other}"),
                }
            }
        }
    });
}
