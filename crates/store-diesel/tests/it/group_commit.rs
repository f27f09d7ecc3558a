//! Client writes under concurrency, through the store's interface: many callers at once end up
//! in shared transactions (group commit), and each must still get its own answer. Which writes
//! share a batch depends on timing here; `group.rs`'s own tests make batches by hand.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tessera_core::audit::{AuditEvent, AuditKind, AuditRecord, GENESIS_HASH, verify_chain};
use tessera_core::client::ClientRecord;
use tessera_store::contract::{sample_client, sample_event};
use tessera_store::{AuditLog, ClientStore, StoreError};
use tessera_store_diesel::DieselStore;
use tessera_testkit::pg::TestPg;

use crate::connect;

fn client(i: usize, jti: Option<String>) -> ClientRecord {
    sample_client(&format!("client-{i:04}"), jti.as_deref())
}

/// A registration's events: accepted, then the onboarding decision.
fn events(i: usize) -> Vec<AuditEvent> {
    let id = format!("client-{i:04}");
    vec![
        sample_event(AuditKind::RegistrationAccepted, Some(&id), i as i64 * 2),
        sample_event(AuditKind::RegistrationAccepted, Some(&id), i as i64 * 2 + 1),
    ]
}

/// The whole log, verified link by link from the genesis hash.
async fn chain(store: &DieselStore) -> Vec<AuditRecord> {
    let records = store.read(0, 100_000).await.unwrap();
    verify_chain(&records, 0, GENESIS_HASH.to_owned())
        .unwrap_or_else(|b| panic!("chain broken at {}: {}", b.seq, b.reason));
    records
}

/// Audit events per client id.
fn events_by_client(records: &[AuditRecord]) -> HashMap<String, Vec<i64>> {
    let mut by: HashMap<String, Vec<i64>> = HashMap::new();
    for r in records {
        let id = r.event.client_id.as_ref().map(|c| c.as_str().to_owned()).unwrap_or_default();
        by.entry(id).or_default().push(r.event.data["n"].as_i64().unwrap());
    }
    by
}

/// Many concurrent inserts and updates: every one committed, readable, and audited once, with
/// each write's events next to each other in the chain.
pub(crate) async fn concurrent_writes_are_all_committed(url: &str) {
    const N: usize = 300;
    let store = Arc::new(connect(url).await);
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut c = client(i, Some(format!("jti-{i}")));
                store.insert_client(&c, &events(i)).await.unwrap();
                if i % 3 == 0 {
                    c.status_reason = Some(format!("updated {i}"));
                    c.scopes.reverse();
                    store.update_client(&c, &[]).await.unwrap();
                }
                c
            })
        })
        .collect();
    let mut expected = Vec::new();
    for t in tasks {
        expected.push(t.await.unwrap());
    }
    let listed = store.list_clients().await.unwrap();
    assert_eq!(listed, expected, "every client stored exactly as last written");

    let records = chain(&store).await;
    assert_eq!(records.len(), 2 * N);
    for pair in records.chunks(2) {
        let n = pair[0].event.data["n"].as_i64().unwrap();
        assert_eq!(n % 2, 0, "a write's first event comes first");
        assert_eq!(pair[1].event.data["n"].as_i64().unwrap(), n + 1, "a write's events are not interleaved");
    }
}

/// Software statements replayed while other registrations go through: exactly one
/// registration per statement, the other ones refused with the `ssa_jti` conflict, as alone.
/// `stores` stand for server nodes: with two, the replays race across two writers.
pub(crate) async fn replays_are_refused_one_by_one(stores: &[Arc<DieselStore>]) {
    const N: usize = 200;
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            // Pairs share a statement: 2k and 2k + 1 present the same jti. Every tenth id is
            // presented twice as well (another client, no statement).
            tokio::spawn(async move {
                let jti = Some(format!("jti-{}", i / 2));
                let first = store.insert_client(&client(i, jti), &events(i)).await;
                let dup = if i % 10 == 0 { Some(store.insert_client(&client(i, None), &[]).await) } else { None };
                (first, dup)
            })
        })
        .collect();
    let mut stored = HashSet::new();
    let mut refused_per_pair = vec![0; N / 2];
    for (i, t) in tasks.into_iter().enumerate() {
        let (first, dup) = t.await.unwrap();
        match first {
            Ok(()) => {
                stored.insert(format!("client-{i:04}"));
            }
            Err(StoreError::Conflict(m)) if m.contains("ssa_jti") => refused_per_pair[i / 2] += 1,
            Err(e) => panic!("client {i}: expected success or the ssa_jti conflict, got {e:?}"),
        }
        match dup {
            None => {}
            Some(Err(StoreError::Conflict(m))) if !m.contains("ssa_jti") => {}
            Some(Ok(())) if !stored.contains(&format!("client-{i:04}")) => {
                // The first registration lost its statement race, so the id was free.
                stored.insert(format!("client-{i:04}"));
            }
            Some(other) => panic!("client {i} again: expected the id conflict, got {other:?}"),
        }
    }
    assert!(refused_per_pair.iter().all(|&r| r == 1), "one refusal per replayed statement: {refused_per_pair:?}");

    let listed: HashSet<String> =
        stores[0].list_clients().await.unwrap().into_iter().map(|c| c.client_id.as_str().to_owned()).collect();
    assert_eq!(listed, stored);
    // Audit events exist for the stored registrations only, both of them each.
    let by = events_by_client(&chain(&stores[0]).await);
    for (id, ns) in &by {
        assert!(stored.contains(id), "audit events of a refused registration: {id}");
        assert_eq!(ns.len(), 2, "{id}: {ns:?}");
    }
}

