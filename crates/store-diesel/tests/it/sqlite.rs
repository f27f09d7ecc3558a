//! SQLite: the contract, durability across restarts, decoding of bad rows.

use std::path::Path;
use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use tessera_core::ClientId;
use tessera_core::audit::AuditKind;
use tessera_core::keys::SigningAlg;
use tessera_core::{KeyId, UnixTime};
use tessera_store::contract::{sample_client, sample_event};
use tessera_store::{AuditLog, ClientStore, Health, KeyStore, StoreError, StoredKey};
use tessera_store_diesel::Backend;

use crate::{clients_audit, connect};

fn file_url(dir: &tempfile::TempDir) -> (String, std::path::PathBuf) {
    let path = dir.path().join("tessera.db");
    (format!("sqlite://{}", path.display()), path)
}

fn key(kid: &str) -> StoredKey {
    StoredKey {
        kid: KeyId::new(kid),
        alg: SigningAlg::PS256,
        created_at: UnixTime(1_800_000_000),
        activates_at: UnixTime(1_800_086_400),
        public_jwk: r#"{"kty":"RSA"}"#.into(),
        private_jwe: "a.b.c.d.e".into(),
    }
}

#[tokio::test]
async fn sqlite_file_meets_the_key_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = connect(&file_url(&dir).0).await;
    assert_eq!(store.backend(), Backend::Sqlite);
    tessera_store::contract::key_store(&store).await;
}

#[tokio::test]
async fn sqlite_memory_meets_the_key_contract() {
    // One connection holds the whole database; the store must keep using that one.
    let store = connect("sqlite::memory:").await;
    assert_eq!(store.backend(), Backend::Sqlite);
    tessera_store::contract::key_store(&store).await;
    store.ping().await.unwrap();
}

#[tokio::test]
async fn keys_survive_a_restart_and_migrations_are_idempotent() {
    // Nothing accepted is lost across a restart: a second connect (which runs the migrations
    // again) finds the schema in place and the keys intact.
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = file_url(&dir);
    let first = connect(&url).await;
    first.insert_key(&key("k1")).await.unwrap();
    drop(first);

    let second = connect(&url).await;
    assert_eq!(second.list_keys().await.unwrap(), vec![key("k1")]);
    second.insert_key(&key("k2")).await.unwrap();
    drop(second);

    let third = connect(&url).await;
    assert_eq!(third.list_keys().await.unwrap().len(), 2);
}

#[tokio::test]
async fn relative_sqlite_path_is_accepted() {
    // `sqlite://PATH` with a relative path is relative to the working directory (the crate
    // directory under `cargo test`); the temp dir made there is removed afterwards.
    let dir = tempfile::tempdir_in(".").unwrap();
    let rel = std::path::Path::new(dir.path().file_name().unwrap()).join("rel.db");
    assert!(rel.is_relative(), "{}", rel.display());
    let store = connect(&format!("sqlite://{}", rel.display())).await;
    store.insert_key(&key("k")).await.unwrap();
    assert!(dir.path().join("rel.db").is_file());
}

#[tokio::test]
async fn sqlite_connections_use_wal_and_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (url, path) = file_url(&dir);
    let store = connect(&url).await;
    store.ping().await.unwrap();
    // WAL is a property of the file, so a separate connection sees it.
    let mut raw = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    #[derive(diesel::QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    let mode: Mode = diesel::RunQueryDsl::get_result(diesel::sql_query("PRAGMA journal_mode"), &mut raw).unwrap();
    assert_eq!(mode.journal_mode, "wal");
}

