//! Tessera's storage contracts: one async trait per aggregate, the error type every implementation
//! maps its failures to, an in-memory implementation for unit tests, and (feature `contract`) the
//! contract suite that every implementation runs in its own tests.
//!
//! This crate must not depend on diesel, redis or actix: surfaces depend on these traits only,
//! and the server picks the implementation.

mod batch;
mod cache;
mod clients;
mod error;
mod keys;
mod memory;

#[cfg(any(test, feature = "contract"))]
pub mod contract;

pub use batch::{AuditSink, UsageRecorder};
pub use cache::{ClientCache, Revocations};
pub use clients::{AuditLog, ClientStore, LockStore, ReplayGuard, TokenStore};
pub use error::StoreError;
pub use keys::{KeyStore, StoredKey};
pub use memory::MemoryStore;

use async_trait::async_trait;

/// Whether the backing store answers. Used by `/readyz`.
#[async_trait]
pub trait Health: Send + Sync {
    async fn ping(&self) -> Result<(), StoreError>;
}
