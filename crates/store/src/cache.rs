//! The in-memory client directory the hot paths read (token issue, introspection): never SQL.
//! Writers update the store first, then the cache (write-through); other nodes learn of changes
//! through change notices and `refresh`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tessera_core::ClientId;
use tessera_core::client::ClientRecord;

#[derive(Default)]
pub struct ClientCache {
    map: RwLock<HashMap<ClientId, Arc<ClientRecord>>>,
}

impl ClientCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, id: &ClientId) -> Option<Arc<ClientRecord>> {
        match self.map.read() {
            Ok(m) => m.get(id).cloned(),
            Err(p) => p.into_inner().get(id).cloned(),
        }
    }

    pub fn put(&self, client: ClientRecord) {
        let client = Arc::new(client);
        match self.map.write() {
            Ok(mut m) => m.insert(client.client_id.clone(), client),
            Err(p) => p.into_inner().insert(client.client_id.clone(), client),
        };
    }

    /// Replaces the whole content (start-up, or a full refresh).
    pub fn replace_all(&self, clients: Vec<ClientRecord>) {
        let fresh: HashMap<ClientId, Arc<ClientRecord>> =
            clients.into_iter().map(|c| (c.client_id.clone(), Arc::new(c))).collect();
        match self.map.write() {
            Ok(mut m) => *m = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
    }

    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<Arc<ClientRecord>> {
        self.map.read().map(|m| m.values().cloned().collect()).unwrap_or_default()
    }
}

/// Revoked `jti`s with their token's expiry: the in-memory copy every introspection reads. The
/// durable copy is the `TokenStore`; other nodes learn of revocations through change notices.
#[derive(Default)]
pub struct Revocations {
    map: RwLock<HashMap<String, tessera_core::UnixTime>>,
}

impl Revocations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_revoked(&self, jti: &str) -> bool {
        match self.map.read() {
            Ok(m) => m.contains_key(jti),
            // Fail closed: with the lock poisoned, treat the token as revoked.
            Err(_) => true,
        }
    }

    pub fn insert(&self, jti: String, expires_at: tessera_core::UnixTime) {
        if let Ok(mut m) = self.map.write() {
            m.insert(jti, expires_at);
        }
    }

    pub fn replace_all(&self, entries: Vec<(String, tessera_core::UnixTime)>) {
        if let Ok(mut m) = self.map.write() {
            *m = entries.into_iter().collect();
        }
    }

    /// Forgets entries whose token has expired (an expired token is inactive anyway).
    pub fn purge(&self, now: tessera_core::UnixTime) {
        if let Ok(mut m) = self.map.write() {
            m.retain(|_, exp| *exp > now);
        }
    }

    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
