//! PostgreSQL, on a throw-away database per test. Skipped (loudly, by `TestPg`) only when no
//! server can be had and `TESSERA_TEST_REQUIRE_PG` is unset.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use tessera_store::{Health, KeyStore};
use tessera_store_diesel::Backend;
use tessera_testkit::pg::TestPg;

use crate::connect;

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
