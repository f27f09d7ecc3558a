//! A node in a cluster: applying other nodes' change notices to this node's caches, and
//! publishing this node's changes.

use std::sync::Arc;

use async_trait::async_trait;
use tessera_core::{ClientId, Clock, UnixTime};
use tessera_store::{ClientCache, ClientStore, Revocations, StoreError, TokenStore};
use tessera_store_redis::{Notice, NoticeHandler, RedisShared};

pub struct CacheUpdater {
    pub clients: Arc<ClientCache>,
    pub revocations: Arc<Revocations>,
    pub client_store: Arc<dyn ClientStore>,
    pub token_store: Arc<dyn TokenStore>,
    pub clock: Arc<dyn Clock>,
}

#[async_trait]
impl NoticeHandler for CacheUpdater {
    fn notice(&self, notice: Notice) {
        match notice {
            Notice::Revoked { jti, exp } => self.revocations.insert(jti, UnixTime(exp)),
            Notice::ClientChanged { client_id } => {
                let store = self.client_store.clone();
                let cache = self.clients.clone();
                tokio::spawn(async move {
                    match store.get_client(&ClientId::new(client_id.clone())).await {
                        Ok(Some(client)) => cache.put(client),
                        Ok(None) => tracing::warn!(client_id, "notice for a client that is not in the database"),
                        Err(e) => tracing::error!(error = %e, client_id, "could not reload a changed client"),
                    }
                });
            }
        }
    }

    async fn resync(&self) -> Result<(), StoreError> {
        // In pages, without materialising every full record at once (see `ClientCache::load`).
        let clients = self.clients.load(self.client_store.as_ref()).await?;
        let revoked = self.token_store.revoked(self.clock.now()).await?;
        tracing::info!(clients, revoked = revoked.len(), "caches rebuilt from SQL");
        self.revocations.replace_all(revoked);
        Ok(())
    }
}

/// Publishes without making the caller wait: the change is already durable in SQL, and a node
/// that misses the notice falls back to SQL while its subscription is down.
pub fn publish(redis: &RedisShared, notice: Notice) {
    let redis = redis.clone();
    tokio::spawn(async move {
        if let Err(e) = redis.publish(&notice).await {
            tracing::error!(error = %e, ?notice, "could not publish a cluster notice");
        }
    });
}
