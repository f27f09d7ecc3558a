//! In-memory stores, for unit tests of the surfaces and for process-local state (the replay guard
//! of a single node without Redis). The `tessera` binary keeps durable data in SQL.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tessera_core::audit::{AuditEvent, AuditRecord, GENESIS_HASH, chain_hash};
use tessera_core::client::ClientRecord;
use tessera_core::{ClientId, UnixTime};

use crate::{AuditLog, ClientStore, Health, KeyStore, LockStore, ReplayGuard, StoreError, StoredKey, TokenStore};

#[derive(Default)]
pub struct MemoryStore {
    keys: Mutex<Vec<StoredKey>>,
    clients: Mutex<Vec<ClientRecord>>,
    audit: Mutex<Vec<AuditRecord>>,
    replay: Mutex<HashMap<(String, String), UnixTime>>,
    revoked: Mutex<HashMap<String, UnixTime>>,
    locks: Mutex<HashMap<String, (String, UnixTime)>>,
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, StoreError> {
    m.lock().map_err(|_| StoreError::Internal("in-memory store lock poisoned".into()))
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn append_locked(audit: &mut Vec<AuditRecord>, events: &[AuditEvent]) {
        for e in events {
            let (seq, prev) = audit.last().map(|r| (r.seq + 1, r.hash.clone())).unwrap_or((1, GENESIS_HASH.to_owned()));
            let hash = chain_hash(&prev, seq, e);
            audit.push(AuditRecord { seq, event: e.clone(), prev_hash: prev, hash });
        }
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let mut keys = lock(&self.keys)?;
        if keys.iter().any(|k| k.kid == key.kid) {
            return Err(StoreError::Conflict(format!("signing key {}", key.kid)));
        }
        keys.push(key.clone());
        Ok(())
    }

    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        Ok(lock(&self.keys)?.clone())
    }
}

#[async_trait]
impl ClientStore for MemoryStore {
    async fn insert_client(&self, client: &ClientRecord, audit: &[AuditEvent]) -> Result<(), StoreError> {
        // Lock order: clients, then audit (everywhere), so there is no deadlock.
        let mut clients = lock(&self.clients)?;
        let mut log = lock(&self.audit)?;
        if clients.iter().any(|c| c.client_id == client.client_id) {
            return Err(StoreError::Conflict(format!("client {}", client.client_id)));
        }
        if client.ssa_jti.is_some() && clients.iter().any(|c| c.ssa_jti == client.ssa_jti) {
            return Err(StoreError::Conflict("ssa_jti already registered".into()));
        }
        clients.push(client.clone());
        Self::append_locked(&mut log, audit);
        Ok(())
    }

    async fn update_client(&self, client: &ClientRecord, audit: &[AuditEvent]) -> Result<(), StoreError> {
        let mut clients = lock(&self.clients)?;
        let mut log = lock(&self.audit)?;
        let slot = clients
            .iter_mut()
            .find(|c| c.client_id == client.client_id)
            .ok_or_else(|| StoreError::NotFound(format!("client {}", client.client_id)))?;
        *slot = client.clone();
        Self::append_locked(&mut log, audit);
        Ok(())
    }

    async fn get_client(&self, id: &ClientId) -> Result<Option<ClientRecord>, StoreError> {
        Ok(lock(&self.clients)?.iter().find(|c| &c.client_id == id).cloned())
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        Ok(lock(&self.clients)?.clone())
    }

    async fn list_clients_page(&self, after: Option<&ClientId>, limit: usize) -> Result<Vec<ClientRecord>, StoreError> {
        let clients = lock(&self.clients)?;
        let mut page: Vec<&ClientRecord> =
            clients.iter().filter(|c| after.is_none_or(|a| c.client_id.as_str() > a.as_str())).collect();
        page.sort_by(|a, b| a.client_id.as_str().cmp(b.client_id.as_str()));
        Ok(page.into_iter().take(limit).cloned().collect())
    }

    async fn changed_since(&self, since: UnixTime) -> Result<Vec<ClientRecord>, StoreError> {
        Ok(lock(&self.clients)?.iter().filter(|c| c.updated_at >= since).cloned().collect())
    }

    async fn versions_since(&self, since: UnixTime) -> Result<Vec<(ClientId, UnixTime)>, StoreError> {
        Ok(lock(&self.clients)?
            .iter()
            .filter(|c| c.updated_at >= since)
            .map(|c| (c.client_id.clone(), c.updated_at))
            .collect())
    }

    async fn get_clients(&self, ids: &[ClientId]) -> Result<Vec<ClientRecord>, StoreError> {
        Ok(lock(&self.clients)?.iter().filter(|c| ids.contains(&c.client_id)).cloned().collect())
    }

    async fn touch_last_used(&self, uses: &[(ClientId, UnixTime)]) -> Result<(), StoreError> {
        let mut clients = lock(&self.clients)?;
        for (id, at) in uses {
            if let Some(c) = clients.iter_mut().find(|c| &c.client_id == id)
                && c.last_used_at.is_none_or(|prev| prev < *at)
            {
                c.last_used_at = Some(*at);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl LockStore for MemoryStore {
    async fn try_lock(&self, name: &str, holder: &str, ttl_secs: i64, now: UnixTime) -> Result<bool, StoreError> {
        let mut locks = lock(&self.locks)?;
        match locks.get(name) {
            Some((h, until)) if h != holder && *until > now => Ok(false),
            _ => {
                locks.insert(name.to_owned(), (holder.to_owned(), now.plus(ttl_secs)));
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn append(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let mut log = lock(&self.audit)?;
        Self::append_locked(&mut log, events);
        Ok(())
    }

    async fn read(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(lock(&self.audit)?.iter().filter(|r| r.seq > after).take(limit).cloned().collect())
    }
}

#[async_trait]
impl ReplayGuard for MemoryStore {
    async fn first_use(
        &self,
        namespace: &str,
        id: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut seen = lock(&self.replay)?;
        // Forget what has expired, so the map stays as small as the live assertions.
        if seen.len() > 1024 {
            seen.retain(|_, exp| *exp > now);
        }
        let key = (namespace.to_owned(), id.to_owned());
        match seen.get(&key) {
            Some(exp) if *exp > now => Ok(false),
            _ => {
                seen.insert(key, expires_at);
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn revoke(
        &self,
        jti: &str,
        _client: &ClientId,
        expires_at: UnixTime,
        _now: UnixTime,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut revoked = lock(&self.revoked)?;
        let mut log = lock(&self.audit)?;
        revoked.insert(jti.to_owned(), expires_at);
        Self::append_locked(&mut log, audit);
        Ok(())
    }

    async fn revoked(&self, now: UnixTime) -> Result<Vec<(String, UnixTime)>, StoreError> {
        Ok(lock(&self.revoked)?.iter().filter(|(_, exp)| **exp > now).map(|(j, e)| (j.clone(), *e)).collect())
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.revoked)?.contains_key(jti))
    }

    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        let mut revoked = lock(&self.revoked)?;
        let before = revoked.len();
        revoked.retain(|_, exp| *exp > now);
        Ok((before - revoked.len()) as u64)
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
    async fn memory_store_meets_the_contracts() {
        crate::contract::key_store(&MemoryStore::new()).await;
        crate::contract::client_store(&MemoryStore::new()).await;
        crate::contract::audit_log(std::sync::Arc::new(MemoryStore::new())).await;
        crate::contract::replay_guard(std::sync::Arc::new(MemoryStore::new())).await;
        crate::contract::token_store(&MemoryStore::new()).await;
        crate::contract::lock_store(&MemoryStore::new()).await;
    }
}
