//! Integration tests of `tessera-store-diesel` against real databases: a SQLite file in a
//! temporary directory and a throw-away PostgreSQL database (`tessera_testkit::pg::TestPg`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod clients_audit;
mod connect;
mod group_commit;
mod postgres;
mod sqlite;

use std::time::Duration;

use tessera_store_diesel::{DieselStore, PoolOptions};

/// Short waits: a test that has to wait for a pool timeout should fail fast, not hang.
fn options() -> PoolOptions {
    PoolOptions { max_size: 4, connection_timeout: Duration::from_secs(3) }
}

async fn connect(url: &str) -> DieselStore {
    DieselStore::connect(url, options()).await.unwrap_or_else(|e| panic!("connect: {e}"))
}