#[tokio::test]
async fn an_unknown_alg_in_storage_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (url, path) = file_url(&dir);
    let store = connect(&url).await;
    let mut raw = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    raw.batch_execute("INSERT INTO signing_keys VALUES ('bad', 'HS256', 1, 1, '{}', 'x.y.z.w.v')").unwrap();
    match store.list_keys().await {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("HS256"), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_sqlite_directory_is_unavailable() {
    // The caller creates the directory; the store does not invent one.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("no/such/dir/t.db").display());
    match tessera_store_diesel::DieselStore::connect(&url, crate::options()).await {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("SQLite"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// Runs `sql` on the database file through a connection of its own, behind the store's back.
fn raw(path: &Path, sql: &str) {
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    conn.batch_execute("PRAGMA busy_timeout=5000").unwrap();
    conn.batch_execute(sql).unwrap();
}

#[tokio::test]
async fn sqlite_file_meets_the_client_and_audit_contracts() {
    let dir = tempfile::tempdir().unwrap();
    tessera_store::contract::client_store(&connect(&file_url(&dir).0).await).await;
    // The audit contract starts from an empty log, so it gets a database of its own.
    let dir = tempfile::tempdir().unwrap();
    tessera_store::contract::audit_log(Arc::new(connect(&file_url(&dir).0).await)).await;
    let dir = tempfile::tempdir().unwrap();
    tessera_store::contract::token_store(&connect(&file_url(&dir).0).await).await;
    tessera_store::contract::lock_store(&connect(&file_url(&dir).0).await).await;
}

#[tokio::test]
async fn sqlite_memory_meets_the_client_and_audit_contracts() {
    tessera_store::contract::client_store(&connect("sqlite::memory:").await).await;
    tessera_store::contract::audit_log(Arc::new(connect("sqlite::memory:").await)).await;
}

#[tokio::test]
async fn sqlite_two_stores_append_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    clients_audit::two_stores_append_one_chain(&file_url(&dir).0).await;
}

#[tokio::test]
async fn sqlite_edited_audit_record_breaks_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (url, path) = file_url(&dir);
    clients_audit::edited_record_breaks_the_chain(&url, |sql| raw(&path, sql)).await;
}

#[tokio::test]
async fn sqlite_empty_and_large_audit_batches() {
    let dir = tempfile::tempdir().unwrap();
    clients_audit::empty_and_large_batches(&file_url(&dir).0).await;
}

#[tokio::test]
async fn sqlite_clients_and_audit_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    clients_audit::clients_and_audit_survive_a_restart(&file_url(&dir).0).await;
}

#[tokio::test]
async fn sqlite_list_groups_scopes_per_client() {
    let dir = tempfile::tempdir().unwrap();
    clients_audit::list_groups_scopes_per_client(&file_url(&dir).0).await;
}

#[tokio::test]
async fn undecodable_client_and_audit_rows_are_corrupt_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (url, path) = file_url(&dir);
    let store = connect(&url).await;
    let id = ClientId::new("client-x");
    store
        .insert_client(&sample_client("client-x", None), &[sample_event(AuditKind::AdminAction, None, 1)])
        .await
        .unwrap();

    let expect_corrupt = |result: Result<_, StoreError>, needle: &str| match result {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains(needle), "{msg} does not name {needle}"),
        other => panic!("expected Corrupt naming {needle}, got {other:?}"),
    };
    raw(&path, "UPDATE clients SET status = 'zombie' WHERE client_id = 'client-x'");
    expect_corrupt(store.get_client(&id).await.map(drop), "client-x");
    expect_corrupt(store.list_clients().await.map(drop), "zombie");

    raw(&path, "UPDATE clients SET status = 'active', metadata = '[1, 2]' WHERE client_id = 'client-x'");
    expect_corrupt(store.get_client(&id).await.map(drop), "client-x");

    raw(&path, "UPDATE clients SET metadata = '{}' WHERE client_id = 'client-x'");
    raw(&path, "UPDATE client_scopes SET state = 'maybe' WHERE scope = 'accounts:read'");
    expect_corrupt(store.get_client(&id).await.map(drop), "client-x");
    raw(&path, "UPDATE client_scopes SET state = 'granted'");
    assert!(store.get_client(&id).await.unwrap().is_some());

    raw(&path, "UPDATE audit_log SET kind = 'coffee_break' WHERE seq = 1");
    expect_corrupt(store.read(0, 10).await.map(drop), "audit record 1");
    raw(&path, "UPDATE audit_log SET kind = 'admin_action', data = 'not json' WHERE seq = 1");
    expect_corrupt(store.read(0, 10).await.map(drop), "audit record 1");
}

/// The WAL is copied into the database file by the background checkpoint, not inside a commit
/// (`conn::Checkpointer`): the database file grows after a burst of appends with no commit
/// having reached the 20,000-page automatic checkpoint. Without the thread it would not grow
/// until then. (The p99 of the token endpoint is why: docs/performance.md.)
#[tokio::test]
async fn the_background_checkpoint_moves_the_wal_into_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (url, path) = file_url(&dir);
    let store = connect(&url).await;
    // Let the first passes checkpoint the migrations.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let before = std::fs::metadata(&path).unwrap().len();
    let mut event = sample_event(AuditKind::TokenIssued, None, 1);
    event.data.insert("padding".into(), serde_json::Value::String("x".repeat(1000)));
    let events: Vec<_> = (0..1000).map(|_| event.clone()).collect();
    store.append(&events).await.unwrap();
    let wal = path.with_extension("db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 1_000_000, "the appends went to the WAL");
    let mut grown = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if std::fs::metadata(&path).unwrap().len() > before + 1_000_000 {
            grown = true;
            break;
        }
    }
    assert!(grown, "the database file did not grow: no background checkpoint ran");
    assert_eq!(store.read(0, 2000).await.unwrap().len(), 1000);
}
