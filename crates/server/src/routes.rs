//! The server's own routes: discovery (RFC 8414 and OIDC), JWKS, health, readiness, metrics.

use std::sync::Arc;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};
use serde_json::json;
use tessera_store::Health;

use crate::keys::KeyService;
use crate::metrics::Metrics;

pub struct Probes {
    pub store: Arc<dyn Health>,
    /// Present in cluster mode.
    pub redis: Option<Arc<dyn Health>>,
}

/// Registers the routes. `prefix` is the issuer's path ("" for an issuer without one); RFC 8414
/// §3 puts the well-known segment between host and path, OIDC Discovery after the path.
pub fn configure(cfg: &mut web::ServiceConfig, prefix: &str) {
    cfg.route("/.well-known/oauth-authorization-server", web::get().to(discovery))
        .route("/.well-known/openid-configuration", web::get().to(discovery))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
    if !prefix.is_empty() {
        cfg.route(&format!("/.well-known/oauth-authorization-server{prefix}"), web::get().to(discovery))
            .route(&format!("{prefix}/.well-known/openid-configuration"), web::get().to(discovery));
    }
    cfg.route(&format!("{prefix}/jwks"), web::get().to(jwks));
}

async fn discovery(keys: web::Data<KeyService>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header((CACHE_CONTROL, "public, max-age=60"))
        .body(keys.published().discovery_json.clone())
}

async fn jwks(keys: web::Data<KeyService>) -> HttpResponse {
    // Short caching: a pre-published key must reach resource servers well before it signs.
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/jwk-set+json"))
        .insert_header((CACHE_CONTROL, "public, max-age=60"))
        .body(keys.published().jwks_json.clone())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "up"}))
}

async fn readyz(probes: web::Data<Probes>, keys: web::Data<KeyService>) -> HttpResponse {
    let database = probes.store.ping().await;
    let signing = keys.signer().active_kid().is_some();
    let redis = match &probes.redis {
        Some(r) => Some(r.ping().await.is_ok()),
        None => None,
    };
    let ready = database.is_ok() && signing && redis != Some(false);
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "database": if database.is_ok() { "ok" } else { "unreachable" },
            "signing_key": if signing { "ok" } else { "no active key" },
            "redis": match redis { None => "not configured", Some(true) => "ok", Some(false) => "unreachable" },
        }
    });
    if let Err(e) = &database {
        tracing::warn!(error = %e, "readiness: database unreachable");
    }
    if ready { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}

async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    match metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8"))
            .body(text),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}
