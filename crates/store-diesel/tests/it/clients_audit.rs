//! Client and audit checks beyond the shared contract, written once and run by `sqlite.rs` and
//! `postgres.rs` against their backend. `raw` runs SQL on the database behind the store's back,
//! as an attacker with database access (or an operator) would.

use std::sync::Arc;

use tessera_core::audit::{AuditEvent, AuditKind, AuditRecord, GENESIS_HASH, verify_chain};
use tessera_core::{ClientId, UnixTime};
use tessera_store::contract::{sample_client, sample_event};
use tessera_store::{AuditLog, ClientStore};

use crate::connect;

fn event(n: i64) -> AuditEvent {
    sample_event(AuditKind::TokenIssued, Some("c"), n)
}

fn n_of(r: &AuditRecord) -> i64 {
    r.event.data["n"].as_i64().unwrap()
}

fn assert_valid_chain(records: &[AuditRecord], expected_len: usize) {
    assert_eq!(records.len(), expected_len);
    let (last, _) = verify_chain(records, 0, GENESIS_HASH.to_owned())
        .unwrap_or_else(|b| panic!("chain broken at {}: {}", b.seq, b.reason));
    assert_eq!(last, expected_len as i64);
}

/// Two stores on one database stand for two server processes: each has its own pool, so the
/// only thing keeping their appends apart is the database lock taken by `append`.
pub(crate) async fn two_stores_append_one_chain(url: &str) {
    let stores = [Arc::new(connect(url).await), Arc::new(connect(url).await)];
    const TASKS_PER_STORE: i64 = 4;
    const BATCHES: i64 = 10;
    const BATCH: i64 = 3;
    let mut tasks = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for t in 0..TASKS_PER_STORE {
            let store = store.clone();
            let base = (s as i64 * TASKS_PER_STORE + t) * 1000;
            tasks.push(tokio::spawn(async move {
                for b in 0..BATCHES {
                    let batch: Vec<AuditEvent> = (0..BATCH).map(|i| event(base + b * 10 + i)).collect();
                    store.append(&batch).await.unwrap();
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = stores[0].read(0, 10_000).await.unwrap();
    assert_valid_chain(&all, (2 * TASKS_PER_STORE * BATCHES * BATCH) as usize);
    // Each batch is contiguous: no other append slipped in between its records.
    for batch in all.chunks(BATCH as usize) {
        let first = n_of(&batch[0]);
        assert_eq!(first % 10, 0, "a batch starts with its first event");
        for (i, r) in batch.iter().enumerate() {
            assert_eq!(n_of(r), first + i as i64, "batch starting at {first} was interleaved");
        }
    }
    // Both stores see the same log.
    assert_eq!(stores[1].read(0, 10_000).await.unwrap(), all);
}

/// Editing a stored record directly in the database is found by `verify_chain` at that record.
pub(crate) async fn edited_record_breaks_the_chain(url: &str, raw: impl FnOnce(&str)) {
    let store = connect(url).await;
    store.append(&(1..=5).map(event).collect::<Vec<_>>()).await.unwrap();
    assert_valid_chain(&store.read(0, 100).await.unwrap(), 5);

    raw("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3");

    let records = store.read(0, 100).await.unwrap();
    assert_eq!(records[2].event.actor, "mallory", "the edited record is still readable");
    let broken = verify_chain(&records, 0, GENESIS_HASH.to_owned()).unwrap_err();
    assert_eq!(broken.seq, 3, "{}", broken.reason);
}

/// Appending an empty batch stores nothing; a batch far above one INSERT's row count is still
/// appended whole and chained.
pub(crate) async fn empty_and_large_batches(url: &str) {
    let store = connect(url).await;
    store.append(&[]).await.unwrap();
    assert!(store.read(0, 10).await.unwrap().is_empty());

    let batch: Vec<AuditEvent> = (0..2_500).map(event).collect();
    store.append(&batch).await.unwrap();
    store.append(&[event(9_999)]).await.unwrap();
    let all = store.read(0, 10_000).await.unwrap();
    assert_valid_chain(&all, 2_501);
    assert_eq!(all.iter().take(2_500).map(|r| r.event.clone()).collect::<Vec<_>>(), batch);
    assert!(store.read(2_501, 10).await.unwrap().is_empty());
    assert_eq!(store.read(0, 0).await.unwrap(), vec![]);
}

/// What was accepted is still there after the process restarts (a new store on the same
/// database), and the chain continues where it stopped.
pub(crate) async fn clients_and_audit_survive_a_restart(url: &str) {
    let mut client = sample_client("client-r", Some("jti-r"));
    client.expires_at = None;
    client.metadata.insert("nested".into(), serde_json::json!({"z": [1, 2.5, null], "a": {"b": true}}));
    let first = connect(url).await;
    first.insert_client(&client, &[sample_event(AuditKind::RegistrationAccepted, Some("client-r"), 1)]).await.unwrap();
    client.scopes.reverse();
    client.status_reason = Some("reordered".into());
    first.update_client(&client, &[sample_event(AuditKind::RegistrationUpdated, Some("client-r"), 2)]).await.unwrap();
    first.touch_last_used(&[(client.client_id.clone(), UnixTime(1_700_000_900))]).await.unwrap();
    client.last_used_at = Some(UnixTime(1_700_000_900));
    let before = first.read(0, 10).await.unwrap();
    drop(first);

    let second = connect(url).await;
    assert_eq!(second.get_client(&client.client_id).await.unwrap().as_ref(), Some(&client));
    assert_eq!(second.list_clients().await.unwrap(), vec![client.clone()]);
    assert_eq!(second.read(0, 10).await.unwrap(), before);
    second.append(&[sample_event(AuditKind::AdminAction, None, 3)]).await.unwrap();
    let after = second.read(0, 10).await.unwrap();
    assert_valid_chain(&after, 3);
    assert_eq!(after[2].prev_hash, before[1].hash);

    // Clearing optional fields is stored too (an update writes NULL, not "leave unchanged").
    client.status_reason = None;
    client.ssa_jti = None;
    client.scopes.clear();
    second.update_client(&client, &[]).await.unwrap();
    drop(second);
    let third = connect(url).await;
    assert_eq!(third.get_client(&client.client_id).await.unwrap().as_ref(), Some(&client));
    assert_eq!(third.read(0, 10).await.unwrap().len(), 3, "an update without events appends none");
}

/// `list_clients` pairs every client with its own scopes, in order, whatever the interleaving of
/// the scope rows in the table.
pub(crate) async fn list_groups_scopes_per_client(url: &str) {
    let store = connect(url).await;
    let mut expected = Vec::new();
    for i in 0..30 {
        let mut c = sample_client(&format!("client-{i:02}"), Some(&format!("jti-{i}")));
        c.scopes.truncate(i % 3);
        if i % 2 == 0 {
            c.scopes.reverse();
        }
        store.insert_client(&c, &[]).await.unwrap();
        expected.push(c);
    }
    // Updating some clients moves their scope rows to the end of the table.
    for c in expected.iter_mut().step_by(4) {
        c.scopes.push(tessera_core::client::ScopeGrant {
            scope: format!("extra-{}", c.client_id),
            state: tessera_core::client::ScopeState::Denied,
            rule: "default-deny".into(),
            decided_at: UnixTime(7),
            reason: None,
        });
        store.update_client(c, &[]).await.unwrap();
    }
    let mut listed = store.list_clients().await.unwrap();
    listed.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    assert_eq!(listed, expected);
    assert_eq!(store.get_client(&ClientId::new("client-04")).await.unwrap().as_ref(), Some(&expected[4]));
}
