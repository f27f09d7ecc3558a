//! Outbound notifications: lifecycle events (suspension, offboarding, resumption, review
//! decisions) POSTed to configured webhooks, so that owners and gateways hear about them.
//!
//! The body is a JWT (`Content-Type: application/jwt`, header `typ: tessera-event+jwt`) signed
//! with the server's current key: a receiver verifies it against `<issuer>/jwks`, as it would a
//! token, with no shared secret to distribute. Delivery is retried with exponential backoff
//! (1 s doubling to 5 min, `max_attempts` tries); a receiver must treat `jti` as idempotency key.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tessera_core::keys::SignerSource;
use tessera_core::{Clock, Issuer, OsRng, Rng};
use tokio::sync::mpsc;

#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Map<String, Value>>,
}

impl Notifier {
    pub fn start(
        urls: Vec<String>,
        client: reqwest::Client,
        signer: Arc<dyn SignerSource>,
        issuer: Issuer,
        clock: Arc<dyn Clock>,
        max_attempts: u32,
    ) -> Notifier {
        let (tx, mut rx) = mpsc::channel::<Map<String, Value>>(10_000);
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let mut claims = Map::new();
                claims.insert("iss".into(), json!(issuer.as_str()));
                claims.insert("iat".into(), json!(clock.now().0));
                claims.insert("jti".into(), json!(OsRng.token(16).unwrap_or_default()));
                claims.insert("event".into(), Value::Object(event));
                let body = match signer.current().sign("tessera-event+jwt", &claims) {
                    Ok(s) => s.compact,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot sign a notification; dropped");
                        continue;
                    }
                };
                for url in &urls {
                    // Each delivery retries on its own task, so one slow receiver delays no other.
                    tokio::spawn(deliver(client.clone(), url.clone(), body.clone(), max_attempts));
                }
            }
        });
        Notifier { tx }
    }

    /// Queues an event; never blocks the caller.
    pub fn send(&self, event: Map<String, Value>) {
        if self.tx.try_send(event).is_err() {
            tracing::error!("notification queue full; event dropped (see the audit log for the fact itself)");
        }
    }
}

async fn deliver(client: reqwest::Client, url: String, body: String, max_attempts: u32) {
    let mut wait = Duration::from_secs(1);
    for attempt in 1..=max_attempts.max(1) {
        let result = client.post(&url).header("Content-Type", "application/jwt").body(body.clone()).send().await;
        match result {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(url = %url, status = %r.status(), attempt, "webhook refused the notification"),
            Err(e) => tracing::warn!(url = %url, error = %e, attempt, "webhook unreachable"),
        }
        if attempt < max_attempts {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(300));
        }
    }
    tracing::error!(url = %url, "notification not delivered after {max_attempts} attempts");
}
