//! Connecting: URL dispatch and the errors a misconfigured or unreachable database gives.

use std::time::{Duration, Instant};

use tessera_store::StoreError;
use tessera_store_diesel::{DieselStore, PoolOptions};

#[tokio::test]
async fn unreachable_postgres_is_unavailable_quickly_without_the_password() {
    let started = Instant::now();
    let options = PoolOptions { max_size: 2, connection_timeout: Duration::from_secs(2) };
    let result = DieselStore::connect("postgres://tessera:hunter2-s3cret@127.0.0.1:1/tessera", options).await;
    let elapsed = started.elapsed();
    match result {
        Err(StoreError::Unavailable(msg)) => {
            assert!(!msg.contains("hunter2-s3cret"), "password leaked: {msg}");
            // The driver's own reason, not a bare "timed out".
            assert!(msg.contains("127.0.0.1") && msg.contains('1'), "{msg}");
            eprintln!("unreachable PostgreSQL gave: {msg}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[tokio::test]
async fn a_malformed_postgres_url_does_not_echo_the_password() {
    // libpq quotes the URL in some parse errors.
    let result = DieselStore::connect(
        "postgres://tessera:hunter2-s3cret@[::1/tessera",
        PoolOptions { max_size: 1, connection_timeout: Duration::from_secs(2) },
    )
    .await;
    match result {
        Err(e) => assert!(!e.to_string().contains("hunter2-s3cret"), "password leaked: {e}"),
        Ok(_) => panic!("a malformed URL connected"),
    }
}

#[tokio::test]
async fn unknown_scheme_is_refused_naming_the_scheme() {
    let result = DieselStore::connect("mysql://root:hunter2@localhost/tessera", PoolOptions::default()).await;
    match result {
        Err(StoreError::Internal(msg)) => {
            assert!(msg.contains("mysql"), "{msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn zero_pool_size_is_an_error_not_a_panic() {
    let options = PoolOptions { max_size: 0, ..PoolOptions::default() };
    assert!(matches!(DieselStore::connect("sqlite::memory:", options).await, Err(StoreError::Internal(_))));
}
