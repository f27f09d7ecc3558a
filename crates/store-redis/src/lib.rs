//! State the nodes of a Tessera cluster share through Redis:
//! - the replay guard (`jti` of client assertions and software statements), atomic across nodes
//!   with `SET NX EX`;
//! - change notices (pub/sub): a revoked token, a changed client (suspended, offboarded, scope
//!   approved), so that every node's in-memory caches follow within a second.
//!
//! Durable facts stay in SQL; Redis holds nothing that cannot be rebuilt from SQL. A node whose
//! subscription is down knows it ([`RedisShared::notices_live`]) and must not trust its caches for
//! revocation state: it falls back to SQL until the subscription is back and a full resync is done.
//!
//! Must not depend on diesel, actix or any surface crate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tessera_core::UnixTime;
use tessera_store::{Health, ReplayGuard, StoreError};

/// A change other nodes must apply to their caches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    /// An access token was revoked (already durable in SQL).
    Revoked { jti: String, exp: i64 },
    /// A client's record changed in SQL: reload it.
    ClientChanged { client_id: String },
}

/// Callbacks of a subscription.
#[async_trait]
pub trait NoticeHandler: Send + Sync + 'static {
    fn notice(&self, notice: Notice);
    /// The subscription was (re)established: notices may have been missed while it was down,
    /// so caches must be rebuilt from SQL. The node counts as live only once this returns Ok.
    async fn resync(&self) -> Result<(), StoreError>;
}

#[derive(Clone)]
pub struct RedisShared {
    client: redis::Client,
    manager: ConnectionManager,
    prefix: String,
    live: Arc<AtomicBool>,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

impl RedisShared {
    /// Connects (failing fast when Redis is down: a node configured for a cluster must not
    /// silently run alone). `prefix` separates deployments sharing one Redis.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisShared, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::Internal(format!("redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2);
        let manager =
            tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new_with_config(client.clone(), config))
                .await
                .map_err(|_| StoreError::Unavailable("redis: connection timed out".into()))?
                .map_err(unavailable)?;
        Ok(RedisShared { client, manager, prefix: prefix.to_owned(), live: Arc::new(AtomicBool::new(false)) })
    }

    fn channel(&self) -> String {
        format!("{}:notices", self.prefix)
    }

    /// Whether this node currently receives notices. When false, caches may be stale.
    pub fn notices_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    pub fn live_flag(&self) -> Arc<AtomicBool> {
        self.live.clone()
    }

    pub async fn publish(&self, notice: &Notice) -> Result<(), StoreError> {
        let payload = serde_json::to_string(notice).map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut conn = self.manager.clone();
        let _: i64 = conn.publish(self.channel(), payload).await.map_err(unavailable)?;
        Ok(())
    }

    /// Subscribes for good: reconnects with backoff, calls `resync` after every (re)subscription,
    /// and keeps [`notices_live`](Self::notices_live) true only while subscribed.
    pub fn subscribe(&self, handler: Arc<dyn NoticeHandler>) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match this.client.get_async_pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(this.channel()).await {
                        Ok(()) => {
                            // Subscribed first, then resync: a notice sent meanwhile waits in the
                            // subscription and is applied after the rebuilt caches.
                            if let Err(e) = handler.resync().await {
                                tracing::warn!(error = %e, "resync from SQL failed; staying in fallback mode");
                                tokio::time::sleep(backoff).await;
                                backoff = (backoff * 2).min(Duration::from_secs(2));
                                continue;
                            }
                            this.live.store(true, Ordering::SeqCst);
                            backoff = Duration::from_millis(100);
                            tracing::info!(channel = %this.channel(), "receiving cluster notices");
                            let mut stream = pubsub.into_on_message();
                            while let Some(msg) = stream.next().await {
                                let Ok(payload) = msg.get_payload::<String>() else { continue };
                                match serde_json::from_str::<Notice>(&payload) {
                                    Ok(n) => handler.notice(n),
                                    Err(e) => tracing::warn!(error = %e, "ignoring an unreadable cluster notice"),
                                }
                            }
                            this.live.store(false, Ordering::SeqCst);
                            tracing::warn!(
                                "cluster notices lost (Redis connection closed); falling back to SQL checks"
                            );
                        }
                        Err(e) => {
                            this.live.store(false, Ordering::SeqCst);
                            tracing::warn!(error = %e, "cannot subscribe to cluster notices");
                        }
                    },
                    Err(e) => {
                        this.live.store(false, Ordering::SeqCst);
                        tracing::warn!(error = %e, "cannot reach Redis for cluster notices");
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        });
    }
}

#[async_trait]
impl ReplayGuard for RedisShared {
    async fn first_use(
        &self,
        namespace: &str,
        id: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let key = format!("{}:replay:{namespace}:{id}", self.prefix);
        // Kept until the identifier could no longer be valid anyway.
        let ttl = (expires_at.0 - now.0).max(1) as u64;
        let mut conn = self.manager.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }
}

#[async_trait]
impl Health for RedisShared {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.manager.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await.map_err(unavailable)?;
        Ok(())
    }
}
