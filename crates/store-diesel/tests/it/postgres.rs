//! PostgreSQL, on a throw-away database per test. Skipped (loudly, by `TestPg`) only when no
//! server can be had and `TESSERA_TEST_REQUIRE_PG` is unset.

use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use tessera_store::{Health, KeyStore};
use tessera_store_diesel::Backend;
use tessera_testkit::pg::TestPg;

use crate::{clients_audit, connect};

#[tokio::test]
async fn postgres_meets_the_key_contract() {
    let Some(pg) = TestPg::new() else { return };
    let store = connect(pg.url()).await;
    assert_eq!(store.backend(), Backend::Postgres);
    tessera_store::contract::key_store(&store).await;
    store.ping().await.unwrap();
}

#[tokio::test]
async fn postgres_migrations_are_idempotent() {
    let Some(pg) = TestPg::new() else { return };
    let first = connect(pg.url()).await;
    let second = connect(pg.url()).await;
    tessera_store::contract::key_store(&second).await;
    assert_eq!(first.list_keys().await.unwrap().len(), 2);
}

#[tokio::test]
async fn pool_survives_a_server_side_disconnect() {
    // What a PostgreSQL restart does to a pool: every open session is gone. Checkout validation
    // must replace the dead connections, so the process never needs a restart.
    let Some(pg) = TestPg::new() else { return };
    let store = connect(pg.url()).await;
    store.ping().await.unwrap();

    let mut admin = PgConnection::establish(pg.url()).unwrap();
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .unwrap();

    store.ping().await.unwrap();
    assert!(store.list_keys().await.unwrap().is_empty());
}

/// Runs `sql` on the test database through a connection of its own, behind the store's back.
fn raw(pg: &TestPg, sql: &str) {
    PgConnection::establish(pg.url()).unwrap().batch_execute(sql).unwrap();
}

#[tokio::test]
async fn postgres_meets_the_client_and_audit_contracts() {
    let Some(pg) = TestPg::new() else { return };
    tessera_store::contract::client_store(&connect(pg.url()).await).await;
    // The audit contract starts from an empty log, so it gets a database of its own.
    let Some(pg) = TestPg::new() else { return };
    tessera_store::contract::audit_log(Arc::new(connect(pg.url()).await)).await;
    let Some(pg) = TestPg::new() else { return };
    tessera_store::contract::token_store(&connect(pg.url()).await).await;
    tessera_store::contract::lock_store(&connect(pg.url()).await).await;
}

#[tokio::test]
async fn postgres_two_stores_append_one_chain() {
    let Some(pg) = TestPg::new() else { return };
    clients_audit::two_stores_append_one_chain(pg.url()).await;
}

#[tokio::test]
async fn postgres_edited_audit_record_breaks_the_chain() {
    let Some(pg) = TestPg::new() else { return };
    clients_audit::edited_record_breaks_the_chain(pg.url(), |sql| raw(&pg, sql)).await;
}

#[tokio::test]
async fn postgres_empty_and_large_audit_batches() {
    let Some(pg) = TestPg::new() else { return };
    clients_audit::empty_and_large_batches(pg.url()).await;
}

#[tokio::test]
async fn postgres_clients_and_audit_survive_a_restart() {
    let Some(pg) = TestPg::new() else { return };
    clients_audit::clients_and_audit_survive_a_restart(pg.url()).await;
}

#[tokio::test]
async fn postgres_list_groups_scopes_per_client() {
    let Some(pg) = TestPg::new() else { return };
    clients_audit::list_groups_scopes_per_client(pg.url()).await;
}
