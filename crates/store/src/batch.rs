//! Writes that the hot path must not pay for one by one.
//!
//! [`AuditSink`]: group commit. A caller hands over its event and waits until the batch that
//! holds it is committed; while one batch commits, the next one fills. The guarantee (no token
//! leaves the server unless its audit record is durable) costs one transaction per batch, not
//! one per token.
//!
//! [`UsageRecorder`]: `last_used_at` coalesced per client, so the hot path never writes SQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_core::audit::AuditEvent;
use tessera_core::{ClientId, UnixTime};
use tokio::sync::{mpsc, oneshot};

use crate::{AuditLog, ClientStore, StoreError};

type Pending = (AuditEvent, oneshot::Sender<Result<(), String>>);

/// Most events written in one transaction.
const MAX_BATCH: usize = 2048;

#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Pending>,
}

impl AuditSink {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(log: Arc<dyn AuditLog>) -> AuditSink {
        let (tx, rx) = mpsc::channel::<Pending>(64 * 1024);
        tokio::spawn(writer(log, rx));
        AuditSink { tx }
    }

    /// Returns once `event` is committed, or with the store's error (then the caller must not
    /// act as if the event happened).
    pub async fn record(&self, event: AuditEvent) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx.send((event, done)).await.map_err(|_| StoreError::Unavailable("audit writer stopped".into()))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Unavailable(e)),
            Err(_) => Err(StoreError::Unavailable("audit writer stopped".into())),
        }
    }
}

async fn writer(log: Arc<dyn AuditLog>, mut rx: mpsc::Receiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        // Take whatever else is already waiting: that is the group in group commit.
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let events: Vec<AuditEvent> = batch.iter().map(|(e, _)| e.clone()).collect();
        let mut result = log.append(&events).await.map_err(|e| e.to_string());
        if let Err(e) = &result {
            // One retry after a short pause covers a dropped connection; then the callers hear.
            tracing::warn!(error = %e, events = events.len(), "audit append failed; retrying once");
            tokio::time::sleep(Duration::from_millis(200)).await;
            result = log.append(&events).await.map_err(|e| e.to_string());
        }
        for (_, done) in batch.drain(..) {
            let _ = done.send(result.clone());
        }
    }
}

/// Coalesces `last_used_at` per client: at most one write per client per `granularity`.
pub struct UsageRecorder {
    granularity: i64,
    state: Mutex<HashMap<ClientId, (UnixTime, bool)>>,
}

impl UsageRecorder {
    pub fn new(granularity_secs: i64) -> Arc<UsageRecorder> {
        Arc::new(UsageRecorder { granularity: granularity_secs, state: Mutex::new(HashMap::new()) })
    }

    /// Notes a use; cheap (one map lookup), never blocks on I/O.
    pub fn used(&self, client: &ClientId, at: UnixTime) {
        let Ok(mut state) = self.state.lock() else { return };
        match state.get_mut(client) {
            Some((last, _)) if at.0 - last.0 < self.granularity => {}
            Some(entry) => *entry = (at, true),
            None => {
                state.insert(client.clone(), (at, true));
            }
        }
    }

    /// The uses not yet written; marks them written.
    pub fn take(&self) -> Vec<(ClientId, UnixTime)> {
        let Ok(mut state) = self.state.lock() else { return vec![] };
        state
            .iter_mut()
            .filter(|(_, (_, dirty))| *dirty)
            .map(|(id, (at, dirty))| {
                *dirty = false;
                (id.clone(), *at)
            })
            .collect()
    }

    /// Flushes every `every` on the current runtime.
    pub fn start_flusher(self: Arc<Self>, store: Arc<dyn ClientStore>, every: Duration) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let uses = self.take();
                if !uses.is_empty()
                    && let Err(e) = store.touch_last_used(&uses).await
                {
                    tracing::warn!(error = %e, clients = uses.len(), "could not record last use; will retry");
                    // Put them back so the next flush writes them.
                    for (id, at) in uses {
                        if let Ok(mut s) = self.state.lock() {
                            s.insert(id, (at, true));
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use serde_json::Map;
    use tessera_core::audit::AuditKind;

    #[tokio::test]
    async fn every_recorded_event_is_committed_before_record_returns() {
        let store = Arc::new(MemoryStore::new());
        let sink = AuditSink::start(store.clone());
        let mut tasks = Vec::new();
        for i in 0..200 {
            let sink = sink.clone();
            tasks.push(tokio::spawn(async move {
                let e = AuditEvent {
                    at: UnixTime(i),
                    kind: AuditKind::TokenIssued,
                    actor: "c".into(),
                    client_id: None,
                    data: Map::new(),
                };
                sink.record(e).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(AuditLog::read(store.as_ref(), 0, 1000).await.unwrap().len(), 200);
    }

    #[test]
    fn usage_is_coalesced_per_client() {
        let u = UsageRecorder::new(60);
        let a = ClientId::new("a");
        u.used(&a, UnixTime(1000));
        u.used(&a, UnixTime(1010));
        assert_eq!(u.take(), vec![(a.clone(), UnixTime(1000))]);
        u.used(&a, UnixTime(1030));
        assert!(u.take().is_empty(), "within the granularity nothing new is written");
        u.used(&a, UnixTime(1061));
        assert_eq!(u.take(), vec![(a, UnixTime(1061))]);
    }
}
