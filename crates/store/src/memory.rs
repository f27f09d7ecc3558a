//! In-memory stores, for unit tests of the surfaces. Not used by the `tessera` binary: a server
//! always has a durable store.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::{Health, KeyStore, StoreError, StoredKey};

#[derive(Default)]
pub struct MemoryStore {
    keys: Mutex<Vec<StoredKey>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, StoreError> {
        m.lock().map_err(|_| StoreError::Internal("in-memory store lock poisoned".into()))
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let mut keys = Self::lock(&self.keys)?;
        if keys.iter().any(|k| k.kid == key.kid) {
            return Err(StoreError::Conflict(format!("signing key {}", key.kid)));
        }
        keys.push(key.clone());
        Ok(())
    }

    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        Ok(Self::lock(&self.keys)?.clone())
    }
}

#[async_trait]
impl Health for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(all(test, feature = "contract"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_meets_the_key_contract() {
        crate::contract::key_store(&MemoryStore::new()).await;
    }
}