/// Callers that give up (their future dropped) while their write is queued or being written:
/// each such client is stored whole with its events, or not at all.
pub(crate) async fn dropped_callers_leave_whole_writes_or_none(url: &str) {
    const N: usize = 200;
    let store = Arc::new(connect(url).await);
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let c = client(i, Some(format!("jti-{i}")));
                let patience = Duration::from_micros((i % 4) as u64 * 300);
                // `None`: the caller gave up before the answer came.
                tokio::time::timeout(patience, store.insert_client(&c, &events(i))).await.ok()
            })
        })
        .collect();
    // Some callers are also cancelled from outside, wherever they are.
    for t in tasks.iter().skip(1).step_by(7) {
        t.abort();
    }
    let mut answered = HashSet::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await {
            Ok(Some(Ok(()))) => {
                answered.insert(format!("client-{i:04}"));
            }
            Ok(Some(Err(e))) => panic!("client {i}: {e:?}"),
            Ok(None) => {}
            Err(e) if e.is_cancelled() => {}
            Err(e) => panic!("client {i}: {e}"),
        }
    }
    // The queue is first in, first out: once this write is answered, every write queued before
    // it is settled.
    store.insert_client(&client(N, None), &events(N)).await.unwrap();

    let stored: HashMap<String, ClientRecord> =
        store.list_clients().await.unwrap().into_iter().map(|c| (c.client_id.as_str().to_owned(), c)).collect();
    let by = events_by_client(&chain(&store).await);
    for i in 0..=N {
        let id = format!("client-{i:04}");
        match stored.get(&id) {
            Some(found) => {
                let jti = (i < N).then(|| format!("jti-{i}"));
                assert_eq!(found, &client(i, jti), "{id} stored whole");
                assert_eq!(by.get(&id).map(Vec::len), Some(2), "{id} stored with both its events");
            }
            None => {
                assert!(!answered.contains(&id), "{id} was answered as stored");
                assert!(!by.contains_key(&id), "{id} not stored, yet audited");
            }
        }
    }
    // The sentinel aside, more clients are stored than were answered: the cases above did run.
    assert!(stored.len() - 1 > answered.len(), "no write of a caller that went away was committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_writes_are_all_committed() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_writes_are_all_committed(&format!("sqlite://{}", dir.path().join("t.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_replays_are_refused_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    replays_are_refused_one_by_one(&[Arc::new(connect(&url).await)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_replays_across_two_stores_are_refused_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    replays_are_refused_one_by_one(&[Arc::new(connect(&url).await), Arc::new(connect(&url).await)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_dropped_callers_leave_whole_writes_or_none() {
    let dir = tempfile::tempdir().unwrap();
    dropped_callers_leave_whole_writes_or_none(&format!("sqlite://{}", dir.path().join("t.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_writes_are_all_committed() {
    let Some(pg) = TestPg::new() else { return };
    concurrent_writes_are_all_committed(pg.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replays_are_refused_one_by_one() {
    let Some(pg) = TestPg::new() else { return };
    replays_are_refused_one_by_one(&[Arc::new(connect(pg.url()).await)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replays_across_two_stores_are_refused_one_by_one() {
    // Two nodes' writers racing on the same statements: the audit lock is taken after all client
    // rows of a batch, so the race ends in a conflict, never in a deadlock.
    let Some(pg) = TestPg::new() else { return };
    replays_are_refused_one_by_one(&[Arc::new(connect(pg.url()).await), Arc::new(connect(pg.url()).await)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dropped_callers_leave_whole_writes_or_none() {
    let Some(pg) = TestPg::new() else { return };
    dropped_callers_leave_whole_writes_or_none(pg.url()).await;
}
